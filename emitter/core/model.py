"""A workflow compiled to arrays: what the vectorised engine and the encoders index into."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .dist import DistTable
from .ids import MAX_SEQ
from .spec import EXIT, Workflow

__all__ = ["END_ABANDON", "END_CAP", "END_EXIT", "END_NONE", "END_REASONS", "Model"]

END_NONE, END_EXIT, END_CAP, END_ABANDON = 0, 1, 2, 3
END_REASONS = (None, "exit", "cap", "abandon")

PARAM_NONE, PARAM_INT, PARAM_CHOICE, PARAM_USER = 0, 1, 2, 3


def _cum(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cumulative rows whose last non-zero cell is pushed past 1, so ``(u >= cum).sum()`` never overflows."""
    c = np.cumsum(p, axis=-1)
    flat = c.reshape(-1, c.shape[-1])
    pf = p.reshape(-1, p.shape[-1])
    for i in range(flat.shape[0]):
        nz = np.nonzero(pf[i] > 0)[0]
        if len(nz):
            flat[i, nz[-1] :] = 2.0
    return c


def _json_str(s: str) -> bytes:
    return json.dumps(s, ensure_ascii=False).encode()[1:-1]


@dataclass
class ParamSlot:
    """Placeholder ``j`` across endpoints: kind per state, int ranges, and choice tables."""

    kind: npt.NDArray[np.int8]  # [S]
    lo: npt.NDArray[np.int64]  # [S]
    span: npt.NDArray[np.int64]  # [S] (hi - lo + 1)
    choice_start: npt.NDArray[np.int64]  # [S] offset into Model.choices
    choice_cum: npt.NDArray[np.float64]  # [S, C]


class Model:
    """Arrays derived from a :class:`Workflow`; built once per run."""

    def __init__(self, wf: Workflow) -> None:
        self.workflow = wf
        self.states: tuple[str, ...] = wf.states
        S = self.n_states = len(self.states)
        idx = {s: i for i, s in enumerate(self.states)}
        self.index = idx
        self.exit_col = S
        self.user_types = tuple(ut.name for ut in wf.user_types)
        T = len(self.user_types)
        self.type_cum = np.cumsum([ut.weight for ut in wf.user_types])
        self.type_cum[-1] = 2.0
        self.is_exit = np.zeros(S, bool)
        for x in wf.exit_points:
            self.is_exit[idx[x]] = True
        entry = np.zeros((T, S))
        # transitions, sparse: row (user type * S + state) holds its targets with p > 0 in column order
        # (S: leaving) and their cumulative probabilities, the last pushed past 1 (see _cum)
        ptr = [0]
        targets: list[int] = []
        cums: list[float] = []
        for ti, ut in enumerate(wf.user_types):
            for s, p in wf.entry_for(ut.name).items():
                entry[ti, idx[s]] = p
            for s in self.states:
                if self.is_exit[idx[s]]:
                    row = {S: 1.0}
                else:
                    row = {S if t == EXIT else idx[t]: p for t, p in wf.row_for(ut.name, s).items() if p > 0}
                cols = sorted(row)
                c = np.cumsum([row[j] for j in cols]).tolist()
                c[-1] = 2.0
                targets += cols
                cums += c
                ptr.append(len(targets))
        self.entry_p = entry
        self.entry_cum = _cum(entry)
        self.trans_ptr = np.array(ptr, np.int64)
        self.trans_target = np.array(targets, np.int64)
        self.trans_cum = np.array(cums)
        self.max_calls = min(wf.max_calls, MAX_SEQ)
        eps = [wf.endpoints[s] for s in self.states]
        self.latency = DistTable([e.latency for e in eps], scale=1000.0)  # ms -> µs
        self.latency_factor = np.array([ut.latency_factor for ut in wf.user_types])
        self.think = DistTable([ut.think_time or wf.think_time for ut in wf.user_types], scale=1e6)  # s -> µs
        self.error_rate = np.array([e.error_rate for e in eps])
        n_codes = max(len(e.error_codes) for e in eps)
        self.error_codes = np.zeros((S, n_codes), np.int16)
        codes_p = np.zeros((S, n_codes))
        for i, e in enumerate(eps):
            for j, (c, prob) in enumerate(e.error_codes):
                self.error_codes[i, j] = c
                codes_p[i, j] = prob
        self.error_cum = _cum(codes_p)
        self.success = np.array([e.success_status for e in eps], np.int16)
        # path placeholders and query parameters become "slots" shared by all endpoints
        self.n_path_slots = max((len(e.params) for e in eps), default=0)
        self.n_query_slots = max((len(e.query) for e in eps), default=0)
        self.choices: list[str] = []
        self.slots: list[ParamSlot] = []
        for j in range(self.n_path_slots + self.n_query_slots):
            kind = np.zeros(S, np.int8)
            lo = np.zeros(S, np.int64)
            span = np.ones(S, np.int64)
            cstart = np.zeros(S, np.int64)
            width = max((len(p.values) for e in eps for p in (*e.params, *e.query)), default=1) or 1
            ccum = np.full((S, width), 2.0)
            for i, e in enumerate(eps):
                plist = e.params if j < self.n_path_slots else e.query
                k = j if j < self.n_path_slots else j - self.n_path_slots
                if k >= len(plist):
                    continue
                prm = plist[k]
                if prm.kind == "int":
                    kind[i], lo[i], span[i] = PARAM_INT, prm.lo, prm.hi - prm.lo + 1
                elif prm.kind == "user":
                    kind[i] = PARAM_USER
                else:
                    kind[i] = PARAM_CHOICE
                    cstart[i] = len(self.choices)
                    self.choices.extend(urllib.parse.quote(v, safe="") for v in prm.values)
                    w = np.array(prm.weights, dtype=np.float64)
                    ccum[i, : len(w)] = _cum(w / w.sum())
            self.slots.append(ParamSlot(kind, lo, span, cstart, ccum))
        # strings the encoders need, JSON-escaped once
        self.j_route = [_json_str(s) for s in self.states]
        self.j_method = [_json_str(e.method) for e in eps]
        self.j_service = [_json_str(e.service) for e in eps]
        self.j_user_types = [_json_str(t) for t in self.user_types]
        self.j_workflow = _json_str(wf.name)
        self.path_pieces = [e.path_pieces for e in eps]
        self.query_names = [[q.name for q in e.query] for e in eps]
        self.j_choices = [_json_str(c) for c in self.choices]
