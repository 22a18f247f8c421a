"""``emitter fit``: from recorded traffic to a workflow that plays it back (no servers: emitter's own events,
and Zipkin v2 JSON written by OpenTelemetry's Zipkin exporter). The collector and Jaeger round trips are in
tests/integration/test_fit_roundtrip.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

import emitter
from emitter.fit import fit, read_traffic
from emitter.fit.templates import fold_path

from ..conftest import WORKFLOWS, run_cli
from .roundtrip import truth_in_intervals, two_sample

START = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def ecommerce_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("fit")
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=31, num_users=3000, start=START)
    events = ds.save_jsonl(d / "events.jsonl")
    out = d / "fitted.yaml"
    r = run_cli("fit", str(events), "-o", str(out), "--report", str(d / "fit.json"))
    assert r.returncode == 0, r.stderr
    return events, out


def test_the_fitted_workflow_holds_the_truth_and_replays_like_the_recording(
    ecommerce_run: tuple[Path, Path], tmp_path: Path
) -> None:
    events, fitted = ecommerce_run
    truth = emitter.load_workflow(WORKFLOWS / "ecommerce.yaml")
    report = json.loads((fitted.parent / "fit.json").read_text())
    assert truth_in_intervals(report, truth) == []
    assert run_cli("check", str(fitted)).returncode == 0
    # the original stream is consistent with the fitted workflow
    v = run_cli("validate", str(fitted), "--source", str(events))
    assert v.returncode == 0, v.stdout.decode()[-800:]
    # a stream of the fitted workflow and the original one: no state's next steps differ
    replay = emitter.generate(fitted, seed=32, num_users=3000, start=START)
    assert two_sample(events, replay) == []
    # ... and the same test tells a different chain apart (the must-reject case)
    d = truth.to_dict()
    d["transitions"]["/api/login"] = {"/api/users/{id}/profile": 0.75, "/api/browse": 0.20, "/api/logout": 0.05}
    other = emitter.generate(d, seed=33, num_users=3000, start=START)
    assert [s.split(" ")[0] for s in two_sample(events, other)] == ["/api/login"]
    # endpoints keep their method and service; latency within 15 % at the median
    fw = emitter.load_workflow(fitted)
    for s in ("/api/login", "/api/payment", "/api/search"):
        assert (fw.endpoints[s].method, fw.endpoints[s].service) == (
            truth.endpoints[s].method,
            truth.endpoints[s].service,
        )
    rows = list(emitter.generate(truth, seed=1, num_users=300, start=START).events())
    import numpy as np

    for s in ("/api/browse", "/api/cart"):
        p50 = float(np.median([e["latency_ms"] for e in rows if e["endpoint"] == s]))
        fitted_p50 = dict(fw.endpoints[s].latency.to_spec())["p50"]
        assert abs(fitted_p50 - p50) / p50 < 0.15, (s, fitted_p50, p50)


def test_the_file_is_commented_with_counts_and_intervals(ecommerce_run: tuple[Path, Path]) -> None:
    _, fitted = ecommerce_run
    text = fitted.read_text()
    assert text.startswith("# Fitted by emitter fit: ")
    line = next(x for x in text.splitlines() if x.strip().startswith('"/api/login":') and "#" in x)
    assert " of " in line and "99% interval [" in line
    report = json.loads((fitted.parent / "fit.json").read_text())
    assert report["sessions"] > 9000 and report["states"] == 15 and report["session_building"]["by"] == "session.id"


def test_sessions_from_a_user_key_and_an_idle_gap(tmp_path: Path) -> None:
    """No session ids: users' calls split where they were idle over the gap (sessions are days apart)."""
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=5, num_users=1500, start=START)
    stripped = tmp_path / "no-sessions.jsonl"
    with stripped.open("w") as fh:
        for e in ds.events():
            e.pop("session_id")
            e.pop("seq")
            fh.write(json.dumps(e) + "\n")
    out = tmp_path / "w.yaml"
    r = run_cli("fit", str(stripped), "-o", str(out), "--gap", "20m", "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    true_sessions = len(ds.sessions)
    assert abs(rep["sessions"] - true_sessions) <= true_sessions * 0.01, (rep["sessions"], true_sessions)
    gaps = rep["session_building"]["gap_s"]  # within sessions: think times; between: days
    assert gaps["p50"] < 60 and gaps["p90"] < 20 * 60 < gaps["max"]
    # two sessions of a user closer than the gap merge (a few, by chance): exit points then have a rare way on
    assert truth_in_intervals(rep, ds.workflow, merged_exit=0.99) == []


def test_ids_in_paths_fold_into_templates() -> None:
    assert fold_path("/users/42/orders/7") == ("/users/{id}/orders/{id2}", ["42", "7"])
    assert fold_path("/o/3f2c9a1e-9b1d-4c2e-8f00-1a2b3c4d5e6f")[0] == "/o/{id}"
    assert fold_path("/blob/deadbeef01")[0] == "/blob/{id}"
    assert fold_path("/api/v2/health") == ("/api/v2/health", [])  # a version is no id
    assert fold_path("/static/logo")[0] == "/static/logo"


class _Capture(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        n = int(self.headers["Content-Length"])
        _Capture.bodies.append(self.rfile.read(n))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _zipkin_json(ds: emitter.Dataset) -> list[dict]:  # type: ignore[type-arg]
    """The dataset's calls as spans exported by OpenTelemetry's own Zipkin JSON exporter (over HTTP, to a
    local server that keeps the bodies): a root SERVER span per call with only ``url.path`` (no route), and
    a CLIENT span to a downstream service under some of them."""
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    server = HTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/api/v2/spans"
    providers: dict[str, TracerProvider] = {}
    _Capture.bodies = []
    try:
        for e in ds.events():
            prov = providers.get(e["service"])
            if prov is None:
                prov = providers[e["service"]] = TracerProvider(
                    resource=Resource.create({"service.name": e["service"]})
                )
                prov.add_span_processor(BatchSpanProcessor(ZipkinExporter(endpoint=url), max_export_batch_size=500))
            t0 = int(e["timestamp_us"])
            t1 = t0 + round(e["latency_ms"] * 1000)
            tracer = prov.get_tracer("test")
            span = tracer.start_span(
                f"{e['method']} {e['path'].split('?')[0]}",
                kind=SpanKind.SERVER,
                start_time=t0 * 1000,
                attributes={
                    "http.request.method": e["method"],
                    "url.path": e["path"].split("?")[0],
                    "http.response.status_code": e["status_code"],
                    "user.id": e["user_id"],
                    "session.id": e["session_id"],
                },
            )
            span.end(end_time=t1 * 1000)
        for p in providers.values():
            p.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    return [sp for body in _Capture.bodies for sp in json.loads(body)]


def test_zipkin_json_from_opentelemetrys_exporter(tmp_path: Path) -> None:
    ds = emitter.generate(WORKFLOWS / "ecommerce.yaml", seed=12, num_users=400, start=START)
    import datetime as dt

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    rows = []
    for e in ds.events():
        ts = dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        rows.append({**e, "timestamp_us": round((ts - epoch).total_seconds() * 1e6)})

    class Rows:
        def events(self):  # type: ignore[no-untyped-def]
            return iter(rows)

    spans = _zipkin_json(Rows())  # type: ignore[arg-type]
    assert spans and {"traceId", "id", "kind", "localEndpoint", "timestamp", "duration"} <= set(spans[0])
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(spans))
    calls, _, fmt, _ = read_traffic(path)
    assert fmt == "zipkin" and len(calls) == len(rows)
    res = fit(calls, [], emitter.fit.FitOptions(name="from-zipkin"))
    # the routes came back from the paths alone: ids folded into {id}
    assert "/api/users/{id}/profile" in res.workflow["endpoints"]
    assert {t["template"] for t in res.report["folded_paths"]} >= {"/api/products/{id}", "/api/orders/{id}"}
    wf = emitter.parse_workflow(json.loads(json.dumps(res.workflow)))
    assert truth_in_intervals(res.report, ds.workflow) == []
    assert wf.endpoints["/api/payment"].method == "POST"


@pytest.mark.parametrize(
    ("content", "args", "says"),
    [
        ("", [], "no API calls"),
        (
            '{"endpoint": "/a", "timestamp": "2026-01-01T00:00:00Z", "latency_ms": 1}\n',
            [],
            "has a session id or a user key",
        ),
        ("[1, 2]", ["--format", "zipkin"], "not readable as zipkin"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, content: str, args: list[str], says: str) -> None:
    src = tmp_path / "in.json"
    src.write_text(content)
    r = run_cli("fit", str(src), "-o", str(tmp_path / "o.yaml"), *args)
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2 and says in err[-1] and "Traceback" not in r.stderr.decode(), err
    assert not (tmp_path / "o.yaml").exists()
