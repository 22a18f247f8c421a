"""The three HTML reports, opened in headless Chromium: no console errors, nothing fetched, the charts and
labels a reader needs, and what they draw agrees with the run's own files. Screenshots go to
.local/artifacts/browser/ (or $EMITTER_ARTIFACTS/browser/)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emitter.inputs.workflow import load_workflow

from ..conftest import WORKFLOWS, run_cli

pytestmark = pytest.mark.browser

RED = "#d62728"


def _ms(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def _run(*args: str) -> str:
    proc = run_cli("run", *args, "--progress", "off", timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stderr.decode()


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def test_run_report_of_a_fault_scenario(tmp_path: Path, open_report: Any) -> None:
    events, truth, html = tmp_path / "e.jsonl", tmp_path / "t.jsonl", tmp_path / "run.html"
    scenario = WORKFLOWS / "scenarios" / "payment-slowdown.yaml"
    _run(str(scenario), "--sink", f"file:{events}", "--truth", f"file:{truth}", "--report", str(html))
    ev = _read(events)
    manifest, fault = _read(truth)[:2]
    page = open_report(html)
    assert page.messages == []
    assert page.names() == [
        "emit_rate",
        "traffic",
        "sessions",
        "svc_p99_ms",
        "svc_p50_ms",
        "svc_error_rate",
        "fault_calls",
        "retries",
        "service_graph",
    ]  # fmt: skip  (speed max: no lag charts, nothing was due)
    ident = page.page.inner_text("#identity")
    assert manifest["run_id"] in ident and "seed\t7" in ident
    assert manifest["workflows"][0]["digest"] in ident and manifest["scenario_digest"] in ident
    window = [_ms(fault["start"]), _ms(fault["end"])]
    wf = load_workflow(str(WORKFLOWS / "microservices.yaml"))
    services = sorted(set(wf.services) | {e.service for e in wf.endpoints.values()})
    for chart in ("svc_p99_ms", "svc_p50_ms", "svc_error_rate", "fault_calls", "retries", "traffic", "sessions"):
        assert page.windows(chart) == [window], chart
        assert page.labels(chart) == ["payment-slow (latency)"], chart
    assert sorted(page.legend("svc_p99_ms")) == services

    # the payment service's p99 is five times slower inside the fault's window
    x = np.array(page.chart("svc_p99_ms", "return Array.from(m.renderers[0].data_source.data.x);"))
    width = float(x[1] - x[0])
    p99 = np.array([np.nan if v is None else v for v in page.series("svc_p99_ms", "payment")])
    inside = (x >= window[0] + 60_000) & (x + width <= window[1] - 60_000)  # past the 30 s ramps
    outside = (x + width < window[0]) | (x > window[1])
    assert np.nanmedian(p99[inside]) > 3 * np.nanmedian(p99[outside])

    # the calls each fault touched, per second: zero outside the window, the events' labels' count in total
    touched = np.array(page.series("fault_calls", "payment-slow"))
    assert touched[(x + width < window[0]) | (x > window[1])].sum() == 0
    assert round(touched.sum() * width / 1000) == sum("payment-slow" in e["labels"]["faults"] for e in ev)
    api = np.array(page.series("traffic", "API calls / s"))
    assert round(api.sum() * width / 1000) == len(ev)
    started = np.array(page.series("sessions", "sessions started / s"))
    expected = np.array(
        [np.nan if v is None else v for v in page.series("sessions", "sessions expected / s (load model)")]
    )
    steady = x + width <= x[0] + 2700 * 1000
    assert abs(started[steady].mean() - 5.0) < 0.2 and np.allclose(expected[steady], 5.0)

    # the service graph: the call into payment and the services the fault reached in red, the rest grey
    edges = page.chart(
        "service_graph", "const d = m.renderers[0].data_source.data; return [Array.from(d.tip), Array.from(d.color)];"
    )
    colour = {t.split(" (")[0]: c for t, c in zip(*edges, strict=True)}
    assert colour["checkout -> payment"] == RED
    assert {c for t, c in colour.items() if t != "checkout -> payment"} == {"#888888"}
    nodes = page.chart(
        "service_graph", "const d = m.renderers[1].data_source.data; return [Array.from(d.name), Array.from(d.color)];"
    )
    assert {n for n, c in zip(*nodes, strict=True) if c == RED} == set(fault["affected_services"])
    page.shot("run-report")


def test_run_report_of_a_paced_run_shows_the_schedule(tmp_path: Path, open_report: Any) -> None:
    html = tmp_path / "paced.html"
    err = _run(
        str(WORKFLOWS / "ecommerce.yaml"), "--seed", "3", "--speed", "200", "--duration", "2m", "--sink", "null",
        "--report", str(html),
    )  # fmt: skip
    n = int(re.search(r"done: ([\d,]+) events", err).group(1).replace(",", ""))  # type: ignore[union-attr]
    page = open_report(html)
    assert page.messages == []
    assert page.names()[:2] == ["emit_rate", "lag"] and "lag_sim" in page.names()
    assert page.legend("emit_rate") == ["intended (due)", "actual (sent)"]
    x = page.chart("emit_rate", "return Array.from(m.renderers[0].data_source.data.x);")
    width = x[1] - x[0]
    due, sent = (np.array(page.series("emit_rate", k)) for k in ("intended (due)", "actual (sent)"))
    assert round(due.sum() * width) == n and round(sent.sum() * width) == n
    lag = [v for v in page.series("lag", "lag (wall clock)") if v is not None]
    assert lag and min(lag) >= 0
    page.shot("run-report-paced")


def test_validation_report_marks_the_rows_that_differ(tmp_path: Path, open_report: Any) -> None:
    text = (WORKFLOWS / "ecommerce.yaml").read_text()
    drifted = tmp_path / "drifted.yaml"
    drifted.write_text(
        text.replace("    /api/checkout: 0.50\n    /api/browse: 0.30", "    /api/checkout: 0.30\n    /api/browse: 0.50")
    )
    events = tmp_path / "e.jsonl"
    _run(
        str(WORKFLOWS / "ecommerce.yaml"),
        "--seed",
        "2",
        "--start",
        "2026-01-01T00:00:00Z",  # with the seed, pins the stream the statistical assertions below judge
        "--sessions",
        "4000",
        "--speed",
        "max",
        "--sink",
        f"file:{events}",
    )
    html, rep = tmp_path / "v.html", tmp_path / "v.json"
    v = run_cli("validate", str(drifted), "--source", str(events), "--html", str(html), "--report", str(rep))
    assert v.returncode == 1, v.stdout.decode() + v.stderr.decode()
    data = json.loads(rep.read_text())
    rejected = sorted({r["state"] for r in data["rows"] if r["verdict"] == "REJECTED"})
    assert rejected == ["/api/cart"]
    page = open_report(html)
    assert page.messages == []
    assert page.page.inner_text("#verdict") == "verdict: rejected"
    learned = [n for n in page.names() if n.startswith("learned_")]
    assert learned and len(page.names()) == 3 * len(learned)  # declared, learned, difference per group
    for name in page.names():
        cells = page.chart(
            name,
            "const d = m.renderers[0].data_source.data;"
            "return [Array.from(d.row), Array.from(d.line), Array.from(d['95% CI']), Array.from(d.value)];",
        )
        rows, line, ci, value = cells
        outlined = {r for r, c in zip(rows, line, strict=True) if c == RED}
        assert outlined == set(rejected), name
        if name.startswith("learned_"):
            assert all(c.startswith("[") for c, v in zip(ci, value, strict=True) if v is not None and v > 0)
    # the declared matrix is the drifted file's; the learned one is the stream's
    decl = page.chart(
        learned[0].replace("learned_", "declared_"),
        "const d = m.renderers[0].data_source.data; return [Array.from(d.row), Array.from(d.col), Array.from(d.value)];",
    )
    got = {(r, c): v for r, c, v in zip(*decl, strict=True)}
    assert got[("/api/cart", "/api/checkout")] == pytest.approx(0.30)
    page.shot("validation-report")


def test_score_report_puts_detections_on_each_faults_row(tmp_path: Path, open_report: Any) -> None:
    events, truth = tmp_path / "e.jsonl", tmp_path / "t.jsonl"
    scenario = WORKFLOWS / "scenarios" / "payment-slowdown.yaml"
    _run(str(scenario), "--sink", f"file:{events}", "--truth", f"file:{truth}")
    ev = _read(events)
    hit = [e["event_id"] for e in ev if "payment-slow" in e["labels"]["faults"]][:40]
    calm = [e["event_id"] for e in ev if not e["labels"]["anomalous"]][:7]
    det = tmp_path / "d.jsonl"
    det.write_text(
        "".join(
            json.dumps(d) + "\n"
            for d in [
                {"start": "2026-01-01T00:21:00Z", "end": "2026-01-01T00:24:00Z", "service": "payment"},
                {"start": "2026-01-01T00:35:00Z", "end": "2026-01-01T00:36:00Z", "service": "payment"},
                *({"event_id": i} for i in hit + calm),
            ]
        )
    )
    html = tmp_path / "s.html"
    s = run_cli("score", "--truth", str(truth), "--detections", str(det), "--events", str(events), "--html", str(html))
    assert s.returncode == 0, s.stderr.decode()
    page = open_report(html)
    assert page.messages == []
    assert page.names() == ["timeline"]
    assert page.legend("timeline") == [
        "fault window (truth)", "detection matching a fault", "detection matching none",
        "flagged event (the fault's)", "flagged event (no fault: false alarm)",
    ]  # fmt: skip
    bars = page.chart(
        "timeline",
        "return m.renderers.map(r => { const d = r.data_source.data;"
        " return [Array.from(d.row), Array.from(d.left || d.x), Array.from(d.right || d.x)]; });",
    )
    window, matched, unmatched, flagged, false_alarms = bars
    fault = _read(truth)[1]
    assert window == [["payment-slow"], [_ms(fault["start"])], [_ms(fault["end"])]]
    assert matched[0] == ["payment-slow"] and matched[1] == [_ms("2026-01-01T00:21:00Z")]
    assert unmatched[0] == ["(no fault)"] and unmatched[1] == [_ms("2026-01-01T00:35:00Z")]
    assert flagged[0] == ["payment-slow"] * len(hit) and false_alarms[0] == ["(no fault)"] * len(calm)
    assert all(window[1][0] <= t <= window[2][0] for t in flagged[1])
    assert "1 of 1" in page.page.inner_text("#scores")
    page.shot("score-report")


def test_hostile_names_cannot_break_a_page(tmp_path: Path, open_report: Any) -> None:
    """Names come from users' files and detectors' output: "</script>" or "<!--" in one must not end or
    hide the page's script."""
    events, truth = tmp_path / "e.jsonl", tmp_path / "t.jsonl"
    _run(str(WORKFLOWS / "scenarios" / "payment-slowdown.yaml"), "--sink", f"file:{events}", "--truth", f"file:{truth}")
    evil = 'x</script><!--<script>alert("x")</script>&amp;'
    det = tmp_path / "d.jsonl"
    det.write_text(json.dumps({"start": "2026-01-01T00:21:00Z", "end": "2026-01-01T00:22:00Z", "service": evil}) + "\n")
    html = tmp_path / "s.html"
    s = run_cli("score", "--truth", str(truth), "--detections", str(det), "--html", str(html))
    assert s.returncode == 0, s.stderr.decode()
    page = open_report(html)
    assert page.messages == []
    tips = page.chart("timeline", "return Array.from(m.renderers[2].data_source.data.tip);")
    assert tips == [f"detection 2026-01-01T00:21:00.000000Z to 2026-01-01T00:22:00.000000Z on {evil}"]


