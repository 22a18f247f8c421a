"""Faults, retries and user reactions: what changes behaviour, with the truth about it.

A fault is an interval of simulated time during which one service (or one endpoint) misbehaves. The kinds
are a typed union, one class each, holding its parameters (declared with msgspec, so that scenario files
are read straight into them), the checks no single field shows (:meth:`Fault.problems`) and its effect
on the call tree (:meth:`Fault.apply`): :class:`LatencyFault` (x factor, + ms), :class:`ErrorsFault` (a
rate of a status), :class:`TimeoutFault` (calls hang; the caller gives up after its timeout and answers
504) and :class:`OutageFault` (every call fails fast with 503). Intensity rises linearly over
``ramp_in``, holds, and falls over ``ramp_out``; effects scale with it. Adding a kind is one class here
(and its docs and tests).

:class:`RandomFaults` draws faults with Poisson onsets from the run's seed. :class:`Dynamics` bundles the
faults with the client retry policy, how users react to errors, and the seed's per-session cascade
preset. All of it is data: the engine applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import msgspec
import numpy as np
import numpy.typing as npt

from .limits import MAX_FACTOR, MAX_MS

__all__ = [
    "FAULTS",
    "FAULT_KINDS",
    "MAX_FAULTS",
    "CascadePreset",
    "Dynamics",
    "ErrorsFault",
    "Fault",
    "LatencyFault",
    "NodeState",
    "OutageFault",
    "RandomFaults",
    "Reactions",
    "RetryPolicy",
    "Target",
    "TimeoutFault",
]

MAX_FAULTS = 64  # faults are a bit mask on every event
RETRYABLE_DEFAULT = (429, 500, 502, 503, 504)
OUTAGE_US = 1_000  # a refused call fails after about a millisecond

Micros = Annotated[int, msgspec.Meta(extra={"parse": "duration_us"})]  # "90s" -> 90_000_000; > 0
OffsetMicros = Annotated[int, msgspec.Meta(extra={"parse": "offset_us"})]  # may be 0
Seconds = Annotated[float, msgspec.Meta(extra={"parse": "duration"})]
Name = Annotated[str, msgspec.Meta(extra={"parse": "name"})]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=MAX_MS)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Millis = Annotated[float, msgspec.Meta(gt=0, le=MAX_MS)]
Factor = Annotated[float, msgspec.Meta(gt=0, le=MAX_FACTOR)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1, extra={"range": "probability"})]
ErrorStatus = Annotated[int, msgspec.Meta(ge=400, le=599)]
# a value, or a [low, high] pair to draw from (lists, not tuples: msgspec 0.23's type_info crashes the
# garbage collector on unions of a constrained number and a tuple of them)
Range = NonNegative | list[NonNegative]
SecondsRange = Seconds | list[Seconds]

F64 = npt.NDArray[np.float64]


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a fault acts: one service (every call through it), or one endpoint (its own processing)."""

    WHAT: ClassVar[str] = "{service: NAME} or {endpoint: ROUTE}"

    service: str | None = None
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if (self.service is None) == (self.endpoint is None):
            raise ValueError("give exactly one of service or endpoint")

    def label(self) -> dict[str, str]:
        return {"service": self.service} if self.service else {"endpoint": str(self.endpoint)}


@dataclass
class NodeState:
    """The call tree of a step's calls while faults act on it: one row per call, one column per node."""

    own: F64  # [n, K] µs of each node's own processing
    status: npt.NDArray[np.int16]  # [n, K] the status a node answers with (0: its children decide)
    cut: npt.NDArray[np.bool_]  # [n, K] the node calls nobody (it hangs or refuses)


