"""JSON lines from columnar batches, at memory speed.

Each event is laid out in a row of a byte matrix: constant parts (keys, punctuation) are broadcast, values
are written as fixed-width, NUL-padded cells (digits, hex, table lookups), and one pass drops the NULs.
No Python code runs per event. :func:`encode_jsonl_reference` is the obvious ``json.dumps`` version; the
tests hold the two to byte equality.

:func:`encode_jsonl` uses the compiled encoder of :mod:`._jsonl_numba` (several times faster) when numba
imports and ``EMITTER_NO_NUMBA`` is not set in the environment, and this numpy one otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.batch import ROLES, SCHEMA_VERSION, EventBatch
from ..core.ids import hex_ids
from ..core.model import END_REASONS, PARAM_CHOICE, PARAM_INT, PARAM_NONE, PARAM_USER, Model

__all__ = ["encode_jsonl", "encode_jsonl_numba", "encode_jsonl_numpy", "encode_jsonl_reference", "numba_encoder"]

U8 = npt.NDArray[np.uint8]
CHUNK = 8192
_POW10 = 10 ** np.arange(19, dtype=np.int64)


def encode_jsonl_reference(batch: EventBatch) -> bytes:
    return b"".join(json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for d in batch.to_dicts())


def _json_str(s: str) -> bytes:
    """``s`` as it appears inside a JSON string written with ``ensure_ascii=False``."""
    return json.dumps(s, ensure_ascii=False).encode()[1:-1]


def _table(items: Sequence[bytes]) -> U8:
    """A lookup table: row i holds items[i], NUL-padded to the longest (at least 1 byte)."""
    width = max([1, *(len(x) for x in items)])
    arr = np.zeros((max(1, len(items)), width), np.uint8)
    for i, x in enumerate(items):
        arr[i, : len(x)] = np.frombuffer(x, np.uint8)
    return arr


def digits(x: npt.NDArray[Any], width: int, *, zero_pad: bool = False) -> U8:
    """Decimal digits of non-negative integers as an (n, width) byte matrix (leading zeros NUL unless padded)."""
    x = x.astype(np.int64, copy=False)
    p = _POW10[width - 1 :: -1]
    d = (x[:, None] // p[None, :]) % 10
    out = (d + 48).astype(np.uint8)
    if not zero_pad:
        nd = 1 + (x[:, None] >= _POW10[None, 1:width]).sum(axis=1)
        out[np.arange(width)[None, :] < (width - nd)[:, None]] = 0
    return out


def _width_for(max_value: int) -> int:
    return max(1, len(str(max(0, int(max_value)))))


def timestamps(us: npt.NDArray[np.int64]) -> U8:
    """RFC 3339 UTC with microseconds (``2026-01-01T00:00:00.000000Z``), as an (n, 27) byte matrix."""
    days = us // 86_400_000_000
    rem = us - days * 86_400_000_000
    # civil-from-days (H. Hinnant), vectorised
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = y + (m <= 2)
    secs = rem // 1_000_000
    micro = rem - secs * 1_000_000
    n = len(us)
    out = np.empty((n, 27), np.uint8)
    out[:, 0:4] = digits(y, 4, zero_pad=True)
    out[:, 4] = ord("-")
    out[:, 5:7] = digits(m, 2, zero_pad=True)
    out[:, 7] = ord("-")
    out[:, 8:10] = digits(d, 2, zero_pad=True)
    out[:, 10] = ord("T")
    out[:, 11:13] = digits(secs // 3600, 2, zero_pad=True)
    out[:, 13] = ord(":")
    out[:, 14:16] = digits(secs // 60 % 60, 2, zero_pad=True)
    out[:, 16] = ord(":")
    out[:, 17:19] = digits(secs % 60, 2, zero_pad=True)
    out[:, 19] = ord(".")
    out[:, 20:26] = digits(micro, 6, zero_pad=True)
    out[:, 26] = ord("Z")
    return out


def millis(us: npt.NDArray[np.int64]) -> U8:
    """µs as a JSON number of milliseconds, exactly as Python's ``repr(us / 1000)`` writes it."""
    whole = us // 1000
    frac = us - whole * 1000
    w = _width_for(int(whole.max()) if len(whole) else 0)
    out = np.zeros((len(us), w + 4), np.uint8)
    out[:, :w] = digits(whole, w)
    out[:, w] = ord(".")
    f = digits(frac, 3, zero_pad=True)
    f[:, 2][frac % 10 == 0] = 0
    f[:, 1][frac % 100 == 0] = 0
    out[:, w + 1 : w + 4] = f
    return out


