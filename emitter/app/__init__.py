"""The wiring under the command line: each command as a function (run, check, validate, score)."""

from .config import run_config
from .run import RunConfig, build_simulation, run_async, run_sync

__all__ = ["RunConfig", "build_simulation", "run_async", "run_config", "run_sync"]
