"""Memory against concurrency: peak RSS and events/s of ``emitter run`` as a new user would run it.

Closed model, ``workflows/ecommerce.yaml``, ``--speed max --duration 10m --sink null``, at 10 k, 100 k and
1 M concurrent users (``--users``), each a fresh process measured once (its peak RSS from ``wait4``). The
anchor is the 10 k closed run: each row prints its events/s beside it as a ratio (the goal: at least 0.8x at
a million) and its bytes per concurrent user, (peak RSS - the 10-session run's RSS) / users (the goal:
1 GiB at a million). The open-model equivalent is not measured yet.

``--breakdown N`` instead runs N closed users in this process under ``tracemalloc`` (numpy's arrays are
traced) and prints where the bytes were at the peak, by source line.

    python -m bench.bench_memory [--users 10000,100000,1000000] [--breakdown 100000]
"""

from __future__ import annotations

import argparse
import contextlib
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


def run(*load: str) -> dict[str, Any]:
    """One ``emitter run`` in a fresh process: its events, events/s (the CLI's own figure), wall, peak RSS."""
    cmd = [sys.executable, "-m", "emitter", "run", str(WF), *load, "--duration", "10m"]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", default="10000,100000,1000000")
    ap.add_argument("--breakdown", type=int, default=0, metavar="USERS")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    if a.breakdown:
        breakdown(a.breakdown, a.top)
        return
    base = run("--sessions", "10")["peak_rss_bytes"]
    print(f"baseline: a 10-session run peaks at {base / 2**20:,.0f} MiB RSS", file=sys.stderr)
    sizes = [int(x) for x in a.users.split(",")]
    rows: list[dict[str, Any]] = []
    anchor: dict[str, Any] | None = None
    for n in sizes:
        r = {"model": "closed", "users": n, **run("--users", str(n))}
        rows.append(r)
        anchor = anchor or r
    assert anchor is not None
    print(f"{'model':7} {'users':>10} {'events':>12} {'events/s':>10} {'vs 10k':>7} {'peak RSS':>10} {'B/user':>8}")
    for r in rows:
        per = (r["peak_rss_bytes"] - base) / r["users"]
        r["bytes_per_user"] = per
        r["rate_ratio"] = r["events_per_s"] / anchor["events_per_s"]
        print(
            f"{r['model']:7} {r['users']:>10,} {r['events']:>12,} {r['events_per_s']:>10,} "
            f"{r['rate_ratio']:>6.2f}x {r['peak_rss_bytes'] / 2**20:>8,.0f} MiB {per:>8,.0f}"
        )
    write_result("memory", {"baseline_rss_bytes": base, "rows": rows})


if __name__ == "__main__":
    main()
