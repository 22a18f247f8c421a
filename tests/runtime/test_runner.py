"""The runtime: pacing on a clock, identical output at every speed, honest lag, clean stops."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from emitter.core.batch import EventBatch
from emitter.core.load import Load
from emitter.runtime.pacing import Clock, Speed, parse_speed
from emitter.runtime.runner import Runner
from emitter.sinks.base import Sink, SinkError, open_sink
from emitter.sinks.basic import MemorySink

from ..helpers import ecommerce, simulate


class FakeClock(Clock):
    """Virtual wall time: sleeping advances it at once, so pacing is tested without waiting."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


class RecordingSink(MemorySink):
    """Remembers the clock's time at every send."""

    def __init__(self, clock: Clock, cost: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.cost = cost
        self.sent_at: list[tuple[float, EventBatch]] = []

    async def send(self, batch: EventBatch) -> None:
        self.sent_at.append((self.clock.now(), batch))
        if self.cost and isinstance(self.clock, FakeClock):
            self.clock.t += self.cost * len(batch)
        await super().send(batch)


def run(sim, sinks, speed, clock=None):  # type: ignore[no-untyped-def]
    runner = Runner(sim, sinks, speed, clock)
    asyncio.run(runner.run())
    return runner


def test_output_is_byte_identical_at_every_speed() -> None:
    wf = ecommerce()
    outs = []
    for speed in (Speed(None), Speed(1.0), Speed(60.0)):
        sink = MemorySink()
        run(simulate(wf, 12, Load(sessions=300)), [sink], speed, FakeClock())
        outs.append(sink.jsonl())
    real = MemorySink()  # and on the real clock, accelerated enough to finish quickly
    run(simulate(wf, 12, Load(sessions=300)), [real], Speed(200_000.0))
    outs.append(real.jsonl())
    assert outs[0] and all(o == outs[0] for o in outs)


def test_paced_sends_happen_on_schedule() -> None:
    clock = FakeClock()
    sink = RecordingSink(clock)
    r = run(simulate(ecommerce(), 3, Load(sessions=100)), [sink], Speed(10.0), clock)
    t0 = r._t0
    for wall, b in sink.sent_at:
        due_first = t0 + b.cols["t"][0] / 1e6 / 10.0
        due_last = t0 + b.cols["t"][-1] / 1e6 / 10.0
        assert wall >= due_last - 1e-9  # nothing is sent early
        assert wall - due_first < 0.26  # and nothing waits past one pacing step
    assert r.stats.lag.max < 0.26
    assert r.stats.lag.late_events == 0
    # the wall time spans the simulated time / speed
    span = sink.batches[-1].cols["t"][-1] / 1e6
    assert abs(r.stats.wall_s - span / 10.0) < 0.5


def test_a_slow_sink_shows_up_as_lag() -> None:
    clock = FakeClock()
    sink = RecordingSink(clock, cost=0.05)  # 50 ms of wall per event: far slower than the schedule
    r = run(simulate(ecommerce(), 3, Load(sessions=60, arrival_rate=50)), [sink], Speed(1.0), clock)
    assert r.stats.lag.max > 1.0
    assert r.stats.lag.late_events > 0
    assert r.stats.events == sink.stats.acked  # late, never lost


def test_stop_flushes_and_stops_every_sink() -> None:
    class Stopper(MemorySink):
        def __init__(self, runner_box: list[Runner]) -> None:
            super().__init__()
            self.box = runner_box

        async def send(self, batch: EventBatch) -> None:
            await super().send(batch)
            if self.stats.sent > 500:
                self.box[0].request_stop("test")

    box: list[Runner] = []
    a, b = MemorySink(), None
    b = Stopper(box)
    runner = Runner(simulate(ecommerce(), 3, Load()), [a, b], Speed(None))  # unbounded
    box.append(runner)
    st = asyncio.run(runner.run())
    assert st.stopped_by == "test"
    assert a.flushed == 1 and b.flushed == 1 and a._stopped and b._stopped
    assert a.stats.acked == st.events == b.stats.acked


def test_a_failing_sink_ends_the_run_with_an_error() -> None:
    class Broken(Sink):
        async def send(self, batch: EventBatch) -> None:
            raise SinkError("broken: destination went away")

    ok = MemorySink()
    runner = Runner(simulate(ecommerce(), 3, Load(sessions=50)), [ok, Broken()], Speed(None))
    st = asyncio.run(runner.run())
    assert st.error == "broken: destination went away"
    assert ok._stopped


def test_stop_is_idempotent() -> None:
    async def go() -> None:
        s = MemorySink()
        await s.start()
        await s.stop()
        await s.stop()
        assert s.flushed == 1
        with pytest.raises(SinkError):
            await s.send(next(simulate(ecommerce(), 1, Load(sessions=2)).batches()))

    asyncio.run(go())


@pytest.mark.parametrize(("text", "factor"), [("max", None), ("realtime", 1.0), ("60", 60.0), ("2.5x", 2.5)])
def test_parse_speed(text: str, factor: float | None) -> None:
    assert parse_speed(text).factor == factor


@pytest.mark.parametrize("text", ["fast", "0", "-3", "nan"])
def test_parse_speed_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_speed(text)


def test_unknown_sink_is_a_clear_error() -> None:
    from emitter.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown sink 'ftp://x'"):
        open_sink("ftp://x")


def test_lag_quantiles_never_exceed_the_max() -> None:
    """A summary once printed 'p99 0.133 s, max 0.115 s': the bucket's edge, above anything seen."""
    from emitter.runtime.runner import LagStats

    lag = LagStats()
    lag.add(0.115, 1)
    assert lag.quantile(0.5) <= lag.quantile(0.99) <= lag.max == 0.115
    rng = np.random.default_rng(3)
    xs, ws = rng.exponential(0.01, 5000), rng.integers(1, 50, 5000)
    lag = LagStats()
    for x, w in zip(xs, ws, strict=True):
        lag.add(float(x), int(w))
    order = np.argsort(xs)
    cum = np.cumsum(ws[order])
    for q in (0.5, 0.99):
        true = float(xs[order][np.searchsorted(cum, q * cum[-1])])
        # an upper bucket edge: at most one bucket (10^(7/336), about 1.049x) above the true weighted quantile
        assert true <= lag.quantile(q) <= true * 1.05
    assert lag.quantile(0.5) <= lag.quantile(0.99) <= lag.max


def test_an_observer_that_raises_is_dropped_and_the_stream_goes_on() -> None:
    """A run report's recorder failing mid-run costs the report, never the events."""

    class Seen:
        def __init__(self, fail_after: int | None) -> None:
            self.fail_after, self.batches, self.finished = fail_after, 0, None

        def observe(self, part: EventBatch, lag: float, wall_s: float, dropped: int, failed: int) -> None:
            if self.fail_after is not None and self.batches >= self.fail_after:
                raise ValueError("boom")
            self.batches += 1

        def finish(self, wall_s: float, dropped: int, failed: int) -> None:
            self.finished = (dropped, failed)

    good, bad = Seen(None), Seen(1)
    sink = MemorySink()
    runner = Runner(simulate(ecommerce(), 5, Load(sessions=6000)), [sink], Speed(None), FakeClock(), [bad, good])
    asyncio.run(runner.run())
    st = runner.stats
    assert st.error is None and st.events == sink.stats.acked > 0
    assert runner.observer_errors == ["ValueError: boom"]
    assert bad.batches == 1 and bad.finished is None  # dropped at its first failure
    assert good.batches > 1 and good.finished == (0, 0)
