"""Independent references for the encoders: what each event and each span must be, built the slow, obvious way.

The package has one compiled encoder per wire format; these are what the tests hold them to.

* :func:`event_dicts`: every event of a batch as a plain dict in the schema's key order, from the batch's
  columns and the workflow alone (``json.loads`` of each JSON line must equal it).
* :func:`otlp_spans`: every span of a batch built with the OpenTelemetry SDK (explicit times, a fixed id
  generator) and encoded by the SDK's own OTLP encoder; :func:`normalise` puts those and ours in one form.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from emitter.core.batch import ROLES, SCHEMA_VERSION, EventBatch
from emitter.core.model import END_REASONS, PARAM_CHOICE, PARAM_NONE

_MASK = (1 << 64) - 1
NET_US = 150  # network time on each side of a downstream call (the model's)


def mix64(x: int, key: int) -> int:
    """SplitMix64's finaliser of ``x ^ key`` (the ids' bijection), in plain Python."""
    z = (x ^ key) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def event_key(sess: int, seq: int, attempt: int) -> int:
    return (sess << 24) | (seq << 8) | attempt


def _param_text(b: EventBatch, slot: int, state: int, i: int) -> str:
    m = b.ctx.model
    kind = int(m.slots[slot].kind[state])
    v = int(b.params[slot, i])
    assert kind != PARAM_NONE
    return m.choices[v] if kind == PARAM_CHOICE else str(v)


def paths(b: EventBatch) -> list[str]:
    """Each event's path: the route with its placeholders filled in, then the query string."""
    m = b.ctx.model
    out = []
    for i in range(len(b)):
        s = int(b.cols["state"][i])
        pieces = m.path_pieces[s]
        parts = [pieces[0]]
        for j in range(len(pieces) - 1):
            parts += [_param_text(b, j, s, i), pieces[j + 1]]
        q = [f"{name}={_param_text(b, m.n_path_slots + k, s, i)}" for k, name in enumerate(m.query_names[s])]
        out.append("".join(parts) + ("?" + "&".join(q) if q else ""))
    return out


def event_dicts(b: EventBatch) -> list[dict[str, Any]]:
    """Every event of ``b`` as the schema says, keys in its order."""
    m, c, ctx = b.ctx.model, b.cols, b.ctx
    epoch = dt.datetime.fromtimestamp(0, dt.UTC)
    out = []
    for i, path in enumerate(paths(b)):
        st, end, fmask = int(c["state"][i]), int(c["end"][i]), int(c["faults"][i])
        ek = event_key(int(c["sess"][i]), int(c["seq"][i]), int(c["attempt"][i]))
        ep = m.workflow.endpoints[m.states[st]]
        ts = epoch + dt.timedelta(microseconds=ctx.start_us + int(c["t"][i]))
        out.append(
            {
                "schema_version": SCHEMA_VERSION,
                "event_id": f"{mix64(ek, ctx.key_event):016x}",
                "run_id": ctx.run_id,
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "session_id": f"{mix64(int(c['sess'][i]), ctx.key_session):016x}",
                "user_id": f"user-{int(c['user'][i]):0{ctx.user_width}d}",
                "user_type": m.user_types[int(c["utype"][i])],
                "seq": int(c["seq"][i]),
                "attempt": int(c["attempt"][i]),
                "endpoint": m.states[st],
                "path": path,
                "method": ep.method,
                "service": ep.service,
                "status_code": int(c["status"][i]),
                "latency_ms": int(c["latency"][i]) / 1000,
                "session_end": end != 0,
                "end_reason": END_REASONS[end],
                "workflow": m.workflow.name,
                "labels": {
                    "anomalous": bool(c["anomalous"][i]),
                    "faults": [f for k, f in enumerate(ctx.fault_ids) if fmask >> k & 1],
                    "role": ROLES[int(c["role"][i])],
                },
                "trace_id": f"{mix64(ek, ctx.key_trace[0]):016x}{mix64(ek, ctx.key_trace[1]):016x}",
                "span_id": f"{mix64(ek, ctx.key_span):016x}",
            }
        )
    return out


