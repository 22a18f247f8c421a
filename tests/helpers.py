"""Shared helpers for tests: build simulations and collect their output in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from emitter.core.batch import EventBatch, concat
from emitter.core.engine import Simulation
from emitter.core.load import Load
from emitter.core.model import Model
from emitter.core.spec import Workflow
from emitter.encode.jsonl import encode_jsonl
from emitter.inputs.workflow import load_workflow

ROOT = Path(__file__).resolve().parent.parent
START_US = 1_767_225_600_000_000


def ecommerce() -> Workflow:
    return load_workflow(ROOT / "workflows" / "ecommerce.yaml")


def simulate(wf: Workflow, seed: int = 1, load: Load | None = None, start_us: int = START_US) -> Simulation:
    return Simulation(Model(wf), seed, load or Load(sessions=500), start_us)


def all_events(sim: Simulation) -> EventBatch:
    return concat(list(sim.batches()))


def stream_bytes(wf: Workflow, seed: int = 1, load: Load | None = None) -> bytes:
    return b"".join(encode_jsonl(b) for b in simulate(wf, seed, load).batches())


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)
