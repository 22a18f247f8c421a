"""Run a simulation into sinks: pull batches, wait for their wall-clock time, send, account, drain.

Never falls behind silently: every send records how late it was against the schedule (lag), and the
run's summary reports the worst and typical lag beside drops and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..core.batch import EventBatch
from ..core.limits import OutOfRange
from ..core.merge import EventSource
from ..encode.jsonl import encode_jsonl
from ..sinks.base import PipeClosed, Sink, SinkError, SinkStats
from .pacing import Clock, MonotonicClock, Speed

__all__ = ["LagStats", "Observer", "RunStats", "RunView", "Runner", "SinkView"]

CLOSED_PIPE = "closed pipe"  # what stopped a run whose standard output's reader went away
MAX_SLICE = 20_000  # events per send when catching up; keeps sends small enough to pace
MIN_SLEEP = 0.0005  # seconds; finer waits cost more than they gain
TICK = 0.001  # seconds; paced sends are at least this far apart unless a slice is full (each send has a fixed
# cost: sending whatever fell due during the last send, at once, made a busy loop of 7-event sends)
MAX_SLEEP = 0.25  # seconds; bounds how long a stop request or a progress line waits


class _Ahead:
    """The simulation's next batch, computed on a daemon thread of its own: the event loop awaits it as a
    future, and a stop may leave a long computation behind (the process can still exit; an executor's
    threads would be waited for at exit)."""

    def __init__(self, it: Iterator[EventBatch], loop: asyncio.AbstractEventLoop) -> None:
        self._it = it
        self._loop = loop
        self._asked: list[asyncio.Future[EventBatch | None]] = []
        self._wake = threading.Semaphore(0)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="emitter-simulate", daemon=True)
        self._thread.start()

    def next(self) -> asyncio.Future[EventBatch | None]:
        fut: asyncio.Future[EventBatch | None] = self._loop.create_future()
        self._asked.append(fut)
        self._wake.release()
        return fut

    def close(self) -> None:
        self._closed = True
        self._wake.release()

    def _work(self) -> None:
        while True:
            self._wake.acquire()
            if self._closed:
                return
            fut = self._asked.pop(0)
            try:
                res: EventBatch | None = next(self._it, None)
            except BaseException as exc:  # noqa: BLE001 - handed to the event loop, raised there
                self._deliver(fut, None, exc)
                return
            self._deliver(fut, res, None)

    def _deliver(
        self, fut: asyncio.Future[EventBatch | None], res: EventBatch | None, exc: BaseException | None
    ) -> None:
        def done() -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(res)

        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            self._loop.call_soon_threadsafe(done)


@dataclass
class LagStats:
    """How late sends were against the schedule, in seconds, weighted by events (log-spaced buckets 4.9 %
    wide from 0.1 ms to 1000 s: fine enough to tell a 4.5 ms p99 from a 5.5 ms one)."""

    edges: np.ndarray = field(default_factory=lambda: np.concatenate(([0.0], np.logspace(-4, 3, 337))))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(338, np.int64))
    max: float = 0.0
    last: float = 0.0
    late_events: int = 0  # events sent more than LATE seconds after their time
    LATE = 1.0

    def add(self, lag: float, events: int) -> None:
        lag = max(0.0, lag)
        self.last = lag
        self.max = max(self.max, lag)
        self.counts[int(np.searchsorted(self.edges, lag, side="right")) - 1] += events
        if lag > self.LATE:
            self.late_events += events

    def quantile(self, q: float) -> float:
        """The lag at or below which a share ``q`` of events was sent: the upper edge of the bucket that
        share falls in, never above the largest lag seen (so p50 <= p99 <= max always holds)."""
        total = int(self.counts.sum())
        if not total:
            return 0.0
        k = int(np.searchsorted(np.cumsum(self.counts), q * total, side="left"))
        return min(float(self.edges[min(k + 1, len(self.edges) - 1)]), self.max)


@dataclass
class RunStats:
    events: int = 0
    sessions_started: int = 0  # sessions whose first call was sent
    last_start_us: int = 0  # simulated time of the latest first call sent
    sessions_ended: int = 0
    sim_us: int = 0  # simulated time of the last event sent (µs since the start)
    wall_start: float = 0.0
    wall_s: float = 0.0
    lag: LagStats = field(default_factory=LagStats)
    stopped_by: str | None = None
    error: str | None = None
    input_error: bool = False  # the error is the input's (exit 2), not a destination's

    @property
    def active_sessions(self) -> int:
        return self.sessions_started - self.sessions_ended


class Observer(Protocol):
    """Sees every batch as it is sent (a run report's recorder): how late, when on the wall clock (seconds
    since the schedule's start), and the sinks' drop and failure totals so far; then the run's end."""

    def observe(self, part: EventBatch, lag: float, wall_s: float, dropped: int, failed: int) -> None: ...

    def finish(self, wall_s: float, dropped: int, failed: int) -> None: ...


class SinkView(Protocol):
    """What progress, summaries and metrics read of a sink (a sink, or the sum of one per worker)."""

    @property
    def stats(self) -> SinkStats: ...

    @property
    def name(self) -> str: ...

    def describe(self) -> str: ...


class RunView(Protocol):
    """What progress, summaries and metrics read of a run: one :class:`Runner`, or a fleet of workers'."""

    @property
    def stats(self) -> RunStats: ...

    @property
    def speed(self) -> Speed: ...

    @property
    def sinks(self) -> Sequence[SinkView]: ...

    def elapsed(self) -> float: ...


Ready = Callable[[], Awaitable[float | None]]


class Runner:
    """Drive ``sim`` into ``sinks`` at ``speed``; :meth:`request_stop` ends it cleanly.

    ``ready``, when given, is awaited once the first batch exists and the encoder is warm; it may return
    the clock time the schedule starts at (workers of one run start their schedules together)."""

    def __init__(
        self,
        sim: EventSource,
        sinks: list[Sink],
        speed: Speed,
        clock: Clock | None = None,
        observers: list[Observer] | None = None,
        ready: Ready | None = None,
    ) -> None:
        self.sim = sim
        self.ready = ready
        self.sinks = sinks
        self.speed = speed
        self.clock = clock or MonotonicClock()
        self.observers = list(observers or [])
        self.observer_errors: list[str] = []  # an observer that raised is dropped: the run goes on
        self.stats = RunStats()
        self._stop = asyncio.Event()
        self._t0 = 0.0
        self._next_send = 0.0  # paced: the wall time before which no send starts (see TICK)

    def request_stop(self, reason: str) -> None:
        if self.stats.stopped_by is None:
            self.stats.stopped_by = reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def elapsed(self) -> float:
        """Seconds on the clock since the schedule started."""
        return self.clock.now() - self._t0

    async def run(self) -> RunStats:
        """Start sinks, stream every batch, then flush and stop every sink (also on errors and stops)."""
        st = self.stats
        st.wall_start = time.time()
        self._t0 = self.clock.now()
        started: list[Sink] = []
        try:
            for s in self.sinks:
                await s.start()
                started.append(s)
            await self._stream()
        except PipeClosed:
            st.stopped_by = st.stopped_by or CLOSED_PIPE
        except SinkError as exc:
            st.error = str(exc)
        except OutOfRange as exc:  # the input asked for a run the clock cannot hold
            st.error = str(exc)
            st.input_error = True
        finally:
            for s in started:
                try:
                    await s.stop()
                except PipeClosed:
                    st.stopped_by = st.stopped_by or CLOSED_PIPE
                except SinkError as exc:
                    st.error = st.error or str(exc)
            st.wall_s = self.clock.now() - self._t0
            for o in self.observers:
                self._guard(o, o.finish, st.wall_s, *self._losses())
        return st

    def _losses(self) -> tuple[int, int]:
        return sum(s.stats.dropped for s in self.sinks), sum(s.stats.failed for s in self.sinks)

    async def _stream(self) -> None:
        ahead = _Ahead(self.sim.batches(), asyncio.get_running_loop())
        nxt = ahead.next()
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
        first = True
        try:
            while not self._stop.is_set():
                # a stop does not wait for a block that takes long to compute: the thread is left behind
                await asyncio.wait([nxt, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    break
                batch = nxt.result()
                if batch is None:
                    break
                nxt = ahead.next()  # generate ahead
                if first:
                    first = False
                    # the schedule starts once the first events exist and the encoder is warm: start-up
                    # work (imports, compiled code loading) is not counted as lag
                    await asyncio.to_thread(encode_jsonl, batch.slice(0, 1))
                    t0 = await self.ready() if self.ready is not None else None
                    self._t0 = self.clock.now() if t0 is None else t0
                if self.speed.paced:
                    await self._paced(batch)
                else:
                    for i in range(0, len(batch), MAX_SLICE):
                        await self._send(batch.slice(i, min(len(batch), i + MAX_SLICE)), 0.0)
                        if self._stop.is_set():
                            break
        finally:
            stopping.cancel()
            ahead.close()

    def _due(self, t_us: int) -> float:
        assert self.speed.factor is not None
        return self._t0 + t_us / 1e6 / self.speed.factor

    async def _paced(self, batch: EventBatch) -> None:
        assert self.speed.factor is not None
        t = batch.cols["t"]
        n = len(batch)
        i = 0
        while i < n and not self._stop.is_set():
            now = self.clock.now()
            now_us = (now - self._t0) * self.speed.factor * 1e6
            j = int(np.searchsorted(t, now_us + 1.0, side="right"))  # 1 µs: rounding never stalls us
            if j > i and (now >= self._next_send or j - i >= MAX_SLICE):
                j = min(j, i + MAX_SLICE)
                self._next_send = now + TICK
                await self._send(batch.slice(i, j), now - self._due(int(t[i])))
                i = j
                continue
            wait = max(self._due(int(t[i])), self._next_send) - now
            for s in self.sinks:  # nothing before event i is still to come (a --workers merge moves on)
                await s.advance(int(t[i]))
            await self._sleep(min(max(wait, MIN_SLEEP), MAX_SLEEP))

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock; a real clock wakes early when a stop is requested."""
        if isinstance(self.clock, MonotonicClock):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        else:
            await self.clock.sleep(seconds)

    async def _send(self, part: EventBatch, lag: float) -> None:
        if not len(part):
            return
        if len(self.sinks) == 1:
            await self.sinks[0].send(part)
        else:
            await asyncio.gather(*(s.send(part) for s in self.sinks))
        st = self.stats
        st.events += len(part)
        st.sessions_ended += int(np.count_nonzero(part.cols["end"]))
        first = (part.cols["seq"] == 0) & (part.cols["attempt"] == 1)
        n_first = int(np.count_nonzero(first))
        if n_first:
            st.sessions_started += n_first
            st.last_start_us = int(part.cols["t"][first][-1])
        st.sim_us = int(part.cols["t"][-1])
        if self.speed.paced:
            st.lag.add(lag, len(part))
        if self.observers:
            wall = self.clock.now() - self._t0
            for o in list(self.observers):
                self._guard(o, o.observe, part, lag, wall, *self._losses())

    def _guard(self, o: Observer, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001 - an observer (a report) never stops the stream
            self.observers.remove(o)
            self.observer_errors.append(f"{type(exc).__name__}: {exc}")
