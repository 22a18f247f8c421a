"""The per-event strings, rendered in one place: ids, timestamps, numbers, paths and fault lists.

Every encoder writes an event's strings with these: the JSON-lines kernel, the OTLP kernel, and
:func:`render_strings`, which gives columnar sinks Arrow-style string columns (one data buffer and
offsets per column). Each writer takes an output address and integers (see :mod:`._native`) and returns
the address after what it wrote. What varies per format is only the pool a kernel hands them: JSON
escapes the route's pieces and the parameter choices, OTLP and Arrow take them as they are.

Ids are made in registers: :func:`_event_key` and :func:`_mix64` are :mod:`emitter.core.ids`'s, for one
value. Numbers are written eight digits at a time, hex ids eight at a time, timestamps from the words of
their second (:func:`_second`, redone only when the second changes) and six digits of microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.batch import COLUMNS as BATCH_COLUMNS
from ..core.batch import EventBatch, RunContext
from ..core.ids import ATTEMPT_BITS, SEQ_BITS
from ..core.model import PARAM_CHOICE, PARAM_INT, PARAM_USER, Model
from ._native import (
    SLACK,
    PoolBuilder,
    _addr,
    _inline,
    _jit,
    _ld1,
    _ld8,
    _put,
    _st1,
    _st8,
    _wmul,
    buffer,
    col,
)

__all__ = ["COLUMNS", "PathTables", "render_strings"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)  # SplitMix64's multipliers as int64
_M2 = 0x94D049BB133111EB - (1 << 64)
INT_MAX = 20  # bytes of the longest int64 in decimal, sign included


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


@_inline
def _mix64(x: int, key: int) -> int:
    """:func:`emitter.core.ids.mix64` of one value (int64 bits; shifts made logical by masks)."""
    z = x ^ key
    z = _wmul(z ^ ((z >> 30) & 0x3FFFFFFFF), _M1)
    z = _wmul(z ^ ((z >> 27) & 0x1FFFFFFFFF), _M2)
    return z ^ ((z >> 31) & 0x1FFFFFFFF)  # type: ignore[no-any-return]


@_inline
def _event_key(sess: int, seq: int, attempt: int) -> int:
    """:func:`emitter.core.ids.event_key` of one event."""
    return (sess << (SEQ_BITS + ATTEMPT_BITS)) | (seq << ATTEMPT_BITS) | attempt


@_inline
def _stamp(o: int, us: int, sec: int, w0: int, w1: int, w2: int) -> int:
    """``us`` (µs since the epoch) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, from the words of its second ``sec``."""
    _st8(o, w0)
    _st8(o + 8, w1)
    _st8(o + 16, w2)
    _st8(o + 20, _digits8(us - sec * 1_000_000) >> 16)  # six digits of µs
    _st1(o + 26, 90)  # Z
    return o + 27


@_inline
def _slot(at: int, j: int, width: int, i: int) -> int:
    """Element (j, i) of a C-ordered int64 matrix of ``width`` columns at address ``at``."""
    return _ld8(at + 8 * (j * width + i))  # type: ignore[no-any-return]


@_inline
def _path(
    o: int,
    s: int,
    i: int,
    n: int,
    params: int,
    kinds: int,
    n_states: int,
    n_path: int,
    pool: int,
    off: int,
    b_piece: int,
    b_choice: int,
    empty: int,
    dummy: int,
) -> int:
    """The path of event ``i`` (state ``s``): the route's pieces with its placeholders' values between them.

    ``params`` is the [slots, n] int64 matrix of values, ``kinds`` the [slots, S] int8 matrix of PARAM_*
    (both addresses); the pool holds n_path + 1 pieces per state from ``b_piece``.
    """
    base = b_piece + s * (n_path + 1)
    o = _put(o, pool, off, base)
    for j in range(n_path):
        o = _param(o, _ld1(kinds + j * n_states + s), _slot(params, j, n, i), pool, off, b_choice, empty, dummy)
        o = _put(o, pool, off, base + j + 1)
    return o


@_inline
def _query(
    o: int,
    s: int,
    i: int,
    n: int,
    params: int,
    kinds: int,
    n_states: int,
    n_path: int,
    n_query: int,
    pool: int,
    off: int,
    b_query: int,
    b_choice: int,
    empty: int,
    dummy: int,
) -> int:
    """The query string of event ``i``: per query parameter its prefix from the pool (``?name=`` or
    ``&name=`` in a JSON path, ``name=`` then ``&name=`` in ``url.query``) and its value."""
    for k in range(n_query):
        o = _put(o, pool, off, b_query + s * n_query + k)
        j = n_path + k
        o = _param(o, _ld1(kinds + j * n_states + s), _slot(params, j, n, i), pool, off, b_choice, empty, dummy)
    return o


# ------------------------------------------------------------------ the pieces of paths, per format


def path_tables(pool: PoolBuilder, m: Model, escape: Any, query_first: bytes) -> tuple[int, int, int, int]:
    """Add the tables :func:`_path` and :func:`_query` read to ``pool``: every state's n_path + 1 pieces,
    its query prefixes (``query_first`` before the first name, ``&`` before the others) and the choices,
    each through ``escape`` (str -> bytes). Returns the bases (piece, query, choice) and the longest choice."""
    S, n_path, n_query = m.n_states, m.n_path_slots, m.n_query_slots
    b_piece = len(pool.items)
    pool.table([escape(p[j]) if j < len(p) else b"" for p in m.path_pieces for j in range(n_path + 1)])
    b_query = len(pool.items)
    pool.table(
        [
            ((query_first if k == 0 else b"&") + escape(names[k]) + b"=") if k < len(names) else b""
            for names in m.query_names
            for k in range(n_query)
        ]
    )
    b_choice = len(pool.items)
    longest = pool.table([escape(c) for c in m.choices])
    del S
    return b_piece, b_query, b_choice, longest


def param_kinds(m: Model) -> npt.NDArray[np.int8]:
    """[slots, S] PARAM_* of slot j in state s (what :func:`_path` and :func:`_query` read)."""
    kinds = np.zeros((max(1, len(m.slots)), m.n_states), np.int8)
    for j, slot in enumerate(m.slots):
        kinds[j] = slot.kind
    return kinds


def kernel_columns(batch: EventBatch) -> dict[str, npt.NDArray[Any]]:
    """The batch's columns as the kernels take them: contiguous, of the dtypes ``COLUMNS`` declares (booleans
    as uint8, the fault masks as int64 bits), converted once per batch and shared by every encoder."""
    hit: dict[str, npt.NDArray[Any]] | None = batch.__dict__.get("_kernel_columns")
    if hit is None:
        hit = {}
        for name, dtype in BATCH_COLUMNS.items():
            x = batch.cols[name]
            if dtype is np.bool_:
                hit[name] = col(x, np.bool_).view(np.uint8)
            elif dtype is np.uint64:
                hit[name] = col(x, np.uint64).view(np.int64)
            else:
                hit[name] = col(x, dtype)
        batch.__dict__["_kernel_columns"] = hit
    return hit


def params_of(batch: EventBatch) -> I64:
    """The batch's parameter values as the writers read them ([slots, n] int64, C order)."""
    p = batch.params
    if p.shape[0] == 0:
        return np.zeros((1, max(1, len(batch))), np.int64)
    return col(p, np.int64)