class Fault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """What every fault kind has: an id, a target, an interval and its ramps (times in µs from the start)."""

    WHAT: ClassVar[str] = "a fault {kind, target, start, duration, ...}"
    TAG_ERROR: ClassVar[str] = "expected one of latency, errors, timeout, outage, got {value}"
    PARAMS: ClassVar[tuple[str, ...]] = ()

    target: Target
    duration_us: Micros = msgspec.field(name="duration")
    id: Name = ""
    start_us: OffsetMicros = msgspec.field(default=0, name="start")
    ramp_in_us: OffsetMicros = msgspec.field(default=0, name="ramp_in")
    ramp_out_us: OffsetMicros = msgspec.field(default=0, name="ramp_out")

    @staticmethod
    def of(fault_id: str, kind: str, *, service: str | None = None, endpoint: str | None = None, **kw: Any) -> Fault:
        """A fault of ``kind`` by name (``Fault.of("slow", "latency", service="db", duration_us=60_000_000,
        factor=3)``): the class of that kind, with its target."""
        return FAULT_KINDS[kind](id=fault_id, target=Target(service, endpoint), **kw)

    @property
    def kind(self) -> str:
        return str(type(self).__struct_config__.tag)

    @property
    def service(self) -> str | None:
        return self.target.service

    @property
    def endpoint(self) -> str | None:
        return self.target.endpoint

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    def target_label(self) -> dict[str, str]:
        return self.target.label()

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.PARAMS}

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Problems no single field shows: (key path inside the fault, message)."""
        out: list[tuple[tuple[str, ...], str]] = []
        if self.ramp_in_us + self.ramp_out_us > self.duration_us:
            out.append(
                (
                    ("ramp_in",),
                    f"ramp_in + ramp_out ({(self.ramp_in_us + self.ramp_out_us) / 1e6:g} s) exceed the duration "
                    f"({self.duration_us / 1e6:g} s)",
                )
            )
        return out

    def intensity(self, t: npt.NDArray[np.int64]) -> F64:
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

    def apply(self, nodes: NodeState, match: npt.NDArray[np.bool_], level: F64, rng: np.random.Generator) -> None:
        """Change the matched nodes (``match`` [n, K]) at intensity ``level`` [n, K]."""
        raise NotImplementedError


class LatencyFault(Fault, frozen=True, kw_only=True, tag="latency"):
    """The target's own time x (1 + (factor - 1) * intensity) + add_ms * intensity; callers wait longer."""

    PARAMS: ClassVar[tuple[str, ...]] = ("factor", "add_ms")

    factor: Factor = 1.0
    add_ms: NonNegative = 0.0

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        out = super().problems()
        if self.factor == 1.0 and not self.add_ms:
            out.append(((), "a latency fault needs factor (other than 1) or add_ms"))
        return out

    def apply(self, nodes: NodeState, match: npt.NDArray[np.bool_], level: F64, rng: np.random.Generator) -> None:
        own = nodes.own
        nodes.own = np.where(match, own * (1 + (self.factor - 1) * level) + self.add_ms * 1000 * level, own)


class ErrorsFault(Fault, frozen=True, kw_only=True, tag="errors"):
    """With probability rate * intensity the target answers ``status``; callers pass the error up."""

    PARAMS: ClassVar[tuple[str, ...]] = ("rate", "status")

    rate: Fraction = 1.0
    status: ErrorStatus = 503

    def apply(self, nodes: NodeState, match: npt.NDArray[np.bool_], level: F64, rng: np.random.Generator) -> None:
        u = rng.random(match.shape)
        nodes.status[match & (u < self.rate * level)] = self.status


