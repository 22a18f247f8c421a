"""OTLP trace requests (protobuf wire format) written straight from event batches.

Each API call becomes one trace: a SERVER span at the endpoint's service, then for each downstream call
along the call tree a CLIENT span at the caller and a SERVER span at the callee, children always inside
their parent's window. One resource per service. The root span's trace and span ids are the JSON event's
``trace_id`` and ``span_id``, so both outputs of a run join. Timestamps come from the simulated clock.

The bytes are assembled by hand (the format is small and stable: see opentelemetry-proto's
``trace/v1/trace.proto``); the tests decode them with the official classes. :func:`encode_otlp` uses the
compiled encoder of :mod:`._otlp_numba` (some 20 times faster) when numba imports and ``EMITTER_NO_NUMBA``
is not set, and :func:`encode_otlp_python` otherwise; the tests hold the two to the same bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..core.batch import ROLES, EventBatch
from ..core.calls import NET_US, CallTrees
from ..core.ids import mix64
from ..core.model import END_REASONS, Model

__all__ = ["OtlpRequest", "encode_otlp", "encode_otlp_numba", "encode_otlp_python", "numba_encoder", "span_id_keys"]

SERVER, CLIENT = 2, 3
STATUS_ERROR = 2
SCOPE_NAME = "emitter"


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_SMALL = [_varint_slow(i) for i in range(1 << 14)]


def _varint(n: int) -> bytes:
    return _SMALL[n] if n < 16384 else _varint_slow(n)


def _ld(field: int, payload: bytes) -> bytes:
    n = len(payload)
    return _SMALL[field << 3 | 2] + (_SMALL[n] if n < 16384 else _varint_slow(n)) + payload


def _kv_prefix(key: str) -> bytes:
    """Everything before a string value's own length, for a span attribute (field 9) with that key."""
    return _ld(1, key.encode())


def _str_attr(prefix: bytes, value: bytes) -> bytes:
    """A span attribute ``prefix`` (from :func:`_kv_prefix`) = string ``value``, with the lengths filled in."""
    if len(value) >= 16000:  # (the lengths below are then all under 16384, in the table of small varints)
        return _ld(9, prefix + _ld(2, _ld(1, value)))
    sv = _SMALL[0x0A] + _SMALL[len(value)] + value
    kv = prefix + _SMALL[0x12] + _SMALL[len(sv)] + sv
    return _SMALL[0x4A] + _SMALL[len(kv)] + kv


_P_PATH, _P_QUERY, _P_SESSION, _P_USER, _P_FAULTS = (
    _kv_prefix(k) for k in ("url.path", "url.query", "session.id", "user.id", "emitter.faults")
)


def _str_kv(key: str, value: str) -> bytes:
    return _ld(9, _ld(1, key.encode()) + _ld(2, _ld(1, value.encode())))


def _any_str(key: str, value: str) -> bytes:  # KeyValue as it sits in a Resource (field 1)
    return _ld(1, _ld(1, key.encode()) + _ld(2, _ld(1, value.encode())))


def _int_kv(key: str, value: int) -> bytes:
    return _ld(9, _ld(1, key.encode()) + _ld(2, _varint(3 << 3) + _varint(value & 0xFFFFFFFFFFFFFFFF)))


def _bool_kv(key: str, value: bool) -> bytes:
    return _ld(9, _ld(1, key.encode()) + _ld(2, bytes([2 << 3, 1 if value else 0])))


_TAG_TRACE = bytes([1 << 3 | 2, 16])
_TAG_SPAN = bytes([2 << 3 | 2, 8])
_TAG_PARENT = bytes([4 << 3 | 2, 8])
_TAG_KIND = bytes([6 << 3])
_TAG_START = bytes([7 << 3 | 1])
_TAG_END = bytes([8 << 3 | 1])
_Q = struct.Struct("<Q")


def span_id_keys(ctx_key: int, K: int) -> list[int]:
    """Keys for the ids of the CLIENT (2j) and SERVER (2j + 1) spans of node j; node 0 uses the event's id."""
    return [(ctx_key + 0x9E3779B97F4A7C15 * (i + 1)) & 0x7FFFFFFFFFFFFFFF for i in range(2 * K)]


