"""The JSON-lines encoder as one compiled loop (numba): every event written once into an output buffer.

Strings live in one byte pool with an offsets array. What an event's line holds that depends on one small
column only is prepared whole: per state ``,"endpoint":"<route>","path":"<first piece>`` and
``","method":"…","service":"…","status_code":``, per user type, per (end reason, anomalous), per role.
The kernel copies those with 32-byte vector moves, and makes numbers (eight digits at once), hex ids (eight
at once) and timestamps (date and time of day redone only when the second changes) in registers, storing
8 bytes at a time. It hardly branches on the data: a line's pieces change from one event to the next in
ways a branch predictor cannot guess.

The output is held to :func:`emitter.encode.jsonl.encode_jsonl_reference` byte for byte by the tests, like
the numpy encoder. Importing this module imports numba; the kernel is compiled on first use (a few
seconds), or loaded from numba's on-disk cache (``__pycache__`` beside this file, or ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic as _intrinsic

from ..core.batch import ROLES, SCHEMA_VERSION, EventBatch, RunContext
from ..core.model import END_REASONS, PARAM_CHOICE, PARAM_INT, PARAM_USER, Model

__all__ = ["build_tables", "encode_jsonl_numba", "tables_for"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

_INT_MAX = 20  # bytes of the longest int64 in decimal, sign included
_SLACK = 96  # bytes past the end of the pool and of the output that block copies may read or write

# constant pieces (table B_CONST)
C_HEAD, C_RUN, C_SESSION, C_USER, C_ATTEMPT, C_LATENCY, C_SPAN, C_EOL = range(8)

# the tables in the pool, in order (entries of ``Tables.base``)
B_CONST, B_UTYPE, B_HEAD, B_PIECE, B_QUERY, B_CHOICE, B_TAIL, B_END, B_FAULT, B_ROLE, B_EMPTY = range(11)


def _json_str(s: str) -> bytes:
    return json.dumps(s, ensure_ascii=False).encode()[1:-1]


@dataclass(frozen=True)
class Tables:
    """Everything the kernel looks up: a byte pool, string offsets into it, table bases, sizes."""

    pool: U8  # with _SLACK zero bytes at the end
    off: I64  # string k is pool[off[k]:off[k + 1]]
    base: I64  # index of the first string of each table (B_*)
    kinds: npt.NDArray[np.int8]  # [slots, S] PARAM_* of slot j in state s
    n_path: int
    n_query: int
    n_fault: int
    bound: int  # bytes an event takes at most
    scratch: int  # bytes of the area after the output where the kernel drops writes it does not want


class _PoolBuilder:
    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.base: list[int] = []

    def table(self, items: Sequence[bytes]) -> int:
        """Add a table; returns its longest string's length."""
        self.base.append(len(self.items))
        self.items.extend(items)
        return max([0, *(len(x) for x in items)])

    def build(self) -> tuple[U8, I64, I64]:
        off = np.zeros(len(self.items) + 1, np.int64)
        off[1:] = np.cumsum([len(x) for x in self.items])
        pool = np.frombuffer(b"".join(self.items) + bytes(_SLACK), np.uint8).copy()
        return pool, off, np.array(self.base, np.int64)


