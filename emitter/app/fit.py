"""``emitter fit``: recorded traffic in, a checked workflow file out (and, with ``--report``, what was learned)."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..fit import Call, FitOptions, Span, fit, read_traffic
from ..fit.traffic import calls_from_spans, unique
from ..inputs.workflow import loads_workflow

__all__ = ["FitRequest", "run_fit"]


@dataclass(frozen=True)
class FitRequest:
    sources: tuple[str, ...]
    output: str
    format: str = "auto"
    name: str | None = None
    session_attr: str | None = None
    user_attr: str | None = None
    gap_s: float = 1800.0
    min_count: int = 5
    report: str | None = None
    run_id: str | None = None
    until_idle: float = 5.0
    user_type_attr: str | None = None


def run_fit(req: FitRequest) -> int:
    if req.min_count < 1:
        raise ConfigError.one("command line", ("--min-count",), f"expected an integer >= 1, got {req.min_count}")
    if not (math.isfinite(req.until_idle) and req.until_idle >= 0):
        raise ConfigError.one("command line", ("--until-idle",), f"expected seconds >= 0, got {req.until_idle}")
    out = Path(req.output)
    for flag, target in (("--output", out), ("--report", Path(req.report) if req.report else None)):
        if target is not None and (target.is_dir() or (target.parent.exists() and not target.parent.is_dir())):
            raise ConfigError.one("command line", (flag,), f"cannot write {str(target)!r} (a directory is in the way)")
    calls: list[Call] = []
    spans: list[Span] = []
    formats = []
    for src in req.sources:
        try:
            if src.startswith("kafka://"):
                from ..fit.kafka import read_kafka

                fmt_k = {"jsonl": "jsonl", "otlp": "otlp"}.get(req.format, "auto")
                c, s, fmt, bad = read_kafka(src, fmt_k, req.until_idle)
            else:
                path = Path(src[5:] if src.startswith("file:") else src)
                c, s, fmt, bad = read_traffic(path, req.format)
        except OSError as exc:
            raise ConfigError.one("fit", (src,), f"cannot read: {exc.strerror or exc}") from None
        print(
            f"fit: {src}: {fmt}, {len(c):,} calls"
            + (f", {len(s):,} spans" if s else "")
            + (f", {bad:,} malformed lines skipped" if bad else ""),
            file=sys.stderr,
        )
        if s:
            spans += s  # calls come from all the spans at once (a trace may be split across files)
        else:
            calls += c
        formats.append(fmt)
    spans, dup_spans = unique(spans)
    calls, dup_calls = unique(calls)
    repeats = dup_spans + dup_calls
    if repeats:
        print(
            f"fit: {repeats:,} repeated record{'s' if repeats != 1 else ''} ignored "
            "(the same trace and span id seen before: at-least-once delivery)",
            file=sys.stderr,
        )
    if spans:
        calls += calls_from_spans(spans)
    if req.run_id is not None:
        calls = [x for x in calls if x.attrs.get("emitter.run_id", x.attrs.get("run_id")) == req.run_id]
        keep = {x.trace_id for x in calls}
        spans = [x for x in spans if x.trace_id in keep]
    name = req.name or Path(req.output).stem
    opts = FitOptions(
        name=name,
        session_attr=req.session_attr,
        user_attr=req.user_attr,
        user_type_attr=req.user_type_attr,
        gap_s=req.gap_s,
        min_count=req.min_count,
    )
    try:
        res = fit(calls, spans, opts)
    except ValueError as exc:
        raise ConfigError.one("fit", req.sources, str(exc)) from None
    loads_workflow(res.yaml, str(out))  # what fit writes, emitter check accepts (a failure here is a bug)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(res.yaml, encoding="utf-8")
        if req.report:
            Path(req.report).write_text(
                json.dumps(
                    {"sources": list(req.sources), "formats": formats, "repeats": repeats, **res.report},
                    indent=2,
                )
            )
    except OSError as exc:
        raise ConfigError.one("fit", (str(exc.filename or out),), f"cannot write: {exc.strerror or exc}") from None
    r = res.report
    print(
        f"fit: wrote {out}: {r['states']} states from {r['calls']:,} calls in {r['sessions']:,} sessions"
        + (f"; dropped {len(r['dropped_states'])} rare states" if r["dropped_states"] else "")
        + (f"; {len(r['folded_paths'])} path templates folded" if r["folded_paths"] else ""),
        file=sys.stderr,
    )
    return 0