@dataclass
class OtlpRequest:
    body: bytes  # a serialized ExportTraceServiceRequest
    events: int
    spans: int


class _Templates:
    """Per workflow: the constant parts of every span, pre-encoded once."""

    def __init__(self, m: Model, environment: str, extra_resource: dict[str, str]) -> None:
        wf = m.workflow
        self.trees = CallTrees(wf)
        tr = self.trees
        svcs = tr.services
        scope = _ld(1, _ld(1, SCOPE_NAME.encode()) + _ld(2, b"0.1.0"))
        self.resource = []
        for s in svcs:
            version = wf.services[s].version if s in wf.services else "1.0.0"
            attrs = {
                "service.name": s,
                "service.version": version,
                "service.namespace": wf.name,
                "deployment.environment.name": environment,
                "telemetry.sdk.name": "emitter",
                "telemetry.sdk.language": "python",
                **extra_resource,
            }
            res = _ld(1, b"".join(_any_str(k, v) for k, v in attrs.items()))
            self.resource.append((res, scope))
        self.root_const = []
        for si, state in enumerate(m.states):
            ep = wf.endpoints[state]
            name = f"{ep.method} {state}"
            const = (
                _ld(5, name.encode())
                + _TAG_KIND
                + bytes([SERVER])
                + _str_kv("http.request.method", ep.method)
                + _str_kv("http.route", state)
                + _str_kv("url.scheme", "https")
                + _str_kv("server.address", f"{ep.service}.svc")
                + _int_kv("server.port", 443)
                + _str_kv("emitter.workflow", wf.name)
            )
            self.root_const.append(const)
            del si
        # downstream calls: GET /<callee> from caller to callee
        self.client_const = []
        self.server_const = []
        for s in svcs:
            route = f"/{s}"
            self.client_const.append(
                _ld(5, f"GET {route}".encode())
                + _TAG_KIND
                + bytes([CLIENT])
                + _str_kv("http.request.method", "GET")
                + _str_kv("server.address", f"{s}.svc")
                + _int_kv("server.port", 8080)
                + _str_kv("url.full", f"http://{s}.svc:8080{route}")
            )
            self.server_const.append(
                _ld(5, f"GET {route}".encode())
                + _TAG_KIND
                + bytes([SERVER])
                + _str_kv("http.request.method", "GET")
                + _str_kv("http.route", route)
                + _str_kv("url.path", route)
                + _str_kv("url.scheme", "http")
                + _str_kv("server.address", f"{s}.svc")
                + _int_kv("server.port", 8080)
            )
        self.user_type = [_str_kv("user.type", t) for t in m.user_types]
        self.role = [_str_kv("emitter.role", r) for r in ROLES]
        self.end_reason = [b"" if r is None else _str_kv("emitter.end_reason", r) for r in END_REASONS]
        self.status_attr: dict[int, bytes] = {}
        self.seq_attr: dict[int, bytes] = {}

    def seq(self, k: int) -> bytes:
        b = self.seq_attr.get(k)
        if b is None:
            b = self.seq_attr[k] = _int_kv("emitter.seq", k)
        return b

    def status(self, code: int) -> bytes:
        b = self.status_attr.get(code)
        if b is None:
            b = self.status_attr[code] = _int_kv("http.response.status_code", code)
        return b


def _templates(m: Model, environment: str, extra: dict[str, str]) -> _Templates:
    key = f"_otlp|{environment}|{sorted(extra.items())}"
    t = m.__dict__.get(key)
    if t is None:
        t = m.__dict__[key] = _Templates(m, environment, extra)
    return t


def _error(message: str, t_ns: int, etype: str) -> bytes:
    status = _ld(15, _ld(2, message.encode()) + bytes([3 << 3, STATUS_ERROR]))
    event = _ld(
        11,
        bytes([1 << 3 | 1])
        + _Q.pack(t_ns)
        + _ld(2, b"exception")
        + _ld(3, _ld(1, b"exception.type") + _ld(2, _ld(1, etype.encode())))
        + _ld(3, _ld(1, b"exception.message") + _ld(2, _ld(1, message.encode()))),
    )
    return event + status


