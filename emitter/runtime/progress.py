"""Progress on stderr: a bar on a terminal when the target is known, periodic lines otherwise, a summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from typing import TextIO

from ..core.merge import EventSource
from .runner import RunStats, RunView

__all__ = ["Progress", "format_summary"]


def _hms(us: int) -> str:
    s = us // 1_000_000
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _iso(us: int) -> str:
    d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def status_line(runner: RunView) -> str:
    st = runner.stats
    wall = max(1e-9, runner.elapsed())
    parts = [
        f"{wall:7.1f}s wall",
        f"sim {_hms(st.sim_us)}",
        f"{st.events:,} events ({st.events / wall:,.0f}/s)",
        f"{st.active_sessions:,} active sessions",
    ]
    if runner.speed.paced:
        parts.append(f"lag {st.lag.last:.3f}s (max {st.lag.max:.3f}s)")
    drops = sum(s.stats.dropped for s in runner.sinks)
    fails = sum(s.stats.failed for s in runner.sinks)
    pending = sum(s.stats.pending for s in runner.sinks)
    parts.append(f"pending {pending:,} dropped {drops:,} failed {fails:,}")
    return " | ".join(parts)


class Progress:
    """Reports while ``runner`` runs; ``mode`` is auto, bar, lines or off."""

    def __init__(
        self,
        runner: RunView,
        sim: EventSource,
        mode: str = "auto",
        stream: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        self.runner = runner
        self.sim = sim
        self.stream = stream or sys.stderr
        tty = self.stream.isatty()
        target = sim.target_sessions  # (known before the run: a count of sessions, or the dataset's)
        if mode == "auto":
            mode = "bar" if tty and target else "live" if tty else "lines"
        self.mode = mode
        self.interval = interval if interval is not None else (0.5 if mode in ("bar", "live") else 5.0)

    async def run(self) -> None:
        if self.mode == "off":
            return
        if self.mode in ("bar", "live"):
            await self._rich()
            return
        while True:
            await asyncio.sleep(self.interval)
            print(f"emitter: {status_line(self.runner)}", file=self.stream, flush=True)

    async def _rich(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, ProgressColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        console = Console(file=self.stream)
        target = self.sim.target_sessions
        cols: list[ProgressColumn] = [TextColumn("emitter")]
        if self.mode == "bar" and target:
            cols += [BarColumn(), TaskProgressColumn()]
        cols += [TimeElapsedColumn(), TextColumn("{task.description}")]
        with RichProgress(*cols, console=console, transient=True) as prog:
            task = prog.add_task("", total=target if self.mode == "bar" else None)
            try:
                while True:
                    st = self.runner.stats
                    prog.update(task, completed=st.sessions_ended, description=status_line(self.runner))
                    await asyncio.sleep(self.interval)
            except asyncio.CancelledError:
                prog.update(task, completed=self.runner.stats.sessions_ended)
                raise


def _rate(x: float) -> str:
    """A rate for people: 1,234.5 or 12.3, and 0.00514 (not 0.0) when below one."""
    return f"{x:,.1f}" if x >= 1 else f"{x:.3g}"


def format_summary(runner: RunView, sim: EventSource, seed: int) -> str:
    st: RunStats = runner.stats
    wall = max(st.wall_s, 1e-9)
    span_s = st.sim_us / 1e6
    head = "stopped" if st.stopped_by else "failed" if st.error else "done"
    lines = [
        f"emitter: {head}{f' by {st.stopped_by}' if st.stopped_by else ''}: {st.events:,} events, "
        f"{st.sessions_started:,} sessions started, {st.sessions_ended:,} ended, in {wall:.2f} s wall "
        f"({st.events / wall:,.0f} events/s)",
        f"emitter: simulated {_hms(st.sim_us)} from {_iso(sim.start_us)} at speed {runner.speed}; "
        + (
            f"effective arrival rate {st.sessions_started / (st.last_start_us / 1e6):.3g} sessions/s "
            f"(configured: {sim.load.describe()})"
            if st.last_start_us > 0
            else f"load: {sim.load.describe()}"
        )
        + (f"; {_rate(st.events / span_s)} events per simulated second" if span_s > 0 else ""),
    ]
    if runner.speed.paced:
        lag = st.lag
        lines.append(
            f"emitter: emit time vs schedule: lag p50 {lag.quantile(0.5):.4f} s, p99 {lag.quantile(0.99):.4f} s,"
            f" max {lag.max:.4f} s; {lag.late_events:,} events sent more than {lag.LATE:g} s late"
        )
    for s in runner.sinks:
        ss = s.stats
        lines.append(
            f"emitter: sink {s.describe()}: {ss.sent:,} sent, {ss.acked:,} acknowledged, {ss.failed:,} "
            f"failed, {ss.dropped:,} dropped" + "".join(f"; {n}" for n in ss.notes)
        )
    lines.append(
        f"emitter: seed {seed}, start {_iso(sim.start_us)}, run id {sim.ctx.run_id}"
        f" (repeat with --seed {seed} --start {_iso(sim.start_us)})"
    )
    if st.error:
        lines.append(f"emitter: error: {st.error}")
    return "\n".join(lines)
