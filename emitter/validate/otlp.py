"""Learning the chain back from spans: root SERVER spans become the calls of a session.

Sessions are rebuilt from root spans (no parent, kind SERVER) by their ``session.id`` attribute, the
calls ordered by start time; ``http.route`` is the endpoint, ``http.request.resend_count`` > 0 marks a
retry, ``user.type`` the user's type, ``emitter.session_end``/``emitter.end_reason`` the session's end.
Two inputs: the collector's file exporter output (OTLP-JSON, one request per line) and OTLP protobuf
requests (as the collector's Kafka exporter writes with ``encoding: otlp_proto``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .assemble import Assembler, ObservedEvent

__all__ = ["Sessionizer", "json_value", "proto_value", "root_calls_from_json", "root_calls_from_proto"]

SERVER = 2


@dataclass(frozen=True)
class RootCall:
    session_id: str
    start_ns: int
    endpoint: str
    attempt: int
    user_type: str | None
    session_end: bool
    end_reason: str | None
    span_id: str
    run_id: str | None = None


def json_value(v: dict[str, Any]) -> Any:
    """An OTLP-JSON AnyValue as Python (intValue arrives as a string)."""
    for k in ("stringValue", "boolValue", "intValue", "doubleValue"):
        if k in v:
            return int(v[k]) if k == "intValue" else v[k]
    if "arrayValue" in v:
        return [json_value(x) for x in v["arrayValue"].get("values", ())]
    return None


def proto_value(v: Any) -> Any:
    """An OTLP protobuf AnyValue's scalar as Python (None for arrays, maps and bytes)."""
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else None


def _call(attrs: dict[str, Any], start_ns: int, span_id: str) -> RootCall | None:
    sid, route = attrs.get("session.id"), attrs.get("http.route")
    if not isinstance(sid, str) or not isinstance(route, str):
        return None
    resend = attrs.get("http.request.resend_count") or 0
    return RootCall(
        sid,
        start_ns,
        route,
        int(resend) + 1,
        attrs.get("user.type"),
        bool(attrs.get("emitter.session_end", False)),
        attrs.get("emitter.end_reason"),
        span_id,
        attrs.get("emitter.run_id"),
    )


def root_calls_from_json(line: bytes | str) -> list[RootCall]:
    """Root calls in one line of the collector's file exporter output (raises ValueError if malformed)."""
    d = json.loads(line)
    out = []
    for rs in d.get("resourceSpans", ()):
        for ss in rs.get("scopeSpans", ()):
            for sp in ss.get("spans", ()):
                if sp.get("parentSpanId") or sp.get("kind") not in (SERVER, "SPAN_KIND_SERVER"):
                    continue
                attrs = {a["key"]: json_value(a.get("value", {})) for a in sp.get("attributes", ())}
                c = _call(attrs, int(sp.get("startTimeUnixNano", 0)), sp.get("spanId", ""))
                if c is not None:
                    out.append(c)
    if not isinstance(d, dict) or "resourceSpans" not in d:
        raise ValueError("not an OTLP-JSON trace request")
    return out


def root_calls_from_proto(body: bytes) -> list[RootCall]:
    """Root calls in one serialized ExportTraceServiceRequest (raises ValueError if malformed)."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        req = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise ValueError(str(exc)) from None
    out = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                if sp.parent_span_id or sp.kind != SERVER:
                    continue
                attrs = {a.key: proto_value(a.value) for a in sp.attributes}
                c = _call(attrs, sp.start_time_unix_nano, sp.span_id.hex())
                if c is not None:
                    out.append(c)
    return out


class Sessionizer:
    """Collects root calls per session; a session is numbered (by start time) and fed to the assembler once
    its end was seen and ``settle`` more calls of other sessions arrived, or at :meth:`flush_all`."""

    def __init__(self, asm: Assembler, *, settle: int = 20_000, max_open: int = 1_000_000) -> None:
        self.asm = asm
        self.settle = settle
        self.max_open = max_open
        self.open: OrderedDict[str, list[RootCall]] = OrderedDict()
        self.ended: OrderedDict[str, int] = OrderedDict()  # session -> call count when its end arrived
        self.count = 0
        self.duplicates = 0

    def add(self, calls: list[RootCall]) -> None:
        for c in calls:
            self.count += 1
            self.open.setdefault(c.session_id, []).append(c)
            if c.session_end:
                self.ended[c.session_id] = self.count
        while self.ended:
            sid, at = next(iter(self.ended.items()))
            if self.count - at < self.settle:
                break
            self.ended.popitem(last=False)
            self._emit(sid)
        while len(self.open) > self.max_open:
            sid = next(iter(self.open))
            self.ended.pop(sid, None)
            self._emit(sid)

    def _emit(self, sid: str) -> None:
        calls = self.open.pop(sid, [])
        calls.sort(key=lambda c: (c.start_ns, c.attempt))
        seq = -1
        seen: set[str] = set()
        for c in calls:
            if c.span_id in seen:  # the same span twice: a duplicate delivery
                self.duplicates += 1
                continue
            seen.add(c.span_id)
            if c.attempt == 1 or seq < 0:  # a retry repeats the call it retries
                seq += 1
            self.asm.add(
                ObservedEvent(
                    session_id=sid,
                    seq=seq,
                    endpoint=c.endpoint,
                    attempt=c.attempt,
                    user_type=c.user_type,
                    session_end=c.session_end,
                    end_reason=c.end_reason,
                    event_id=c.span_id,
                    run_id=c.run_id,
                )
            )

    def flush_all(self) -> None:
        for sid in list(self.open):
            self._emit(sid)
        self.ended.clear()
