"""Memory against concurrency and run length: peak RSS and events/s of ``emitter run`` as a new user runs it.

``workflows/ecommerce.yaml``, ``--speed max --duration 10m --sink null``, each row a fresh process measured
once (its peak RSS from ``wait4``):

- closed model at 10 k, 100 k and 1 M concurrent users (``--users``);
- open model with the same number of sessions in flight: ``--arrival-rate`` = sessions / the workflow's mean
  session length (Little's law; the length is measured first, in process, over 20,000 sessions);
- run length: the open model at a fixed ``--arrival-rate 50`` for 1 h and for 48 h of simulated time.

The anchor is the 10 k closed run: each row prints its events/s beside it as a ratio (the goal: at least
0.8x at a million) and its bytes per user in flight, (peak RSS - the 10-session run's RSS) / users (the goal:
1 GiB at a million), beside the formula: events waiting per user x bytes per event (the pool's floor; the
number waiting is measured in process at 100 k). The 48 h row's peak is printed against the 1 h row's (the
goal: within 5 %).

``--breakdown N`` instead runs N closed users in this process under ``tracemalloc`` (numpy's arrays are
traced) and prints where the bytes were at the peak, by source line.

    python -m bench.bench_memory [--users 10000,100000,1000000] [--hours 1,48] [--breakdown 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from .common import write_result

ROOT = Path(__file__).resolve().parent.parent
WF = ROOT / "workflows" / "ecommerce.yaml"
START = "2026-01-01T00:00:00Z"


def run(*load: str, duration: str = "10m") -> dict[str, Any]:
    """One ``emitter run`` in a fresh process: its events, events/s (the CLI's own figure), wall, peak RSS."""
    cmd = [sys.executable, "-m", "emitter", "run", str(WF), *load, "--duration", duration]
    cmd += ["--speed", "max", "--sink", "null", "--progress", "off", "--seed", "1", "--start", START]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench_memory: {' '.join(cmd)} failed:\n{err}")
    m = re.search(r"done: ([\d,]+) events, ([\d,]+) sessions started.*\(([\d,]+) events/s\)", err)
    assert m, err
    return {
        "events": int(m.group(1).replace(",", "")),
        "sessions": int(m.group(2).replace(",", "")),
        "events_per_s": int(m.group(3).replace(",", "")),
        "wall_s": wall,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def breakdown(users: int, top: int) -> None:
    from emitter.cli import main as cli_main

    tracemalloc.start(1)
    argv = [
        "run", str(WF), "--users", str(users), "--duration", "10m", "--speed", "max", "--sink", "null",
        "--progress", "off", "--seed", "1", "--start", START,
    ]  # fmt: skip
    peak: list[Any] = [None, 0]
    stop = threading.Event()

    def watch() -> None:  # snapshot whenever the traced total reaches a new high
        while not stop.wait(0.05):
            cur, _ = tracemalloc.get_traced_memory()
            if cur > peak[1]:
                peak[0], peak[1] = tracemalloc.take_snapshot(), cur

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    with contextlib.suppress(SystemExit):
        cli_main(argv)
    stop.set()
    th.join()
    snap = peak[0]
    assert snap is not None
    stats = snap.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"traced peak {peak[1] / 2**20:,.0f} MiB at {users:,} users ({peak[1] / users:,.0f} B/user); top lines:")
    for s in stats[:top]:
        fr = s.traceback[0]
        where = Path(fr.filename).relative_to(ROOT) if fr.filename.startswith(str(ROOT)) else fr.filename
        print(f"  {s.size / 2**20:9,.1f} MiB {100 * s.size / total:5.1f} %  {where}:{fr.lineno}")


def session_shape() -> tuple[float, int, float]:
    """The workflow's mean session length (s), bytes per pooled event, and events waiting per closed user."""
    import numpy as np

    from emitter.core.engine import DERIVED, Simulation
    from emitter.core.load import Load
    from emitter.core.model import Model
    from emitter.inputs.workflow import load_workflow

    model = Model(load_workflow(WF))
    sim = Simulation(model, 1, Load(sessions=20_000, arrival_rate=100.0), 0)
    first: dict[int, int] = {}
    ends = np.zeros(0, np.int64)
    sess = np.zeros(0, np.int64)
    for b in sim.batches():
        c = b.cols
        sess = np.concatenate([sess, c["sess"]])
        ends = np.concatenate([ends, c["t"] + c["latency"]])
        first.update({int(k): int(v) for k, v in zip(c["sess"][c["seq"] == 0], c["t"][c["seq"] == 0], strict=True)})
    # bytes of one waiting event, as the pool keeps it (narrowed, derived columns left out)
    kept = {k: np.dtype(sim._narrow.get(k, dt)) for k, dt in sim._layout.items() if k not in DERIVED}
    per_event = sum(dt.itemsize for dt in kept.values())
    per_event += len(model.slots) * np.dtype(sim._params_narrow or np.int64).itemsize
    order = np.argsort(sess, kind="stable")
    s_sorted, e_sorted = sess[order], ends[order]
    edges = np.flatnonzero(np.diff(s_sorted)) + 1
    last = np.maximum.reduceat(e_sorted, np.r_[0, edges])
    starts = np.array([first[int(k)] for k in s_sorted[np.r_[0, edges]]])
    mean_s = float((last - starts).mean()) / 1e6
    closed = Simulation(model, 1, Load(users=100_000, duration_s=600), 0)
    waiting = 0
    for _ in closed.batches():
        waiting = max(waiting, len(closed._pool))
    return mean_s, per_event, waiting / 100_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", default="10000,100000,1000000")
    ap.add_argument("--hours", default="1,48", help="run lengths of the fixed-rate open model ('' to skip)")
    ap.add_argument("--breakdown", type=int, default=0, metavar="USERS")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--shape", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.breakdown:
        breakdown(a.breakdown, a.top)
        return
    if a.shape:
        print(json.dumps(session_shape()))
        return
    # in a process of its own: a child forked from a grown parent inherits its peak RSS (ru_maxrss survives exec)
    cmd = [sys.executable, "-m", "bench.bench_memory", "--shape"]
    shape = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True)
    if shape.returncode:
        raise SystemExit(f"bench_memory --shape failed:\n{shape.stderr.decode()}")
    mean_s, per_event, waiting = json.loads(shape.stdout)
    print(
        f"ecommerce: mean session {mean_s:.1f} s, {per_event} B per pooled event, at most {waiting:.2f} events "
        f"waiting per closed user: floor {waiting * per_event:,.0f} B/user",
        file=sys.stderr,
    )
    base = run("--sessions", "10")["peak_rss_bytes"]
    print(f"baseline: a 10-session run peaks at {base / 2**20:,.0f} MiB RSS", file=sys.stderr)
    sizes = [int(x) for x in a.users.split(",")]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        rows.append({"model": "closed", "users": n, **run("--users", str(n))})
    for n in sizes:
        rate = n / mean_s
        rows.append({"model": "open", "users": n, "arrival_rate": rate, **run("--arrival-rate", f"{rate:.3f}")})
    for h in [int(x) for x in a.hours.split(",") if x]:
        r = run("--arrival-rate", "50", duration=f"{h}h")
        rows.append({"model": f"open {h}h", "users": round(50 * mean_s), "hours": h, **r})
    anchor = rows[0]
    print(f"{'model':9} {'in flight':>10} {'events':>12} {'events/s':>10} {'vs 10k':>7} {'peak RSS':>10} {'B/user':>8}")
    for r in rows:
        per = (r["peak_rss_bytes"] - base) / r["users"]
        r["bytes_per_user"] = per
        r["rate_ratio"] = r["events_per_s"] / anchor["events_per_s"]
        print(
            f"{r['model']:9} {r['users']:>10,} {r['events']:>12,} {r['events_per_s']:>10,} "
            f"{r['rate_ratio']:>6.2f}x {r['peak_rss_bytes'] / 2**20:>8,.0f} MiB {per:>8,.0f}"
        )
    runs = {r["hours"]: r for r in rows if "hours" in r}
    if len(runs) > 1:
        short, long = runs[min(runs)], runs[max(runs)]
        growth = long["peak_rss_bytes"] / short["peak_rss_bytes"] - 1
        print(f"run length: {max(runs)} h peaks {100 * growth:+.1f} % against {min(runs)} h (goal: within 5 %)")
    write_result(
        "memory",
        {
            "baseline_rss_bytes": base,
            "mean_session_s": mean_s,
            "bytes_per_event": per_event,
            "waiting_per_user": waiting,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