class TimeoutFault(Fault, frozen=True, kw_only=True, tag="timeout"):
    """With probability rate * intensity a call hangs ``hang_ms``; its caller gives up at its timeout (504)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("rate", "hang_ms")

    rate: Fraction = 1.0
    hang_ms: Millis = 600_000.0

    def apply(self, nodes: NodeState, match: npt.NDArray[np.bool_], level: F64, rng: np.random.Generator) -> None:
        u = rng.random(match.shape)
        h = match & (u < self.rate * level)
        nodes.own[h] = self.hang_ms * 1000
        nodes.cut |= h


class OutageFault(Fault, frozen=True, kw_only=True, tag="outage"):
    """The target refuses calls (503 after about a millisecond, with probability = intensity)."""

    def apply(self, nodes: NodeState, match: npt.NDArray[np.bool_], level: F64, rng: np.random.Generator) -> None:
        u = rng.random(match.shape)
        o = match & (u < level)
        nodes.status[o] = 503
        nodes.own[o] = OUTAGE_US
        nodes.cut |= o


FAULTS = LatencyFault | ErrorsFault | TimeoutFault | OutageFault
"""Every fault kind (the declared type of a scenario's ``faults`` entries)."""
FAULT_KINDS: dict[str, type[Fault]] = {str(c.__struct_config__.tag): c for c in FAULTS.__args__}


class RandomFaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Faults of one kind with Poisson onsets (``rate_per_hour``) over the run, each with a target drawn
    from ``targets`` and its duration and parameters drawn uniformly where a ``[low, high]`` pair is given."""

    WHAT: ClassVar[str] = "{rate_per_hour, kind, targets, duration, ...}"

    kind: str
    rate_per_hour: Annotated[float, msgspec.Meta(gt=0, le=3.6e9)]
    targets: tuple[Target, ...]
    id: Name = ""
    duration: SecondsRange = 60.0
    ramp_in: SecondsRange = 0.0
    ramp_out: SecondsRange = 0.0
    factor: Range = 1.0
    add_ms: Range = 0.0
    rate: Range = 1.0
    status: ErrorStatus = 503
    hang_ms: Range = 600_000.0

    @property
    def name(self) -> str:
        return self.id or f"random-{self.kind}"

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.kind not in FAULT_KINDS:
            out.append((("kind",), f"expected one of {', '.join(FAULT_KINDS)}, got {self.kind!r}"))
        if not self.targets:
            out.append((("targets",), "at least one target"))
        for key in ("duration", "ramp_in", "ramp_out", "factor", "add_ms", "rate", "hang_ms"):
            v = getattr(self, key)
            if isinstance(v, list) and len(v) != 2:
                out.append(((key,), f"expected a value or a [low, high] pair, got {v!r}"))
            elif isinstance(v, list) and v[1] < v[0]:
                out.append(((key,), f"high {v[1]:g} is below low {v[0]:g}"))
        for key, most in (("factor", MAX_FACTOR), ("rate", 1.0)):
            v = getattr(self, key)
            if isinstance(v, list) and len(v) != 2:
                continue  # (said above)
            hi = max(v) if isinstance(v, list) else v
            if hi > most:
                out.append(((key,), f"expected at most {most:g}, got {hi!r}"))
        return out

    def draw(self, rng: np.random.Generator, horizon_us: int, start_index: int) -> list[Fault]:
        """The faults over ``[0, horizon)``, numbered from ``start_index``: at most one more than MAX_FAULTS
        in all (a run holding more is refused by its caller, never cut short unsaid)."""
        out: list[Fault] = []
        rate = self.rate_per_hour / 3600e6
        cls = FAULT_KINDS[self.kind]
        t = 0.0
        i = start_index
        while True:
            t += rng.exponential(1 / rate)
            if t >= horizon_us or len(out) + start_index > MAX_FAULTS:
                return out

            def pick(v: float | list[float]) -> float:
                return float(rng.uniform(v[0], v[1])) if isinstance(v, list) else float(v)

            tgt = self.targets[int(rng.integers(0, len(self.targets)))]
            common: dict[str, Any] = {
                "id": f"{self.name}-{i}",
                "target": tgt,
                "start_us": int(t),
                "duration_us": int(pick(self.duration) * 1e6),
                "ramp_in_us": int(pick(self.ramp_in) * 1e6),
                "ramp_out_us": int(pick(self.ramp_out) * 1e6),
            }
            drawn: dict[str, Any] = {
                "factor": pick(self.factor),
                "add_ms": pick(self.add_ms),
                "rate": pick(self.rate),
                "status": self.status,
                "hang_ms": pick(self.hang_ms),
            }
            out.append(cls(**common, **{k: drawn[k] for k in cls.PARAMS}))
            i += 1


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The client library's automatic retries of a failed API call (each try is an event, same ``seq``)."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    backoff_ms: NonNegative = 100.0
    multiplier: Annotated[float, msgspec.Meta(gt=0, le=100)] = 2.0
    max_backoff_ms: NonNegative = 10_000.0
    jitter: Fraction = 0.2
    on: tuple[Annotated[int, msgspec.Meta(ge=400, le=599)], ...] = RETRYABLE_DEFAULT

    def backoff_us(self, attempt: npt.NDArray[np.int64], u: F64) -> npt.NDArray[np.int64]:
        base = np.minimum(self.backoff_ms * self.multiplier ** (attempt - 1), self.max_backoff_ms)
        return np.rint(base * (1 + self.jitter * (2 * u - 1)) * 1000).astype(np.int64)  # type: ignore[no-any-return]


class Reactions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a user does after a call finally failed: leave (``abandon``) or try again by hand (``retry``)."""

    RETRY_PAUSE_S: ClassVar[tuple[float, float]] = (1.0, 3.0)  # a user's pause before retrying by hand

    abandon: Fraction = 0.0
    retry: Fraction = 0.0
    max_user_retries: Annotated[int, msgspec.Meta(ge=0)] = 2

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        if self.abandon + self.retry > 1:
            return [((), f"abandon + retry = {self.abandon + self.retry:g} exceeds 1")]
        return []


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
