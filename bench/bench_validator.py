"""The live validator's ingest rate (records/s read from Kafka, decoded, assembled, tested) beside
Kafka's own ConsumerPerformance, on the same topic of the same broker.

The topic is filled once with the emitter's events (``--sessions`` sessions through the Kafka sink,
``--partitions`` partitions). Then, alternately and ``--runs`` times each, both read all N records
from the beginning; the figures are medians and the ratio is of medians. The goal is >= 0.5x.

* validator: ``emitter.validate.live.validate_kafka`` in-process with ``LiveOptions(max_events=N)``,
  so it stops exactly at the last record (no idle wait). The rate is N / wall time of the whole
  call: connecting, fetching, JSON decoding, session assembly, the live looks at doubling checkpoints
  and the final report. (The figure from the validator's own clock, which starts after the consumer
  has connected, is recorded beside it.)
* anchor: ``org.apache.kafka.tools.ConsumerPerformance --num-records N`` in its own JVM, a fresh
  consumer group each run; its figure is ``nMsg.sec`` of its CSV line (its own timer, which includes
  the group join; ``fetch.nMsg.sec``, which leaves the join out, is recorded beside it). It only
  counts records and bytes: it decodes nothing.

Needs the broker: ``deploy/local/kafka.sh start``.

    python -m bench.bench_validator [--runs 5] [--sessions 240000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import statistics
import sys
import time
import uuid
from typing import Any

from emitter.core.spec import Workflow
from emitter.inputs.workflow import load_workflow
from emitter.validate.live import LiveOptions, validate_kafka

from .bench_kafka import (
    ROOT,
    create_topic,
    delete_topic,
    emitter_produce,
    kafka_tool,
    require_broker,
    sink_uri,
    unique_topic,
)
from .common import print_profile, write_result


def fill_topic(wf: Workflow, bootstrap: str, topic: str, sessions: int, partitions: int) -> int:
    props = {
        "acks": "all",
        "enable.idempotence": "true",
        "compression.type": "none",
        "batch.size": "262144",
        "linger.ms": "5",
    }
    return int(emitter_produce(wf, sink_uri(bootstrap, topic, props, partitions), sessions)["events"])


CLIENT = ["auto"]  # --client: which Kafka reader the validator uses (auto picks as the validator does)


def validator_read(
    wf: Workflow, bootstrap: str, topic: str, n: int, profile: cProfile.Profile | None = None
) -> dict[str, Any]:
    opts = LiveOptions(group=None, max_events=n)
    out = io.StringIO()
    if profile is not None:
        profile.enable()
    t0 = time.perf_counter()
    try:
        uri = f"kafka://{bootstrap}/{topic}?client={CLIENT[0]}"
        res = asyncio.run(validate_kafka(wf, uri, opts, out=out))
    finally:
        if profile is not None:
            profile.disable()
    wall = time.perf_counter() - t0
    # getmany hands over up to 50,000 records at a time, so a stop before the end may overshoot a little
    if res.records < n or res.malformed:
        raise RuntimeError(f"validator read {res.records:,} of {n:,} records, {res.malformed} malformed")
    return {
        "records": res.records,
        "wall_s": wall,
        "rate": res.records / wall,
        "own_clock_s": res.seconds,
        "own_clock_rate": res.records / res.seconds,
        "verdict": res.report.verdict,
        "looks": len(res.looks),
        "stopped_by": res.stopped_by,
    }


async def _staged(wf: Workflow, bootstrap: str, topic: str, n: int, stage: str) -> tuple[float, list[bytes]]:
    """Read n records with the live validator's consumer settings, doing only part of its work per record:
    ``fetch`` (aiokafka hands over ConsumerRecords), ``decode`` (+ msgspec JSON decode), ``assemble``
    (+ Assembler.add; no looks, no report). Returns (seconds, the values when stage is fetch)."""
    from aiokafka import AIOKafkaConsumer

    from emitter.validate.assemble import Assembler
    from emitter.validate.live import _decode

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=64 << 20,
    )
    t0 = time.perf_counter()
    await consumer.start()
    asm = Assembler(wf)
    add = asm.add
    values: list[bytes] = []
    got = 0
    try:
        while got < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=50_000)
            for recs in batches.values():
                got += len(recs)
                if stage == "fetch":
                    values.extend(r.value for r in recs)
                elif stage == "decode":
                    for r in recs:
                        _decode(r.value)
                else:
                    for r in recs:
                        add(_decode(r.value))
    finally:
        await consumer.stop()
    return time.perf_counter() - t0, values


def splits(wf: Workflow, bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """Where the validator's time per record goes: staged reads, then the CPU parts alone, in memory."""
    from aiokafka.structs import ConsumerRecord

    from emitter.validate.assemble import Assembler
    from emitter.validate.live import _decode

    out: dict[str, Any] = {}
    values: list[bytes] = []
    for stage in ("fetch", "decode", "assemble"):
        secs, v = asyncio.run(_staged(wf, bootstrap, topic, n, stage))
        values = v or values
        out[f"read+{stage}"] = {"s": secs, "rate": n / secs, "us_per_record": secs / n * 1e6}
    full = validator_read(wf, bootstrap, topic, n)
    out["read+assemble+looks+report (validate_kafka)"] = {
        "s": full["wall_s"],
        "rate": n / full["wall_s"],
        "us_per_record": full["wall_s"] / n * 1e6,
    }
    # CPU parts alone, on the values in memory (no I/O, no aiokafka)
    t0 = time.perf_counter()
    for v in values:
        _decode(v)
    t_dec = time.perf_counter() - t0
    asm = Assembler(wf)
    evs = [_decode(v) for v in values]
    t0 = time.perf_counter()
    add = asm.add
    for ev in evs:
        add(ev)
    t_add = time.perf_counter() - t0
    # what aiokafka builds per record: one ConsumerRecord (a dataclass of 11 fields, headers as a tuple)
    hdrs = [("content-type", b"application/json"), ("emitter.schema_version", b"1"), ("emitter.run_id", b"x" * 16)]
    m = 500_000
    t0 = time.perf_counter()
    for i in range(m):
        ConsumerRecord("t", 0, i, 0, 0, b"k" * 16, values[0], None, 16, 540, tuple(hdrs))
    t_rec = (time.perf_counter() - t0) / m
    out["in memory: msgspec decode"] = {"us_per_record": t_dec / len(values) * 1e6}
    out["in memory: Assembler.add"] = {"us_per_record": t_add / len(values) * 1e6}
    out["in memory: ConsumerRecord(...) construction alone"] = {"us_per_record": t_rec * 1e6}
    print("\n--- where the validator's time goes (one pass each) ---", file=sys.stderr)
    for k, v in out.items():
        rate = f"{v['rate']:>10,.0f} records/s  " if "rate" in v else " " * 24
        print(f"  {k:<50} {rate}{v['us_per_record']:6.2f} us/record", file=sys.stderr)
    return out


