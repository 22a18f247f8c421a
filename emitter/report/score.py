"""The scorer's report as a page: one timeline row per fault interval, its window from the truth beside the
detections that matched it (intervals) and the flagged events it touched (events); a last row holds the
detections that matched no fault and the flagged events no fault touched (false alarms). Above it, the
scores themselves.

It reads the scorer's JSON ``data`` and its ``timeline`` (:class:`emitter.score.render.ScoreReport`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from .._version import __version__
from ..core.truth import iso
from .charts import heading, page, para, table, timeline_chart
from .run import iso_ms

__all__ = ["score_report"]

NO_FAULT = "(no fault)"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f} s"


class _Bars:
    def __init__(self) -> None:
        self.row: list[str] = []
        self.start: list[float] = []
        self.end: list[float] = []
        self.tip: list[str] = []

    def add(self, row: str, start: float, end: float, tip: str) -> None:
        self.row.append(row)
        self.start.append(start)
        self.end.append(end)
        self.tip.append(tip)

    def cols(self) -> tuple[list[str], list[float], list[float], list[str]]:
        return self.row, self.start, self.end, self.tip


def score_report(data: Mapping[str, Any], timeline: Mapping[str, Any]) -> str:
    faults = list(data["faults"])
    labels = [f["label"] for f in faults]
    run_end = timeline.get("run_end_us")
    dets = list(timeline.get("detections", []))
    # an open fault ends where the scorer ends it: at the run's last event (else the last detection)
    ends = [e for _, e, _, _ in dets]
    open_end = run_end / 1000 if run_end else max(ends) / 1000 if ends else None
    blocks: list[Any] = [
        heading(f"emitter score report: run {data.get('run_id') or '?'}", 1, name="title"),
        table(
            [
                ("run id", data.get("run_id") or "?"),
                ("seed", data.get("seed")),
                ("run", f"{data.get('run_start') or '?'} to {data.get('run_end') or '?'}"),
                ("fault intervals", len(faults)),
                ("grace", f"{data['grace_s']:g} s"),
                ("inputs", ", ".join(f"{k}: {v}" for k, v in data["inputs"].items() if v)),
                ("report by", f"emitter {__version__}"),
            ],
            name="identity",
        ),
    ]
    scores = []
    for level in ("interval_level", "event_level"):
        s = data.get(level)
        if s:
            scores.append(
                (
                    level.replace("_", " "),
                    _pct(s.get("precision")),
                    _pct(s.get("recall")),
                    _pct(s.get("f1")),
                    f"{s['faults_detected']} of {len(faults)}",
                    _secs(s.get("mean_delay_s")),
                    _secs(s.get("max_delay_s")),
                )
            )
    blocks.append(
        table(
            scores,
            header=("level", "precision", "recall", "F1", "faults detected", "mean delay", "max delay"),
            name="scores",
        )
    )
    rows = [*labels, NO_FAULT]
    win = _Bars()
    for f in faults:
        s = iso_ms(f["start"])
        e = iso_ms(f["end"]) if f["end"] else open_end
        if s is None:
            continue
        e = e if e is not None else s
        il, el = f.get("interval_level") or {}, f.get("event_level") or {}
        tip = f"{f['label']} ({f['kind']}) {f['start']} to {f['end'] or 'open'}"
        if il:
            tip += f"; {il['detections']} detections, delay {_secs(il['delay_s'])}"
        if el:
            tip += f"; {el['flagged']:,} of {el['events']:,} events flagged, delay {_secs(el['delay_s'])}"
        win.add(f["label"], s, e, tip)
    hit, miss = _Bars(), _Bars()
    for start, end, svc, matched in dets:
        tip = f"detection {iso(start)} to {iso(end)}" + (f" on {svc}" if svc else "")
        for label in matched or [NO_FAULT]:
            (hit if matched else miss).add(label, start / 1000, max(end, start + 1000) / 1000, tip)
    bars = {
        "fault window (truth)": win.cols(),
        "detection matching a fault": hit.cols(),
        "detection matching none": miss.cols(),
    }
    points: dict[str, tuple[list[str], list[float], list[str]]] = {}
    flagged = timeline.get("flagged", {})
    if flagged or timeline.get("false_alarms"):
        pr: list[str] = []
        pt: list[float] = []
        for label, ts in flagged.items():
            pr += [label] * len(ts)
            pt += [t / 1000 for t in ts]
        points["flagged event (the fault's)"] = (pr, pt, [f"flagged: {r}" for r in pr])
        fa = timeline.get("false_alarms", [])
        points["flagged event (no fault: false alarm)"] = (
            [NO_FAULT] * len(fa),
            [t / 1000 for t in fa],
            ["false alarm"] * len(fa),
        )
    blocks.append(heading("Detections against the truth"))
    blocks.append(
        para(
            html.escape(
                "One row per fault interval: its window from the truth (wide bar), the detections that matched "
                f"it (narrow bars) and the flagged events it touched (diamonds). The last row, {NO_FAULT}, holds "
                "what matched no fault. Drag to pan, scroll to zoom, click a legend entry to hide it."
                + (" Flagged events are thinned evenly to 2,000 per row." if flagged else "")
            )
        )
    )
    blocks.append(timeline_chart("timeline", "detections against fault windows", rows, bars, points))
    per = [
        (
            f["label"],
            f["kind"],
            f["start"],
            f["end"] or "open",
            (f.get("interval_level") or {}).get("detections", "-"),
            _secs((f.get("interval_level") or {}).get("delay_s")),
            _pct((f.get("event_level") or {}).get("recall")),
            _secs((f.get("event_level") or {}).get("delay_s")),
        )
        for f in faults
    ]
    blocks.append(
        table(
            per,
            header=("fault", "kind", "start", "end", "detections", "delay", "event recall", "event delay"),
            name="faults",
        )
    )
    return page(f"emitter score: run {data.get('run_id') or '?'}", blocks)
