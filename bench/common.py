"""Helpers shared by the benchmarks: repeat, take medians, print our figure beside the anchor's."""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], int]) -> float:
    """Run ``fn`` (returns a count) and give count per second."""
    return timed_cpu(fn)[0]


def timed_cpu(fn: Callable[[], int]) -> tuple[float, float]:
    """Count per wall second and per CPU second of this process (all its threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9)


def compare(
    name: str, ours: Callable[[], int], anchor: Callable[[], int], runs: int, unit: str, anchor_name: str
) -> dict[str, Any]:
    """Alternate ours and the anchor ``runs`` times; report medians and the ratio of medians."""
    a_rates, o_rates, a_cpu, o_cpu = [], [], [], []
    for i in range(runs):
        w, c = timed_cpu(anchor)
        a_rates.append(w)
        a_cpu.append(c)
        w, c = timed_cpu(ours)
        o_rates.append(w)
        o_cpu.append(c)
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
        "anchor_per_cpu_second_median": statistics.median(a_cpu),
        "emitter_per_cpu_second_median": statistics.median(o_cpu),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"{name}: emitter {o:,.0f} {unit} vs {anchor_name} {a:,.0f} {unit} (medians of {runs}): ratio {o / a:.2f}x")
    oc, ac = statistics.median(o_cpu), statistics.median(a_cpu)
    print(f"{name}: per CPU-second of this process: emitter {oc:,.0f} vs {anchor_name} {ac:,.0f}: ratio {oc / ac:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2))
    return res


def write_result(name: str, res: dict[str, Any]) -> None:
    """``bench/results/NAME.json``, with the interpreter and machine it was measured on."""
    res.setdefault("python", platform.python_version())
    res.setdefault("machine", platform.machine())
    res.setdefault("cpus", os.cpu_count())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2))


def print_profile(prof: cProfile.Profile, title: str, top: int = 25, also: str | None = None) -> None:
    """The top functions by own time on stderr (and, with ``also``, a cumulative view of matching ones)."""
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(top)
    print(f"\n--- cProfile of {title} (sorted by own time) ---", file=sys.stderr)
    print(s.getvalue(), file=sys.stderr)
    if also:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(also, 25)
        print(s.getvalue(), file=sys.stderr)


def run_at_max_speed(
    wf: Any,
    sink: Any,
    sessions: int,
    seed: int,
    start_us: int,
    profile: cProfile.Profile | None = None,
    observers: list[Any] | None = None,
) -> Any:
    """Simulate ``sessions`` of ``wf`` into ``sink`` as fast as possible; the run's stats, or an error if any
    event was not acknowledged."""
    from emitter.core.engine import Simulation
    from emitter.core.load import Load
    from emitter.core.model import Model
    from emitter.runtime.pacing import Speed
    from emitter.runtime.runner import Runner

    sim = Simulation(Model(wf), seed, Load(sessions=sessions), start_us)
    runner = Runner(sim, [sink], Speed(None), observers=observers)
    if profile is not None:
        profile.enable()
    try:
        asyncio.run(runner.run())
    finally:
        if profile is not None:
            profile.disable()
    st, ss = runner.stats, sink.stats
    if st.error or ss.failed or ss.dropped or ss.acked != st.events:
        raise RuntimeError(f"emitter run incomplete: {st.error}, {ss}")
    return st
