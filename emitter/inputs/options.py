"""Run options, declared once: the command line's flags, the scenario file's keys and the ``EMITTER_<NAME>``
environment variables all read this table, and each option's default lives here and nowhere else.

Precedence, highest first: the command line, the environment, the scenario file, the default.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.dist import Dist
from ..core.limits import (
    MAX_ARRIVAL_RATE,
    MAX_DATASET_USERS,
    MAX_DURATION_S,
    MAX_NAME,
    MAX_POPULATION,
    MAX_SESSIONS_PER_USER,
    MAX_USERS,
    MIN_ARRIVAL_RATE,
)
from ..core.load import DEFAULT_ARRIVAL_RATE, DEFAULT_POPULATION
from ..errors import ConfigError
from ..runtime.pacing import Speed, parse_speed
from ..sinks.truth import truth_destination
from .convert import Problems, convert, register_parser

__all__ = [
    "OPTIONS",
    "Option",
    "from_environment",
    "option",
    "parse_duration",
    "parse_start",
    "resolve",
]

_DUR = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
ENV_PREFIX = "EMITTER_"


def parse_duration(text: Any) -> float:
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
    if v > MAX_DURATION_S:
        raise ValueError(f"expected at most {MAX_DURATION_S / 86_400:.0f} days (100 years), got {text!r}")
    return v


def parse_offset(text: Any) -> float:
    """A duration that may be zero (a start offset): ``0``, ``0s``, or anything :func:`parse_duration` takes."""
    if text in (0, "0", "0s"):
        return 0.0
    return parse_duration(text)


def parse_start(text: Any) -> int | None:
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


def _positive_int(text: Any, most: int | None = None) -> int:
    try:
        v = int(str(text))
    except ValueError:
        raise ValueError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    if most is not None and v > most:
        raise ValueError(f"expected at most {most:,}, got {text!r}")
    return v


def _population(text: Any) -> int:
    return _positive_int(text, MAX_POPULATION)


def _users(text: Any) -> int:
    return _positive_int(text, MAX_USERS)


def _arrival_rate(text: Any) -> float:
    v = _positive_float(text)
    if v < MIN_ARRIVAL_RATE:
        raise ValueError(f"expected at least {MIN_ARRIVAL_RATE:g} sessions per second, got {text!r}")
    if v > MAX_ARRIVAL_RATE:
        raise ValueError(f"expected at most {MAX_ARRIVAL_RATE:g} sessions per second, got {text!r}")
    return v


def _num_users(text: Any) -> int:
    return _positive_int(text, MAX_DATASET_USERS)


def parse_sessions_per_user(value: Any) -> Dist:
    """The dataset model's sessions per user: ``MEAN,SD`` (the seed's ``(3, 2)``: a normal, rounded, at least
    one), ``[MEAN, SD]``, a number (every user the same), or any distribution a workflow file takes."""
    from .dist import to_dist
    from .specs import DIST

    if isinstance(value, Mapping):
        probs = Problems("sessions_per_user")
        d = to_dist(convert(dict(value), DIST, probs, ()), probs, ())
        if probs.problems or d is None:
            first = probs.problems[0] if probs.problems else None
            if first is None:
                raise ValueError(f"expected a distribution, got {value!r}")
            raise ValueError(".".join(map(str, first.path)) + ": " * bool(first.path) + first.message)
        mean = d.mean()
    else:
        parts = (
            [p.strip() for p in str(value).strip("[]()").split(",")] if not isinstance(value, list | tuple) else value
        )
        try:
            nums = [float(str(p)) for p in parts]
        except ValueError:
            nums = []
        if len(nums) not in (1, 2) or not all(math.isfinite(x) for x in nums):
            raise ValueError(f"expected MEAN or MEAN,SD (such as 3,2) or a distribution, got {value!r}")
        mean, sd = nums[0], nums[1] if len(nums) == 2 else 0.0
        if sd < 0:
            raise ValueError(f"expected a standard deviation of at least 0, got {value!r}")
        d = Dist.normal(mean, sd)
    if not 1 <= mean <= MAX_SESSIONS_PER_USER:
        raise ValueError(f"expected a mean of sessions per user in [1, {MAX_SESSIONS_PER_USER:,}], got {value!r}")
    return d


def parse_date_range(value: Any) -> tuple[int | None, float]:
    """The dataset model's date range as (start in µs since the epoch or None, length in seconds): a number of
    days (the seed's ``date_range_days``), a duration (``36h``), ``START/END`` or ``{start: ..., end: ...}``."""
    if isinstance(value, Mapping):
        if set(value) != {"start", "end"}:
            raise ValueError(f"expected {{start: DATE, end: DATE}}, got {value!r}")
        lo, hi = value["start"], value["end"]
    elif isinstance(value, str) and "/" in value:
        lo, hi = value.split("/", 1)
    else:
        if isinstance(value, bool):
            raise ValueError(f"expected a number of days, a duration or START/END, got {value!r}")  # noqa: TRY004
        try:
            days = float(value)
        except (TypeError, ValueError):
            return None, parse_duration(value)
        return None, parse_duration(days * 86_400.0)
    a, b = parse_start(lo), parse_start(hi)
    if a is None or b is None:
        raise ValueError(f"expected dates, not now, in a date range, got {value!r}")
    if b <= a:
        raise ValueError(f"the date range ends before it starts: {value!r}")
    return a, parse_duration((b - a) / 1e6)


def _seed(text: Any) -> int:
    try:
        v = int(str(text))
    except ValueError:
        raise ValueError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= v < 2**63:
        raise ValueError(f"expected a seed in [0, 2^63), got {text!r}")
    return v


def _positive_float(text: Any) -> float:
    try:
        v = float(str(text))
    except ValueError:
        raise ValueError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return v


def _progress(text: Any) -> str:
    t = str(text).lower()
    if t not in ("auto", "bar", "lines", "off"):
        raise ValueError(f"expected auto, bar, lines or off, got {text!r}")
    return t


def _uri(text: Any) -> str:
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected a non-empty string, got {text!r}")
    return text


def _report_file(text: Any) -> str:
    path = _uri(text)
    if "\x00" in path:
        raise ValueError("a path with a NUL character")
    if "://" in path:
        raise ValueError(f"expected a file path or file:PATH, not a URI, got {path!r}")
    return path


def _truth_uri(text: Any) -> str:
    return truth_destination(_uri(text))


@dataclass(frozen=True)
class Option:
    """One run option. ``key`` is where a scenario file holds it (``("load", "users")``); the environment
    variable is ``EMITTER_`` + the name in capitals. A repeatable option holds a list."""

    name: str
    flag: str
    parse: Callable[[Any], Any]
    help: str
    metavar: str
    default: Any = None
    repeat: bool = False
    key: tuple[str, ...] = ()
    structured: bool = False  # a file may give it as a list or a mapping (parsed as given, not as text)
    yaml_null: str | None = None  # what YAML's bare null means for it in a file (else: no value, an error)

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def scenario_key(self) -> tuple[str, ...]:
        return self.key or (self.name,)


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
        default=Speed(1.0),
    ),
    Option("start", "--start", parse_start, "simulated start time, RFC 3339 (default: now)", "TIMESTAMP"),
    Option("sessions", "--sessions", _positive_int, "start this many sessions; the run ends when all have ended", "N"),
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
        _arrival_rate,
        f"open model: new sessions per simulated second for the whole run, Poisson (default {DEFAULT_ARRIVAL_RATE:g})",
        "R",
        key=("load", "arrival_rate"),
    ),
    Option(
        "users",
        "--users",
        _users,
        "closed model: N concurrent users, each starting a new session a pause after the last one ended",
        "N",
        key=("load", "users"),
    ),
    Option(
        "population",
        "--population",
        _population,
        f"open model: distinct users that sessions are drawn from (default {DEFAULT_POPULATION})",
        "N",
        default=DEFAULT_POPULATION,
        key=("load", "population"),
    ),
    Option(
        "num_users",
        "--num-users",
        _num_users,
        "dataset model (the seed's): N users, each with --sessions-per-user sessions spread over --date-range",
        "N",
        key=("load", "num_users"),
    ),
    Option(
        "sessions_per_user",
        "--sessions-per-user",
        parse_sessions_per_user,
        "dataset model: sessions per user, MEAN,SD (rounded, at least 1; default 3,2)",
        "MEAN,SD",
        key=("load", "sessions_per_user"),
        structured=True,
    ),
    Option(
        "date_range",
        "--date-range",
        parse_date_range,
        "dataset model: when sessions start, DAYS (default 30), a duration (36h) or START/END dates; "
        "sessions start uniformly over it unless a profile shapes it",
        "RANGE",
        key=("load", "date_range"),
        structured=True,
    ),
    Option(
        "sink",
        "--sink",
        _uri,
        "where events go, repeatable: stdout (default), file:PATH (.gz compresses), parquet:PATH, "
        "null, kafka://HOST:PORT/TOPIC, otlp://HOST:4317, otlp+http://HOST:4318 (over TLS: otlp+grpcs://, "
        "otlp+https://, with ?certificate=CA.pem&headers=authorization=Bearer%%20TOKEN)",
        "URI",
        default=("stdout",),
        repeat=True,
        key=("sinks",),
        yaml_null="null",  # sinks: [null] can only mean the null sink
    ),
    Option(
        "truth",
        "--truth",
        _truth_uri,
        "where the ground truth goes (run manifest and fault intervals): file:PATH or kafka://HOST:PORT/TOPIC",
        "URI",
    ),
    Option(
        "report",
        "--report",
        _report_file,
        "write an HTML run report to this file when the run ends (emit rate against the schedule, "
        "latency and errors per service with fault windows, the service graph); opens in any browser",
        "FILE",
    ),
    Option(
        "progress",
        "--progress",
        _progress,
        "auto (bar on a terminal, lines otherwise), bar, lines, off",
        "MODE",
        default="auto",
    ),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    return _BY_NAME[name]


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options set by ``EMITTER_<NAME>`` variables (a repeatable one: URIs separated by spaces)."""
    out: dict[str, Any] = {}
    problems = []
    for o in OPTIONS:
        raw = environ.get(o.env)
        if raw is None or not raw.strip():
            continue
        try:
            out[o.name] = [o.parse(p) for p in raw.split()] if o.repeat else o.parse(raw.strip())
        except ValueError as exc:
            problems.append(ConfigError.one("environment", (o.env,), str(exc)).problems[0])
    if problems:
        raise ConfigError(problems)
    return out


def resolve(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Every option's value: the first layer (highest precedence first) that sets it, else its default."""
    out: dict[str, Any] = {}
    for o in OPTIONS:
        value = next((layer[o.name] for layer in layers if layer.get(o.name) is not None), o.default)
        out[o.name] = list(value) if o.repeat and value is not None else value
    return out


def _as_text(o: Option) -> Callable[[Any], Any]:
    def text(v: Any) -> Any:
        if v is None:  # YAML's null (or ~)
            if o.yaml_null is not None:
                return o.parse(o.yaml_null)
            raise ValueError("expected a value, got YAML's null")
        return o.parse(str(v))

    return text


for _o in OPTIONS:
    register_parser(f"option:{_o.name}", _o.parse if _o.structured else _as_text(_o))
register_parser("duration", parse_duration)
register_parser("offset", parse_offset)
register_parser("duration_us", lambda v: round(parse_duration(v) * 1e6))
register_parser("offset_us", lambda v: round(parse_offset(v) * 1e6))


def _name(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, str | int | float) or v == "":
        raise ValueError(f"expected a name, got {v!r:.60}")
    if len(str(v)) > MAX_NAME:
        raise ValueError(f"a name of {len(str(v)):,} characters: at most {MAX_NAME:,}")
    return str(v)


register_parser("name", _name)
