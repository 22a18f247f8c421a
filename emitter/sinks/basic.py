"""Small sinks: standard output, files (``.gz`` compresses), null (encode and discard), memory (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import IO, Any, BinaryIO

from ..core.batch import EventBatch
from ..encode.jsonl import encode_jsonl
from ..errors import ConfigError
from .base import PipeClosed, Sink, SinkError

__all__ = ["FileSink", "MemorySink", "NullSink", "StdoutSink", "jsonl_of"]


def jsonl_of(batch: EventBatch) -> bytes:
    """The batch's JSON lines, encoded once and shared by every sink that wants them."""
    cached = batch.__dict__.get("_jsonl")
    if cached is None:
        cached = batch.__dict__["_jsonl"] = encode_jsonl(batch)
    return cached


def _write_all(fd: int, data: bytes | memoryview) -> int:
    """Write ``data`` to the file descriptor; the bytes the OS took (all of them, unless an OSError comes,
    which is raised with ``written`` set on it)."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            k = os.write(fd, view[done:])
        except InterruptedError:
            continue
        except OSError as exc:
            exc.written = done  # type: ignore[attr-defined]
            raise
        done += k
    return done


class _StreamSink(Sink):
    """JSON lines to a file descriptor, written straight to the OS (no buffer of ours in between): an event is
    acknowledged once its whole line was taken; a line cut short, and everything after it, count failed."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri
        self._fd: int | None = None
        self._stream: IO[bytes] | None = None  # an in-memory stream (tests) instead of a descriptor

    def _failure(self, exc: OSError) -> SinkError:
        if isinstance(exc, BrokenPipeError):
            return PipeClosed(f"{self.name}: the reading end of the pipe closed")
        return SinkError(f"{self.name}: write failed: {exc.strerror}")

    def _write(self, batch: EventBatch) -> None:
        self._write_lines(jsonl_of(batch), len(batch))

    def _write_lines(self, data: bytes | memoryview, n: int) -> None:
        self.stats.sent += n
        if self._stream is not None:
            self._stream.write(data)
            self.stats.acked += n
            self.stats.bytes += len(data)
            return
        if self._fd is None:
            raise SinkError(f"{self.name}: send() before start()")
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            written = getattr(exc, "written", 0)
            ok = bytes(data[:written]).count(b"\n")
            self.stats.acked += ok
            self.stats.failed += n - ok
            self.stats.bytes += written
            raise self._failure(exc) from None
        self.stats.acked += n
        self.stats.bytes += len(data)

    async def send(self, batch: EventBatch) -> None:
        self._write(batch)

    async def send_jsonl(self, data: bytes | memoryview, n: int) -> None:
        """``n`` events already encoded as JSON lines (a ``--workers`` run's merged stream)."""
        self._write_lines(data, n)


class StdoutSink(_StreamSink):
    """JSON lines on standard output (the default sink)."""

    def __init__(self, uri: str = "stdout", stream: BinaryIO | None = None) -> None:
        super().__init__(uri)
        self._given = stream

    async def start(self) -> None:
        if self._given is not None:
            try:
                self._fd = self._given.fileno()
            except (OSError, AttributeError, ValueError):
                self._stream = self._given
        else:
            with contextlib.suppress(BrokenPipeError, ValueError):
                sys.stdout.flush()
            self._fd = sys.stdout.fileno()
        await super().start()