def _err_text(code: int) -> tuple[str, str]:
    if code == 504:
        return "upstream timed out (504 Gateway Timeout)", "TimeoutError"
    return f"HTTP {code}", "HTTPError"


_NumbaEncoder = Callable[[EventBatch, str, dict[str, str], int], "list[OtlpRequest] | None"]
_numba: list[_NumbaEncoder | None] = []


def numba_encoder() -> _NumbaEncoder | None:
    """The compiled encoder of :mod:`._otlp_numba`, or None when numba does not import (tried once)."""
    if not _numba:
        try:
            from ._otlp_numba import encode_otlp_numba as fn
        except (ImportError, RuntimeError, OSError):
            _numba.append(None)
        else:
            _numba.append(fn)
    return _numba[0]


def encode_otlp(
    batch: EventBatch, *, environment: str = "emitter", resource: dict[str, str] | None = None, max_events: int = 512
) -> Iterator[OtlpRequest]:
    """The batch as OTLP ExportTraceServiceRequest bodies of at most ``max_events`` calls each.

    Compiled (numba, every request of the batch at once) unless numba is missing or ``EMITTER_NO_NUMBA``
    is set, or the workflow is one the kernel leaves aside; :func:`encode_otlp_python` otherwise. Same bytes.
    """
    fn = None if os.environ.get("EMITTER_NO_NUMBA") else numba_encoder()
    if fn is not None:
        reqs = fn(batch, environment, resource or {}, max_events)
        if reqs is not None:
            return iter(reqs)
    return encode_otlp_python(batch, environment=environment, resource=resource, max_events=max_events)


def encode_otlp_numba(
    batch: EventBatch, *, environment: str = "emitter", resource: dict[str, str] | None = None, max_events: int = 512
) -> list[OtlpRequest] | None:
    """The compiled encoder's requests (None: a workflow it leaves to Python; ImportError without numba)."""
    fn = numba_encoder()
    if fn is None:
        raise ImportError("numba is not installed")
    return fn(batch, environment, resource or {}, max_events)


