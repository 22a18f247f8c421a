"""Soak: ``emitter run`` in realtime to a real Kafka broker at a fixed event rate for a set time, sampled.

``python -m emitter run`` runs as a child process, open model, ``--speed realtime --progress lines``,
into a fresh topic. Its load is set so that the *event* rate is the target: the workflow's mean events
per session is measured first, in process, over 2,000,000 sessions (200,000 left it 0.4 % off on one
seed), and ``--arrival-rate`` = target / that mean. The target, the mean and the arrival rate are printed.

While it runs, every ``--sample`` seconds, this process reads the child's RSS (``/proc/PID/status``
VmRSS), open descriptors (``/proc/PID/fd``), threads and CPU time, and the broker's and the host's CPU
(the broker shares the machine). The emitter's own figures come from its progress lines (every 5 s, the
only live output it has: there is no machine-readable stats option, and the run report is written only
at the end), parsed field by field: events sent, the lag of the last send and the worst so far, events
pending acknowledgement, dropped and failed. At ``--duration`` of the schedule's wall clock the child
gets SIGINT and stops cleanly (its sinks flush; without the stop, the sessions in flight would take up
to nine more minutes to end); its summary gives lag p50/p99/max (whole run, log buckets 4.9 % wide, the
upper edge reported) and per-sink sent/acknowledged/failed/dropped. An independent read of the topic's
end offsets (aiokafka) must equal the events acknowledged.

Steady state is the schedule's wall time from the end of warm-up to ``--duration``. An open model
started from nothing ramps up: an event's offset from its session's start has a long tail (ecommerce:
p99 176 s, p99.9 265 s), so the event rate reaches target x F(t), F the distribution of those offsets.
The default warm-up (``auto``) is that p99.9, at least 30 s; ``--smoke`` uses 10 % of the run. Rate
figures of the steady part (events sent between the progress lines nearest its ends / the time between
them):

- rate error: against the expected rate, the target x the mean of F over the window (the ramp's share,
  from the same in-process sample; 1.000 once warm-up is past the ramp); the goal is within 0.5 %;
- against the nominal target, and against the run's own schedule (``--schedule``, on by default: the
  same seed, start and load simulated in this process before the run, events counted per 10 ms of
  simulated time), which separates pacing from the load's Poisson noise.

RSS and descriptors are compared at the first sample after warm-up and the last before the stop
(goal: RSS under 5 % growth; descriptors not growing, at most 2 more); a least-squares slope over the
steady samples is printed as MiB per hour as well. Producer errors and drops: the goal is 0.

Writes ``bench/results/soak_NAME.json`` (settings, figures, every sample and progress line) and
``soak_NAME_samples.csv`` / ``soak_NAME_progress.csv`` for plotting. Needs ``deploy/local/kafka.sh start``.

    python -m bench.soak --rate 50000 --duration 1h --sample 5s        # the record run
    python -m bench.soak --smoke                                       # 5,000 events/s for 2 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import csv
import datetime as dt
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common import RESULTS, write_result

ROOT = Path(__file__).resolve().parent.parent
WF = ROOT / "workflows" / "ecommerce.yaml"
KAFKA_SH = ROOT / "deploy" / "local" / "kafka.sh"
SCHED_BIN_US = 10_000  # the schedule's resolution: 10 ms of simulated time
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

GOAL_RATE = 0.005  # |rate error| within 0.5 %
GOAL_LAG_P99 = 0.005  # s
GOAL_RSS = 0.05  # growth over the steady part
GOAL_FDS = 2  # more descriptors at the end than at the start of steady state, at most


# --------------------------------------------------------------------------- the emitter's output


_NUM = r"([\d,]+)"
_FIELDS = {
    "wall": re.compile(r"([\d.]+)s wall"),
    "sim": re.compile(r"sim (\d+):(\d\d):(\d\d)"),
    "events": re.compile(_NUM + r" events \(" + _NUM + r"/s\)"),
    "active": re.compile(_NUM + r" active sessions"),
    "lag": re.compile(r"lag ([\d.]+)s \(max ([\d.]+)s\)"),
    "losses": re.compile(r"pending " + _NUM + r" dropped " + _NUM + r" failed " + _NUM),
}


def _int(s: str) -> int:
    return int(s.replace(",", ""))


@dataclass
class ProgressLine:
    """One ``--progress lines`` line: wall is seconds since the schedule's start, as the emitter counts it."""

    t: float  # when this process read it (its monotonic clock)
    wall: float
    events: int
    active: int | None = None
    sim_s: int | None = None
    lag_last: float | None = None
    lag_max: float | None = None
    pending: int | None = None
    dropped: int | None = None
    failed: int | None = None


