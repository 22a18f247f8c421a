"""A Kafka reader that fetches raw record batches and finds keys and values with compiled code.

aiokafka and confluent-kafka build a Python record object (with its headers) per record, which costs
~5.5-7 us a record in the validator. ``RawReader`` skips that: it uses aiokafka's low-level
``AIOKafkaClient`` for bootstrap, metadata and ListOffsets, and sends its own Fetch requests (v4..v11,
the newest both sides know; aiokafka's request structs) whose responses it keeps as the one buffer read
from the socket. A numba kernel walks the record batches (format v2) in it and returns, per record,
where its value and key start and how long they are, its offset and its partition: a ``RawBatch``.
Python objects are only made when the caller asks for them (``values()``, ``keys()``, ``pairs()``).

* no consumer group: every partition of the topic, from the earliest (or latest) offset, nothing
  committed; offsets are tracked here, per partition.
* one Fetch request per leader broker for all its partitions (32 MB a response, 8 MB a partition,
  their order rotated); the next request goes out as soon as the previous response's batch headers
  are read, so the broker works while this one is parsed and consumed; at most ``prefetch`` parsed
  responses wait for the caller.
* PLAINTEXT: a thread per leader broker fetches on a blocking socket of its own, reading a whole
  response with one ``recv_into`` and parsing it with the GIL released, so fetching goes on while the
  caller's event loop is busy. SSL or SASL: the fetches go through aiokafka's connections, on the
  caller's event loop.
* NOT_LEADER and friends refresh the metadata and move the partition; OFFSET_OUT_OF_RANGE resets it
  to the earliest (or latest) offset, as ``auto.offset.reset`` would; partitions added later are read
  from their start.
* control batches (transaction markers) and records below the fetched offset are skipped; aborted
  transactional records are returned (read_uncommitted, as the other readers). CRCs are not checked.
* compressed batches are inflated (gzip from the standard library; snappy, lz4 and zstd through
  aiokafka's codecs, which need cramjam), then parsed the same way.

Without numba (or with ``EMITTER_NO_NUMBA`` set) the same kernels run as plain Python: correct, slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import numpy.typing as npt

from ..clients.kafka import KafkaSettings
from ..errors import EmitterError

__all__ = ["RawBatch", "RawReader", "parse_record_batches", "scan_record_batches"]

Pair = tuple[bytes | None, bytes | None]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

_HEADER = 61  # bytes of a v2 record batch header, up to and including the record count
_CONTROL = 0x20  # attributes bit 5: a control batch (transaction marker)
_CODECS = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
# partition errors after which the partition's leader is looked up again
_MOVED = {
    3,  # UNKNOWN_TOPIC_OR_PARTITION
    5,  # LEADER_NOT_AVAILABLE
    6,  # NOT_LEADER_OR_FOLLOWER
    9,  # REPLICA_NOT_AVAILABLE
    13,  # NETWORK_EXCEPTION
    56,  # KAFKA_STORAGE_ERROR
    74,  # FENCED_LEADER_EPOCH
    75,  # UNKNOWN_LEADER_EPOCH
    100,  # UNKNOWN_TOPIC_ID
}
_OUT_OF_RANGE = 1
EARLIEST, LATEST = -2, -1


# ---- the kernels: plain Python, compiled by numba when it is there -----------------------------------

_NUMBA = not os.environ.get("EMITTER_NO_NUMBA")
_jitable: Callable[[Any], Any]
if _NUMBA:
    try:
        from numba.extending import register_jitable as _jitable
    except (ImportError, RuntimeError, OSError):
        _NUMBA = False
if not _NUMBA:

    def _jitable(f: Any) -> Any:
        return f


@_jitable
def _i16(buf: Any, p: int) -> Any:
    v = (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return v - 65536 if v >= 32768 else v


@_jitable
def _i32(buf: Any, p: int) -> Any:
    v = (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3])
    return v - 4294967296 if v >= 2147483648 else v


@_jitable
def _i64(buf: Any, p: int) -> Any:
    return _i32(buf, p) * 4294967296 + (_i32(buf, p + 4) & 0xFFFFFFFF)


@_jitable
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


def _scan_py(buf: Any, start: int, end: int, min_offset: int, partition: int) -> tuple[Any, int]:
    """The complete v2 record batches in buf[start:end] (a fetch may end inside one), one row each:
    records start, batch end, base offset, last offset delta, attributes, record count, min_offset,
    partition. Status 0, or 1 at a batch of an older format (magic < 2), 2 at a corrupt length."""
    cap = 16
    tab = np.empty((cap, 8), np.int64)
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
            grown = np.empty((cap, 8), np.int64)
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
        n += 1
        p = bend
    return tab[:n], status


def _parse_py(buf: Any, tab: Any) -> tuple[Any, Any, Any, Any, Any, Any, int, int]:
    """The records of the uncompressed batches in tab (rows as _scan_py makes them, records between
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


_compiled: dict[str, Callable[..., Any]] = {}


def _kernels() -> dict[str, Callable[..., Any]]:
    if not _compiled:
        fns: dict[str, Any] = {"scan": _scan_py, "parse": _parse_py}
        if _NUMBA:
            import numba

            fns = {k: numba.njit(cache=True, nogil=True)(f) for k, f in fns.items()}
        _compiled.update(fns)
    return _compiled


def _warm() -> None:
    """Compile (or load from numba's cache) the kernels for the buffers they will see: read-only (from
    bytes) and writable (a fetch thread's)."""
    k = _kernels()
    for buf in (np.frombuffer(b"", np.uint8), np.zeros(0, np.uint8)):
        tab, _ = k["scan"](buf, 0, 0, 0, 0)
        k["parse"](buf, tab)


def _as_array(buf: Any) -> Any:
    """What the kernels read: a uint8 array (bytes as such without numba: faster to index in Python)."""
    if isinstance(buf, np.ndarray):
        return buf
    return np.frombuffer(buf, np.uint8) if _NUMBA else buf


def scan_record_batches(buf: bytes, start: int, end: int, min_offset: int = 0, partition: int = 0) -> I64:
    """The batch table of buf[start:end] (see ``_scan_py``); an EmitterError at a batch it cannot read."""
    tab, status = _kernels()["scan"](_as_array(buf), start, end, min_offset, partition)
    if status == 1:
        raise EmitterError(
            f"kafka: partition {partition} holds a record batch of an old format (magic < 2) "
            f"near offset {min_offset}: client=raw reads format v2 only (use client=confluent)"
        )
    if status == 2:
        raise EmitterError(f"kafka: partition {partition}: corrupt record batch near offset {min_offset}")
    out: I64 = tab
    return out


def parse_record_batches(buf: bytes | npt.NDArray[np.uint8], tab: I64) -> RawBatch:
    """The records of the batches in tab (compressed ones are inflated first, into a new buffer)."""
    if len(tab) and (tab[:, 4] & 7).any():
        buf, tab = _inflate(buf, tab)
    vs, vl, ks, kl, off, part, n, bad = _kernels()["parse"](_as_array(buf), tab)
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


# ---- Fetch requests whose response stays raw ----------------------------------------------------------


class _RawResponse:
    """Stands in for a Response type: aiokafka's connection hands over the frame after its header."""

    @classmethod
    def decode(cls, data: BytesIO) -> tuple[bytes, int]:
        return data.getvalue(), data.tell()  # the bytes read from the socket, not a copy


_STRUCTS: dict[int, Any] = {}


def _raw_struct(version: int) -> Any:
    if version not in _STRUCTS:
        from aiokafka.protocol import fetch

        base = getattr(fetch, f"FetchRequest_v{version}")
        _STRUCTS[version] = type(f"RawFetchRequest_v{version}", (base,), {"RESPONSE_TYPE": _RawResponse})
    return _STRUCTS[version]


class _RawFetch:
    """A Fetch request (the newest version in 4..11 the broker takes) that aiokafka's connection sends
    as any other and whose response it leaves undecoded."""

    MIN, MAX = 4, 11
    API_KEY = 1

    def __init__(self, topic: str, parts: list[tuple[int, int, int]], max_bytes: int, max_wait_ms: int) -> None:
        self.version = -1
        self.topic = topic
        self.parts = parts
        self.max_bytes = max_bytes
        self.max_wait_ms = max_wait_ms

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        from aiokafka.protocol.fetch import FetchRequest

        lo, hi = versions.get(1, (0, -1))
        v = min(hi, self.MAX)
        if v < max(lo, self.MIN):
            raise EmitterError(
                f"kafka: the broker takes Fetch v{lo}..v{hi}; client=raw speaks v{self.MIN}..v{self.MAX} "
                "(use client=confluent)"
            )
        self.version = v
        req = FetchRequest(self.max_wait_ms, 1, self.max_bytes, 0, [(self.topic, self.parts)])
        return req.build(_raw_struct(v))


def _fetch_response(raw: bytes, pos: int, version: int) -> tuple[int, list[tuple[int, int, int, int]]]:
    """A Fetch response v4..v11 after its header: (top-level error, [(partition, error, start, end)])
    with the partition's record set at raw[start:end]."""
    unpack = struct.unpack_from
    pos += 4  # throttle_time_ms
    err = 0
    if version >= 7:
        err = unpack(">h", raw, pos)[0]
        pos += 6  # error_code, session_id
    out = []
    (nt,) = unpack(">i", raw, pos)
    pos += 4
    for _ in range(nt):
        (tl,) = unpack(">h", raw, pos)
        pos += 2 + tl
        (np_,) = unpack(">i", raw, pos)
        pos += 4
        for _ in range(np_):
            part, perr = unpack(">ih", raw, pos)
            pos += 6 + 8 + 8  # partition, error, high watermark, last stable offset
            if version >= 5:
                pos += 8  # log start offset
            (na,) = unpack(">i", raw, pos)
            pos += 4 + 16 * max(na, 0)  # aborted transactions
            if version >= 11:
                pos += 4  # preferred read replica
            (size,) = unpack(">i", raw, pos)
            pos += 4
            start = pos
            pos += max(size, 0)
            if pos > len(raw):
                raise EmitterError("kafka: a Fetch response ended early")
            out.append((part, perr, start, pos))
    return err, out


# ---- a blocking connection for the fetch threads ------------------------------------------------------


def _recv_exact(sock: socket.socket, n: int) -> npt.NDArray[np.uint8]:
    buf = np.empty(n, np.uint8)
    view = buf.data
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got, socket.MSG_WAITALL)
        if k == 0:
            raise ConnectionError("the broker closed the connection")
        got += k
    return buf