def encode_otlp_python(
    batch: EventBatch, *, environment: str = "emitter", resource: dict[str, str] | None = None, max_events: int = 512
) -> Iterator[OtlpRequest]:
    """The batch as OTLP ExportTraceServiceRequest bodies of at most ``max_events`` calls each (pure Python)."""
    m = batch.ctx.model
    tp = _templates(m, environment, resource or {})
    tr = tp.trees
    c = batch.cols
    n = len(batch)
    start_ns = ((c["t"] + batch.ctx.start_us) * 1000).tolist()
    lat_ns = (c["latency"] * 1000).tolist()
    th = batch.trace_hi.astype(">u8").tobytes()
    tl = batch.trace_lo.astype(">u8").tobytes()
    sid = batch.span_id.astype(">u8").tobytes()
    sess = batch.session_key.astype(">u8").view(np.uint8).reshape(-1, 8)
    from ..core.ids import hex_ids

    sess_hex = hex_ids(batch.session_key).tobytes()
    user = c["user"].tolist()
    width = batch.ctx.user_width
    state = c["state"].tolist()
    status = c["status"].tolist()
    attempt = c["attempt"].tolist()
    seq = c["seq"].tolist()
    utype = c["utype"].tolist()
    end = c["end"].tolist()
    role = c["role"].tolist()
    anomalous = c["anomalous"].tolist()
    fmask = c["faults"].tolist()
    fids = batch.ctx.fault_ids
    paths = batch.paths()
    run_attr = _str_kv("emitter.run_id", batch.ctx.run_id)
    K = tr.K if "node_dur" in c else 1
    node_svc = tr.svc
    node_parent = tr.parent
    if K > 1:
        nstart = c["node_start"].tolist()
        ndur = c["node_dur"].tolist()
        nstat = c["node_status"].tolist()
        keys = span_id_keys(batch.ctx.key_span, K)
        ids = [mix64(batch.ekey, k).astype(">u8").tobytes() for k in keys]
    del sess
    n_svc = len(tr.services)
    for lo in range(0, n, max_events):
        hi = min(n, lo + max_events)
        per_svc: list[list[bytes]] = [[] for _ in range(n_svc)]
        spans = 0
        for i in range(lo, hi):
            s = state[i]
            tid = _TAG_TRACE + th[i * 8 : i * 8 + 8] + tl[i * 8 : i * 8 + 8]
            root_id = sid[i * 8 : i * 8 + 8]
            t0 = start_ns[i]
            t1 = t0 + lat_ns[i]
            code = status[i]
            path = paths[i]
            q = path.find("?")
            pb = path.encode()
            attrs = (
                tp.status(code)
                + _str_attr(_P_PATH, pb if q < 0 else pb[:q])
                + (_str_attr(_P_QUERY, pb[q + 1 :]) if q >= 0 else b"")
                + _str_attr(_P_SESSION, sess_hex[i * 16 : i * 16 + 16])
                + _str_attr(_P_USER, f"user-{user[i]:0{width}d}".encode())
                + tp.user_type[utype[i]]
                + tp.seq(seq[i])
                + run_attr
            )
            if attempt[i] > 1:
                attrs += _int_kv("http.request.resend_count", attempt[i] - 1)
            if end[i]:
                attrs += _bool_kv("emitter.session_end", True) + tp.end_reason[end[i]]
            if anomalous[i]:
                attrs += (
                    _bool_kv("emitter.anomalous", True)
                    + tp.role[role[i]]
                    + _str_attr(_P_FAULTS, ",".join(f for b, f in enumerate(fids) if fmask[i] >> b & 1).encode())
                )
            body = (
                tid + _TAG_SPAN + root_id + tp.root_const[s] + _TAG_START + _Q.pack(t0) + _TAG_END + _Q.pack(t1) + attrs
            )
            if code >= 500:
                msg, et = _err_text(code)
                body += _error(msg, t1, et)
            per_svc[node_svc[s, 0]].append(_ld(2, body))
            spans += 1
            if K > 1:
                ns, nd, nst = nstart[i], ndur[i], nstat[i]
                for j in range(1, K):
                    if nd[j] <= 0:
                        continue
                    p = node_parent[s, j]
                    callee = node_svc[s, j]
                    parent_id = root_id if p == 0 else ids[2 * p + 1][i * 8 : i * 8 + 8]
                    cid = ids[2 * j][i * 8 : i * 8 + 8]
                    srv = ids[2 * j + 1][i * 8 : i * 8 + 8]
                    cs = t0 + (ns[j] - NET_US) * 1000
                    ce = t0 + (ns[j] + nd[j] + NET_US) * 1000
                    ss = t0 + ns[j] * 1000
                    se = ss + nd[j] * 1000
                    st = nst[j]
                    seen = st if st else 200
                    client = (
                        tid
                        + _TAG_SPAN
                        + cid
                        + _TAG_PARENT
                        + parent_id
                        + tp.client_const[callee]
                        + _TAG_START
                        + _Q.pack(cs)
                        + _TAG_END
                        + _Q.pack(ce)
                        + tp.status(seen)
                    )
                    server = (
                        tid
                        + _TAG_SPAN
                        + srv
                        + _TAG_PARENT
                        + cid
                        + tp.server_const[callee]
                        + _TAG_START
                        + _Q.pack(ss)
                        + _TAG_END
                        + _Q.pack(se)
                        + tp.status(seen)
                    )
                    if st >= 500:
                        msg, et = _err_text(st)
                        client += _error(msg, ce, et)
                        server += _error(msg, se, et)
                    per_svc[node_svc[s, p]].append(_ld(2, client))
                    per_svc[callee].append(_ld(2, server))
                    spans += 2
        parts = []
        for k, lst in enumerate(per_svc):
            if lst:
                res, scope = tp.resource[k]
                parts.append(_ld(1, res + _ld(2, scope + b"".join(lst))))
        yield OtlpRequest(b"".join(parts), hi - lo, spans)
