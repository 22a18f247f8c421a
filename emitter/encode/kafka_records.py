"""Kafka record batches (format v2) read by compiled code: where each record's key and value lie in a buffer.

:func:`scan_record_batches` walks a fetched record set's batch headers (one row per complete batch: its
records' span, base offset, last offset delta, attributes, record count, the lowest offset wanted, the
partition, the batch's start and its CRC) and checks each batch's CRC-32C (over attributes to the end,
as Kafka computes it); :func:`parse_record_batches` walks the records of those batches and returns a
:class:`RawBatch`, records as places in the one buffer, so that Python objects are only made when a
caller asks for them. Compressed batches are inflated first (gzip from the standard library; snappy,
lz4 and zstd through aiokafka's codecs, which need cramjam). Control batches (transaction markers) and
records below the wanted offset are skipped.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import google_crc32c
import numba
import numpy as np
import numpy.typing as npt

from ..errors import EmitterError

__all__ = ["RawBatch", "parse_record_batches", "scan_record_batches", "verify_crcs"]

Pair = tuple[bytes | None, bytes | None]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

_HEADER = 61  # bytes of a v2 record batch header, up to and including the record count
_CONTROL = 0x20  # attributes bit 5: a control batch (transaction marker)
_CODECS = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_njit = numba.njit(cache=True, nogil=True)


@_njit
def _i16(buf: Any, p: int) -> Any:
    v = (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return v - 65536 if v >= 32768 else v


@_njit
def _i32(buf: Any, p: int) -> Any:
    v = (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3])
    return v - 4294967296 if v >= 2147483648 else v


@_njit
def _i64(buf: Any, p: int) -> Any:
    return _i32(buf, p) * 4294967296 + (_i32(buf, p + 4) & 0xFFFFFFFF)


@_njit
def _varint(buf: Any, p: Any, end: Any) -> tuple[Any, Any]:
    """A zigzag varint at p (not past end): (value, position after it), or (0, -1) when it runs over."""
    u: Any = 0
    shift = 0
    while p < end:
        b = np.int64(buf[p])
        p += 1
        u |= (b & 0x7F) << shift
        if b < 0x80:
            return (u >> 1) ^ -(u & 1), p
        shift += 7
        if shift > 63:
            break
    return 0, -1


@_njit
def _scan(buf: Any, start: int, end: int, min_offset: int, partition: int) -> tuple[Any, int]:
    """The complete v2 record batches in buf[start:end] (a fetch may end inside one), one row each:
    records start, batch end, base offset, last offset delta, attributes, record count, min_offset,
    partition, batch start, CRC. Status 0, or 1 at a batch of an older format (magic < 2), 2 at a corrupt
    length."""
    cap = 16
    tab = np.empty((cap, 10), np.int64)
    n = 0
    status = 0
    p = start
    while p + _HEADER <= end:
        blen = _i32(buf, p + 8)
        if blen < _HEADER - 12:
            status = 2
            break
        bend = p + 12 + blen
        if bend > end:
            break  # the fetch ends inside this batch: it comes whole with the next one
        if np.int64(buf[p + 16]) != 2:
            status = 1
            break
        if n == cap:
            cap *= 2
            grown = np.empty((cap, 10), np.int64)
            grown[:n] = tab[:n]
            tab = grown
        tab[n, 0] = p + _HEADER
        tab[n, 1] = bend
        tab[n, 2] = _i64(buf, p)
        tab[n, 3] = _i32(buf, p + 23)
        tab[n, 4] = _i16(buf, p + 21)
        tab[n, 5] = _i32(buf, p + 57)
        tab[n, 6] = min_offset
        tab[n, 7] = partition
        tab[n, 8] = p
        tab[n, 9] = _i32(buf, p + 17) & 0xFFFFFFFF
        n += 1
        p = bend
    return tab[:n], status


@_njit
def _parse(buf: Any, tab: Any) -> tuple[Any, Any, Any, Any, Any, Any, int, int]:
    """The records of the uncompressed batches in tab (rows as _scan makes them, records between
    columns 0 and 1 of buf): value start, value length, key start, key length (-1: null), offset and
    partition of each record at or past its row's min_offset, in order; control batches skipped.
    Returns those arrays, the count, and 0 or 1 + the row of a corrupt batch."""
    total = 0
    for i in range(tab.shape[0]):
        if (tab[i, 4] & _CONTROL) == 0:
            total += min(tab[i, 5], tab[i, 1] - tab[i, 0])
    vs = np.empty(total, np.int64)
    vl = np.empty(total, np.int32)
    ks = np.empty(total, np.int64)
    kl = np.empty(total, np.int32)
    off = np.empty(total, np.int64)
    part = np.empty(total, np.int32)
    n = 0
    for i in range(tab.shape[0]):
        if (tab[i, 4] & _CONTROL) != 0:
            continue
        p = tab[i, 0]
        end = tab[i, 1]
        base = tab[i, 2]
        low = tab[i, 6]
        pt = tab[i, 7]
        for _ in range(min(tab[i, 5], end - p)):
            length, p = _varint(buf, p, end)
            if p < 0 or length < 6 or p + length > end:
                return vs, vl, ks, kl, off, part, n, i + 1
            rend = p + length
            p += 1  # attributes
            _, p = _varint(buf, p, rend)  # timestamp delta
            if p < 0:
                return vs, vl, ks, kl, off, part, n, i + 1
            od, p = _varint(buf, p, rend)
            if p < 0:
                return vs, vl, ks, kl, off, part, n, i + 1
            klen, p = _varint(buf, p, rend)
            kstart = p
            if p < 0 or klen > rend - p:
                return vs, vl, ks, kl, off, part, n, i + 1
            if klen > 0:
                p += klen
            vlen, p = _varint(buf, p, rend)
            if p < 0 or vlen > rend - p:
                return vs, vl, ks, kl, off, part, n, i + 1
            o = base + od
            if o >= low:
                vs[n] = p
                vl[n] = vlen
                ks[n] = kstart
                kl[n] = klen
                off[n] = o
                part[n] = pt
                n += 1
            p = rend  # the headers are skipped whole
    return vs, vl, ks, kl, off, part, n, 0


def _warm() -> None:
    """Compile (or load from numba's cache) the kernels for the buffers they will see: read-only (from
    bytes) and writable (a fetch thread's)."""
    for buf in (np.frombuffer(b"", np.uint8), np.zeros(0, np.uint8)):
        tab, _ = _scan(buf, 0, 0, 0, 0)
        _parse(buf, tab)


def _as_array(buf: Any) -> Any:
    return buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, np.uint8)


