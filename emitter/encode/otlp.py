"""OTLP trace requests (protobuf wire format) written straight from event batches, by one compiled loop.

Each API call becomes one trace: a SERVER span at the endpoint's service, then for each downstream call
along the call tree a CLIENT span at the caller and a SERVER span at the callee, children always inside
their parent's window. One resource per service. The root span's trace and span ids are the JSON event's
``trace_id`` and ``span_id``, so both outputs of a run join. Timestamps come from the simulated clock.

The kernel writes whole ExportTraceServiceRequest bodies, two passes per request (``max_events`` calls).
The first writes every span of the request, in event order (the root SERVER span, then a CLIENT and a
SERVER span per call-tree node that ran), into a scratch buffer and notes each span's service and end.
The second sums the spans' sizes per service, writes each service's ResourceSpans and ScopeSpans headers
(a length-delimited field needs its length first) and copies the spans in behind them: services in the
call trees' order, spans in event order within each.

What depends on the workflow only is pre-encoded in one byte pool (:class:`_Templates`, then
:func:`build_tables`): per state the root span's constant fields (name, kind, method, route, server,
workflow), per service the CLIENT and SERVER spans' ones, per user type, end reason and role the
attribute, per service the resource and the scope. Attributes whose value varies are written from a pool
template whose length bytes are patched once the value is down (values under ~110 bytes, i.e. nearly all,
keep one-byte lengths; longer ones are moved to make room); their values come from :mod:`.render`'s
writers, ids from registers. The format is small and stable (opentelemetry-proto's
``trace/v1/trace.proto``); ``tests/oracles.py`` builds the same spans with the OpenTelemetry SDK and the
tests hold ours to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.batch import ROLES, EventBatch, RunContext
from ..core.calls import NET_US, CallTrees
from ..core.model import END_REASONS, Model
from ._native import (
    SLACK,
    PoolBuilder,
    _addr,
    _bswap,
    _inline,
    _jit,
    _ld1,
    _ld8,
    _len,
    _memcpy,
    _put,
    _st1,
    _st8,
    buffer,
    col,
)
from .render import (
    _dec,
    _event_key,
    _faults,
    _hex,
    _mix64,
    _path,
    _query,
    kernel_columns,
    param_kinds,
    params_of,
    path_tables,
)

__all__ = ["OtlpRequest", "encode_otlp", "span_id_keys"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

SERVER, CLIENT = 2, 3
STATUS_ERROR = 2
SCOPE_NAME = "emitter"


def _vbytes_slow(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_SMALL = [_vbytes_slow(i) for i in range(1 << 14)]


def _vbytes(n: int) -> bytes:
    return _SMALL[n] if n < 16384 else _vbytes_slow(n)


def _ld(field: int, payload: bytes) -> bytes:
    n = len(payload)
    return _SMALL[field << 3 | 2] + (_SMALL[n] if n < 16384 else _vbytes_slow(n)) + payload


def _kv_prefix(key: str) -> bytes:
    """Everything before a string value's own length, for a span attribute (field 9) with that key."""
    return _ld(1, key.encode())


def _str_kv(key: str, value: str) -> bytes:
    return _ld(9, _ld(1, key.encode()) + _ld(2, _ld(1, value.encode())))


def _any_str(key: str, value: str) -> bytes:  # KeyValue as it sits in a Resource (field 1)
    return _ld(1, _ld(1, key.encode()) + _ld(2, _ld(1, value.encode())))


def _int_kv(key: str, value: int) -> bytes:
    return _ld(9, _ld(1, key.encode()) + _ld(2, _vbytes(3 << 3) + _vbytes(value & 0xFFFFFFFFFFFFFFFF)))


def _bool_kv(key: str, value: bool) -> bytes:
    return _ld(9, _ld(1, key.encode()) + _ld(2, bytes([2 << 3, 1 if value else 0])))


_TAG_KIND = bytes([6 << 3])


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
        for state in m.states:
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


def _templates(m: Model, environment: str, extra: dict[str, str]) -> _Templates:
    key = f"_otlp|{environment}|{sorted(extra.items())}"
    t = m.__dict__.get(key)
    if t is None:
        t = m.__dict__[key] = _Templates(m, environment, extra)
    return t


