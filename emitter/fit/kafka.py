"""Recorded traffic from a Kafka topic: emitter's events (JSON) or OTLP protobuf requests (as the collector's
Kafka exporter writes them), read from the beginning with the validator's readers until the topic is idle."""

from __future__ import annotations

import asyncio
import time

from ..clients.kafka import parse_kafka_uri
from ..validate.live import open_reader
from ..validate.otlp import proto_value
from .traffic import KINDS, Call, Span, _events, calls_from_spans

__all__ = ["otlp_proto_spans", "read_kafka"]


def otlp_proto_spans(body: bytes) -> list[Span]:
    """The spans of one serialized ExportTraceServiceRequest (raises ValueError if malformed)."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        req = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise ValueError(str(exc)) from None

    out = []
    for rs in req.resource_spans:
        service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "unknown")
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(
                    Span(
                        trace_id=sp.trace_id.hex(),
                        span_id=sp.span_id.hex(),
                        parent_id=sp.parent_span_id.hex() or None,
                        service=service,
                        name=sp.name,
                        kind=KINDS.get(sp.kind),
                        start_us=sp.start_time_unix_nano // 1000,
                        duration_us=(sp.end_time_unix_nano - sp.start_time_unix_nano) // 1000,
                        attrs={a.key: proto_value(a.value) for a in sp.attributes},
                        error=sp.status.code == 2,
                    )
                )
    return out


async def _records(uri: str, until_idle: float, max_records: int | None) -> list[bytes]:
    s = parse_kafka_uri(uri, source="fit", defaults={}, extra_keys=("client",))
    reader = open_reader(s, s.extra.get("client", "auto"), None, True)
    await reader.start()
    out: list[bytes] = []
    last = time.monotonic()
    try:
        while max_records is None or len(out) < max_records:
            values, _ = await reader.poll_sampled(50_000, 0.2)
            now = time.monotonic()
            got = [v for v in values if v]
            if got:
                out += got
                last = now
            elif not reader.ready():
                last = now  # partitions not assigned yet: not idle
            elif now - last >= until_idle:
                break
    finally:
        await reader.stop()
    return out if max_records is None else out[:max_records]


def read_kafka(
    uri: str, fmt: str = "auto", until_idle: float = 5.0, max_records: int | None = None
) -> tuple[list[Call], list[Span], str, int]:
    """Calls and spans of every record in the topic (read until nothing came for ``until_idle`` seconds)."""
    import json

    values = asyncio.run(_records(uri, until_idle, max_records))
    if fmt == "auto":
        fmt = "jsonl" if values and values[0][:1] == b"{" else "otlp"  # (a protobuf request starts 0x0a)
    bad = 0
    if fmt == "jsonl":
        rows = []
        for v in values:
            try:
                rows.append(json.loads(v))
            except ValueError:
                bad += 1
        return _events(rows), [], fmt, bad
    spans: list[Span] = []
    for v in values:
        try:
            spans += otlp_proto_spans(v)
        except ValueError:
            bad += 1
    return calls_from_spans(spans), spans, fmt, bad
