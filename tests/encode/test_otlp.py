"""OTLP: spans decoded with the official protobuf classes; ids join the JSON events; settings from env."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from emitter.core.batch import EventBatch, concat
from emitter.core.engine import Simulation
from emitter.core.faults import CascadePreset, Dynamics, Fault, Reactions, RetryPolicy
from emitter.core.load import Load
from emitter.core.model import END_REASONS, Model
from emitter.encode.jsonl import encode_jsonl
from emitter.encode.otlp import encode_otlp
from emitter.errors import ConfigError
from emitter.inputs.workflow import load_workflow, parse_workflow
from emitter.sinks.otlp import parse_otlp_uri
from emitter.validate.assemble import Assembler
from emitter.validate.otlp import Sessionizer, root_calls_from_proto
from emitter.validate.report import build_report

from ..conftest import WORKFLOWS
from ..oracles import normalise, otlp_spans

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
    f = Fault.of(
        "pay-err", "errors", service="fraud", start_us=60_000_000, duration_us=600_000_000, rate=0.5, status=500
    )
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


# ---------------------------------------------------------------- the compiled encoder: the same bytes


def _bodies(reqs) -> list[tuple[bytes, int, int]]:  # type: ignore[no-untyped-def]
    return [(r.body, r.events, r.spans) for r in reqs]


_ORACLE: dict[tuple[int, str, str], tuple[EventBatch, list]] = {}  # type: ignore[type-arg]


def _oracle(batch: EventBatch, environment: str, resource: dict[str, str] | None) -> list:  # type: ignore[type-arg]
    """The SDK's spans for a batch, normalised (built once per batch: the SDK takes seconds per thousand calls)."""
    key = (id(batch), environment, repr(sorted((resource or {}).items())))
    hit = _ORACLE.get(key)
    if hit is None or hit[0] is not batch:
        hit = _ORACLE[key] = (batch, normalise(otlp_spans(batch, environment, resource)))
    return hit[1]


def _same(batch: EventBatch, **kw) -> list[tuple[bytes, int, int]]:  # type: ignore[no-untyped-def]
    """The encoder's requests, asserted to hold the spans the OpenTelemetry SDK builds for the batch (the
    oracle), at most ``max_events`` calls each, in order; returns them."""
    got = _bodies(encode_otlp(batch, **kw))
    max_events = kw.get("max_events", 512)
    assert [x[1] for x in got] == [min(max_events, len(batch) - k) for k in range(0, len(batch), max_events)]
    ours = [rs for body, _, _ in got for rs in ExportTraceServiceRequest.FromString(body).resource_spans]
    want = _oracle(batch, kw.get("environment", "emitter"), kw.get("resource"))
    assert sum(x[2] for x in got) == len(want)
    assert normalise(ours) == want
    return got


def _three_span() -> dict:  # type: ignore[type-arg]
    """ecommerce with every endpoint on frontend, which calls backend (as bench/bench_otlp.py's 3span)."""
    wf = yaml.safe_load((WORKFLOWS / "ecommerce.yaml").read_text())
    eps = set(wf["entry_points"]) | set(wf["transitions"]) | set(wf["exit_points"])
    for targets in wf["transitions"].values():
        eps |= set(targets)
    wf["endpoints"] = {e: {"service": "frontend"} for e in sorted(eps)}
    wf["services"] = {"frontend": {"calls": ["backend"]}, "backend": {}}
    return wf


