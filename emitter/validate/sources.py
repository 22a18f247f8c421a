"""Where the validator reads events from: files (JSON lines, plain or gzip; OTLP-JSON; Parquet files or a
partitioned directory of them) and standard input; Kafka lives in ``live`` and ``readers``."""

from __future__ import annotations

import gzip
import itertools
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ..errors import ConfigError
from .assemble import Assembler, ObservedEvent

__all__ = ["OBSERVED", "feed_lines", "feed_parquet", "is_parquet", "open_lines", "parquet_batches", "read_file_source"]

OBSERVED = tuple(ObservedEvent.__struct_fields__)  # the columns the validator reads

_decoder = msgspec.json.Decoder(ObservedEvent)


def feed_lines(asm: Assembler, lines: Iterator[bytes]) -> int:
    """Decode and add every line; returns how many lines were malformed (they are skipped, never fatal)."""
    bad = 0
    dec = _decoder.decode
    add = asm.add
    for line in lines:
        if not line.strip():
            continue
        try:
            ev = dec(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            bad += 1
            continue
        add(ev)
    return bad


def open_lines(spec: str, source: str = "--source") -> Iterator[bytes]:
    """The lines of a file (plain or gzip) or of standard input (``-``); problems are one-line errors
    naming ``source`` (the flag or command that gave the file)."""
    if spec == "-":
        yield from sys.stdin.buffer
        return
    path = spec[5:] if spec.startswith("file:") else spec
    p = Path(path)
    try:
        raw = p.open("rb")
    except FileNotFoundError:
        raise ConfigError.one(source, (spec,), "file not found") from None
    except OSError as exc:
        raise ConfigError.one(source, (spec,), f"cannot read: {exc.strerror}") from None
    with raw:
        head = raw.read(2)
        raw.seek(0)
        if head != b"\x1f\x8b":
            yield from raw
            return
        try:
            with gzip.GzipFile(fileobj=raw) as gz:
                yield from gz
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigError.one(source, (spec,), f"not a readable gzip file ({exc})") from None


def feed_otlp_json(asm: Assembler, lines: Iterator[bytes]) -> int:
    """The collector's file exporter output: one OTLP-JSON request per line."""
    from .otlp import Sessionizer, root_calls_from_json

    sz = Sessionizer(asm)
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            sz.add(root_calls_from_json(line))
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1
    sz.flush_all()
    return bad


SNIFF_LINES = 20


def sniff(head: list[bytes]) -> tuple[str, str]:
    """The format the first lines show, and why: the collector's OTLP-JSON output or emitter events, by the
    majority of up to SNIFF_LINES non-blank lines (one odd line does not decide); a tie is a ConfigError."""
    lines = [x for x in head if x.strip()]
    otlp = sum(1 for x in lines if x.lstrip().startswith(b'{"resourceSpans"'))
    events = len(lines) - otlp
    if otlp and events and otlp == events:
        raise ConfigError.one(
            "--source", ("--format",), f"the first {len(lines)} lines are half OTLP-JSON, half events: give --format"
        )
    fmt = "otlp-json" if otlp > events else "jsonl"
    mixed = f"{max(otlp, events)} of the first {len(lines)} lines; give --format to choose" if otlp and events else ""
    return fmt, mixed or f"by its first {len(lines)} lines"


def is_parquet(spec: str) -> bool:
    """A Parquet file (by its magic bytes) or a directory (of Parquet files, as ``partition=date`` writes)."""
    p = Path(spec[5:] if spec.startswith("file:") else spec)
    if spec == "-" or not p.exists():
        return False
    if p.is_dir():
        return True
    with p.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def parquet_batches(
    spec: str, columns: tuple[str, ...] | None = OBSERVED, source: str = "--source"
) -> Iterator[dict[str, list[object]]]:
    """Columns (the validator's by default; None: all) of a Parquet file or directory, a record batch at a
    time, as Python lists."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    p = Path(spec[5:] if spec.startswith("file:") else spec)
    try:
        ds = pads.dataset(p, format="parquet", partitioning="hive")
        cols = [c for c in (columns or ds.schema.names) if c in ds.schema.names]
        for rb in ds.to_batches(columns=cols, batch_size=65_536):
            yield {name: rb.column(name).to_pylist() for name in cols}
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError.one(source, (spec,), f"not a readable Parquet file or directory ({exc})") from None


def feed_parquet(asm: Assembler, spec: str) -> int:
    """Feed the events of a Parquet file or directory; returns how many rows were malformed (skipped)."""
    bad = 0
    for cols in parquet_batches(spec):
        names = list(cols)
        for values in zip(*cols.values(), strict=True):
            try:
                ev = msgspec.convert(dict(zip(names, values, strict=True)), ObservedEvent)
            except msgspec.ValidationError:
                bad += 1
                continue
            asm.add(ev)
    return bad


def read_file_source(asm: Assembler, spec: str, fmt: str = "auto") -> int:
    """Feed a file (or ``-``) to the assembler; returns the count of malformed lines (skipped)."""
    if fmt == "parquet" or (fmt == "auto" and is_parquet(spec)):
        if fmt == "auto":
            print("validate: format: parquet (by its magic bytes)", file=sys.stderr)
        return feed_parquet(asm, spec)
    try:
        lines = open_lines(spec)
        head = list(itertools.islice(lines, SNIFF_LINES))
        if fmt == "auto":
            fmt, why = sniff(head)
            print(f"validate: format: {fmt} ({why})", file=sys.stderr)
        chained = itertools.chain(head, lines)
        if fmt == "otlp-json":
            return feed_otlp_json(asm, chained)
        if fmt != "jsonl":
            raise ConfigError.one(
                "--format", (fmt,), "a file holds jsonl, otlp-json or parquet (otlp is for Kafka records)"
            )
        return feed_lines(asm, chained)
    except (OSError, EOFError) as exc:
        raise ConfigError.one("--source", (spec,), f"read failed: {exc}") from None