def build_tables(m: Model, ctx: RunContext) -> Tables:
    """The kernel's tables for one model and run (the run id and the fault ids come from the run)."""
    P = _PoolBuilder()
    S = m.n_states
    n_path, n_query = m.n_path_slots, m.n_query_slots
    consts = [b""] * 8
    consts[C_HEAD] = b'{"schema_version":' + str(SCHEMA_VERSION).encode() + b',"event_id":"'
    consts[C_RUN] = b'","run_id":"' + _json_str(ctx.run_id) + b'","timestamp":"'
    consts[C_SESSION] = b'","session_id":"'
    consts[C_USER] = b'","user_id":"user-'
    consts[C_ATTEMPT] = b',"attempt":'
    consts[C_LATENCY] = b',"latency_ms":'
    consts[C_SPAN] = b'","span_id":"'
    consts[C_EOL] = b'"}\n'
    P.table(consts)
    bound = sum(len(c) for c in consts)
    bound += 16 * 5 + 27  # hex ids, timestamp
    bound += max(ctx.user_width, _INT_MAX) + 3 * _INT_MAX + (_INT_MAX + 4)  # user, seq, attempt, status, latency
    bound += P.table([b'","user_type":"' + u + b'","seq":' for u in m.j_user_types])
    pieces = [[_json_str(p) for p in m.path_pieces[s]] for s in range(S)]
    bound += P.table([b',"endpoint":"' + m.j_route[s] + b'","path":"' + pieces[s][0] for s in range(S)])
    # path piece j (1 <= j <= n_path) of state s: entry s * n_path + j - 1
    bound += n_path * P.table(
        [pieces[s][j] if j < len(pieces[s]) else b"" for s in range(S) for j in range(1, n_path + 1)]
    )
    prefixes = [
        ((b"?" if k == 0 else b"&") + _json_str(names[k]) + b"=") if k < len(names) else b""
        for names in m.query_names
        for k in range(n_query)
    ]
    bound += n_query * P.table(prefixes)
    longest_choice = P.table([_json_str(c) for c in m.choices])
    bound += len(m.slots) * max(_INT_MAX, longest_choice)
    bound += P.table(
        [b'","method":"' + m.j_method[s] + b'","service":"' + m.j_service[s] + b'","status_code":' for s in range(S)]
    )
    # (end reason, anomalous): entry 2 * end + anomalous
    bound += P.table(
        [
            b',"session_end":'
            + (b'false,"end_reason":null' if r is None else b'true,"end_reason":"' + _json_str(r) + b'"')
            + b',"workflow":"'
            + m.j_workflow
            + b'","labels":{"anomalous":'
            + anomalous
            + b',"faults":['
            for r in END_REASONS
            for anomalous in (b"false", b"true")
        ]
    )
    faults = [b'"' + _json_str(f) + b'"' for f in ctx.fault_ids[:64]]
    P.table(faults)
    bound += sum(len(f) + 1 for f in faults)
    bound += P.table([b'],"role":"' + _json_str(r) + b'"},"trace_id":"' for r in ROLES])
    P.table([b""])
    pool, off, base = P.build()
    kinds = np.zeros((len(m.slots), S), np.int8)
    for j, slot in enumerate(m.slots):
        kinds[j] = slot.kind
    scratch = 64 + 32 * (longest_choice // 32 + 1) + _SLACK
    return Tables(pool, off, base, kinds, n_path, n_query, len(faults), bound, scratch)


def tables_for(ctx: RunContext) -> Tables:
    """:func:`build_tables`, cached on the model (for the latest run id and fault ids)."""
    m = ctx.model
    key = (ctx.run_id, ctx.fault_ids)
    hit: tuple[Any, Tables] | None = m.__dict__.get("_jsonl_numba_tables")
    if hit is None or hit[0] != key:
        hit = m.__dict__["_jsonl_numba_tables"] = (key, build_tables(m, ctx))
    return hit[1]


# ------------------------------------------------------------------ the kernel
#
# The helpers below take addresses and integers, never arrays: numba reference-counts arrays passed to
# inlined functions, and those atomic increments (in the inner loop) cost more than the encoding itself.
# Memory is read and written through the intrinsics _ld8, _st1, _st8 and _cp32 (unaligned, unchecked).

_jit = numba.njit(cache=True, nogil=True)
_inline = numba.njit(cache=True, nogil=True, inline="always")
intrinsic: Any = _intrinsic  # (typed by numba in a way that does not describe the decorated functions' calls)
_raw_memcpy: Any = cgutils.raw_memcpy


def _i8p(builder: Any, addr: Any) -> Any:
    return builder.inttoptr(addr, ir.IntType(8).as_pointer())


def _as_i64(context: Any, builder: Any, value: Any, ty: Any) -> Any:
    return context.cast(builder, value, ty, numba.types.int64)


@intrinsic  # type: ignore[untyped-decorator]
def _addr(typingctx: Any, arr: Any) -> Any:
    """The address of ``arr``'s first byte."""
    sig = numba.types.int64(arr)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _cp32(typingctx: Any, dst: Any, src: Any) -> Any:
    """Copy 32 bytes from address ``src`` to address ``dst`` (one unaligned vector move)."""
    sig = numba.types.void(dst, src)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        d = _i8p(builder, _as_i64(context, builder, args[0], signature.args[0]))
        s = _i8p(builder, _as_i64(context, builder, args[1], signature.args[1]))
        _raw_memcpy(builder, d, s, ir.Constant(ir.IntType(64), 32), 1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _st8(typingctx: Any, dst: Any, value: Any) -> Any:
    """Store ``value`` at address ``dst`` as 8 little-endian bytes (unaligned)."""
    sig = numba.types.void(dst, value)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i64 = ir.IntType(64)
        p = builder.inttoptr(_as_i64(context, builder, args[0], signature.args[0]), i64.as_pointer())
        builder.store(_as_i64(context, builder, args[1], signature.args[1]), p, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _st1(typingctx: Any, dst: Any, value: Any) -> Any:
    """Store the low byte of ``value`` at address ``dst``."""
    sig = numba.types.void(dst, value)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        v = builder.trunc(_as_i64(context, builder, args[1], signature.args[1]), ir.IntType(8))
        builder.store(v, _i8p(builder, _as_i64(context, builder, args[0], signature.args[0])))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def _ld8(typingctx: Any, src: Any) -> Any:
    """The 8 little-endian bytes at address ``src``, as an int64 (unaligned)."""
    sig = numba.types.int64(src)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i64 = ir.IntType(64)
        p = builder.inttoptr(_as_i64(context, builder, args[0], signature.args[0]), i64.as_pointer())
        return builder.load(p, align=1)

    return sig, codegen


@_jit
def _copy_long(o: int, src: int, n: int) -> None:
    """Bytes 64 and on of a string longer than 64 bytes (rare: not inlined)."""
    for x in range(64, n, 32):
        _cp32(o + x, src + x)


@_inline
def _put(o: int, pool: int, off: int, k: int) -> int:
    """Append string ``k`` of the pool at address ``o``; the next address.

    Copies 64 bytes whatever the length (no branch for the usual short strings): the pool and the output
    have _SLACK bytes to spare at their ends.
    """
    a = _ld8(off + 8 * k)
    n = _ld8(off + 8 * k + 8) - a
    _cp32(o, pool + a)
    _cp32(o + 32, pool + a + 32)
    if n > 64:
        _copy_long(o, pool + a, n)
    return o + n  # type: ignore[no-any-return]


@_inline
def _hex8(h: int) -> int:
    """Eight lower-case hex digits of the 32-bit ``h``, first digit in the lowest byte (SWAR)."""
    x = ((h >> 16) & 0xFFFF) | ((h & 0xFFFF) << 32)
    x = ((x >> 8) & 0x000000FF000000FF) | ((x & 0x000000FF000000FF) << 16)
    x = ((x >> 4) & 0x000F000F000F000F) | ((x & 0x000F000F000F000F) << 8)
    return x + 0x3030303030303030 + (((x + 0x0606060606060606) >> 4) & 0x0101010101010101) * 0x27


@_inline
def _hex(o: int, x: int) -> int:
    """The 64-bit ``x`` as 16 lower-case hex digits at address ``o``."""
    _st8(o, _hex8((x >> 32) & 0xFFFFFFFF))
    _st8(o + 8, _hex8(x & 0xFFFFFFFF))
    return o + 16


@_inline
def _digits8(v: int) -> int:
    """The eight decimal digits of ``v`` (0 <= v < 10**8) as ASCII, first digit in the lowest byte (SWAR)."""
    x = v // 10_000 | (v % 10_000) << 32
    y = ((x * 10_486) >> 20) & 0x0000007F0000007F  # // 100 in each 32-bit lane
    x = y | ((x - y * 100) << 16)
    z = ((x * 103) >> 10) & 0x000F000F000F000F  # // 10 in each 16-bit lane
    x = z | ((x - z * 10) << 8)
    return x + 0x3030303030303030


@_inline
def _ndigits8(v: int) -> int:
    """Decimal digits of ``v`` (0 <= v < 10**8), without branches."""
    return (
        1
        + (v >= 10)
        + (v >= 100)
        + (v >= 1_000)
        + (v >= 10_000)
        + (v >= 100_000)
        + (v >= 1_000_000)
        + (v >= 10_000_000)
    )


@_jit
def _dec_slow(o: int, v: int, min_width: int) -> int:
    """:func:`_dec` for negative numbers, numbers of 9 digits or more, and widths above 8 (rare)."""
    if v < 0:
        _st1(o, 45)  # '-'
        o += 1
        v = -v  # (the most negative int64 stays negative; its digits come out wrong but in bounds)
    nd = 1
    p = 10
    while nd < 19 and v >= p:
        nd += 1
        p *= 10
    nd = max(nd, min(min_width, 24))
    for k in range(nd):
        _st1(o + nd - 1 - k, 48 + v % 10)
        v //= 10
    return o + nd


@_inline
def _dec(o: int, v: int, min_width: int) -> int:
    """``v`` in decimal at address ``o``, zero-padded to ``min_width`` digits (``f"{v:0{w}d}"``).

    Below 10**8 without branches: the eight digits made in a register, the wanted ones stored.
    """
    if v < 0 or v >= 100_000_000 or min_width > 8:
        return _dec_slow(o, v, min_width)
    nd = max(_ndigits8(v), min_width)
    _st8(o, _digits8(v) >> (8 * (8 - nd)))
    return o + nd


@_inline
def _param(o: int, kind: int, v: int, pool: int, off: int, b_choice: int, empty: int, dummy: int) -> int:
    """A placeholder's value: a number, a choice, or nothing (PARAM_NONE).

    The kind depends on the state, as good as random from one event to the next: rather than branch on
    it, both the number and the choice are written, the unwanted one to the scratch address ``dummy``.
    """
    is_choice = kind == PARAM_CHOICE
    is_num = (kind == PARAM_INT) | (kind == PARAM_USER)
    k = b_choice + v if is_choice else empty
    oc = o if is_choice else dummy
    nc = _put(oc, pool, off, k) - oc
    on = o if is_num else dummy
    if 0 <= v < 100_000_000:
        nn = _ndigits8(v)
        _st8(on, _digits8(v) >> (8 * (8 - nn)))
    else:
        nn = _dec_slow(on, v, 1) - on
    return o + (nc if is_choice else (nn if is_num else 0))


@_jit
def _second(sec: int) -> tuple[int, int, int]:
    """``YYYY-MM-DDTHH:MM:SS.`` of ``sec`` seconds since the epoch, as 8 + 8 + 4 bytes (civil-from-days)."""
    days = sec // 86_400
    tod = sec - days * 86_400
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    mo = mp + 3 if mp < 10 else mp - 9
    if mo <= 2:
        y += 1
    # YYYYMMDD, then HHMMSS: eight digits each, placed byte by byte around the punctuation
    ymd = _digits8((y % 10_000) * 10_000 + mo * 100 + d)
    hms = _digits8((tod // 3600) * 10_000 + (tod // 60 % 60) * 100 + tod % 60) >> 16
    b = 0xFF
    w0 = (ymd & 0xFFFFFFFF) | (45 << 32) | ((ymd >> 32) & 0xFFFF) << 40 | (45 << 56)  # YYYY-MM-
    w1 = (ymd >> 48) & 0xFFFF | (84 << 16) | (hms & 0xFFFF) << 24 | (58 << 40) | ((hms >> 16) & b) << 48
    w1 |= ((hms >> 24) & b) << 56  # DDTHH:MM
    w2 = 58 | ((hms >> 32) & 0xFFFF) << 8 | (46 << 24)  # :SS.
    return w0, w1, w2


@_jit
def _faults(o: int, f: int, pool: int, off: int, b_fault: int, n_fault: int) -> int:
    """The ids of the faults whose bit is set in ``f``, quoted, comma-separated (rare: not inlined)."""
    first = True
    for b in range(n_fault):
        if (f >> b) & 1:
            if not first:
                _st1(o, 44)  # ,
                o += 1
            first = False
            o = _put(o, pool, off, b_fault + b)
    return o


@_jit
def _encode_kernel(
    out_arr: U8,
    t: I64,
    user: I64,
    utype: Any,
    seq: Any,
    attempt: Any,
    state: Any,
    status: Any,
    latency: I64,
    end: Any,
    anomalous: U8,
    faults: I64,
    role: Any,
    params: I64,
    event_id: I64,
    session_key: I64,
    trace_hi: I64,
    trace_lo: I64,
    span_id: I64,
    pool_arr: U8,
    off_arr: I64,
    base: I64,
    kinds: Any,
    n_path: int,
    n_query: int,
    n_fault: int,
    user_width: int,
    start_us: int,
    dummy_at: int,
) -> int:
    """Write the lines of events ``0 .. len(t) - 1`` into ``out_arr``; the number of bytes written."""
    out = _addr(out_arr)
    pool = _addr(pool_arr)
    off = _addr(off_arr)
    dummy = out + dummy_at
    b_const, b_utype, b_head, b_piece, b_query = base[0], base[1], base[2], base[3], base[4]
    b_choice, b_tail, b_end, b_fault, b_role, b_empty = base[5], base[6], base[7], base[8], base[9], base[10]
    o = out
    last_sec = -(1 << 62)
    w0, w1, w2 = 0, 0, 0  # YYYY-MM-DDTHH:MM:SS. of last_sec
    for i in range(len(t)):
        s = int(state[i])
        o = _put(o, pool, off, b_const + C_HEAD)
        o = _hex(o, event_id[i])
        o = _put(o, pool, off, b_const + C_RUN)
        us = t[i] + start_us
        sec = us // 1_000_000
        if sec != last_sec:
            last_sec = sec
            w0, w1, w2 = _second(sec)
        _st8(o, w0)
        _st8(o + 8, w1)
        _st8(o + 16, w2)
        _st8(o + 20, _digits8(us - sec * 1_000_000) >> 16)  # six digits of µs
        _st1(o + 26, 90)  # Z
        o += 27
        o = _put(o, pool, off, b_const + C_SESSION)
        o = _hex(o, session_key[i])
        o = _put(o, pool, off, b_const + C_USER)
        o = _dec(o, user[i], user_width)
        o = _put(o, pool, off, b_utype + int(utype[i]))
        o = _dec(o, int(seq[i]), 1)
        o = _put(o, pool, off, b_const + C_ATTEMPT)
        o = _dec(o, int(attempt[i]), 1)
        o = _put(o, pool, off, b_head + s)
        # the rest of the path: placeholders and the pieces after them, then the query string
        for j in range(n_path):
            o = _param(o, kinds[j, s], params[j, i], pool, off, b_choice, b_empty, dummy)
            o = _put(o, pool, off, b_piece + s * n_path + j)
        for k in range(n_query):
            o = _put(o, pool, off, b_query + s * n_query + k)
            o = _param(o, kinds[n_path + k, s], params[n_path + k, i], pool, off, b_choice, b_empty, dummy)
        o = _put(o, pool, off, b_tail + s)
        o = _dec(o, int(status[i]), 1)
        o = _put(o, pool, off, b_const + C_LATENCY)
        # latency_ms: repr(us / 1000), i.e. '.' and 1-3 digits, trailing zeros dropped but one kept
        lat = latency[i]
        if lat < 0:
            _st1(o, 45)
            o += 1
            lat = -lat
        whole = lat // 1000
        frac = lat - whole * 1000
        o = _dec(o, whole, 1)
        _st8(o, 46 | ((_digits8(frac) >> 40) << 8))
        o += 2 + (frac % 100 != 0) + (frac % 10 != 0)
        o = _put(o, pool, off, b_end + 2 * int(end[i]) + (1 if anomalous[i] else 0))
        if faults[i] != 0:
            o = _faults(o, faults[i], pool, off, b_fault, n_fault)
        o = _put(o, pool, off, b_role + int(role[i]))
        o = _hex(o, trace_hi[i])
        o = _hex(o, trace_lo[i])
        o = _put(o, pool, off, b_const + C_SPAN)
        o = _hex(o, span_id[i])
        o = _put(o, pool, off, b_const + C_EOL)
    return o - out  # type: ignore[no-any-return]


_scratch = threading.local()
_KEEP_BYTES = 64 << 20  # output buffers up to this size are kept for the thread's next batch


def _out_buffer(size: int) -> U8:
    """A scratch output buffer of at least ``size`` bytes: this thread's, reused while it is not too big.

    Fresh memory costs a page fault per 4 KiB on first write, about as much as encoding into it.
    """
    buf: U8 | None = getattr(_scratch, "buf", None)
    if buf is not None and len(buf) >= size:
        return buf
    buf = np.empty(size, np.uint8)
    if size <= _KEEP_BYTES:
        _scratch.buf = buf
    return buf


def _col(x: npt.NDArray[Any], dtype: Any) -> npt.NDArray[Any]:
    return np.ascontiguousarray(x, dtype=dtype)


def _ids(x: npt.NDArray[np.uint64]) -> I64:
    return np.ascontiguousarray(x, dtype=np.uint64).view(np.int64)


def encode_jsonl_numba(batch: EventBatch) -> bytes:
    """The batch as JSON lines, by the compiled kernel (the same bytes as the numpy and reference encoders)."""
    n = len(batch)
    if n == 0:
        return b""
    ctx = batch.ctx
    tb = tables_for(ctx)
    c = batch.cols
    params = batch.params
    if params.shape[0] == 0:
        params = np.zeros((0, n), np.int64)
    out = _out_buffer(n * tb.bound + _SLACK + tb.scratch)
    used = _encode_kernel(
        out,
        _col(c["t"], np.int64),
        _col(c["user"], np.int64),
        _col(c["utype"], np.int16),
        _col(c["seq"], np.int32),
        _col(c["attempt"], np.int16),
        _col(c["state"], np.int16),
        _col(c["status"], np.int16),
        _col(c["latency"], np.int64),
        _col(c["end"], np.int8),
        _col(c["anomalous"], np.bool_).view(np.uint8),
        _ids(c["faults"]),
        _col(c["role"], np.int8),
        _col(params, np.int64),
        _ids(batch.event_id),
        _ids(batch.session_key),
        _ids(batch.trace_hi),
        _ids(batch.trace_lo),
        _ids(batch.span_id),
        tb.pool,
        tb.off,
        tb.base,
        tb.kinds,
        tb.n_path,
        tb.n_query,
        tb.n_fault,
        ctx.user_width,
        ctx.start_us,
        n * tb.bound + _SLACK,
    )
    if used > n * tb.bound:  # cannot happen: the bound is an upper bound
        raise AssertionError(f"JSON-lines kernel overran its buffer ({used} > {n * tb.bound} bytes)")
    return out[:used].tobytes()
