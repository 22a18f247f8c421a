"""Helpers shared by the benchmarks: repeat, take medians, print our figure beside the anchor's."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], int]) -> float:
    """Run ``fn`` (returns a count) and give count per second."""
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


def compare(
    name: str, ours: Callable[[], int], anchor: Callable[[], int], runs: int, unit: str, anchor_name: str
) -> dict[str, Any]:
    """Alternate ours and the anchor ``runs`` times; report medians and the ratio of medians."""
    a_rates, o_rates = [], []
    for i in range(runs):
        a_rates.append(timed(anchor))
        o_rates.append(timed(ours))
        print(
            f"  run {i + 1}/{runs}: {anchor_name} {a_rates[-1]:,.0f} {unit}, emitter {o_rates[-1]:,.0f} {unit}",
            file=sys.stderr,
        )
    a, o = statistics.median(a_rates), statistics.median(o_rates)
    res = {
        "benchmark": name,
        "unit": unit,
        "runs": runs,
        "anchor": anchor_name,
        "anchor_median": a,
        "emitter_median": o,
        "ratio": o / a,
        "anchor_runs": a_rates,
        "emitter_runs": o_rates,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"{name}: emitter {o:,.0f} {unit} vs {anchor_name} {a:,.0f} {unit} (medians of {runs}): ratio {o / a:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2))
    return res
