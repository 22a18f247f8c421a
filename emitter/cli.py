"""The command line: ``emitter run``, ``check``, ``validate``, ``score``, ``fit``. Thin by design: flags come from the
declared options, and each command is a function of :mod:`emitter.app`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from ._version import __version__
from .errors import ConfigError, EmitterError, one_line

__all__ = ["entry", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_PIPE = 141  # 128 + SIGPIPE: the reader of standard output went away (quietly, as Unix tools do)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option and the value, then exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from .inputs.options import OPTIONS

    for o in OPTIONS:

        def conv(text: str, _o: Any = o) -> Any:
            try:
                return _o.parse(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        conv.__name__ = o.metavar.lower()
        p.add_argument(
            o.flag,
            dest=o.name,
            type=conv,
            metavar=o.metavar,
            help=o.help,
            action="append" if o.repeat else "store",
            default=None,
        )


def _add_metrics_options(p: argparse.ArgumentParser, command: str, hold: bool = True) -> None:
    p.add_argument(
        "--metrics-port",
        metavar="[HOST:]PORT",
        help=f"serve this {command}'s own metrics for Prometheus at http://HOST:PORT/metrics ("
        + (
            "events sent, acknowledged, failed and dropped per sink, schedule lag, sessions"
            if hold
            else "records read, malformed, sessions, checkpoints, alarms"
        )
        + ", memory); PORT alone listens on every interface; env EMITTER_METRICS_PORT",
    )
    p.add_argument(
        "--metrics-otlp",
        metavar="URI",
        help="and/or push them over OTLP: otlp://HOST:4317 (gRPC) or otlp+http://HOST:4318, with the OTLP "
        "sink's TLS and header options; env EMITTER_METRICS_OTLP",
    )
    p.add_argument(
        "--metrics-interval",
        type=_duration,
        default=10.0,
        metavar="D",
        help="how often --metrics-otlp pushes (default 10s; once more at the end)",
    )
    if not hold:
        return
    p.add_argument(
        "--metrics-hold",
        type=_duration,
        default=0.0,
        metavar="D",
        help="after the summary, keep serving the final metrics this long for a last scrape (default 0; "
        "a signal ends it)",
    )


def _metrics_settings(args: argparse.Namespace, live: bool = True) -> tuple[str | None, str | None, tuple[str, str]]:
    """--metrics-port and --metrics-otlp, else EMITTER_METRICS_PORT / EMITTER_METRICS_OTLP (ignored where a
    command has no metrics of its own: ``live`` False), and where each came from (for messages)."""
    out: list[str | None] = []
    sources: list[str] = []
    for flag, var in (("--metrics-port", "EMITTER_METRICS_PORT"), ("--metrics-otlp", "EMITTER_METRICS_OTLP")):
        given = getattr(args, flag[2:].replace("-", "_"))
        env = os.environ.get(var) or None if live else None
        out.append(given if given is not None else env)
        sources.append(flag if given is not None or env is None else var)
    return out[0], out[1], (sources[0], sources[1])


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="emitter", description="Realistic, reproducible streams of API-call traffic.")
    p.add_argument("--version", action="version", version=f"emitter {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser(
        "run",
        help="simulate users walking a workflow and emit their API calls",
        description="Simulate users walking WORKFLOW and emit one event per API call.",
    )
    r.add_argument("workflow", metavar="FILE", help="workflow or scenario YAML file")
    _add_run_options(r)
    _add_metrics_options(r, "run")
    r.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="emit only the I-th (from 0) of N disjoint parts of the run: the N shards' events together are "
        "the unsharded run's, byte for byte (open and dataset models); shard 0 writes the truth. In a "
        "Kubernetes Indexed Job: --shard $(JOB_COMPLETION_INDEX)/N",
    )
    r.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="W",
        help="run on W processes of this machine (auto: one per CPU), each a shard of the run, seen as one: "
        "one progress display, one summary, one truth. stdout and file:PATH get the single run's bytes in "
        "its order; file:PATH with {worker} in it, parquet and kafka/otlp/null get one sink per worker",
    )
    c = sub.add_parser(
        "check",
        help="validate workflow and scenario files without running them",
        description="Validate workflow and scenario files; print every problem, one line each (exit 2).",
    )
    c.add_argument("files", nargs="+", metavar="FILE")
    v = sub.add_parser(
        "validate",
        help="test a stream of events against a workflow",
        description="Rebuild sessions from a stream and test entry, transition and exit "
        "probabilities against WORKFLOW. Exit 0 when consistent, 1 when rejected.",
    )
    v.add_argument("workflow", metavar="WORKFLOW")
    v.add_argument(
        "--source",
        metavar="SRC",
        help="file:PATH, PATH (JSON lines, OTLP-JSON or Parquet), - for standard input, "
        "or kafka://HOST:PORT/TOPIC (live); required unless --merge",
    )
    v.add_argument(
        "--publish",
        metavar="URI",
        help="live, in a consumer group (--group): at the end, publish this validator's counts (its share of the "
        "partitions) to kafka://HOST:PORT/TOPIC, a compacted topic, for validate --merge",
    )
    v.add_argument(
        "--merge",
        metavar="URI",
        help="instead of reading a stream: sum the counts that validators published to kafka://HOST:PORT/TOPIC "
        "(of --group G, if given) and judge them as one validator's",
    )
    v.add_argument(
        "--parts", type=int, metavar="N", help="--merge: wait for N validators' counts, and fail unless N are there"
    )
    v.add_argument(
        "--format",
        choices=("auto", "jsonl", "otlp", "otlp-json", "parquet"),
        default="auto",
        help="jsonl: emitter events; otlp: OTLP protobuf requests (Kafka records the collector wrote); "
        "otlp-json: the collector's file output; parquet: the Parquet sink's files (a file or a partitioned "
        "directory); auto (default) tells them apart",
    )
    v.add_argument("--run-id", metavar="ID", help="judge only this run's events (others are counted and skipped)")
    v.add_argument("--group", metavar="G", help="Kafka: consumer group (commits offsets; default: none, read all)")
    v.add_argument("--max-events", type=int, metavar="N", help="Kafka: stop after N records")
    v.add_argument("--until-idle", type=float, metavar="SECONDS", help="Kafka: stop when no record came for this long")
    v.add_argument("--alpha", type=float, default=0.01, help="family-wise false-alarm rate (default 0.01)")
    v.add_argument(
        "--min-samples",
        type=int,
        default=30,
        metavar="N",
        help="rows with fewer departures are reported as too thin to judge (default 30)",
    )
    v.add_argument("--report", metavar="FILE", help="also write the full report as JSON")
    v.add_argument("--all-rows", action="store_true", help="print every row, not only the interesting ones")
    v.add_argument(
        "--html",
        metavar="FILE",
        help="also write an HTML report: declared and learned matrices as heatmaps, their difference, "
        "rejected rows marked; for a live run, the worst error against events read with its sampling band",
    )
    _add_metrics_options(v, "live validation", hold=False)
    sc = sub.add_parser(
        "score",
        help="score an anomaly detector against a run's truth",
        description="Precision, recall, F1 and detection delay of a detector's output against the "
        "truth a run wrote with --truth. Detections are JSON lines: "
        '{"event_id": ...} (needs --events) or {"start": TS, "end": TS, "service": NAME}.',
    )
    sc.add_argument("--truth", required=True, metavar="FILE", help="the truth file (file:PATH or PATH)")
    sc.add_argument("--detections", required=True, metavar="FILE")
    sc.add_argument("--events", metavar="FILE", help="the run's events (for event-level scores)")
    sc.add_argument(
        "--grace",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a detection this long after a fault's end still counts (default 0)",
    )
    sc.add_argument("--report", metavar="FILE", help="also write the scores as JSON")
    sc.add_argument(
        "--html",
        metavar="FILE",
        help="also write an HTML report: each fault's window with the detections that matched it on one "
        "timeline, and the detections that matched nothing",
    )
    rp = sub.add_parser(
        "report",
        help="an HTML run report from a run's files (its events and truth)",
        description="Write the run report (docs/reports.md) of a run made without --report, from its events "
        "(JSON lines, .gz, Parquet, or - for standard input) and, for its identity and fault windows, its "
        "truth file. The events hold the API calls: downstream services and the wall clock are what "
        "emitter run --report records.",
    )
    rp.add_argument("events", nargs="+", metavar="EVENTS", help="the run's events: file:PATH, PATH or -")
    rp.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    rp.add_argument("--truth", metavar="FILE", help="the run's truth file (emitter run --truth)")
    rp.add_argument(
        "--workflow",
        action="append",
        default=[],
        metavar="FILE",
        help="the run's workflow, for the service graph (repeatable)",
    )
    rp.add_argument("--run-id", metavar="ID", help="report only this run's events (default: the truth's run)")
    f = sub.add_parser(
        "fit",
        help="learn a runnable workflow from recorded traffic",
        description="Learn a workflow from recorded traffic (emitter's events as JSON lines or Parquet, the "
        "collector's OTLP-JSON file output, Jaeger's JSON, Zipkin's v2 JSON) that emitter run plays back "
        "statistically like the recording. The output is commented with counts and intervals.",
    )
    f.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="recorded traffic: files (file:PATH or PATH) or Kafka topics (kafka://HOST:PORT/TOPIC, read from the "
        "beginning until idle)",
    )
    f.add_argument("-o", "--output", required=True, metavar="FILE", help="the workflow file to write")
    f.add_argument(
        "--format",
        choices=("auto", "jsonl", "parquet", "otlp-json", "jaeger", "zipkin", "otlp"),
        default="auto",
        help="the sources' format (default: told by each file's first bytes or the topic's first record; "
        "otlp: OTLP protobuf records in Kafka, as the collector's Kafka exporter writes them)",
    )
    f.add_argument("--run-id", metavar="ID", help="fit only this run's calls (of emitter's events or spans)")
    f.add_argument(
        "--until-idle",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="Kafka: stop reading when nothing came for this long (default 5)",
    )
    f.add_argument("--user-type-attr", metavar="KEY", help="the attribute naming the user's type (default user.type)")
    f.add_argument("--name", help="the workflow's name (default: the output file's stem)")
    f.add_argument("--session-attr", metavar="KEY", help="the attribute holding the session id (default session.id)")
    f.add_argument(
        "--user-attr",
        metavar="KEY",
        help="without session ids: the attribute holding the user key (default user.id, then enduser.id)",
    )
    f.add_argument(
        "--gap",
        type=_duration,
        default=1800.0,
        metavar="D",
        help="without session ids: a user idle longer than this starts a new session (default 30m)",
    )
    f.add_argument(
        "--min-count",
        type=int,
        default=5,
        metavar="N",
        help="states seen fewer times are dropped (steps into them leave instead; default 5)",
    )
    f.add_argument("--report", metavar="FILE", help="also write what was learned and dropped as JSON")
    return p


def _shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = (-1, 0)
    if not sep or not 0 <= shard[0] < shard[1] <= 1_000_000:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return shard


def _workers(text: str) -> int:
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1024:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to 1024 or auto, got {text!r}")
    return n


def _duration(text: str) -> float:
    from .inputs.options import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from .runtime.memory import tune_allocator

    tune_allocator()  # before numpy and the run's first blocks are allocated (runtime/memory.py); forks inherit it
    from dataclasses import replace

    from .app.config import run_config
    from .app.run import run_sync
    from .inputs.options import OPTIONS

    cfg = run_config(args.workflow, {o.name: getattr(args, o.name) for o in OPTIONS})
    port, otlp, sources = _metrics_settings(args)
    cfg = replace(
        cfg,
        metrics=port,
        metrics_hold_s=args.metrics_hold,
        metrics_otlp=otlp,
        metrics_interval_s=args.metrics_interval,
        metrics_sources=sources,
        shard=args.shard or (0, 1),
    )
    if args.workers is not None and args.workers > 1:
        from .app.workers import run_workers

        return run_workers(cfg, args.workers)
    return run_sync(cfg)


def _cmd_validate(args: argparse.Namespace) -> int:
    from .app.validate import ValidateRequest, validate

    port, otlp, sources = _metrics_settings(args, live=(args.source or "").startswith("kafka://"))
    return validate(
        ValidateRequest(
            workflow=args.workflow,
            source=args.source,
            format=args.format,
            run_id=args.run_id,
            group=args.group,
            max_events=args.max_events,
            until_idle=args.until_idle,
            alpha=args.alpha,
            min_samples=args.min_samples,
            report=args.report,
            all_rows=args.all_rows,
            html=args.html,
            metrics=port,
            metrics_otlp=otlp,
            metrics_interval_s=args.metrics_interval,
            metrics_sources=sources,
            publish=args.publish,
            merge=args.merge,
            parts=args.parts,
        )
    )


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, as the user should see them."""
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


