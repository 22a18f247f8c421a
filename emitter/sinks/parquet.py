"""Parquet files (``parquet:PATH``): the events as :mod:`emitter.encode.arrow` columns, through pyarrow.

Options in the URI's query: ``row_group_size`` (rows per row group, default 131072; every row group but the
last of a file holds exactly that many, so the same events make the same bytes however they were batched),
``compression`` (zstd, the default, snappy, gzip, lz4, brotli or none), ``level`` (the codec's level),
``labels`` (nested, the default, or flat; see :mod:`emitter.encode.arrow`) and ``partition=date``: PATH is
then a directory of ``date=YYYY-MM-DD/part-0.parquet`` files (Hive-style, one per UTC day of event time).

A Parquet file is readable only once its footer is written, so events are acknowledged when the file that
holds them closes whole (until then they are pending); if it cannot be written to the end they all fail.
Row groups are written on a worker thread (pyarrow releases the GIL), so encoding overlaps the simulation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.batch import EventBatch
from ..encode.arrow import LABELS, event_schema, record_batch
from ..errors import ConfigError
from .base import Sink, SinkError

__all__ = ["CODECS", "DEFAULT_ROW_GROUP", "ParquetSink", "parquet_sink"]

DEFAULT_ROW_GROUP = 131_072
CODECS = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")
LEVELS = {"zstd": (-7, 22), "gzip": (1, 9), "brotli": (0, 11)}  # the codecs that take a level, and its range
_DAY_US = 86_400 * 1_000_000


class ParquetSink(Sink):
    def __init__(
        self,
        uri: str,
        path: Path,
        *,
        row_group_size: int = DEFAULT_ROW_GROUP,
        compression: str = "zstd",
        level: int | None = None,
        labels: str = "nested",
        partition: str | None = None,
    ) -> None:
        super().__init__()
        self.uri = uri
        self.path = path
        self.row_group_size = row_group_size
        self.compression = compression
        self.level = level
        self.labels = labels
        self.partition = partition
        self.schema = event_schema(labels)
        self.files: list[Path] = []  # every file written, in order
        self._writer: pq.ParquetWriter | None = None
        self._day: int | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._unconfirmed = 0  # events handed to the open file, not yet known to be on disk

    def describe(self) -> str:
        extra = f", partitioned by date under {self.path}/" if self.partition else ""
        return f"{self.name} (row groups of {self.row_group_size:,}, {self.compression}{extra})"

    async def start(self) -> None:
        try:
            if self.partition:
                self.path.mkdir(parents=True, exist_ok=True)
            else:
                if self.path.is_dir():
                    raise IsADirectoryError(21, "Is a directory")
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._open(self.path)
        except (OSError, pa.ArrowException) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError.one("--sink", (self.uri,), f"cannot open {str(self.path)!r}: {why}") from None
        self._started = True

    def _open(self, path: Path) -> None:
        codec = None if self.compression == "none" else self.compression
        self._writer = pq.ParquetWriter(
            path, self.schema, compression=codec, compression_level=self.level, write_statistics=True
        )
        self.files.append(path)

    async def send(self, batch: EventBatch) -> None:
        n = len(batch)
        if not n:
            return
        self.stats.sent += n
        if not self.partition:
            await self._add(batch, 0, n)
            return
        days = (batch.cols["t"] + batch.ctx.start_us) // _DAY_US  # events come in time order
        edges = np.flatnonzero(np.diff(days)) + 1
        for a, z in zip(np.r_[0, edges], np.r_[edges, n], strict=True):
            day = int(days[a])
            if day != self._day:
                await self._finish_file()
                self._day = day
                date = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
                folder = self.path / f"date={date}"
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    self._open(folder / "part-0.parquet")
                except OSError as exc:
                    self.stats.failed += z - a
                    raise SinkError(f"{self.name}: cannot open {str(folder)!r}: {exc.strerror}") from None
            await self._add(batch, int(a), int(z))

    async def _add(self, batch: EventBatch, a: int, z: int) -> None:
        self._pending.append(record_batch(batch.slice(a, z) if (a, z) != (0, len(batch)) else batch, self.labels))
        self._pending_rows += z - a
        self._unconfirmed += z - a
        while self._pending_rows >= self.row_group_size:
            await self._write(self.row_group_size)

    async def _write(self, rows: int) -> None:
        """Write the first ``rows`` pending rows as one row group."""
        table = pa.Table.from_batches(self._pending, self.schema)
        head, rest = table.slice(0, rows), table.slice(rows)
        self._pending = rest.to_batches()
        self._pending_rows = rest.num_rows
        writer = self._writer
        if writer is None:
            raise SinkError(f"{self.name}: send() before start()")
        try:
            await asyncio.to_thread(writer.write_table, head, row_group_size=rows)
        except (OSError, pa.ArrowException) as exc:
            self._fail()
            raise SinkError(f"{self.name}: write failed: {getattr(exc, 'strerror', None) or exc}") from None
        self.stats.bytes += head.nbytes

    def _fail(self) -> None:
        self.stats.failed += self._unconfirmed
        self._unconfirmed = 0
        self._pending, self._pending_rows = [], 0

    async def _finish_file(self) -> None:
        """Write what is pending, then the footer: the file's events are on disk (acknowledged)."""
        if self._writer is None:
            return
        if self._pending_rows:
            await self._write(self._pending_rows)
        writer, self._writer = self._writer, None
        try:
            await asyncio.to_thread(writer.close)
        except (OSError, pa.ArrowException) as exc:
            self._fail()
            raise SinkError(f"{self.name}: closing the file failed: {getattr(exc, 'strerror', None) or exc}") from None
        self.stats.acked += self._unconfirmed
        self._unconfirmed = 0

    async def _close(self) -> None:
        await self._finish_file()


