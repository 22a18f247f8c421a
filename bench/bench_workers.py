"""``emitter run --workers W`` beside the single process (the anchor), in the same run, through the real CLI.

For each destination, the single-process command and the same command with ``--workers W`` run
alternately, ``--runs`` times each, on the same seed and load; the figures are medians and the ratio is of
medians. The goal (issue 12): ``--workers 2`` at least 1.7x events/s to the null sink and to Kafka.

Two rates per run, both printed:

* *command*: events / wall time of the whole command, from exec to exit (start-up, spawning and joining the
  workers, draining the sinks: everything a user waits for);
* *reported*: the rate the run's own summary prints (from the schedule's start to the last acknowledgement).

A third command, the single process held to one CPU (``sched_setaffinity``), gives the one-core figure the
issue's numbers are quoted against; for Kafka the broker's own CPU (``/proc``) is measured beside each run.

And the CPU the command used (its process tree: user + system seconds, from ``RUSAGE_CHILDREN``), which
gives the per-core figures the projection to 16 and 64 cores is made from.

Destinations: ``null`` (encode and discard), ``kafka`` (a fresh topic per run on the broker given by
``--kafka``; skipped when it does not answer) and ``file`` (one ordered stream: the parent merges the
workers' lines, so its one core is that mode's ceiling, shown for what it is).

    python -m bench.bench_workers [--runs 5] [--workers 2] [--kafka 127.0.0.1:9092] [--only null,kafka,file]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .common import write_result

ROOT = Path(__file__).resolve().parent.parent
ECOM = str(ROOT / "workflows" / "ecommerce.yaml")
BASE = ["--seed", "7", "--start", "2026-01-01T00:00:00Z", "--speed", "max", "--progress", "off"]
SESSIONS = {"null": 1_500_000, "kafka": 300_000, "file": 600_000}
GOAL = 1.7

_DONE = re.compile(r"(?:done|stopped[^:]*): ([\d,]+) events, .*\(([\d,]+) events/s\)")


def _kafka_up(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    import socket

    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _broker_cpu_s() -> float | None:
    """CPU seconds the local broker (deploy/local/kafka.sh) has used so far, from /proc; None if not found."""
    pidfile = ROOT / ".local" / "kafka" / "kafka.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one(dest: str, workers: int, kafka: str, tmp: Path, pin: bool = False) -> dict[str, float]:
    if dest == "null":
        sink = "null"
    elif dest == "kafka":
        sink = f"kafka://{kafka}/bench-workers-{uuid.uuid4().hex[:8]}?partitions=6&retention.ms=-1"
    else:
        sink = f"file:{tmp / 'out.jsonl'}"
    cmd = [sys.executable, "-m", "emitter", "run", ECOM, *BASE, "--sessions", str(SESSIONS[dest]), "--sink", sink]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker0 = _broker_cpu_s() if dest == "kafka" else None
    t0 = time.perf_counter()
    one_core = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if pin else None
    proc = subprocess.run(cmd, capture_output=True, check=False, preexec_fn=one_core)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker1 = _broker_cpu_s() if dest == "kafka" else None
    err = proc.stderr.decode()
    m = _DONE.search(err)
    if proc.returncode != 0 or m is None:
        raise SystemExit(f"bench_workers: {' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    events = int(m[1].replace(",", ""))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with_ack = re.search(r"sink [^\n]*: ([\d,]+) sent, ([\d,]+) acknowledged, ([\d,]+) failed, ([\d,]+) dropped", err)
    assert with_ack is not None, err
    acked = int(with_ack[2].replace(",", ""))
    if acked != events:
        raise SystemExit(f"bench_workers: {dest}: {acked:,} acknowledged of {events:,}:\n{err}")
    return {
        "events": events,
        "command_rate": events / wall,
        "reported_rate": float(m[2].replace(",", "")),
        "cpu_s": cpu,
        "wall_s": wall,
        "cores_used": cpu / wall,
        "broker_cores": (broker1 - broker0) / wall if broker0 is not None and broker1 is not None else float("nan"),
    }


def bench(dest: str, workers: int, runs: int, kafka: str) -> dict[str, Any]:
    single: list[dict[str, float]] = []
    multi: list[dict[str, float]] = []
    pinned: list[dict[str, float]] = []  # the single process held to one core (the "one core" figure)
    with tempfile.TemporaryDirectory() as d:
        for i in range(runs):
            single.append(_one(dest, 1, kafka, Path(d)))
            multi.append(_one(dest, workers, kafka, Path(d)))
            pinned.append(_one(dest, 1, kafka, Path(d), pin=True))
            s, w, p = single[-1], multi[-1], pinned[-1]
            print(
                f"  {dest} run {i + 1}/{runs}: single {s['command_rate']:,.0f} ev/s ({s['cores_used']:.2f} cores), "
                f"--workers {workers} {w['command_rate']:,.0f} ev/s ({w['cores_used']:.2f} cores), "
                f"single on one core {p['command_rate']:,.0f} ev/s"
                + (f"; broker {s['broker_cores']:.2f} / {w['broker_cores']:.2f} cores" if dest == "kafka" else ""),
                file=sys.stderr,
                flush=True,
            )

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    res: dict[str, Any] = {"destination": dest, "workers": workers, "runs": runs, "events": single[0]["events"]}
    for key in ("command_rate", "reported_rate", "cores_used", "cpu_s", "wall_s", "broker_cores"):
        res[f"single_{key}"] = med(single, key)
        res[f"workers_{key}"] = med(multi, key)
        res[f"one_core_{key}"] = med(pinned, key)
    res["ratio_to_one_core"] = res["workers_command_rate"] / res["one_core_command_rate"]
    res["ratio_command"] = res["workers_command_rate"] / res["single_command_rate"]
    res["ratio_reported"] = res["workers_reported_rate"] / res["single_reported_rate"]
    res["single_per_cpu_second"] = res["events"] / res["single_cpu_s"]
    res["workers_per_cpu_second"] = res["events"] / res["workers_cpu_s"]
    res["single_runs"], res["workers_runs"], res["one_core_runs"] = single, multi, pinned
    print(
        f"workers/{dest}: --workers {workers} {res['workers_command_rate']:,.0f} events/s vs single process "
        f"{res['single_command_rate']:,.0f} events/s (whole command, medians of {runs}): ratio "
        f"{res['ratio_command']:.2f}x (goal {GOAL}x); as the summaries report them: "
        f"{res['workers_reported_rate']:,.0f} vs {res['single_reported_rate']:,.0f}: {res['ratio_reported']:.2f}x"
    )
    print(
        f"workers/{dest}: against the single process held to one core ({res['one_core_command_rate']:,.0f} events/s): "
        f"{res['ratio_to_one_core']:.2f}x"
        + (
            f"; the broker used {res['single_broker_cores']:.2f} cores beside the single process, "
            f"{res['workers_broker_cores']:.2f} beside the workers"
            if dest == "kafka"
            else ""
        )
    )
    print(
        f"workers/{dest}: cores used: single {res['single_cores_used']:.2f}, workers {res['workers_cores_used']:.2f}; "
        f"events per CPU-second: single {res['single_per_cpu_second']:,.0f}, workers "
        f"{res['workers_per_cpu_second']:,.0f}"
    )
    return res


def project(res: dict[str, Any], cores: int) -> float:
    """Events/s on ``cores`` cores if each worker keeps the per-CPU-second rate measured here (each worker
    uses ~`cores_used / workers` cores: the simulation thread and the event loop overlap)."""
    return res["workers_per_cpu_second"] * cores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kafka", default=os.environ.get("EMITTER_TEST_KAFKA", "127.0.0.1:9092"))
    ap.add_argument("--only", default="null,kafka,file")
    a = ap.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"bench_workers: {cpus} CPUs, {a.runs} runs each, --workers {a.workers}", file=sys.stderr)
    out: dict[str, Any] = {"cpus": cpus}
    for dest in a.only.split(","):
        if dest == "kafka" and not _kafka_up(a.kafka):
            print(f"workers/kafka: skipped: no broker answers on {a.kafka} (deploy/local/kafka.sh start)")
            continue
        res = bench(dest, a.workers, a.runs, a.kafka)
        out[dest] = res
        if dest != "file":
            print(
                f"workers/{dest}: projected at the measured per-CPU-second rate: 16 cores "
                f"{project(res, 16):,.0f} events/s, 64 cores {project(res, 64):,.0f} events/s"
            )
    write_result("workers", out)


if __name__ == "__main__":
    main()
