"""``emitter run --workers W``: one run on W processes of this machine, seen as one.

Each worker is a process running shard ``k`` of the run (``--shard``), so the workers' events together are
the single run's, byte for byte. The parent resolves the seed and start once, starts the workers, starts
their schedules at one instant, sums their reports into one progress display and one summary, writes the
run's one truth file, and serves the run's metrics.

Where the events go, per sink:

- ``stdout`` and ``file:PATH``: one ordered stream. Each worker encodes its lines and sends them with their
  order keys to the parent (:class:`~emitter.sinks.pipe.PipeSink`), which merges them
  (:class:`~emitter.runtime.fleet.OrderedMerge`) and writes the single run's bytes as they are.
- ``file:PATH`` with ``{worker}`` in it, ``parquet:PATH`` (which needs ``{worker}``): a file per worker.
- ``kafka://``, ``otlp://``, ``null``: each worker its own producer or exporter. A transactional Kafka sink
  needs ``{worker}`` in its ``transactional.id`` (two producers sharing an id fence each other).

``{worker}`` is the worker's shard number: ``0 .. W-1``, or with ``--shard I/N`` (a pod running W workers)
``I + N*k``, unique across the whole fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any, TextIO

from ..core.merge import MultiSimulation
from ..errors import ConfigError, EmitterError, one_line, redact_uri
from ..runtime.fleet import Fleet, OrderedMerge, SinkTotal, snapshot
from ..runtime.progress import Progress, format_summary
from ..runtime.runner import LagStats, Runner
from ..sinks.base import PipeClosed, Sink, SinkError, open_sink, scheme_of
from ..sinks.basic import FileSink, StdoutSink
from .run import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    RunConfig,
    _Hold,
    _quiet_stdout,
    _serve_metrics,
    build_simulation,
    check_shardable,
    header_line,
    resolve,
    run_async,
    run_truth,
    write_run_truth,
)

__all__ = ["MAX_WORKERS", "run_workers"]

MAX_WORKERS = 1024
PLACEHOLDER = "{worker}"
REPORT_EVERY = 0.2  # seconds between a worker's reports
MERGE_AHEAD = 2_000_000  # lines the merge holds from a worker that is ahead before it stops reading it


@dataclass(frozen=True)
class _Plan:
    """The run's sinks split between the parent (one ordered stream) and the workers (one each)."""

    merged: list[str]  # opened by the parent, fed by every worker's pipe
    own: list[str]  # opened by every worker, {worker} filled in


def _plan(cfg: RunConfig) -> _Plan:
    merged: list[str] = []
    own: list[str] = []
    for uri in cfg.sinks:
        scheme = scheme_of(uri)
        shown = redact_uri(uri)
        probe = open_sink(uri.replace(PLACEHOLDER, "0"))  # a bad URI is refused here, before any worker starts
        if scheme in ("stdout", "file") and PLACEHOLDER not in uri:
            merged.append(uri)
        elif scheme == "parquet" and PLACEHOLDER not in uri:
            raise ConfigError.one(
                "--sink",
                (shown,),
                f"with --workers, a Parquet sink writes a file per worker: put {PLACEHOLDER} in its path "
                "(for example parquet:out/part-{worker}.parquet)",
            )
        elif scheme == "kafka" and "transactional_id" in getattr(getattr(probe, "settings", None), "producer", {}):
            if PLACEHOLDER not in uri:
                raise ConfigError.one(
                    "--sink",
                    (shown, "transactional.id"),
                    f"with --workers, each worker's producer needs its own transactional id: put {PLACEHOLDER} "
                    "in it (two producers sharing one fence each other)",
                )
            own.append(uri)
        else:
            own.append(uri)
    return _Plan(merged, own)


def _check(cfg: RunConfig, workers: int) -> None:
    if cfg.report:
        raise ConfigError.one(
            "command line",
            ("--workers",),
            "--report is not available with --workers: write the events to a file and run emitter report on it",
        )
    check_shardable(cfg, "--workers", cfg.shard[1] * workers)
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError.one("command line", ("--workers",), f"expected 1 to {MAX_WORKERS} workers, got {workers}")


def run_workers(cfg: RunConfig, workers: int, *, stderr: TextIO | None = None) -> int:
    """Run ``cfg`` on ``workers`` processes; the exit code the single run would have."""
    _check(cfg, workers)
    seed, start = resolve(cfg)
    cfg = replace(cfg, seed=seed, start_us=start)
    plan = _plan(cfg)
    parent = _Parent(cfg, workers, plan, stderr or sys.stderr)
    parent.spawn()  # before any thread or event loop of ours exists (a fork copies only this thread)
    return asyncio.run(parent.run())


