"""Start-up: ``emitter check`` and a ten-session ``emitter run`` beside ``python -c "import numpy, yaml"``.

Each command is a fresh process (warm caches: the numba kernels are compiled and cached, the files in the
page cache after a first round that is not counted), the three alternate, and medians of ``--runs``
rounds are compared. Goals: check at most 2x the baseline, the ten-session run at most 4x.

    python -m bench.bench_startup [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import write_result

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "baseline": [sys.executable, "-c", "import numpy, yaml"],
    "check": [sys.executable, "-m", "emitter", "check", "workflows/ecommerce.yaml"],
    "run10": [
        sys.executable,
        "-m",
        "emitter",
        "run",
        "workflows/ecommerce.yaml",
        "--sessions",
        "10",
        "--sink",
        "null",
        "--speed",
        "max",
        "--progress",
        "off",
    ],
}
GOALS = {"check": 2.0, "run10": 4.0}


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    for cmd in COMMANDS.values():  # warm-up round: compiled kernels cached, files in the page cache
        wall(cmd)
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for i in range(a.runs):
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
        print(
            f"  round {i + 1}/{a.runs}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), file=sys.stderr
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    res: dict[str, object] = {"benchmark": "startup", "runs": a.runs, "seconds": times, "medians": med}
    for name, goal in GOALS.items():
        ratio = med[name] / med["baseline"]
        res[f"{name}_ratio"] = ratio
        print(
            f"startup: {name} {med[name]:.3f} s vs import numpy, yaml {med['baseline']:.3f} s (medians of {a.runs}): "
            f"{ratio:.2f}x (goal <= {goal:g}x)"
        )
    write_result("startup", res)


if __name__ == "__main__":
    main()
