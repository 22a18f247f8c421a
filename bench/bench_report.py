"""The run report: what recording costs a run, and how fast the page opens in headless Chromium.

Recording: the same sessions (same seed, start) at --speed max into the null sink, with the run report's
recorder observing every batch and without (the anchor), alternating; the recorder's work is part of
the run, so the ratio is what --report costs. Then the report of a run of about a million events is
written and opened, several times, in headless Chromium (Debian's package, as the browser tests use):
time to the first screen (the charts in view drawn and idle), time until every chart is drawn, and its
size; the anchor is bokeh's own standalone page of one line chart (``bokeh.embed.file_html``), the floor
of any page built on it. The goal: the first screen in under a second.

    python -m bench.bench_report [--runs 5] [--sessions 120000] [--workflow workflows/microservices.yaml]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emitter.core.faults import Dynamics
from emitter.core.truth import truth_records
from emitter.inputs.workflow import load_workflow
from emitter.report.record import RunRecorder
from emitter.report.run import run_report
from emitter.sinks.base import open_sink

from .common import compare, run_at_max_speed, write_result

START = 1_767_225_600_000_000
CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def record(wf: Any, sessions: int, on: bool, keep: list[RunRecorder] | None = None) -> int:
    rec = RunRecorder(None, 0)
    st = run_at_max_speed(wf, open_sink("null"), sessions, 7, START, observers=[rec] if on else None)
    if on:
        assert rec.events == st.events
        if keep is not None:
            keep.append(rec)
    return int(st.events)


def anchor_page(path: Path) -> None:
    from bokeh.embed import file_html
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    fig = figure(width=1100, height=280)
    fig.line(list(range(400)), [i % 17 for i in range(400)])
    path.write_text(file_html(fig, INLINE, "anchor"))


def open_times(browser: Any, path: Path, ours: bool) -> tuple[float, float]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    idle = "Object.values(Bokeh.index).every(v => v.is_idle)"
    t0 = time.perf_counter()
    page.goto(path.resolve().as_uri(), wait_until="commit")
    if ours:
        page.wait_for_function(f"() => window.emitterDrawn > 0 && window.Bokeh && {idle}", polling=10)
    else:
        page.wait_for_function(f"() => window.Bokeh && Object.keys(Bokeh.index).length > 0 && {idle}", polling=10)
    first = time.perf_counter() - t0
    if ours:
        page.evaluate("emitterRenderAll()")
        page.wait_for_function(f"() => window.emitterDrawn == window.emitterCharts && {idle}", polling=10)
    every = time.perf_counter() - t0
    page.close()
    if errors:
        raise RuntimeError(f"{path}: {errors}")
    return first, every


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=25_000, help="sessions per recording run")
    ap.add_argument("--report-sessions", type=int, default=120_000, help="sessions of the reported run (~1M events)")
    ap.add_argument("--workflow", default="workflows/microservices.yaml")
    a = ap.parse_args()
    wf = load_workflow(a.workflow)
    compare(
        "report_recording",
        lambda: record(wf, a.sessions, True),
        lambda: record(wf, a.sessions, False),
        a.runs,
        "events/s",
        "the same run unrecorded",
    )
    keep: list[RunRecorder] = []
    t0 = time.perf_counter()
    events = record(wf, a.report_sessions, True, keep)
    run_s = time.perf_counter() - t0
    rec = keep[0]
    truth = truth_records(
        run_id="bench", seed=7, start_us=START, speed="max", workflows=[(wf, 1.0)], dynamics=Dynamics(), load="bench"
    )
    t0 = time.perf_counter()
    text = run_report(rec, truth, [wf])
    build_s = time.perf_counter() - t0
    print(f"report of {events:,} events: run {run_s:.1f} s, page built in {build_s:.2f} s, {len(text) / 1e6:.2f} MB")
    from playwright.sync_api import sync_playwright

    exe = next((c for c in (os.environ.get("EMITTER_CHROMIUM", ""), *CHROMIUM) if c and os.access(c, os.X_OK)), None)
    if exe is None:
        sys.exit("bench_report: headless Chromium is missing: run scripts/chromium.sh")
    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        ours, anchor = Path(d) / "run.html", Path(d) / "anchor.html"
        ours.write_text(text)
        anchor_page(anchor)
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        open_times(browser, ours, True)  # a first, cold load of each (disk cache, fonts)
        open_times(browser, anchor, False)
        firsts, everys, anchors = [], [], []
        for i in range(a.runs):
            anchors.append(open_times(browser, anchor, False)[0])
            f, e = open_times(browser, ours, True)
            firsts.append(f)
            everys.append(e)
            print(f"  run {i + 1}/{a.runs}: anchor {anchors[-1]:.3f} s, report first screen {f:.3f} s, all {e:.3f} s",
                  file=sys.stderr)  # fmt: skip
        browser.close()
    f, e, an = statistics.median(firsts), statistics.median(everys), statistics.median(anchors)
    print(
        f"report_open: first screen {f:.3f} s, every chart {e:.3f} s; bokeh's one-chart page {an:.3f} s "
        f"(medians of {a.runs}): ratio {f / an:.2f}x (first screen), {e / an:.2f}x (all); goal: first screen < 1 s"
    )
    write_result(
        "report_open",
        {
            "events": events,
            "page_bytes": len(text),
            "build_s": build_s,
            "first_screen_s": f,
            "all_charts_s": e,
            "anchor_s": an,
            "first_screen_runs": firsts,
            "all_charts_runs": everys,
            "anchor_runs": anchors,
            "ratio_first": f / an,
            "ratio_all": e / an,
        },
    )


if __name__ == "__main__":
    main()
