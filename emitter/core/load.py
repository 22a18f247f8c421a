"""How many sessions start, and when: the load (open, closed or dataset model) and the rate profile.

The dataset model is the seed generator's: ``num_users`` users, each with a number of sessions drawn from
``sessions_per_user``, starting at times spread over ``date_range`` (uniform, or shaped by a profile).

Profiles are a typed union (one class per ``kind``), declared with msgspec so that scenario files are
read straight into them (:mod:`emitter.inputs` does the reading; fields marked ``parse`` are durations
it turns into seconds). Each class says how the rate multiplier varies over simulated time and its peak.
Adding a profile is one class here plus its docs and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import msgspec
import numpy as np
import numpy.typing as npt

from .dist import Dist
from .limits import (
    MAX_ARRIVAL_RATE,
    MAX_DATASET_USERS,
    MAX_DURATION_S,
    MAX_FACTOR,
    MAX_POPULATION,
    MAX_USERS,
    MIN_ARRIVAL_RATE,
)

__all__ = [
    "DEFAULT_ARRIVAL_RATE",
    "DEFAULT_DATE_RANGE_S",
    "DEFAULT_POPULATION",
    "DEFAULT_SESSIONS_PER_USER",
    "DEFAULT_USER_PAUSE",
    "PROFILES",
    "ConstantProfile",
    "DiurnalProfile",
    "Load",
    "Profile",
    "RampProfile",
    "Spike",
    "SpikesProfile",
    "WeeklyProfile",
]

DEFAULT_ARRIVAL_RATE = 10.0  # sessions per simulated second, when nothing else sets the load
DEFAULT_POPULATION = 10_000
DEFAULT_USER_PAUSE = Dist.lognormal_mean(30.0, 1.0)  # seconds between a closed-model user's sessions
DEFAULT_SESSIONS_PER_USER = Dist.normal(3.0, 2.0)  # the seed's (3, 2): rounded, at least 1
DEFAULT_DATE_RANGE_S = 30 * 86_400.0  # the seed's 30 days

Seconds = Annotated[float, msgspec.Meta(extra={"parse": "duration"})]  # "90s", "5m", "1h30m"; > 0
Offset = Annotated[float, msgspec.Meta(extra={"parse": "offset"})]  # a duration that may be 0
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=MAX_FACTOR)]
Positive = Annotated[float, msgspec.Meta(gt=0, le=MAX_FACTOR)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1, extra={"range": "probability"})]

F64 = npt.NDArray[np.float64]


class Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """A multiplier of the open model's base rate over simulated time (the base class of the kinds)."""

    WHAT: ClassVar[str] = "{kind: constant|ramp|diurnal|weekly|spikes, ...}"
    DEFAULT_TAG: ClassVar[str] = "constant"
    TAG_ERROR: ClassVar[str] = "expected constant, ramp, diurnal, weekly or spikes, got {value}"

    @property
    def kind(self) -> str:
        return str(type(self).__struct_config__.tag)

    def multiplier(self, t_us: npt.NDArray[np.int64], origin_us: int = 0) -> F64:
        """The multiplier at ``t_us`` µs after the run's start; ``origin_us`` is that start (µs since the
        epoch), for the calendar-bound kinds."""
        return np.ones(len(t_us))

    @property
    def peak(self) -> float:
        return 1.0

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Problems no single field shows (key path inside the profile, message)."""
        return []


class ConstantProfile(Profile, frozen=True, tag="constant"):
    """The base rate all the time."""


class RampProfile(Profile, frozen=True, tag="ramp"):
    """From ``from`` to ``to`` times the rate, linearly over [``start``, ``start + over``]."""

    a: NonNegative = msgspec.field(default=1.0, name="from")
    b: NonNegative = msgspec.field(default=1.0, name="to")
    start: Offset = 0.0
    over: Seconds = 1.0

    def multiplier(self, t_us: npt.NDArray[np.int64], origin_us: int = 0) -> F64:
        t = t_us / 1e6
        x = np.clip((t - self.start) / self.over, 0.0, 1.0)
        ramp: F64 = self.a + (self.b - self.a) * x
        return ramp

    @property
    def peak(self) -> float:
        return max(self.a, self.b)

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        return [((), "a ramp needs from or to above 0")] if max(self.a, self.b) <= 0 else []


class DiurnalProfile(Profile, frozen=True, tag="diurnal"):
    """1 + ``amplitude`` x cos over ``period``, highest at ``peak``."""

    amplitude: Fraction = 0.5
    period: Seconds = 86_400.0
    peak_at: Offset = msgspec.field(default=0.0, name="peak")

    def multiplier(self, t_us: npt.NDArray[np.int64], origin_us: int = 0) -> F64:
        t = t_us / 1e6
        wave: F64 = 1.0 + self.amplitude * np.cos(2 * np.pi * (t - self.peak_at) / self.period)
        return wave

    @property
    def peak(self) -> float:
        return 1.0 + self.amplitude


Factor = Annotated[float, msgspec.Meta(ge=0, le=MAX_FACTOR)]


class WeeklyProfile(Profile, frozen=True, tag="weekly"):
    """The calendar's shape (UTC): ``days`` (seven factors, Monday first) times a daily wave
    1 + ``amplitude`` x cos over 24 h, highest at ``peak`` (a time of day)."""

    days: list[Factor] = msgspec.field(default_factory=lambda: [1.0] * 7)
    amplitude: Fraction = 0.0
    peak_at: Offset = msgspec.field(default=43_200.0, name="peak")

    def multiplier(self, t_us: npt.NDArray[np.int64], origin_us: int = 0) -> F64:
        s = (t_us + origin_us) / 1e6
        day = np.floor(s / 86_400.0)
        weekday = ((day + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday; Monday is 0
        wave: F64 = np.asarray(self.days)[weekday] * (
            1.0 + self.amplitude * np.cos(2 * np.pi * (s - day * 86_400.0 - self.peak_at) / 86_400.0)
        )
        return wave

    @property
    def peak(self) -> float:
        return max(self.days, default=1.0) * (1.0 + self.amplitude)

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        if len(self.days) != 7:
            return [(("days",), f"expected seven factors (Monday to Sunday), got {len(self.days)}")]
        if max(self.days) <= 0:
            return [(("days",), "a week needs a day with a factor above 0")]
        if self.peak_at >= 86_400.0:
            return [(("peak",), f"expected a time of day below 24h, got {self.peak_at:g} s")]
        return []


class Spike(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    WHAT: ClassVar[str] = "{at: 10m, duration: 1m, factor: 5}"

    duration: Seconds
    factor: Positive
    at: Offset = 0.0


class SpikesProfile(Profile, frozen=True, tag="spikes"):
    """The base rate, times ``factor`` during each spike (the largest where they overlap)."""

    spikes: tuple[Spike, ...] = ()

    def multiplier(self, t_us: npt.NDArray[np.int64], origin_us: int = 0) -> F64:
        t = t_us / 1e6
        out = np.ones(len(t))
        for sp in self.spikes:
            out = np.where((t >= sp.at) & (t < sp.at + sp.duration), np.maximum(out, sp.factor), out)
        return out

    @property
    def peak(self) -> float:
        return max([1.0, *(sp.factor for sp in self.spikes)])


PROFILES = ConstantProfile | RampProfile | DiurnalProfile | WeeklyProfile | SpikesProfile
"""Every profile kind (the declared type of a scenario's ``load.profile``)."""


@dataclass(frozen=True)
class Load:
    """How many sessions start, and when. Rates are for the whole run, in simulated time."""

    sessions: int | None = None  # stop starting sessions after this many
    duration_s: float | None = None  # stop starting sessions after this much simulated time
    arrival_rate: float | None = None  # open model: new sessions per simulated second (Poisson)
    users: int | None = None  # closed model: this many concurrent users
    user_pause: Dist = DEFAULT_USER_PAUSE  # closed model: pause between a user's sessions (seconds)
    population: int = DEFAULT_POPULATION  # open model: distinct users sessions are drawn from
    profile: Profile | None = None  # open and dataset models: the rate over time (default constant)
    num_users: int | None = None  # dataset model: this many users ...
    sessions_per_user: Dist = DEFAULT_SESSIONS_PER_USER  # ... each with this many sessions (rounded, >= 1) ...
    date_range_s: float = DEFAULT_DATE_RANGE_S  # ... starting during this much simulated time
    first_user: int = 0  # dataset model: the first user's number (a run of several workflows splits the users)

    def __post_init__(self) -> None:
        """The limits of :mod:`.limits` (the input layer reports them as file or flag problems first)."""
        low = MIN_ARRIVAL_RATE / 1000  # (several workflows split the rate by their weights)
        if self.arrival_rate is not None and not low <= self.arrival_rate <= MAX_ARRIVAL_RATE:
            raise ValueError(f"arrival_rate must be in [{low:g}, {MAX_ARRIVAL_RATE:g}], got {self.arrival_rate!r}")
        if self.duration_s is not None and not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be in (0, {MAX_DURATION_S:g}], got {self.duration_s!r}")
        if not 1 <= self.population <= MAX_POPULATION:
            raise ValueError(f"population must be in [1, {MAX_POPULATION}], got {self.population!r}")
        if self.users is not None and not 1 <= self.users <= MAX_USERS:
            raise ValueError(f"users must be in [1, {MAX_USERS}], got {self.users!r}")
        if self.sessions is not None and self.sessions < 1:
            raise ValueError(f"sessions must be at least 1, got {self.sessions!r}")
        if self.num_users is not None:
            if not 1 <= self.num_users <= MAX_DATASET_USERS:
                raise ValueError(f"num_users must be in [1, {MAX_DATASET_USERS}], got {self.num_users!r}")
            if not 0 < self.date_range_s <= MAX_DURATION_S:
                raise ValueError(f"date_range_s must be in (0, {MAX_DURATION_S:g}], got {self.date_range_s!r}")
            clash = [k for k in ("sessions", "duration_s", "arrival_rate", "users") if getattr(self, k) is not None]
            if clash:
                raise ValueError(f"the dataset model (num_users) sets the sessions itself; drop {clash[0]}")

    @property
    def dataset(self) -> bool:
        """The seed's model: num_users x sessions_per_user over date_range."""
        return self.num_users is not None

    @property
    def closed(self) -> bool:
        return self.users is not None

    @property
    def rate(self) -> float:
        return self.arrival_rate if self.arrival_rate is not None else DEFAULT_ARRIVAL_RATE

    @property
    def bounded(self) -> bool:
        return self.sessions is not None or self.duration_s is not None or self.dataset

    @property
    def shaped(self) -> bool:
        """True when a profile other than constant shapes the rate."""
        return self.profile is not None and not isinstance(self.profile, ConstantProfile)

    def describe(self) -> str:
        parts = []
        if self.dataset:
            return (
                f"dataset model: {self.num_users:,} users, sessions per user mean "
                f"{self.sessions_per_user.mean():g} (at least 1), starting over {self.date_range_s / 86_400:g} days"
                + (f", {self.profile.kind} profile" if self.profile is not None and self.shaped else "")
            )
        if self.closed:
            parts.append(f"closed model: {self.users} concurrent users, pause mean {self.user_pause.mean():g} s")
        else:
            parts.append(
                f"open model: {self.rate:g} new sessions per simulated second (Poisson)"
                + (f", {self.profile.kind} profile" if self.profile is not None and self.shaped else "")
            )
        if self.sessions is not None:
            parts.append(f"{self.sessions} sessions")
        if self.duration_s is not None:
            parts.append(f"sessions start during the first {self.duration_s:g} simulated seconds")
        if not self.bounded:
            parts.append("until interrupted")
        return "; ".join(parts)

    def fingerprint(self) -> str:
        base: tuple[object, ...] = (
            self.sessions,
            self.duration_s,
            self.arrival_rate if not self.closed else None,
            self.users,
            self.user_pause if self.closed else None,
            self.population if not self.closed and not self.dataset else None,
        )
        if self.dataset:  # (the other models' fingerprints, and so their run ids, are as before)
            base += (self.num_users, self.sessions_per_user, self.date_range_s, self.first_user, self.profile)
        return repr(base)
