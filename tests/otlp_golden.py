"""The OTLP request bodies of a run, built as ``emitter run`` builds it (for the golden files)."""

from __future__ import annotations

from emitter.app import build_simulation, run_config
from emitter.cli import build_parser
from emitter.core.batch import EventBatch, concat
from emitter.encode.otlp import encode_otlp
from emitter.inputs.options import OPTIONS

from .conftest import ROOT


def otlp_bodies(args: tuple[str, ...], start: str) -> list[bytes]:
    ns = build_parser().parse_args(["run", str(ROOT / args[0]), *args[1:], "--speed", "max", "--start", start])
    cfg = run_config(ns.workflow, {o.name: getattr(ns, o.name) for o in OPTIONS}, environ={})
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
