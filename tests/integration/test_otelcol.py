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
