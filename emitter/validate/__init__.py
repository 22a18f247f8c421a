"""The validator: rebuild sessions from a stream, learn the chain back, test it against the workflow."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "Assembler": ".assemble",
    "Counts": ".assemble",
    "Report": ".report",
    "build_report": ".report",
    "holm": ".stats",
    "pearson_gof": ".stats",
    "wilson": ".stats",
}

__all__ = ["Assembler", "Counts", "Report", "build_report", "holm", "pearson_gof", "wilson"]


def __getattr__(name: str) -> Any:  # imported on first use: importing the package stays cheap
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(where, __name__), name)
