"""Several workflows in one run: merge their simulations' batches into one time-ordered stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .batch import EventBatch, concat
from .engine import Simulation

__all__ = ["EventSource", "MultiSimulation", "merged_batches", "take"]


def take(b: EventBatch, idx: Any) -> EventBatch:
    return EventBatch(b.ctx, {k: v[idx] for k, v in b.cols.items()}, b.params[:, idx])


def merged_batches(sims: list[Simulation]) -> Iterator[EventBatch]:
    """Events of every simulation in time order (ties: by simulation, then session, seq, attempt)."""
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
        heads = []
        for i, parts in enumerate(bufs):
            if not parts:
                continue
            b = concat(parts) if len(parts) > 1 else parts[0]
            cut = len(b) if safe == np.inf else int(np.searchsorted(b.cols["t"], safe, side="left"))
            bufs[i] = [b.slice(cut, len(b))] if cut < len(b) else []
            if cut:
                heads.append((i, b.slice(0, cut)))
        if heads:
            t = np.concatenate([h.cols["t"] for _, h in heads])
            src = np.concatenate([np.full(len(h), i) for i, h in heads])
            pos = np.concatenate([np.arange(len(h)) for _, h in heads])
            order = np.lexsort((pos, src, t))
            s, p = src[order], pos[order]
            edges = np.flatnonzero(np.diff(s)) + 1
            by_src = dict(heads)
            for a, z in zip(np.r_[0, edges], np.r_[edges, len(s)], strict=True):
                yield take(by_src[int(s[a])], p[a:z])
        if not live:
            return


class MultiSimulation:
    """Looks like one :class:`Simulation` to the runtime; runs one per workflow and merges them."""

    def __init__(self, sims: list[Simulation], load: Any) -> None:
        self.sims = sims
        self.load = load
        self.ctx = sims[0].ctx
        self.model = sims[0].model
        self.start_us = sims[0].start_us
        self.seed = sims[0].seed

    @property
    def sessions_started(self) -> int:
        return sum(s.sessions_started for s in self.sims)

    @property
    def target_sessions(self) -> int | None:
        parts = [s.target_sessions for s in self.sims]
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)

    @property
    def last_arrival_us(self) -> int:
        return max(s.last_arrival_us for s in self.sims)

    def batches(self) -> Iterator[EventBatch]:
        return merged_batches(self.sims)


EventSource = Simulation | MultiSimulation
"""What the runtime runs: one simulation, or several merged."""