def _int(q: dict[str, list[str]], uri: str, key: str, default: int | None, low: int, high: int) -> int | None:
    if key not in q:
        return default
    text = q[key][-1]
    try:
        v = int(text)
    except ValueError:
        v = low - 1
    if not low <= v <= high:
        raise ConfigError.one("--sink", (uri, key), f"expected an integer in [{low}, {high:,}], got {text!r}")
    return v


def parquet_sink(uri: str, options: dict[str, Any]) -> Sink:
    base, _, query = uri.partition("?")
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    path = base.split(":", 1)[1] if ":" in base else ""
    if path.startswith("//"):
        path = path[2:]
    if not path:
        raise ConfigError.one(
            "--sink", (uri,), "parquet sink needs a path: parquet:PATH (for example parquet:out.parquet)"
        )
    known = {"row_group_size", "compression", "level", "labels", "partition"}
    for key in q:
        if key not in known:
            raise ConfigError.one("--sink", (uri, key), f"unknown option (known: {', '.join(sorted(known))})")
    choices = {"compression": CODECS, "labels": LABELS, "partition": ("date", "none")}
    picked = {k: q[k][-1].lower() for k in choices if k in q}
    for k, v in picked.items():
        if v not in choices[k]:
            raise ConfigError.one("--sink", (uri, k), f"expected one of {', '.join(choices[k])}, got {v!r}")
    rows = _int(q, uri, "row_group_size", DEFAULT_ROW_GROUP, 1, 64 * 1024 * 1024)
    assert rows is not None
    codec = picked.get("compression", "zstd")
    if "level" in q and codec not in LEVELS:
        raise ConfigError.one("--sink", (uri, "level"), f"{codec} takes no level (zstd, gzip and brotli do)")
    low, high = LEVELS.get(codec, (0, 0))
    return ParquetSink(
        uri,
        Path(path),
        row_group_size=rows,
        compression=codec,
        level=_int(q, uri, "level", None, low, high),
        labels=picked.get("labels", "nested"),
        partition=None if picked.get("partition", "none") == "none" else "date",
    )
