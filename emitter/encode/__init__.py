"""Encoders: columnar event batches to bytes, one compiled kernel per wire format (JSON lines, OTLP
protobuf; the Kafka record-batch reader reads the other way), the per-event strings rendered in one layer."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "OtlpRequest": ".otlp",
    "encode_jsonl": ".jsonl",
    "encode_otlp": ".otlp",
    "render_strings": ".render",
}

__all__ = ["OtlpRequest", "encode_jsonl", "encode_otlp", "render_strings"]


def __getattr__(name: str) -> Any:  # imported on first use: importing the package stays cheap
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(where, __name__), name)
