"""Scenario files: one reproducible description of a run — workflows, load, faults, sinks.

``emitter run SCENARIO.yaml``; the command line and the environment override the file. Converted against
the declared :class:`ScenarioFile` like workflows (every problem at once, one line each naming the file,
the key path and the value); faults, random faults, profiles, retries and reactions are read straight into
the core's own types. See docs/scenarios.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Annotated, Any, ClassVar, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, structs
from msgspec import field as sfield

from ..core.dist import Dist
from ..core.faults import (
    FAULTS,
    MAX_FAULTS,
    CascadePreset,
    Dynamics,
    Fault,
    Name,
    RandomFaults,
    Reactions,
    RetryPolicy,
    Target,
)
from ..core.load import (
    DEFAULT_DATE_RANGE_S,
    DEFAULT_SESSIONS_PER_USER,
    DEFAULT_USER_PAUSE,
    PROFILES,
    Load,
    Profile,
)
from ..core.spec import Workflow
from ..errors import ConfigError
from .convert import INVALID, Path, Problems, convert, struct_valid
from .dist import to_dist
from .options import OPTIONS, option
from .specs import DIST, Probability
from .workflow import load_workflow
from .yamlio import load_yaml_file

__all__ = ["Scenario", "ScenarioFile", "checked_faults", "is_scenario", "load_scenario", "parse_scenario"]


def _opt(name: str) -> Any:
    return Annotated[Any, Meta(extra={"parse": f"option:{name}", "whole": option(name).structured})]


class WorkflowRef(Struct, forbid_unknown_fields=True, kw_only=True):
    WHAT: ClassVar[str] = "{path: FILE, weight: W}"

    path: Annotated[str, Meta(min_length=1)]
    weight: Annotated[float, Meta(gt=0)] = 1.0


class LoadSpec(Struct, forbid_unknown_fields=True, kw_only=True):
    model: Literal["open", "closed", "dataset"] | UnsetType = UNSET
    arrival_rate: _opt("arrival_rate") | UnsetType = UNSET  # type: ignore[valid-type]
    users: _opt("users") | UnsetType = UNSET  # type: ignore[valid-type]
    population: _opt("population") | UnsetType = UNSET  # type: ignore[valid-type]
    pause: DIST | UnsetType = UNSET
    profile: PROFILES | UnsetType = UNSET
    num_users: _opt("num_users") | UnsetType = UNSET  # type: ignore[valid-type]
    sessions_per_user: _opt("sessions_per_user") | UnsetType = UNSET  # type: ignore[valid-type]
    date_range: _opt("date_range") | UnsetType = UNSET  # type: ignore[valid-type]


class ScenarioFile(Struct, forbid_unknown_fields=True, kw_only=True):
    """A scenario file. The run options' keys (seed, speed, start, sessions, duration, sinks, truth, report, progress,
    and load's arrival_rate, users, population) are those of :data:`~emitter.inputs.options.OPTIONS`."""

    WHAT: ClassVar[str] = "a mapping of scenario keys (workflow, load, faults, ...)"

    name: Name | UnsetType = UNSET
    description: str = ""
    workflow: Annotated[str, Meta(min_length=1)] | UnsetType = UNSET
    workflows: list[WorkflowRef] | UnsetType = UNSET
    load: LoadSpec = sfield(default_factory=LoadSpec)
    seed: _opt("seed") | UnsetType = UNSET  # type: ignore[valid-type]
    speed: _opt("speed") | UnsetType = UNSET  # type: ignore[valid-type]
    start: _opt("start") | UnsetType = UNSET  # type: ignore[valid-type]
    sessions: _opt("sessions") | UnsetType = UNSET  # type: ignore[valid-type]
    duration: _opt("duration") | UnsetType = UNSET  # type: ignore[valid-type]
    # each event carries its faults as a bit mask: at most MAX_FAULTS - 1 scheduled (random ones count at run time)
    faults: Annotated[list[FAULTS], Meta(max_length=MAX_FAULTS - 1, extra={"items": "faults"})] = sfield(
        default_factory=list
    )
    random_faults: list[RandomFaults] = sfield(default_factory=list)
    retry: RetryPolicy = sfield(default_factory=RetryPolicy)
    reactions: Reactions = sfield(default_factory=Reactions)
    cascade_failure_rate: Probability | UnsetType = UNSET
    sinks: _opt("sink") | list[_opt("sink")] | UnsetType = UNSET  # type: ignore[valid-type]
    truth: _opt("truth") | UnsetType = UNSET  # type: ignore[valid-type]
    report: _opt("report") | UnsetType = UNSET  # type: ignore[valid-type]
    progress: _opt("progress") | UnsetType = UNSET  # type: ignore[valid-type]


