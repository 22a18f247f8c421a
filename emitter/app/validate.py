"""``emitter validate``: a stream (file, standard input or Kafka) judged against its workflow."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..inputs.workflow import load_workflow
from .outputs import check_writable, write_html

__all__ = ["ValidateRequest", "validate"]


@dataclass(frozen=True)
class ValidateRequest:
    workflow: str
    source: str
    format: str = "auto"
    run_id: str | None = None
    group: str | None = None
    max_events: int | None = None
    until_idle: float | None = None
    alpha: float = 0.01
    min_samples: int = 30
    report: str | None = None
    all_rows: bool = False
    html: str | None = None  # an HTML report (heatmaps, convergence) goes here


def validate(req: ValidateRequest) -> int:
    """Print the report; 0 consistent, 1 rejected (or no data)."""
    if not 0 < req.alpha < 1:
        raise ConfigError.one("command line", ("--alpha",), f"expected a number in (0, 1), got {req.alpha}")
    if req.min_samples < 1:
        raise ConfigError.one("command line", ("--min-samples",), f"expected an integer >= 1, got {req.min_samples}")
    for flag, value in (("--max-events", req.max_events), ("--until-idle", req.until_idle)):
        if value is not None and not value > 0:
            raise ConfigError.one("command line", (flag,), f"expected a positive number, got {value}")
    for flag, path in (("--report", req.report), ("--html", req.html)):
        if path:
            check_writable(path, flag)  # before reading the stream, not after an hour of it
    wf = load_workflow(req.workflow)
    if req.source.startswith("kafka://"):
        import asyncio

        from ..validate.live import LiveOptions, validate_kafka

        opts = LiveOptions(
            group=req.group,
            format="otlp" if req.format == "otlp" else "jsonl" if req.format == "jsonl" else "auto",
            max_events=req.max_events,
            until_idle=req.until_idle,
            alpha=req.alpha,
            min_samples=req.min_samples,
            run_id=req.run_id,
        )
        res = asyncio.run(validate_kafka(wf, req.source, opts))
        rep = res.report
        print(
            f"validate: read {res.records:,} records in {res.seconds:.1f} s ({res.malformed:,} malformed, "
            f"{res.key_mismatch:,} of {res.keys_checked:,} sampled keys differ from their session_id); "
            f"stopped by {res.stopped_by}",
            file=sys.stderr,
        )
    else:
        from ..validate.assemble import Assembler
        from ..validate.report import build_report
        from ..validate.sources import read_file_source

        asm = Assembler(wf, run_id=req.run_id)
        malformed = read_file_source(asm, req.source, req.format)
        rep = build_report(asm, alpha=req.alpha, min_samples=req.min_samples, malformed=malformed, source=req.source)
    if req.report:
        try:
            Path(req.report).write_text(rep.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError.one("--report", (req.report,), f"cannot write: {exc.strerror}") from None
    if req.html:
        from ..report.validation import validation_report

        write_html(req.html, "--html", validation_report(rep.data))
    print(rep.render(all_rows=req.all_rows), flush=True)
    return rep.exit_code
