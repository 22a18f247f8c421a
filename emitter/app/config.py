"""A run's configuration from what the user gave: a workflow or scenario file, the command line's options,
the ``EMITTER_*`` environment, and the declared defaults (in that order of precedence, file last)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.load import Load
from ..errors import ConfigError
from ..inputs.options import from_environment, resolve
from ..inputs.scenario import is_scenario, parse_scenario
from ..inputs.workflow import parse_workflow
from ..inputs.yamlio import load_yaml_file
from .run import RunConfig

__all__ = ["run_config"]


def run_config(file: str, given: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RunConfig:
    """The run ``emitter run FILE`` with options ``given`` (by option name; None = not given) describes."""
    env = from_environment(os.environ if environ is None else environ)
    for layer, where in ((given, "command line"), (env, "environment")):
        if layer.get("users") is not None and layer.get("arrival_rate") is not None:
            raise ConfigError.one(
                where,
                ("--users",) if where == "command line" else ("EMITTER_USERS",),
                "choose one load model: --users N (closed) or --arrival-rate R (open), not both",
            )
    data = load_yaml_file(file)
    if is_scenario(data):
        sc = parse_scenario(data, file, base=Path(file).resolve().parent)
        for wf, _ in sc.workflows:
            _warn(wf.warnings)
        opts = resolve(given, env, sc.options)
        load = sc.load
        # the command line (else the environment) may switch the load model the file chose
        switch = next((x for x in (given, env) if x.get("users") is not None or x.get("arrival_rate") is not None), {})
        if switch.get("users") is not None:
            load = replace(load, users=switch["users"], arrival_rate=None, profile=None)
        elif switch.get("arrival_rate") is not None:
            load = replace(load, users=None, arrival_rate=switch["arrival_rate"])
        load = replace(
            load,
            sessions=opts["sessions"],
            duration_s=opts["duration"],
            population=opts["population"],
        )
        return RunConfig(
            workflow=sc.workflows[0][0],
            workflows=sc.workflows,
            seed=opts["seed"],
            speed=opts["speed"],
            start_us=opts["start"],
            load=load,
            sinks=opts["sink"],
            progress=opts["progress"],
            dynamics=sc.dynamics,
            random_faults=sc.random_faults,
            truth=opts["truth"],
            scenario=sc.name,
            scenario_digest=sc.digest,
        )
    wf = parse_workflow(data, file)
    _warn(wf.warnings)
    opts = resolve(given, env)
    if opts["users"] is not None and opts["arrival_rate"] is not None:
        opts["arrival_rate" if given.get("users") is not None else "users"] = None
    load = Load(
        sessions=opts["sessions"],
        duration_s=opts["duration"],
        arrival_rate=opts["arrival_rate"],
        users=opts["users"],
        population=opts["population"],
    )
    return RunConfig(
        workflow=wf,
        seed=opts["seed"],
        speed=opts["speed"],
        start_us=opts["start"],
        load=load,
        sinks=opts["sink"],
        progress=opts["progress"],
        truth=opts["truth"],
    )


def _warn(warnings: tuple[str, ...]) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
