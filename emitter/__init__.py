"""emitter: realistic, reproducible streams of API-call traffic from Markov-chain user sessions.

The public surface is small and pinned by ``tests/test_public_api.py``::

    wf = emitter.load_workflow("workflows/ecommerce.yaml")
    emitter.run_sync(emitter.RunConfig(wf, seed=7, speed=emitter.Speed(None), load=emitter.Load(sessions=100),
                                       sinks=["file:out.jsonl"]))
"""

from ._version import __version__
from .app import RunConfig, run_async, run_sync
from .core.engine import Load, Simulation
from .core.faults import Dynamics, Fault, Reactions, RetryPolicy
from .errors import ConfigError, EmitterError
from .runtime.pacing import Speed
from .scenario import load_scenario
from .validate.assemble import Assembler
from .validate.report import build_report
from .workflow import Workflow, load_workflow, parse_workflow

__all__ = [
    "Assembler",
    "ConfigError",
    "Dynamics",
    "EmitterError",
    "Fault",
    "Load",
    "Reactions",
    "RetryPolicy",
    "RunConfig",
    "Simulation",
    "Speed",
    "Workflow",
    "__version__",
    "build_report",
    "load_scenario",
    "load_workflow",
    "parse_workflow",
    "run_async",
    "run_sync",
]
