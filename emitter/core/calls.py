"""One API call as a tree of service calls, and what faults, timeouts and errors make of it.

The endpoint's service handles the call and calls its downstream services in order (the workflow's
service graph, unfolded into a tree per endpoint). In good health the tree fits the endpoint's declared
latency: descendants' own times (their services' latency distributions) are scaled to at most 80 % of it
and the root keeps the rest. Faults then change own times and outcomes; a caller waits at most its
callee's ``timeout_ms`` and answers 504 when it gives up; errors travel up to the root. Everything is
vectorised over a step's calls: one row per call, one column per tree node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._kernels import categorical
from .dist import Dist, DistTable
from .faults import Dynamics, Fault, NodeState
from .spec import Workflow

__all__ = ["NET_US", "CallResult", "CallTrees", "call_outcomes"]

NET_US = 150  # network time on each side of a downstream call
DEFAULT_TIMEOUT_MS = 30_000.0
DEFAULT_SERVICE_LATENCY = Dist.lognormal_mean(10.0, 0.5)
HEALTHY_SHARE = 0.8  # descendants take at most this share of the declared latency
MAX_NODES = 64
MAX_DEPTH = 8

I64 = npt.NDArray[np.int64]


class CallTrees:
    """Per endpoint: the nodes of its call tree in preorder (node 0 is the endpoint's own service)."""

    def __init__(self, wf: Workflow) -> None:
        states = wf.states
        names = list(wf.services) or sorted({e.service for e in wf.endpoints.values()})
        for e in wf.endpoints.values():
            if e.service not in names:
                names.append(e.service)
        self.services = names
        self.index = {s: i for i, s in enumerate(names)}
        trees: list[list[tuple[int, int]]] = []  # (service, parent)
        for s in states:
            nodes: list[tuple[int, int]] = []

            def unfold(svc: str, parent: int, depth: int, nodes: list[tuple[int, int]] = nodes) -> None:
                if len(nodes) >= MAX_NODES:
                    return
                me = len(nodes)
                nodes.append((self.index[svc], parent))
                if depth >= MAX_DEPTH or svc not in wf.services:
                    return
                for c in wf.services[svc].calls:
                    unfold(c, me, depth + 1)

            unfold(wf.endpoints[s].service, -1, 0)
            trees.append(nodes)
        self.K = max(len(t) for t in trees)
        S = len(states)
        self.svc = np.zeros((S, self.K), np.int64)
        self.parent = np.zeros((S, self.K), np.int64)
        self.valid = np.zeros((S, self.K), bool)
        for i, t in enumerate(trees):
            for j, (svc, par) in enumerate(t):
                self.svc[i, j] = svc
                self.parent[i, j] = max(par, 0)
                self.valid[i, j] = True
        self.trees = trees
        svc_lat: list[Dist] = []
        svc_to: list[int] = []
        for n in names:
            spec = wf.services.get(n)
            svc_lat.append(spec.latency if spec is not None and spec.latency is not None else DEFAULT_SERVICE_LATENCY)
            ms = spec.timeout_ms if spec is not None and spec.timeout_ms is not None else DEFAULT_TIMEOUT_MS
            svc_to.append(round(ms * 1000))
        self.latency = DistTable(svc_lat, scale=1000.0)
        self.timeout_us = np.array(svc_to, np.int64)
        self.ep_timeout_us = np.array(
            [round((wf.endpoints[s].timeout_ms or DEFAULT_TIMEOUT_MS) * 1000) for s in states], np.int64
        )
        self.states = states

    def affected(self, fault: Fault) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        """Services, caller->callee edges and endpoints on a path to the fault's target."""
        services: set[str] = set()
        edges: set[tuple[str, str]] = set()
        endpoints: list[str] = []
        for s, nodes in zip(self.states, self.trees, strict=True):
            hit_nodes = []
            for j, (svc, _) in enumerate(nodes):
                if (fault.service is not None and self.services[svc] == fault.service) or (
                    fault.endpoint == s and j == 0
                ):
                    hit_nodes.append(j)
            if not hit_nodes:
                continue
            endpoints.append(s)
            for j in hit_nodes:
                while j >= 0:
                    svc, par = nodes[j]
                    services.add(self.services[svc])
                    if par >= 0:
                        edges.add((self.services[nodes[par][0]], self.services[svc]))
                    j = par
        return sorted(services), sorted(edges), endpoints


@dataclass
class CallResult:
    latency: I64
    status: npt.NDArray[np.int16]
    faults: npt.NDArray[np.uint64]
    role: npt.NDArray[np.int8]
    duplicate: npt.NDArray[np.bool_]
    node_start: I64 | None = None  # [n, K] µs after the call's start (server spans)
    node_dur: I64 | None = None  # [n, K] µs; 0 where the node did not run
    node_status: npt.NDArray[np.int16] | None = None  # [n, K]


def _failing(status: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    out: npt.NDArray[np.bool_] = status >= 500
    return out


def call_outcomes(
    model: Any,
    trees: CallTrees,
    dyn: Dynamics,
    fault_targets: list[tuple[int, int]],
    state: npt.NDArray[Any],
    t: I64,
    ut: npt.NDArray[Any],
    cascade: npt.NDArray[np.bool_],
    r_lat: np.random.Generator,
    r_err: np.random.Generator,
    r_fault: np.random.Generator,
) -> CallResult:
    """Latency, status and fault labels of one attempt of each call (rows), with its tree when it has one.

    ``fault_targets[i]`` is (service index or -1, endpoint index or -1) of ``dyn.faults[i]``.
    """
    m = model
    n = len(state)
    total = m.latency.sample(state, r_lat, factor=m.latency_factor[ut])
    ue, uc = r_err.random(n), r_err.random(n)
    err = ue < m.error_rate[state]
    code = m.error_codes[state, categorical(uc, m.error_cum, state)]
    base_status = np.where(err, code, m.success[state]).astype(np.int16)
    fmask = np.zeros(n, np.uint64)
    role = np.zeros(n, np.int8)
    K = trees.K
    rows = np.arange(n)
    active_faults = []
    for i, f in enumerate(dyn.faults):
        inten = f.intensity(t)
        if inten.any():
            active_faults.append((i, f, inten))

    if K == 1 and not active_faults:
        latency = total
        status = base_status
        timed = latency > trees.ep_timeout_us[state]
        if timed.any():
            latency = np.where(timed, trees.ep_timeout_us[state], latency)
            status = np.where(timed, 504, status).astype(np.int16)
        res = CallResult(latency, status, fmask, role, np.zeros(n, bool))
        return _cascade(res, dyn, cascade, r_fault, len(dyn.faults)) if dyn.cascade.rate > 0 else res

    valid = trees.valid[state].copy()
    svc = trees.svc[state]
    parent = trees.parent[state]
    own = np.zeros((n, K), np.float64)
    if K > 1:
        own[:, 1:] = trees.latency.sample(svc[:, 1:].ravel(), r_lat).reshape(n, K - 1)
        own[:, 1:] *= valid[:, 1:]
        # healthy fit: descendants take at most HEALTHY_SHARE of the declared latency
        sub = own.copy()
        for j in range(K - 1, 0, -1):
            sub[rows, parent[:, j]] += (sub[:, j] + 2 * NET_US) * valid[:, j]
        children = sub[:, 0]
        scale = np.where(children > HEALTHY_SHARE * total, HEALTHY_SHARE * total / np.maximum(children, 1), 1.0)
        own[:, 1:] *= scale[:, None]
        sub = own.copy()
        for j in range(K - 1, 0, -1):
            sub[rows, parent[:, j]] += (sub[:, j] + 2 * NET_US) * valid[:, j]
        own[:, 0] = np.maximum(total - sub[:, 0], 0.2 * total)
    else:
        own[:, 0] = total
    fstatus = np.zeros((n, K), np.int16)
    fstatus[:, 0] = np.where(_failing(base_status) | (base_status >= 400), base_status, 0)
    cut = np.zeros((n, K), bool)
    nodes = NodeState(own, fstatus, cut)
    for i, f, inten in active_faults:
        tsvc, tep = fault_targets[i]
        on = inten > 0
        match = np.zeros((n, K), bool)
        if tsvc >= 0:
            match = (svc == tsvc) & valid & on[:, None]
        elif tep >= 0:
            match[:, 0] = (state == tep) & on
        if not match.any():
            continue
        hit = match.any(axis=1)
        fmask[hit] |= np.uint64(1) << np.uint64(i)
        role = np.where(match[:, 0], 1, np.where(hit & (role == 0), 2, role)).astype(np.int8)
        f.apply(nodes, match, np.broadcast_to(inten[:, None], (n, K)), r_fault)
    own, fstatus, cut = nodes.own, nodes.status, nodes.cut
    for j in range(1, K):  # a hung or refused node calls nobody
        p = parent[:, j]
        valid[:, j] &= valid[rows, p] & ~cut[rows, p]
    own *= valid
    dur = np.zeros((n, K), np.int64)
    childsum = np.zeros((n, K), np.float64)
    child_status = np.zeros((n, K), np.int16)
    node_status = np.zeros((n, K), np.int16)
    for j in range(K - 1, 0, -1):
        v = valid[:, j]
        sub_j = own[:, j] + childsum[:, j]
        to = trees.timeout_us[svc[:, j]]
        timed = sub_j > to
        dur[:, j] = np.where(v, np.maximum(np.rint(np.minimum(sub_j, to)), 1), 0)  # a node that ran took >= 1 µs
        st = np.where(fstatus[:, j] > 0, fstatus[:, j], child_status[:, j])
        node_status[:, j] = np.where(v, np.where((st == 0) & timed, 504, st), 0)
        seen = np.where(timed, 504, st)
        p = parent[:, j]
        childsum[rows, p] += (dur[:, j] + 2 * NET_US) * v
        fails = v & (seen >= 500)
        child_status[rows[fails], p[fails]] = seen[fails]
    root = own[:, 0] + childsum[:, 0]
    latency = np.maximum(np.rint(root).astype(np.int64), 1)
    status = np.where(
        fstatus[:, 0] > 0, fstatus[:, 0], np.where(child_status[:, 0] > 0, child_status[:, 0], m.success[state])
    ).astype(np.int16)
    ep_to = trees.ep_timeout_us[state]
    timed = latency > ep_to
    latency = np.where(timed, ep_to, latency)
    status = np.where(timed & ~_failing(status), 504, status).astype(np.int16)
    node_status[:, 0] = np.where(status >= 400, status, 0)
    res = CallResult(latency, status, fmask, role, np.zeros(n, bool))
    if K > 1:
        dur[:, 0] = latency
        start = np.zeros((n, K), np.int64)
        cursor = np.zeros((n, K), np.float64)
        cursor[:, 0] = own[:, 0] / 2
        for j in range(1, K):
            p = parent[:, j]
            v = valid[:, j]
            s_j = cursor[rows, p] + NET_US
            start[:, j] = np.where(v, np.rint(s_j), 0)
            cursor[rows, p] += (dur[:, j] + 2 * NET_US) * v
            cursor[:, j] = s_j + own[:, j] / 2
        # a child never ends after its parent (rounding, client timeouts)
        for j in range(1, K):
            p = parent[:, j]
            pend = start[rows, p] + dur[rows, p]
            over = start[:, j] + dur[:, j] - pend
            dur[:, j] = np.where(over > 0, np.maximum(dur[:, j] - over, np.minimum(dur[:, j], 1)), dur[:, j])
        res.node_start, res.node_dur, res.node_status = start, dur, node_status
    return _cascade(res, dyn, cascade, r_fault, len(dyn.faults)) if dyn.cascade.rate > 0 else res


def _cascade(
    res: CallResult, dyn: Dynamics, on: npt.NDArray[np.bool_], rng: np.random.Generator, bit: int
) -> CallResult:
    """The seed's preset on calls of affected sessions past their midpoint: slow, 504 after ~30 s, 503."""
    c = dyn.cascade
    n = len(on)
    u, v, w = rng.random(n), rng.random(n), rng.random(n)
    if not on.any():
        return res
    slow = on & (u < c.slow)
    hang = on & (u >= c.slow) & (u < c.slow + c.timeout)
    down = on & (u >= c.slow + c.timeout) & (u < c.slow + c.timeout + c.unavailable)
    factor = c.slow_factor[0] + (c.slow_factor[1] - c.slow_factor[0]) * v
    lat = res.latency.astype(np.float64)
    lat = np.where(slow, lat * factor, lat)
    lat = np.where(hang, (c.timeout_ms[0] + (c.timeout_ms[1] - c.timeout_ms[0]) * v) * 1000, lat)
    res.latency = np.rint(lat).astype(np.int64)
    res.status = np.where(hang, 504, np.where(down, 503, res.status)).astype(np.int16)
    res.faults = np.where(on, res.faults | (np.uint64(1) << np.uint64(bit)), res.faults)
    res.role = np.where(on, 1, res.role).astype(np.int8)
    res.duplicate = on & (w < c.duplicate)
    if res.node_dur is not None and res.node_start is not None:
        f = np.where(slow, factor, 1.0)[:, None]
        res.node_start = np.rint(res.node_start * f).astype(np.int64)
        res.node_dur = np.rint(res.node_dur * f).astype(np.int64)
        res.node_dur[:, 0] = res.latency
    return res