def test_run_report_of_a_counted_run_stops_expecting_sessions_at_the_count(tmp_path: Path, open_report: Any) -> None:
    html = tmp_path / "r.html"
    _run(str(WORKFLOWS / "ecommerce.yaml"), "--seed", "4", "--sessions", "300", "--speed", "max", "--sink", "null",
         "--report", str(html))  # fmt: skip
    page = open_report(html)
    assert page.messages == []
    x = np.array(page.chart("sessions", "return Array.from(m.renderers[0].data_source.data.x);"))
    width = x[1] - x[0]
    started = np.array(page.series("sessions", "sessions started / s")) * width / 1000
    expected = np.array(
        [np.nan if v is None else v for v in page.series("sessions", "sessions expected / s (load model)")]
    )
    assert round(started.sum()) == 300
    last = int(np.flatnonzero(np.cumsum(started) >= 300 - 1e-6)[0])  # the bin of the 300th start
    assert np.isfinite(expected[: last + 1]).all() and np.isnan(expected[last + 1 :]).all()
    # the two axes of the traffic chart each fit their own lines
    api = max(v for v in page.series("traffic", "API calls / s") if v is not None)
    flight = max(v for v in page.series("traffic", "sessions in flight") if v is not None)
    left, right = page.chart("traffic", "return [m.y_range.end, m.extra_y_ranges.right.end];")
    assert api <= left < 1.5 * api and flight <= right < 1.5 * flight


