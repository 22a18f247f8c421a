"""``emitter score``: a detector's output against a run's truth."""

from __future__ import annotations

import json
from pathlib import Path

from .outputs import check_writable, write_html

__all__ = ["score_command"]


def _path(p: str) -> str:
    return p[5:] if p.startswith("file:") else p


def score_command(
    truth: str, detections: str, events: str | None, grace_s: float, report: str | None, html: str | None = None
) -> int:
    from ..score import score

    for flag, path in (("--report", report), ("--html", html)):
        if path:
            check_writable(path, flag)
    rep = score(_path(truth), _path(detections), _path(events) if events else None, grace_s=grace_s)
    print(rep.render())
    if report:
        Path(report).write_text(json.dumps(rep.data, indent=2) + "\n", encoding="utf-8")
    if html:
        from ..report.score import score_report

        write_html(html, "--html", score_report(rep.data, rep.timeline))
    return 0
