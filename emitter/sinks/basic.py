"""Small sinks: standard output, files (``.gz`` compresses), null (encode and discard), memory (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import sys
import urllib.parse
from pathlib import Path
from typing import IO, Any, BinaryIO

from ..core.batch import EventBatch
from ..encode.jsonl import encode_jsonl
from ..errors import ConfigError
from .base import Sink, SinkError

__all__ = ["FileSink", "MemorySink", "NullSink", "StdoutSink", "jsonl_of"]


def jsonl_of(batch: EventBatch) -> bytes:
    """The batch's JSON lines, encoded once and shared by every sink that wants them."""
    cached = batch.__dict__.get("_jsonl")
    if cached is None:
        cached = batch.__dict__["_jsonl"] = encode_jsonl(batch)
    return cached


class _StreamSink(Sink):
    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri
        self._out: IO[bytes] | gzip.GzipFile | None = None

    def _write(self, batch: EventBatch) -> None:
        data = jsonl_of(batch)
        n = len(batch)
        self.stats.sent += n
        if self._out is None:
            raise SinkError(f"{self.name}: send() before start()")
        try:
            self._out.write(data)
        except BrokenPipeError:
            self.stats.failed += n
            raise SinkError(f"{self.name}: the reading end of the pipe closed") from None
        except OSError as exc:
            self.stats.failed += n
            raise SinkError(f"{self.name}: write failed: {exc.strerror}") from None
        self.stats.acked += n
        self.stats.bytes += len(data)

    async def send(self, batch: EventBatch) -> None:
        self._write(batch)


class StdoutSink(_StreamSink):
    """JSON lines on standard output (the default sink)."""

    def __init__(self, uri: str = "stdout", stream: BinaryIO | None = None) -> None:
        super().__init__(uri)
        self._stream = stream

    async def start(self) -> None:
        self._out = self._stream if self._stream is not None else sys.stdout.buffer
        await super().start()

    async def flush(self) -> None:
        if self._out is not None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                self._out.flush()


class FileSink(_StreamSink):
    """JSON lines into a file; a ``.gz`` name writes gzip (reproducible: no name or time in its header)."""

    def __init__(self, uri: str, path: Path, *, level: int = 6, append: bool = False) -> None:
        super().__init__(uri)
        self.path = path
        self.level = level
        self.append = append
        self._raw: BinaryIO | None = None

    async def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._raw = open(self.path, "ab" if self.append else "wb", buffering=1 << 20)  # noqa: SIM115, ASYNC230 - opening is quick
        except OSError as exc:
            raise ConfigError.one("--sink", (self.uri,), f"cannot open {str(self.path)!r}: {exc.strerror}") from None
        if self.path.suffix == ".gz":
            self._out = gzip.GzipFile(
                filename="",
                mode="ab" if self.append else "wb",
                fileobj=self._raw,
                compresslevel=self.level,
                mtime=0,
            )
        else:
            self._out = self._raw
        await super().start()

    async def send(self, batch: EventBatch) -> None:
        self._write(batch)
        if len(batch) > 50_000:
            await asyncio.sleep(0)

    async def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    async def _close(self) -> None:
        if self._out is not None and self._out is not self._raw:
            self._out.close()
        if self._raw is not None:
            self._raw.close()
        self._out = self._raw = None


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
