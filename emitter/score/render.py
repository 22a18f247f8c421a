"""The score report: its JSON form and the table a person reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScoreReport:
    """The scores: ``data`` is plain JSON (see the module docstring); ``render`` is the readable table."""

    data: dict[str, Any]
    # what a timeline draws, not part of the JSON: "detections" (start µs, end µs, service, labels of the
    # fault intervals each matched), "flagged" (per fault label, the flagged events' times, µs, thinned to
    # TIMELINE_POINTS) and "false_alarms" (flagged events no fault touched), "run_end_us"
    timeline: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2)

    def render(self) -> str:
        d = self.data
        n = len(d["faults"])
        head = f"run {d['run_id'] or '?'} (seed {d['seed']}): {n} fault interval{'' if n == 1 else 's'}"
        if any(r["end"] is None for r in d["faults"]):
            head += f"; open-ended ones end at {d['run_end'] or 'infinity (no events given)'}"
        lines = [head]
        ev = d["event_level"]
        if ev is not None:
            lines += [
                "",
                f"event level: {ev['events']:,} events, {ev['anomalous']:,} anomalous, {ev['flagged']:,} flagged"
                + (f" ({d['events']['duplicates']:,} duplicate events ignored)" if d["events"]["duplicates"] else ""),
                f"  TP {ev['tp']:,}  FP {ev['fp']:,}  FN {ev['fn']:,}  TN {ev['tn']:,}",
                f"  precision {_num(ev['precision'])}  recall {_num(ev['recall'])}  F1 {_num(ev['f1'])}",
                f"  faults detected {ev['faults_detected']}/{len(d['faults'])}; delay mean "
                f"{_sec(ev['mean_delay_s'])}, max {_sec(ev['max_delay_s'])}",
            ]
            for name, r in ev["by_role"].items():
                lines.append(
                    f"  role {name:<11} {r['events']:>9,} events {r['anomalous']:>9,} anomalous "
                    f"{r['flagged']:>9,} flagged  recall {_num(r['recall'])}"
                )
        iv = d["interval_level"]
        if iv is not None:
            lines += [
                "",
                f"interval level: {iv['detections']:,} detections, {iv['faults']} faults, grace {d['grace_s']:g} s",
                f"  detections matching a fault {iv['detections_matching']:,}/{iv['detections']:,}; "
                f"faults detected {iv['faults_detected']}/{iv['faults']}",
                f"  precision {_num(iv['precision'])}  recall {_num(iv['recall'])}  F1 {_num(iv['f1'])}",
                f"  delay mean {_sec(iv['mean_delay_s'])}, max {_sec(iv['max_delay_s'])}",
            ]
        if d["faults"]:
            head = f"{'fault':<24} {'kind':<8} {'target':<24} {'start':<27} {'end':<27}"
            if ev is not None:
                head += f" {'events':>8} {'flagged':>8} {'recall':>7} {'onset':>9} {'delay':>9}"
            if iv is not None:
                head += f" {'detected':>8} {'delay':>9}"
            lines += ["", head]
            for r in d["faults"]:
                t = r["target"]
                if t.get("endpoint") and t.get("service"):
                    target = f"{t['endpoint']} ({t['service']})"
                else:
                    target = ", ".join(str(v) for v in t.values())
                row = (
                    f"{_short(r['label'], 24):<24} {_short(r['kind'], 8):<8} {_short(target, 24):<24} "
                    f"{r['start']:<27} {r['end'] or '(end of run)':<27}"
                )
                if ev is not None:
                    e = r["event_level"]
                    row += (
                        f" {e['events']:>8,} {e['flagged']:>8,} {_num(e['recall']):>7} {_sec(e['onset_s']):>9} "
                        f"{_sec(e['delay_s']):>9}"
                    )
                if iv is not None:
                    i = r["interval_level"]
                    row += f" {'yes' if i['detected'] else 'no':>8} {_sec(i['delay_s']):>9}"
                lines.append(row)
        return "\n".join(lines)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _sec(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}s"


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
