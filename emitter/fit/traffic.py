"""Recorded traffic, read into one shape: spans (from traces) and the API calls a user made (root spans, or
emitter's own events).

Formats, told apart by their first bytes (``--format`` says so when it cannot be told):

* ``jsonl``: emitter's events, one JSON object per line (``.gz`` too), or a Parquet file or directory;
* ``otlp-json``: the OpenTelemetry Collector's file exporter output, one OTLP-JSON request per line;
* ``jaeger``: Jaeger's JSON, as its UI downloads a trace and its query API's ``/api/traces`` returns it
  (``{"data": [{"traceID", "spans": [...], "processes": {...}}]}``);
* ``zipkin``: Zipkin's v2 JSON, a list of spans (``[{"traceId", "id", "parentId", "kind", ...}]``).

A user's call is a root span (no parent in the trace) of kind SERVER, or any root span when the format
has no kinds; its attributes follow OpenTelemetry's semantic conventions, with the older names (``http.method``,
``http.status_code``, ``http.target``, ``http.url``) as fall-backs.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ..errors import ConfigError
from ..validate.otlp import json_value
from ..validate.sources import open_lines, parquet_batches

__all__ = ["FORMATS", "Call", "Span", "calls_from_spans", "read_traffic", "sniff_format", "unique"]

FORMATS = ("auto", "jsonl", "parquet", "otlp-json", "jaeger", "zipkin")
R = TypeVar("R", "Span", "Call")
KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str | None  # server, client, producer, consumer, internal; None when the format has no kinds
    start_us: int
    duration_us: int
    attrs: dict[str, Any] = field(default_factory=dict)
    error: bool = False  # the span's status says it failed


@dataclass(slots=True)
class Call:
    """One API call a user made."""

    start_us: int
    duration_us: int
    route: str | None  # the declared route (``http.route``), when the traffic carries one
    path: str | None  # else the URL path, to fold into a template
    method: str
    service: str
    status: int
    session: str | None = None
    user: str | None = None
    user_type: str | None = None
    attempt: int = 1
    seq: int | None = None
    end_reason: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ sniffing and opening


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ConfigError.one("fit", (str(path),), f"not a readable gzip file ({exc})") from None
    return data


def sniff_format(path: Path) -> str:
    """The format a file (or directory) holds, by its first bytes (of a gzip file, its first bytes unpacked)."""
    if path.is_dir():
        return "parquet"
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                head = gz.read(4096)
        except (OSError, EOFError) as exc:
            raise ConfigError.one("fit", (str(path),), f"not a readable gzip file ({exc})") from None
    text = head.lstrip()
    if text.startswith(b"["):
        return "zipkin"
    if text.startswith(b'{"resourceSpans"'):
        return "otlp-json"
    if text.startswith(b"{") and b'"traceID"' in text and b'"spans"' in text and b'"resourceSpans"' not in text:
        return "jaeger"  # {"data": [traces]} from the query API, or one trace as the UI downloads it
    return "jsonl"


def read_traffic(path: Path, fmt: str = "auto") -> tuple[list[Call], list[Span], str, int]:
    """The calls and spans in one file, the format it was read as, and how many lines or records were
    malformed (skipped, as the validator skips them: a file still being written ends in half a line)."""
    if not path.exists():
        raise ConfigError.one("fit", (str(path),), "file not found")
    if fmt == "auto":
        fmt = sniff_format(path)
    try:
        skipped = 0
        if fmt == "parquet":
            calls = _events(_parquet_rows(path))
            return calls, [], fmt, 0
        if fmt == "jsonl":
            bad = [0]
            calls = _events(_json_lines(path, bad), bad)
            return calls, [], fmt, bad[0]
        if fmt == "otlp-json":
            spans = []
            for line in open_lines(str(path), "fit"):
                if not line.strip():
                    continue
                try:
                    spans += otlp_json_spans(line)
                except ValueError:
                    skipped += 1
        elif fmt == "jaeger":
            spans = jaeger_spans(json.loads(_open_bytes(path)))
        elif fmt == "zipkin":
            spans = zipkin_spans(json.loads(_open_bytes(path)))
        else:
            raise ConfigError.one("fit", ("--format",), f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError.one("fit", (str(path),), f"not readable as {fmt} ({type(exc).__name__}: {exc})") from None
    if not spans and skipped:
        raise ConfigError.one("fit", (str(path),), f"not readable as {fmt}: none of its {skipped:,} lines is a request")
    return calls_from_spans(spans), spans, fmt, skipped


# ------------------------------------------------------------------ emitter's own events


def _json_lines(path: Path, bad: list[int]) -> Iterator[dict[str, Any]]:
    for line in open_lines(str(path), "fit"):
        if line.strip():
            try:
                d = json.loads(line)
            except ValueError:
                bad[0] += 1  # a malformed line is skipped (and counted), as the validator skips it
                continue
            if isinstance(d, dict):
                yield d


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    one_us = dt.timedelta(microseconds=1)
    for cols in parquet_batches(str(path), None, "fit"):
        names = list(cols)
        for values in zip(*cols.values(), strict=True):
            row = dict(zip(names, values, strict=True))
            row["timestamp_us"] = (row.pop("timestamp") - epoch) // one_us
            yield row


def _timestamp_us(text: str) -> int:
    d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = d - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    raise TypeError(f"expected text, got {type(v).__name__}")


def _route(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise TypeError("an endpoint is a non-empty text")
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _whole(v: Any, default: int) -> int:
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    out = int(v)  # OverflowError for infinities: caught with the rest
    if not -(2**63) <= out < 2**63:
        raise OverflowError("past 64 bits")
    return out


def _events(rows: Iterable[dict[str, Any]], bad: list[int] | None = None) -> list[Call]:
    """Calls of the rows that are events; a row with a missing or ill-typed field is not one (counted in
    ``bad``)."""
    out = []
    for r in rows:
        try:
            start = r["timestamp_us"] if "timestamp_us" in r else _timestamp_us(r["timestamp"])
            latency = _number(r.get("latency_ms", 0.0))
            route = _route(r["endpoint"])
            seq = r.get("seq")
            out.append(
                Call(
                    start_us=_whole(start, 0),
                    duration_us=round(latency * 1000),
                    route=route,
                    path=_text(r.get("path")),
                    method=_text(r.get("method")) or "GET",
                    service=_text(r.get("service")) or "api",
                    status=_whole(r.get("status_code"), 200),
                    session=_text(r.get("session_id")),
                    user=_text(r.get("user_id")),
                    user_type=_text(r.get("user_type")),
                    attempt=_whole(r.get("attempt"), 1),
                    seq=None if seq is None else _whole(seq, 0),
                    end_reason=_text(r.get("end_reason")),
                    trace_id=_text(r.get("trace_id")),
                    span_id=_text(r.get("span_id")),
                    attrs=r,
                )
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            if bad is not None:
                bad[0] += 1
            continue  # not an event
    return out


# ------------------------------------------------------------------ spans


class _Any(msgspec.Struct, rename="camel"):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | str | None = None
    double_value: float | None = None
    array_value: dict[str, Any] | None = None

    def get(self) -> Any:
        if self.string_value is not None:
            return self.string_value
        if self.int_value is not None:
            return int(self.int_value)
        if self.bool_value is not None:
            return self.bool_value
        if self.double_value is not None:
            return self.double_value
        if self.array_value is not None:
            return [json_value(x) for x in self.array_value.get("values", ())]
        return None


class _KV(msgspec.Struct):
    key: str
    value: _Any = msgspec.field(default_factory=_Any)


class _Status(msgspec.Struct):
    code: int | str | None = None


class _Span(msgspec.Struct, rename="camel"):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    kind: int | str = 0
    start_time_unix_nano: int | str = 0
    end_time_unix_nano: int | str = 0
    attributes: list[_KV] = msgspec.field(default_factory=list)
    status: _Status = msgspec.field(default_factory=_Status)


class _Scope(msgspec.Struct):
    spans: list[_Span] = msgspec.field(default_factory=list)


class _Resource(msgspec.Struct):
    attributes: list[_KV] = msgspec.field(default_factory=list)


class _ResourceSpans(msgspec.Struct, rename="camel"):
    resource: _Resource = msgspec.field(default_factory=_Resource)
    scope_spans: list[_Scope] = msgspec.field(default_factory=list)


class _Request(msgspec.Struct, rename="camel"):
    resource_spans: list[_ResourceSpans]


_REQUEST = msgspec.json.Decoder(_Request)
_KIND_NAMES = {"SPAN_KIND_" + v.upper(): k for k, v in KINDS.items()}


def otlp_json_spans(line: bytes | str) -> list[Span]:
    """The spans of one OTLP-JSON export request (the collector's file exporter writes one per line)."""
    try:
        req = _REQUEST.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not an OTLP-JSON trace request ({exc})") from None
    out = []
    for rs in req.resource_spans:
        service = "unknown"
        for kv in rs.resource.attributes:
            if kv.key == "service.name":
                service = str(kv.value.get())
        for ss in rs.scope_spans:
            for sp in ss.spans:
                kind = _KIND_NAMES.get(sp.kind, 0) if isinstance(sp.kind, str) else sp.kind
                start = int(sp.start_time_unix_nano)
                end = int(sp.end_time_unix_nano or start)
                out.append(
                    Span(
                        trace_id=sp.trace_id,
                        span_id=sp.span_id,
                        parent_id=sp.parent_span_id or None,
                        service=service,
                        name=sp.name,
                        kind=KINDS.get(int(kind)),
                        start_us=start // 1000,
                        duration_us=(end - start) // 1000,
                        attrs={kv.key: kv.value.get() for kv in sp.attributes},
                        error=sp.status.code in (2, "STATUS_CODE_ERROR"),
                    )
                )
    return out


def jaeger_spans(doc: Any) -> list[Span]:
    """Spans of Jaeger's JSON (``{"data": [trace, ...]}``, or one trace)."""
    traces = doc["data"] if isinstance(doc, dict) and "data" in doc else [doc]
    out = []
    for tr in traces:
        procs = tr.get("processes", {})
        for sp in tr["spans"]:
            tags = {t["key"]: t.get("value") for t in sp.get("tags", ())}
            parent = next(
                (r["spanID"] for r in sp.get("references", ()) if r.get("refType") == "CHILD_OF"), None
            ) or next((r["spanID"] for r in sp.get("references", ())), None)
            proc = procs.get(sp.get("processID"), {})
            kind = tags.pop("span.kind", None)
            out.append(
                Span(
                    trace_id=sp["traceID"],
                    span_id=sp["spanID"],
                    parent_id=parent,
                    service=str(proc.get("serviceName", "unknown")),
                    name=sp.get("operationName", ""),
                    kind=str(kind).lower() if kind else None,
                    start_us=int(sp["startTime"]),
                    duration_us=int(sp.get("duration", 0)),
                    attrs=tags,
                    error=tags.get("error") in (True, "true") or tags.get("otel.status_code") == "ERROR",
                )
            )
    return out


def zipkin_spans(doc: Any) -> list[Span]:
    """Spans of Zipkin's v2 JSON (a list of spans)."""
    if not isinstance(doc, list):
        raise ValueError("Zipkin v2 JSON is a list of spans")  # noqa: TRY004 - a format problem, reported as such
    out = []
    for sp in doc:
        tags = dict(sp.get("tags", {}))
        kind = sp.get("kind")
        out.append(
            Span(
                trace_id=sp["traceId"],
                span_id=sp["id"],
                parent_id=sp.get("parentId"),
                service=str((sp.get("localEndpoint") or {}).get("serviceName", "unknown")),
                name=sp.get("name", ""),
                kind=str(kind).lower() if kind else None,
                start_us=int(sp.get("timestamp", 0)),
                duration_us=int(sp.get("duration", 0)),
                attrs=tags,
                error="error" in tags or tags.get("otel.status_code") == "ERROR",
            )
        )
    return out


def _no_query(text: str) -> str:
    return text.split("?", 1)[0].split("#", 1)[0] or "/"


def _path_of(attrs: dict[str, Any]) -> str | None:
    for key in ("url.path", "http.target", "http.path", "url.full", "http.url"):
        v = attrs.get(key)
        if isinstance(v, str) and v:
            p = urllib.parse.urlsplit(v).path if "://" in v else v.split("?", 1)[0]
            return p or "/"
    return None


def unique(records: list[R]) -> tuple[list[R], int]:
    """The spans or calls without repeats of one (trace id, span id), the first copy kept (records without
    both ids are all kept), and how many were repeats. At-least-once delivery (a producer's retry, a
    collector's resend, one file given twice) repeats records; counted twice, a call would weigh twice in
    the fitted probabilities."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in records:
        if r.trace_id and r.span_id:
            key = (r.trace_id, r.span_id)
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out, len(records) - len(out)


def calls_from_spans(spans: list[Span]) -> list[Call]:
    """The user's calls: root spans (no parent among the spans) of kind SERVER (or of no kind)."""
    ids = {s.span_id for s in spans}
    out = []
    for s in spans:
        if (s.parent_id and s.parent_id in ids) or s.kind not in ("server", None):
            continue
        a = s.attrs
        method = a.get("http.request.method") or a.get("http.method")
        route = a.get("http.route")
        path = _path_of(a)
        if not method and " " in s.name:  # "GET /api/x" span names
            method, _, rest = s.name.partition(" ")
            route = route or (_no_query(rest) if rest.startswith("/") else None)
        if route is None and path is None:
            if not s.name.startswith("/"):
                continue  # not an HTTP call
            path = s.name
        status = a.get("http.response.status_code") or a.get("http.status_code")
        try:
            code = int(status) if status is not None else (500 if s.error else 200)
        except ValueError:
            code = 500 if s.error else 200
        resend = a.get("http.request.resend_count") or 0
        out.append(
            Call(
                start_us=s.start_us,
                duration_us=s.duration_us,
                route=_no_query(str(route)) if route else None,
                path=path,
                method=str(method or "GET").upper(),
                service=s.service,
                status=code,
                session=a.get("session.id"),
                user=a.get("user.id") or a.get("enduser.id"),
                user_type=a.get("user.type"),
                attempt=int(resend) + 1,
                end_reason=a.get("emitter.end_reason"),
                trace_id=s.trace_id,
                span_id=s.span_id,
                attrs=a,
            )
        )
    return out
