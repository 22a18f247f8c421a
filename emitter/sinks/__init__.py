"""Sinks carry event batches away. Each is a small lifecycle: ``start``, ``send``, ``flush``, ``stop``."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "FileSink": ".basic",
    "MemorySink": ".basic",
    "NullSink": ".basic",
    "Sink": ".base",
    "SinkStats": ".base",
    "StdoutSink": ".basic",
    "open_sink": ".base",
    "sink_schemes": ".base",
}

__all__ = ["FileSink", "MemorySink", "NullSink", "Sink", "SinkStats", "StdoutSink", "open_sink", "sink_schemes"]


def __getattr__(name: str) -> Any:  # imported on first use: importing the package stays cheap
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(where, __name__), name)