class _Wire:
    """A blocking connection to one broker that only fetches, used by one thread: a whole response is
    read by one ``recv_into`` (MSG_WAITALL) into a numpy buffer, without holding the GIL."""

    def __init__(self, host: str, port: int, client_id: str, timeout_s: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=min(timeout_s, 10.0))
        try:
            self.sock.settimeout(None)  # blocking, so that MSG_WAITALL waits for the whole response
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tv = struct.pack("ll", int(timeout_s), 0)
            with contextlib.suppress(OSError):  # a dead broker: recv fails after timeout_s
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            self.client_id = client_id.encode()
            self.corr = 0
            self.versions = self._api_versions()
        except BaseException:
            self.sock.close()
            raise

    def send(self, api_key: int, version: int, body: bytes) -> int:
        self.corr = (self.corr + 1) % (1 << 31)
        head = struct.pack(">hhih", api_key, version, self.corr, len(self.client_id)) + self.client_id
        self.sock.sendall(struct.pack(">i", len(head) + len(body)) + head + body)
        return self.corr

    def recv(self, corr: int) -> npt.NDArray[np.uint8]:
        """The response frame (its correlation id first)."""
        (size,) = struct.unpack(">i", _recv_exact(self.sock, 4).data)
        buf = _recv_exact(self.sock, size)
        if struct.unpack_from(">i", buf.data, 0)[0] != corr:
            raise ConnectionError("kafka: a response does not match its request")
        return buf

    def _api_versions(self) -> dict[int, tuple[int, int]]:
        buf = self.recv(self.send(18, 0, b""))  # ApiVersions v0
        err, n = struct.unpack_from(">hi", buf.data, 4)
        if err:
            raise ConnectionError(f"kafka: ApiVersions failed (error {err})")
        return {k: (lo, hi) for k, lo, hi in struct.iter_unpack(">hhh", buf[10 : 10 + 6 * n].tobytes())}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
        self.sock.close()