def _rough(wf, seed: int = 5, sessions: int = 150) -> EventBatch:  # type: ignore[no-untyped-def]
    """A run with errors, timeouts, retries, abandons and the cascade preset (anomalous calls of every role)."""
    svc = list(wf.services)
    faults = [
        Fault.of("errs", "errors", endpoint=wf.states[0], start_us=0, duration_us=10**12, rate=0.3, status=500),
        Fault.of("slow", "latency", endpoint=wf.states[-1], start_us=0, duration_us=10**12, factor=5.0),
    ]
    if svc:
        faults += [
            Fault.of("down", "outage", service=svc[-1], start_us=30_000_000, duration_us=60_000_000),
            Fault.of("hang", "timeout", service=svc[len(svc) // 2], start_us=0, duration_us=10**12, rate=0.2),
            Fault.of("teapot", "errors", service=svc[0], start_us=0, duration_us=10**12, rate=0.1, status=599),
        ]
    dyn = Dynamics(
        faults=tuple(faults),
        retry=RetryPolicy(max_attempts=3),
        reactions=Reactions(abandon=0.3, retry=0.3),
        cascade=CascadePreset(rate=0.2),
    )
    return concat(list(Simulation(Model(wf), seed, Load(sessions=sessions), START, dynamics=dyn).batches()))


WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yaml"))


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_encoder_gives_the_sdk_spans(path: Path) -> None:
    b = _rough(load_workflow(path))
    assert (b.cols["status"] >= 500).any() and (b.cols["attempt"] > 1).any() and b.cols["anomalous"].any()
    assert (b.cols["end"] > 0).any() and len(set(b.cols["role"].tolist())) == (3 if "node_dur" in b.cols else 2)
    for max_events in (512, 100, 7, 1):
        _same(b, max_events=max_events)
    _same(b.slice(3, 40), environment="staging", resource={"k8s.cluster.name": "lab", "team": "ü"}, max_events=9)
    _same(b.slice(0, 1))
    assert encode_otlp(b.slice(0, 0)) == []


def test_compiled_encoder_on_the_faulted_run_and_a_call_tree(faulted) -> None:  # type: ignore[no-untyped-def]
    assert "node_dur" in faulted.cols
    _same(faulted)
    b = _rough(parse_workflow(_three_span()), sessions=150)
    assert sum(r[2] for r in _same(b)) > 2 * len(b)


def test_compiled_encoder_on_long_and_odd_values() -> None:
    """Lengths of more than one byte (long routes, choices, fault lists, numbers), non-ASCII, odd columns."""
    choice = "v" * 150
    wf = parse_workflow(
        {
            "name": "odd",
            "entry_points": {"/a/{x}/ü/{n}": 1.0},
            "transitions": {"/a/{x}/ü/{n}": {"/long" + "/seg" * 40: 0.5, "/q": 0.5}, "/q": {"/a/{x}/ü/{n}": 1.0}},
            "exit_points": ["/long" + "/seg" * 40],
            "endpoints": {
                "/a/{x}/ü/{n}": {
                    "service": "svc-ä",
                    "params": {"x": {"values": [choice, "a b", "ç"]}, "n": {"min": 0, "max": 10**9}},
                },
                "/long" + "/seg" * 40: {"service": "leaf"},
                "/q": {"service": "svc-ä", "query": {"k": {"values": ["x" * 120]}, "m": {"from": "user"}}},
            },
            "services": {"svc-ä": {"calls": ["leaf"]}, "leaf": {}},
        }
    )
    b = _rough(wf, sessions=200)
    n = len(b)
    rng = np.random.default_rng(1)
    cols = dict(b.cols)
    cols["status"] = rng.choice(np.array([200, 404, 500, 503, 504, 599, 999, 32767], np.int16), n)
    cols["attempt"] = rng.integers(1, 255, n).astype(np.int16)
    cols["seq"] = rng.integers(0, 65535, n).astype(np.int32)
    cols["user"] = rng.integers(0, 10**13, n)
    cols["anomalous"] = rng.random(n) < 0.5
    cols["faults"] = rng.integers(0, 2**63, n).astype(np.uint64) | np.uint64(1 << 63)
    cols["faults"][:3] = np.uint64(2**64 - 1)  # every fault: a list of more than 16 KiB
    cols["anomalous"][:3] = True
    params = b.params.copy()
    params[1, : n // 2] = rng.integers(-(10**12), 10**12, n // 2)  # the int placeholder {n}: any sign, any size
    cols["end"] = rng.integers(0, len(END_REASONS), n).astype(np.int8)
    ids = tuple(f"fault-{k}-" + "é" * (k * 5) for k in range(70))  # up to ~700 bytes each, 64 bits used
    for width in (6, 12):
        ctx = dataclasses.replace(b.ctx, fault_ids=ids, user_width=width, run_id="r" * 200)
        odd = EventBatch(ctx, cols, params)
        _same(odd, max_events=50)
        _same(odd.slice(0, 5), max_events=2)


def test_a_question_mark_in_a_route_is_refused() -> None:
    """A route is a path: its query parameters are declared under ``query`` (the encoders split there)."""
    with pytest.raises(ConfigError, match=r"transitions -> /a\?b=1: a route is a path"):
        parse_workflow(
            {
                "name": "qm",
                "entry_points": {"/a?b=1": 1.0},
                "transitions": {"/a?b=1": {"/c/{id}": 1.0}},
                "exit_points": ["/c/{id}"],
            }
        )


def test_compiled_encoder_grows_its_buffers(faulted, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Requests that do not fit the output or scratch buffer: written over several kernel calls."""
    from emitter.encode import _native, otlp

    want = _bodies(encode_otlp(faulted, max_events=300))
    kernel = otlp._encode_kernel
    asked = []

    def spy(*args):  # type: ignore[no-untyped-def]
        nxt = kernel(*args)
        asked.append((args[9], nxt, *args[8].tolist()))  # first request, next one, sizes wanted
        return nxt

    monkeypatch.setattr(otlp, "_encode_kernel", spy)
    monkeypatch.setattr(otlp, "_OUT_BYTES", 1)
    monkeypatch.setattr(otlp, "_CHILDREN_GUESS", 0)
    monkeypatch.setattr(_native, "_KEEP_BYTES", 0)  # fresh buffers, sized to what is asked for only
    monkeypatch.setattr(_native, "_scratch", type(_native._scratch)())
    got = _same(faulted, max_events=300)
    assert got == want
    assert any(first == nxt and s > 0 for first, nxt, s, _ in asked)  # a bigger scratch buffer
    assert any(first == nxt and o > 0 for first, nxt, _, o in asked)  # a bigger output buffer
