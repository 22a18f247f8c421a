"""``emitter fit``: recorded traffic in, a checked workflow file out (and, with ``--report``, what was learned)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..fit import FitOptions, fit, read_traffic
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
    out = Path(req.output)
    if out.is_dir():
        raise ConfigError.one("command line", ("--output",), f"{req.output!r} is a directory")
    calls, spans, formats = [], [], []
    for src in req.sources:
        if src.startswith("kafka://"):
            from ..fit.kafka import read_kafka

            fmt_k = {"jsonl": "jsonl", "otlp": "otlp"}.get(req.format, "auto")
            c, s, fmt, bad = read_kafka(src, fmt_k, req.until_idle)
        else:
            c, s, fmt, bad = read_traffic(Path(src[5:] if src.startswith("file:") else src), req.format)
        if req.run_id is not None:
            c = [x for x in c if x.attrs.get("emitter.run_id", x.attrs.get("run_id")) == req.run_id]
            keep = {x.trace_id for x in c}
            s = [x for x in s if x.trace_id in keep]
        print(
            f"fit: {src}: {fmt}, {len(c):,} calls"
            + (f", {len(s):,} spans" if s else "")
            + (f", {bad:,} malformed lines skipped" if bad else ""),
            file=sys.stderr,
        )
        calls += c
        spans += s
        formats.append(fmt)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(res.yaml, encoding="utf-8")
    r = res.report
    print(
        f"fit: wrote {out}: {r['states']} states from {r['calls']:,} calls in {r['sessions']:,} sessions"
        + (f"; dropped {len(r['dropped_states'])} rare states" if r["dropped_states"] else "")
        + (f"; {len(r['folded_paths'])} path templates folded" if r["folded_paths"] else ""),
        file=sys.stderr,
    )
    if req.report:
        Path(req.report).write_text(json.dumps({"sources": list(req.sources), "formats": formats, **r}, indent=2))
    return 0
