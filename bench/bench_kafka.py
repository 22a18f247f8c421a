"""Emitter -> Kafka events/s beside Kafka's own ProducerPerformance, on the same real broker.

Both producers get the same broker, the same topic layout (a fresh topic per run, ``--partitions``
partitions, retention.ms=-1), the same number of records, the same record size (ProducerPerformance's
``--record-size`` is the mean size of our event JSON, measured here), and the same ``acks``,
``enable.idempotence``, ``compression.type``, ``batch.size`` and ``linger.ms``. They run alternately,
``--runs`` times each; the figures are medians and the ratio is of medians. The goal is >= 0.5x.

* emitter: the Kafka sink driven in-process by the Runner at ``--speed max``; the rate is events
  acknowledged by the broker / wall time of the send phase (from the sink being started and connected
  until its flush returned with every record acknowledged). That phase includes generating every
  event, encoding it to JSON, partitioning, appending to record batches and waiting for the acks.
* anchor: ``org.apache.kafka.tools.ProducerPerformance --throughput -1`` in its own JVM; its figure is
  the ``records/sec`` of its final line (its own timer: JVM start-up excluded, JIT warm-up included).

Our records carry more than the anchor's: a 16-byte key (the session id) and three headers besides
the same-size value; ProducerPerformance sends unkeyed values (sticky partitioner).

Needs the broker: ``deploy/local/kafka.sh start``.

    python -m bench.bench_kafka [--runs 5] [--sessions 240000] [--acks all] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emitter.clients.kafka import parse_kafka_uri
from emitter.core.engine import Simulation
from emitter.core.load import Load
from emitter.core.model import Model
from emitter.core.spec import Workflow
from emitter.inputs.workflow import load_workflow
from emitter.sinks.basic import jsonl_of
from emitter.sinks.kafka import KafkaSink

from .common import RESULTS, print_profile, run_at_max_speed, write_result

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = ROOT / "deploy" / "local" / "kafka.sh"
START = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SEED = 7

_PP_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency"
)


# --------------------------------------------------------------------------- broker and topics


def broker_up(bootstrap: str) -> bool:
    env = {**os.environ, "KAFKA_PORT": bootstrap.rsplit(":", 1)[1]}
    r = subprocess.run([str(KAFKA_SH), "status"], env=env, capture_output=True, check=False)
    return r.returncode == 0


def require_broker(bootstrap: str) -> None:
    if not broker_up(bootstrap):
        sys.exit(f"no Kafka broker answers on {bootstrap}: start one with deploy/local/kafka.sh start")


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _admin(bootstrap: str, fn: Callable[[Any], Any]) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await fn(admin)
    finally:
        await admin.close()


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import NewTopic

    new = NewTopic(topic, partitions, 1, topic_configs={"retention.ms": "-1"})
    asyncio.run(_admin(bootstrap, lambda a: a.create_topics([new])))
    # wait until the leader of every partition is known (metadata propagates asynchronously)
    deadline = time.monotonic() + 30

    async def ready(a: Any) -> bool:
        desc = await a.describe_topics([topic])
        parts = desc[0].get("partitions", []) if desc else []
        return len(parts) == partitions and all(p.get("leader", -1) >= 0 for p in parts)

    while not asyncio.run(_admin(bootstrap, ready)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no leaders after 30 s")
        time.sleep(0.2)


def delete_topic(bootstrap: str, topic: str) -> None:
    try:
        asyncio.run(_admin(bootstrap, lambda a: a.delete_topics([topic])))
    except Exception as exc:  # noqa: BLE001 - cleanup: report, never fail the benchmark
        print(f"  (could not delete topic {topic}: {type(exc).__name__}: {exc})", file=sys.stderr)


def kafka_tool(cls: str, args: list[str], timeout: float = 600) -> str:
    """Run a Kafka tool class on the broker's classpath; its standard output."""
    r = subprocess.run([str(KAFKA_SH), "run", cls, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{cls} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout


@functools.cache
def props_flag() -> str:
    """``--command-property`` on newer Kafka tools (``--producer-props`` is deprecated there), else the old one."""
    r = subprocess.run(
        [str(KAFKA_SH), "run", "org.apache.kafka.tools.ProducerPerformance", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "--command-property" if "--command-property" in r.stdout + r.stderr else "--producer-props"


# --------------------------------------------------------------------------- settings


def producer_props(a: argparse.Namespace) -> dict[str, str]:
    """Kafka property names and values given to both producers."""
    idem = "true" if a.acks == "all" else "false"
    return {
        "acks": a.acks,
        "enable.idempotence": idem,
        "compression.type": a.compression,
        "batch.size": str(a.batch_size),
        "linger.ms": str(a.linger_ms),
    }


def sink_uri(bootstrap: str, topic: str, props: dict[str, str], partitions: int) -> str:
    q = "&".join(f"{k}={v}" for k, v in props.items())
    return f"kafka://{bootstrap}/{topic}?{q}&partitions={partitions}&retention.ms=-1"


def event_sample(wf: Workflow, sessions: int) -> tuple[float, float, list[bytes]]:
    """(mean JSON bytes per event without the newline, events per session, some events) from a short run."""
    sim = Simulation(Model(wf), SEED, Load(sessions=sessions), START)
    n = nbytes = 0
    sample: list[bytes] = []
    for b in sim.batches():
        data = jsonl_of(b)
        n += len(b)
        nbytes += len(data) - data.count(b"\n")
        if len(sample) < 20_000:
            sample.extend(data.rstrip(b"\n").split(b"\n")[: 20_000 - len(sample)])
    return nbytes / n, n / sessions, sample


# --------------------------------------------------------------------------- the two producers


class TimedKafkaSink(KafkaSink):
    """The Kafka sink, noting when it is ready to send and when its flush has every ack."""

    t_ready = 0.0
    t_flushed = 0.0

    async def start(self) -> None:
        await super().start()
        self.t_ready = time.perf_counter()

    async def flush(self) -> None:
        await super().flush()
        if not self.t_flushed:
            self.t_flushed = time.perf_counter()


def emitter_produce(wf: Workflow, uri: str, sessions: int, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    sink = TimedKafkaSink(parse_kafka_uri(uri))
    st = run_at_max_speed(wf, sink, sessions, SEED, START, profile)
    ss = sink.stats
    send_s = sink.t_flushed - sink.t_ready
    return {
        "events": ss.acked,
        "send_s": send_s,
        "rate": ss.acked / send_s,
        "whole_run_s": st.wall_s,
        "whole_run_rate": ss.acked / st.wall_s,
    }


def producer_performance(
    bootstrap: str, topic: str, records: int, props: dict[str, str], record_size: int, payload_file: Path | None
) -> dict[str, Any]:
    args = ["--topic", topic, "--num-records", str(records), "--throughput", "-1"]
    args += ["--payload-file", str(payload_file)] if payload_file else ["--record-size", str(record_size)]
    args += [props_flag(), f"bootstrap.servers={bootstrap}", *(f"{k}={v}" for k, v in props.items())]
    out = kafka_tool("org.apache.kafka.tools.ProducerPerformance", args)
    lines = [m for m in (_PP_LINE.search(ln) for ln in out.splitlines()) if m]
    if not lines:
        raise RuntimeError(f"no final line in ProducerPerformance output:\n{out[-2000:]}")
    m = lines[-1]
    sent = int(m.group(1))
    if sent != records:
        raise RuntimeError(f"ProducerPerformance sent {sent} of {records} records:\n{out[-2000:]}")
    return {
        "records": sent,
        "rate": float(m.group(2)),
        "mb_s": float(m.group(3)),
        "avg_latency_ms": float(m.group(4)),
        "max_latency_ms": float(m.group(5)),
        "final_line": m.group(0),
    }


# --------------------------------------------------------------------------- reporting


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=240_000, help="emitter sessions per run (~8.4 events each)")
    ap.add_argument("--workflow", default=str(ROOT / "workflows" / "ecommerce.yaml"))
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--acks", choices=["1", "all"], default="1", help="all also turns idempotence on (both sides)")
    ap.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    ap.add_argument("--batch-size", type=int, default=262_144)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument(
        "--anchor-payload",
        choices=["size", "events"],
        default="size",
        help="size: --record-size (random letters); events: --payload-file of 20,000 of our events "
        "(fairer with compression)",
    )
    ap.add_argument("--keep-topics", action="store_true", help="do not delete the benchmark topics afterwards")
    ap.add_argument("--profile", action="store_true", help="cProfile one more emitter run and print the top functions")
    ap.add_argument("--name", default=None, help="result name (default kafka_produce_acks1 / kafka_produce_acksall)")
    a = ap.parse_args()

    require_broker(a.bootstrap)
    wf = load_workflow(a.workflow)
    props = producer_props(a)
    name = a.name or f"kafka_produce_acks{a.acks}" + ("" if a.compression == "none" else f"_{a.compression}")
    mean_size, per_session, sample = event_sample(wf, 20_000)
    record_size = round(mean_size)
    records = round(a.sessions * per_session)
    payload_file = None
    if a.anchor_payload == "events":
        payload_file = RESULTS / "kafka_payloads.jsonl"
        RESULTS.mkdir(exist_ok=True)
        payload_file.write_bytes(b"\n".join(sample))
    print(
        f"bench_kafka: {a.bootstrap}, {a.partitions} partitions, {props}; our events are {mean_size:.1f} B of JSON "
        f"(mean), ~{records:,} records per run ({a.sessions:,} sessions); anchor payload: "
        + (f"--record-size {record_size}" if payload_file is None else f"--payload-file ({len(sample):,} events)"),
        file=sys.stderr,
    )

    topics: list[str] = []

    def fresh(prefix: str) -> str:
        t = unique_topic(prefix)
        create_topic(a.bootstrap, t, a.partitions)
        topics.append(t)
        return t

    def cleanup() -> None:
        if not a.keep_topics:
            while topics:
                delete_topic(a.bootstrap, topics.pop())

    # warm-up (not counted): imports, any JIT of the encoder, the broker's first connections
    t = fresh("bench-emitter-warmup")
    emitter_produce(wf, sink_uri(a.bootstrap, t, props, a.partitions), 2_000)
    cleanup()

    ours: list[dict[str, Any]] = []
    anchor: list[dict[str, Any]] = []
    try:
        for i in range(a.runs):
            anchor.append(
                producer_performance(a.bootstrap, fresh("bench-pp"), records, props, record_size, payload_file)
            )
            cleanup()
            ours.append(
                emitter_produce(wf, sink_uri(a.bootstrap, fresh("bench-emitter"), props, a.partitions), a.sessions)
            )
            cleanup()
            print(
                f"  run {i + 1}/{a.runs}: ProducerPerformance {anchor[-1]['rate']:,.0f} records/s "
                f"({anchor[-1]['avg_latency_ms']:.0f} ms avg latency), emitter {ours[-1]['rate']:,.0f} events/s "
                f"({ours[-1]['events']:,} acked in {ours[-1]['send_s']:.2f} s; whole run incl. connect/close "
                f"{ours[-1]['whole_run_rate']:,.0f}/s)",
                file=sys.stderr,
            )
        if a.profile:
            prof = cProfile.Profile()
            emitter_produce(
                wf, sink_uri(a.bootstrap, fresh("bench-emitter-prof"), props, a.partitions), a.sessions, prof
            )
            cleanup()
            print_profile(prof, "one emitter -> Kafka run")
    finally:
        cleanup()

    o = statistics.median(r["rate"] for r in ours)
    an = statistics.median(r["rate"] for r in anchor)
    res = {
        "benchmark": name,
        "unit": "events/s",
        "runs": a.runs,
        "anchor": "Kafka ProducerPerformance",
        "anchor_median": an,
        "emitter_median": o,
        "ratio": o / an,
        "goal": 0.5,
        "anchor_runs": [r["rate"] for r in anchor],
        "emitter_runs": [r["rate"] for r in ours],
        "emitter_whole_run_median": statistics.median(r["whole_run_rate"] for r in ours),
        "anchor_details": anchor,
        "emitter_details": ours,
        "settings": {
            "bootstrap": a.bootstrap,
            "partitions": a.partitions,
            "producer_props": props,
            "record_size": record_size,
            "mean_event_json_bytes": mean_size,
            "records_per_run": records,
            "sessions_per_run": a.sessions,
            "anchor_payload": a.anchor_payload,
            "props_flag": props_flag(),
        },
    }
    print(
        f"{name}: emitter {o:,.0f} events/s vs ProducerPerformance {an:,.0f} records/s "
        f"(medians of {a.runs}, {record_size} B records, acks={a.acks}): ratio {o / an:.2f}x (goal >= 0.5x)"
    )
    write_result(name, res)


if __name__ == "__main__":
    main()