def _report(exc: BaseException) -> int | None:
    """Print an error the user made or met as one line each (None: not one of ours, a bug to show)."""
    leaves = list(_leaves(exc))
    if not all(isinstance(e, EmitterError | KeyboardInterrupt | BrokenPipeError) or _path_error(e) for e in leaves):
        return None
    if any(isinstance(e, BrokenPipeError) for e in leaves):
        return _pipe_closed()
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        print("emitter: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = 0
    for e in leaves:
        if _path_error(e):  # a path the user gave that the system refuses (too long, a directory, ...)
            assert isinstance(e, OSError)
            print(f"emitter: error: {one_line(os.fsdecode(e.filename))}: {e.strerror}", file=sys.stderr)
            code = code or EXIT_USAGE
            continue
        assert isinstance(e, EmitterError)
        if isinstance(e, ConfigError):
            for prob in e.problems:
                print(f"emitter: error: {prob}", file=sys.stderr)
        else:
            print(f"emitter: error: {one_line(str(e))}", file=sys.stderr)
        code = code or e.exit_code
    return code


def _path_error(e: BaseException) -> bool:
    return isinstance(e, OSError) and not isinstance(e, BrokenPipeError) and e.filename is not None and bool(e.strerror)


def _check_text(argv: Sequence[str]) -> None:
    """Every argument is text that can be written out (a lone surrogate is not: it would fail far later)."""
    for i, a in enumerate(argv, 1):
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError.one("command line", (f"argument {i}",), "not valid UTF-8 text") from None
        if "\x00" in a:  # (a shell cannot pass one; a program calling main() can)
            raise ConfigError.one("command line", (f"argument {i}",), "contains a NUL character")


def _pipe_closed() -> int:
    """Standard output's reader went away: no message, and nothing more written there (nor at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_PIPE


def entry() -> NoReturn:
    """The ``emitter`` program: :func:`main`, then exit with its code."""
    try:
        code = main()
    finally:  # the work is done: a late Ctrl-C must not turn the exit into a traceback (or a kill)
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        _check_text(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        if args.command == "check":
            from .app.check import check_files

            return check_files(args.files)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "score":
            from .app.score import score_command

            return score_command(args.truth, args.detections, args.events, args.grace, args.report, args.html)
        if args.command == "report":
            from .app.report import ReportRequest, report_command

            return report_command(
                ReportRequest(
                    events=tuple(args.events),
                    output=args.output,
                    truth=args.truth,
                    workflows=tuple(args.workflow),
                    run_id=args.run_id,
                )
            )
        if args.command == "fit":
            from .app.fit import FitRequest, run_fit

            return run_fit(
                FitRequest(
                    sources=tuple(args.sources),
                    output=args.output,
                    format=args.format,
                    name=args.name,
                    session_attr=args.session_attr,
                    user_attr=args.user_attr,
                    gap_s=args.gap,
                    min_count=args.min_count,
                    report=args.report,
                    run_id=args.run_id,
                    until_idle=args.until_idle,
                    user_type_attr=args.user_type_attr,
                )
            )
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
            # the user stopped us: a second Ctrl-C while we say so must not turn into a traceback or a kill
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        code = _report(exc)
        if code is None:
            raise
        return code
    raise AssertionError(args.command)


if __name__ == "__main__":
    entry()
