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

__all__ = ["config_of", "run_config"]


def run_config(file: str, given: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RunConfig:
    """The run ``emitter run FILE`` with options ``given`` (by option name; None = not given) describes."""
    env = from_environment(os.environ if environ is None else environ)
    _one_model(given, env)
    return config_of(load_yaml_file(file), file, given, env, base=Path(file).resolve().parent)


def _one_model(given: Mapping[str, Any], env: Mapping[str, Any], flags: str = "command line") -> None:
    for layer, where in ((given, flags), (env, "environment")):
        chosen = [k for k in ("users", "arrival_rate", "num_users") if layer.get(k) is not None]
        if len(chosen) > 1:
            raise ConfigError.one(
                where,
                (_name(chosen[1], where),),
                "choose one load model: --users N (closed), --arrival-rate R (open) or --num-users N (dataset)",
            )


def config_of(
    data: Any,
    file: str,
    given: Mapping[str, Any],
    env: Mapping[str, Any],
    *,
    base: Path | None = None,
    where: str = "command line",
) -> RunConfig:
    """The run a workflow or scenario (``data``, read from ``file``) describes with the options ``given``
    and ``env`` (parsed option values by name, highest precedence first); ``where`` names ``given``'s
    origin in messages (the command line, or a Python call)."""
    _one_model(given, env, where)
    if is_scenario(data):
        sc = parse_scenario(data, file, base=base)
        for wf, _ in sc.workflows:
            _warn(wf.warnings)
        opts = resolve(given, env, sc.options)
        load = sc.load
        # the command line (else the environment) may switch the load model the file chose
        models = ("users", "arrival_rate", "num_users")
        switch = next((x for x in (given, env) if any(x.get(k) is not None for k in models)), {})
        if switch.get("users") is not None:
            load = replace(load, users=switch["users"], arrival_rate=None, profile=None, num_users=None)
        elif switch.get("arrival_rate") is not None:
            load = replace(load, users=None, arrival_rate=switch["arrival_rate"], num_users=None)
        elif switch.get("num_users") is not None:
            load = Load(num_users=switch["num_users"], profile=load.profile if not load.closed else None)
        load = _finish(load, opts, given, env, where)
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
            report=opts["report"],
            scenario=sc.name,
            scenario_digest=sc.digest,
        )
    wf = parse_workflow(data, file)
    _warn(wf.warnings)
    models = ("users", "arrival_rate", "num_users")
    if any(given.get(k) is not None for k in models):  # the command line chose the load model: the
        env = {k: v for k, v in env.items() if k not in models}  # environment's choice gives way
    opts = resolve(given, env)
    if opts["users"] is not None and opts["arrival_rate"] is not None:
        opts["arrival_rate" if given.get("users") is not None else "users"] = None
    if opts["num_users"] is not None:
        load = Load(num_users=opts["num_users"])
    else:
        load = Load(arrival_rate=opts["arrival_rate"], users=opts["users"], population=opts["population"])
    load = _finish(load, opts, given, env, where)
    return RunConfig(
        workflow=wf,
        seed=opts["seed"],
        speed=opts["speed"],
        start_us=opts["start"],
        load=load,
        sinks=opts["sink"],
        progress=opts["progress"],
        truth=opts["truth"],
        report=opts["report"],
    )


def _name(key: str, where: str) -> str:
    if where == "environment":
        return "EMITTER_" + key.upper()
    return "--" + key.replace("_", "-") if where == "command line" else key


def _finish(load: Load, opts: dict[str, Any], given: Mapping[str, Any], env: Mapping[str, Any], flags: str) -> Load:
    """The load with the run options' counts: sessions and duration (open, closed), or the dataset model's."""

    def _where(key: str, given: Mapping[str, Any], env: Mapping[str, Any]) -> tuple[str, str]:
        where = flags if given.get(key) is not None else "environment" if env.get(key) is not None else ""
        return (where, _name(key, where)) if where else ("scenario", key)

    if not load.dataset:
        for key in ("sessions_per_user", "date_range"):
            if opts[key] is not None:
                where, name = _where(key, given, env)
                raise ConfigError.one(where, (name,), "is for the dataset model: give --num-users N too")
        return replace(load, sessions=opts["sessions"], duration_s=opts["duration"], population=opts["population"])
    for key in ("sessions", "duration"):
        if opts[key] is not None:
            where, name = _where(key, given, env)
            raise ConfigError.one(
                where, (name,), "the dataset model sets the sessions itself (num users x sessions per user)"
            )
    if opts["sessions_per_user"] is not None:
        load = replace(load, sessions_per_user=opts["sessions_per_user"])
    if opts["date_range"] is not None:
        date_start, length = opts["date_range"]
        load = replace(load, date_range_s=length)
        if date_start is not None:
            if opts["start"] is not None and opts["start"] != date_start:
                where, name = _where("start", given, env)
                raise ConfigError.one(where, (name,), "the date range starts at another time; give one of them")
            opts["start"] = date_start
    return load


def _warn(warnings: tuple[str, ...]) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
