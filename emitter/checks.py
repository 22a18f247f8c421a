"""A small collector of input problems, so every bad value in a file is reported at once, each with its path."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError, ConfigProblem

__all__ = ["Checker", "Path"]

Path = tuple[str | int, ...]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Checker:
    """Collects :class:`ConfigProblem` s for one source; :meth:`raise_if_any` ends validation."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []

    def error(self, path: Path, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, path, message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(ConfigProblem(self.source, path, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    # --- typed readers: each returns None (and records a problem) when the value is unusable ---

    def mapping(self, value: Any, path: Path, *, what: str = "a mapping") -> Mapping[Any, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.error(path, f"expected {what}, got {_show(value)}")
        return None

    def sequence(self, value: Any, path: Path) -> Sequence[Any] | None:
        if isinstance(value, list | tuple):
            return value
        self.error(path, f"expected a list, got {_show(value)}")
        return None

    def string(self, value: Any, path: Path) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.error(path, f"expected a non-empty string, got {_show(value)}")
        return None

    def number(
        self,
        value: Any,
        path: Path,
        *,
        positive: bool = False,
        non_negative: bool = False,
        unit_interval: bool = False,
    ) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(path, f"expected a number, got {_show(value)}")
            return None
        x = float(value)
        if not math.isfinite(x):
            self.error(path, f"expected a finite number, got {_show(value)}")
            return None
        if unit_interval and not 0.0 <= x <= 1.0:
            self.error(path, f"probability {_show(value)} is not in [0, 1]")
            return None
        if positive and x <= 0:
            self.error(path, f"expected a positive number, got {_show(value)}")
            return None
        if non_negative and x < 0:
            self.error(path, f"expected a number >= 0, got {_show(value)}")
            return None
        return x

    def integer(self, value: Any, path: Path, *, minimum: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected an integer, got {_show(value)}")
            return None
        if minimum is not None and value < minimum:
            self.error(path, f"expected an integer >= {minimum}, got {_show(value)}")
            return None
        return value

    def boolean(self, value: Any, path: Path) -> bool | None:
        if isinstance(value, bool):
            return value
        self.error(path, f"expected true or false, got {_show(value)}")
        return None

    def unknown_keys(self, node: Mapping[Any, Any], allowed: Sequence[str], path: Path) -> None:
        for key in node:
            if key not in allowed:
                hint = ", ".join(allowed)
                self.error((*path, str(key)), f"unknown key {_show(key)} (expected one of: {hint})")

    def probabilities(self, value: Any, path: Path, *, what: str) -> dict[str, float] | None:
        """A mapping name -> probability that sums to 1 (within 1e-6); every value in [0, 1]."""
        node = self.mapping(value, path)
        if node is None:
            return None
        out: dict[str, float] = {}
        ok = True
        for key, p in node.items():
            if not isinstance(key, str) or not key:
                self.error((*path, str(key)), f"expected a non-empty string as {what} name, got {_show(key)}")
                ok = False
                continue
            x = self.number(p, (*path, key), unit_interval=True)
            if x is None:
                ok = False
                continue
            out[key] = x
        if not out and ok:
            self.error(path, f"no {what} given")
            return None
        total = math.fsum(out.values())
        if ok and abs(total - 1.0) > 1e-6:
            self.error(path, f"probabilities sum to {total:.9g}, not 1 (within 1e-6)")
            return None
        return out if ok else None