class FileSink(_StreamSink):
    """JSON lines into a file; a ``.gz`` name writes gzip (reproducible: no name or time in its header).

    Plain files acknowledge an event once the OS took its line; a compressed file holds the tail of its
    data in the compressor until it closes, so its events are acknowledged when the file closes whole
    (until then they are pending), and all of them fail if it cannot be written to the end.
    """

    def __init__(self, uri: str, path: Path, *, level: int = 6, append: bool = False) -> None:
        super().__init__(uri)
        self.path = path
        self.level = level
        self.append = append
        self._raw: BinaryIO | None = None
        self._gz: gzip.GzipFile | None = None
        self._unconfirmed = 0  # events in the compressor, not yet known to be on disk

    async def start(self) -> None:
        try:
            if self.path.is_dir():
                raise IsADirectoryError(21, "Is a directory")  # (open() would say so only on some systems)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._raw = open(self.path, "ab" if self.append else "wb", buffering=0)  # noqa: SIM115, ASYNC230 - opening is quick
        except OSError as exc:
            raise ConfigError.one("--sink", (self.uri,), f"cannot open {str(self.path)!r}: {exc.strerror}") from None
        if self.path.suffix == ".gz":
            self._gz = gzip.GzipFile(
                filename="",
                mode="ab" if self.append else "wb",
                fileobj=_Unbuffered(self._raw.fileno()),
                compresslevel=self.level,
                mtime=0,
            )
        else:
            self._fd = self._raw.fileno()
        self._started = True

    async def send(self, batch: EventBatch) -> None:
        await self.send_jsonl(jsonl_of(batch), len(batch))

    async def send_jsonl(self, data: bytes | memoryview, n: int) -> None:
        if self._gz is None:
            self._write_lines(data, n)
        else:
            self.stats.sent += n
            try:
                self._gz.write(data)
            except OSError as exc:
                self.stats.failed += n + self._unconfirmed
                self._unconfirmed = 0
                raise self._failure(exc) from None
            self._unconfirmed += n
            self.stats.bytes += len(data)
        if n > 50_000:
            await asyncio.sleep(0)

    async def _close(self) -> None:
        failure: SinkError | None = None
        if self._gz is not None:
            try:
                self._gz.close()  # the compressor's tail and the trailer
            except OSError as exc:
                self.stats.failed += self._unconfirmed
                failure = self._failure(exc)
            else:
                self.stats.acked += self._unconfirmed
            self._unconfirmed = 0
        if self._raw is not None:
            self._raw.close()
        self._raw = self._gz = None
        self._fd = None
        if failure is not None:
            raise failure


class _Unbuffered(io.RawIOBase):
    """A descriptor as the file object GzipFile writes to: every write goes to the OS whole, or raises."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return _write_all(self._fd, b)


class NullSink(Sink):
    """Encodes every batch to JSON lines and discards the bytes (for benchmarks)."""

    uri = "null"

    async def send(self, batch: EventBatch) -> None:
        data = jsonl_of(batch)
        n = len(batch)
        self.stats.sent += n
        self.stats.acked += n
        self.stats.bytes += len(data)


class MemorySink(Sink):
    """Keeps every batch (the in-memory twin of the real sinks, for tests)."""

    uri = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[EventBatch] = []
        self.flushed = 0

    async def send(self, batch: EventBatch) -> None:
        if self._stopped:
            raise SinkError("memory: send() after stop()")
        self.batches.append(batch)
        self.stats.sent += len(batch)
        self.stats.acked += len(batch)

    async def flush(self) -> None:
        self.flushed += 1

    def events(self) -> list[dict[str, Any]]:
        """Every event as a dict (its JSON line decoded)."""
        return [json.loads(line) for line in self.jsonl().splitlines()]

    def jsonl(self) -> bytes:
        return b"".join(jsonl_of(b) for b in self.batches)


def _query(uri: str) -> tuple[str, dict[str, list[str]]]:
    base, _, q = uri.partition("?")
    return base, urllib.parse.parse_qs(q, keep_blank_values=True)


def stdout_sink(uri: str, options: dict[str, Any]) -> Sink:
    return StdoutSink(uri)


def null_sink(uri: str, options: dict[str, Any]) -> Sink:
    return NullSink()


def file_sink(uri: str, options: dict[str, Any]) -> Sink:
    base, q = _query(uri)
    path = base.split(":", 1)[1] if ":" in base else ""
    if path.startswith("//"):
        path = path[2:]
    if not path:
        raise ConfigError.one("--sink", (uri,), "file sink needs a path: file:PATH (for example file:out.jsonl)")
    level = 6
    if "level" in q:
        text = q["level"][-1]
        level = int(text) if text.isdigit() else -1
        if not 0 <= level <= 9:
            raise ConfigError.one("--sink", (uri, "level"), f"expected 0-9, got {text!r}")
    append = q.get("append", ["false"])[-1].lower() in ("1", "true", "yes")
    return FileSink(uri, Path(path), level=level, append=append)
