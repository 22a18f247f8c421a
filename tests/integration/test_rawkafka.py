"""Against the real broker: the raw reader (client=raw) returns exactly what aiokafka's consumer does."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import pytest

from emitter.clients.kafka import parse_kafka_uri
from emitter.errors import EmitterError
from emitter.validate.rawkafka import RawReader

from ..conftest import WORKFLOWS, run_cli
from .kafka_util import read_topic

pytestmark = pytest.mark.kafka
ECOM = str(WORKFLOWS / "ecommerce.yaml")
BASE = ["--seed", "3", "--start", "2026-01-01T00:00:00Z", "--speed", "max", "--progress", "off"]

Rec = tuple[int, int, bytes | None, bytes | None]  # partition, offset, key, value


def emit(bootstrap: str, topic: str, sessions: int = 3000, props: str = "") -> None:
    proc = run_cli(
        "run",
        ECOM,
        *BASE,
        "--sessions",
        str(sessions),
        "--sink",
        f"kafka://{bootstrap}/{topic}?partitions=4&retention.ms=-1{props}",
    )
    assert proc.returncode == 0, proc.stderr.decode()


async def _read_raw(bootstrap: str, topic: str, idle: float = 2.0, **kw: Any) -> list[Rec]:
    r = RawReader(parse_kafka_uri(f"kafka://{bootstrap}/{topic}", defaults={}), kw.pop("from_beginning", True), **kw)
    await r.start()
    out: list[Rec] = []
    try:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while loop.time() - last < idle:
            b = await r.poll_batch(20_000, 0.3)
            if len(b):
                out.extend(zip(b.partition.tolist(), b.offset.tolist(), b.keys(), b.values(), strict=True))
                last = loop.time()
    finally:
        await r.stop()
    return out


def read_raw(bootstrap: str, topic: str, idle: float = 2.0, **kw: Any) -> list[Rec]:
    return asyncio.run(_read_raw(bootstrap, topic, idle, **kw))


def reference(bootstrap: str, topic: str) -> list[Rec]:
    return [(r.partition, r.offset, r.key, r.value) for r in read_topic(bootstrap, topic, idle=2)]


def by_partition(recs: list[Rec]) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = defaultdict(list)
    for r in recs:
        out[r[0]].append(r)
    return dict(out)


def assert_same(got: list[Rec], ref: list[Rec]) -> None:
    assert len(got) == len(ref)
    assert sorted(got, key=repr) == sorted(ref, key=repr)  # the same multiset of (partition, offset, key, value)
    assert by_partition(got) == by_partition(ref)  # and the same order within each partition
    for recs in by_partition(got).values():
        offs = [r[1] for r in recs]
        assert offs == sorted(offs)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic is there
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)


@pytest.mark.parametrize("threads", [True, False], ids=["fetch-threads", "event-loop"])
def test_raw_reader_returns_what_aiokafka_returns(kafka_bootstrap: str, topic: str, threads: bool) -> None:
    emit(kafka_bootstrap, topic)
    ref = reference(kafka_bootstrap, topic)
    assert len(ref) > 20_000
    got = read_raw(kafka_bootstrap, topic, threads=threads)
    assert_same(got, ref)
    assert len(by_partition(got)) == 4
    assert all(k == json.loads(v)["session_id"].encode() for _, _, k, v in got[:: len(got) // 100] if v and k)


def test_small_fetches_split_batches_and_poll_pairs(kafka_bootstrap: str, topic: str) -> None:
    """Tiny fetch sizes: every response ends inside a batch, which comes whole with the next; poll()
    gives the same pairs as aiokafka."""
    emit(kafka_bootstrap, topic, sessions=300)
    ref = reference(kafka_bootstrap, topic)

    async def pairs() -> list[tuple[bytes | None, bytes | None]]:
        r = RawReader(
            parse_kafka_uri(f"kafka://{kafka_bootstrap}/{topic}", defaults={}),
            True,
            fetch_max_bytes=3000,
            partition_max_bytes=1000,
            prefetch=1,
        )
        await r.start()
        out: list[tuple[bytes | None, bytes | None]] = []
        try:
            while len(out) < len(ref):
                got = await r.poll(777, 5.0)
                assert got, f"stalled at {len(out)} of {len(ref)}"
                assert len(got) <= 777
                out.extend(got)
            assert await r.poll(777, 1.0) == []
        finally:
            await r.stop()
        return out

    got = asyncio.run(pairs())
    assert sorted(got, key=repr) == sorted(((k, v) for _, _, k, v in ref), key=repr)


@pytest.mark.parametrize("codec", ["gzip"])  # lz4, snappy, zstd: see test_other_codecs (aiokafka needs cramjam)
def test_compressed_batches(kafka_bootstrap: str, topic: str, codec: str) -> None:
    emit(kafka_bootstrap, topic, sessions=2000, props=f"&compression.type={codec}")
    ref = reference(kafka_bootstrap, topic)
    assert_same(read_raw(kafka_bootstrap, topic), ref)
    assert_same(read_raw(kafka_bootstrap, topic, threads=False), ref)


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_other_codecs_read_or_fail_clearly(kafka_bootstrap: str, topic: str, codec: str) -> None:
    """Produced by librdkafka: read when aiokafka's codec is installed (cramjam), one clear error if not."""
    from aiokafka import codec as ak
    from confluent_kafka import Producer

    create_topic(kafka_bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": kafka_bootstrap, "compression.type": codec, "linger.ms": 20})
    sent: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for i in range(3000):
        k, v = f"k{i % 37}".encode(), json.dumps({"i": i, "pad": "x" * (i % 50)}).encode()
        p.produce(topic, value=v, key=k, partition=i % 2)
        sent[i % 2].append((k, v))
    assert p.flush(30) == 0
    if getattr(ak, f"has_{codec}")():
        got = read_raw(kafka_bootstrap, topic)
        assert {part: [(k, v) for _, _, k, v in recs] for part, recs in by_partition(got).items()} == sent
    else:
        with pytest.raises(EmitterError, match=rf"{codec}-compressed record batches .* pip install cramjam"):
            read_raw(kafka_bootstrap, topic)


def test_plain_producer_null_keys_values_and_headers(kafka_bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaProducer

    create_topic(kafka_bootstrap, topic, 3)

    async def produce() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
        await p.start()
        try:
            for i in range(5000):
                key = None if i % 3 else f"key-{i}".encode()
                value = (
                    None if i % 303 == 0 else (b"" if i % 103 == 0 else f"value {i} ".encode() * (i % 7))
                )  # null: with a key
                headers = [("h", b"x" * (i % 5)), ("n", str(i).encode())][: i % 3]
                await p.send(topic, value, key=key, headers=headers, partition=i % 3)
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(produce())
    ref = reference(kafka_bootstrap, topic)
    got = read_raw(kafka_bootstrap, topic)
    assert_same(got, ref)
    assert any(v is None for *_, v in got) and any(v == b"" for *_, v in got)
    assert any(k is None for _, _, k, _ in got)


def test_transaction_markers_are_skipped(kafka_bootstrap: str, topic: str) -> None:
    """Committed and aborted transactions: control batches are not records; aborted records are read
    (read_uncommitted, as aiokafka's consumer by default)."""
    from aiokafka import AIOKafkaProducer

    create_topic(kafka_bootstrap, topic, 2)

    async def produce() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{topic}")
        await p.start()
        try:
            for t in range(6):
                await p.begin_transaction()
                for i in range(50):
                    await p.send(topic, f"t{t} r{i}".encode(), key=f"{i}".encode(), partition=i % 2)
                await (p.commit_transaction() if t % 3 else p.abort_transaction())
        finally:
            await p.stop()

    asyncio.run(produce())
    ref = reference(kafka_bootstrap, topic)
    got = read_raw(kafka_bootstrap, topic)
    assert_same(got, ref)
    assert len(got) == 300
    offsets = sorted(o for p, o, _, _ in got if p == 0)
    assert offsets[-1] - offsets[0] + 1 > len(offsets)  # the markers took offsets


def test_start_at_latest_and_follow(kafka_bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaProducer

    create_topic(kafka_bootstrap, topic, 2)

    async def run() -> list[bytes | None]:
        p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await p.start()
        r = RawReader(parse_kafka_uri(f"kafka://{kafka_bootstrap}/{topic}", defaults={}), from_beginning=False)
        try:
            for i in range(10):
                await p.send_and_wait(topic, f"old {i}".encode(), partition=i % 2)
            await r.start()
            for _ in range(100):  # until the reader knows where it starts
                if len(r.positions()) == 2:
                    break
                await asyncio.sleep(0.05)
            for i in range(10):
                await p.send_and_wait(topic, f"new {i}".encode(), partition=i % 2)
            out: list[bytes | None] = []
            for _ in range(50):
                out += await r.poll_values(100, 0.2)
                if len(out) >= 10:
                    break
            return out
        finally:
            await r.stop()
            await p.stop()

    assert sorted(v or b"" for v in asyncio.run(run())) == sorted(f"new {i}".encode() for i in range(10))


def test_offset_out_of_range_resets_to_the_start(kafka_bootstrap: str, topic: str) -> None:
    emit(kafka_bootstrap, topic, sessions=200)
    ref = reference(kafka_bootstrap, topic)

    async def run() -> tuple[list[Rec], list[Rec]]:
        r = RawReader(parse_kafka_uri(f"kafka://{kafka_bootstrap}/{topic}", defaults={}), True)
        await r.start()
        first: list[Rec] = []
        again: list[Rec] = []
        try:
            while len(first) < len(ref):
                b = await r.poll_batch(100_000, 5.0)
                assert len(b)
                first += zip(b.partition.tolist(), b.offset.tolist(), b.keys(), b.values(), strict=True)
            with r._lock:
                r._pos[0] = 10**12  # the broker answers OFFSET_OUT_OF_RANGE: back to the earliest offset
            want = len(by_partition(ref)[0])
            while len(again) < want:
                b = await r.poll_batch(100_000, 5.0)
                assert len(b)
                again += zip(b.partition.tolist(), b.offset.tolist(), b.keys(), b.values(), strict=True)
        finally:
            await r.stop()
        return first, again

    first, again = asyncio.run(run())
    assert_same(first, ref)
    assert again == by_partition(ref)[0]


def test_validate_with_client_raw(kafka_bootstrap: str, topic: str) -> None:
    emit(kafka_bootstrap, topic, sessions=2000)
    n = len(reference(kafka_bootstrap, topic))
    src = f"kafka://{kafka_bootstrap}/{topic}?client=raw"
    v = run_cli("validate", ECOM, "--source", src, "--until-idle", "3")
    assert v.returncode == 0, v.stdout.decode() + v.stderr.decode()
    assert "verdict: CONSISTENT" in v.stdout.decode()
    assert f"read {n:,} records" in v.stderr.decode()
    g = run_cli("validate", ECOM, "--source", src, "--group", f"g-{topic}", "--until-idle", "3")
    assert g.returncode == 0, g.stdout.decode() + g.stderr.decode()
    assert "client=raw reads without a consumer group" in g.stderr.decode()
    assert f"read {n:,} records" in g.stderr.decode()


def test_unreachable_broker_is_one_line() -> None:
    with pytest.raises(EmitterError, match=r"kafka: cannot reach a broker at 127.0.0.1:1"):
        read_raw("127.0.0.1:1", "x")
