"""JSON lines from columnar batches: one compiled loop writes every event once into an output buffer.

What an event's line holds that depends on one small column only is prepared whole in the pool: per
state ``,"endpoint":"<route>","path":"`` and ``","method":"…","service":"…","status_code":``, per user type,
per (end reason, anomalous), per role. The kernel copies those with 32-byte vector moves and writes the
rest with :mod:`.render`'s writers (ids made in registers, numbers eight digits at a time, timestamps
from the words of their second). It hardly branches on the data: a line's pieces change from one event
to the next in ways a branch predictor cannot guess.

Lines are ``json.dumps(event, ensure_ascii=False, separators=(",", ":"))`` of the event-v1 schema, keys in
its order; ``tests/oracles.py`` builds the events independently and the tests hold every line to them.
The kernel is compiled on first use (a few seconds) or loaded from numba's on-disk cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..core.batch import ROLES, SCHEMA_VERSION, EventBatch, RunContext
from ..core.model import END_REASONS, Model
from ._native import SLACK, PoolBuilder, _addr, _jit, _put, _st1, _st8, buffer
from .render import (
    INT_MAX,
    _dec,
    _digits8,
    _event_key,
    _faults,
    _hex,
    _mix64,
    _path,
    _query,
    _second,
    _stamp,
    kernel_columns,
    param_kinds,
    params_of,
    path_tables,
)

__all__ = ["encode_jsonl"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

# constant pieces (table B_CONST)
C_HEAD, C_RUN, C_SESSION, C_USER, C_ATTEMPT, C_LATENCY, C_SPAN, C_EOL = range(8)


def _json_str(s: str) -> bytes:
    """``s`` as it appears inside a JSON string written with ``ensure_ascii=False``."""
    return json.dumps(s, ensure_ascii=False).encode()[1:-1]


@dataclass(frozen=True)
class Tables:
    """Everything the kernel looks up: a byte pool, string offsets into it, table bases, sizes."""

    pool: U8  # with SLACK zero bytes at the end
    off: I64  # string k is pool[off[k]:off[k + 1]]
    base: I64  # index of the first string of each table (see build_tables)
    kinds: npt.NDArray[np.int8]  # [slots, S] PARAM_* of slot j in state s
    n_fault: int
    bound: int  # bytes an event takes at most
    dummy: int  # bytes of the area where the kernel drops writes it does not want


def build_tables(m: Model, ctx: RunContext) -> Tables:
    """The kernel's tables for one model and run (the run id and the fault ids come from the run)."""
    P = PoolBuilder()
    S = m.n_states
    consts = [b""] * 8
    consts[C_HEAD] = b'{"schema_version":' + str(SCHEMA_VERSION).encode() + b',"event_id":"'
    consts[C_RUN] = b'","run_id":"' + _json_str(ctx.run_id) + b'","timestamp":"'
    consts[C_SESSION] = b'","session_id":"'
    consts[C_USER] = b'","user_id":"user-'
    consts[C_ATTEMPT] = b',"attempt":'
    consts[C_LATENCY] = b',"latency_ms":'
    consts[C_SPAN] = b'","span_id":"'
    consts[C_EOL] = b'"}\n'
    base = [len(P.items)]
    P.table(consts)
    bound = sum(len(c) for c in consts)
    bound += 16 * 5 + 27  # hex ids, timestamp
    bound += max(ctx.user_width, INT_MAX) + 3 * INT_MAX + (INT_MAX + 4)  # user, seq, attempt, status, latency
    base.append(len(P.items))
    bound += P.table([b'","user_type":"' + u + b'","seq":' for u in m.j_user_types])
    base.append(len(P.items))
    bound += P.table([b',"endpoint":"' + m.j_route[s] + b'","path":"' for s in range(S)])
    b_piece, b_query, b_choice, longest_choice = path_tables(P, m, _json_str, b"?")
    base += [b_piece, b_query, b_choice]
    bound += max(sum(len(_json_str(p)) for p in pieces) for pieces in m.path_pieces)
    bound += max([0, *(len(_json_str(q)) + 2 for names in m.query_names for q in names)]) * m.n_query_slots
    bound += len(m.slots) * max(INT_MAX, longest_choice)
    base.append(len(P.items))
    bound += P.table(
        [b'","method":"' + m.j_method[s] + b'","service":"' + m.j_service[s] + b'","status_code":' for s in range(S)]
    )
    # (end reason, anomalous): entry 2 * end + anomalous
    base.append(len(P.items))
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
    base.append(len(P.items))
    P.table(faults)
    bound += sum(len(f) + 1 for f in faults)
    base.append(len(P.items))
    bound += P.table([b'],"role":"' + _json_str(r) + b'"},"trace_id":"' for r in ROLES])
    base.append(len(P.items))
    P.table([b""])
    pool, off, _ = P.build()
    dummy = 64 + 32 * (longest_choice // 32 + 2) + SLACK
    return Tables(pool, off, np.array(base, np.int64), param_kinds(m), len(faults), bound, dummy)


def tables_for(ctx: RunContext) -> Tables:
    """:func:`build_tables`, cached on the model (for the latest run id and fault ids)."""
    m = ctx.model
    key = (ctx.run_id, ctx.fault_ids, ctx.user_width)
    hit: tuple[object, Tables] | None = m.__dict__.get("_jsonl_tables")
    if hit is None or hit[0] != key:
        hit = m.__dict__["_jsonl_tables"] = (key, build_tables(m, ctx))
    return hit[1]


@_jit
def _encode_kernel(
    out_arr: U8,
    dummy_arr: U8,
    t: I64,
    sess: I64,
    user: I64,
    utype: npt.NDArray[np.int16],
    seq: npt.NDArray[np.int32],
    attempt: npt.NDArray[np.int16],
    state: npt.NDArray[np.int16],
    status: npt.NDArray[np.int16],
    latency: I64,
    end: npt.NDArray[np.int8],
    anomalous: U8,
    faults: I64,
    role: npt.NDArray[np.int8],
    params_arr: I64,
    keys: I64,
    pool_arr: U8,
    off_arr: I64,
    base: I64,
    kinds_arr: npt.NDArray[np.int8],
    n_path: int,
    n_query: int,
    n_fault: int,
    user_width: int,
    start_us: int,
) -> int:
    """Write the lines of events ``0 .. len(t) - 1`` into ``out_arr``; the number of bytes written."""
    n = len(t)
    out = _addr(out_arr)
    pool = _addr(pool_arr)
    off = _addr(off_arr)
    params = _addr(params_arr)
    kinds = _addr(kinds_arr)
    dummy = _addr(dummy_arr)
    n_states = kinds_arr.shape[1]
    b_const, b_utype, b_head, b_piece, b_query, b_choice = base[0], base[1], base[2], base[3], base[4], base[5]
    b_tail, b_end, b_fault, b_role, b_empty = base[6], base[7], base[8], base[9], base[10]
    k_event, k_hi, k_lo, k_span, k_session = keys[0], keys[1], keys[2], keys[3], keys[4]
    o = out
    last_sec = -(1 << 62)
    w0, w1, w2 = 0, 0, 0  # YYYY-MM-DDTHH:MM:SS. of last_sec
    for i in range(n):
        s = int(state[i])
        ek = _event_key(sess[i], int(seq[i]), int(attempt[i]))
        o = _put(o, pool, off, b_const + C_HEAD)
        o = _hex(o, _mix64(ek, k_event))
        o = _put(o, pool, off, b_const + C_RUN)
        us = t[i] + start_us
        sec = us // 1_000_000
        if sec != last_sec:
            last_sec = sec
            w0, w1, w2 = _second(sec)
        o = _stamp(o, us, sec, w0, w1, w2)
        o = _put(o, pool, off, b_const + C_SESSION)
        o = _hex(o, _mix64(sess[i], k_session))
        o = _put(o, pool, off, b_const + C_USER)
        o = _dec(o, user[i], user_width)
        o = _put(o, pool, off, b_utype + int(utype[i]))
        o = _dec(o, int(seq[i]), 1)
        o = _put(o, pool, off, b_const + C_ATTEMPT)
        o = _dec(o, int(attempt[i]), 1)
        o = _put(o, pool, off, b_head + s)
        o = _path(o, s, i, n, params, kinds, n_states, n_path, pool, off, b_piece, b_choice, b_empty, dummy)
        o = _query(o, s, i, n, params, kinds, n_states, n_path, n_query, pool, off, b_query, b_choice, b_empty, dummy)
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
        o = _hex(o, _mix64(ek, k_hi))
        o = _hex(o, _mix64(ek, k_lo))
        o = _put(o, pool, off, b_const + C_SPAN)
        o = _hex(o, _mix64(ek, k_span))
        o = _put(o, pool, off, b_const + C_EOL)
    return o - out  # type: ignore[no-any-return]


def encode_jsonl(batch: EventBatch) -> bytes:
    """The batch as JSON lines (UTF-8, one object per line, keys in the schema's order)."""
    n = len(batch)
    if n == 0:
        return b""
    ctx = batch.ctx
    tb = tables_for(ctx)
    k = kernel_columns(batch)
    out = buffer("jsonl", n * tb.bound + SLACK)
    used = _encode_kernel(
        out,
        buffer("jsonl_dummy", tb.dummy),
        k["t"],
        k["sess"],
        k["user"],
        k["utype"],
        k["seq"],
        k["attempt"],
        k["state"],
        k["status"],
        k["latency"],
        k["end"],
        k["anomalous"],
        k["faults"],
        k["role"],
        params_of(batch),
        np.array(ctx.keys[:5], np.int64),
        tb.pool,
        tb.off,
        tb.base,
        tb.kinds,
        ctx.model.n_path_slots,
        ctx.model.n_query_slots,
        tb.n_fault,
        ctx.user_width,
        ctx.start_us,
    )
    if used > n * tb.bound:  # cannot happen: the bound is an upper bound
        raise AssertionError(f"JSON-lines kernel overran its buffer ({used} > {n * tb.bound} bytes)")
    return out[:used].tobytes()
