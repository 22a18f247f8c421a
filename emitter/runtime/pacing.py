"""Speeds and clocks. Pacing is a swap of the clock: the core always runs on virtual time."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["Clock", "MonotonicClock", "Speed", "parse_speed"]


@dataclass(frozen=True)
class Speed:
    """``factor`` simulated seconds per wall second; ``None`` means as fast as possible (no waiting)."""

    factor: float | None

    @property
    def paced(self) -> bool:
        return self.factor is not None

    def __str__(self) -> str:
        if self.factor is None:
            return "max"
        return "realtime" if self.factor == 1.0 else f"{self.factor:g}x"


def parse_speed(text: str) -> Speed:
    t = text.strip().lower()
    if t == "max":
        return Speed(None)
    if t in ("realtime", "real-time", "1", "1x"):
        return Speed(1.0)
    try:
        f = float(t[:-1] if t.endswith("x") else t)
    except ValueError:
        raise ValueError(f"expected realtime, max or a positive factor such as 60, got {text!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"expected a positive factor, got {text!r}")
    return Speed(f)


class Clock:
    """Wall time for pacing; tests substitute a fake one."""

    def now(self) -> float:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError


class MonotonicClock(Clock):
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        import asyncio  # (here, not at the top: checking a file needs no event loop)

        await asyncio.sleep(seconds)