def parse_progress(line: str, t: float = 0.0) -> ProgressLine | None:
    """A progress line's fields (each found on its own, so a new or reordered field does not break it);
    None for other lines. Wall and events must be there."""
    if not line.startswith("emitter:") or " wall" not in line:
        return None
    w, ev = _FIELDS["wall"].search(line), _FIELDS["events"].search(line)
    if not (w and ev):
        return None
    p = ProgressLine(t=t, wall=float(w.group(1)), events=_int(ev.group(1)))
    if m := _FIELDS["active"].search(line):
        p.active = _int(m.group(1))
    if m := _FIELDS["sim"].search(line):
        p.sim_s = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    if m := _FIELDS["lag"].search(line):
        p.lag_last, p.lag_max = float(m.group(1)), float(m.group(2))
    if m := _FIELDS["losses"].search(line):
        p.pending, p.dropped, p.failed = (_int(g) for g in m.groups())
    return p


_SUMMARY = {
    "head": re.compile(
        r"emitter: (done|stopped by \S+|failed): " + _NUM + r" events, " + _NUM + r" sessions started, "
        r".* in ([\d.]+) s wall"
    ),
    "lag": re.compile(
        r"lag p50 ([\d.]+) s, p99 ([\d.]+) s,\s*max ([\d.]+) s; " + _NUM + r" events sent more than ([\d.]+) s late"
    ),
    "sink": re.compile(rf"emitter: sink (.*): {_NUM} sent, {_NUM} acknowledged, {_NUM} failed, {_NUM} dropped(.*)"),
    "error": re.compile(r"emitter: error: (.*)"),
    "rate": re.compile(r"effective arrival rate ([\d.e+]+) sessions/s"),
}


def parse_summary(lines: list[str]) -> dict[str, Any]:
    """The run summary's figures: outcome, events, lag quantiles, and sent/acked/failed/dropped per sink."""
    out: dict[str, Any] = {"sinks": [], "errors": []}
    for ln in lines:
        if m := _SUMMARY["head"].search(ln):
            out["outcome"], out["events"], out["sessions_started"] = m.group(1), _int(m.group(2)), _int(m.group(3))
            out["wall_s"] = float(m.group(4))
        if m := _SUMMARY["rate"].search(ln):
            out["effective_arrival_rate"] = float(m.group(1))
        if m := _SUMMARY["lag"].search(ln):
            out["lag_p50_s"], out["lag_p99_s"], out["lag_max_s"] = (float(m.group(i)) for i in (1, 2, 3))
            out["late_events"] = _int(m.group(4))
        if m := _SUMMARY["sink"].search(ln):
            out["sinks"].append(
                {
                    "sink": m.group(1),
                    "sent": _int(m.group(2)),
                    "acked": _int(m.group(3)),
                    "failed": _int(m.group(4)),
                    "dropped": _int(m.group(5)),
                    "notes": m.group(6).lstrip("; "),
                }
            )
        if m := _SUMMARY["error"].search(ln):
            out["errors"].append(m.group(1))
    return out


# --------------------------------------------------------------------------- /proc


def _proc_stat(pid: int | str) -> tuple[float, int]:
    """CPU seconds (user + system) and threads of a process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK, int(rest[17])


def _status_kb(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for ln in fh:
            k, _, v = ln.partition(":")
            if k in keys:
                out[k] = int(v.split()[0]) * 1024
    return out


def _host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole host."""
    with open("/proc/stat", encoding="ascii") as fh:
        vals = [int(x) for x in fh.readline().split()[1:]]
    idle = vals[3] + vals[4]
    total = sum(vals[:8])
    return float(total - idle), float(total)


@dataclass
class Sample:
    t: float  # this process's monotonic clock
    rss_bytes: int
    hwm_bytes: int
    fds: int
    threads: int
    cpu_s: float  # the child's CPU seconds so far
    broker_cpu_s: float | None
    broker_rss_bytes: int | None
    host_busy: float
    host_total: float
    loadavg1: float
    wall: float | None = None  # the emitter's schedule clock at this sample (filled in after the run)


