"""The runtime: paces the core's events against a clock, fans them out to sinks, drains on stop."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "Clock": ".pacing",
    "MonotonicClock": ".pacing",
    "RunStats": ".runner",
    "Runner": ".runner",
    "Speed": ".pacing",
    "parse_speed": ".pacing",
}

__all__ = ["Clock", "MonotonicClock", "RunStats", "Runner", "Speed", "parse_speed"]


def __getattr__(name: str) -> Any:  # imported on first use: importing the package stays cheap
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(where, __name__), name)
