"""The truth channel's writer: the records of :mod:`emitter.core.truth` to ``file:PATH`` (JSON lines) or
``kafka://HOST:PORT/TOPIC`` (a compacted topic keyed by record id), before the first event."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["truth_destination", "write_truth"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def truth_destination(uri: str) -> str:
    """``uri`` when it names a place the truth can go: ``file:PATH``, ``kafka://HOST:PORT/TOPIC`` or a plain
    path; any other scheme is a ValueError (it would otherwise become a directory named after it)."""
    m = _SCHEME.match(uri)
    if m and m.group(1).lower() not in ("file", "kafka"):
        raise ValueError(f"unknown truth destination {uri!r} (expected file:PATH or kafka://HOST:PORT/TOPIC)")
    return uri


async def write_truth(uri: str, records: list[dict[str, Any]]) -> str:
    """Write the records; returns where they went (for the run's first line)."""
    try:
        truth_destination(uri)
    except ValueError as exc:
        raise ConfigError.one("--truth", (uri,), str(exc)) from None
    if uri.startswith("kafka://"):
        return await _to_kafka(uri, records)
    path = uri[5:] if uri.startswith("file:") else uri
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:  # noqa: ASYNC230 - a few records, once
            for r in records:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    except OSError as exc:
        raise ConfigError.one("--truth", (uri,), f"cannot write: {exc.strerror}") from None
    return path


async def _to_kafka(uri: str, records: list[dict[str, Any]]) -> str:
    from ..clients.kafka import parse_kafka_uri, write_compacted

    s = parse_kafka_uri(uri, source="--truth")
    keyed = [
        (
            ("manifest" if r["type"] == "manifest" else f"fault:{r['id']}").encode(),
            json.dumps(r, separators=(",", ":")).encode(),
        )
        for r in records
    ]
    await write_compacted(s, keyed, "write the truth to", "truth")
    return uri