# ------------------------------------------------------------------ columnar strings

COLUMNS = ("event_id", "session_id", "trace_id", "span_id", "timestamp", "user_id", "path")
"""The string columns :func:`render_strings` makes (in this order in its buffers)."""


@dataclass(frozen=True)
class PathTables:
    pool: U8
    off: I64
    kinds: npt.NDArray[np.int8]
    b_piece: int
    b_query: int
    b_choice: int
    b_empty: int
    longest: int  # bytes of the longest string in the pool


def raw_tables(m: Model) -> PathTables:
    """The path tables with strings as they are (UTF-8, unescaped): for OTLP and Arrow."""
    hit: PathTables | None = m.__dict__.get("_raw_path_tables")
    if hit is None:
        pool = PoolBuilder()
        b_piece, b_query, b_choice, _ = path_tables(pool, m, str.encode, b"?")
        b_empty = len(pool.items)
        pool.table([b""])
        data, off, _ = pool.build()
        longest = max([0, *(len(x) for x in pool.items)])
        hit = m.__dict__["_raw_path_tables"] = PathTables(
            data, off, param_kinds(m), b_piece, b_query, b_choice, b_empty, longest
        )
    return hit


@_jit
def _render_kernel(
    data: U8,
    offsets: I64,
    want: I64,
    t: I64,
    sess: I64,
    seq: Any,
    attempt: Any,
    user: I64,
    state: Any,
    params_arr: I64,
    kinds_arr: Any,
    keys: I64,
    pool_arr: U8,
    off_arr: I64,
    n_path: int,
    n_query: int,
    b_piece: int,
    b_query: int,
    b_choice: int,
    b_empty: int,
    user_width: int,
    start_us: int,
    dummy_arr: U8,
) -> int:
    """Column c (where ``want[c]``) of every event into ``data``, column after column; ``offsets[c, i]`` is
    where event i's string starts (``offsets[c, n]`` where the column ends). Returns the bytes written."""
    n = len(t)
    out = _addr(data)
    pool = _addr(pool_arr)
    off = _addr(off_arr)
    params = _addr(params_arr)
    kinds = _addr(kinds_arr)
    dummy = _addr(dummy_arr)
    n_states = kinds_arr.shape[1]
    o = out
    k_event, k_hi, k_lo, k_span, k_session = keys[0], keys[1], keys[2], keys[3], keys[4]
    for c in range(7):
        if not want[c]:
            continue
        last_sec = -(1 << 62)
        w0, w1, w2 = 0, 0, 0
        for i in range(n):
            offsets[c, i] = o - out
            if c == 4:
                us = t[i] + start_us
                sec = us // 1_000_000
                if sec != last_sec:
                    last_sec = sec
                    w0, w1, w2 = _second(sec)
                o = _stamp(o, us, sec, w0, w1, w2)
            elif c == 5:
                _st8(o, 0x2D72657375)  # "user-"
                o = _dec(o + 5, user[i], user_width)
            elif c == 6:
                s = int(state[i])
                o = _path(o, s, i, n, params, kinds, n_states, n_path, pool, off, b_piece, b_choice, b_empty, dummy)
                o = _query(
                    o, s, i, n, params, kinds, n_states, n_path, n_query, pool, off, b_query, b_choice, b_empty, dummy
                )
            elif c == 1:
                o = _hex(o, _mix64(sess[i], k_session))
            else:
                ek = _event_key(sess[i], int(seq[i]), int(attempt[i]))
                if c == 0:
                    o = _hex(o, _mix64(ek, k_event))
                elif c == 2:
                    o = _hex(_hex(o, _mix64(ek, k_hi)), _mix64(ek, k_lo))
                else:
                    o = _hex(o, _mix64(ek, k_span))
        offsets[c, n] = o - out
    return o - out  # type: ignore[no-any-return]


