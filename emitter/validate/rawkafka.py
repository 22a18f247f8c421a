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
  transactional records are returned (read_uncommitted, as the other readers). Every batch's CRC-32C
  is checked (:mod:`emitter.encode.kafka_records` parses the batches).
* compressed batches are inflated (gzip from the standard library; snappy, lz4 and zstd through
  aiokafka's codecs, which need cramjam), then parsed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from io import BytesIO
from typing import Any

import numpy as np
import numpy.typing as npt

from ..clients.kafka import KafkaSettings, unreachable_text
from ..encode.kafka_records import RawBatch, _warm, parse_record_batches, scan_record_batches
from ..errors import EmitterError
from .readers import KEY_STEP

__all__ = ["RawBatch", "RawReader"]

Pair = tuple[bytes | None, bytes | None]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

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
        from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

        await asyncio.to_thread(_warm)  # seconds the first time, not in the middle of a fetch
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._client = AIOKafkaClient(**self.s.connection_kwargs())
        try:
            await self._client.bootstrap()
            await asyncio.wait_for(self._client.add_topic(self.topic), 10)
            if self.topic in self._client.cluster.unauthorized_topics:
                raise TopicAuthorizationFailedError(self.topic)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
            raise EmitterError((await unreachable_text(self.s, exc, "read", f"topic {self.topic!r}"))[1]) from None
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
                    tab = scan_record_batches(raw, start, end, sent[part], part)
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