@dataclass
class Scenario:
    name: str
    workflows: list[tuple[Workflow, float]]
    load: Load
    dynamics: Dynamics
    random_faults: list[RandomFaults] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # the run options the file sets, by option name
    source: str = "<memory>"
    digest: str = ""


def is_scenario(data: Any) -> bool:
    return isinstance(data, Mapping) and "entry_points" not in data and ("workflow" in data or "workflows" in data)


def load_scenario(path: str | FsPath) -> Scenario:
    data = load_yaml_file(path)
    return parse_scenario(data, str(path), base=FsPath(path).resolve().parent)


def _target_problems(t: Target, path: Path, wfs: list[Workflow], probs: Problems) -> None:
    if t.service is not None:
        known = {s for w in wfs for s in w.services} | {e.service for w in wfs for e in w.endpoints.values()}
        if t.service not in known:
            probs.error((*path, "service"), f"unknown service {t.service!r} (known: {', '.join(sorted(known))})")
    elif not any(t.endpoint in w.endpoints for w in wfs):
        probs.error((*path, "endpoint"), f"unknown endpoint {t.endpoint!r}")


def checked_faults(items: list[Any], workflows: list[Workflow], probs: Problems, key: str = "faults") -> list[Fault]:
    """Converted faults (``items``, at ``key``) checked against the workflows: targets, parameters, ids."""
    faults: list[Fault] = []
    ids: set[str] = set()
    for i, fault in enumerate(items):
        if fault is INVALID:
            continue
        path: Path = (key, i)
        if not fault.id:
            fault = structs.replace(fault, id=f"{fault.kind}-{i}")
        if fault.target is not INVALID:
            _target_problems(fault.target, (*path, "target"), workflows, probs)
        if not struct_valid(fault):
            continue
        for sub, msg in fault.problems():
            probs.error((*path, *sub), msg)
        if fault.id in ids:
            probs.error((*path, "id"), f"fault id {fault.id!r} used twice")
        ids.add(fault.id)
        faults.append(fault)
    return faults


