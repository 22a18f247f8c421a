"""``emitter report``: a run report from a run's files (its events and truth), for runs made without
``--report``: recorded to a file or Parquet, generated in a notebook, or replayed from elsewhere.

The events hold each API call (the root span), so the per-service charts show the services the API's
endpoints belong to; the downstream calls and the wall clock are what only ``emitter run --report``
sees, and the page says so.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ..core.model import END_REASONS
from ..errors import ConfigError
from ..inputs.workflow import load_workflow
from ..report.record import RunRecorder
from ..report.run import run_report
from ..score.read import parse_ts, read_truth
from .outputs import check_writable, write_html

__all__ = ["ReportRequest", "report_command"]

CHUNK = 65_536
END_CODE = {r: i for i, r in enumerate(END_REASONS) if r is not None}


@dataclass(frozen=True)
class ReportRequest:
    events: tuple[str, ...]
    output: str
    truth: str | None = None
    workflows: tuple[str, ...] = ()
    run_id: str | None = None


class _Labels(msgspec.Struct):
    anomalous: bool = False
    faults: list[str] = msgspec.field(default_factory=list)


class _Event(msgspec.Struct):
    timestamp: str
    service: str
    latency_ms: float
    status_code: int
    seq: int
    attempt: int
    run_id: str = ""
    end_reason: str | None = None
    labels: _Labels = msgspec.field(default_factory=_Labels)


@dataclass
class _Chunk:
    t_us: list[int]
    service: list[str]
    latency_ms: list[float]
    status: list[int]
    seq: list[int]
    attempt: list[int]
    end: list[int]
    anomalous: list[bool]
    faults: list[list[str]]
    run_id: list[str]


def _empty() -> _Chunk:
    return _Chunk([], [], [], [], [], [], [], [], [], [])


def _jsonl(spec: str) -> Iterator[_Chunk]:
    from ..validate.sources import open_lines

    dec = msgspec.json.Decoder(_Event)
    c = _empty()
    for n, line in enumerate(open_lines(spec, "emitter report"), 1):
        if not line.strip():
            continue
        try:
            e = dec.decode(line)
            t = parse_ts(e.timestamp)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ConfigError.one(spec, (f"line {n}",), f"not an emitter event: {exc}") from None
        c.t_us.append(t)
        c.service.append(e.service)
        c.latency_ms.append(e.latency_ms)
        c.status.append(e.status_code)
        c.seq.append(e.seq)
        c.attempt.append(e.attempt)
        c.end.append(END_CODE.get(e.end_reason or "", 0))
        c.anomalous.append(e.labels.anomalous)
        c.faults.append(e.labels.faults)
        c.run_id.append(e.run_id)
        if len(c.t_us) >= CHUNK:
            yield c
            c = _empty()
    if c.t_us:
        yield c


def _parquet(spec: str) -> Iterator[_Chunk]:
    import pyarrow as pa
    import pyarrow.dataset as pads

    path = Path(spec[5:] if spec.startswith("file:") else spec)
    try:
        ds = pads.dataset(path, format="parquet", partitioning="hive")
    except (OSError, pa.ArrowInvalid) as exc:
        raise ConfigError.one("emitter report", (spec,), f"cannot read Parquet: {exc}") from None
    names = set(ds.schema.names)
    nested = "labels" in names
    want = ["timestamp", "service", "latency_ms", "status_code", "seq", "attempt", "end_reason", "run_id"]
    want += ["labels"] if nested else ["label_anomalous", "label_faults"]
    missing = [w for w in want if w not in names]
    if missing:
        raise ConfigError.one("emitter report", (spec,), f"not emitter's events: no column {missing[0]!r}")
    for rb in ds.to_batches(columns=want, batch_size=CHUNK):
        cols = {name: rb.column(name) for name in want}
        lab = cols["labels"] if nested else None
        anomalous = (lab.field("anomalous") if lab is not None else cols["label_anomalous"]).to_pylist()
        faults = (lab.field("faults") if lab is not None else cols["label_faults"]).to_pylist()
        yield _Chunk(
            cols["timestamp"].cast(pa.int64()).to_pylist(),
            cols["service"].cast(pa.string()).to_pylist(),
            cols["latency_ms"].to_pylist(),
            cols["status_code"].to_pylist(),
            cols["seq"].to_pylist(),
            cols["attempt"].to_pylist(),
            [END_CODE.get(r or "", 0) for r in cols["end_reason"].cast(pa.string()).to_pylist()],
            anomalous,
            faults,
            cols["run_id"].cast(pa.string()).to_pylist(),
        )


def _chunks(spec: str) -> Iterator[_Chunk]:
    from ..validate.sources import is_parquet

    return _parquet(spec) if spec != "-" and is_parquet(spec) else _jsonl(spec)


def _truth(spec: str | None) -> list[dict[str, Any]]:
    if spec is None:
        return []
    from ..validate.sources import open_lines

    out = []
    for n, line in enumerate(open_lines(spec, "--truth"), 1):
        if line.strip():
            try:
                out.append(msgspec.json.decode(line))
            except msgspec.DecodeError as exc:
                raise ConfigError.one(spec, (f"line {n}",), f"not a truth record: {exc}") from None
    if not any(isinstance(r, dict) and r.get("type") == "manifest" for r in out):
        raise ConfigError.one(spec, (), "no manifest record: not a truth file that emitter run --truth wrote")
    return [r for r in out if isinstance(r, dict)]


def report_command(req: ReportRequest) -> int:
    check_writable(req.output, "--output")
    truth = _truth(req.truth)
    if req.truth is not None:
        read_truth(req.truth)  # every record checked as the scorer checks it: one line for a bad one
    manifest = next((r for r in truth if r.get("type") == "manifest"), None)
    run_id = req.run_id or (manifest or {}).get("run_id")
    fault_ids = (manifest or {}).get("faults", [])
    if not isinstance(fault_ids, list) or not all(isinstance(f, str) for f in fault_ids):
        raise ConfigError.one(str(req.truth), ("manifest", "faults"), "expected a list of fault ids")
    bit = {f: i for i, f in enumerate(fault_ids[:64])}
    wfs = [load_workflow(w) for w in req.workflows]
    start_us = parse_ts(manifest["start"]) if manifest else None
    rec = RunRecorder(None, len(fault_ids))
    other, runs = 0, set()
    for spec in req.events:
        for c in _chunks(spec):
            t = np.array(c.t_us, np.int64)
            keep = np.ones(len(t), bool)
            if run_id:
                keep = np.array([r == run_id for r in c.run_id], bool)
                other += int((~keep).sum())
            else:
                runs.update(c.run_id)
            if not keep.any():
                continue
            if start_us is None:
                start_us = int(t[keep].min()) // 1000 * 1000
            rel = t[keep] - start_us
            svc = np.array([rec.service(s) for s, k in zip(c.service, keep, strict=True) if k], np.int64)
            lat = np.round(np.array(c.latency_ms)[keep] * 1000).astype(np.int64)
            status = np.array(c.status, np.int64)[keep]
            rec.add_calls(rel, svc, lat, status)
            fmask = np.zeros(len(t), np.uint64)
            for k, fs in enumerate(c.faults):
                for f in fs:
                    if f in bit:
                        fmask[k] |= np.uint64(1) << np.uint64(bit[f])
            rec.add_roots(
                rel,
                np.array(c.seq)[keep],
                np.array(c.attempt)[keep],
                np.array(c.end)[keep],
                status,
                np.array(c.anomalous, bool)[keep],
                fmask[keep] if fault_ids else None,
            )
    if len(runs) > 1:
        raise ConfigError.one(
            ", ".join(req.events), (), f"events of {len(runs)} runs: give --run-id (or --truth) to pick one"
        )
    if rec.events == 0:
        raise ConfigError.one(", ".join(req.events), (), "no events" + (f" of run {run_id}" if run_id else ""))
    if not truth:
        from ..core.truth import iso

        truth = [{"type": "manifest", "run_id": run_id or next(iter(runs), ""), "start": iso(start_us or 0)}]
    extra = {
        "recorded from": ", ".join(req.events)
        + "; the events hold the API calls: downstream services and the wall clock are what emitter run "
        "--report records",
    }
    if other:
        extra["other runs' events"] = f"{other:,} skipped"
    write_html(req.output, "--output", run_report(rec, truth, wfs, extra=extra))
    print(f"emitter: report of {rec.events:,} events", file=sys.stderr)
    return 0
