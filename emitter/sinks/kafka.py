"""The Kafka sink: one record per event, keyed by session, timestamped with event time, with aiokafka.

Records are partitioned like Kafka's default partitioner (murmur2 of the key), so a session stays in
order on one partition; they are appended straight into record batches (``create_batch`` /
``send_batch``), which costs far less per event than ``send()``. Memory is bounded by
``buffer.memory``: when that much is unacknowledged, ``on.full=block`` waits up to ``max.block.ms``
(then fails the run), ``on.full=drop`` discards the batch and counts it. Every count is reported.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from ..clients.kafka import KafkaSettings, authorization_text, parse_kafka_uri, route_client_logs, unreachable_text
from ..core.batch import SCHEMA_VERSION, EventBatch
from ..encode.render import render_strings
from ..errors import ConfigError
from .base import Sink, SinkError
from .basic import jsonl_of

__all__ = ["KafkaSink", "kafka_sink", "murmur2_partition"]

_M = np.uint32(0x5BD1E995)


def murmur2_partition(keys: npt.NDArray[np.uint8], partitions: int) -> npt.NDArray[np.int64]:
    """Kafka's default partition for each fixed-length key (rows of ``keys``), as Java clients compute it."""
    n, length = keys.shape
    assert length % 4 == 0
    words = np.ascontiguousarray(keys).view("<u4").astype(np.uint32)
    with np.errstate(over="ignore"):
        h = np.full(n, np.uint32(0x9747B28C) ^ np.uint32(length), np.uint32)
        for i in range(length // 4):
            k = words[:, i] * _M
            k ^= k >> np.uint32(24)
            k *= _M
            h *= _M
            h ^= k
        h ^= h >> np.uint32(13)
        h *= _M
        h ^= h >> np.uint32(15)
    return ((h & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).astype(np.int64)


class KafkaSink(Sink):
    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__()
        self.settings = settings
        self.uri = settings.describe()
        self._producer: Any = None
        self._partitions = 0
        self._pending: set[asyncio.Future[Any]] = set()
        self._inflight_bytes = 0
        self._room = asyncio.Event()
        # transactional.id: the open transaction's batches (future, events) and when it began
        self._txn: list[tuple[asyncio.Future[Any], int]] | None = None
        self._txn_t0 = 0.0
        self._txn_failed: BaseException | None = None  # a batch of the open transaction never reached the client
        self._error: BaseException | None = None
        self._overhead = 0  # bytes a record carries besides its value (key, headers, framing), for buffer.memory
        self._headers: list[tuple[str, bytes]] = []
        # per partition: the batch being filled [builder, events, bytes], full ones waiting for the client,
        # and the task handing them over
        self._open: dict[int, list[Any]] = {}
        self._full: dict[int, collections.deque[tuple[Any, int, int]]] = {}
        self._feeders: dict[int, asyncio.Future[None]] = {}

    def describe(self) -> str:
        s = self.settings
        return (
            f"{s.describe()} (acks={s.producer.get('acks')}, idempotence={s.producer.get('enable_idempotence')}, "
            f"on.full={s.on_full}, buffer.memory={s.buffer_memory})"
        )

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaConnectionError, KafkaError

        s = self.settings
        route_client_logs()
        deadline = time.monotonic() + s.startup_wait_ms / 1000
        kwargs = s.client_kwargs()
        while True:
            producer = AIOKafkaProducer(**kwargs)
            try:
                await producer.start()
                break
            except (KafkaConnectionError, KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                fatal, line = await unreachable_text(s, exc)
                if fatal or time.monotonic() >= deadline:
                    hint = "" if fatal or s.startup_wait_ms else " (add ?startup.wait.ms=30000 to wait for it)"
                    raise SinkError(line + hint) from None
                await asyncio.sleep(1.0)
        self._producer = producer
        try:
            if s.create_topic:
                await self._ensure_topic()
            parts = await producer.partitions_for(s.topic)
        except SinkError:
            await producer.stop()
            raise
        except KafkaError as exc:
            await producer.stop()
            denied = authorization_text(s, exc, "use", f"topic {s.topic!r}")
            raise SinkError(denied or f"kafka: topic {s.topic!r}: {type(exc).__name__}: {exc}") from None
        if not parts:
            await producer.stop()
            raise SinkError(f"kafka: topic {s.topic!r} does not exist and create.topic=false")
        self._partitions = len(parts)
        self._room.set()
        await super().start()

    async def _ensure_topic(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        s = self.settings
        kw = s.connection_kwargs()
        admin = AIOKafkaAdminClient(**kw)
        await admin.start()
        try:
            existing = await admin.list_topics()
            if s.topic not in existing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    # simulated time may run ahead of the wall clock: accept future timestamps on our topic
                    configs = {"message.timestamp.after.max.ms": str(2**63 - 1)}
                    if s.retention_ms is not None:
                        configs["retention.ms"] = str(s.retention_ms)
                    new = NewTopic(s.topic, s.partitions, s.replication_factor, topic_configs=configs)
                    resp = await admin.create_topics([new])
                    for _, code, msg, *_ in getattr(resp, "topic_errors", getattr(resp, "topic_error_codes", [])):
                        if code not in (0, 36):  # 36: already exists
                            denied = authorization_text(s, code, "create", f"topic {s.topic!r}")
                            raise SinkError(
                                denied or f"kafka: cannot create topic {s.topic!r}: error {code} {msg or ''}"
                            )
        finally:
            await admin.close()

    # ------------------------------------------------------------------ sending

    async def send(self, batch: EventBatch) -> None:
        if self._error is not None:
            raise SinkError(f"kafka: delivery failed: {type(self._error).__name__}: {self._error}")
        n = len(batch)
        if not n:
            return
        data = jsonl_of(batch)
        self.stats.sent += n
        size = len(data) + n * self._overhead
        if not await self._wait_room(size):
            self.stats.dropped += n
            return
        values = data.split(b"\n")
        sid, _ = render_strings(batch, ("session_id",))["session_id"]
        keys_m = sid.reshape(n, 16)
        part = murmur2_partition(keys_m, self._partitions)
        keys = sid.tobytes()
        ts_ms = ((batch.cols["t"] + batch.ctx.start_us) // 1000).tolist()
        if not self._headers:
            age_days = (time.time() * 1e6 - batch.ctx.start_us - int(batch.cols["t"][0])) / 86_400e6
            if age_days > 1 and self.settings.retention_ms is None:
                self._note_once(
                    f"event times are {age_days:.0f} days old: brokers delete records by their timestamps once "
                    "they are older than the topic's retention.ms; add retention.ms=-1 to the sink URI (applied "
                    "when the sink creates the topic) to keep them"
                )
            self._headers = [
                ("content-type", b"application/json"),
                ("emitter.schema_version", str(SCHEMA_VERSION).encode()),
                ("emitter.run_id", batch.ctx.run_id.encode()),
            ]
            self._overhead = 16 + sum(len(k) + len(v) + 2 for k, v in self._headers) + 16  # key; headers; varints
        headers = self._headers
        if self._transactional and self._txn is None:
            try:
                await self._producer.begin_transaction()
            except Exception as exc:  # noqa: BLE001 - fenced or the coordinator is gone: the sink fails
                self.stats.failed += n
                self._error = exc
                return
            self._txn, self._txn_t0 = [], time.monotonic()
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self._partitions + 1))
        for p in range(self._partitions):
            idx = order[bounds[p] : bounds[p + 1]].tolist()
            if idx:
                self._append(p, idx, values, keys, ts_ms, headers)
        if self._txn is not None and time.monotonic() - self._txn_t0 >= self.settings.transaction_interval_ms / 1000:
            await self._commit()

    def _append(self, p: int, idx: list[int], values: list[bytes], keys: bytes, ts_ms: list[int], headers: Any) -> None:
        """Append events ``idx`` to partition ``p``'s open batch (never waits): aiokafka takes one batch per
        partition at a time and holds the next until that one has gone out, so batches wait here, in
        order, and the partition's feeder hands them over one by one; meanwhile the open one grows, as a
        Java producer's batch does while the previous request is in flight."""
        open_ = self._open.get(p) or [self._producer.create_batch(), 0, 0]
        extra = self._overhead
        for i in idx:
            v = values[i]
            key = keys[i * 16 : i * 16 + 16]
            if open_[0].append(key=key, value=v, timestamp=ts_ms[i], headers=headers) is None:
                # full (a refusing builder is closed): queue it, start another; an empty one takes any record
                if open_[1]:
                    self._full.setdefault(p, collections.deque()).append((open_[0], open_[1], open_[2]))
                open_ = [self._producer.create_batch(), 0, 0]
                if open_[0].append(key=key, value=v, timestamp=ts_ms[i], headers=headers) is None:
                    self.stats.failed += 1
                    self._note_once(f"an event of {len(v)} bytes was refused by an empty batch")
                    open_ = [self._producer.create_batch(), 0, 0]
                    continue
            open_[1] += 1
            open_[2] += len(v) + extra
            self._inflight_bytes += len(v) + extra
        self._open[p] = open_
        if p not in self._feeders:
            task = asyncio.ensure_future(self._feed(p))
            self._feeders[p] = task

    async def _feed(self, p: int) -> None:
        """Hand partition ``p``'s waiting batches to the client in order, then the open one; ends when none
        is left (the next append starts another feeder)."""
        topic = self.settings.topic
        count = nbytes = 0  # the batch being handed over
        try:
            while True:
                if self._error is not None:  # the sink has failed: what waits is failed, not sent
                    self._fail_waiting(p, self._error)
                    return
                full = self._full.get(p)
                if full:
                    builder, count, nbytes = full.popleft()
                else:
                    tail = self._open.pop(p, None)
                    if tail is None or not tail[1]:
                        return
                    builder, count, nbytes = tail
                await self._ship(builder, topic, p, count, nbytes)  # (counts its own failures)
                count = nbytes = 0
        except Exception as exc:  # noqa: BLE001 - a feeder never dies silently: the sink fails, with the reason
            self._error = self._error or exc
            self.stats.failed += count
            self._inflight_bytes -= nbytes
            if count and self._txn is not None:
                self._txn_failed = self._txn_failed or exc
            self._fail_waiting(p, exc)
        finally:
            self._feeders.pop(p, None)
            if self._room_free():
                self._room.set()

    def _fail_waiting(self, p: int, why: BaseException) -> None:
        """Partition ``p``'s batches not yet handed over, counted failed (and out of the open transaction)."""
        waiting = list(self._full.pop(p, ()))
        tail = self._open.pop(p, None)
        if tail is not None and tail[1]:
            waiting.append((tail[0], tail[1], tail[2]))
        for _, count, nbytes in waiting:
            self.stats.failed += count
            self._inflight_bytes -= nbytes
        if waiting and self._txn is not None:
            self._txn_failed = self._txn_failed or why

    async def _drain_feeders(self, limit_s: float | None = None) -> bool:
        """Wait until every batch appended so far has been handed to the client (False: not within
        ``limit_s`` seconds)."""
        deadline = None if limit_s is None else time.monotonic() + limit_s
        while self._feeders:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(list(self._feeders.values()), timeout=left)
        return True

    def _room_free(self) -> bool:
        return self._inflight_bytes < self.settings.buffer_memory

    def _busy(self) -> bool:
        return bool(self._pending or self._feeders)

    @property
    def _transactional(self) -> bool:
        return "transactional_id" in self.settings.producer

    async def _commit(self) -> None:
        """End the open transaction: once every batch in it is written, commit; its events are acknowledged
        when the commit is (a read_committed consumer sees them then, all or none)."""
        if self._txn is None:
            return
        await self._drain_feeders()  # every batch of the transaction is with the client (or counted failed)
        # (no await from here to the detach: a send cannot slip a batch in between)
        txn, self._txn = self._txn, None
        lost, self._txn_failed = self._txn_failed, None
        count = sum(c for _, c in txn)
        futs = [f for f, _ in txn]
        if futs:
            await asyncio.wait(futs)
        failed = lost or next((f.exception() for f in futs if f.cancelled() or f.exception() is not None), None)
        try:
            if failed is None:
                await self._producer.commit_transaction()
                self.stats.acked += count
                return
            await self._producer.abort_transaction()
        except Exception as exc:  # noqa: BLE001 - the commit's fate is unknown: counted failed, the sink stops
            failed = failed or exc
        self.stats.failed += count
        self._note_once(f"a transaction was aborted: {type(failed).__name__}: {failed}")
        if self._error is None:
            self._error = failed

    def _note_once(self, text: str) -> None:
        if text not in self.stats.notes:
            self.stats.notes.append(text)

    async def _ship(self, builder: Any, topic: str, partition: int, count: int, nbytes: int) -> None:
        try:
            fut = await self._producer.send_batch(builder, topic, partition=partition)
        except asyncio.CancelledError:  # the sink is closing
            self.stats.failed += count
            self._inflight_bytes -= nbytes
            raise
        except Exception as exc:  # noqa: BLE001 - KafkaError or the client closed under us: the sink fails
            self.stats.failed += count
            self._inflight_bytes -= nbytes
            self._error = self._error or exc
            if self._txn is not None:  # the transaction lacks this batch: it must not commit
                self._txn_failed = self._txn_failed or exc
            return
        self._pending.add(fut)
        if self._txn is not None:
            self._txn.append((fut, count))

        def done(f: asyncio.Future[Any], count: int = count, nbytes: int = nbytes) -> None:
            self._pending.discard(f)
            self._inflight_bytes -= nbytes
            if self._transactional:  # counted when its transaction commits or aborts
                if not f.cancelled() and f.exception() is not None and self._error is None:
                    self._error = f.exception()
            elif f.cancelled():
                self.stats.failed += count
            elif f.exception() is not None:
                self.stats.failed += count
                exc = f.exception()
                if type(exc).__name__ == "InvalidTimestampError":
                    self._note_once(
                        "the broker refused event timestamps as out of range: Kafka refuses records more than "
                        "message.timestamp.after.max.ms (1 h by default) in the future; use a --start in the past, "
                        "a slower --speed, or raise that topic setting (topics this sink creates accept any time)"
                    )
                if self._error is None:
                    self._error = exc
            else:
                self.stats.acked += count
            if self._room_free():
                self._room.set()

        fut.add_done_callback(done)

    async def _wait_room(self, size: int) -> bool:
        s = self.settings
        if self._inflight_bytes + size <= s.buffer_memory or not self._busy():
            return True
        if s.on_full == "drop":
            self._note_once("buffer.memory full: batches dropped (on.full=drop)")
            return False
        deadline = time.monotonic() + s.max_block_ms / 1000
        while self._inflight_bytes + size > s.buffer_memory and self._busy():
            self._room.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise SinkError(
                    f"kafka: buffer.memory ({s.buffer_memory} bytes) stayed full for max.block.ms "
                    f"({s.max_block_ms} ms): the broker is too slow or unreachable"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), timeout=left)
        return True

    async def flush(self) -> None:
        if self._producer is None:
            return
        if not await self._drain_feeders(self.settings.close_timeout_ms / 1000):
            # the client takes nothing within close.timeout.ms (a partition without a leader, say): what is
            # still waiting is failed, and an open transaction aborts
            await self._cancel_feeders()
            self._txn_failed = self._txn_failed or TimeoutError("close.timeout.ms passed with batches not sent")
        if self._txn is not None:
            await self._commit()
        if self._pending:
            done, _ = await asyncio.wait(list(self._pending), timeout=self.settings.close_timeout_ms / 1000)
            del done

    async def _cancel_feeders(self) -> None:
        """Stop every feeder; the batch each was handing over and those waiting are counted failed."""
        feeders = list(self._feeders.values())
        for t in feeders:
            t.cancel()
        if feeders:
            await asyncio.wait(feeders)
        self._feeders.clear()
        for p in sorted({*self._full, *self._open}):
            self._fail_waiting(p, asyncio.CancelledError())

    async def _close(self) -> None:
        if self._producer is None:
            return
        await self._cancel_feeders()  # first: nothing more goes to a transaction being aborted
        if self._txn is not None:  # not flushed (a failure): nothing of it may become visible
            self.stats.failed += sum(c for _, c in self._txn)
            self._txn = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._producer.abort_transaction(), timeout=self.settings.close_timeout_ms / 1000
                )
        left = list(self._pending)
        for f in left:
            f.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._producer.stop(), timeout=self.settings.close_timeout_ms / 1000)
        self._producer = None
        if self.stats.pending:
            self._note_once(f"{self.stats.pending} events still unacknowledged at close.timeout.ms: counted failed")
            self.stats.failed += self.stats.pending


def kafka_sink(uri: str, options: dict[str, Any]) -> Sink:
    try:
        import aiokafka  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError.one("--sink", (uri,), 'the Kafka sink needs aiokafka: pip install -e ".[dev]"') from None
    return KafkaSink(parse_kafka_uri(uri))
