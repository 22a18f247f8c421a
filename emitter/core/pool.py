"""The time-ordering pool: finished events wait here until nothing not yet simulated could come before them.

Each block of sessions the engine walks arrives as one *run*, sorted once into the stream's total order
(time, then session, seq, attempt). A drain takes from every run the prefix earlier than the horizon, merges
those prefixes and hands them out; what is kept is never sorted again, and copied only when a quarter of a
run has left (its unread part is copied out), so a run holds at most 4/3 of what still waits in it. A drain
can be bounded (:meth:`TimePool.cut_for` finds the time before which at most so many events wait), so one
batch never holds the whole pool. The cost of a drain therefore follows what it hands out, not what waits,
and memory follows the events in flight, not the length of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .ids import event_key

__all__ = ["TimePool", "time_order"]

Cols = dict[str, npt.NDArray[Any]]


def time_order(cols: Cols) -> npt.NDArray[np.intp]:
    """Order by time, ties by (session, seq, attempt): one sort by time, then the rare ties fixed up."""
    t = cols["t"]
    order = np.argsort(t, kind="stable")
    ts = t[order]
    tie = ts[1:] == ts[:-1]
    if tie.any():
        member = np.zeros(len(ts), bool)
        member[1:] |= tie
        member[:-1] |= tie
        sub = order[member]
        key = event_key(cols["sess"][sub], cols["seq"][sub], cols["attempt"][sub])
        order[member] = sub[np.lexsort((key, t[sub]))]
    return order


def _take(cols: Cols, params: npt.NDArray[np.int64], idx: Any) -> tuple[Cols, npt.NDArray[np.int64]]:
    """The rows ``idx`` of every column, one column at a time (each source column let go of once taken)."""
    out: Cols = {}
    for k in list(cols):
        out[k] = cols.pop(k)[idx]
    return out, params[:, idx]


@dataclass
class _Run:
    cols: Cols  # in total order
    params: npt.NDArray[np.int64]
    pos: int = 0  # rows before this one have left

    @property
    def size(self) -> int:
        return len(self.cols["t"])

    @property
    def waiting(self) -> int:
        return self.size - self.pos

    def rest(self) -> tuple[Cols, npt.NDArray[np.int64]]:
        """Views of what still waits."""
        return {k: v[self.pos :] for k, v in self.cols.items()}, self.params[:, self.pos :]


def _merge(parts: list[tuple[Cols, npt.NDArray[np.int64]]]) -> tuple[Cols, npt.NDArray[np.int64]]:
    """Sorted parts as one, in total order (new arrays: nothing of the parts is kept)."""
    if len(parts) == 1:
        cols, params = parts[0]
        return {k: v.copy() for k, v in cols.items()}, params.copy()
    cols = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    params = np.concatenate([p[1] for p in parts], axis=1)
    parts.clear()
    return _take(cols, params, time_order(cols))  # (sorted runs end to end: timsort merges them)


class TimePool:
    """Events in sorted runs; :meth:`drain` hands out, in total order, every event earlier than a horizon."""

    MAX_RUNS = 32  # more, and the two smallest are merged into one (long sessions leave long thin tails)
    COMPACT = 4  # a run is compacted once 1/COMPACT of it has left (it holds at most this/(this-1) of it)

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._waiting = 0

    def __len__(self) -> int:
        """Events waiting."""
        return self._waiting

    def add(self, cols: Cols, params: npt.NDArray[np.int64]) -> None:
        """Take a block's events (any order; the columns are consumed)."""
        n = len(cols["t"])
        if not n:
            return
        sorted_cols, sorted_params = _take(cols, params, time_order(cols))
        self._runs.append(_Run(sorted_cols, sorted_params))
        self._waiting += n

    def _count_before(self, t: int) -> int:
        return sum(int(np.searchsorted(r.cols["t"][r.pos :], t, side="left")) for r in self._runs)

    def cut_for(self, horizon: int | None, most: int) -> int | None:
        """The latest time ``c <= horizon`` before which at most ``most`` events wait (more only when that
        many share the earliest time): draining to ``c`` hands out a bounded batch. None: all, when few."""
        if self._waiting <= most:
            return horizon
        lo = min(int(r.cols["t"][r.pos]) for r in self._runs) + 1  # the earliest time's events always leave
        hi = horizon if horizon is not None else max(int(r.cols["t"][-1]) for r in self._runs) + 1
        if lo >= hi or self._count_before(hi) <= most:
            return horizon
        while lo < hi:  # the largest c in [lo, hi) with count(c) <= most, or lo
            mid = (lo + hi + 1) // 2
            if self._count_before(mid) <= most:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def drain(self, horizon: int | None) -> tuple[Cols, npt.NDArray[np.int64]] | None:
        """Every event earlier than ``horizon`` (all when None) in total order, or None when there is none."""
        parts: list[tuple[Cols, npt.NDArray[np.int64]]] = []
        whole: tuple[Cols, npt.NDArray[np.int64]] | None = None
        for run in self._runs:
            t = run.cols["t"]
            cut = run.size if horizon is None else run.pos + int(np.searchsorted(t[run.pos :], horizon, side="left"))
            if cut == run.pos:
                continue
            if run.pos == 0 and cut == run.size:
                whole = (run.cols, run.params)  # (if it is the only part, it leaves as it is)
            parts.append(({k: v[run.pos : cut] for k, v in run.cols.items()}, run.params[:, run.pos : cut]))
            self._waiting -= cut - run.pos
            run.pos = cut
        out = None
        if parts:
            out = whole if len(parts) == 1 and whole is not None else _merge(parts)
        self._tidy()
        return out

    def _tidy(self) -> None:
        """Drop the empty runs, compact the ones mostly read, merge the smallest while there are too many."""
        kept = []
        for run in self._runs:
            if not run.waiting:
                continue
            if run.pos and run.pos * self.COMPACT >= run.size:
                run.cols, run.params = _merge([run.rest()])
                run.pos = 0
            kept.append(run)
        while len(kept) > self.MAX_RUNS:
            kept.sort(key=lambda r: r.waiting, reverse=True)
            a, b = kept.pop(), kept.pop()
            kept.append(_Run(*_merge([a.rest(), b.rest()])))
        self._runs = kept
