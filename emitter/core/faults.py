"""Faults, retries and user reactions: what changes behaviour, with the truth about it.

A :class:`Fault` is an interval of time during which one service (or one endpoint) misbehaves:
``latency`` (x factor, + ms), ``errors`` (a rate of a status), ``timeout`` (calls hang; the caller gives
up after its timeout and answers 504) or ``outage`` (every call fails fast with 503). Its intensity
rises linearly over ``ramp_in``, holds, and falls over ``ramp_out``; effects scale with it.
A :class:`Dynamics` bundles the faults with the client retry policy, how users react to errors, and
the seed's per-session cascade preset. All of it is data: the engine applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CascadePreset", "Dynamics", "Fault", "Reactions", "RetryPolicy"]

KINDS = ("latency", "errors", "timeout", "outage")
MAX_FAULTS = 64  # faults are a bit mask on every event
RETRYABLE_DEFAULT = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Fault:
    id: str
    kind: str
    service: str | None = None  # target service, or
    endpoint: str | None = None  # target endpoint (its own processing)
    start_us: int = 0  # since the run's start
    duration_us: int = 0
    ramp_in_us: int = 0
    ramp_out_us: int = 0
    factor: float = 1.0  # latency: multiplies the target's own time
    add_ms: float = 0.0  # latency: adds to it
    rate: float = 1.0  # errors/timeout: probability per call at full intensity
    status: int = 503  # errors: the status returned
    hang_ms: float = 600_000.0  # timeout: how long a hung call would take if nobody gave up

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    def target_label(self) -> dict[str, str]:
        return {"service": self.service} if self.service else {"endpoint": str(self.endpoint)}

    def params(self) -> dict[str, Any]:
        if self.kind == "latency":
            return {"factor": self.factor, "add_ms": self.add_ms}
        if self.kind == "errors":
            return {"rate": self.rate, "status": self.status}
        if self.kind == "timeout":
            return {"rate": self.rate, "hang_ms": self.hang_ms}
        return {}

    def intensity(self, t: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """0 outside the interval, 1 at full strength, linear over the ramps."""
        x = np.zeros(len(t))
        inside = (t >= self.start_us) & (t < self.end_us)
        if not inside.any():
            return x
        x[inside] = 1.0
        if self.ramp_in_us > 0:
            up = inside & (t < self.start_us + self.ramp_in_us)
            x[up] = np.maximum((t[up] - self.start_us) / self.ramp_in_us, 1e-9)
        if self.ramp_out_us > 0:
            down = inside & (t >= self.end_us - self.ramp_out_us)
            x[down] = np.minimum(x[down], np.maximum((self.end_us - t[down]) / self.ramp_out_us, 1e-9))
        return x


@dataclass(frozen=True)
class RetryPolicy:
    """The client library's automatic retries of a failed API call (each try is an event, same ``seq``)."""

    max_attempts: int = 1
    backoff_ms: float = 100.0
    multiplier: float = 2.0
    max_backoff_ms: float = 10_000.0
    jitter: float = 0.2
    on: tuple[int, ...] = RETRYABLE_DEFAULT

    def backoff_us(self, attempt: npt.NDArray[np.int64], u: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        base = np.minimum(self.backoff_ms * self.multiplier ** (attempt - 1), self.max_backoff_ms)
        return np.rint(base * (1 + self.jitter * (2 * u - 1)) * 1000).astype(np.int64)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Reactions:
    """What a user does after a call finally failed: leave (``abandon``) or try again by hand (``retry``)."""

    abandon: float = 0.0
    retry: float = 0.0
    max_user_retries: int = 2
    retry_pause_s: tuple[float, float] = (1.0, 3.0)


@dataclass(frozen=True)
class CascadePreset:
    """The seed's per-session cascade: a share of sessions degrade from mid-session on."""

    rate: float = 0.0
    slow: float = 0.60
    slow_factor: tuple[float, float] = (3.0, 10.0)
    timeout: float = 0.20
    timeout_ms: tuple[float, float] = (29_000.0, 31_000.0)
    unavailable: float = 0.15
    duplicate: float = 0.30
    id: str = "cascade"


@dataclass(frozen=True)
class Dynamics:
    faults: tuple[Fault, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    reactions: Reactions = field(default_factory=Reactions)
    cascade: CascadePreset = field(default_factory=CascadePreset)

    @property
    def fault_ids(self) -> tuple[str, ...]:
        ids = tuple(f.id for f in self.faults)
        return (*ids, self.cascade.id) if self.cascade.rate > 0 else ids

    @property
    def quiet(self) -> bool:
        return (
            not self.faults
            and self.retry.max_attempts <= 1
            and self.reactions.abandon == 0
            and self.reactions.retry == 0
            and self.cascade.rate == 0
        )


def random_faults(rng: np.random.Generator, spec: dict[str, Any], horizon_us: int, start_index: int) -> list[Fault]:
    """Faults with Poisson onsets: ``rate_per_hour`` over ``[0, horizon)``, each with a drawn target,
    duration and parameters (a ``[lo, hi]`` pair is drawn uniformly)."""
    out: list[Fault] = []
    rate = spec["rate_per_hour"] / 3600e6
    t = 0.0
    i = start_index
    while True:
        t += rng.exponential(1 / rate)
        if t >= horizon_us or len(out) + start_index >= MAX_FAULTS:
            return out

        def pick(v: Any) -> float:
            return float(rng.uniform(v[0], v[1])) if isinstance(v, list | tuple) else float(v)

        targets = spec["targets"]
        tgt = targets[int(rng.integers(0, len(targets)))]
        kind = spec["kind"]
        out.append(
            Fault(
                id=f"{spec.get('id', 'random')}-{i}",
                kind=kind,
                service=tgt.get("service"),
                endpoint=tgt.get("endpoint"),
                start_us=int(t),
                duration_us=int(pick(spec["duration_s"]) * 1e6),
                ramp_in_us=int(pick(spec.get("ramp_in_s", 0)) * 1e6),
                ramp_out_us=int(pick(spec.get("ramp_out_s", 0)) * 1e6),
                factor=pick(spec.get("factor", 1.0)),
                add_ms=pick(spec.get("add_ms", 0.0)),
                rate=pick(spec.get("rate", 1.0)),
                status=int(spec.get("status", 503)),
                hang_ms=pick(spec.get("hang_ms", 600_000.0)),
            )
        )
        i += 1