# ------------------------------------------------------------------ spans, by the OpenTelemetry SDK


def _child_keys(key_span: int, k: int) -> list[int]:
    return [(key_span + 0x9E3779B97F4A7C15 * (i + 1)) & 0x7FFFFFFFFFFFFFFF for i in range(2 * k)]


def otlp_spans(b: EventBatch, environment: str = "emitter", extra: dict[str, str] | None = None) -> list[Any]:
    """The batch's spans as the SDK builds and encodes them: a list of ``ResourceSpans`` protos."""
    from opentelemetry import trace as api
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from emitter.core.calls import CallTrees

    class Fixed(IdGenerator):
        def __init__(self) -> None:
            self.span, self.trace = 0, 0

        def generate_span_id(self) -> int:
            return self.span

        def generate_trace_id(self) -> int:
            return self.trace

    m, c, ctx = b.ctx.model, b.cols, b.ctx
    wf = m.workflow
    trees = CallTrees(wf)
    ids = Fixed()
    exporter = InMemorySpanExporter()
    tracers = {}
    for s in trees.services:
        res = Resource(
            {
                "service.name": s,
                "service.version": wf.services[s].version if s in wf.services else "1.0.0",
                "service.namespace": wf.name,
                "deployment.environment.name": environment,
                "telemetry.sdk.name": "emitter",
                "telemetry.sdk.language": "python",
                **(extra or {}),
            }
        )
        provider = TracerProvider(resource=res, id_generator=ids)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[s] = provider.get_tracer("emitter", "0.1.0")

    def error(span: Any, code: int, t_ns: int) -> None:
        msg, etype = (
            ("upstream timed out (504 Gateway Timeout)", "TimeoutError")
            if code == 504
            else (f"HTTP {code}", "HTTPError")
        )
        span.add_event("exception", {"exception.type": etype, "exception.message": msg}, timestamp=t_ns)
        span.set_status(Status(StatusCode.ERROR, msg))

    keys = _child_keys(ctx.key_span, trees.K)
    K = trees.K if "node_dur" in c else 1
    for i, path in enumerate(paths(b)):
        st = int(c["state"][i])
        route = m.states[st]
        ep = wf.endpoints[route]
        ek = event_key(int(c["sess"][i]), int(c["seq"][i]), int(c["attempt"][i]))
        t0 = (ctx.start_us + int(c["t"][i])) * 1000
        t1 = t0 + int(c["latency"][i]) * 1000
        code = int(c["status"][i])
        url_path, _, query = path.partition("?")
        attrs: dict[str, Any] = {
            "http.request.method": ep.method,
            "http.route": route,
            "url.scheme": "https",
            "server.address": f"{ep.service}.svc",
            "server.port": 443,
            "emitter.workflow": wf.name,
            "http.response.status_code": code,
            "url.path": url_path,
            **({"url.query": query} if "?" in path else {}),
            "session.id": f"{mix64(int(c['sess'][i]), ctx.key_session):016x}",
            "user.id": f"user-{int(c['user'][i]):0{ctx.user_width}d}",
            "user.type": m.user_types[int(c["utype"][i])],
            "emitter.seq": int(c["seq"][i]),
            "emitter.run_id": ctx.run_id,
        }
        if int(c["attempt"][i]) > 1:
            attrs["http.request.resend_count"] = int(c["attempt"][i]) - 1
        if int(c["end"][i]):
            attrs["emitter.session_end"] = True
            attrs["emitter.end_reason"] = END_REASONS[int(c["end"][i])]
        if bool(c["anomalous"][i]):
            fmask = int(c["faults"][i])
            attrs["emitter.anomalous"] = True
            attrs["emitter.role"] = ROLES[int(c["role"][i])]
            attrs["emitter.faults"] = ",".join(f for k, f in enumerate(ctx.fault_ids) if fmask >> k & 1)
        ids.trace = (mix64(ek, ctx.key_trace[0]) << 64) | mix64(ek, ctx.key_trace[1])
        ids.span = mix64(ek, ctx.key_span)
        root = tracers[ep.service].start_span(
            f"{ep.method} {route}", kind=SpanKind.SERVER, attributes=attrs, start_time=t0, context=api.Context()
        )
        if code >= 500:
            error(root, code, t1)
        servers = {0: root}
        for j in range(1, K):
            dur = int(c["node_dur"][i, j])
            if dur <= 0:
                continue
            p = int(trees.parent[st, j])
            callee = trees.services[int(trees.svc[st, j])]
            caller = trees.services[int(trees.svc[st, p])]
            ns = int(c["node_start"][i, j])
            seen = int(c["node_status"][i, j]) or 200
            parent_ctx = api.set_span_in_context(servers[p])
            ids.span = mix64(ek, keys[2 * j])
            cs, ce = t0 + (ns - NET_US) * 1000, t0 + (ns + dur + NET_US) * 1000
            client = tracers[caller].start_span(
                f"GET /{callee}",
                kind=SpanKind.CLIENT,
                context=parent_ctx,
                start_time=cs,
                attributes={
                    "http.request.method": "GET",
                    "server.address": f"{callee}.svc",
                    "server.port": 8080,
                    "url.full": f"http://{callee}.svc:8080/{callee}",
                    "http.response.status_code": seen,
                },
            )
            ids.span = mix64(ek, keys[2 * j + 1])
            ss = t0 + ns * 1000
            server = tracers[callee].start_span(
                f"GET /{callee}",
                kind=SpanKind.SERVER,
                context=api.set_span_in_context(client),
                start_time=ss,
                attributes={
                    "http.request.method": "GET",
                    "http.route": f"/{callee}",
                    "url.path": f"/{callee}",
                    "url.scheme": "http",
                    "server.address": f"{callee}.svc",
                    "server.port": 8080,
                    "http.response.status_code": seen,
                },
            )
            if int(c["node_status"][i, j]) >= 500:
                error(client, seen, ce)
                error(server, seen, ss + dur * 1000)
            servers[j] = server
            server.end(end_time=ss + dur * 1000)
            client.end(end_time=ce)
        root.end(end_time=t1)
    return list(encode_spans(exporter.get_finished_spans()).resource_spans)


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def normalise(resource_spans: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Spans as comparable tuples (resource, scope, ids, kind, name, times, attributes, events, status),
    sorted; attribute order, span order and how spans are grouped into messages do not matter."""
    out = []
    for rs in resource_spans:
        res = tuple(sorted((a.key, _value(a.value)) for a in rs.resource.attributes))
        for ss in rs.scope_spans:
            scope = (ss.scope.name, ss.scope.version)
            for sp in ss.spans:
                out.append(
                    (
                        res,
                        scope,
                        sp.trace_id.hex(),
                        sp.span_id.hex(),
                        sp.parent_span_id.hex(),
                        sp.kind,
                        sp.name,
                        sp.start_time_unix_nano,
                        sp.end_time_unix_nano,
                        tuple(sorted((a.key, _value(a.value)) for a in sp.attributes)),
                        tuple(
                            (e.name, e.time_unix_nano, tuple(sorted((a.key, _value(a.value)) for a in e.attributes)))
                            for e in sp.events
                        ),
                        (sp.status.code, sp.status.message),
                        len(sp.links),
                    )
                )
    return sorted(out)


def reference_jsonl(b: EventBatch) -> bytes:
    """The batch's JSON lines as ``json.dumps`` writes :func:`event_dicts` (what the encoder must equal)."""
    import json

    return b"".join(json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for d in event_dicts(b))
