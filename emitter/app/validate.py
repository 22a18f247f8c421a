"""``emitter validate``: a stream (file, standard input or Kafka) judged against its workflow."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..inputs.workflow import load_workflow
from .outputs import check_writable, write_html

if TYPE_CHECKING:
    from ..core.spec import Workflow
    from ..validate.live import LiveOptions, LiveResult, LiveState
    from ..validate.report import Report

__all__ = ["ValidateRequest", "validate"]


@dataclass(frozen=True)
class ValidateRequest:
    workflow: str
    source: str | None
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
    metrics: str | None = None  # [HOST:]PORT: a live validation's own metrics served there for Prometheus
    metrics_otlp: str | None = None  # and/or pushed over OTLP to this URI, every metrics_interval_s
    metrics_interval_s: float = 10.0
    metrics_sources: tuple[str, str] = ("--metrics-port", "--metrics-otlp")
    publish: str | None = None  # kafka://...: a live validator's statistics go there at its end (needs group)
    merge: str | None = None  # kafka://...: judge the sum of the statistics published there (no source read)
    parts: int | None = None  # --merge: wait for this many validators' statistics, and require them


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
    if (req.source is None) == (req.merge is None):
        raise ConfigError.one("command line", ("--source",), "give either --source (a stream) or --merge (statistics)")
    if req.publish is not None:
        if not (req.source or "").startswith("kafka://") or not req.group:
            raise ConfigError.one(
                "command line",
                ("--publish",),
                "needs a live validation in a consumer group: --source kafka://... --group G",
            )
        if not req.publish.startswith("kafka://"):
            raise ConfigError.one(
                "command line", ("--publish",), f"expected kafka://HOST:PORT/TOPIC, got {req.publish!r}"
            )
    if req.merge is not None and not req.merge.startswith("kafka://"):
        raise ConfigError.one("command line", ("--merge",), f"expected kafka://HOST:PORT/TOPIC, got {req.merge!r}")
    if req.parts is not None and (req.merge is None or req.parts < 1):
        raise ConfigError.one("command line", ("--parts",), "needs --merge and a count of validators >= 1")
    if req.merge is not None:
        return _merge(req)
    assert req.source is not None
    if (req.metrics or req.metrics_otlp) and not req.source.startswith("kafka://"):
        flag = "--metrics-port" if req.metrics else "--metrics-otlp"
        raise ConfigError.one("command line", (flag,), "only a live validation (kafka://) has metrics of its own")
    wf = load_workflow(req.workflow)
    if req.source.startswith("kafka://"):
        import asyncio

        from ..validate.live import LiveOptions

        opts = LiveOptions(
            group=req.group,
            format="otlp" if req.format == "otlp" else "jsonl" if req.format == "jsonl" else "auto",
            max_events=req.max_events,
            until_idle=req.until_idle,
            alpha=req.alpha,
            min_samples=req.min_samples,
            run_id=req.run_id,
            publish=req.publish,
        )
        res = asyncio.run(_validate_kafka(wf, req, opts))
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
    return _outputs(req, rep)


def _merge(req: ValidateRequest) -> int:
    """``--merge``: the statistics that validators of one group published, summed and judged as one."""
    import asyncio

    from ..errors import EmitterError, redact_uri
    from ..validate.merge import merged_report, read_stats

    assert req.merge is not None
    wf = load_workflow(req.workflow)
    idle = req.until_idle if req.until_idle is not None else 5.0
    pub = asyncio.run(read_stats(req.merge, group=req.group, parts=req.parts, until_idle=idle))
    parts = sorted(pub.records.values(), key=lambda p: p["member"])
    where = redact_uri(req.merge)
    if req.parts is not None and len(parts) != req.parts:
        raise EmitterError(
            f"validate --merge: {where}: {len(parts)} validators published statistics"
            + (f" for group {req.group!r}" if req.group else "")
            + f", expected --parts {req.parts} (waited until {idle:g} s idle)"
        )
    rep = merged_report(wf, parts, alpha=req.alpha, min_samples=req.min_samples, source=where, run_id=req.run_id)
    members = ", ".join(p["group"] + "/" + p["member"] for p in parts)
    print(
        f"validate: merged the statistics of {len(parts)} validators ({members}; "
        f"partitions {', '.join(map(str, rep.data['merged']['partitions']))}) read from {where} "
        f"({pub.read:,} records, {pub.skipped:,} not statistics)",
        file=sys.stderr,
    )
    return _outputs(req, rep)


def _outputs(req: ValidateRequest, rep: Report) -> int:
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


async def _validate_kafka(wf: Workflow, req: ValidateRequest, opts: LiveOptions) -> LiveResult:
    from ..validate.live import validate_kafka

    assert req.source is not None
    if not (req.metrics or req.metrics_otlp):
        return await validate_kafka(wf, req.source, opts)
    from ..runtime.selfmetrics import SelfMetrics

    served = SelfMetrics(
        req.metrics, req.metrics_otlp, req.metrics_interval_s, service="emitter-validator", sources=req.metrics_sources
    )
    if served.url:
        print(f"validate: own metrics for Prometheus at {served.url}", file=sys.stderr, flush=True)
    try:
        return await validate_kafka(wf, req.source, opts, on_start=lambda st: watch_validation(served.meter, st))
    finally:
        served.close()


def watch_validation(meter: Any, st: LiveState) -> None:
    """A live validation's instruments on ``meter``: records read, malformed, sessions, checkpoints, alarms."""
    from ..runtime.selfmetrics import observe_all, one

    ing, asm = st.ingest, st.asm
    rec, ses = "{record}", "{session}"
    observe_all(
        meter,
        counters=[
            ("emitter.validator.records", rec, "records read from the topic", one(lambda: ing.records)),
            (
                "emitter.validator.malformed",
                rec,
                "records that were not events (counted, skipped)",
                one(lambda: ing.malformed),
            ),
            (
                "emitter.validator.key_mismatch",
                rec,
                "sampled records keyed other than by session",
                one(lambda: ing.key_mismatch),
            ),
            ("emitter.validator.sessions", ses, "sessions assembled", one(lambda: asm.sessions)),
            (
                "emitter.validator.checkpoints",
                "{look}",
                "checkpoints judged (event counts doubling)",
                one(lambda: st.looks),
            ),
            ("emitter.validator.alarms", "{look}", "checkpoints that rejected the workflow", one(lambda: st.alarms)),
        ],
        gauges=[("emitter.validator.sessions.open", ses, "sessions still open", one(lambda: asm.open_sessions))],
    )
