"""emitter: realistic, reproducible streams of API-call traffic from Markov-chain user sessions.

The public surface is small and pinned by ``tests/test_public_api.py``::

    wf = emitter.load_workflow("workflows/ecommerce.yaml")
    emitter.run_sync(emitter.RunConfig(wf, seed=7, speed=emitter.Speed(None), load=emitter.Load(sessions=100),
                                       sinks=["file:out.jsonl"]))

Names are imported on first use, so ``import emitter`` stays quick (no scipy, compiled kernels or Kafka
clients until something needs them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .app.run import RunConfig, run_async, run_sync
    from .core.engine import Simulation
    from .core.faults import Dynamics, Fault, Reactions, RetryPolicy
    from .core.load import Load
    from .core.spec import Workflow
    from .errors import ConfigError, EmitterError
    from .inputs.scenario import load_scenario
    from .inputs.workflow import load_workflow, parse_workflow
    from .runtime.pacing import Speed
    from .validate.assemble import Assembler
    from .validate.report import build_report

_WHERE = {
    "Assembler": ".validate.assemble",
    "ConfigError": ".errors",
    "Dynamics": ".core.faults",
    "EmitterError": ".errors",
    "Fault": ".core.faults",
    "Load": ".core.load",
    "Reactions": ".core.faults",
    "RetryPolicy": ".core.faults",
    "RunConfig": ".app.run",
    "Simulation": ".core.engine",
    "Speed": ".runtime.pacing",
    "Workflow": ".core.spec",
    "build_report": ".validate.report",
    "load_scenario": ".inputs.scenario",
    "load_workflow": ".inputs.workflow",
    "parse_workflow": ".inputs.workflow",
    "run_async": ".app.run",
    "run_sync": ".app.run",
}

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


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'emitter' has no attribute {name!r}")
    value = getattr(import_module(where, __name__), name)
    globals()[name] = value
    return value
