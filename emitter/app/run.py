"""Running: a run's configuration -> simulation, sinks, runner, progress; signals; the run's exit code.

This is what ``emitter run`` does, callable from Python too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..core.engine import USER_BLOCK, Simulation, closed_blocks, closed_chunk
from ..core.faults import MAX_FAULTS, Dynamics, RandomFaults
from ..core.limits import OutOfRange
from ..core.load import Load
from ..core.merge import MultiSimulation
from ..core.model import Model
from ..core.spec import Workflow
from ..core.streams import stream, workflow_seed
from ..core.truth import truth_records
from ..errors import ConfigError, one_line
from ..inputs.options import option
from ..report.record import RunRecorder
from ..report.run import run_report
from ..runtime.pacing import Speed
from ..runtime.progress import Progress, format_summary
from ..runtime.runner import CLOSED_PIPE, Ready, Runner, RunStats, RunView
from ..sinks.base import Sink, open_sink
from ..sinks.truth import write_truth
from .outputs import check_writable

if TYPE_CHECKING:
    from ..runtime.selfmetrics import SelfMetrics

__all__ = ["RunConfig", "build_simulation", "run_async", "run_sync"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM, EXIT_PIPE = 0, 1, 2, 130, 143, 141


@dataclass
class RunConfig:
    workflow: Workflow
    seed: int | None = None
    speed: Speed = field(default_factory=lambda: option("speed").default)
    start_us: int | None = None
    load: Load = field(default_factory=Load)
    sinks: list[str] = field(default_factory=lambda: list(option("sink").default))
    progress: str = field(default_factory=lambda: option("progress").default)
    dynamics: Dynamics = field(default_factory=Dynamics)
    workflows: list[tuple[Workflow, float]] = field(default_factory=list)  # several, weighted (else workflow)
    random_faults: list[RandomFaults] = field(default_factory=list)
    truth: str | None = None
    scenario: str | None = None
    scenario_digest: str | None = None
    report: str | None = None  # an HTML run report goes here when the run ends
    metrics: str | None = None  # [HOST:]PORT: the process's own metrics served there for Prometheus
    metrics_hold_s: float = 0.0  # after the summary, keep serving them this long (a last scrape)
    metrics_otlp: str | None = None  # and/or pushed over OTLP to this URI ...
    metrics_interval_s: float = 10.0  # ... this often (and once more at the end)
    metrics_sources: tuple[str, str] = ("--metrics-port", "--metrics-otlp")  # (flags or variables: messages)
    shard: tuple[int, int] = (0, 1)  # (I, N): this process emits the I-th of N disjoint parts of the run

    @property
    def weighted(self) -> list[tuple[Workflow, float]]:
        return self.workflows or [(self.workflow, 1.0)]


def now_us() -> int:
    return time.time_ns() // 1000


def resolve(cfg: RunConfig) -> tuple[int, int]:
    """The run's seed and start: defaults come from the OS here, at the edge, never inside the core."""
    seed = cfg.seed if cfg.seed is not None else int.from_bytes(os.urandom(4), "big")
    start = cfg.start_us if cfg.start_us is not None else now_us() // 1000 * 1000
    return seed, start


def realise_dynamics(cfg: RunConfig, seed: int) -> Dynamics:
    """Scheduled faults plus the random ones, drawn from the run's seed over the run's horizon."""
    dyn = cfg.dynamics
    if not cfg.random_faults:
        return dyn
    load = cfg.load
    if load.dataset:
        horizon = load.date_range_s
    elif load.duration_s is not None:
        horizon = load.duration_s
    elif load.sessions is not None and not load.closed:
        horizon = load.sessions / load.rate
    else:
        horizon = 86_400.0
    rng = stream(seed, "random_faults")
    faults = list(dyn.faults)
    for spec in cfg.random_faults:
        faults += spec.draw(rng, round(horizon * 1e6), len(faults))
    out = replace(dyn, faults=tuple(faults))
    if len(out.fault_ids) > MAX_FAULTS:  # (every event carries its faults as a 64-bit mask)
        rates = ", ".join(f"{r.id or r.kind} at {r.rate_per_hour:g}/h" for r in cfg.random_faults)
        raise ConfigError.one(
            cfg.scenario or "scenario",
            ("random_faults",),
            f"{rates} over the run's {horizon:g} s draws more faults than a run can hold ({MAX_FAULTS} in all, "
            f"{len(dyn.fault_ids)} of them scheduled): lower rate_per_hour or shorten the run",
        )
    return out