def parse_scenario(data: Any, source: str = "<memory>", base: FsPath | None = None) -> Scenario:
    probs = Problems(source)
    f = convert(data, ScenarioFile, probs)
    if f is INVALID:
        probs.raise_if_any()
    assert isinstance(f, ScenarioFile)
    base = base or FsPath.cwd()
    # ---- workflows
    refs: list[tuple[Any, Any, Path]] = []
    if f.workflow is not UNSET and f.workflows is not UNSET:
        probs.error(("workflows",), "give workflow or workflows, not both")
    elif f.workflow is not UNSET:
        refs.append((f.workflow, 1.0, ("workflow",)))
    elif isinstance(f.workflows, list):
        refs += [(r.path, r.weight, ("workflows", i)) for i, r in enumerate(f.workflows) if r is not INVALID]
    elif f.workflows is UNSET:
        probs.error(("workflow",), "missing (required): the workflow file this scenario runs")
    wfs: list[tuple[Workflow, float]] = []
    for p, w, _ in refs:
        if p is INVALID or w is INVALID:
            continue
        fp = FsPath(p)
        try:
            wfs.append((load_workflow(fp if fp.is_absolute() else base / fp), w))
        except ConfigError as exc:
            probs.extend(exc.problems)
    total_w = sum(w for _, w in wfs) or 1.0
    wfs = [(wf, w / total_w) for wf, w in wfs]
    workflows = [wf for wf, _ in wfs]
    # ---- load
    ld = f.load if f.load is not INVALID else LoadSpec()
    users = ld.users if ld.users not in (UNSET, INVALID) else None
    num_users = ld.num_users if ld.num_users not in (UNSET, INVALID) else None
    model = (
        ld.model
        if isinstance(ld.model, str)
        else "closed"
        if users is not None
        else "dataset"
        if num_users is not None
        else "open"
    )
    if model == "closed" and users is None and ld.users is not INVALID:
        probs.error(("load", "users"), "a closed model needs users: N")
    if model != "closed" and users is not None:
        probs.error(("load", "users"), "users is for the closed model (set model: closed)")
    if model == "dataset" and num_users is None and ld.num_users is not INVALID:
        probs.error(("load", "num_users"), "the dataset model needs num_users: N")
    if model != "dataset":
        for key in ("num_users", "sessions_per_user", "date_range"):
            if getattr(ld, key) not in (UNSET, INVALID):
                probs.error(("load", key), f"{key} is for the dataset model (set model: dataset)")
    else:
        for key in ("arrival_rate", "pause", "population"):
            if getattr(ld, key) not in (UNSET, INVALID):
                probs.error(("load", key), f"{key} is not part of the dataset model (num_users sets who and how many)")
        for key in ("sessions", "duration"):
            if getattr(f, key) not in (UNSET, INVALID):
                probs.error(
                    (key,), f"the dataset model sets the sessions itself (num_users x sessions_per_user); drop {key}"
                )
    profile = ld.profile if isinstance(ld.profile, Profile) else None
    if profile is not None and struct_valid(profile):
        for sub, msg in profile.problems():
            probs.error(("load", "profile", *sub), msg)
        if model == "closed":
            probs.error(("load", "profile"), "profiles shape the open model's arrival rate; the closed model has none")
    pause: Dist | None = DEFAULT_USER_PAUSE
    if ld.pause is not UNSET:
        pause = to_dist(ld.pause, probs, ("load", "pause"))
    options = {
        o.name: _get(f, ld, o.scenario_key) for o in OPTIONS if _get(f, ld, o.scenario_key) not in (UNSET, INVALID)
    }
    if "sink" in options and isinstance(options["sink"], str):
        options["sink"] = [options["sink"]]
    date_start, date_range_s = options.get("date_range") or (None, DEFAULT_DATE_RANGE_S)
    if date_start is not None:
        if options.get("start") not in (None, date_start):
            probs.error(("start",), "the load's date_range starts at another time; give one of them")
        options["start"] = date_start
    load = (
        Load(
            sessions=options.get("sessions"),
            duration_s=options.get("duration"),
            arrival_rate=options.get("arrival_rate"),
            users=users if model == "closed" else None,
            user_pause=pause or DEFAULT_USER_PAUSE,
            population=options.get("population") or option("population").default,
            profile=profile,
        )
        if model != "dataset" or num_users is None or probs.problems
        else Load(
            num_users=num_users,
            sessions_per_user=options.get("sessions_per_user") or DEFAULT_SESSIONS_PER_USER,
            date_range_s=date_range_s,
            profile=profile,
        )
    )
    # ---- faults
    faults = checked_faults(f.faults if isinstance(f.faults, list) else [], workflows, probs)
    rnd: list[RandomFaults] = []
    for i, r in enumerate(f.random_faults if isinstance(f.random_faults, list) else ()):
        if r is INVALID:
            continue
        for j, t in enumerate(r.targets if isinstance(r.targets, tuple) else ()):
            if t is not INVALID:
                _target_problems(t, ("random_faults", i, "targets", j), workflows, probs)
        if struct_valid(r):
            for sub, msg in r.problems():
                probs.error(("random_faults", i, *sub), msg)
        rnd.append(r)
    retry = f.retry if f.retry is not INVALID else RetryPolicy()
    react = f.reactions if f.reactions is not INVALID else Reactions()
    for sub, msg in react.problems() if struct_valid(react) else ():
        probs.error(("reactions", *sub), msg)
    cascade = (
        CascadePreset(rate=f.cascade_failure_rate) if isinstance(f.cascade_failure_rate, float) else CascadePreset()
    )
    name = f.name if f.name is not UNSET else FsPath(source).stem
    probs.raise_if_any()
    text = json.dumps(data, sort_keys=True, default=str) + "".join(wf.digest for wf in workflows)
    return Scenario(
        name=str(name),
        workflows=wfs,
        load=load,
        dynamics=Dynamics(tuple(faults), retry, react, cascade),
        random_faults=rnd,
        options=options,
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


def _get(f: ScenarioFile, ld: LoadSpec, key: tuple[str, ...]) -> Any:
    if key[0] == "load":
        return getattr(ld, key[1], UNSET)
    return getattr(f, key[0], UNSET)
