"""The ground truth of a run: its manifest and one record per fault interval, for scoring detectors.

Every fault is known before the first event (random ones included), so the records are made up front;
:mod:`emitter.sinks.truth` writes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from .calls import CallTrees
from .faults import Dynamics
from .spec import Workflow

__all__ = ["iso", "truth_records"]


def iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def truth_records(
    *,
    run_id: str,
    seed: int,
    start_us: int,
    speed: str,
    workflows: list[tuple[Workflow, float]],
    dynamics: Dynamics,
    load: str,
    scenario: str | None = None,
    scenario_digest: str | None = None,
) -> list[dict[str, Any]]:
    manifest = {
        "type": "manifest",
        "schema_version": 1,
        "run_id": run_id,
        "seed": seed,
        "start": iso(start_us),
        "speed": speed,
        "scenario": scenario,
        "scenario_digest": scenario_digest,
        "workflows": [{"name": wf.name, "digest": wf.digest, "weight": w} for wf, w in workflows],
        "load": load,
        "faults": list(dynamics.fault_ids),
        "retry": {**msgspec.structs.asdict(dynamics.retry), "on": list(dynamics.retry.on)},
        "reactions": {
            **msgspec.structs.asdict(dynamics.reactions),
            "retry_pause_s": list(dynamics.reactions.RETRY_PAUSE_S),
        },
        "cascade_failure_rate": dynamics.cascade.rate,
    }
    out: list[dict[str, Any]] = [manifest]
    trees = [(wf, CallTrees(wf)) for wf, _ in workflows]
    for f in dynamics.faults:
        services: set[str] = set()
        edges: set[tuple[str, str]] = set()
        endpoints: list[str] = []
        names = []
        for wf, tr in trees:
            s, e, ep = tr.affected(f)
            if ep:
                names.append(wf.name)
            services |= set(s)
            edges |= set(e)
            endpoints += ep
        target = f.target_label()
        if f.endpoint is not None:
            target["service"] = next(
                (wf.endpoints[f.endpoint].service for wf, _ in workflows if f.endpoint in wf.endpoints), ""
            )
        out.append(
            {
                "type": "fault",
                "id": f.id,
                "kind": f.kind,
                "target": target,
                "params": f.params(),
                "start": iso(start_us + f.start_us),
                "end": iso(start_us + f.end_us),
                "ramp_in_s": f.ramp_in_us / 1e6,
                "ramp_out_s": f.ramp_out_us / 1e6,
                "affected_services": sorted(services),
                "affected_edges": [list(e) for e in sorted(edges)],
                "affected_endpoints": endpoints,
                "workflows": names,
            }
        )
    c = dynamics.cascade
    if c.rate > 0:
        out.append(
            {
                "type": "fault",
                "id": c.id,
                "kind": "cascade",
                "target": {"sessions": f"{c.rate:g} of sessions"},
                "params": {
                    "rate": c.rate,
                    "slow": c.slow,
                    "slow_factor": list(c.slow_factor),
                    "timeout": c.timeout,
                    "timeout_ms": list(c.timeout_ms),
                    "unavailable": c.unavailable,
                    "duplicate": c.duplicate,
                },
                "start": iso(start_us),
                "end": None,
                "affected_services": sorted({e.service for wf, _ in workflows for e in wf.endpoints.values()}),
                "affected_edges": [],
                "affected_endpoints": sorted({s for wf, _ in workflows for s in wf.states}),
                "workflows": [wf.name for wf, _ in workflows],
            }
        )
    return out