def scan_record_batches(
    buf: bytes | npt.NDArray[np.uint8], start: int, end: int, min_offset: int = 0, partition: int = 0
) -> I64:
    """The batch table of buf[start:end] (see ``_scan``); an EmitterError at a batch it cannot read."""
    tab, status = _scan(_as_array(buf), start, end, min_offset, partition)
    if status == 1:
        raise EmitterError(
            f"kafka: partition {partition} holds a record batch of an old format (magic < 2) "
            f"near offset {min_offset}: client=raw reads format v2 only (use client=confluent)"
        )
    if status == 2:
        raise EmitterError(f"kafka: partition {partition}: corrupt record batch near offset {min_offset}")
    verify_crcs(buf, tab)
    out: I64 = tab
    return out


def verify_crcs(buf: bytes | npt.NDArray[np.uint8], tab: I64) -> None:
    """Each batch's CRC-32C (attributes to the end of the batch) against the one it carries; an EmitterError
    naming the partition and offset of the first that differs (the data was damaged on its way)."""
    arr = _as_array(buf)  # (google_crc32c takes numpy views, not memoryviews: no copy)
    value = google_crc32c.value
    for row in tab.tolist():
        if value(arr[row[8] + 21 : row[1]]) != row[9]:
            raise EmitterError(
                f"kafka: partition {row[7]}: the record batch at offset {row[2]} fails its CRC check (damaged data)"
            )


def parse_record_batches(buf: bytes | npt.NDArray[np.uint8], tab: I64) -> RawBatch:
    """The records of the batches in tab (compressed ones are inflated first, into a new buffer)."""
    if len(tab) and (tab[:, 4] & 7).any():
        buf, tab = _inflate(buf, tab)
    vs, vl, ks, kl, off, part, n, bad = _parse(_as_array(buf), tab)
    if bad:
        row = tab[bad - 1]
        raise EmitterError(f"kafka: partition {row[7]}: corrupt record in the batch at offset {row[2]}")
    return RawBatch(buf, vs[:n], vl[:n], ks[:n], kl[:n], off[:n], part[:n])


