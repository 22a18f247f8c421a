"""The round trip through real tracing backends: a workflow -> emitter run -> OTLP into the real collector
(its file output) and into the real Jaeger (its query API's JSON) -> emitter fit -> a fitted workflow that
holds the truth, judges the original stream consistent, and replays like it."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import emitter

from ..conftest import WORKFLOWS, run_cli
from ..fit.roundtrip import truth_in_intervals, two_sample

pytestmark = [pytest.mark.otelcol]
MICRO = WORKFLOWS / "microservices.yaml"


# a fixed start as well as a fixed seed: the run's identity (and so its user-type hash) includes the start, and
# the checks below are statistical, so each run is pinned to one stream that passes rather than a new one per day
START = "2026-11-01T00:00:00Z"


def _run(sink: str, events: Path, seed: int, sessions: int) -> list[dict[str, Any]]:
    r = run_cli(
        "run",
        str(MICRO),
        *("--seed", str(seed), "--sessions", str(sessions), "--speed", "max", "--start", START, "--progress", "off"),
        *("--sink", sink, "--sink", f"file:{events}"),
    )
    assert r.returncode == 0, r.stderr.decode()
    return [json.loads(x) for x in events.read_text().splitlines()]


def _fit(source: Path | str, out: Path, *args: str) -> dict[str, Any]:
    report = out.with_suffix(".json")
    r = run_cli("fit", str(source), "-o", str(out), "--report", str(report), *args)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(report.read_text())


def _check(fitted: Path, report: dict[str, Any], events: Path) -> None:
    truth = emitter.load_workflow(MICRO)
    assert truth_in_intervals(report, truth) == []
    fw = emitter.load_workflow(fitted)
    # the service graph came back from the spans: every declared call of a service that was called
    for name, svc in truth.services.items():
        if name in fw.services and svc.calls:
            assert list(fw.services[name].calls) == list(svc.calls), name
    v = run_cli("validate", str(fitted), "--source", str(events))
    assert v.returncode == 0, v.stdout.decode()[-1500:]
    replay = emitter.generate(fitted, seed=77, sessions=report["sessions"], arrival_rate=10, start=START)
    assert two_sample(events, replay) == []


def test_fit_from_the_collectors_file_output(otelcol: dict[str, str], tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    rows = _run("otlp://127.0.0.1:4317", events, 404, 3000)
    traces = {e["trace_id"] for e in rows}
    # this run's spans, out of the collector's file (it holds earlier runs' too)
    mine = tmp_path / "otlp.jsonl"
    deadline = time.monotonic() + 60
    while True:
        kept, seen = [], set()
        for line in Path(otelcol["traces"]).read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            for rs in d["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    ss["spans"] = [sp for sp in ss["spans"] if sp["traceId"] in traces]
                    seen |= {sp["traceId"] for sp in ss["spans"]}
            if any(ss["spans"] for rs in d["resourceSpans"] for ss in rs["scopeSpans"]):
                kept.append(json.dumps(d))
        if seen == traces or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert seen == traces
    mine.write_text("\n".join(kept) + "\n")
    fitted = tmp_path / "fitted.yaml"
    report = _fit(mine, fitted)
    assert report["calls"] == len(rows) and report["spans"] > 3 * len(rows)
    # user types the spans name, and the rows where they walk differently
    assert report["type_overrides"] == {"guest": ["<entry>"], "premium": ["/api/v1/cart"]}
    _check(fitted, report, events)


@pytest.mark.jaeger
def test_fit_from_jaegers_query_api(jaeger: dict[str, str], tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    rows = _run(f"otlp://{jaeger['otlp']}", events, 405, 1500)
    run_id = rows[0]["run_id"]
    traces = {e["trace_id"] for e in rows}
    t0 = min(e["timestamp"] for e in rows)
    import datetime as dt

    start = dt.datetime.fromisoformat(t0.replace("Z", "+00:00"))
    lo = int(start.timestamp() * 1e6) - 60_000_000
    hi = lo + 86_400_000_000
    got: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{jaeger['query']}/api/services") as r:
            services = json.load(r)["data"] or []
        for svc in services:
            q = (
                f"{jaeger['query']}/api/traces?service={svc}&limit=100000&start={lo}&end={hi}&tags="
                + urllib.request.quote(json.dumps({"emitter.run_id": run_id}))
            )
            with urllib.request.urlopen(q) as r:
                for tr in json.load(r)["data"] or []:
                    got[tr["traceID"]] = tr
        if traces <= set(got):
            break
        time.sleep(1)
    assert traces <= set(got), f"{len(traces - set(got))} traces missing from Jaeger"
    doc = tmp_path / "jaeger.json"
    doc.write_text(json.dumps({"data": [got[t] for t in sorted(traces)]}))
    fitted = tmp_path / "fitted.yaml"
    report = _fit(doc, fitted)
    assert report["calls"] == len(rows)
    _check(fitted, report, events)


@pytest.mark.kafka
def test_fit_from_kafka_events_and_the_collectors_otlp_topic(
    otelcol: dict[str, str], kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Events from a topic of our own; spans from the topic the collector's Kafka exporter writes (shared
    with earlier runs: ``--run-id`` keeps this one's)."""
    events = tmp_path / "events.jsonl"
    rows = _run(f"kafka://{kafka_bootstrap}/{topic}?retention.ms=-1", events, 406, 2500)
    fitted = tmp_path / "from-events.yaml"
    report = _fit(f"kafka://{kafka_bootstrap}/{topic}", fitted, "--until-idle", "3")
    assert report["calls"] == len(rows)
    assert truth_in_intervals(report, emitter.load_workflow(MICRO)) == []
    # the same run's spans through the collector into its Kafka topic, as OTLP protobuf
    events2 = tmp_path / "events2.jsonl"
    rows2 = _run("otlp://127.0.0.1:4317", events2, 407, 2500)
    fitted2 = tmp_path / "from-otlp.yaml"
    time.sleep(2)
    report2 = _fit(
        f"kafka://{kafka_bootstrap}/otlp_spans", fitted2, "--until-idle", "3", "--run-id", rows2[0]["run_id"]
    )
    assert report2["calls"] == len(rows2) and report2["spans"] > 3 * len(rows2)
    _check(fitted2, report2, events2)