# ---- the reader ---------------------------------------------------------------------------------------


class RawReader:
    """Reads every partition of ``s.topic`` without a consumer group; see the module's docstring.

    ``await poll_batch(max_records, timeout_s)`` -> a ``RawBatch`` of up to max_records records (empty when
    none came within timeout_s); ``await poll(...)`` -> [(key, value)] as the other readers (built from it);
    ``await poll_values(...)`` -> [value].

    With a PLAINTEXT cluster each leader broker is fetched from by a thread of its own on a blocking
    socket (``threads``), so fetching goes on while the caller's event loop is busy; with SSL or SASL
    the fetches go through aiokafka's connections on the caller's event loop.
    """

    def __init__(
        self,
        s: KafkaSettings,
        from_beginning: bool = True,
        *,
        fetch_max_bytes: int = 32 << 20,
        partition_max_bytes: int = 8 << 20,
        max_wait_ms: int = 100,
        prefetch: int = 2,
        threads: bool | None = None,
        io_timeout_s: float = 30.0,
    ) -> None:
        self.s = s
        self.topic = s.topic
        self.from_beginning = from_beginning
        self.fetch_max_bytes = fetch_max_bytes
        self.partition_max_bytes = partition_max_bytes
        self.max_wait_ms = max_wait_ms
        self.prefetch = max(1, prefetch)
        plain = str(s.producer.get("security_protocol", "PLAINTEXT")).upper() == "PLAINTEXT" and not s.ssl
        self.threads = plain if threads is None else threads and plain
        self.io_timeout_s = io_timeout_s
        self.client_id = str(s.producer.get("client_id", "emitter-validate"))
        self.records = 0  # handed over so far
        self.responses = 0
        self._client: Any = None
        self._lock = threading.Lock()  # guards the four below (fetch threads and the event loop)
        self._pos: dict[int, int] = {}  # partition -> next offset to fetch
        self._leader: dict[int, int | None] = {}
        self._owner: dict[int, int] = {}  # partition -> the node whose request in flight holds it
        self._reset: set[int] = set()
        self._ready: deque[RawBatch] = deque()
        self._cond = threading.Condition()  # fetch threads wait here for room in _ready
        self._data = asyncio.Event()
        self._room = asyncio.Event()
        self._refresh = asyncio.Event()
        self._error: BaseException | None = None
        self._workers: dict[int, threading.Thread | asyncio.Task[None]] = {}
        self._wires: dict[int, _Wire] = {}
        self._main: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._first: set[int] | None = None  # the partitions there when the reader started
        self._turn = 0  # rotates the partitions' order in requests (a response fills them in order)
        self._stopping = False

    # -- life cycle

    async def start(self) -> None:
        from aiokafka.client import AIOKafkaClient
        from aiokafka.errors import KafkaError

        if _NUMBA:
            await asyncio.to_thread(_warm)  # seconds the first time, not in the middle of a fetch
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._client = AIOKafkaClient(**self.s.connection_kwargs())
        try:
            await self._client.bootstrap()
            await asyncio.wait_for(self._client.add_topic(self.topic), 10)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
            raise EmitterError(
                f"kafka: cannot reach a broker at {','.join(self.s.bootstrap)}: {type(exc).__name__}"
            ) from None
        self._main = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        self._stopping = True
        with self._cond:
            self._cond.notify_all()
        for wire in list(self._wires.values()):
            wire.close()
        tasks = [t for t in (self._main, *self._workers.values()) if isinstance(t, asyncio.Task)]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for w in self._workers.values():
            if isinstance(w, threading.Thread):
                await asyncio.to_thread(w.join, self.io_timeout_s)
        self._main = None
        self._workers.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    # -- what the caller sees

    async def poll_batch(self, max_records: int, timeout_s: float) -> RawBatch:
        if not self._ready and self._error is None:
            self._data.clear()
            if not self._ready:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._data.wait(), timeout_s)
        if self._error is not None:
            err = self._error
            raise err if isinstance(err, EmitterError) else EmitterError(f"kafka: {type(err).__name__}: {err}")
        if not self._ready:
            return RawBatch.empty()
        with self._cond:
            b = self._ready[0]
            if len(b) > max_records:
                self._ready[0] = b.slice(max_records, len(b))
                b = b.slice(0, max_records)
            else:
                self._ready.popleft()
                self._cond.notify_all()
        self._room.set()
        self.records += len(b)
        return b

    async def poll(self, max_records: int, timeout_s: float) -> list[Pair]:
        return (await self.poll_batch(max_records, timeout_s)).pairs()

    def ready(self) -> bool:
        return True

    async def poll_sampled(self, max_records: int, timeout_s: float) -> tuple[list[bytes | None], list[Pair]]:
        """Every value, and one (key, value) in KEY_STEP (what the validator checks keys on)."""
        from .readers import KEY_STEP

        b = await self.poll_batch(max_records, timeout_s)
        return b.values(), list(zip(b.keys(KEY_STEP), b.values(KEY_STEP), strict=True))

    async def poll_values(self, max_records: int, timeout_s: float) -> list[bytes | None]:
        return (await self.poll_batch(max_records, timeout_s)).values()

    def positions(self) -> dict[int, int]:
        """The next offset each partition will be fetched from (records before it are fetched, not
        necessarily handed over yet)."""
        with self._lock:
            return dict(self._pos)

    # -- shared by the supervisor, the fetch threads and the fetch tasks

    def _call(self, fn: Callable[[], Any]) -> None:
        """Run fn on the event loop's thread (at once when already there)."""
        if threading.get_ident() == self._loop_thread:
            fn()
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                self._loop.call_soon_threadsafe(fn)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._call(self._data.set)

    def _claim(self, node: int) -> list[int]:
        """(Under _lock.) The partitions node leads that no other node's request holds; now node's."""
        mine = []
        for p, leader in self._leader.items():
            if leader == node and self._owner.get(p, node) == node and p not in self._reset:
                self._owner[p] = node
                mine.append(p)
        return sorted(mine)

    def _release(self, node: int, parts: list[int]) -> None:
        for p in parts:
            if self._owner.get(p) == node:
                del self._owner[p]

    def _release_all(self, node: int) -> None:
        with self._lock:
            for p in [p for p, o in self._owner.items() if o == node]:
                del self._owner[p]

    def _request(self, parts: list[int]) -> tuple[_RawFetch, dict[int, int]]:
        self._turn += 1
        k = self._turn % len(parts)
        with self._lock:
            sent = {p: self._pos[p] for p in parts[k:] + parts[:k]}
        req = _RawFetch(
            self.topic,
            [(p, o, self.partition_max_bytes) for p, o in sent.items()],
            self.fetch_max_bytes,
            self.max_wait_ms,
        )
        return req, sent

    def _digest(self, raw: Any, pos: int, version: int, sent: dict[int, int]) -> list[I64] | None:
        """Read one response's batch headers: positions move past its last complete batch, partition
        errors are noted. The batch tables, or None after a top-level error."""
        top, sets = _fetch_response(raw, pos, version)
        if top:
            self._call(self._refresh.set)
            return None
        arr = _as_array(raw)
        scan = _kernels()["scan"]
        tabs = []
        refresh = False
        with self._lock:
            for part, err, start, end in sets:
                if part not in sent or self._pos.get(part) != sent[part]:
                    continue  # moved or reset meanwhile
                if err:
                    self._partition_error(part, err)
                    refresh = True
                    continue
                if end > start:
                    tab, status = scan(arr, start, end, sent[part], part)
                    if status:
                        scan_record_batches(raw, start, end, sent[part], part)  # raises the message
                    if len(tab):
                        self._pos[part] = max(sent[part], int(tab[-1, 2] + tab[-1, 3] + 1))
                        tabs.append(tab)
        if refresh:
            self._call(self._refresh.set)
        return tabs

    def _emit(self, raw: Any, tabs: list[I64]) -> None:
        if not tabs:
            return
        batch = parse_record_batches(raw, tabs[0] if len(tabs) == 1 else np.concatenate(tabs))
        if len(batch):
            self._ready.append(batch)
            self._call(self._data.set)

    def _partition_error(self, part: int, err: int) -> None:
        """(Under _lock.)"""
        if err == _OUT_OF_RANGE:
            self._reset.add(part)
            self._leader[part] = None
        elif err in _MOVED:
            self._leader[part] = None
        else:
            from aiokafka import errors

            name = errors.for_code(err).__name__
            raise EmitterError(f"kafka: fetching {self.topic} partition {part}: {name} (error {err})")

    # -- the supervisor (event loop): metadata, start offsets, who fetches what

    async def _supervise(self) -> None:
        try:
            while True:
                await self._assign()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._refresh.wait(), 0.5)
                if self._refresh.is_set():
                    self._refresh.clear()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._client.force_metadata_update(), 10)
                    await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the caller at its next poll
            self._fail(exc)

    async def _assign(self) -> None:
        from aiokafka.structs import TopicPartition

        cluster = self._client.cluster
        parts = cluster.partitions_for_topic(self.topic)
        if not parts:
            self._refresh.set()  # not there yet: ask again
            return
        if self._first is None:
            self._first = set(parts)
        with self._lock:
            need = sorted(p for p in parts if p not in self._pos or p in self._reset)
            policy = EARLIEST if self.from_beginning else LATEST
            # where the reader starts, and after OFFSET_OUT_OF_RANGE: the policy; partitions added later: all
            ts = {p: policy if p in self._first or p in self._reset else EARLIEST for p in need}
        if need:
            got = await self._list_offsets(ts)
            with self._lock:
                for p, o in got.items():
                    self._pos[p] = o
                    self._reset.discard(p)
            if len(got) < len(need):
                self._refresh.set()
        with self._lock:
            for p in parts:
                if p in self._pos and p not in self._reset:
                    leader = cluster.leader_for_partition(TopicPartition(self.topic, p))
                    self._leader[p] = leader if leader is not None and leader >= 0 else None
            nodes = {n for n in self._leader.values() if n is not None}
        for node in sorted(nodes):
            w = self._workers.get(node)
            if w is not None and (w.is_alive() if isinstance(w, threading.Thread) else not w.done()):
                continue
            if self._stopping:
                return
            if not self.threads:
                self._workers[node] = asyncio.create_task(self._fetch_node(node))
                continue
            b = cluster.broker_metadata(node)
            if b is None:
                self._refresh.set()
                continue
            t = threading.Thread(
                target=self._wire_node, args=(node, b.host, b.port), name=f"rawkafka-fetch-{node}", daemon=True
            )
            self._workers[node] = t
            t.start()

    async def _list_offsets(self, ts: dict[int, int]) -> dict[int, int]:
        from aiokafka.errors import KafkaError
        from aiokafka.protocol.offset import OffsetRequest
        from aiokafka.structs import TopicPartition

        by_node: dict[int, list[tuple[int, int]]] = {}
        for p, t in ts.items():
            node = self._client.cluster.leader_for_partition(TopicPartition(self.topic, p))
            if node is not None and node >= 0:
                by_node.setdefault(node, []).append((p, t))
        out: dict[int, int] = {}
        for node, req in by_node.items():
            try:
                resp = await self._client.send(node, OffsetRequest(-1, 0, [(self.topic, req)]))
            except (KafkaError, OSError, TimeoutError):
                continue
            for _topic, partitions in resp.topics:
                for row in partitions:
                    part, err, offset = row[0], row[1], row[-1]
                    if err == 0:
                        out[part] = int(offset)
        return out

    # -- fetching: a thread per broker (PLAINTEXT) ...

    def _wire_node(self, node: int, host: str, port: int) -> None:
        """Fetch this broker's partitions, the next request in flight while a response is parsed."""
        parts: list[int] = []
        wire: _Wire | None = None
        try:
            wire = _Wire(host, port, self.client_id, self.io_timeout_s)
            self._wires[node] = wire
            if self._stopping:
                return
            with self._lock:
                parts = self._claim(node)
            if not parts:
                return
            req, sent = self._request(parts)
            corr = self._wire_send(wire, req)
            while True:
                raw = wire.recv(corr)
                self.responses += 1
                tabs = self._digest(raw, 4, req.version, sent)
                if tabs is None:
                    return
                if not self._wait_room():
                    return
                with self._lock:
                    nxt = self._claim(node)
                dropped = [p for p in parts if p not in nxt]
                parts = nxt
                if parts:
                    req, sent = self._request(parts)
                    corr = self._wire_send(wire, req)
                self._emit(raw, tabs)
                with self._lock:  # only now may another broker's fetcher take them: the order holds
                    self._release(node, dropped)
                if not parts:
                    return
        except OSError:  # the connection: the supervisor starts this again after a metadata refresh
            if not self._stopping:
                self._call(self._refresh.set)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller at its next poll
            self._fail(exc)
        finally:
            self._release_all(node)
            if wire is not None:
                if self._wires.get(node) is wire:
                    del self._wires[node]
                wire.close()

    def _wait_room(self) -> bool:
        """(A fetch thread.) Until fewer than ``prefetch`` batches wait for the caller; False: stopping."""
        with self._cond:
            while len(self._ready) >= self.prefetch and not self._stopping:
                self._cond.wait(0.5)
        return not self._stopping

    @staticmethod
    def _wire_send(wire: _Wire, req: _RawFetch) -> int:
        body = req.prepare(wire.versions).encode()
        return wire.send(_RawFetch.API_KEY, req.version, body)

    # -- ... or a task per broker on the event loop, through aiokafka's connections (SSL, SASL)

    async def _fetch_node(self, node: int) -> None:
        from aiokafka.errors import KafkaError

        with self._lock:
            parts = self._claim(node)
        task: asyncio.Task[Any] | None = None
        try:
            if not parts:
                return
            req, sent = self._request(parts)
            task = asyncio.create_task(self._client.send(node, req))
            while True:
                try:
                    raw, pos = await task
                except (KafkaError, OSError, TimeoutError):
                    task = None
                    self._refresh.set()
                    await asyncio.sleep(0.2)
                    return  # the supervisor starts this again once the broker is reachable
                self.responses += 1
                tabs = self._digest(raw, pos, req.version, sent)
                if tabs is None:
                    return
                while len(self._ready) >= self.prefetch:
                    self._room.clear()
                    await self._room.wait()
                with self._lock:
                    nxt = self._claim(node)
                dropped = [p for p in parts if p not in nxt]
                parts = nxt
                task = None
                if parts:
                    req, sent = self._request(parts)
                    task = asyncio.create_task(self._client.send(node, req))
                self._emit(raw, tabs)
                with self._lock:
                    self._release(node, dropped)
                if task is None:
                    return
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the caller at its next poll
            self._fail(exc)
        finally:
            if task is not None and not task.done():
                task.cancel()
            self._release_all(node)