def _split(total: int | None, weights: list[float]) -> list[int | None]:
    """Largest-remainder split of a count by weights (each part at least 1)."""
    if total is None:
        return [None] * len(weights)
    raw = [total * w for w in weights]
    parts = [max(1, int(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order[: max(0, total - sum(parts))]:
        parts[i] += 1
    return list(parts)


def build_simulation(cfg: RunConfig) -> tuple[Simulation | MultiSimulation, int, Dynamics]:
    """The run's simulation, seed and faults; a load the core cannot hold (the dataset model drawing more
    sessions than it can keep) is a one-line input error here, before anything runs."""
    sim, seed, dyn = _build(cfg)
    try:
        sim.target_sessions  # noqa: B018 - draws the dataset model's counts now, where a refusal is an input error
    except OutOfRange as exc:
        raise ConfigError.one("load", ("num_users",), str(exc)) from None
    return sim, seed, dyn


def _build(cfg: RunConfig) -> tuple[Simulation | MultiSimulation, int, Dynamics]:
    if cfg.shard[1] > 1 and (cfg.seed is None or cfg.start_us is None):
        raise ConfigError.one(
            "command line",
            ("--shard",),
            "needs --seed and --start (or the scenario's seed and start): every shard must simulate the same run",
        )
    seed, start = resolve(cfg)
    check_shardable(cfg)
    dyn = realise_dynamics(cfg, seed)
    wfs = cfg.weighted
    extra = cfg.scenario_digest or ""
    if len(wfs) == 1 and cfg.load.closed:
        return _closed(cfg, Model(wfs[0][0]), seed, start, extra, dyn), seed, dyn
    if len(wfs) == 1:
        return Simulation(Model(wfs[0][0]), seed, cfg.load, start, extra, dyn, shard=cfg.shard), seed, dyn
    load = cfg.load
    weights = [w for _, w in wfs]
    seeds = [workflow_seed(seed, i) for i in range(len(wfs))]
    sessions = _split(load.sessions, weights)
    users = _split(load.users, weights)
    num_users = _split(load.num_users, weights)  # the dataset model: each workflow its own users
    firsts = [sum(n or 0 for n in num_users[:i]) for i in range(len(wfs))]
    first = Simulation(Model(wfs[0][0]), seed, load, start, extra, dyn)
    sims = []
    for i, (wf, w) in enumerate(wfs):
        sub = replace(
            load,
            sessions=sessions[i],
            users=users[i],
            arrival_rate=None if load.closed or load.dataset else load.rate * w,
            num_users=num_users[i],
            first_user=firsts[i],
        )
        sims.append(
            Simulation(
                Model(wf),
                seeds[i],
                sub,
                start,
                extra,
                dyn,
                sess_stride=len(wfs),
                sess_offset=i,
                run_id=first.ctx.run_id,
                key_seed=seed,
                shard=cfg.shard,
            )
        )
    return MultiSimulation(sims, load), seed, dyn


def check_shardable(cfg: RunConfig, flag: str = "--shard", parts: int | None = None) -> None:
    """A closed-model run splits into shards (or workers) by blocks of users, which needs a run bounded by
    time alone, of one workflow, with users for every part (``parts``: the shards the run is split in)."""
    load = cfg.load
    n = cfg.shard[1] if parts is None else parts
    if n <= 1 or not load.closed:
        return
    why = None
    if load.sessions is not None:
        why = "with --sessions: which sessions are the first N depends on every user; bound it with --duration"
    elif len(cfg.weighted) > 1:
        why = "when it runs several workflows: split it by workflow, or use the open model"
    elif load.users is not None and load.users < n * USER_BLOCK:
        why = (
            f"into {n} parts with {load.users:,} users: it splits by blocks of {USER_BLOCK:,} users, so it needs "
            f"{n * USER_BLOCK:,} users or more"
        )
    if why:
        raise ConfigError.one("command line", (flag,), f"the closed model (--users) cannot be split {why}")


def _closed(
    cfg: RunConfig, model: Model, seed: int, start: int, extra: str, dyn: Dynamics
) -> Simulation | MultiSimulation:
    """The closed model: one simulation, or one per block of users (closed_blocks), this shard's blocks
    merged in time order."""
    load = cfg.load
    blocks = closed_blocks(load)
    whole = Simulation(model, seed, load, start, extra, dyn)
    if len(blocks) == 1:
        return whole
    i, n = cfg.shard
    sims = [
        Simulation(
            model,
            seed,
            replace(load, users=count, first_user=first),
            start,
            extra,
            dyn,
            sess_stride=len(blocks),
            sess_offset=b,
            run_id=whole.ctx.run_id,
            key_seed=seed,
            stream_block=b,
            population=load.users,
            # the blocks walk as many users ahead together as the run would alone (the pool holds them)
            chunk=max(1, closed_chunk(load.users or 0) // len(blocks)),
        )
        for b, (first, count) in enumerate(blocks)
        if b % n == i
    ]
    return MultiSimulation(sims, load, like=whole)


async def run_async(
    cfg: RunConfig,
    *,
    sinks: list[Sink] | None = None,
    stderr: TextIO | None = None,
    install_signals: bool = True,
    ready: Ready | None = None,
    on_runner: Callable[[Runner], None] | None = None,
) -> tuple[int, RunStats, Runner]:
    """Run ``cfg``; ``ready`` is the runner's start hook (:class:`Runner`), ``on_runner`` sees the runner
    before it starts (a ``--workers`` worker reports from it)."""
    err = stderr or sys.stderr
    sim, seed, dyn = build_simulation(cfg)
    report = report_path(cfg.report) if cfg.report else None  # refused now, not after the run
    sink_objs = sinks if sinks is not None else [open_sink(u) for u in cfg.sinks]
    recorder = RunRecorder(cfg.speed.factor, len(dyn.fault_ids)) if report else None
    runner = Runner(sim, sink_objs, cfg.speed, observers=[recorder] if recorder else None, ready=ready)
    if on_runner is not None:
        on_runner(runner)
    if cfg.metrics_hold_s > 0 and not cfg.metrics:
        raise ConfigError.one("command line", ("--metrics-hold",), "needs --metrics-port (there is no page to keep)")
    served = _serve_metrics(cfg, runner, err) if cfg.metrics or cfg.metrics_otlp else None
    try:
        return await _run(cfg, runner, sim, seed, dyn, sink_objs, recorder, report, err, served, install_signals)
    finally:
        if served:
            served.close()


async def _run(
    cfg: RunConfig,
    runner: Runner,
    sim: Simulation | MultiSimulation,
    seed: int,
    dyn: Dynamics,
    sink_objs: list[Sink],
    recorder: RunRecorder | None,
    report: str | None,
    err: TextIO,
    served: SelfMetrics | None,
    install_signals: bool,
) -> tuple[int, RunStats, Runner]:
    print(header_line(cfg, sim, seed, dyn, [s.describe() for s in sink_objs]), file=err, flush=True)
    recs = run_truth(cfg, sim, seed, dyn) if cfg.truth or report else []  # made only when written or drawn
    if cfg.truth:
        await write_run_truth(cfg, recs, err)
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    if install_signals:
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, _on_signal, runner, name, err)
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
        # the hold's own handlers at once: a signal after the run ends the hold, not the process
        hold = _Hold(loop, install_signals) if served and served.url and cfg.metrics_hold_s > 0 else None
    print(format_summary(runner, sim, seed), file=err, flush=True)
    st = runner.stats
    report_ok = True
    if report and recorder:
        broken = runner.observer_errors[0] if runner.observer_errors else None
        report_ok = _write_report(report, recorder, recs, cfg, sim.load, st, broken, err)
    if hold is not None:
        assert served is not None
        if st.stopped_by is None:
            print(
                f"emitter: serving the final metrics at {served.url} for {cfg.metrics_hold_s:g} s", file=err, flush=True
            )
        await hold.wait(cfg.metrics_hold_s if st.stopped_by is None else 0.0)
    if st.error:
        code = EXIT_USAGE if st.input_error else EXIT_FAILED
    elif st.stopped_by == "SIGINT":
        code = EXIT_SIGINT
    elif st.stopped_by == "SIGTERM":
        code = EXIT_SIGTERM
    elif st.stopped_by == CLOSED_PIPE:
        code = EXIT_PIPE
        _quiet_stdout()
    elif any(s.stats.failed for s in sink_objs) or not report_ok:
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    return code, st, runner


def header_line(
    cfg: RunConfig, sim: Simulation | MultiSimulation, seed: int, dyn: Dynamics, sinks: list[str], more: str = ""
) -> str:
    """The run's first line: what runs, how, with which seed and run id, where to (``more``: after the shard)."""
    names = " + ".join(f"{wf.name!r}" + (f" ({w:.0%})" if len(cfg.weighted) > 1 else "") for wf, w in cfg.weighted)
    return (
        f"emitter: {'scenario ' + repr(cfg.scenario) + ', ' if cfg.scenario else ''}workflow {names}, "
        f"{sim.load.describe()}, speed {cfg.speed}, seed {seed}, run id {sim.ctx.run_id}"
        + (f", shard {cfg.shard[0]}/{cfg.shard[1]}" if cfg.shard[1] > 1 else "")
        + more
        + (f", {len(dyn.fault_ids)} faults" if dyn.fault_ids else "")
        + f", sinks: {', '.join(sinks)}"
    )


def run_truth(cfg: RunConfig, sim: Simulation | MultiSimulation, seed: int, dyn: Dynamics) -> list[dict[str, Any]]:
    """The run's manifest and fault records."""
    return truth_records(
        run_id=sim.ctx.run_id,
        seed=seed,
        start_us=sim.start_us,
        speed=str(cfg.speed),
        workflows=cfg.weighted,
        dynamics=dyn,
        load=sim.load.describe(),
        scenario=cfg.scenario,
        scenario_digest=cfg.scenario_digest,
    )


async def write_run_truth(cfg: RunConfig, recs: list[dict[str, Any]], err: TextIO) -> None:
    """``--truth``: written by shard 0 only (one truth per run, not one per shard); the others say so."""
    assert cfg.truth
    if cfg.shard[0] > 0:
        print(f"emitter: truth: left to shard 0/{cfg.shard[1]} (the run's one manifest and fault records)", file=err)
        return
    where = await write_truth(cfg.truth, recs)
    print(f"emitter: truth: manifest and {len(recs) - 1} fault records written to {where}", file=err, flush=True)


def _serve_metrics(cfg: RunConfig, runner: RunView, err: TextIO) -> SelfMetrics:
    from ..errors import redact_uri
    from ..runtime.selfmetrics import SelfMetrics, watch_run

    served = SelfMetrics(cfg.metrics, cfg.metrics_otlp, cfg.metrics_interval_s, sources=cfg.metrics_sources)
    watch_run(served.meter, runner)
    if served.url:
        print(f"emitter: own metrics for Prometheus at {served.url}", file=err, flush=True)
    if cfg.metrics_otlp:
        print(
            f"emitter: own metrics over OTLP to {redact_uri(cfg.metrics_otlp)} every {cfg.metrics_interval_s:g} s",
            file=err,
            flush=True,
        )
    return served


class _Hold:
    """Keeps /metrics up after the run so that a last scrape sees the final figures; SIGINT or SIGTERM ends
    the wait early (the run's outcome stands). Its handlers are installed as the run's are removed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, install_signals: bool) -> None:
        self.loop = loop
        self.done = asyncio.Event()
        self.installed: list[int] = []
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.done.set)
                    self.installed.append(sig)

    async def wait(self, seconds: float) -> None:
        try:
            if seconds > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.done.wait(), seconds)
        finally:
            for sig in self.installed:
                self.loop.remove_signal_handler(sig)


def report_path(uri: str) -> str:
    """Where ``--report`` writes (``file:PATH`` or a path), checked before the run: a run's work is not
    lost to an unwritable report at its end. Nothing is created or truncated yet."""
    path = uri[5:] if uri.startswith("file:") else uri
    if "\x00" in path:
        raise ConfigError.one("--report", (uri,), "contains a NUL character")
    if "://" in path:
        raise ConfigError.one("--report", (uri,), "expected a file path or file:PATH, not a URI")
    check_writable(path, "--report")
    return str(Path(path))


def _write_report(
    path: str,
    rec: RunRecorder,
    truth: list[dict[str, Any]],
    cfg: RunConfig,
    load: Load,
    st: RunStats,
    broken: str | None,
    err: TextIO,
) -> bool:
    """Write the report beside its destination, then move it there (a reader never sees half a page; a
    failure leaves the last report as it was). A failure is one line, not a traceback: the run's own
    outcome stands."""
    outcome = {"ended by": st.stopped_by or ("error: " + st.error if st.error else "the load's end")}
    if broken:
        outcome["report"] = f"incomplete: recording stopped at an error ({broken})"
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        text = run_report(rec, truth, [wf for wf, _ in cfg.weighted], load=load, extra=outcome)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 - the report is an extra: say why, keep the run's result
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        print(f"emitter: error: --report: {path}: not written: {one_line(str(exc)) or type(exc).__name__}", file=err)
        return False
    print(f"emitter: run report written to {path}", file=err, flush=True)
    return True


def _on_signal(runner: Runner, name: str, err: TextIO) -> None:
    """The first SIGINT or SIGTERM stops the run cleanly (flush, summary); a second one ends it at once."""
    if not runner.stopping:
        runner.request_stop(name)
        return
    print(f"emitter: {name} again: stopping now, without waiting for the sinks", file=err, flush=True)
    os._exit(EXIT_SIGINT if runner.stats.stopped_by == "SIGINT" else EXIT_SIGTERM)


def _quiet_stdout() -> None:
    """Nothing more goes to standard output's closed pipe (not even Python's flush at exit)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_sync(cfg: RunConfig, **kw: Any) -> int:
    code, _, _ = asyncio.run(run_async(cfg, **kw))
    return code