class _Layout:
    """Pieces of one line: constants (bytes) and value cells ((n, w) uint8), glued and compacted."""

    def __init__(self) -> None:
        self.pieces: list[bytes | U8] = []

    def const(self, b: bytes) -> None:
        if self.pieces and isinstance(self.pieces[-1], bytes):
            self.pieces[-1] = self.pieces[-1] + b
        else:
            self.pieces.append(b)

    def cell(self, m: U8) -> None:
        self.pieces.append(m)

    def render(self, n: int) -> bytes:
        width = sum(len(p) if isinstance(p, bytes) else p.shape[1] for p in self.pieces)
        mat = np.empty((n, width), np.uint8)
        o = 0
        for p in self.pieces:
            if isinstance(p, bytes):
                mat[:, o : o + len(p)] = np.frombuffer(p, np.uint8)
                o += len(p)
            else:
                mat[:, o : o + p.shape[1]] = p
                o += p.shape[1]
        out: bytes = mat[mat != 0].tobytes()
        return out


class _Tables:
    """Per-model lookup tables, built once and cached on the model."""

    def __init__(self, m: Model) -> None:
        self.route = _table(m.j_route)
        self.method = _table(m.j_method)
        self.service = _table(m.j_service)
        self.user_type = _table(m.j_user_types)
        self.end = _table(
            [
                b'false,"end_reason":null' if r is None else b'true,"end_reason":"' + r.encode() + b'"'
                for r in END_REASONS
            ]
        )
        self.anomalous = _table([b"false", b"true"])
        self.role = _table([r.encode() for r in ROLES])
        self.choices = _table([c.encode() for c in m.choices])
        # path pieces: piece k of state s (empty when the state has fewer)
        n_pieces = m.n_path_slots + 1
        self.pieces = [
            _table([(_json_str(p[k]) if k < len(p) else b"") for p in m.path_pieces]) for k in range(n_pieces)
        ]
        self.query_prefix = []
        for k in range(m.n_query_slots):
            self.query_prefix.append(
                _table(
                    [
                        ((b"?" if k == 0 else b"&") + _json_str(names[k]) + b"=") if k < len(names) else b""
                        for names in m.query_names
                    ]
                )
            )
        self.param_width = []
        for slot in m.slots:
            hi = int((slot.lo + slot.span - 1).max()) if len(slot.lo) else 1
            self.param_width.append(_width_for(max(hi, 10**12 if (slot.kind == PARAM_USER).any() else 0)))


def _tables(m: Model) -> _Tables:
    t = m.__dict__.get("_jsonl_tables")
    if t is None:
        t = m.__dict__["_jsonl_tables"] = _Tables(m)
    return t


def _fault_lists(faults: npt.NDArray[np.uint64], ids: Sequence[str]) -> U8:
    if not ids:
        return np.zeros((len(faults), 1), np.uint8)
    parts = [b'"' + _json_str(f) + b'"' for f in ids[:64]]
    width = sum(len(p) + 1 for p in parts)
    out = np.zeros((len(faults), width), np.uint8)
    o = 0
    first = np.ones(len(faults), bool)
    for b, p in enumerate(parts):
        on = (faults >> np.uint64(b)) & np.uint64(1) == 1
        comma = on & ~first
        out[comma, o] = ord(",")
        out[on, o + 1 : o + 1 + len(p)] = np.frombuffer(p, np.uint8)
        first &= ~on
        o += len(p) + 1
    return out