def consumer_performance(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    group = f"bench-cp-{uuid.uuid4().hex[:8]}"
    out = kafka_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        [
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--num-records",
            str(n),
            "--group",
            group,
            "--timeout",
            "60000",
        ],
    )
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    try:
        hi = next(i for i, ln in enumerate(lines) if "nMsg.sec" in ln)
    except StopIteration:
        raise RuntimeError(f"no CSV header in ConsumerPerformance output:\n{out[-2000:]}") from None
    head = [h.strip() for h in lines[hi].split(",")]
    vals = [v.strip() for v in lines[hi + 1].split(",")]
    row = dict(zip(head, vals, strict=False))
    got = int(row["data.consumed.in.nMsg"])
    if got < n:
        raise RuntimeError(f"ConsumerPerformance read {got:,} of {n:,} records:\n{out[-2000:]}")
    return {
        "records": got,
        "rate": float(row["nMsg.sec"]),
        "fetch_rate": float(row["fetch.nMsg.sec"]),
        "mb_s": float(row["MB.sec"]),
        "rebalance_ms": float(row["rebalance.time.ms"]),
        "fetch_ms": float(row["fetch.time.ms"]),
        "csv": row,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--client",
        default="auto",
        help="the validator's Kafka reader: auto (as the validator picks), raw, confluent, aiokafka, or several "
        "separated by commas, measured in the same runs (e.g. raw,confluent: what decides the default)",
    )
    ap.add_argument("--sessions", type=int, default=240_000, help="sessions written to the topic (~8.4 events each)")
    ap.add_argument("--workflow", default=str(ROOT / "workflows" / "ecommerce.yaml"))
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--topic", default=None, help="read this already filled topic (its record count: --records)")
    ap.add_argument("--records", type=int, default=None, help="records in --topic")
    ap.add_argument("--keep-topic", action="store_true", help="do not delete the topic the benchmark filled")
    ap.add_argument(
        "--profile", action="store_true", help="cProfile one more validator read and print the top functions"
    )
    ap.add_argument("--splits", action="store_true", help="time the validator's stages (fetch, decode, assemble) too")
    ap.add_argument("--name", default="kafka_validator_ingest", help="result name (bench/results/NAME.json)")
    a = ap.parse_args()
    clients = a.client.split(",")
    for c in clients:
        if c not in ("auto", "raw", "confluent", "aiokafka"):
            sys.exit(f"--client: unknown reader {c!r} (expected auto, raw, confluent or aiokafka)")

    require_broker(a.bootstrap)
    wf = load_workflow(a.workflow)
    own_topic = a.topic is None
    if own_topic:
        topic = unique_topic("bench-validator")
        create_topic(a.bootstrap, topic, a.partitions)
        t0 = time.perf_counter()
        n = fill_topic(wf, a.bootstrap, topic, a.sessions, a.partitions)
        print(f"bench_validator: filled {topic} with {n:,} events in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    else:
        topic, n = a.topic, a.records
        if not n:
            sys.exit("--topic needs --records")
    by_client: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    anchor: list[dict[str, Any]] = []
    try:
        for c in clients:  # warm-up (not counted): imports, compiled kernels, connections
            CLIENT[0] = c
            validator_read(wf, a.bootstrap, topic, min(n, 50_000))
        for i in range(a.runs):
            anchor.append(consumer_performance(a.bootstrap, topic, n))
            line = (
                f"  run {i + 1}/{a.runs}: ConsumerPerformance {anchor[-1]['rate']:,.0f} records/s "
                f"(fetch only {anchor[-1]['fetch_rate']:,.0f}/s)"
            )
            for c in clients:
                CLIENT[0] = c
                r = validator_read(wf, a.bootstrap, topic, n)
                by_client[c].append(r)
                line += (
                    f"; validator client={c} {r['rate']:,.0f} records/s ({n:,} in {r['wall_s']:.2f} s, {r['verdict']})"
                )
            print(line, file=sys.stderr)
        CLIENT[0] = clients[0]
        if a.profile:
            prof = cProfile.Profile()
            validator_read(wf, a.bootstrap, topic, n, prof)
            print_profile(prof, "one validator read")
        split_res = splits(wf, a.bootstrap, topic, n) if a.splits else None
    finally:
        if own_topic and not a.keep_topic:
            delete_topic(a.bootstrap, topic)

    an = statistics.median(r["rate"] for r in anchor)
    for c in clients:
        ours = by_client[c]
        name = a.name if len(clients) == 1 else f"{a.name}_{c}"
        _report(name, c, ours, anchor, an, a, n, topic, split_res if c == clients[0] else None)


def _report(
    name: str,
    client: str,
    ours: list[dict[str, Any]],
    anchor: list[dict[str, Any]],
    an: float,
    a: argparse.Namespace,
    n: int,
    topic: str,
    split_res: dict[str, Any] | None,
) -> None:
    o = statistics.median(r["rate"] for r in ours)
    res = {
        "benchmark": name,
        "client": client,
        "unit": "records/s",
        "runs": a.runs,
        "anchor": "Kafka ConsumerPerformance (nMsg.sec)",
        "anchor_median": an,
        "emitter_median": o,
        "ratio": o / an,
        "goal": 0.5,
        "anchor_runs": [r["rate"] for r in anchor],
        "emitter_runs": [r["rate"] for r in ours],
        "anchor_fetch_only_median": statistics.median(r["fetch_rate"] for r in anchor),
        "emitter_own_clock_median": statistics.median(r["own_clock_rate"] for r in ours),
        "anchor_details": anchor,
        "emitter_details": ours,
        "settings": {"bootstrap": a.bootstrap, "partitions": a.partitions, "records": n, "topic": topic},
    }
    if split_res is not None:
        res["splits"] = split_res
    print(
        f"{name}: validator (client={client}) {o:,.0f} records/s vs ConsumerPerformance {an:,.0f} records/s "
        f"(medians of {a.runs}, {n:,} records): ratio {o / an:.2f}x (goal >= 0.5x)"
    )
    write_result(name, res)


if __name__ == "__main__":
    main()