class _Parent:
    def __init__(self, cfg: RunConfig, workers: int, plan: _Plan, err: TextIO) -> None:
        self.cfg = cfg
        self.workers = workers
        self.plan = plan
        self.err = err
        self.sim, self.seed, self.dyn = build_simulation(cfg)  # the whole (outer shard's) run, never walked here
        self.merged_sinks: list[Sink] = [open_sink(u) for u in plan.merged]
        totals = [SinkTotal(redact_uri(u), workers) for u in plan.own]
        self.fleet = Fleet(
            workers,
            cfg.speed,
            [*self.merged_sinks, *totals],
            range(len(self.merged_sinks), len(self.merged_sinks) + len(totals)),
        )
        self.merge = OrderedMerge(workers) if plan.merged else None
        self.merge_lag = LagStats()
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self.gates: list[threading.Event] = []
        self.ended = [False] * workers
        self.codes: list[int | None] = [None] * workers
        self.said: list[str] = []
        self.signalled: str | None = None
        self.going = False  # the workers were told to start (or to stop before starting)

    def _shard(self, k: int) -> tuple[int, int]:
        i, n = self.cfg.shard
        return i + n * k, n * self.workers

    def _worker_cfg(self, k: int) -> RunConfig:
        number = str(self._shard(k)[0])
        return replace(
            self.cfg,
            shard=self._shard(k),
            sinks=[u.replace(PLACEHOLDER, number) for u in self.plan.own],
            truth=None,
            report=None,
            metrics=None,
            metrics_otlp=None,
            metrics_hold_s=0.0,
            progress="off",
        )

    async def run(self) -> int:
        cfg, err, fleet = self.cfg, self.err, self.fleet
        started: list[Sink] = []
        for s in self.merged_sinks:
            await s.start()
            started.append(s)
        served = _serve_metrics(cfg, fleet, err) if cfg.metrics or cfg.metrics_otlp else None
        try:
            self._header()
            if cfg.truth:
                await write_run_truth(cfg, run_truth(cfg, self.sim, self.seed, self.dyn), err)
            loop = asyncio.get_running_loop()
            installed = self._signals(loop)
            queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(maxsize=4 * self.workers)
            readers = [
                threading.Thread(target=self._read, args=(k, loop, queue), name=f"emitter-worker-{k}", daemon=True)
                for k in range(self.workers)
            ]
            for r in readers:
                r.start()
            progress = Progress(fleet, self.sim, cfg.progress, stream=err)
            prog_task: asyncio.Task[None] | None = None
            try:
                ready = 0
                while not all(self.ended):
                    k, msg = await queue.get()
                    kind = msg[0]
                    if kind == "ready":
                        ready += 1
                    elif kind == "stat":
                        fleet.update(k, msg[1])
                    elif kind == "data" and self.merge is not None:
                        self.merge.add(k, msg[1], msg[3], msg[2])
                        await self._write()
                    elif kind == "through" and self.merge is not None:
                        self.merge.advance(k, msg[1])
                        await self._write()
                    elif kind in ("done", "eof"):
                        self._ended(k, msg)
                        if self.merge is not None:
                            self.merge.end(k)
                            await self._write()
                    # the schedules start together once every worker has its first events (or has none)
                    if not self.going and ready + sum(self.ended) == self.workers:
                        self.going = True
                        t0 = time.monotonic() + 0.05
                        fleet.start(t0)
                        for k2, c in enumerate(self.conns):
                            if not self.ended[k2]:
                                with contextlib.suppress(OSError, ValueError):
                                    c.send(("go", t0))
                        prog_task = asyncio.create_task(progress.run())
            except SinkError as exc:
                if isinstance(exc, PipeClosed):
                    fleet.stats.stopped_by = fleet.stats.stopped_by or "closed pipe"
                else:
                    fleet.fail(str(exc))
                self._stop_workers(signal.SIGTERM)
                await self._drain(queue)
            finally:
                if prog_task is not None:
                    prog_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await prog_task
                for sig in installed:
                    loop.remove_signal_handler(sig)
                # the hold's own handlers at once: a signal after the run ends the hold, not the process
                hold = _Hold(loop, True) if served and served.url and cfg.metrics_hold_s > 0 else None
            for p in self.procs:
                await asyncio.to_thread(p.join, 10)
                if p.is_alive():
                    p.kill()
            for s in started:
                try:
                    await s.stop()
                except PipeClosed:
                    fleet.stats.stopped_by = fleet.stats.stopped_by or "closed pipe"
                except SinkError as exc:
                    fleet.fail(str(exc))
            fleet.finish()
            print(format_summary(fleet, self.sim, self.seed), file=err, flush=True)
            if self.merge is not None and cfg.speed.paced and self.merge_lag.counts.sum():
                lag = self.merge_lag
                print(
                    f"emitter: ordered stream (merged by the parent) vs schedule: lag p50 {lag.quantile(0.5):.4f} s,"
                    f" p99 {lag.quantile(0.99):.4f} s, max {lag.max:.4f} s",
                    file=err,
                    flush=True,
                )
            shown = fleet.stats.error or ""
            for line in self.said:  # (a worker's error the summary already gives is not said twice)
                if line.partition(" error: ")[2] not in shown or not line.partition(" error: ")[2]:
                    print(line, file=err, flush=True)
            code = self._code()
            if hold is not None:
                assert served is not None
                if fleet.stats.stopped_by is None:
                    print(f"emitter: serving the final metrics at {served.url} for {cfg.metrics_hold_s:g} s", file=err)
                await hold.wait(cfg.metrics_hold_s if fleet.stats.stopped_by is None else 0.0)
            return code
        finally:
            if served:
                served.close()

    def _header(self) -> None:
        shards = ", ".join(f"{self._shard(k)[0]}/{self._shard(k)[1]}" for k in range(min(self.workers, 4)))
        more = f", {self.workers} workers (shards {shards}{', ...' if self.workers > 4 else ''})"
        sinks = [s.describe() for s in self.fleet.sinks]
        print(header_line(self.cfg, self.sim, self.seed, self.dyn, sinks, more), file=self.err, flush=True)

    def spawn(self) -> None:
        """Start the workers. On Linux they are forked: everything is imported already, so a worker starts
        in milliseconds, not the second a fresh interpreter takes (this process has no other thread yet)."""
        method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
        ctx: Any = multiprocessing.get_context(method)
        workflows = self.sim.parts if isinstance(self.sim, MultiSimulation) else 1  # (the order's time ties)
        for k in range(self.workers):
            mine, theirs = ctx.Pipe(duplex=True)
            # a forked worker closes its copies of the earlier workers' parent ends: else the parent's death
            # would not reach their pipes
            inherited = [c.fileno() for c in self.conns] if method == "fork" else []
            p = ctx.Process(
                target=worker_main,
                args=(self._worker_cfg(k), theirs, bool(self.plan.merged), workflows, inherited),
                name=f"emitter-worker-{k}",
            )
            p.start()
            theirs.close()
            self.procs.append(p)
            self.conns.append(mine)
            self.gates.append(threading.Event())
            self.gates[-1].set()

    def _read(self, k: int, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[tuple[int, Any]]) -> None:
        """A worker's messages onto the loop's queue (blocking while the queue is full, or while the merge
        holds enough of this worker's lines: then the worker waits on its pipe, not the parent's memory)."""
        conn = self.conns[k]
        while True:
            self.gates[k].wait()
            try:
                msg = conn.recv()
                if msg[0] == "data":  # its lines follow, raw
                    msg = (*msg, conn.recv_bytes())
            except (EOFError, OSError):
                msg = ("eof",)
            try:
                asyncio.run_coroutine_threadsafe(queue.put((k, msg)), loop).result()
            except RuntimeError:  # the loop closed
                return
            if msg[0] in ("done", "eof"):
                return

    async def _write(self) -> None:
        merge = self.merge
        assert merge is not None
        data, n, first = merge.pop()
        if n:
            if self.cfg.speed.paced and self.cfg.speed.factor:
                self.merge_lag.add(time.monotonic() - (self.fleet.t0 + first / 1e6 / self.cfg.speed.factor), n)
            for s in self.merged_sinks:
                assert isinstance(s, StdoutSink | FileSink)
                await s.send_jsonl(data, n)
        behind = merge.behind()
        for k, gate in enumerate(self.gates):
            if k == behind or merge.waiting[k] < MERGE_AHEAD:
                gate.set()
            else:
                gate.clear()

    def _ended(self, k: int, msg: tuple[Any, ...]) -> None:
        self.ended[k] = True
        self.gates[k].set()
        if msg[0] == "done":
            _, code, said = msg
            self.codes[k] = code
            for line in said.splitlines():
                if "error" in line or "warning" in line:
                    self.said.append(line.replace("emitter: ", f"emitter: worker {k}: ", 1))
            rep = self.fleet.reports[k]
            crashed = any(ln.startswith("emitter: error:") for ln in said.splitlines())
            if code == EXIT_USAGE or (code == EXIT_FAILED and (rep is None or bool(rep["error"]) or crashed)):
                # it stopped on an error: the run is not whole without it, the others stop too (a worker that
                # ran to its end with some events failed, as a single run would, exits 1 and lets them finish)
                if code == EXIT_USAGE:
                    self.fleet.stats.input_error = True
                self.fleet.fail(f"worker {k} failed (exit code {code})")
                self._stop_workers(signal.SIGTERM)
            return
        p = self.procs[k]
        p.join(5)
        self.codes[k] = EXIT_FAILED
        how = f"exit code {p.exitcode}" if p.exitcode is None or p.exitcode >= 0 else f"signal {-p.exitcode}"
        self.fleet.fail(f"worker {k} ended without finishing ({how})")
        self._stop_workers(signal.SIGTERM)

    async def _drain(self, queue: asyncio.Queue[tuple[int, Any]]) -> None:
        """After a failure of the parent's own sink: read the workers out until each has ended."""
        while not all(self.ended):
            k, msg = await queue.get()
            if msg[0] == "stat":
                self.fleet.update(k, msg[1])
            elif msg[0] in ("done", "eof"):
                self._ended(k, msg)

    def _signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed: list[int] = []
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig, name)
                installed.append(sig)
        return installed

    def _on_signal(self, sig: int, name: str) -> None:
        """The first SIGINT or SIGTERM stops every worker cleanly (each flushes; the summary adds them up);
        a second one ends them at once."""
        if self.signalled is None:
            self.signalled = name
            self.fleet.stats.stopped_by = name
            self._stop_workers(sig)
            return
        print(f"emitter: {name} again: stopping the workers now, without waiting for their sinks", file=self.err)
        for p in self.procs:
            with contextlib.suppress(OSError):
                p.kill()
        os._exit(EXIT_SIGINT if self.signalled == "SIGINT" else EXIT_SIGTERM)

    def _stop_workers(self, sig: int) -> None:
        if not self.going:  # workers waiting for the start are told so (a signal does not end that wait)
            self.going = True
            for c in self.conns:
                with contextlib.suppress(OSError, ValueError):
                    c.send(("stop", "SIGINT" if sig == signal.SIGINT else "SIGTERM"))
        for k, p in enumerate(self.procs):
            if not self.ended[k] and p.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(p.pid, sig)

    def _code(self) -> int:
        st = self.fleet.stats
        codes = [c for c in self.codes if c is not None]
        if EXIT_USAGE in codes or st.input_error:
            return EXIT_USAGE
        if st.error:
            return EXIT_FAILED
        if st.stopped_by == "SIGINT":
            return EXIT_SIGINT
        if st.stopped_by == "SIGTERM":
            return EXIT_SIGTERM
        if st.stopped_by == "closed pipe":
            _quiet_stdout()
            return EXIT_PIPE
        if any(c != EXIT_OK for c in codes) or any(s.stats.failed for s in self.fleet.sinks):
            return EXIT_FAILED
        return EXIT_OK


