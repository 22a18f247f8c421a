"""The command line: ``emitter run``, ``emitter check``, ``emitter validate``. Thin by design."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .app import RunConfig, run_sync
from .core.engine import DEFAULT_POPULATION, Load
from .errors import ConfigError, EmitterError
from .options import OPTIONS
from .runtime.pacing import Speed
from .scenario import is_scenario, parse_scenario
from .workflow import load_workflow, parse_workflow
from .yamlio import load_yaml_file

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option and the value, then exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_run_options(p: argparse.ArgumentParser) -> None:
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
    c = sub.add_parser(
        "check",
        help="validate workflow files only",
        description="Validate workflow files; print every problem, one line each.",
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
        required=True,
        metavar="SRC",
        help="file:PATH, PATH, - for standard input, or kafka://HOST:PORT/TOPIC (live)",
    )
    v.add_argument(
        "--format",
        choices=("auto", "jsonl", "otlp", "otlp-json"),
        default="auto",
        help="jsonl: emitter events; otlp: OTLP protobuf requests (Kafka records the collector wrote); "
        "otlp-json: the collector's file output; auto (default) tells them apart",
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
    return p


def _cmd_check(args: argparse.Namespace) -> int:
    code = 0
    for f in args.files:
        try:
            wf = load_workflow(f)
        except ConfigError as exc:
            for prob in exc.problems:
                print(str(prob), file=sys.stderr)
            code = EXIT_USAGE
            continue
        for w in wf.warnings:
            print(f"warning: {w}", file=sys.stderr)
        n_edges = sum(1 for r in wf.transitions.values() for p in r.values() if p > 0)
        print(
            f"ok: {f}: workflow {wf.name!r}, {len(wf.states)} endpoints, {n_edges} transitions, "
            f"{len(wf.exit_points)} exit points, {len(wf.user_types)} user types"
        )
    return code


def _cmd_run(args: argparse.Namespace) -> int:
    if args.users is not None and args.arrival_rate is not None:
        raise ConfigError.one(
            "command line",
            ("--users",),
            "choose one load model: --users N (closed) or --arrival-rate R (open), not both",
        )
    data = load_yaml_file(args.workflow)
    if is_scenario(data):
        return run_sync(_scenario_config(args, data))
    wf = parse_workflow(data, args.workflow)
    for w in wf.warnings:
        print(f"warning: {w}", file=sys.stderr)
    load = Load(
        sessions=args.sessions,
        duration_s=args.duration,
        arrival_rate=args.arrival_rate,
        users=args.users,
        population=args.population or DEFAULT_POPULATION,
    )
    cfg = RunConfig(
        workflow=wf,
        seed=args.seed,
        speed=args.speed or Speed(1.0),
        start_us=args.start,
        load=load,
        sinks=args.sink or ["stdout"],
        progress=args.progress or "auto",
        truth=args.truth,
    )
    return run_sync(cfg)


def _scenario_config(args: argparse.Namespace, data: Any) -> RunConfig:
    """A scenario file, with the command line's flags taking precedence over its keys."""
    sc = parse_scenario(data, args.workflow, base=Path(args.workflow).resolve().parent)
    for wf, _ in sc.workflows:
        for w in wf.warnings:
            print(f"warning: {w}", file=sys.stderr)
    load = sc.load
    if args.users is not None:  # the command line switches the load model
        load = replace(load, users=args.users, arrival_rate=None, profile=None)
    elif args.arrival_rate is not None:
        load = replace(load, users=None, arrival_rate=args.arrival_rate)
    given = {"sessions": args.sessions, "duration_s": args.duration, "population": args.population}
    load = replace(load, **{k: v for k, v in given.items() if v is not None})
    return RunConfig(
        workflow=sc.workflows[0][0],
        workflows=sc.workflows,
        seed=_first(args.seed, sc.seed),
        speed=_first(args.speed, sc.speed, Speed(1.0)),
        start_us=_first(args.start, sc.start_us),
        load=load,
        sinks=args.sink or sc.sinks or ["stdout"],
        progress=_first(args.progress, sc.progress, "auto"),
        dynamics=sc.dynamics,
        random_faults=sc.random_faults,
        truth=_first(args.truth, sc.truth),
        scenario=sc.name,
        scenario_digest=sc.digest,
    )


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _cmd_score(args: argparse.Namespace) -> int:
    from .score import score

    def path(p: str) -> str:
        return p[5:] if p.startswith("file:") else p

    rep = score(path(args.truth), path(args.detections), path(args.events) if args.events else None, grace_s=args.grace)
    print(rep.render())
    if args.report:
        Path(args.report).write_text(json.dumps(rep.data, indent=2) + "\n", encoding="utf-8")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validate.assemble import Assembler
    from .validate.report import build_report
    from .validate.sources import read_file_source

    if not 0 < args.alpha < 1:
        raise ConfigError.one("command line", ("--alpha",), f"expected a number in (0, 1), got {args.alpha}")
    wf = load_workflow(args.workflow)
    if args.source.startswith("kafka://"):
        import asyncio

        from .validate.live import LiveOptions, validate_kafka

        opts = LiveOptions(
            group=args.group,
            format="otlp" if args.format == "otlp" else "jsonl" if args.format == "jsonl" else "auto",
            max_events=args.max_events,
            until_idle=args.until_idle,
            alpha=args.alpha,
            min_samples=args.min_samples,
            run_id=args.run_id,
        )
        res = asyncio.run(validate_kafka(wf, args.source, opts))
        rep = res.report
        print(
            f"validate: read {res.records:,} records in {res.seconds:.1f} s ({res.malformed:,} malformed, "
            f"{res.key_mismatch:,} of {res.keys_checked:,} sampled keys differ from their session_id); "
            f"stopped by {res.stopped_by}",
            file=sys.stderr,
        )
    else:
        asm = Assembler(wf, run_id=args.run_id)
        malformed = read_file_source(asm, args.source, args.format)
        rep = build_report(asm, alpha=args.alpha, min_samples=args.min_samples, malformed=malformed, source=args.source)
    print(rep.render(all_rows=args.all_rows))
    if args.report:
        Path(args.report).write_text(rep.to_json() + "\n", encoding="utf-8")
    return rep.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "score":
            return _cmd_score(args)
    except ConfigError as exc:
        for prob in exc.problems:
            print(f"emitter: error: {prob}", file=sys.stderr)
        return exc.exit_code
    except EmitterError as exc:
        print(f"emitter: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emitter: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
