"""OTLP: spans decoded with the official protobuf classes; ids join the JSON events; settings from env."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from emitter.core.batch import concat
from emitter.core.engine import Load, Simulation
from emitter.core.faults import Dynamics, Fault, RetryPolicy
from emitter.core.model import Model
from emitter.encode.jsonl import encode_jsonl
from emitter.encode.otlp import encode_otlp
from emitter.errors import ConfigError
from emitter.sinks.otlp import parse_otlp_uri
from emitter.validate.assemble import Assembler
from emitter.validate.otlp import Sessionizer, root_calls_from_proto
from emitter.validate.report import build_report
from emitter.workflow import load_workflow

from .conftest import WORKFLOWS

MICRO = load_workflow(WORKFLOWS / "microservices.yaml")
START = 1_767_225_600_000_000


def spans_of(batch):  # type: ignore[no-untyped-def]
    out = []
    for req in encode_otlp(batch, max_events=100):
        msg = ExportTraceServiceRequest.FromString(req.body)
        for rs in msg.resource_spans:
            res = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in sp.attributes}
                    out.append((res, sp, attrs))
    return out


@pytest.fixture(scope="module")
def faulted():  # type: ignore[no-untyped-def]
    f = Fault("pay-err", "errors", service="fraud", start_us=60_000_000, duration_us=600_000_000, rate=0.5, status=500)
    sim = Simulation(
        Model(MICRO), 3, Load(sessions=400), START, dynamics=Dynamics(faults=(f,), retry=RetryPolicy(max_attempts=3))
    )
    return concat(list(sim.batches()))


def test_one_trace_per_call_with_ids_equal_to_the_events(faulted) -> None:  # type: ignore[no-untyped-def]
    events = [json.loads(x) for x in encode_jsonl(faulted).splitlines()]
    spans = spans_of(faulted)
    roots = [(r, s, a) for r, s, a in spans if not s.parent_span_id]
    assert len(roots) == len(events)
    by_trace = {s.trace_id.hex(): (r, s, a) for r, s, a in roots}
    for e in events:
        r, s, a = by_trace[e["trace_id"]]
        assert s.span_id.hex() == e["span_id"]
        assert s.kind == 2  # SERVER
        assert r["service.name"] == e["service"]
        assert a["http.route"] == e["endpoint"] and a["http.request.method"] == e["method"]
        assert a["url.path"] == e["path"].split("?")[0]
        assert a["http.response.status_code"] == e["status_code"]
        assert a["session.id"] == e["session_id"] and a["user.id"] == e["user_id"] and a["user.type"] == e["user_type"]
        assert (s.end_time_unix_nano - s.start_time_unix_nano) == round(e["latency_ms"] * 1e6)
        if e["attempt"] > 1:
            assert a["http.request.resend_count"] == e["attempt"] - 1
        else:
            assert "http.request.resend_count" not in a
        if e["status_code"] >= 500:
            assert s.status.code == 2 and any(ev.name == "exception" for ev in s.events)
        assert a.get("emitter.anomalous", False) == e["labels"]["anomalous"]


def test_children_sit_inside_their_parents_and_kinds_alternate(faulted) -> None:  # type: ignore[no-untyped-def]
    spans = spans_of(faulted)
    by_id = {(s.trace_id, s.span_id): (r, s) for r, s, _ in spans}
    per_trace = defaultdict(int)
    for r, s, _ in spans:
        per_trace[s.trace_id] += 1
        if not s.parent_span_id:
            continue
        pr, p = by_id[(s.trace_id, s.parent_span_id)]
        assert p.start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano <= p.end_time_unix_nano
        if s.kind == 3:  # CLIENT at the caller, under a SERVER span of the same service
            assert p.kind == 2 and pr["service.name"] == r["service.name"]
        else:  # SERVER at the callee, under the caller's CLIENT span
            assert s.kind == 2 and p.kind == 3 and r["service.name"] == s.name.split("/")[-1]
    assert max(per_trace.values()) > 5  # checkout: cart, inventory, pricing, payment, fraud...
    assert len({r["service.name"] for r, _, _ in spans}) >= 10


def test_errors_show_up_on_the_faulty_span_and_above(faulted) -> None:  # type: ignore[no-untyped-def]
    spans = spans_of(faulted)
    fraud_err = [s for r, s, _ in spans if r["service.name"] == "fraud" and s.status.code == 2]
    assert fraud_err
    by_id = {(s.trace_id, s.span_id): s for _, s, _ in spans}
    for s in fraud_err[:50]:
        p = by_id[(s.trace_id, s.parent_span_id)]  # payment's CLIENT call to fraud
        assert p.status.code == 2


def test_spans_rebuild_the_sessions() -> None:
    sim = Simulation(Model(MICRO), 9, Load(sessions=4000), START)
    b = concat(list(sim.batches()))
    asm = Assembler(MICRO)
    sz = Sessionizer(asm)
    for req in encode_otlp(b):
        sz.add(root_calls_from_proto(req.body))
    sz.flush_all()
    rep = build_report(asm)
    assert rep.consistent, rep.render()
    assert asm.sessions_complete == 4000


def test_settings_follow_the_otlp_environment() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%20d,x=1",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x=2",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.cluster.name=lab",
    }
    s = parse_otlp_uri("otlp://", env)
    assert (s.protocol, s.endpoint) == ("http/protobuf", "http://collector:4318/v1/traces")
    assert s.headers == {"x": "2"}  # the signal-specific variable wins over the generic one
    assert (s.compression, s.timeout_s, s.resource) == ("gzip", 2.5, {"k8s.cluster.name": "lab"})
    env2 = {**env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:9999/custom"}
    assert parse_otlp_uri("otlp://", env2).endpoint == "http://other:9999/custom"  # used as is
    # the URI's own settings win over the environment
    s3 = parse_otlp_uri("otlp://127.0.0.1:4317?compression=none", env)
    assert (s3.protocol, s3.endpoint, s3.compression, s3.insecure) == ("grpc", "127.0.0.1:4317", "none", True)
    s4 = parse_otlp_uri("otlp+http://127.0.0.1:4318", {})
    assert s4.endpoint == "http://127.0.0.1:4318/v1/traces"
    g = parse_otlp_uri("otlp://", {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://secure:4317"})
    assert (g.protocol, g.endpoint, g.insecure) == ("grpc", "secure:4317", False)


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("otlp://h:4317?compression=br", "expected gzip or none"),
        ("otlp://h:4317?queue.size=0", "queue.size: expected an integer >= 1"),
        ("otlp://h:4317?on.full=wait", "expected block or drop"),
        ("otlp://h:4317?colour=red", "unknown OTLP option 'colour'"),
    ],
)
def test_bad_otlp_options(uri: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_otlp_uri(uri, {})
