"""Where the validator reads events from: files (plain or gzip) and standard input; Kafka lives in ``kafka``."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ..errors import ConfigError
from .assemble import Assembler, ObservedEvent

__all__ = ["feed_lines", "read_file_source"]

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


def _open_lines(spec: str) -> Iterator[bytes]:
    if spec == "-":
        yield from sys.stdin.buffer
        return
    path = spec[5:] if spec.startswith("file:") else spec
    p = Path(path)
    try:
        raw = p.open("rb")
    except FileNotFoundError:
        raise ConfigError.one("--source", (spec,), "file not found") from None
    except OSError as exc:
        raise ConfigError.one("--source", (spec,), f"cannot read: {exc.strerror}") from None
    with raw:
        head = raw.read(2)
        raw.seek(0)
        if head == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw) as gz:
                yield from gz
        else:
            yield from raw


def read_file_source(asm: Assembler, spec: str) -> int:
    try:
        return feed_lines(asm, _open_lines(spec))
    except (OSError, EOFError) as exc:
        raise ConfigError.one("--source", (spec,), f"read failed: {exc}") from None
