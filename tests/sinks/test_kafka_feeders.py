"""The Kafka sink's batch feeders against an in-memory stand-in for aiokafka's producer (a unit test of the
sink's own bookkeeping; the real broker is in tests/integration).

The stand-in keeps what aiokafka's accumulator does that matters here: a partition takes one batch at a time
(``send_batch`` waits while that partition's slot is taken, up to a timeout, then raises), a builder refuses
a record once full, and transactions are begun, committed or aborted. Every test ends with each event
counted exactly once: acknowledged, failed or dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emitter.clients.kafka import parse_kafka_uri
from emitter.core.batch import EventBatch
from emitter.sinks.kafka import KafkaSink

from ..helpers import all_events, ecommerce, simulate


class FakeBuilder:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.records: list[bytes] = []
        self.closed = False

    def append(self, *, key: bytes, value: bytes, timestamp: int, headers: Any) -> object | None:
        if self.closed or (self.records and self.size + len(value) > self.limit):
            self.closed = True  # (aiokafka's builder closes itself when it refuses)
            return None
        self.records.append(value)
        self.size += len(value)
        return object()


class FakeProducer:
    """``slots[p]`` open: partition p takes a batch; closed, ``send_batch`` waits (``wait_s``, then raises)."""

    def __init__(self, partitions: int, batch_bytes: int = 4000, wait_s: float = 5.0) -> None:
        self.batch_bytes = batch_bytes
        self.wait_s = wait_s
        self.slots = {p: asyncio.Event() for p in range(partitions)}
        for e in self.slots.values():
            e.set()
        self.shipped: list[tuple[int, list[bytes]]] = []
        self.calls: list[str] = []
        self.fail_next: BaseException | None = None
        self.futures: list[asyncio.Future[Any]] = []

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.batch_bytes)

    async def send_batch(self, builder: FakeBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        try:
            await asyncio.wait_for(self.slots[partition].wait(), self.wait_s)
        except TimeoutError:
            raise TimeoutError("the partition took no batch") from None
        self.calls.append(f"ship {partition}")
        self.shipped.append((partition, list(builder.records)))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        self.futures.append(fut)
        return fut

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")

    async def stop(self) -> None:
        self.calls.append("stop")


def _sink(query: str = "", partitions: int = 3, **fake: Any) -> tuple[KafkaSink, FakeProducer]:
    sink = KafkaSink(parse_kafka_uri(f"kafka://127.0.0.1:9/t?{query}"))
    prod = FakeProducer(partitions, **fake)
    sink._producer = prod
    sink._partitions = partitions
    sink._room.set()
    sink._started = True
    return sink, prod


@pytest.fixture(scope="module")
def events() -> EventBatch:
    return all_events(simulate(ecommerce(), seed=5))


def _parts(events: EventBatch, k: int = 6) -> list[EventBatch]:
    n = len(events) // k
    return [events.slice(i * n, (i + 1) * n) for i in range(k)]


def _every_event_once(sink: KafkaSink) -> None:
    st = sink.stats
    assert st.acked + st.failed + st.dropped == st.sent, (st.sent, st.acked, st.failed, st.dropped)
    assert sink._inflight_bytes == 0 and not sink._feeders and not sink._open and not sink._full


@pytest.mark.asyncio
async def test_batches_leave_in_append_order_per_partition_and_none_is_left_behind(events: EventBatch) -> None:
    sink, prod = _sink()
    for e in prod.slots.values():
        e.clear()  # every partition busy: batches queue in the sink while sends go on
    parts = _parts(events)
    for part in parts:
        await sink.send(part)
    assert not prod.shipped and sink._full, "with the slots taken nothing can have gone out"
    for e in prod.slots.values():
        e.set()
    await sink.stop()
    _every_event_once(sink)
    assert sink.stats.acked == sink.stats.sent == sum(len(p) for p in parts)
    sent = [v for part in parts for v in bytes(part_jsonl(part)).split(b"\n") if v]
    for p in prod.slots:  # each partition's records in the order they were sent
        got = [r for q, recs in prod.shipped if q == p for r in recs]
        want_p = [v for v in sent if v in set(got)]
        assert got == want_p
    assert sorted(r for _, recs in prod.shipped for r in recs) == sorted(sent)


def part_jsonl(part: EventBatch) -> bytes:
    from emitter.sinks.basic import jsonl_of

    return jsonl_of(part)


@pytest.mark.asyncio
async def test_a_flush_that_cannot_hand_batches_over_ends_at_close_timeout(events: EventBatch) -> None:
    sink, prod = _sink("close.timeout.ms=200", wait_s=3600)
    for e in prod.slots.values():
        e.clear()  # no partition ever takes a batch (no leader)
    for part in _parts(events):
        await sink.send(part)
    t0 = asyncio.get_running_loop().time()
    await asyncio.wait_for(sink.stop(), 5)
    assert asyncio.get_running_loop().time() - t0 < 2
    _every_event_once(sink)
    assert sink.stats.failed == sink.stats.sent and not sink.stats.acked
    assert "stop" in prod.calls


@pytest.mark.asyncio
async def test_after_a_failed_batch_the_waiting_ones_fail_without_being_sent(events: EventBatch) -> None:
    sink, prod = _sink(partitions=1, batch_bytes=2000)
    prod.slots[0].clear()
    for part in _parts(events):
        await sink.send(part)
    waiting = len(sink._full[0])
    assert waiting > 3
    prod.fail_next = RuntimeError("broker says no")
    prod.slots[0].set()
    await sink._drain_feeders()
    assert not prod.shipped, "nothing after the failure may be sent"
    with pytest.raises(Exception, match="broker says no"):
        await sink.send(events.slice(0, 5))
    await sink.stop()
    _every_event_once(sink)
    assert sink.stats.failed == sink.stats.sent  # (the refused send is not counted as sent)


@pytest.mark.asyncio
async def test_a_transaction_missing_a_batch_aborts_instead_of_committing(events: EventBatch) -> None:
    sink, prod = _sink("transactional.id=t1&transaction.interval.ms=3600000", partitions=2)
    parts = _parts(events, 4)
    await sink.send(parts[0])
    prod.fail_next = RuntimeError("send failed")  # the next batch handed over fails; the others go out
    await sink.send(parts[1])
    await sink.stop()
    assert prod.calls.count("begin") == 1
    assert "abort" in prod.calls and "commit" not in prod.calls, prod.calls
    _every_event_once(sink)
    assert sink.stats.acked == 0 and sink.stats.failed == sink.stats.sent


@pytest.mark.asyncio
async def test_a_transaction_whose_batches_all_went_out_commits(events: EventBatch) -> None:
    sink, prod = _sink("transactional.id=t1&transaction.interval.ms=3600000", partitions=2)
    for part in _parts(events, 3):
        await sink.send(part)
    await sink.stop()
    assert prod.calls[0] == "begin" and "commit" in prod.calls and "abort" not in prod.calls, prod.calls
    _every_event_once(sink)
    assert sink.stats.acked == sink.stats.sent


@pytest.mark.asyncio
async def test_closing_cancels_feeders_before_aborting_the_transaction(events: EventBatch) -> None:
    sink, prod = _sink("transactional.id=t1&transaction.interval.ms=3600000", partitions=2, wait_s=3600)
    for e in prod.slots.values():
        e.clear()
    await sink.send(events.slice(0, 400))
    assert sink._feeders
    await sink._close()  # (a failed run: no flush)
    assert prod.calls[-2:] == ["abort", "stop"], prod.calls
    assert not any(c.startswith("ship") for c in prod.calls)
    _every_event_once(sink)
    assert sink.stats.failed == sink.stats.sent


@pytest.mark.asyncio
async def test_a_cancelled_stop_still_closes_and_counts(events: EventBatch) -> None:
    sink, prod = _sink(wait_s=3600)
    for e in prod.slots.values():
        e.clear()
    await sink.send(events.slice(0, 400))
    task = asyncio.ensure_future(sink.stop())
    await asyncio.sleep(0.05)  # inside the flush, waiting for the feeders
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "stop" in prod.calls, "the producer must be stopped even when the flush is cancelled"
    _every_event_once(sink)
    assert sink.stats.failed == sink.stats.sent


@pytest.mark.asyncio
async def test_a_feeder_that_raises_fails_the_sink_instead_of_dying_silently(
    events: EventBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, _ = _sink(partitions=1)

    async def broken(*args: Any) -> None:
        raise ValueError("a bug in the feeder")

    monkeypatch.setattr(sink, "_ship", broken)
    await sink.send(events.slice(0, 300))
    await sink._drain_feeders()
    assert isinstance(sink._error, ValueError)
    await sink.stop()
    _every_event_once(sink)
    assert sink.stats.failed == 300


@pytest.mark.asyncio
async def test_an_empty_batch_that_refuses_a_record_does_not_poison_the_partition(events: EventBatch) -> None:
    sink, prod = _sink(partitions=1)
    real = prod.create_batch
    first = [True]

    def create() -> FakeBuilder:
        b = real()
        if first[0]:  # the first builder refuses everything (closed)
            first[0] = False
            b.closed = True
        return b

    prod.create_batch = create  # type: ignore[method-assign]
    await sink.send(events.slice(0, 50))
    await sink.stop()
    _every_event_once(sink)
    assert sink.stats.acked == 50 and sink.stats.failed == 0
