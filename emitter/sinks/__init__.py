"""Sinks carry event batches away. Each is a small lifecycle: ``start``, ``send``, ``flush``, ``stop``."""

from .base import Sink, SinkStats, open_sink, sink_schemes
from .basic import FileSink, MemorySink, NullSink, StdoutSink

__all__ = [
    "FileSink",
    "MemorySink",
    "NullSink",
    "Sink",
    "SinkStats",
    "StdoutSink",
    "open_sink",
    "sink_schemes",
]
