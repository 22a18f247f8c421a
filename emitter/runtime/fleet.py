"""A fleet of ``--workers`` processes seen as one run: their reports summed into one view (progress, the
summary and the metrics read it as they read a :class:`Runner`), and their lines merged into one ordered
stream.

Each worker runs shard ``k`` of the run and reports as it goes (:func:`snapshot`); the parent keeps the
latest report of each and sums them. The merge is the parent's half of :class:`~emitter.sinks.pipe.PipeSink`:
a worker's lines come in its stream's order, so the parent may write every line earlier than the least of
the workers' marks (how far each has got), ordered by the stream's key across the workers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..encode.lines import gather_lines, line_ends
from ..sinks.base import SinkStats
from .pacing import Speed
from .runner import Runner, RunStats, SinkView

__all__ = ["Fleet", "OrderedMerge", "SinkTotal", "snapshot"]

_SINK_FIELDS = ("sent", "acked", "failed", "dropped", "bytes")


def snapshot(runner: Runner) -> dict[str, Any]:
    """What a worker reports of its run (small, picklable): the parent sums these."""
    st = runner.stats
    return {
        "events": st.events,
        "sessions_started": st.sessions_started,
        "sessions_ended": st.sessions_ended,
        "last_start_us": st.last_start_us,
        "sim_us": st.sim_us,
        "lag": (st.lag.counts.copy(), st.lag.max, st.lag.last, st.lag.late_events),
        "stopped_by": st.stopped_by,
        "error": st.error,
        "input_error": st.input_error,
        "sinks": [(tuple(getattr(s.stats, f) for f in _SINK_FIELDS), list(s.stats.notes)) for s in runner.sinks],
    }


@dataclass
class SinkTotal:
    """One sink URI opened by every worker: the sum of their counts."""

    label: str
    workers: int
    stats: SinkStats = field(default_factory=SinkStats)

    @property
    def name(self) -> str:
        return self.label

    def describe(self) -> str:
        return f"{self.label} (one per worker, {self.workers})"


class Fleet:
    """The workers' latest reports, summed in place (``stats`` is one object for the whole run, so a
    metrics callback holding it reads the current sum)."""

    def __init__(self, workers: int, speed: Speed, sinks: Sequence[SinkView], per_worker: Sequence[int]) -> None:
        """``sinks``: the run's sinks as the summary lists them; ``per_worker``: the indexes among them that
        are :class:`SinkTotal` (each worker's ``k``-th own sink adds to the ``k``-th of them)."""
        self.workers = workers
        self.speed = speed
        self.sinks = list(sinks)
        self.per_worker = list(per_worker)
        self.stats = RunStats(wall_start=time.time())
        self.reports: list[dict[str, Any] | None] = [None] * workers
        self.done = [False] * workers
        self.t0 = time.monotonic()
        self.ended_at: float | None = None

    def elapsed(self) -> float:
        return (self.ended_at or time.monotonic()) - self.t0

    def start(self, t0: float) -> None:
        self.t0 = t0

    def update(self, worker: int, rep: dict[str, Any]) -> None:
        self.reports[worker] = rep
        reps = [r for r in self.reports if r is not None]
        st = self.stats
        for f in ("events", "sessions_started", "sessions_ended"):
            setattr(st, f, sum(r[f] for r in reps))
        st.last_start_us = max(r["last_start_us"] for r in reps)
        st.sim_us = max(r["sim_us"] for r in reps)
        lag = st.lag
        lag.counts = np.sum([r["lag"][0] for r in reps], axis=0)
        lag.max = max(r["lag"][1] for r in reps)
        lag.last = max(r["lag"][2] for r in reps)
        lag.late_events = sum(r["lag"][3] for r in reps)
        for k, idx in enumerate(self.per_worker):
            total = self.sinks[idx]
            assert isinstance(total, SinkTotal)
            for j, f in enumerate(_SINK_FIELDS):
                setattr(total.stats, f, sum(r["sinks"][k][0][j] for r in reps if k < len(r["sinks"])))
            total.stats.notes = sorted({n for r in reps if k < len(r["sinks"]) for n in r["sinks"][k][1]})
        errors = [(i, r["error"]) for i, r in enumerate(self.reports) if r is not None and r["error"]]
        if errors and st.error is None:
            i, msg = errors[0]
            st.error = f"worker {i}: {msg}"
            st.input_error = bool(self.reports[i] and self.reports[i]["input_error"])  # type: ignore[index]
        if st.stopped_by is None:
            st.stopped_by = next((r["stopped_by"] for r in reps if r["stopped_by"]), None)

    def fail(self, message: str) -> None:
        if self.stats.error is None:
            self.stats.error = message

    def finish(self) -> None:
        self.ended_at = time.monotonic()
        self.stats.wall_s = self.elapsed()


NEVER = np.iinfo(np.int64).max


class OrderedMerge:
    """The workers' lines in the stream's total order. Each worker's lines arrive in order, with their keys
    (:func:`~emitter.sinks.pipe.order_keys`) and where each ends; a worker's *mark* is a time nothing still
    to come from it is earlier than. :meth:`pop` hands out every line earlier than the least mark, merged
    across workers: lines stay in the workers' buffers and are copied once, by a compiled gather."""

    def __init__(self, workers: int) -> None:
        self.keys: list[list[np.ndarray]] = [[] for _ in range(workers)]
        self.bufs: list[list[np.ndarray]] = [[] for _ in range(workers)]
        self.ends: list[list[np.ndarray]] = [[] for _ in range(workers)]
        self.mark = [-NEVER] * workers
        self.waiting = [0] * workers

    def add(self, worker: int, keys: np.ndarray, data: bytes, ends: np.ndarray | None = None) -> None:
        """A worker's next lines: ``data`` ends with a newline, ``ends`` are its newlines' offsets."""
        buf = np.frombuffer(data, np.uint8)
        if ends is None:
            ends = line_ends(buf)
        if len(ends) != keys.shape[1] or (len(ends) and ends[-1] != len(buf) - 1):
            raise ValueError(f"worker {worker}: {len(ends)} lines for {keys.shape[1]} keys")
        if not len(ends):
            return
        self.keys[worker].append(keys)
        self.bufs[worker].append(buf)
        self.ends[worker].append(ends)
        self.waiting[worker] += len(ends)
        self.mark[worker] = max(self.mark[worker], int(keys[0, -1]))

    def advance(self, worker: int, t_us: int) -> None:
        self.mark[worker] = max(self.mark[worker], t_us)

    def end(self, worker: int) -> None:
        self.mark[worker] = NEVER

    def behind(self) -> int:
        """The worker the merge waits for (the least mark)."""
        return min(range(len(self.mark)), key=self.mark.__getitem__)

    def pop(self) -> tuple[bytes | memoryview, int, int]:
        """Every line earlier than the least mark (all of them once every worker has ended), in order: the
        lines (a view, valid until the next pop), how many, and the first one's time (µs since the start).
        Only the chunks that leave are touched: a worker far ahead keeps the rest where it is."""
        safe = min(self.mark)
        picked: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for w in range(len(self.mark)):
            ks, bs, es = self.keys[w], self.bufs[w], self.ends[w]
            taken = 0
            while ks:
                k, b, e = ks[0], bs[0], es[0]
                cut = k.shape[1] if safe == NEVER or k[0, -1] < safe else int(np.searchsorted(k[0], safe, "left"))
                if not cut:
                    break
                if cut == k.shape[1]:
                    picked.append((k, b, e))
                    del ks[0], bs[0], es[0]
                else:
                    upto = int(e[cut - 1]) + 1
                    picked.append((k[:, :cut], b[:upto], e[:cut]))
                    ks[0], bs[0], es[0] = k[:, cut:], b[upto:], e[cut:] - upto
                taken += cut
                if cut < k.shape[1]:
                    break
            self.waiting[w] -= taken
        if not picked:
            return b"", 0, 0
        if len(picked) == 1:
            k, b, e = picked[0]
            return b.data, len(e), int(k[0, 0])
        keys = np.concatenate([k for k, _, _ in picked], axis=1)
        order = np.lexsort(keys[::-1])  # (lexsort's last key is its first)
        data = gather_lines([(b, e) for _, b, e in picked], order)
        return data, len(order), int(keys[0, order[0]])