def sample(pid: int, broker: int | None) -> Sample:
    st = _status_kb(pid, ("VmRSS", "VmHWM"))
    cpu, threads = _proc_stat(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    bcpu = brss = None
    if broker:
        try:
            bcpu, _ = _proc_stat(broker)
            brss = _status_kb(broker, ("VmRSS",)).get("VmRSS")
        except OSError:
            bcpu = brss = None
    busy, total = _host_cpu()
    return Sample(
        time.monotonic(), st.get("VmRSS", 0), st.get("VmHWM", 0), fds, threads, cpu, bcpu, brss, busy, total,
        os.getloadavg()[0],
    )  # fmt: skip


# --------------------------------------------------------------------------- load and schedule


def parse_seconds(text: str) -> float:
    from emitter.inputs.options import parse_duration

    return parse_duration(text)


def workflow_shape(wf_path: Path, sessions: int = 2_000_000, seed: int = 99) -> dict[str, Any]:
    """Mean events per session, and the distribution of an event's offset from its session's start (as
    sorted seconds), from ``sessions`` simulated in process (a seed of its own, not the run's)."""
    from emitter.core.engine import Simulation
    from emitter.core.load import Load
    from emitter.core.model import Model
    from emitter.inputs.workflow import load_workflow

    sim = Simulation(Model(load_workflow(wf_path)), seed, Load(sessions=sessions, arrival_rate=1000.0), 0)
    sess, ts = [], []
    for b in sim.batches():
        sess.append(b.cols["sess"].copy())
        ts.append(b.cols["t"].copy())
    s, t = np.concatenate(sess), np.concatenate(ts)
    order = np.lexsort((t, s))
    s, t = s[order], t[order]
    firsts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    start = np.repeat(t[firsts], np.diff(np.r_[firsts, len(s)]))
    offsets = np.sort((t - start) / 1e6)
    n = len(t)
    return {
        "sessions": len(firsts),
        "events": n,
        "events_per_session": n / len(firsts),
        "offsets_s": offsets,
        "offset_p99_s": float(np.quantile(offsets, 0.99)),
        "offset_p999_s": float(np.quantile(offsets, 0.999)),
    }


def ramp_integral(offsets: np.ndarray, w: float) -> float:
    """The integral of F from 0 to ``w`` (F: the share of a session's events within that many seconds of its
    start): E[events by wall w] = arrival rate x events per session x this."""
    k = int(np.searchsorted(offsets, w, side="right"))
    # integral_0^w F(s) ds = mean over events of max(0, w - offset)
    return float((w * k - offsets[:k].sum()) / len(offsets))


def schedule(argv: list[str], horizon_s: float) -> tuple[np.ndarray, int]:
    """The run's own events per 10 ms of simulated time up to ``horizon_s``: the child's command line
    parsed and built as the CLI does (same seed and start: the same stream), simulated here. Also the
    events in all."""
    from emitter.app.config import run_config
    from emitter.app.run import build_simulation
    from emitter.cli import build_parser
    from emitter.inputs.options import OPTIONS

    args = build_parser().parse_args(argv)
    cfg = run_config(args.workflow, {o.name: getattr(args, o.name) for o in OPTIONS})
    sim, _, _ = build_simulation(cfg)
    nbins = int(horizon_s * 1e6 // SCHED_BIN_US) + 1
    counts = np.zeros(nbins, np.int64)
    lim = nbins * SCHED_BIN_US
    for b in sim.batches():
        t = b.cols["t"]
        if int(t[0]) >= lim:
            break
        idx = t[t < lim] // SCHED_BIN_US
        counts += np.bincount(idx, minlength=nbins)[:nbins]
    return counts, int(counts.sum())


def scheduled_by(cum: np.ndarray, w: float) -> float:
    """Events scheduled at or before ``w`` seconds (linear within a 10 ms bin)."""
    x = w * 1e6 / SCHED_BIN_US
    i = int(x)
    if i >= len(cum):
        return float(cum[-1])
    below = float(cum[i - 1]) if i > 0 else 0.0
    return below + (float(cum[i]) - below) * (x - i)


# --------------------------------------------------------------------------- Kafka


def broker_pid() -> int | None:
    r = subprocess.run([str(KAFKA_SH), "status"], capture_output=True, text=True, check=False)
    m = re.search(r"pid (\d+)", r.stdout + r.stderr)
    return int(m.group(1)) if r.returncode == 0 and m else None


async def _create_topic(bootstrap: str, topic: str, partitions: int, configs: dict[str, str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            return
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
        except TopicAlreadyExistsError:
            return
        deadline = time.monotonic() + 30
        while True:
            desc = await admin.describe_topics([topic])
            parts = desc[0].get("partitions", []) if desc else []
            if len(parts) == partitions and all(p.get("leader", -1) >= 0 for p in parts):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} has no leaders after 30 s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        desc = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = sorted(p["partition"] for p in (desc[0].get("partitions", []) if desc else []))
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        ends = await c.end_offsets([TopicPartition(topic, p) for p in parts]) if parts else {}
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await c.stop()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    return asyncio.run(_end_offsets(bootstrap, topic))


# --------------------------------------------------------------------------- the run


@dataclass
class Child:
    proc: subprocess.Popen[str]
    progress: list[ProgressLine] = field(default_factory=list)
    other: list[tuple[float, str]] = field(default_factory=list)  # every other stderr line
    samples: list[Sample] = field(default_factory=list)
    first_line: threading.Event = field(default_factory=threading.Event)
    new_line: threading.Event = field(default_factory=threading.Event)

    @property
    def offset(self) -> float:
        """This process's monotonic time at the schedule's zero (a line is read a little after it is made:
        the smallest difference is the best estimate)."""
        return min(p.t - p.wall for p in self.progress)


def _read(child: Child, echo: bool) -> None:
    assert child.proc.stderr is not None
    for ln in child.proc.stderr:
        now = time.monotonic()
        ln = ln.rstrip("\n")
        p = parse_progress(ln, now)
        if p is not None:
            child.progress.append(p)
            child.first_line.set()
            child.new_line.set()
        else:
            child.other.append((now, ln))
        if echo:
            print(f"  | {ln}", file=sys.stderr, flush=True)


def _sample_loop(child: Child, every: float, broker: int | None, stop: threading.Event) -> None:
    nxt = time.monotonic()
    while not stop.is_set() and child.proc.poll() is None:
        try:
            child.samples.append(sample(child.proc.pid, broker))
        except (OSError, ValueError):  # the child is exiting
            break
        nxt += every
        stop.wait(max(0.0, nxt - time.monotonic()))


def run_child(cmd: list[str], duration: float, every: float, broker: int | None, echo: bool) -> tuple[Child, int]:
    """Start the emitter, sample it, SIGINT it once its schedule has run ``duration`` seconds; its exit code."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1,
        start_new_session=True,  # a Ctrl-C here reaches it through us, once
    )  # fmt: skip
    child = Child(proc)
    stop = threading.Event()
    reader = threading.Thread(target=_read, args=(child, echo), daemon=True)
    sampler = threading.Thread(target=_sample_loop, args=(child, every, broker, stop), daemon=True)
    reader.start()
    sampler.start()
    try:
        while not child.first_line.wait(1.0):
            if proc.poll() is not None:
                break
        if proc.poll() is None:
            deadline = child.offset + duration + 6.0  # a progress line comes every 5 s
            while proc.poll() is None and time.monotonic() < deadline:
                child.new_line.wait(0.2)
                child.new_line.clear()
                if child.progress and child.progress[-1].wall >= duration - 0.05:
                    break
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            print("soak: the emitter did not stop within 120 s of SIGINT: a second SIGINT", file=sys.stderr)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        raise
    finally:
        stop.set()
        sampler.join()
        reader.join(timeout=10)
    return child, code


# --------------------------------------------------------------------------- figures


def slope_per_hour(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 3:
        return float("nan")
    return float(np.polyfit(np.asarray(xs), np.asarray(ys, dtype=float), 1)[0]) * 3600


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def figures(
    child: Child,
    code: int,
    a: argparse.Namespace,
    shape: dict[str, Any],
    arrival: float,
    warmup: float,
    cum: np.ndarray | None,
) -> dict[str, Any]:
    prog = child.progress
    summ = parse_summary([ln for _, ln in child.other])
    res: dict[str, Any] = {"exit_code": code, "summary": summ}
    if len(prog) < 2:
        raise SystemExit(f"soak: fewer than two progress lines from the emitter (exit {code}):\n"
                         + "\n".join(ln for _, ln in child.other[-30:]))  # fmt: skip
    off = child.offset
    for s in child.samples:
        s.wall = s.t - off
    walls = [p.wall for p in prog]
    i1 = bisect.bisect_left(walls, warmup - 0.05)
    i2 = bisect.bisect_right(walls, a.duration_s + 0.5) - 1
    if i1 >= i2:
        raise SystemExit(f"soak: no steady window: warm-up {warmup:g} s, progress lines at {walls}")
    p1, p2 = prog[i1], prog[i2]
    span = p2.wall - p1.wall
    actual = (p2.events - p1.events) / span
    off_s = shape["offsets_s"]
    ramp = (ramp_integral(off_s, p2.wall) - ramp_integral(off_s, p1.wall)) / span
    expected = a.rate * ramp
    res["window"] = {
        "from_s": p1.wall,
        "to_s": p2.wall,
        "span_s": span,
        "warmup_s": warmup,
        "ramp_over": warmup >= shape["offset_p999_s"],
        "active_sessions": [p1.active, p2.active],
    }
    res["rate"] = {
        "target": a.rate,
        "ramp_factor": ramp,
        "expected": expected,
        "actual": actual,
        "error_vs_expected": actual / expected - 1,
        "error_vs_target": actual / a.rate - 1,
    }
    if cum is not None:
        sched = (scheduled_by(cum, p2.wall) - scheduled_by(cum, p1.wall)) / span
        res["rate"]["schedule"] = sched
        res["rate"]["error_vs_schedule"] = actual / sched - 1
        res["rate"]["schedule_vs_expected"] = sched / expected - 1
        last = prog[-1]
        res["rate"]["behind_schedule_at_last_line"] = scheduled_by(cum, last.wall) - last.events
    steps = [
        (q.events - p.events) / (q.wall - p.wall)
        for p, q in zip(prog[i1:i2], prog[i1 + 1 : i2 + 1], strict=True)
        if q.wall > p.wall
    ]
    res["rate"]["interval_rates"] = {"min": min(steps), "median": statistics.median(steps), "max": max(steps)}
    lag_last = [p.lag_last for p in prog[i1 : i2 + 1] if p.lag_last is not None]
    res["lag_progress"] = {
        "last_lag_median_s": statistics.median(lag_last) if lag_last else None,
        "last_lag_max_s": max(lag_last) if lag_last else None,
        "max_at_warmup_end_s": p1.lag_max,
        "max_at_stop_s": p2.lag_max,
    }
    steady = [s for s in child.samples if s.wall is not None and p1.wall <= s.wall <= p2.wall]
    if len(steady) >= 2:
        s1, s2 = steady[0], steady[-1]
        dcpu = s2.cpu_s - s1.cpu_s
        dt_ = s2.t - s1.t
        res["rss"] = {
            "start_bytes": s1.rss_bytes,
            "end_bytes": s2.rss_bytes,
            "growth": s2.rss_bytes / s1.rss_bytes - 1,
            "peak_bytes": max(s.hwm_bytes for s in child.samples),
            "slope_mib_per_hour": slope_per_hour([s.t for s in steady], [s.rss_bytes / 2**20 for s in steady]),
            "at": [s1.wall, s2.wall],
        }
        res["fds"] = {"start": s1.fds, "end": s2.fds, "max": max(s.fds for s in steady)}
        res["threads"] = {"start": s1.threads, "end": s2.threads}
        res["cpu"] = {
            "emitter_cores": dcpu / dt_,
            "broker_cores": (s2.broker_cpu_s - s1.broker_cpu_s) / dt_
            if s1.broker_cpu_s is not None and s2.broker_cpu_s is not None
            else None,
            "host_busy": (s2.host_busy - s1.host_busy) / (s2.host_total - s1.host_total),
            "host_cores": os.cpu_count(),
            "loadavg1_max": max(s.loadavg1 for s in steady),
            "emitter_cpu_us_per_event": 1e6 * dcpu / max(1.0, actual * dt_),
        }
    sinks = summ.get("sinks", [])
    res["events"] = {
        "sent": sum(s["sent"] for s in sinks),
        "acked": sum(s["acked"] for s in sinks),
        "failed": sum(s["failed"] for s in sinks),
        "dropped": sum(s["dropped"] for s in sinks),
        "progress_failed_max": max((p.failed or 0) for p in prog),
        "progress_dropped_max": max((p.dropped or 0) for p in prog),
        "pending_max": max((p.pending or 0) for p in prog),
        "other_stderr_lines": [ln for _, ln in child.other if not ln.startswith("emitter: ")],
    }
    return res


def report(res: dict[str, Any]) -> list[str]:
    """The figures beside their goals, one line each."""
    r, s, ev = res["rate"], res["summary"], res["events"]
    w = res["window"]
    out = [
        f"steady window: {w['from_s']:.1f} s to {w['to_s']:.1f} s of the schedule ({w['span_s']:.0f} s; "
        f"warm-up {w['warmup_s']:.0f} s excluded)",
        f"rate: {r['actual']:,.1f} events/s sent; expected {r['expected']:,.1f} (target {r['target']:,.0f} x "
        f"ramp {r['ramp_factor']:.4f}): error {100 * r['error_vs_expected']:+.3f} % "
        f"(goal within {100 * GOAL_RATE:.1f} %): {verdict(abs(r['error_vs_expected']) <= GOAL_RATE)}",
        f"      vs the nominal target: {100 * r['error_vs_target']:+.3f} %; 5-s intervals: "
        f"{r['interval_rates']['min']:,.0f} / {r['interval_rates']['median']:,.0f} / "
        f"{r['interval_rates']['max']:,.0f} events/s (min/median/max)",
    ]
    if "schedule" in r:
        out.append(
            f"      the run's own schedule asked {r['schedule']:,.1f} events/s in that window: sent vs schedule "
            f"{100 * r['error_vs_schedule']:+.3f} % (pacing), schedule vs expected "
            f"{100 * r['schedule_vs_expected']:+.3f} % (the load's randomness); "
            f"{r['behind_schedule_at_last_line']:,.0f} events behind at the last progress line"
        )
    if "lag_p99_s" in s:
        out.append(
            f"lag (emitter's summary, whole run): p50 {1e3 * s['lag_p50_s']:.1f} ms, p99 {1e3 * s['lag_p99_s']:.1f} ms"
            f", max {1e3 * s['lag_max_s']:.1f} ms; {s['late_events']:,} events > 1 s late "
            f"(goal p99 <= {1e3 * GOAL_LAG_P99:.1f} ms): {verdict(s['lag_p99_s'] <= GOAL_LAG_P99)}"
        )
    lp = res["lag_progress"]
    if lp["last_lag_median_s"] is not None:
        out.append(
            f"      progress lines in the steady window: last-send lag median {1e3 * lp['last_lag_median_s']:.0f} ms,"
            f" max {1e3 * lp['last_lag_max_s']:.0f} ms; worst so far {1e3 * (lp['max_at_warmup_end_s'] or 0):.0f} ms"
            f" at warm-up's end, {1e3 * (lp['max_at_stop_s'] or 0):.0f} ms at the stop"
        )
    if not w["ramp_over"]:
        out.append(
            f"      (warm-up ends inside the ramp: sessions in flight still grow, {w['active_sessions'][0] or 0:,} -> "
            f"{w['active_sessions'][1] or 0:,}, so RSS growth here is the load's, not a leak; rates are ramp-corrected)"
        )
    if "rss" in res:
        m, f, c = res["rss"], res["fds"], res["cpu"]
        out.append(
            f"RSS: {m['start_bytes'] / 2**20:,.1f} MiB at {m['at'][0]:.0f} s -> {m['end_bytes'] / 2**20:,.1f} MiB at "
            f"{m['at'][1]:.0f} s: {100 * m['growth']:+.2f} % (goal under {100 * GOAL_RSS:.0f} %): "
            f"{verdict(m['growth'] < GOAL_RSS)}; slope {m['slope_mib_per_hour']:+,.1f} MiB/h; peak (VmHWM) "
            f"{m['peak_bytes'] / 2**20:,.1f} MiB"
        )
        out.append(
            f"fds: {f['start']} -> {f['end']} (max {f['max']}; goal: at most {GOAL_FDS} more): "
            f"{verdict(f['end'] - f['start'] <= GOAL_FDS)}; threads {res['threads']['start']} -> "
            f"{res['threads']['end']}"
        )
        bc = f"{c['broker_cores']:.2f}" if c["broker_cores"] is not None else "?"
        out.append(
            f"CPU (steady): emitter {c['emitter_cores']:.2f} cores ({c['emitter_cpu_us_per_event']:.1f} µs per event),"
            f" broker {bc} cores, host {100 * c['host_busy']:.0f} % busy of {c['host_cores']} cores, "
            f"load average (1 min) up to {c['loadavg1_max']:.2f}"
        )
    out.append(
        f"events: {ev['sent']:,} sent, {ev['acked']:,} acknowledged; producer errors {ev['failed']:,}, drops "
        f"{ev['dropped']:,} (goal 0): {verdict(ev['failed'] == 0 and ev['dropped'] == 0 and not s['errors'])}"
        + (f"; errors: {s['errors']}" if s["errors"] else "")
        + f"; at most {ev['pending_max']:,} pending acknowledgement"
    )
    if "topic_records" in res:
        n = res["topic_records"]
        out.append(
            f"independent count (end offsets of {res['topic']}): {n:,} records; "
            f"{verdict(n == ev['acked'])} (= acknowledged)"
            + ("" if ev["sent"] == ev["acked"] else f"; sent - acknowledged = {ev['sent'] - ev['acked']:,}")
        )
    if ev["other_stderr_lines"]:
        out.append(f"other output on stderr ({len(ev['other_stderr_lines'])} lines), first: "
                   f"{ev['other_stderr_lines'][0][:200]}")  # fmt: skip
    return out


def write_csvs(name: str, child: Child) -> tuple[Path, Path]:
    RESULTS.mkdir(exist_ok=True)
    sp, pp = RESULTS / f"soak_{name}_samples.csv", RESULTS / f"soak_{name}_progress.csv"
    with sp.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["wall_s", "rss_mib", "hwm_mib", "fds", "threads", "cpu_s", "broker_cpu_s", "broker_rss_mib",
                     "host_busy_jiffies", "host_total_jiffies", "loadavg1"])  # fmt: skip
        for s in child.samples:
            wr.writerow([
                f"{s.wall:.3f}" if s.wall is not None else "", f"{s.rss_bytes / 2**20:.2f}",
                f"{s.hwm_bytes / 2**20:.2f}", s.fds, s.threads, f"{s.cpu_s:.2f}",
                "" if s.broker_cpu_s is None else f"{s.broker_cpu_s:.2f}",
                "" if s.broker_rss_bytes is None else f"{s.broker_rss_bytes / 2**20:.1f}",
                s.host_busy, s.host_total, s.loadavg1,
            ])  # fmt: skip
    with pp.open("w", newline="") as fh:
        wr = csv.writer(fh)
        cols = ["wall", "events", "active", "sim_s", "lag_last", "lag_max", "pending", "dropped", "failed"]
        wr.writerow([*cols, "interval_rate"])
        prev: ProgressLine | None = None
        for p in child.progress:
            rate = (p.events - prev.events) / (p.wall - prev.wall) if prev and p.wall > prev.wall else ""
            wr.writerow([getattr(p, c) for c in cols] + [rate])
            prev = p
    return sp, pp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=None, help="events per second (default 50000; smoke 5000)")
    ap.add_argument("--duration", default=None, help="schedule time to run (default 1h; smoke 2m)")
    ap.add_argument("--sample", default="5s", help="how often to sample the child's /proc (default 5s)")
    ap.add_argument("--warmup", default=None, help="seconds, N%% of the run, or auto (default; smoke: 10%%)")
    ap.add_argument("--smoke", action="store_true", help="a short check of the tool: 5000 events/s for 2 minutes")
    ap.add_argument("--workflow", default=str(WF))
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default=None, help="default: a fresh soak-XXXXXXXXXX, deleted afterwards")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--sink-props", default="", help="more of the sink URI's query, e.g. acks=1&linger.ms=10")
    ap.add_argument(
        "--retention-bytes",
        type=int,
        default=2 << 30,
        help="per partition, so an hour at 50 k/s (~80 GB) does not fill the disk; end offsets still count all",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-schedule", dest="schedule", action="store_false",
                    help="skip simulating the run's own schedule in this process first")  # fmt: skip
    ap.add_argument("--keep-topic", action="store_true")
    ap.add_argument("--echo", action="store_true", help="echo the emitter's stderr")
    ap.add_argument("--name", default=None, help="result name (default from the rate and duration)")
    a = ap.parse_args()
    a.rate = a.rate or (5000.0 if a.smoke else 50_000.0)
    a.duration = a.duration or ("2m" if a.smoke else "1h")
    a.warmup = a.warmup or ("10%" if a.smoke else "auto")
    a.duration_s = parse_seconds(a.duration)
    every = parse_seconds(a.sample)
    name = a.name or f"{'smoke_' if a.smoke else ''}{a.rate:.0f}eps_{a.duration_s:.0f}s"

    broker = broker_pid()
    if broker is None:
        sys.exit(f"no Kafka broker answers on {a.bootstrap}: start one with deploy/local/kafka.sh start")

    t0 = time.perf_counter()
    shape = workflow_shape(Path(a.workflow))
    per_session = shape["events_per_session"]
    arrival = a.rate / per_session
    if a.warmup == "auto":
        warmup = max(30.0, float(np.ceil(shape["offset_p999_s"] / 10) * 10))
    elif a.warmup.endswith("%"):
        warmup = a.duration_s * float(a.warmup[:-1]) / 100
    else:
        warmup = parse_seconds(a.warmup)
    ramp_end = np.searchsorted(shape["offsets_s"], warmup) / len(shape["offsets_s"])
    print(
        f"soak: {Path(a.workflow).name}: {per_session:.4f} events per session (mean of {shape['sessions']:,} "
        f"sessions simulated here, {time.perf_counter() - t0:.1f} s); target {a.rate:,.0f} events/s -> "
        f"--arrival-rate {arrival:.4f} sessions/s; an event comes up to {shape['offset_p99_s']:.0f} s (p99), "
        f"{shape['offset_p999_s']:.0f} s (p99.9) after its session's start: warm-up {warmup:.0f} s "
        f"(the ramp's share of the target at its end: {ramp_end:.4f})",
        file=sys.stderr,
    )

    topic = a.topic or f"soak-{uuid.uuid4().hex[:10]}"
    configs = {
        "message.timestamp.after.max.ms": str(2**63 - 1),
        "retention.bytes": str(a.retention_bytes),
        "segment.bytes": str(min(256 << 20, a.retention_bytes)),
    }
    asyncio.run(_create_topic(a.bootstrap, topic, a.partitions, configs))
    before = end_offsets(a.bootstrap, topic)
    q = f"partitions={a.partitions}" + (f"&{a.sink_props}" if a.sink_props else "")
    uri = f"kafka://{a.bootstrap}/{topic}?{q}"
    start = dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    run_args = [
        "run", a.workflow, "--speed", "realtime", "--arrival-rate", f"{arrival:.6f}",
        "--duration", f"{a.duration_s + 10:g}s", "--seed", str(a.seed), "--start", start,
        "--progress", "lines", "--sink", uri,
    ]  # fmt: skip
    cum = None
    n_sched = None
    if a.schedule:
        t1 = time.perf_counter()
        counts, n_sched = schedule(run_args, a.duration_s + 30)
        cum = np.cumsum(counts)
        print(f"soak: the run's own schedule: {n_sched:,} events in its first {a.duration_s + 30:g} s "
              f"(simulated here in {time.perf_counter() - t1:.1f} s)", file=sys.stderr)  # fmt: skip
    cmd = [sys.executable, "-m", "emitter", *run_args]
    print(f"soak: {' '.join(cmd)}", file=sys.stderr)
    print(f"soak: sampling every {every:g} s for {a.duration_s:g} s of schedule, then SIGINT", file=sys.stderr)
    try:
        child, code = run_child(cmd, a.duration_s, every, broker, a.echo)
        res = figures(child, code, a, shape, arrival, warmup, cum)
        after = end_offsets(a.bootstrap, topic)
        res["topic"] = topic
        res["topic_records"] = sum(after.values()) - sum(before.get(p, 0) for p in after)
        res["topic_end_offsets"] = after
    finally:
        if not a.keep_topic and a.topic is None:
            from .bench_kafka import delete_topic

            delete_topic(a.bootstrap, topic)

    lines = report(res)
    for ln in lines:
        print(f"soak {name}: {ln}")
    sp, pp = write_csvs(name, child)
    shape_out = {k: v for k, v in shape.items() if k != "offsets_s"}
    write_result(
        f"soak_{name}",
        {
            "benchmark": f"soak_{name}",
            "command": cmd,
            "settings": {
                "rate": a.rate, "duration_s": a.duration_s, "sample_s": every, "warmup_s": warmup,
                "arrival_rate": arrival, "workflow_shape": shape_out, "sink": uri, "topic_configs": configs,
                "scheduled_events_first_duration_plus_30s": n_sched,
            },
            "goals": {"rate_error": GOAL_RATE, "lag_p99_s": GOAL_LAG_P99, "rss_growth": GOAL_RSS, "fds_more": GOAL_FDS},
            **res,
            "lines": lines,
            "samples": [asdict(s) for s in child.samples],
            "progress": [asdict(p) for p in child.progress],
            "stderr": [ln for _, ln in child.other],
        },
    )  # fmt: skip
    print(f"soak: wrote {RESULTS / f'soak_{name}.json'}, {sp.name}, {pp.name}", file=sys.stderr)


if __name__ == "__main__":
    main()
