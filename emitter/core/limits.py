"""What a run can hold: the ranges of times and numbers the core computes with, declared once.

Times are µs in int64 and must stay inside what an RFC 3339 timestamp can say (years 1 to 9999); counts
and values must fit the event columns (int16 states, 16-bit seq, 8-bit attempts) and survive float
arithmetic. The input layer's specs and option parsers refuse values past these limits, so that what
``emitter check`` accepts runs; :class:`OutOfRange` is the core's last word when a run would still leave
the time range (a start close to year 9999, say).
"""

from __future__ import annotations

import math

__all__ = [
    "MAX_ARRIVAL_RATE",
    "MAX_CALLS",
    "MAX_DATASET_SESSIONS",
    "MAX_DATASET_USERS",
    "MAX_DURATION_S",
    "MAX_FACTOR",
    "MAX_MS",
    "MAX_NAME",
    "MAX_PARAM",
    "MAX_POPULATION",
    "MAX_SESSIONS_PER_USER",
    "MAX_STATES",
    "MAX_USERS",
    "MAX_VALUE",
    "MIN_ARRIVAL_RATE",
    "TIME_END_US",
    "TIME_START_US",
    "OutOfRange",
    "check_time_range",
]

TIME_START_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
TIME_END_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
MIN_ARRIVAL_RATE = 1e-6  # sessions per second (one every 11.6 days)
MAX_ARRIVAL_RATE = 1e9
MAX_DURATION_S = 36_500 * 86_400.0  # 100 years of simulated time
MAX_POPULATION = 10**12  # distinct users (user ids of at most 12 digits)
MAX_USERS = 10**8  # concurrent users of the closed model
MAX_DATASET_USERS = 10**8  # users of the dataset model (one count each is held in memory)
MAX_DATASET_SESSIONS = 2 * 10**8  # sessions of the dataset model (each one's start and user are held: 16 bytes)
MAX_SESSIONS_PER_USER = 10**5  # one user's sessions in the dataset model (draws are clipped here)
MAX_STATES = 32_767  # endpoints of a workflow (the state column is int16); user types likewise
MAX_CALLS = 65_535  # calls of a session (the seq column's 16 bits)
MAX_FACTOR = 1_000.0  # multipliers: profile ramps and spikes, a latency fault's factor
MAX_MS = 1e9  # any time given in milliseconds (latencies, timeouts, backoffs, hangs): about 11.6 days
MAX_VALUE = 1e9  # any parameter of a distribution, in its own unit (ms or s); draws are clipped here too
MAX_LOG_VALUE = math.log(MAX_VALUE)
MAX_PARAM = 10**15  # path and query parameters' integers (exact in float arithmetic)
MAX_NAME = 2_048  # characters of a name, route or key (names go into every event)


class OutOfRange(ValueError):
    """A run's events would leave the representable time range."""


def iso(us: int) -> str:
    """µs since the epoch as RFC 3339 (for messages), without datetime's limits."""
    import datetime as dt

    d = dt.datetime(1, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us - TIME_START_US)
    return f"{d.year:04d}-{d:%m-%dT%H:%M:%S.%f}Z"


def check_time_range(start_us: int, first_us: int, last_us: int) -> None:
    """Raise :class:`OutOfRange` unless every time in [first_us, last_us] after ``start_us`` is representable."""
    if start_us + last_us > TIME_END_US:
        raise OutOfRange(
            f"simulated time would pass {iso(TIME_END_US)}, the last time an RFC 3339 timestamp can say "
            f"(the run starts at {iso(start_us)}): use an earlier --start or a shorter run"
        )
    if start_us + first_us < TIME_START_US:
        raise OutOfRange(f"simulated time would come before {iso(TIME_START_US)}: use a later --start")