# constant pieces (table B_CONST)
(
    C_RUN,
    C_SESSION_END,
    C_ANOMALOUS,
    C_PATH,
    C_QUERY,
    C_SESSION,
    C_USER,
    C_FAULTS,
    C_STATUS,
    C_SEQ,
    C_RESEND,
    C_USER_PREFIX,
    C_SCOPE,
    C_EXC_NAME,
    C_EXC_TYPE,
    C_EXC_MSG,
    C_MSG_504,
    C_HTTP,
    C_TYPE_504,
    C_TYPE_HTTP,
) = range(20)

# the tables in the pool, in order (entries of ``OtlpTables.base``)
B_CONST, B_ROOT, B_CLIENT, B_SERVER, B_UTYPE, B_END, B_ROLE, B_PIECE, B_QUERY, B_CHOICE, B_FAULT, B_RES, B_EMPTY = (
    range(13)
)

_ERR_BOUND = 2 + 127 + 2 + 4 + 48  # exception event + status (every length fits one byte: see _error)
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)  # SplitMix64's multipliers as int64
_M2 = 0x94D049BB133111EB - (1 << 64)


def _str_template(key: str) -> bytes:
    """A string attribute up to its value, its three length bytes zero (patched by :func:`_str_end`)."""
    return b"\x4a\x00" + _kv_prefix(key) + b"\x12\x00\x0a\x00"


def _int_template(key: str) -> bytes:
    """An int attribute up to its varint, its two length bytes zero (patched by :func:`_int_attr`)."""
    return b"\x4a\x00" + _kv_prefix(key) + b"\x12\x00\x18"


@dataclass(frozen=True)
class OtlpTables:
    """Everything the kernel looks up: a byte pool, string offsets into it, table bases, call trees, sizes."""

    pool: U8  # with SLACK zero bytes at the end
    off: I64  # string k is pool[off[k]:off[k + 1]]
    base: I64  # index of the first string of each table (B_*)
    kinds: npt.NDArray[np.int8]  # [slots, S] PARAM_* of slot j in state s
    n_query_names: I64  # [S] query parameters of state s (0: no url.query attribute)
    node_svc: I64  # [S, K] service of node j of state s's call tree
    node_parent: I64  # [S, K]
    child_keys: I64  # [2K] span id keys of CLIENT (2j) and SERVER (2j + 1) spans
    n_path: int
    n_query: int
    n_fault: int
    n_svc: int
    K: int
    root_bound: int  # bytes a root span takes at most
    child_bound: int  # bytes a CLIENT or SERVER span of a downstream call takes at most
    head_bound: int  # bytes of a request's ResourceSpans and ScopeSpans headers at most (all services)
    dummy: int  # bytes of the area where the kernel drops writes it does not want