def worker_main(cfg: RunConfig, conn: Any, merged: bool, workflows: int, inherited: list[int]) -> None:
    """A worker process: run its shard into its own sinks (and the pipe), reporting to the parent."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.setpgrp()  # a terminal's Ctrl-C reaches the parent only; it stops the workers once, cleanly
    said = io.StringIO()
    code = EXIT_FAILED
    try:
        code = asyncio.run(_worker(cfg, conn, merged, workflows, said))
    except EmitterError as exc:
        if isinstance(exc, ConfigError):
            for prob in exc.problems:
                print(f"emitter: error: {prob}", file=said)
        else:
            print(f"emitter: error: {one_line(str(exc))}", file=said)
        code = exc.exit_code
    except BaseException:  # noqa: BLE001 - a worker's bug reaches the user through the parent
        print(f"emitter: error: {one_line(traceback.format_exc())}", file=said)
    with contextlib.suppress(OSError, ValueError):
        conn.send(("done", code, said.getvalue()))
        conn.close()


async def _worker(cfg: RunConfig, conn: Any, merged: bool, workflows: int, said: io.StringIO) -> int:
    from ..sinks.pipe import PipeSink

    sinks: list[Sink] = [open_sink(u) for u in cfg.sinks]
    if merged:  # (last: the k-th sink of every worker is the k-th of the parent's totals)
        sinks.append(PipeSink(conn, workflows))
    runner_box: list[Runner] = []

    async def ready() -> float | None:
        conn.send(("ready",))
        msg = await asyncio.to_thread(conn.recv)
        if msg[0] != "go":  # another worker could not start, or the run was stopped before it began
            runner_box[0].request_stop(str(msg[1]))
            return None
        return float(msg[1])

    async def report() -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            if runner_box:
                try:
                    conn.send(("stat", snapshot(runner_box[0])))
                except (OSError, ValueError):  # the parent is gone: stop, do not run on alone
                    runner_box[0].request_stop("SIGTERM")
                    return

    task = asyncio.create_task(report())
    try:
        code, _, runner = await run_async(cfg, sinks=sinks, stderr=said, ready=ready, on_runner=runner_box.append)
    finally:
        task.cancel()
    conn.send(("stat", snapshot(runner)))
    return code
