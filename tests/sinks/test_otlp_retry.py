"""The OTLP sink's retries, against a scripted transport and a fake clock (the real receiver killed and
restarted: tests/integration/test_otelcol_restart.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

from emitter.encode.otlp import OtlpRequest
from emitter.sinks.otlp import OtlpSink, _Outcome, _Transport, parse_otlp_uri

DOWN = _Outcome(False, True, "UNAVAILABLE: connection refused")
OK = _Outcome(True)


class Script(_Transport):
    """Answers each request body from a list of outcomes (then OK); the startup probe (empty body) is OK."""

    def __init__(self, outcomes: dict[bytes, list[_Outcome]], default: _Outcome = OK) -> None:
        self.outcomes, self.default = outcomes, default
        self.attempts: Counter[bytes] = Counter()

    async def export(self, body: bytes) -> _Outcome:
        if not body:
            return OK
        self.attempts[body] += 1
        todo = self.outcomes.get(body)
        return todo.pop(0) if todo else self.default


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s
        await asyncio.sleep(0)


def make(transport: Script, query: str = "") -> tuple[OtlpSink, Clock]:
    s = parse_otlp_uri(f"otlp://127.0.0.1:1{query}", {})
    s.senders = 1  # one request at a time: the fake clock is the sender's alone
    sink = OtlpSink(s)
    sink.transport = transport
    clock = Clock()
    sink._now, sink._sleep = clock.now, clock.sleep
    return sink, clock


def req(i: int) -> OtlpRequest:
    return OtlpRequest(f"r{i}".encode(), 10, 30)


async def deliver(sink: OtlpSink, n: int) -> None:
    await sink.start()
    for i in range(n):
        await sink._queue.put(req(i))
    await sink.stop()


def test_a_request_retried_through_an_outage_is_acknowledged_once() -> None:
    t = Script({b"r0": [DOWN, DOWN, DOWN]})
    sink, clock = make(t)
    asyncio.run(deliver(sink, 3))
    assert t.attempts == {b"r0": 4, b"r1": 1, b"r2": 1}
    assert (sink.stats.acked, sink.stats.failed, sink.spans_acked) == (30, 0, 90)
    assert clock.t == 0.5 + 1 + 2
    assert sink.stats.notes == [
        "1 request retried (3 retries, the slowest through 3.5 s after its first try; "
        "last retryable error: UNAVAILABLE: connection refused)",
        "90 of 0 spans acknowledged",
    ]


def test_after_a_request_failed_for_good_the_queued_ones_are_tried_once() -> None:
    """A receiver that stays down: the first request uses its retry window (30 s), each one queued behind it
    then gets one attempt, not a window of its own (which made the 64 requests a full queue holds take
    64 x 23.5 s / 2 senders, 12.5 minutes, to fail at the end of a run)."""
    t = Script({}, default=DOWN)
    sink, clock = make(t, "?timeout=1000")
    asyncio.run(deliver(sink, 10))
    assert t.attempts[b"r0"] == 7  # at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 23.5 s: 8 s more passes 30 s
    assert all(t.attempts[req(i).body] == 1 for i in range(1, 10))
    assert clock.t == 23.5
    assert (sink.stats.acked, sink.stats.failed) == (0, 100)
    assert sink._error == "otlp: export failed: UNAVAILABLE: connection refused"
    assert "export failed: UNAVAILABLE: connection refused (not retried: an earlier request had failed for good)" in (
        sink.stats.notes
    )


def test_an_acknowledged_request_brings_the_retries_back() -> None:
    t = Script({b"r0": [DOWN] * 7, b"r2": [DOWN, DOWN]})
    sink, _ = make(t)
    asyncio.run(deliver(sink, 3))
    assert t.attempts == {b"r0": 7, b"r1": 1, b"r2": 3}
    assert (sink.stats.acked, sink.stats.failed) == (20, 10)
