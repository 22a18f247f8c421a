"""Run options, declared once: the CLI, scenario files and the environment all read this table."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .runtime.pacing import Speed, parse_speed

__all__ = ["OPTIONS", "Option", "parse_duration", "parse_start"]

_DUR = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``1h30m``, ``2d``."""
    t = str(text).strip().lower()
    try:
        v = float(t)
    except ValueError:
        pos, total = 0, 0.0
        for m in _DUR.finditer(t):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise ValueError(f"expected a duration such as 90s, 5m or 1h30m, got {text!r}") from None
        v = total
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"expected a positive duration, got {text!r}")
    return v


def parse_start(text: str) -> int | None:
    """µs since the epoch from an RFC 3339 timestamp; ``now`` gives None (the caller reads the clock)."""
    t = str(text).strip()
    if t.lower() == "now":
        return None
    try:
        d = dt.datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z, got {text!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    delta = d - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _positive_int(text: str) -> int:
    try:
        v = int(str(text))
    except ValueError:
        raise ValueError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(str(text))
    except ValueError:
        raise ValueError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= v < 2**63:
        raise ValueError(f"expected a seed in [0, 2^63), got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(str(text))
    except ValueError:
        raise ValueError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return v


def _progress(text: str) -> str:
    t = str(text).lower()
    if t not in ("auto", "bar", "lines", "off"):
        raise ValueError(f"expected auto, bar, lines or off, got {text!r}")
    return t


@dataclass(frozen=True)
class Option:
    name: str  # attribute, scenario key and environment suffix (EMITTER_<NAME>)
    flag: str
    parse: Callable[[str], Any]
    help: str
    metavar: str
    repeat: bool = False


OPTIONS: tuple[Option, ...] = (
    Option(
        "seed",
        "--seed",
        _seed,
        "random seed; the same seed, options and --start give a byte-identical "
        "stream at any --speed (default: a fresh seed, printed so the run can be repeated)",
        "N",
    ),
    Option(
        "speed",
        "--speed",
        parse_speed,
        "realtime (default), a factor (simulated seconds per wall second, e.g. 60), or max (as fast as possible)",
        "SPEED",
    ),
    Option("start", "--start", parse_start, "simulated start time, RFC 3339 (default: now)", "TIMESTAMP"),
    Option(
        "sessions",
        "--sessions",
        _positive_int,
        "start this many sessions; the run ends when all have ended",
        "N",
    ),
    Option(
        "duration",
        "--duration",
        parse_duration,
        "start sessions during this much simulated time (90s, 5m, 1h30m); sessions in flight then finish",
        "D",
    ),
    Option(
        "arrival_rate",
        "--arrival-rate",
        _positive_float,
        "open model: new sessions per simulated second for the whole run, Poisson (default 10)",
        "R",
    ),
    Option(
        "users",
        "--users",
        _positive_int,
        "closed model: N concurrent users, each starting a new session a pause after the last one ended",
        "N",
    ),
    Option(
        "population",
        "--population",
        _positive_int,
        "open model: distinct users that sessions are drawn from (default 10000)",
        "N",
    ),
    Option(
        "sink",
        "--sink",
        str,
        "where events go, repeatable: stdout (default), file:PATH (.gz compresses), "
        "null, kafka://HOST:PORT/TOPIC, otlp://HOST:4317, otlp+http://HOST:4318",
        "URI",
        repeat=True,
    ),
    Option(
        "truth",
        "--truth",
        str,
        "where the ground truth goes (run manifest and fault intervals): file:PATH or kafka://HOST:PORT/TOPIC",
        "URI",
    ),
    Option(
        "progress",
        "--progress",
        _progress,
        "auto (bar on a terminal, lines otherwise), bar, lines, off",
        "MODE",
    ),
)


def option(name: str) -> Option:
    for o in OPTIONS:
        if o.name == name:
            return o
    raise KeyError(name)


__all__ += ["Speed", "option"]