def _encode_chunk(b: EventBatch) -> bytes:
    m = b.ctx.model
    tb = _tables(m)
    c = b.cols
    n = len(b)
    state = c["state"]
    L = _Layout()
    L.const(b'{"schema_version":' + str(SCHEMA_VERSION).encode() + b',"event_id":"')
    L.cell(hex_ids(b.event_id))
    L.const(b'","run_id":"' + _json_str(b.ctx.run_id) + b'","timestamp":"')
    L.cell(timestamps(c["t"] + b.ctx.start_us))
    L.const(b'","session_id":"')
    L.cell(hex_ids(b.session_key))
    L.const(b'","user_id":"user-')
    L.cell(_user_digits(c["user"], b.ctx.user_width))
    L.const(b'","user_type":"')
    L.cell(tb.user_type[c["utype"]])
    L.const(b'","seq":')
    L.cell(digits(c["seq"], 5))
    L.const(b',"attempt":')
    L.cell(digits(c["attempt"], 3))
    L.const(b',"endpoint":"')
    L.cell(tb.route[state])
    L.const(b'","path":"')
    L.cell(tb.pieces[0][state])
    for j in range(m.n_path_slots):
        L.cell(_param_cell(b, j, state, tb))
        L.cell(tb.pieces[j + 1][state])
    for k in range(m.n_query_slots):
        L.cell(tb.query_prefix[k][state])
        L.cell(_param_cell(b, m.n_path_slots + k, state, tb))
    L.const(b'","method":"')
    L.cell(tb.method[state])
    L.const(b'","service":"')
    L.cell(tb.service[state])
    L.const(b'","status_code":')
    L.cell(digits(c["status"], 3))
    L.const(b',"latency_ms":')
    L.cell(millis(c["latency"]))
    L.const(b',"session_end":')
    L.cell(tb.end[c["end"]])
    L.const(b',"workflow":"' + m.j_workflow + b'","labels":{"anomalous":')
    L.cell(tb.anomalous[c["anomalous"].astype(np.int8)])
    L.const(b',"faults":[')
    L.cell(_fault_lists(c["faults"], b.ctx.fault_ids))
    L.const(b'],"role":"')
    L.cell(tb.role[c["role"]])
    L.const(b'"},"trace_id":"')
    L.cell(hex_ids(b.trace_hi))
    L.cell(hex_ids(b.trace_lo))
    L.const(b'","span_id":"')
    L.cell(hex_ids(b.span_id))
    L.const(b'"}\n')
    return L.render(n)


def _user_digits(user: npt.NDArray[Any], user_width: int) -> U8:
    """``f"{u:0{user_width}d}"``: zero-padded to ``user_width``, longer numbers in full."""
    w = max(user_width, _width_for(int(user.max())))
    out = digits(user, w, zero_pad=True)
    if w > user_width:
        nd = np.maximum(user_width, 1 + (user.astype(np.int64)[:, None] >= _POW10[None, 1:w]).sum(axis=1))
        out[np.arange(w)[None, :] < (w - nd)[:, None]] = 0
    return out


def _param_cell(b: EventBatch, slot: int, state: npt.NDArray[Any], tb: _Tables) -> U8:
    m = b.ctx.model
    sl = m.slots[slot]
    kind = sl.kind[state]
    v = b.params[slot]
    width = tb.param_width[slot]
    num = digits(np.where((kind == PARAM_INT) | (kind == PARAM_USER), v, 0), width)
    if (sl.kind == PARAM_CHOICE).any():
        ch = tb.choices[np.where(kind == PARAM_CHOICE, v, 0)]
        w = max(width, ch.shape[1])
        out = np.zeros((len(v), w), np.uint8)
        out[:, :width] = num
        is_choice = kind == PARAM_CHOICE
        out[is_choice] = 0
        out[is_choice, : ch.shape[1]] = ch[is_choice]
        num = out
    num[kind == PARAM_NONE] = 0
    return num


def encode_jsonl_numpy(batch: EventBatch) -> bytes:
    """The batch as JSON lines, by the numpy encoder (no compiler needed)."""
    n = len(batch)
    if n <= CHUNK:
        return _encode_chunk(batch) if n else b""
    return b"".join(_encode_chunk(batch.slice(i, min(n, i + CHUNK))) for i in range(0, n, CHUNK))


_numba: list[Callable[[EventBatch], bytes] | None] = []


def numba_encoder() -> Callable[[EventBatch], bytes] | None:
    """The compiled encoder, or None when numba does not import (tried once).

    (RuntimeError and OSError too: numba raises those at import when it finds no writable cache directory.)
    """
    if not _numba:
        try:
            from ._jsonl_numba import encode_jsonl_numba as fn
        except (ImportError, RuntimeError, OSError):
            _numba.append(None)
        else:
            _numba.append(fn)
    return _numba[0]


def encode_jsonl_numba(batch: EventBatch) -> bytes:
    """The batch as JSON lines, by the compiled encoder (ImportError without numba)."""
    fn = numba_encoder()
    if fn is None:
        raise ImportError("numba is not installed")
    return fn(batch)


def encode_jsonl(batch: EventBatch) -> bytes:
    """The batch as JSON lines (UTF-8, one object per line, keys in the schema's order).

    Compiled (numba) unless numba is missing or ``EMITTER_NO_NUMBA`` is set; numpy otherwise. Same bytes.
    """
    fn = None if os.environ.get("EMITTER_NO_NUMBA") else numba_encoder()
    return fn(batch) if fn is not None else encode_jsonl_numpy(batch)
