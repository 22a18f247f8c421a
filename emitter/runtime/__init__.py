"""The runtime: paces the core's events against a clock, fans them out to sinks, drains on stop."""

from .pacing import Clock, MonotonicClock, Speed, parse_speed
from .runner import Runner, RunStats

__all__ = ["Clock", "MonotonicClock", "RunStats", "Runner", "Speed", "parse_speed"]
