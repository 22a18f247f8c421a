"""The scores: event level and interval level precision, recall, F1 and detection delay (see the package's
explanation of each corner case)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .read import (
    _I64_MAX,
    REPORT_VERSION,
    Detections,
    Truth,
    _bad,
    _Events,
    _read_events,
    _source_name,
    format_ts,
    read_detections,
    read_truth,
)
from .render import ScoreReport


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if recall is None:
        return None
    if precision is None or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _delay_stats(delays: Sequence[float | None]) -> dict[str, float | None]:
    got = [d for d in delays if d is not None]
    return {"mean_delay_s": sum(got) / len(got) if got else None, "max_delay_s": max(got) if got else None}


TIMELINE_POINTS = 2_000  # flagged events a timeline row draws at most (evenly thinned past this)


def _thin(t: Any) -> list[int]:
    t = np.sort(np.asarray(t, np.int64))
    if len(t) > TIMELINE_POINTS:
        t = t[np.linspace(0, len(t) - 1, TIMELINE_POINTS).astype(np.intp)]
    return [int(v) for v in t]


def _event_level(truth: Truth, ev: _Events, rows: list[dict[str, Any]], timeline: dict[str, Any]) -> dict[str, Any]:
    a, f = ev.anomalous, ev.flagged
    tp = int(np.count_nonzero(a & f))
    fp = int(np.count_nonzero(~a & f))
    fn = int(np.count_nonzero(a & ~f))
    tn = len(a) - tp - fp - fn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    by_role = {}
    for ri, name in enumerate(ev.roles):
        m = ev.role == ri
        by_role[name] = {
            "events": int(np.count_nonzero(m)),
            "anomalous": int(np.count_nonzero(m & a)),
            "flagged": int(np.count_nonzero(m & f)),
            "recall": _ratio(int(np.count_nonzero(m & a & f)), int(np.count_nonzero(m & a))),
        }
    by_id: dict[str, list[int]] = {}
    for i, flt in enumerate(truth.faults):
        by_id.setdefault(flt.id, []).append(i)
    for fid, idxs in by_id.items():
        has = np.array([fid in c for c in ev.combos], bool)
        carrying = has[ev.combo] if len(ev.combos) else np.zeros(0, bool)
        t = ev.ts[carrying]
        fl = f[carrying]
        if len(idxs) == 1:
            which = np.zeros(len(t), np.intp)
        else:
            order = sorted(idxs, key=lambda i: truth.faults[i].start_us)
            starts = np.array([truth.faults[i].start_us for i in order], np.int64)
            which = np.maximum(np.searchsorted(starts, t, side="right") - 1, 0)
            idxs = order
        for k, i in enumerate(idxs):
            flt = truth.faults[i]
            sel = which == k
            tk, fk = t[sel], fl[sel]
            n_flagged = int(np.count_nonzero(fk))
            onset = max(0, int(tk.min()) - flt.start_us) / 1e6 if len(tk) else None
            delay = max(0, int(tk[fk].min()) - flt.start_us) / 1e6 if n_flagged else None
            timeline.setdefault("flagged", {})[flt.label] = _thin(tk[fk])
            rows[i]["event_level"] = {
                "events": len(tk),
                "flagged": n_flagged,
                "recall": _ratio(n_flagged, len(tk)),
                "onset_s": onset,
                "delay_s": delay,
            }
    timeline["false_alarms"] = _thin(ev.ts[~a & f])
    delays = [r["event_level"]["delay_s"] for r in rows]
    return {
        "events": len(a),
        "anomalous": tp + fn,
        "flagged": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "faults_detected": sum(d is not None for d in delays),
        **_delay_stats(delays),
        "by_role": by_role,
    }


def _interval_level(
    truth: Truth,
    det: Detections,
    run_end_us: int | None,
    grace_us: int,
    rows: list[dict[str, Any]],
    timeline: dict[str, Any],
) -> dict[str, Any]:
    ds, de = det.starts, det.ends
    names = sorted({s for s in det.services if s is not None})
    code = {s: i for i, s in enumerate(names)}
    svc = np.array([-1 if s is None else code[s] for s in det.services], np.int64)
    matched_any = np.zeros(len(ds), bool)
    matched_by: list[list[str]] = [[] for _ in range(len(ds))]
    delays: list[float | None] = []
    for i, flt in enumerate(truth.faults):
        end = flt.end_us if flt.end_us is not None else run_end_us
        we = _I64_MAX if end is None else min(max(end, flt.start_us) + grace_us, _I64_MAX)
        allowed = [code[s] for s in flt.affected_services if s in code]
        svc_ok = (svc == -1) | np.isin(svc, allowed)
        m = (ds <= we) & (de >= flt.start_us) & svc_ok
        matched_any |= m
        for k in np.flatnonzero(m):
            matched_by[k].append(flt.label)
        n = int(np.count_nonzero(m))
        delay = max(0, int(ds[m].min()) - flt.start_us) / 1e6 if n else None
        delays.append(delay)
        rows[i]["interval_level"] = {"detected": n > 0, "detections": n, "delay_s": delay}
    timeline["detections"] = [(int(ds[k]), int(de[k]), det.services[k], matched_by[k]) for k in range(len(ds))]
    n_faults = len(truth.faults)
    detected = sum(d is not None for d in delays)
    true_det = int(np.count_nonzero(matched_any))
    precision = _ratio(true_det, len(ds))
    recall = _ratio(detected, n_faults)
    return {
        "faults": n_faults,
        "faults_detected": detected,
        "detections": len(ds),
        "detections_matching": true_det,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        **_delay_stats(delays),
    }


# --------------------------------------------------------------------------------------------- report


def score(
    truth_path: str | Path,
    detections_path: str | Path,
    events_path: str | Path | None = None,
    grace_s: float = 0.0,
) -> ScoreReport:
    """Score the detections against the truth file (and the events file, for event-form detections)."""
    if isinstance(grace_s, bool) or not isinstance(grace_s, int | float) or not math.isfinite(grace_s) or grace_s < 0:
        raise ConfigError.one("command line", ("--grace",), f"expected a number of seconds >= 0, got {grace_s!r}")
    stdin_users = [p for p in (truth_path, detections_path, events_path) if p is not None and str(p) == "-"]
    if len(stdin_users) > 1:
        raise ConfigError.one("command line", ("-",), "only one input can be read from standard input")
    grace_us = round(grace_s * 1_000_000)
    truth = read_truth(truth_path)
    det = read_detections(detections_path)
    if det.flagged and events_path is None:
        first = min(det.flagged.values())
        raise _bad(
            _source_name(detections_path),
            first,
            "an event-form detection (event_id) needs the events file to score against",
            "event_id",
        )
    events: _Events | None = None
    if events_path is not None:
        events = _read_events(events_path, det.flagged, truth.run_id)
        missing = [i for i in det.flagged if i not in events.found]
        if missing:
            first_line = min(det.flagged[i] for i in missing)
            eid_txt = next(f"{i:016x}" for i in missing if det.flagged[i] == first_line)
            raise _bad(
                _source_name(detections_path),
                first_line,
                f"{eid_txt} is not in the events file {_source_name(events_path)} "
                f"({len(missing):,} flagged event ids are not; events from another run?)",
                "event_id",
            )
    run_end = int(events.ts.max()) if events is not None and len(events.ts) else None

    rows: list[dict[str, Any]] = [
        {
            "id": f.id,
            "interval": f.interval,
            "label": f.label,
            "kind": f.kind,
            "target": f.target,
            "start": format_ts(f.start_us),
            "end": None if f.end_us is None else format_ts(f.end_us),
            "affected_services": list(f.affected_services),
            "event_level": None,
            "interval_level": None,
        }
        for f in truth.faults
    ]
    timeline: dict[str, Any] = {"run_end_us": run_end}
    event_level = None
    if events is not None and (det.event_lines > 0 or det.n_intervals == 0):
        event_level = _event_level(truth, events, rows, timeline)
    interval_level = None
    if det.n_intervals > 0 or det.event_lines == 0:
        interval_level = _interval_level(truth, det, run_end, grace_us, rows, timeline)

    known = {f.id for f in truth.faults}
    unknown = sorted({fid for c in events.combos for fid in c} - known) if events is not None else []
    data: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "run_id": truth.run_id,
        "seed": truth.seed,
        "run_start": None if truth.start_us is None else format_ts(truth.start_us),
        "run_end": None if run_end is None else format_ts(run_end),
        "grace_s": float(grace_s),
        "inputs": {
            "truth": str(truth_path),
            "detections": str(detections_path),
            "events": None if events_path is None else str(events_path),
        },
        "truth": {"faults": len(truth.faults), "ignored_records": truth.ignored_records},
        "detections": {
            "event_form": det.event_lines,
            "event_ids": len(det.flagged),
            "interval_form": det.n_intervals,
        },
        "events": None
        if events is None
        else {
            "read": events.read,
            "distinct": len(events.ts),
            "duplicates": events.read - len(events.ts),
            "unknown_fault_ids": unknown,
        },
        "event_level": event_level,
        "interval_level": interval_level,
        "faults": rows,
    }
    return ScoreReport(data, timeline)
