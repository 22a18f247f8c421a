"""Kafka readers for the live validator: (key, value) pairs in bulk, from aiokafka or confluent-kafka.

confluent-kafka (librdkafka) reads for a consumer group: ``bench/bench_validator.py`` shows it reads
several times faster than aiokafka, whose per-record Python (headers included) caps ingest.
``kafka://HOST:PORT/TOPIC?client=aiokafka`` picks the pure-Python client; :mod:`.rawkafka` is the
reader without a group (see :func:`emitter.validate.live.open_reader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any, Protocol

from ..clients.kafka import AUTHORIZATION_CODES, KafkaSettings, authorization_text, unreachable_text
from ..errors import EmitterError

__all__ = ["KEY_STEP", "AiokafkaReader", "ConfluentReader", "Reader"]

Pair = tuple[bytes | None, bytes | None]


KEY_STEP = 64  # one record in KEY_STEP has its key compared with its session_id


class Reader(Protocol):
    async def start(self) -> None: ...
    async def poll(self, max_records: int, timeout_s: float) -> list[Pair]: ...
    async def poll_sampled(self, max_records: int, timeout_s: float) -> tuple[list[bytes | None], list[Pair]]: ...
    def ready(self) -> bool: ...
    async def stop(self) -> None: ...


class _Sampled:
    """``poll_sampled`` for readers that produce pairs: every value, and one (key, value) in KEY_STEP."""

    c: Any

    def ready(self) -> bool:
        """Partitions are assigned (a consumer group may take seconds to join): idleness counts from then."""
        try:
            return bool(self.c.assignment())
        except Exception:  # noqa: BLE001 - a closed or failed consumer: nothing to wait for
            return True

    def partitions(self) -> list[int]:
        """The partitions assigned to this reader now (a consumer group's share)."""
        try:
            return sorted(tp.partition for tp in self.c.assignment())
        except Exception:  # noqa: BLE001 - a closed or failed consumer has none
            return []

    async def poll(self, max_records: int, timeout_s: float) -> list[Pair]:
        raise NotImplementedError

    async def poll_sampled(self, max_records: int, timeout_s: float) -> tuple[list[bytes | None], list[Pair]]:
        pairs = await self.poll(max_records, timeout_s)
        return [v for _, v in pairs], pairs[::KEY_STEP]


class AiokafkaReader(_Sampled):
    def __init__(self, s: KafkaSettings, group: str | None, from_beginning: bool) -> None:
        from aiokafka import AIOKafkaConsumer

        kw = s.connection_kwargs()
        self.s = s
        self.c = AIOKafkaConsumer(
            s.topic,
            group_id=group,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=group is not None,
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=64 << 20,
            **kw,
        )

    async def start(self) -> None:
        from aiokafka.errors import KafkaError

        try:
            await self.c.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await self.c.stop()
            raise EmitterError((await unreachable_text(self.s, exc, "read", f"topic {self.s.topic!r}"))[1]) from None

    async def poll(self, max_records: int, timeout_s: float) -> list[Pair]:
        got = await self.c.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [(r.key, r.value) for recs in got.values() for r in recs]

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.c.stop()


class ConfluentReader(_Sampled):
    def __init__(self, s: KafkaSettings, group: str | None, from_beginning: bool) -> None:
        self.s = s
        self.group = group
        conf: dict[str, Any] = {
            "bootstrap.servers": ",".join(s.bootstrap),
            "group.id": group or f"emitter-validate-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": group is not None,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 8 << 20,
            "queued.max.messages.kbytes": 256 << 10,
            "enable.partition.eof": False,
            "socket.timeout.ms": 10_000,
        }
        p = s.producer
        for ours, theirs in (
            ("security_protocol", "security.protocol"),
            ("sasl_mechanism", "sasl.mechanism"),
            ("sasl_plain_username", "sasl.username"),
            ("sasl_plain_password", "sasl.password"),
        ):
            if ours in p:
                conf[theirs] = p[ours]
        conf.update(
            {
                k: v
                for k, v in s.ssl.items()
                if k in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password")
            }
        )
        self.conf = conf
        self.c: Any = None
        self.from_beginning = from_beginning

    async def start(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

        # librdkafka's own log lines would reach stderr: the failures that matter come back as one line instead
        quiet = logging.getLogger("emitter.librdkafka")
        quiet.propagate = False
        quiet.addHandler(logging.NullHandler())
        self.c = Consumer(self.conf, logger=quiet)
        md = None
        for attempt in range(10):  # ten seconds; after the first, a failure that waiting cannot cure ends it
            try:
                md = await asyncio.to_thread(self.c.list_topics, self.s.topic, 1.0)
                break
            except KafkaException as exc:
                fatal, line = await unreachable_text(self.s, exc) if attempt in (0, 9) else (False, "")
                if fatal or attempt == 9:
                    self.c.close()
                    raise EmitterError(line) from None
        assert md is not None
        t = md.topics.get(self.s.topic)
        if t is not None and t.error is not None:
            denied = authorization_text(self.s, t.error.code(), "read", f"topic {self.s.topic!r}")
            if denied:
                self.c.close()
                raise EmitterError(denied)
        if self.group is not None:
            self.c.subscribe([self.s.topic])
        elif t is None or t.error is not None or not t.partitions:
            self.c.subscribe([self.s.topic])  # not there yet: wait for it
        else:  # no group: read every partition, no coordination, nothing committed
            start = OFFSET_BEGINNING if self.from_beginning else OFFSET_END
            self.c.assign([TopicPartition(self.s.topic, p, start) for p in sorted(t.partitions)])

    async def poll(self, max_records: int, timeout_s: float) -> list[Pair]:
        msgs = await asyncio.to_thread(self.c.consume, max_records, timeout_s)
        for m in msgs:
            err = m.error()
            if err is not None and err.code() in AUTHORIZATION_CODES:  # an ACL denial does not pass by waiting
                what = "join consumer group" if err.code() == 30 else "read"
                res = f"{self.group!r}" if err.code() == 30 else f"topic {self.s.topic!r}"
                raise EmitterError(authorization_text(self.s, err.code(), what, res) or str(err))
        return [(m.key(), m.value()) for m in msgs if m.error() is None]

    async def stop(self) -> None:
        if self.c is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.c.close)
            self.c = None