def _decompress(codec: int, data: memoryview, partition: int, offset: int) -> bytes:
    if codec == 1:
        return gzip.decompress(data)
    from aiokafka import codec as ak

    name = _CODECS.get(codec)
    if name is None:
        raise EmitterError(f"kafka: partition {partition}: unknown compression codec {codec} at offset {offset}")
    if not getattr(ak, f"has_{name}")():
        raise EmitterError(
            f"kafka: partition {partition} holds {name}-compressed record batches (offset {offset}) and the "
            f"{name} codec is not installed: pip install cramjam (or read with client=confluent)"
        )
    out: bytes = getattr(ak, f"{name}_decode")(data)
    return out


def _inflate(buf: bytes | npt.NDArray[np.uint8], tab: I64) -> tuple[bytes, I64]:
    """One new buffer with every batch's records section, compressed ones inflated; tab rewritten to it."""
    mv = buf.data if isinstance(buf, np.ndarray) else memoryview(buf)
    pieces: list[bytes | memoryview] = []
    new = tab.copy()
    at = 0
    for i in range(len(tab)):
        seg: bytes | memoryview = mv[int(tab[i, 0]) : int(tab[i, 1])]
        codec = int(tab[i, 4]) & 7
        if codec and not int(tab[i, 4]) & _CONTROL:
            seg = _decompress(codec, mv[int(tab[i, 0]) : int(tab[i, 1])], int(tab[i, 7]), int(tab[i, 2]))
        new[i, 0] = at
        at += len(seg)
        new[i, 1] = at
        new[i, 4] &= ~7
        pieces.append(seg)
    return b"".join(pieces), new


# ---- what a poll returns ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Records as places in one buffer (bytes, or a uint8 array when a fetch thread read it): record i's
    value is ``buf[value_start[i]:][:value_len[i]]`` (``value_len[i] == -1``: a null value), its key
    likewise; ``offset`` and ``partition`` per record. Records of one partition are in offset order;
    partitions are interleaved by fetch."""

    buf: bytes | npt.NDArray[np.uint8]
    value_start: I64
    value_len: I32
    key_start: I64
    key_len: I32
    offset: I64
    partition: I32

    def __len__(self) -> int:
        return len(self.offset)

    @staticmethod
    def empty() -> RawBatch:
        z64: I64 = np.zeros(0, np.int64)
        z32: I32 = np.zeros(0, np.int32)
        return RawBatch(b"", z64, z32, z64, z32, z64, z32)

    def slice(self, a: int, b: int) -> RawBatch:
        """Records a..b-1 (views, the same buffer)."""
        return RawBatch(
            self.buf,
            self.value_start[a:b],
            self.value_len[a:b],
            self.key_start[a:b],
            self.key_len[a:b],
            self.offset[a:b],
            self.partition[a:b],
        )

    @staticmethod
    def _cut(buf: bytes | npt.NDArray[np.uint8], starts: I64, lens: I32) -> list[bytes | None]:
        s = starts.tolist()
        if isinstance(buf, bytes):
            if not len(lens) or lens.min() >= 0:
                return list(map(buf.__getitem__, map(slice, s, (starts + lens).tolist())))
            return [None if ln < 0 else buf[a : a + ln] for a, ln in zip(s, lens.tolist(), strict=True)]
        mv = buf.data
        if not len(lens) or lens.min() >= 0:
            return [m.tobytes() for m in map(mv.__getitem__, map(slice, s, (starts + lens).tolist()))]
        return [None if ln < 0 else mv[a : a + ln].tobytes() for a, ln in zip(s, lens.tolist(), strict=True)]

    def values(self, step: int = 1) -> list[bytes | None]:
        """Each record's value as bytes (None for a null value); with step, records 0, step, 2*step..."""
        if step == 1:
            return self._cut(self.buf, self.value_start, self.value_len)
        return self._cut(self.buf, self.value_start[::step], self.value_len[::step])

    def keys(self, step: int = 1) -> list[bytes | None]:
        """Each record's key (as values())."""
        if step == 1:
            return self._cut(self.buf, self.key_start, self.key_len)
        return self._cut(self.buf, self.key_start[::step], self.key_len[::step])

    def pairs(self) -> list[Pair]:
        """(key, value) per record, as the other readers' ``poll`` returns them."""
        return list(zip(self.keys(), self.values(), strict=True))
