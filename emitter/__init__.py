"""emitter: realistic, reproducible streams of API-call traffic from Markov-chain user sessions.

The public surface is small and pinned by ``tests/test_public_api.py``::

    wf = emitter.load_workflow("workflows/ecommerce.yaml")
    emitter.run_sync(emitter.RunConfig(wf, seed=7, speed=emitter.Speed(None), load=emitter.Load(sessions=100),
                                       sinks=["file:out.jsonl"]))

    ds = emitter.generate(wf, seed=42, num_users=1000, sessions_per_user=(3, 2), date_range=30)
    ds.to_pandas(); ds.save_parquet("train.parquet")
    emitter.compare(wf, emitter.learn(ds))          # the validator's table, learned beside declared

Names are imported on first use, so ``import emitter`` stays quick (no scipy, compiled kernels or Kafka
clients until something needs them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .app.dataset import Dataset, Session, generate
    from .app.run import RunConfig, run_async, run_sync
    from .core.engine import Simulation
    from .core.faults import Dynamics, Fault, Reactions, RetryPolicy
    from .core.load import Load
    from .core.spec import Workflow
    from .errors import ConfigError, EmitterError
    from .inputs.scenario import load_scenario
    from .inputs.workflow import load_workflow, parse_workflow, save_workflow, workflow, workflow_yaml
    from .runtime.pacing import Speed
    from .validate.assemble import Assembler
    from .validate.learn import Learned, compare, learn
    from .validate.report import build_report

_WHERE = {
    "Assembler": ".validate.assemble",
    "ConfigError": ".errors",
    "Dataset": ".app.dataset",
    "Learned": ".validate.learn",
    "Session": ".app.dataset",
    "compare": ".validate.learn",
    "generate": ".app.dataset",
    "learn": ".validate.learn",
    "save_workflow": ".inputs.workflow",
    "workflow": ".inputs.workflow",
    "workflow_yaml": ".inputs.workflow",
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
    "Dataset",
    "Dynamics",
    "EmitterError",
    "Fault",
    "Learned",
    "Load",
    "Reactions",
    "RetryPolicy",
    "RunConfig",
    "Session",
    "Simulation",
    "Speed",
    "Workflow",
    "__version__",
    "build_report",
    "compare",
    "generate",
    "learn",
    "load_scenario",
    "load_workflow",
    "parse_workflow",
    "run_async",
    "run_sync",
    "save_workflow",
    "workflow",
    "workflow_yaml",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'emitter' has no attribute {name!r}")
    value = getattr(import_module(where, __name__), name)
    globals()[name] = value
    return value