def render_strings(batch: EventBatch, names: tuple[str, ...] = COLUMNS) -> dict[str, tuple[U8, I64]]:
    """The batch's string columns ``names`` (of :data:`COLUMNS`), each as (UTF-8 data, n + 1 offsets): the
    layout of an Arrow string array, what a columnar sink hands to its library without a copy per value."""
    n = len(batch)
    ctx: RunContext = batch.ctx
    tb = raw_tables(ctx.model)
    want = np.array([name in names for name in COLUMNS], np.int64)
    unknown = set(names) - set(COLUMNS)
    if unknown:
        raise KeyError(f"no string column {sorted(unknown)[0]!r} (known: {', '.join(COLUMNS)})")
    params = params_of(batch)
    per_event = 16 + 16 + 32 + 16 + 27 + 5 + INT_MAX + 2 * (tb.longest + INT_MAX) * (params.shape[0] + 1)
    size = n * per_event + SLACK
    data = buffer("render", size)
    offsets = np.zeros((len(COLUMNS), n + 1), np.int64)
    dummy = buffer("render_dummy", 64 + 32 * (tb.longest // 32 + 2) + SLACK)
    k = kernel_columns(batch)
    used = _render_kernel(
        data,
        offsets,
        want,
        k["t"],
        k["sess"],
        k["seq"],
        k["attempt"],
        k["user"],
        k["state"],
        params,
        tb.kinds,
        np.array(ctx.keys[:5], np.int64),
        tb.pool,
        tb.off,
        ctx.model.n_path_slots,
        ctx.model.n_query_slots,
        tb.b_piece,
        tb.b_query,
        tb.b_choice,
        tb.b_empty,
        ctx.user_width,
        ctx.start_us,
        dummy,
    )
    if used > size - SLACK:  # cannot happen: per_event bounds every column of an event
        raise AssertionError(f"string renderer overran its buffer ({used} > {size - SLACK} bytes)")
    out = {}
    for j, name in enumerate(COLUMNS):
        if want[j]:
            lo, hi = int(offsets[j, 0]), int(offsets[j, n])
            out[name] = (data[lo:hi].copy(), offsets[j] - lo)
    return out
