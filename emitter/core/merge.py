"""Several workflows in one run: merge their simulations' batches into one time-ordered stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from .batch import EventBatch, concat
from .engine import Simulation

__all__ = ["EventSource", "MultiSimulation", "merged_batches", "take"]


def take(b: EventBatch, idx: Any) -> EventBatch:
    return EventBatch(b.ctx, {k: v[idx] for k, v in b.cols.items()}, b.params[:, idx])


def merged_batches(sims: list[Simulation], one_context: bool = False) -> Iterator[EventBatch]:
    """Events of every simulation in time order (ties: by simulation, then session, seq, attempt).
    ``one_context``: the simulations are parts of one (blocks of a closed run's users, the same model and
    ids), so a batch may mix them; else each batch is one simulation's (its own model)."""
    if not sims:
        return
    its = [s.batches() for s in sims]
    bufs: list[list[EventBatch]] = [[] for _ in sims]
    horizon: list[float] = [-np.inf] * len(sims)  # nothing yielded yet: anything may come
    while True:
        live = [i for i, h in enumerate(horizon) if h != np.inf]
        if live:
            i = min(live, key=lambda j: horizon[j])
            b = next(its[i], None)
            if b is None:
                horizon[i] = np.inf
            else:
                bufs[i].append(b)
                h = sims[i].horizon
                horizon[i] = np.inf if h is None else float(h)
        safe = min(horizon)
        if safe == -np.inf:
            continue
        for i, parts in enumerate(bufs):
            if len(parts) > 1:
                bufs[i] = [concat(parts)]
        while True:  # everything earlier than safe, at most MAX_MERGED events a batch
            heads, more = _heads(bufs, safe)
            if heads:
                yield from _ordered(heads, one_context)
            if not more:
                break
        if not live:
            return


MAX_MERGED = 1 << 18  # events merged into one step at most (K parts' batches at once would be K times that)


def _heads(bufs: list[list[EventBatch]], safe: float) -> tuple[list[tuple[int, EventBatch]], bool]:
    """Each part's events earlier than ``safe``, at most MAX_MERGED in all (the earliest; ties kept
    whole), taken off the buffers; and whether some earlier than ``safe`` are left."""
    ts = [p[0].cols["t"] if p else None for p in bufs]
    cuts = [0 if t is None else len(t) if safe == np.inf else int(np.searchsorted(t, safe, "left")) for t in ts]
    total = sum(cuts)
    more = total > MAX_MERGED
    if more:
        early = np.concatenate([t[:c] for t, c in zip(ts, cuts, strict=True) if c and t is not None])
        tk = np.partition(early, MAX_MERGED)[MAX_MERGED]
        side: Literal["left", "right"] = "left" if (early < tk).any() else "right"  # (one time: taken whole)
        cuts = [
            0 if t is None or not c else int(np.searchsorted(t[:c], tk, side)) for t, c in zip(ts, cuts, strict=True)
        ]
    heads = []
    for i, c in enumerate(cuts):
        if c:
            b = bufs[i][0]
            heads.append((i, b.slice(0, c)))
            bufs[i] = [b.slice(c, len(b))] if c < len(b) else []
    return heads, more


def _ordered(heads: list[tuple[int, EventBatch]], one_context: bool) -> Iterator[EventBatch]:
    t = np.concatenate([h.cols["t"] for _, h in heads])
    # the heads are end to end by part, each in order: a stable sort by time alone keeps (part, position)
    # for ties, which is the order of (time, part, position), and merges the sorted runs in one pass
    order = np.argsort(t, kind="stable")
    if one_context:  # one batch, in order (a run of one source per batch would be a few events each)
        yield take(concat([h for _, h in heads]) if len(heads) > 1 else heads[0][1], order)
        return
    src = np.concatenate([np.full(len(h), i) for i, h in heads])
    pos = np.concatenate([np.arange(len(h)) for _, h in heads])
    s, p = src[order], pos[order]
    edges = np.flatnonzero(np.diff(s)) + 1
    by_src = dict(heads)
    for a, z in zip(np.r_[0, edges], np.r_[edges, len(s)], strict=True):
        yield take(by_src[int(s[a])], p[a:z])


class MultiSimulation:
    """Looks like one :class:`Simulation` to the runtime; runs several and merges them: one per workflow,
    or one per block of a closed-model run's users. ``like`` (default: the first) gives the run's identity,
    so that a shard walking none of the parts still is the run."""

    def __init__(self, sims: list[Simulation], load: Any, like: Simulation | None = None) -> None:
        self.sims = sims
        self.one_context = like is not None  # (parts of one simulation: blocks of users)
        self.load = load
        first = like if like is not None else sims[0]
        self.ctx = first.ctx
        self.model = first.model
        self.start_us = first.start_us
        self.seed = first.seed
        self.parts = sims[0].sess_stride if sims else 1  # session numbers go round the parts; time ties by part

    @property
    def sessions_started(self) -> int:
        return sum(s.sessions_started for s in self.sims)

    @property
    def target_sessions(self) -> int | None:
        parts = [s.target_sessions for s in self.sims]
        if not parts:
            return 0
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)

    @property
    def last_arrival_us(self) -> int:
        return max((s.last_arrival_us for s in self.sims), default=0)

    def batches(self) -> Iterator[EventBatch]:
        return merged_batches(self.sims, self.one_context)


EventSource = Simulation | MultiSimulation
"""What the runtime runs: one simulation, or several merged."""
