"""The OTLP request bodies of a run, built as ``emitter run`` builds it (for the golden files)."""

from __future__ import annotations

from emitter.app import RunConfig, build_simulation
from emitter.cli import _scenario_config, build_parser
from emitter.core.batch import EventBatch, concat
from emitter.core.engine import DEFAULT_POPULATION, Load
from emitter.encode.otlp import encode_otlp
from emitter.scenario import is_scenario
from emitter.workflow import parse_workflow
from emitter.yamlio import load_yaml_file

from .conftest import ROOT


def otlp_bodies(args: tuple[str, ...], start: str) -> list[bytes]:
    ns = build_parser().parse_args(["run", str(ROOT / args[0]), *args[1:], "--speed", "max", "--start", start])
    data = load_yaml_file(ns.workflow)
    if is_scenario(data):
        cfg = _scenario_config(ns, data)
    else:
        load = Load(
            sessions=ns.sessions,
            duration_s=ns.duration,
            arrival_rate=ns.arrival_rate,
            users=ns.users,
            population=ns.population or DEFAULT_POPULATION,
        )
        cfg = RunConfig(workflow=parse_workflow(data, ns.workflow), seed=ns.seed, start_us=ns.start, load=load)
    sim, _, _ = build_simulation(cfg)
    # consecutive batches of one workflow are joined, so the bodies do not depend on how the engine
    # happens to cut its output; they change only where the time-ordered stream changes workflow
    runs: list[list[EventBatch]] = []
    for b in sim.batches():
        if runs and runs[-1][0].ctx is b.ctx:
            runs[-1].append(b)
        else:
            runs.append([b])
    return [r.body for part in runs for r in encode_otlp(concat(part), max_events=512)]