def build_tables(tp: _Templates, ctx: RunContext) -> OtlpTables:
    """The kernel's tables for one workflow's templates and one run."""
    m = ctx.model
    tr = tp.trees
    S = m.n_states
    n_path, n_query = m.n_path_slots, m.n_query_slots
    P = PoolBuilder()
    kv_keys = ("url.path", "url.query", "session.id", "user.id", "emitter.faults")
    int_keys = ("http.response.status_code", "emitter.seq", "http.request.resend_count")
    consts = [
        _str_kv("emitter.run_id", ctx.run_id),
        _bool_kv("emitter.session_end", True),
        _bool_kv("emitter.anomalous", True),
        *(_str_template(k) for k in kv_keys),
        *(_int_template(k) for k in int_keys),
        b"user-",
        tp.resource[0][1],  # the scope, the same for every service
        _ld(2, b"exception") + b"\x1a",
        _ld(1, b"exception.type") + b"\x12",
        _ld(1, b"exception.message") + b"\x12",
        b"upstream timed out (504 Gateway Timeout)",
        b"HTTP ",
        b"TimeoutError",
        b"HTTPError",
    ]
    P.table(consts)
    P.table(tp.root_const)
    P.table(tp.client_const)
    P.table(tp.server_const)
    P.table(tp.user_type)
    P.table(tp.end_reason)
    P.table(tp.role)
    path_tables(P, m, str.encode, b"")  # B_PIECE, B_QUERY, B_CHOICE
    pieces = [[p.encode() for p in m.path_pieces[s]] for s in range(S)]
    qpre = [
        ((b"" if k == 0 else b"&") + names[k].encode() + b"=") if k < len(names) else b""
        for names in m.query_names
        for k in range(n_query)
    ]
    longest_choice = max([0, *(len(c.encode()) for c in m.choices)])
    faults = [f.encode() for f in ctx.fault_ids[:64]]
    P.table(faults)
    P.table([res for res, _ in tp.resource])
    P.table([b""])  # B_EMPTY
    pool, off, base = P.build()
    kinds = param_kinds(m)

    def sattr(key: str, longest: int) -> int:  # + 3 * 4: three lengths of up to five bytes
        return len(_str_template(key)) + longest + 3 * 4

    def iattr(key: str) -> int:
        return len(_int_template(key)) + 10

    param = max(24, longest_choice)
    path = max(sum(len(p) for p in ps) for ps in pieces) + n_path * param
    query = max([0, *(len(q) for q in qpre)]) * n_query + n_query * param
    root_bound = (
        18 + 10 + max(len(c) for c in tp.root_const) + 18 + iattr("http.response.status_code")
        + sattr("url.path", path) + sattr("url.query", query) + sattr("session.id", 16)
        + sattr("user.id", 5 + max(24, ctx.user_width)) + max(len(u) for u in tp.user_type)
        + iattr("emitter.seq") + len(consts[C_RUN]) + iattr("http.request.resend_count")
        + len(consts[C_SESSION_END]) + max(len(e) for e in tp.end_reason)
        + len(consts[C_ANOMALOUS]) + max(len(r) for r in tp.role)
        + sattr("emitter.faults", sum(len(f) + 1 for f in faults)) + _ERR_BOUND
    )  # fmt: skip
    child_bound = (
        18 + 10 + 10 + max(len(c) for c in (*tp.client_const, *tp.server_const)) + 18
        + iattr("http.response.status_code") + _ERR_BOUND
    )  # fmt: skip
    head_bound = sum(len(res) + len(scope) + 2 * 6 for res, scope in tp.resource)
    K = tr.K
    return OtlpTables(
        pool,
        off,
        base,
        kinds,
        np.array([len(q) for q in m.query_names], np.int64),
        np.ascontiguousarray(tr.svc, np.int64),
        np.ascontiguousarray(tr.parent, np.int64),
        np.array(span_id_keys(ctx.key_span, K), np.int64),
        n_path,
        n_query,
        len(faults),
        len(tr.services),
        K,
        root_bound,
        child_bound,
        head_bound,
        64 + 32 * (longest_choice // 32 + 2) + SLACK,
    )


def otlp_tables(ctx: RunContext, environment: str, resource: dict[str, str]) -> OtlpTables:
    """:func:`build_tables`, cached on the model (for the latest run of each environment and resource)."""
    m = ctx.model
    tkey = f"_otlp_tables|{environment}|{sorted(resource.items())}"
    key = (ctx.run_id, ctx.fault_ids, ctx.user_width, ctx.keys)
    hit: tuple[Any, OtlpTables] | None = m.__dict__.get(tkey)
    if hit is None or hit[0] != key:
        hit = m.__dict__[tkey] = (key, build_tables(_templates(m, environment, resource), ctx))
    return hit[1]


# ------------------------------------------------------------------ the kernel
#
# As everywhere (see ._native): helpers take addresses and integers, never arrays. _put copies 64 bytes
# whatever the string's length: the scratch buffer has SLACK bytes to spare past anything the first pass
# writes. The second pass copies exact lengths.


@_jit
def _vsize(v: int) -> int:
    """Bytes of ``v``'s varint (as an unsigned 64-bit number)."""
    n = 1
    v = (v >> 7) & 0x01FFFFFFFFFFFFFF
    while v != 0:
        n += 1
        v >>= 7
    return n


@_jit
def _varint_slow(o: int, v: int) -> int:
    while True:
        b = v & 0x7F
        v = (v >> 7) & 0x01FFFFFFFFFFFFFF
        if v == 0:
            _st1(o, b)
            return o + 1
        _st1(o, b | 0x80)
        o += 1


@_inline
def _varint(o: int, v: int) -> int:
    """``v`` as a protobuf varint at address ``o``; the next address."""
    if 0 <= v < 128:
        _st1(o, v)
        return o + 1
    return _varint_slow(o, v)


@_inline
def _id(o: int, tag: int, x: int) -> int:
    """A 64-bit id field (8 bytes, big-endian) with tag ``tag``."""
    _st1(o, tag)
    _st1(o + 1, 8)
    _st8(o + 2, _bswap(x))
    return o + 10


@_inline
def _fixed64(o: int, tag: int, v: int) -> int:
    _st1(o, tag)
    _st8(o + 1, v)
    return o + 9


@_inline
def _int_attr(o: int, pool: int, off: int, k: int, v: int) -> int:
    """An int attribute from template ``k`` (``_int_template``: P + 5 bytes) and the value ``v``."""
    p5 = _len(off, k)
    vo = _put(o, pool, off, k)
    e = _varint(vo, v)
    vs = e - vo
    _st1(o + 1, p5 - 2 + vs)  # KeyValue: P + 1 + 1 + (1 + vs)
    _st1(o + p5 - 2, 1 + vs)  # AnyValue: 1 + vs
    return e


@_jit
def _str_end_slow(o: int, v: int, e: int) -> int:
    """:func:`_str_end` for a value whose lengths take more than a byte: the value and key moved along."""
    n = e - v
    p = v - o - 6
    sv = 1 + _vsize(n) + n
    kv = p + 1 + _vsize(sv) + sv
    h = 1 + _vsize(kv) + p + 1 + _vsize(sv) + 1 + _vsize(n)
    shift = h - (p + 6)
    for x in range(n - 1, -1, -1):
        _st1(v + shift + x, _ld1(v + x))
    d = _vsize(kv) - 1
    for x in range(p - 1, -1, -1):
        _st1(o + 2 + d + x, _ld1(o + 2 + x))
    q = _varint(o + 1, kv) + p
    _st1(q, 0x12)
    q = _varint(q + 1, sv)
    _st1(q, 0x0A)
    q = _varint(q + 1, n)
    return q + n


@_inline
def _str_end(o: int, v: int, e: int) -> int:
    """Patch the lengths of the string attribute at ``o`` (template: P + 6 bytes) whose value is ``v .. e``."""
    n = e - v
    p = v - o - 6
    kv = p + 4 + n
    if kv < 128:
        _st1(o + 1, kv)
        _st1(o + p + 3, n + 2)
        _st1(o + p + 5, n)
        return e
    return _str_end_slow(o, v, e)


@_jit
def _message(o: int, code: int, pool: int, off: int, b_const: int) -> int:
    if code == 504:
        return _put(o, pool, off, b_const + C_MSG_504)
    return _dec(_put(o, pool, off, b_const + C_HTTP), code, 1)


@_jit
def _error(o: int, code: int, t_ns: int, pool: int, off: int, b_const: int) -> int:
    """The exception event and the error status of a span that answered ``code`` (>= 500) at ``t_ns``.

    ``code`` is an int16: the message has at most 40 bytes, the type 12, so every length fits one byte.
    """
    tk = b_const + (C_TYPE_504 if code == 504 else C_TYPE_HTTP)
    ne = _len(off, tk)
    nm = _message(o, code, pool, off, b_const) - o  # (written here only to be measured)
    _st1(o, 0x5A)  # events (11)
    _st1(o + 1, 67 + ne + nm)
    o = _fixed64(o + 2, 0x09, t_ns)
    o = _put(o, pool, off, b_const + C_EXC_NAME)  # name "exception", attribute (3)
    _st1(o, 20 + ne)
    o = _put(o + 1, pool, off, b_const + C_EXC_TYPE)
    _st1(o, 2 + ne)
    _st1(o + 1, 0x0A)
    _st1(o + 2, ne)
    o = _put(o + 3, pool, off, tk)
    _st1(o, 0x1A)
    _st1(o + 1, 23 + nm)
    o = _put(o + 2, pool, off, b_const + C_EXC_MSG)
    _st1(o, 2 + nm)
    _st1(o + 1, 0x0A)
    _st1(o + 2, nm)
    o = _message(o + 3, code, pool, off, b_const)
    _st1(o, 0x7A)  # status (15): message, code
    _st1(o + 1, 4 + nm)
    _st1(o + 2, 0x12)
    _st1(o + 3, nm)
    o = _message(o + 4, code, pool, off, b_const)
    _st1(o, 0x18)
    _st1(o + 1, 2)
    return o + 2


@_jit
def _encode_kernel(
    out_arr: U8,
    scratch_arr: U8,
    dummy_arr: U8,
    span_end: I64,
    span_svc: I64,
    svc_bytes: I64,
    svc_at: I64,
    info: I64,
    need: I64,
    first_chunk: int,
    max_events: int,
    t: I64,
    latency: I64,
    sess: I64,
    user: I64,
    utype: Any,
    seq: Any,
    attempt: Any,
    state: Any,
    status: Any,
    end: Any,
    anomalous: U8,
    role: Any,
    faults: I64,
    params_arr: I64,
    node_start: I64,
    node_dur: I64,
    node_status: Any,
    k_trace_hi: int,
    k_trace_lo: int,
    k_span: int,
    k_session: int,
    child_keys: I64,
    node_svc: I64,
    node_parent: I64,
    K: int,
    pool_arr: U8,
    off_arr: I64,
    base: I64,
    kinds_arr: Any,
    n_query_names: I64,
    n_path: int,
    n_query: int,
    n_fault: int,
    user_width: int,
    start_us: int,
    root_bound: int,
    child_bound: int,
    head_bound: int,
) -> int:
    """Requests ``first_chunk``, ... (``max_events`` calls each) into ``out_arr``, as many as fit.

    Request c is written at ``info[c, 0] .. info[c, 1]`` and holds ``info[c, 2]`` spans. Returns the next
    request to write; when that is ``first_chunk``, ``need`` holds the scratch and output sizes wanted.
    """
    out = _addr(out_arr)
    scratch = _addr(scratch_arr)
    pool = _addr(pool_arr)
    off = _addr(off_arr)
    params = _addr(params_arr)
    kinds = _addr(kinds_arr)
    dummy = _addr(dummy_arr)
    n_states = kinds_arr.shape[1]
    out_cap = len(out_arr) - SLACK
    scratch_cap = len(scratch_arr) - SLACK
    n = len(t)
    n_svc = len(svc_bytes)
    b_const, b_root, b_client, b_server, b_utype = base[0], base[1], base[2], base[3], base[4]
    b_end, b_role, b_piece, b_query, b_choice = base[5], base[6], base[7], base[8], base[9]
    b_fault, b_res, b_empty = base[10], base[11], base[12]
    scope_at = _ld8(off + 8 * (b_const + C_SCOPE))
    scope_len = _len(off, b_const + C_SCOPE)
    n_chunks = (n + max_events - 1) // max_events
    o_out = out
    for c in range(first_chunk, n_chunks):
        lo = c * max_events
        hi = min(n, lo + max_events)
        # room for this request's spans in the scratch buffer?
        child = 0
        for i in range(lo, hi):
            for j in range(1, K):
                child += node_dur[i, j] > 0
        if (hi - lo) * root_bound + 2 * child * child_bound > scratch_cap:
            need[0] = (hi - lo) * root_bound + 2 * child * child_bound + SLACK
            return c
        # pass 1: the spans, in event order, into the scratch buffer
        o = scratch
        m = 0
        for i in range(lo, hi):
            s = int(state[i])
            ek = _event_key(sess[i], int(seq[i]), int(attempt[i]))
            th = _bswap(_mix64(ek, k_trace_hi))
            tl = _bswap(_mix64(ek, k_trace_lo))
            root_id = _mix64(ek, k_span)
            t0 = (t[i] + start_us) * 1000
            t1 = t0 + latency[i] * 1000
            code = int(status[i])
            _st1(o, 0x0A)
            _st1(o + 1, 16)
            _st8(o + 2, th)
            _st8(o + 10, tl)
            o = _id(o + 18, 0x12, root_id)
            o = _put(o, pool, off, b_root + s)
            o = _fixed64(o, 0x39, t0)
            o = _fixed64(o, 0x41, t1)
            o = _int_attr(o, pool, off, b_const + C_STATUS, code)
            # url.path: the pieces and the path placeholders; url.query: the query string after the "?"
            a = o
            v = _put(a, pool, off, b_const + C_PATH)
            p = _path(v, s, i, n, params, kinds, n_states, n_path, pool, off, b_piece, b_choice, b_empty, dummy)
            o = _str_end(a, v, p)
            if n_query_names[s] > 0:
                a = o
                v = _put(a, pool, off, b_const + C_QUERY)
                p = _query(
                    v, s, i, n, params, kinds, n_states, n_path, n_query, pool, off, b_query, b_choice, b_empty, dummy
                )
                o = _str_end(a, v, p)
            a = o
            v = _put(a, pool, off, b_const + C_SESSION)
            o = _str_end(a, v, _hex(v, _mix64(sess[i], k_session)))
            a = o
            v = _put(a, pool, off, b_const + C_USER)
            o = _str_end(a, v, _dec(_put(v, pool, off, b_const + C_USER_PREFIX), user[i], user_width))
            o = _put(o, pool, off, b_utype + int(utype[i]))
            o = _int_attr(o, pool, off, b_const + C_SEQ, int(seq[i]))
            o = _put(o, pool, off, b_const + C_RUN)
            if attempt[i] > 1:
                o = _int_attr(o, pool, off, b_const + C_RESEND, int(attempt[i]) - 1)
            if end[i] != 0:
                o = _put(o, pool, off, b_const + C_SESSION_END)
                o = _put(o, pool, off, b_end + int(end[i]))
            if anomalous[i]:
                o = _put(o, pool, off, b_const + C_ANOMALOUS)
                o = _put(o, pool, off, b_role + int(role[i]))
                a = o
                v = _put(a, pool, off, b_const + C_FAULTS)
                o = _str_end(a, v, _faults(v, faults[i], pool, off, b_fault, n_fault))
            if code >= 500:
                o = _error(o, code, t1, pool, off, b_const)
            span_svc[m] = node_svc[s, 0]
            span_end[m] = o - scratch
            m += 1
            for j in range(1, K):
                nd = node_dur[i, j]
                if nd <= 0:
                    continue
                par = node_parent[s, j]
                callee = node_svc[s, j]
                parent_id = root_id if par == 0 else _mix64(ek, child_keys[2 * par + 1])
                cid = _mix64(ek, child_keys[2 * j])
                ns = node_start[i, j]
                st = int(node_status[i, j])
                seen = st if st != 0 else 200
                # CLIENT span at the caller
                ce = t0 + (ns + nd + NET_US) * 1000
                _st1(o, 0x0A)
                _st1(o + 1, 16)
                _st8(o + 2, th)
                _st8(o + 10, tl)
                o = _id(o + 18, 0x12, cid)
                o = _id(o, 0x22, parent_id)
                o = _put(o, pool, off, b_client + callee)
                o = _fixed64(o, 0x39, t0 + (ns - NET_US) * 1000)
                o = _fixed64(o, 0x41, ce)
                o = _int_attr(o, pool, off, b_const + C_STATUS, seen)
                if st >= 500:
                    o = _error(o, st, ce, pool, off, b_const)
                span_svc[m] = node_svc[s, par]
                span_end[m] = o - scratch
                m += 1
                # SERVER span at the callee
                ss = t0 + ns * 1000
                se = ss + nd * 1000
                _st1(o, 0x0A)
                _st1(o + 1, 16)
                _st8(o + 2, th)
                _st8(o + 10, tl)
                o = _id(o + 18, 0x12, _mix64(ek, child_keys[2 * j + 1]))
                o = _id(o, 0x22, cid)
                o = _put(o, pool, off, b_server + callee)
                o = _fixed64(o, 0x39, ss)
                o = _fixed64(o, 0x41, se)
                o = _int_attr(o, pool, off, b_const + C_STATUS, seen)
                if st >= 500:
                    o = _error(o, st, se, pool, off, b_const)
                span_svc[m] = callee
                span_end[m] = o - scratch
                m += 1
        # room for the request in the output?
        wanted = (o - scratch) + 6 * m + head_bound
        if (o_out - out) + wanted > out_cap:
            need[1] = wanted + SLACK
            return c
        # pass 2: per service, its headers and then its spans
        for k in range(n_svc):
            svc_bytes[k] = 0
        prev = 0
        for x in range(m):
            size = span_end[x] - prev
            svc_bytes[span_svc[x]] += 1 + _vsize(size) + size
            prev = span_end[x]
        q = o_out
        for k in range(n_svc):
            if svc_bytes[k] == 0:
                continue
            res_len = _len(off, b_res + k)
            ss_len = scope_len + svc_bytes[k]
            _st1(q, 0x0A)  # resource_spans (1)
            q = _varint(q + 1, res_len + 1 + _vsize(ss_len) + ss_len)
            _memcpy(q, pool + _ld8(off + 8 * (b_res + k)), res_len)
            _st1(q + res_len, 0x12)  # scope_spans (2)
            q = _varint(q + res_len + 1, ss_len)
            _memcpy(q, pool + scope_at, scope_len)
            svc_at[k] = q + scope_len
            q += scope_len + svc_bytes[k]
        prev = 0
        for x in range(m):
            size = span_end[x] - prev
            k = span_svc[x]
            d = svc_at[k]
            _st1(d, 0x12)  # spans (2)
            d = _varint(d + 1, size)
            _memcpy(d, scratch + prev, size)
            svc_at[k] = d + size
            prev = span_end[x]
        info[c, 0] = o_out - out
        info[c, 1] = q - out
        info[c, 2] = m
        o_out = q
    return n_chunks


_OUT_BYTES = 8 << 20  # requests written per kernel call: about this many bytes (then copied out while in cache)
_CHILDREN_GUESS = 3  # call-tree nodes per call that the first buffer sizes allow for (the kernel asks for more)


def encode_otlp(
    batch: EventBatch, *, environment: str = "emitter", resource: dict[str, str] | None = None, max_events: int = 512
) -> list[OtlpRequest]:
    """The batch as OTLP ExportTraceServiceRequest bodies of at most ``max_events`` calls each."""
    n = len(batch)
    if n == 0:
        return []
    if max_events < 1:
        raise ValueError(f"max_events must be at least 1, got {max_events}")
    ctx = batch.ctx
    tb = otlp_tables(ctx, environment, resource or {})
    c = batch.cols
    k = kernel_columns(batch)
    K = tb.K if "node_dur" in c else 1
    if K > 1:
        node_start = col(c["node_start"], np.int64)
        node_dur = col(c["node_dur"], np.int64)
        node_status = col(c["node_status"], np.int16)
    else:
        node_start = node_dur = np.zeros((1, 1), np.int64)
        node_status = np.zeros((1, 1), np.int16)
    params = params_of(batch)
    n_chunks = (n + max_events - 1) // max_events
    per_chunk = min(n, max_events)
    spans_max = per_chunk * (2 * K - 1)
    span_end = buffer("span_end", 8 * spans_max).view(np.int64)
    span_svc = buffer("span_svc", 8 * spans_max).view(np.int64)
    svc_bytes = np.empty(tb.n_svc, np.int64)
    svc_at = np.empty(tb.n_svc, np.int64)
    info = np.empty((n_chunks, 3), np.int64)
    need = np.zeros(2, np.int64)
    per_event = tb.root_bound + 2 * min(K - 1, _CHILDREN_GUESS) * tb.child_bound
    scratch_size = per_chunk * per_event + SLACK
    out_size = min(n * per_event, _OUT_BYTES) + SLACK
    args = (
        k["t"],
        k["latency"],
        k["sess"],
        k["user"],
        k["utype"],
        k["seq"],
        k["attempt"],
        k["state"],
        k["status"],
        k["end"],
        k["anomalous"],
        k["role"],
        k["faults"],
        params,
        node_start,
        node_dur,
        node_status,
        ctx.key_trace[0],
        ctx.key_trace[1],
        ctx.key_span,
        ctx.key_session,
        tb.child_keys,
        tb.node_svc,
        tb.node_parent,
        K,
        tb.pool,
        tb.off,
        tb.base,
        tb.kinds,
        tb.n_query_names,
        tb.n_path,
        tb.n_query,
        tb.n_fault,
        ctx.user_width,
        ctx.start_us,
        tb.root_bound,
        tb.child_bound,
        tb.head_bound,
    )
    dummy = buffer("otlp_dummy", tb.dummy)
    reqs: list[OtlpRequest] = []
    first = 0
    while first < n_chunks:
        scratch_size, out_size = max(scratch_size, int(need[0])), max(out_size, int(need[1]))
        scratch = buffer("scratch", scratch_size)
        out = buffer("out", out_size)
        nxt = _encode_kernel(
            out, scratch, dummy, span_end, span_svc, svc_bytes, svc_at, info, need, first, max_events, *args
        )
        for r in range(first, nxt):
            lo = r * max_events
            body = out[info[r, 0] : info[r, 1]].tobytes()
            reqs.append(OtlpRequest(body, min(n, lo + max_events) - lo, int(info[r, 2])))
        first = nxt
    return reqs
