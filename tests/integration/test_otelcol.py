"""Against the real OpenTelemetry Collector (and broker): spans arrive whole, and the loop closes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ..conftest import WORKFLOWS, run_cli

pytestmark = [pytest.mark.otelcol]
MICRO = str(WORKFLOWS / "microservices.yaml")


def collector_spans(traces_file: str, trace_ids: set[str], expected: int, timeout: float = 30.0) -> list[dict]:
    """Spans of the given traces in the collector's file output, once ``expected`` of them are there."""
    deadline = time.monotonic() + timeout
    while True:
        spans = []
        with open(traces_file, encoding="utf-8") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line being written
                for rs in d["resourceSpans"]:
                    res = {a["key"]: a["value"].get("stringValue") for a in rs["resource"]["attributes"]}
                    for ss in rs["scopeSpans"]:
                        for sp in ss["spans"]:
                            if sp["traceId"] in trace_ids:
                                sp["_service"] = res["service.name"]
                                spans.append(sp)
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def attrs(sp: dict) -> dict:
    out = {}
    for a in sp.get("attributes", []):
        v = a["value"]
        out[a["key"]] = int(v["intValue"]) if "intValue" in v else next(iter(v.values()))
    return out


@pytest.mark.parametrize("sink", ["otlp://127.0.0.1:4317", "otlp+http://127.0.0.1:4318"], ids=["grpc", "http"])
def test_sessions_arrive_whole_in_the_collector(otelcol: dict, sink: str, tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    # a fixed seed makes the stream (and the verdicts below) reproducible; the default --start (now) gives the
    # run fresh ids, so no earlier run's spans in the collector's file or topic are mistaken for this one's
    seed = "101"
    proc = run_cli(
        "run",
        MICRO,
        "--seed",
        seed,
        "--speed",
        "max",
        "--sessions",
        "300",
        "--progress",
        "off",
        "--sink",
        sink,
        "--sink",
        f"file:{events_file}",
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    line = next(x for x in err.splitlines() if "sink otlp" in x)
    acked_spans = int(line.rsplit("; ", 1)[1].split(" of ")[0].replace(",", ""))
    events = [json.loads(x) for x in events_file.read_text().splitlines()]
    assert f"{len(events):,} acknowledged" in line
    spans = collector_spans(otelcol["traces"], {e["trace_id"] for e in events}, acked_spans)
    assert len(spans) == acked_spans
    by_id = {sp["spanId"]: sp for sp in spans}
    roots = [sp for sp in spans if not sp.get("parentSpanId")]
    assert len(roots) == len(events) == len({sp["traceId"] for sp in spans})  # one trace per call
    by_trace = {sp["traceId"]: sp for sp in roots}
    for e in events:
        sp = by_trace[e["trace_id"]]
        a = attrs(sp)
        assert sp["spanId"] == e["span_id"] and sp["kind"] == 2 and sp["_service"] == e["service"]
        assert a["http.route"] == e["endpoint"] and a["http.request.method"] == e["method"]
        assert a["http.response.status_code"] == e["status_code"] and a["session.id"] == e["session_id"]
        assert a["url.path"] == e["path"].split("?")[0] and a["server.address"] == f"{e['service']}.svc"
        assert a["user.id"] == e["user_id"] and a["user.type"] == e["user_type"]
    for sp in spans:
        p = by_id.get(sp.get("parentSpanId", ""))
        if p is None:
            continue
        assert int(p["startTimeUnixNano"]) <= int(sp["startTimeUnixNano"])
        assert int(sp["endTimeUnixNano"]) <= int(p["endTimeUnixNano"])
        assert (p["kind"], sp["kind"]) in ((2, 3), (3, 2))  # SERVER -> CLIENT -> SERVER
    assert {sp["_service"] for sp in spans} >= {"checkout", "payment", "fraud", "inventory", "catalog"}


def test_emitter_collector_kafka_validator_loop(otelcol: dict, kafka_bootstrap: str) -> None:
    """Spans go emitter -> collector -> Kafka (otlp_proto) -> the validator, which passes."""
    seed = "107"
    proc = run_cli(
        "run",
        MICRO,
        "--seed",
        seed,
        "--speed",
        "max",
        "--sessions",
        "3000",
        "--progress",
        "off",
        "--sink",
        "otlp://127.0.0.1:4317",
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    run_id = err.split("run id ")[1].split(",")[0].split()[0]
    time.sleep(3)  # the collector batches for up to 200 ms, then its Kafka exporter sends
    v = run_cli(
        "validate",
        MICRO,
        "--source",
        f"kafka://{kafka_bootstrap}/otlp_spans",
        "--format",
        "otlp",
        "--run-id",
        run_id,
        "--until-idle",
        "5",
        timeout=300,
    )
    out = v.stdout.decode()
    assert v.returncode == 0, out + v.stderr.decode()
    assert "verdict: CONSISTENT" in out
    assert "3,000 sessions (3,000 complete)" in out


def test_validator_reads_the_collectors_file_output(otelcol: dict, tmp_path: Path) -> None:
    seed = "113"
    proc = run_cli(
        "run",
        MICRO,
        "--seed",
        seed,
        "--speed",
        "max",
        "--sessions",
        "1500",
        "--progress",
        "off",
        "--sink",
        "otlp+http://127.0.0.1:4318",
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    run_id = err.split("run id ")[1].split(",")[0].split()[0]
    time.sleep(2)
    snapshot = tmp_path / "collector.jsonl"
    snapshot.write_bytes(Path(otelcol["traces"]).read_bytes())
    v = run_cli("validate", MICRO, "--source", f"file:{snapshot}", "--format", "otlp-json", "--run-id", run_id)
    out = v.stdout.decode()
    assert v.returncode == 0, out
    assert "1,500 sessions (1,500 complete)" in out


def _metric_points(metrics_file: str, instance: str) -> dict[str, list[tuple[int, float, dict]]]:
    """The collector's metrics file: every data point of resource ``service.instance.id`` = ``instance``,
    by metric name, as (time, value, attributes)."""
    out: dict[str, list[tuple[int, float, dict]]] = {}
    with open(metrics_file, encoding="utf-8") as fh:
        for line in fh:
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            for rm in d.get("resourceMetrics", []):
                res = {a["key"]: a["value"].get("stringValue") for a in rm["resource"]["attributes"]}
                if res.get("service.instance.id") != instance:
                    continue
                for sm in rm["scopeMetrics"]:
                    for m in sm["metrics"]:
                        body = m.get("sum") or m.get("gauge") or {}
                        for dp in body.get("dataPoints", []):
                            v = float(dp["asInt"]) if "asInt" in dp else float(dp.get("asDouble", 0))
                            out.setdefault(m["name"], []).append((int(dp["timeUnixNano"]), v, attrs(dp)))
    return out


@pytest.mark.parametrize("uri", ["otlp://127.0.0.1:4317", "otlp+http://127.0.0.1:4318"], ids=["grpc", "http"])
def test_own_metrics_pushed_over_otlp_end_at_the_summary(otelcol: dict, uri: str, tmp_path: Path) -> None:
    """``--metrics-otlp``: pushed while the run goes and once at its end; the last push is the summary's."""
    import re
    import socket
    import subprocess
    import sys

    err = tmp_path / "stderr.txt"
    argv = [sys.executable, "-m", "emitter", "run", MICRO, "--seed", "4", "--sessions", "300", "--speed", "30"]
    argv += ["--sink", "null", "--progress", "off", "--metrics-otlp", uri, "--metrics-interval", "1s"]
    with err.open("w") as fh:
        proc = subprocess.Popen(argv, stderr=fh, stdout=subprocess.DEVNULL, cwd=tmp_path)
        assert proc.wait(timeout=120) == 0, err.read_text()
    text = err.read_text()
    m = re.search(r"done: ([\d,]+) events, ([\d,]+) sessions started, ([\d,]+) ended", text)
    assert m, text
    instance = f"{socket.gethostname()}-{proc.pid}"
    deadline = time.monotonic() + 30
    while True:
        points = _metric_points(otelcol["metrics"], instance)
        events = sorted(points.get("emitter.events", []), key=lambda p: p[0])
        if (events and events[-1][1] == int(m[1].replace(",", ""))) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert events, f"no emitter.events from {instance} in {otelcol['metrics']}"
    assert events[-1][1] == int(m[1].replace(",", "")), (events[-3:], m[0])
    assert len(events) >= 2 and any(0 < v < events[-1][1] for _, v, _ in events), "no push during the run"
    started = sorted(points["emitter.sessions.started"], key=lambda p: p[0])
    assert started[-1][1] == int(m[2].replace(",", "")) == 300
    sent = sorted(points["emitter.sink.sent"], key=lambda p: p[0])
    assert sent[-1][2] == {"sink": "null"} and sent[-1][1] == events[-1][1]
