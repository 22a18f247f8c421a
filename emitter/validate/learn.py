"""The validator's estimator as an API: learn entry, transition and exit probabilities from events.

:func:`learn` takes events in any form a notebook holds them (a :class:`~emitter.app.dataset.Dataset`, an
Arrow table, a pandas or polars frame, dicts, or a JSON-lines or Parquet file) and counts the walk the way
the validator does: one logical step per (session, seq); retries (attempt > 1) and duplicates never count;
a step whose predecessor is missing counts as a gap, not a transition; a session's last step goes to
``$exit`` when it ended by exiting, and is counted apart when the user abandoned it or the call cap cut it.
No workflow is needed: states are the endpoints seen. :func:`compare` puts what was learned beside a
workflow with the validator's own report (per-row goodness-of-fit tests, Holm's correction, Wilson
intervals) and returns its table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..core.spec import EXIT, Workflow
from .stats import wilson

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from .report import Report

__all__ = ["Learned", "compare", "learn"]

_COLUMNS = ("session_id", "seq", "attempt", "endpoint", "user_type", "end_reason")
ENTRY = "<entry>"
I64 = npt.NDArray[np.int64]


def _table(events: Any) -> pa.Table:
    """Whatever holds the events, as an Arrow table with at least :data:`_COLUMNS`."""
    import pyarrow as pa

    if hasattr(events, "to_arrow") and callable(events.to_arrow):  # a Dataset, a polars frame
        t = events.to_arrow()
    elif isinstance(events, pa.Table):
        t = events
    elif isinstance(events, str | Path):
        from .sources import OBSERVED, is_parquet, open_lines, parquet_batches

        if is_parquet(str(events)):
            parts = list(parquet_batches(str(events)))
            t = pa.Table.from_pydict({k: [v for c in parts for v in c[k]] for k in (parts[0] if parts else {})})
        else:
            import msgspec

            from .assemble import ObservedEvent

            dec = msgspec.json.Decoder(ObservedEvent)
            evs = []
            for line in open_lines(str(events), "learn()"):
                if line.strip():
                    try:
                        evs.append(dec.decode(line))
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        continue  # malformed lines are skipped, as the validator skips them
            t = pa.Table.from_pydict({k: [getattr(e, k) for e in evs] for k in OBSERVED})
    elif type(events).__module__.startswith("pandas"):
        t = pa.Table.from_pandas(events, preserve_index=False)
    else:
        rows = [dict(e) for e in events]
        keys = [k for k in _COLUMNS if all(k in r for r in rows)]
        t = pa.Table.from_pylist([{k: r[k] for k in keys} for r in rows], schema=None) if rows else pa.table({})
    if t.num_rows == 0:
        raise ValueError("no events to learn from")
    missing = [c for c in ("session_id", "seq", "endpoint") if c not in t.column_names]
    if missing:
        raise ValueError(f"events need the columns session_id, seq and endpoint; missing: {', '.join(missing)}")
    return t


def _codes(col: Any) -> tuple[I64, list[str]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_null(arr.type):  # every value missing (no session ended yet, no user types)
        arr = arr.cast(pa.string())
    enc = pc.dictionary_encode(arr.fill_null(""))
    return np.asarray(enc.indices, np.int64), [str(x) for x in enc.dictionary.to_pylist()]


@dataclass(frozen=True)
class Learned:
    """Counts of the walk; probabilities and intervals from them. ``trans[g, i, j]``: from state i to target j
    (targets are the states, then ``$exit``) for user type g (``groups``); ``entry[g, i]``."""

    states: tuple[str, ...]
    groups: tuple[str, ...]
    entry_counts: I64
    trans_counts: I64
    abandoned: I64  # [g, i]: sessions the user abandoned after a step in state i
    capped: int  # sessions the call cap cut
    sessions: int
    steps: int
    retries: int
    duplicates: int
    gaps: int  # steps whose previous step is missing (not counted as transitions)

    @property
    def targets(self) -> tuple[str, ...]:
        return (*self.states, EXIT)

    def _pooled(self, group: str | None) -> tuple[I64, I64]:
        if group is None:
            return self.entry_counts.sum(axis=0), self.trans_counts.sum(axis=0)
        g = self.groups.index(group)
        return self.entry_counts[g], self.trans_counts[g]

    @property
    def entry_points(self) -> dict[str, float]:
        """Learned entry probabilities (all user types pooled)."""
        return self.entry_for(None)

    def entry_for(self, group: str | None) -> dict[str, float]:
        e, _ = self._pooled(group)
        n = int(e.sum())
        return {s: int(k) / n for s, k in zip(self.states, e, strict=True) if k} if n else {}

    @property
    def transitions(self) -> dict[str, dict[str, float]]:
        """Learned next-step probabilities, ``$exit`` for leaving (all user types pooled): the seed's
        ``learned[from][to]``."""
        return self.transitions_for(None)

    def transitions_for(self, group: str | None) -> dict[str, dict[str, float]]:
        _, t = self._pooled(group)
        out: dict[str, dict[str, float]] = {}
        for i, s in enumerate(self.states):
            n = int(t[i].sum())
            if n:
                out[s] = {self.targets[j]: int(k) / n for j, k in enumerate(t[i]) if k}
        return out

    def table(self, confidence: float = 0.95) -> pd.DataFrame:
        """One row per observed (from, to): counts, the learned probability and its Wilson interval."""
        import pandas as pd

        rows = []
        for gi, g in enumerate(self.groups):
            blocks = [(ENTRY, self.entry_counts[gi])] + [
                (s, self.trans_counts[gi, i]) for i, s in enumerate(self.states)
            ]
            for name, counts in blocks:
                n = int(counts.sum())
                targets = self.states if name == ENTRY else self.targets
                for j in np.nonzero(counts)[0]:
                    k = int(counts[j])
                    lo, hi = wilson(k, n, confidence)
                    rows.append(
                        {"user_type": g, "from": name, "to": targets[j], "count": k, "n": n, "p": k / n}
                        | {"ci_low": lo, "ci_high": hi}
                    )
        return pd.DataFrame(rows, columns=["user_type", "from", "to", "count", "n", "p", "ci_low", "ci_high"])


def learn(events: Any) -> Learned:
    """Learn the chain from ``events`` (see the module's docs for what they may be)."""
    t = _table(events)
    n = t.num_rows
    sid, _ = _codes(t.column("session_id"))
    state, states = _codes(t.column("endpoint"))
    seq = np.asarray(t.column("seq").to_numpy(zero_copy_only=False), np.int64)
    attempt = (
        np.asarray(t.column("attempt").fill_null(1).to_numpy(zero_copy_only=False), np.int64)
        if "attempt" in t.column_names
        else np.ones(n, np.int64)
    )
    if "user_type" in t.column_names:
        group, groups = _codes(t.column("user_type"))
    else:
        group, groups = np.zeros(n, np.int64), [""]
    if "end_reason" in t.column_names:
        reason, reasons = _codes(t.column("end_reason"))
    else:
        reason, reasons = np.zeros(n, np.int64), [""]
    # one row per logical step: the first attempt seen of each (session, seq); the end reason of any attempt
    order = np.lexsort((attempt, seq, sid))
    key_s, key_q, key_a = sid[order], seq[order], attempt[order]
    same_step = (key_s[1:] == key_s[:-1]) & (key_q[1:] == key_q[:-1])
    first = np.r_[True, ~same_step]
    repeat = np.r_[False, same_step & (key_a[1:] == key_a[:-1])]  # the same attempt again: a duplicate
    duplicates = int(repeat.sum())
    retries = int(((key_a > 1) & ~repeat).sum())
    step_idx = order[first]
    step_of_row = np.cumsum(first) - 1

    def code(name: str) -> int:
        return reasons.index(name) if name in reasons else -2  # (-1: no end reason)

    code_exit, code_abandon, code_cap = code("exit"), code("abandon"), code("cap")
    ended = np.full(len(step_idx), -1, np.int64)
    has_reason = reason[order] != code("")
    ended[step_of_row[has_reason]] = reason[order][has_reason]
    s_sid, s_seq, s_state, s_group = sid[step_idx], seq[step_idx], state[step_idx], group[step_idx]
    G, S = len(groups), len(states)
    entry = np.zeros((G, S), np.int64)
    starts = s_seq == 0
    np.add.at(entry, (s_group[starts], s_state[starts]), 1)
    trans = np.zeros((G, S, S + 1), np.int64)
    nxt = (s_sid[1:] == s_sid[:-1]) & (s_seq[1:] == s_seq[:-1] + 1)
    np.add.at(trans, (s_group[1:][nxt], s_state[:-1][nxt], s_state[1:][nxt]), 1)
    gaps = int(((s_sid[1:] == s_sid[:-1]) & ~nxt).sum()) + int(
        (starts == 0)[np.r_[True, s_sid[1:] != s_sid[:-1]]].sum()
    )
    ex = ended == code_exit
    np.add.at(trans, (s_group[ex], s_state[ex], S), 1)
    abandoned = np.zeros((G, S), np.int64)
    ab = ended == code_abandon
    np.add.at(abandoned, (s_group[ab], s_state[ab]), 1)
    return Learned(
        states=tuple(states),
        groups=tuple(groups),
        entry_counts=entry,
        trans_counts=trans,
        abandoned=abandoned,
        capped=int((ended == code_cap).sum()),
        sessions=len(np.unique(s_sid)),
        steps=len(step_idx),
        retries=retries,
        duplicates=duplicates,
        gaps=gaps,
    )


def report(workflow: Workflow, learned: Learned, *, alpha: float = 0.01, min_samples: int = 30) -> Report:
    """The validator's report of ``learned`` against ``workflow``."""
    from collections import Counter

    from .assemble import Assembler, Counts
    from .report import build_report

    asm = Assembler(workflow)
    index = {s: i for i, s in enumerate(asm.states)}
    G, S = len(asm.groups), len(asm.states)
    entry = np.zeros((G, S), np.int64)
    trans = np.zeros((G, S, S + 1), np.int64)
    abandon = np.zeros((G, S), np.int64)
    violations: Counter[tuple[str, ...]] = Counter()
    pooled = asm.groups == ("*",)
    for lg, name in enumerate(learned.groups):
        if pooled:
            g = 0
        elif name in asm.groups:
            g = asm.groups.index(name)
        else:
            violations[("unknown user type", name)] += int(learned.entry_counts[lg].sum())
            continue
        for i, s in enumerate(learned.states):
            if s not in index:
                violations[("unknown endpoint", s)] += int(
                    learned.entry_counts[lg, i] + learned.trans_counts[lg, i].sum()
                )
                continue
            si = index[s]
            entry[g, si] += learned.entry_counts[lg, i]
            abandon[g, si] += learned.abandoned[lg, i]
            for j, target in enumerate(learned.targets):
                k = int(learned.trans_counts[lg, i, j])
                if not k:
                    continue
                if target == EXIT:
                    if s not in workflow.exit_points:  # (leaving an exit point is no transition to judge)
                        trans[g, si, S] += k
                elif target in index:
                    trans[g, si, index[target]] += k
    counts = Counts(asm.groups, asm.states, entry, trans, violations=violations, abandon=abandon)
    asm.events = learned.steps + learned.retries + learned.duplicates
    asm.retries, asm.duplicates, asm.sessions = learned.retries, learned.duplicates, learned.sessions
    return build_report(asm, alpha=alpha, min_samples=min_samples, counts=counts, source="learned")


def compare(
    workflow: Workflow,
    learned: Learned | Iterable[Mapping[str, Any]] | Any,
    *,
    alpha: float = 0.01,
    min_samples: int = 30,
) -> pd.DataFrame:
    """The validator's table of ``learned`` (or events to learn from) against ``workflow``: one row per
    (user type, from, to) with the declared and learned probabilities, the count, the row's n, the Wilson
    interval, the row's test and its Holm-adjusted p-value, and the row's verdict. ``.attrs`` holds the
    overall verdict and summary."""
    import pandas as pd

    lr = learned if isinstance(learned, Learned) else learn(learned)
    rep = report(workflow, lr, alpha=alpha, min_samples=min_samples)
    rows = []
    for r in rep.rows:
        for cell in r["cells"]:
            rows.append(
                {
                    "user_type": None if r["group"] == "*" else r["group"],
                    "from": r["state"],
                    "to": cell["target"],
                    "declared": cell["declared"],
                    "learned": cell["observed"],
                    "abs_error": cell["abs_error"],
                    "count": cell["count"],
                    "n": r["n"],
                    "ci_low": cell["ci"][0],
                    "ci_high": cell["ci"][1],
                    "test": r["test"],
                    "p_value": r["p_value"],
                    "p_adjusted": r["p_adjusted"],
                    "verdict": r["verdict"],
                }
            )
    frame = pd.DataFrame(rows)
    frame.attrs.update(
        verdict=rep.verdict, reason=rep.data["reason"], summary=rep.data["summary"], violations=rep.data["violations"]
    )
    return frame
