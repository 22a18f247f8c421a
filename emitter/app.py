"""Wiring: options -> simulation, sinks, runner, progress; signals; the run's exit code.

This is what ``emitter run`` does, callable from Python too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from .core.engine import Load, Simulation
from .core.model import Model
from .runtime.pacing import Speed
from .runtime.progress import Progress, format_summary
from .runtime.runner import Runner, RunStats
from .sinks.base import Sink, open_sink
from .workflow import Workflow

__all__ = ["RunConfig", "build_simulation", "run_async", "run_sync"]

EXIT_OK, EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 130, 143


@dataclass
class RunConfig:
    workflow: Workflow
    seed: int | None = None
    speed: Speed = field(default_factory=lambda: Speed(1.0))
    start_us: int | None = None
    load: Load = field(default_factory=Load)
    sinks: list[str] = field(default_factory=lambda: ["stdout"])
    progress: str = "auto"


def now_us() -> int:
    return time.time_ns() // 1000


def resolve(cfg: RunConfig) -> tuple[int, int]:
    """The run's seed and start: defaults come from the OS here, at the edge, never inside the core."""
    seed = cfg.seed if cfg.seed is not None else int.from_bytes(os.urandom(4), "big")
    start = cfg.start_us if cfg.start_us is not None else now_us() // 1000 * 1000
    return seed, start


def build_simulation(cfg: RunConfig) -> tuple[Simulation, int]:
    seed, start = resolve(cfg)
    return Simulation(Model(cfg.workflow), seed, cfg.load, start), seed


async def run_async(
    cfg: RunConfig,
    *,
    sinks: list[Sink] | None = None,
    stderr: TextIO | None = None,
    install_signals: bool = True,
) -> tuple[int, RunStats, Runner]:
    err = stderr or sys.stderr
    sim, seed = build_simulation(cfg)
    sink_objs = sinks if sinks is not None else [open_sink(u) for u in cfg.sinks]
    runner = Runner(sim, sink_objs, cfg.speed)
    print(
        f"emitter: workflow {cfg.workflow.name!r} ({len(sim.model.states)} endpoints), {sim.load.describe()}, "
        f"speed {cfg.speed}, seed {seed}, run id {sim.ctx.run_id}, sinks: "
        f"{', '.join(s.describe() for s in sink_objs)}",
        file=err,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    if install_signals:
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, runner.request_stop, name)
                installed.append(sig)
    progress = Progress(runner, sim, cfg.progress, stream=err)
    try:
        async with asyncio.TaskGroup() as tg:
            prog_task = tg.create_task(progress.run())
            try:
                await runner.run()
            finally:
                prog_task.cancel()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    print(format_summary(runner, sim, seed), file=err, flush=True)
    st = runner.stats
    if st.error:
        code = EXIT_FAILED
    elif st.stopped_by == "SIGINT":
        code = EXIT_SIGINT
    elif st.stopped_by == "SIGTERM":
        code = EXIT_SIGTERM
    elif any(s.stats.failed for s in sink_objs):
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    return code, st, runner


def run_sync(cfg: RunConfig, **kw: Any) -> int:
    code, _, _ = asyncio.run(run_async(cfg, **kw))
    return code
