"""The wiring under the command line: each command as a function (run, check, validate, score)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "RunConfig": ".run",
    "build_simulation": ".run",
    "run_async": ".run",
    "run_config": ".config",
    "run_sync": ".run",
}

__all__ = ["RunConfig", "build_simulation", "run_async", "run_config", "run_sync"]


def __getattr__(name: str) -> Any:  # imported on first use: importing the package stays cheap
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(where, __name__), name)