def test_report_from_a_runs_files_draws_what_the_run_recorded(tmp_path: Path, open_report: Any) -> None:
    """emitter report EVENTS --truth: the API calls, sessions, retries and fault labels read back from the
    events (JSON lines and Parquet) are the ones the run's own recorder counted."""
    jsonl, parquet, truth = tmp_path / "e.jsonl", tmp_path / "e.parquet", tmp_path / "t.jsonl"
    live = tmp_path / "live.html"
    scenario = WORKFLOWS / "scenarios" / "payment-slowdown.yaml"
    _run(str(scenario), "--sink", f"file:{jsonl}", "--sink", f"parquet:{parquet}", "--truth", f"file:{truth}",
         "--report", str(live))  # fmt: skip
    pages = {"live": open_report(live)}
    for name, src in (("jsonl", jsonl), ("parquet", parquet)):
        out = tmp_path / f"{name}.html"
        proc = run_cli("report", str(src), "--truth", str(truth), "--workflow", str(WORKFLOWS / "microservices.yaml"),
                       "-o", str(out))  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        pages[name] = open_report(out)
    for name, page in pages.items():
        assert page.messages == [], name
    for name in ("jsonl", "parquet"):
        page = pages[name]
        assert "emit_rate" not in page.names() and "Not recorded" in page.page.inner_text("body")
        for chart, label in (
            ("traffic", "API calls / s"),
            ("traffic", "sessions in flight"),
            ("sessions", "sessions started / s"),
            ("fault_calls", "payment-slow"),
            ("fault_calls", "anomalous calls"),
            ("retries", "retries / s"),
            ("retries", "sessions abandoned / s"),
            ("retries", "API calls failed (5xx) / s"),
        ):
            assert page.series(chart, label) == pages["live"].series(chart, label), (name, chart, label)
        assert page.windows("svc_p99_ms") == pages["live"].windows("svc_p99_ms")
        # the API's own services are there (the events hold root calls); downstream ones only live
        assert set(page.legend("svc_p99_ms")) < set(pages["live"].legend("svc_p99_ms"))
    pages["jsonl"].shot("run-report-from-files")
