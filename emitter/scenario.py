"""Scenario files: one reproducible description of a run — workflows, load, faults, sinks.

``emitter run SCENARIO.yaml``; flags on the command line override the file. Validated like workflows:
every problem is one line naming the file, the key path and the value. See docs/scenarios.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from .checks import Checker, Path
from .core.dist import parse_dist
from .core.engine import DEFAULT_POPULATION, DEFAULT_USER_PAUSE, Load, Profile
from .core.faults import KINDS, MAX_FAULTS, CascadePreset, Dynamics, Fault, Reactions, RetryPolicy
from .errors import ConfigError
from .options import option, parse_duration
from .runtime.pacing import Speed
from .workflow import Workflow, load_workflow
from .yamlio import load_yaml_file

__all__ = ["Scenario", "is_scenario", "load_scenario", "parse_scenario"]

_TOP = (
    "name",
    "description",
    "seed",
    "workflow",
    "workflows",
    "load",
    "sessions",
    "duration",
    "speed",
    "start",
    "faults",
    "random_faults",
    "retry",
    "reactions",
    "cascade_failure_rate",
    "sinks",
    "truth",
    "progress",
)


@dataclass
class Scenario:
    name: str
    workflows: list[tuple[Workflow, float]]
    load: Load
    dynamics: Dynamics
    random_faults: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None
    speed: Speed | None = None
    start_us: int | None = None
    sinks: list[str] = field(default_factory=list)
    truth: str | None = None
    progress: str | None = None
    source: str = "<memory>"
    digest: str = ""


def is_scenario(data: Any) -> bool:
    return isinstance(data, Mapping) and "entry_points" not in data and ("workflow" in data or "workflows" in data)


def load_scenario(path: str | FsPath) -> Scenario:
    data = load_yaml_file(path)
    return parse_scenario(data, str(path), base=FsPath(path).resolve().parent)


def _opt(ck: Checker, name: str, value: Any, path: Path) -> Any:
    try:
        return option(name).parse(str(value))
    except ValueError as exc:
        ck.error(path, str(exc))
        return None


def _duration(ck: Checker, value: Any, path: Path, *, zero_ok: bool = False) -> float | None:
    if zero_ok and value in (0, "0", "0s"):
        return 0.0
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        ck.error(path, str(exc))
        return None


def _range(ck: Checker, value: Any, path: Path, *, duration: bool = False) -> Any:
    """A number (or duration) or a [lo, hi] pair to draw from."""

    def one(v: Any, p: Path) -> float | None:
        if duration:
            return _duration(ck, v, p)
        return ck.number(v, p, non_negative=True)

    if isinstance(value, list):
        if len(value) != 2:
            ck.error(path, f"expected a value or a [low, high] pair, got {value!r}")
            return None
        lo, hi = one(value[0], (*path, 0)), one(value[1], (*path, 1))
        if lo is not None and hi is not None and hi < lo:
            ck.error(path, f"high {hi:g} is below low {lo:g}")
        return [lo, hi]
    return one(value, path)


def _target(ck: Checker, value: Any, path: Path, wfs: list[Workflow]) -> tuple[str | None, str | None]:
    node = ck.mapping(value, path, what="{service: NAME} or {endpoint: ROUTE}")
    if node is None:
        return None, None
    ck.unknown_keys(node, ("service", "endpoint"), path)
    svc, ep = node.get("service"), node.get("endpoint")
    if (svc is None) == (ep is None):
        ck.error(path, "give exactly one of service or endpoint")
        return None, None
    if svc is not None:
        known = {s for w in wfs for s in w.services} | {e.service for w in wfs for e in w.endpoints.values()}
        if svc not in known:
            ck.error((*path, "service"), f"unknown service {svc!r} (known: {', '.join(sorted(known))})")
        return str(svc), None
    if not any(ep in w.endpoints for w in wfs):
        ck.error((*path, "endpoint"), f"unknown endpoint {ep!r}")
    return None, str(ep)


def parse_scenario(data: Any, source: str = "<memory>", base: FsPath | None = None) -> Scenario:
    ck = Checker(source)
    top = ck.mapping(data, (), what="a mapping of scenario keys (workflow, load, faults, ...)")
    if top is None:
        ck.raise_if_any()
        raise AssertionError
    ck.unknown_keys(top, _TOP, ())
    base = base or FsPath.cwd()
    # ---- workflows
    wfs: list[tuple[Workflow, float]] = []
    specs: list[tuple[Any, Any, Path]] = []
    if "workflow" in top and "workflows" in top:
        ck.error(("workflows",), "give workflow or workflows, not both")
    elif "workflow" in top:
        specs.append((top["workflow"], 1.0, ("workflow",)))
    elif "workflows" in top:
        for i, w in enumerate(ck.sequence(top["workflows"], ("workflows",)) or ()):
            node = ck.mapping(w, ("workflows", i), what="{path: FILE, weight: W}")
            if node is not None:
                ck.unknown_keys(node, ("path", "weight"), ("workflows", i))
                specs.append((node.get("path"), node.get("weight", 1.0), ("workflows", i)))
    else:
        ck.error(("workflow",), "missing (required): the workflow file this scenario runs")
    for p, w, path in specs:
        ps = ck.string(p, (*path, "path") if path[0] == "workflows" else path)
        weight = ck.number(w, (*path, "weight"), positive=True)
        if ps is None or weight is None:
            continue
        f = FsPath(ps)
        f = f if f.is_absolute() else base / f
        try:
            wfs.append((load_workflow(f), weight))
        except ConfigError as exc:
            ck.problems.extend(exc.problems)
    total_w = sum(w for _, w in wfs) or 1.0
    wfs = [(wf, w / total_w) for wf, w in wfs]
    workflows = [wf for wf, _ in wfs]
    # ---- load
    lnode = ck.mapping(top.get("load", {}), ("load",)) or {}
    ck.unknown_keys(lnode, ("model", "arrival_rate", "users", "population", "pause", "profile"), ("load",))
    model = lnode.get("model", "closed" if "users" in lnode else "open")
    if model not in ("open", "closed"):
        ck.error(("load", "model"), f"expected open or closed, got {model!r}")
    rate = (
        _opt(ck, "arrival_rate", lnode["arrival_rate"], ("load", "arrival_rate")) if "arrival_rate" in lnode else None
    )
    users = _opt(ck, "users", lnode["users"], ("load", "users")) if "users" in lnode else None
    if model == "closed" and users is None:
        ck.error(("load", "users"), "a closed model needs users: N")
    if model == "open" and users is not None:
        ck.error(("load", "users"), "users is for the closed model (set model: closed)")
    pop = _opt(ck, "population", lnode["population"], ("load", "population")) if "population" in lnode else None
    pause = parse_dist(ck, lnode["pause"], ("load", "pause")) if "pause" in lnode else DEFAULT_USER_PAUSE
    profile = _profile(ck, lnode["profile"], ("load", "profile")) if "profile" in lnode else None
    if profile is not None and model == "closed":
        ck.error(("load", "profile"), "profiles shape the open model's arrival rate; the closed model has none")
    sessions = _opt(ck, "sessions", top["sessions"], ("sessions",)) if "sessions" in top else None
    duration = _opt(ck, "duration", top["duration"], ("duration",)) if "duration" in top else None
    load = Load(
        sessions=sessions,
        duration_s=duration,
        arrival_rate=rate,
        users=users if model == "closed" else None,
        user_pause=pause or DEFAULT_USER_PAUSE,
        population=pop or DEFAULT_POPULATION,
        profile=profile,
    )
    # ---- faults
    faults: list[Fault] = []
    for i, fnode in enumerate(ck.sequence(top.get("faults", []), ("faults",)) or ()):
        fault = _fault(ck, fnode, ("faults", i), workflows, i)
        if fault is not None:
            if any(x.id == fault.id for x in faults):
                ck.error(("faults", i, "id"), f"fault id {fault.id!r} used twice")
            faults.append(fault)
    rnd: list[dict[str, Any]] = []
    for i, rnode in enumerate(ck.sequence(top.get("random_faults", []), ("random_faults",)) or ()):
        r = _random_fault(ck, rnode, ("random_faults", i), workflows)
        if r is not None:
            rnd.append(r)
    retry = _retry(ck, top.get("retry", {}), ("retry",))
    react = _reactions(ck, top.get("reactions", {}), ("reactions",))
    cascade = CascadePreset()
    if "cascade_failure_rate" in top:
        cr = ck.number(top["cascade_failure_rate"], ("cascade_failure_rate",), unit_interval=True)
        cascade = CascadePreset(rate=cr or 0.0)
    if len(faults) >= MAX_FAULTS:
        ck.error(("faults",), f"at most {MAX_FAULTS - 1} faults")
    # ---- run options
    seed = _opt(ck, "seed", top["seed"], ("seed",)) if "seed" in top else None
    speed = _opt(ck, "speed", top["speed"], ("speed",)) if "speed" in top else None
    start = _opt(ck, "start", top["start"], ("start",)) if "start" in top else None
    progress = _opt(ck, "progress", top["progress"], ("progress",)) if "progress" in top else None
    sinks: list[str] = []
    sv = top.get("sinks", [])
    for i, s in enumerate(([sv] if isinstance(sv, str) else ck.sequence(sv, ("sinks",))) or ()):
        st = ck.string(s, ("sinks", i))
        if st:
            sinks.append(st)
    truth = ck.string(top["truth"], ("truth",)) if "truth" in top else None
    name = top.get("name", FsPath(source).stem)
    ck.raise_if_any()
    text = json.dumps(data, sort_keys=True, default=str) + "".join(wf.digest for wf in workflows)
    return Scenario(
        name=str(name),
        workflows=wfs,
        load=load,
        dynamics=Dynamics(tuple(faults), retry, react, cascade),
        random_faults=rnd,
        seed=seed,
        speed=speed,
        start_us=start,
        sinks=sinks,
        truth=truth,
        progress=progress,
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


def _profile(ck: Checker, value: Any, path: Path) -> Profile | None:
    node = ck.mapping(value, path, what="{kind: constant|ramp|diurnal|spikes, ...}")
    if node is None:
        return None
    kind = node.get("kind", "constant")
    keys = {
        "constant": ("kind",),
        "ramp": ("kind", "from", "to", "start", "over"),
        "diurnal": ("kind", "amplitude", "period", "peak"),
        "spikes": ("kind", "spikes"),
    }
    if kind not in keys:
        ck.error((*path, "kind"), f"expected constant, ramp, diurnal or spikes, got {kind!r}")
        return None
    ck.unknown_keys(node, keys[kind], path)
    if kind == "ramp":
        a = ck.number(node.get("from", 1.0), (*path, "from"), non_negative=True)
        b = ck.number(node.get("to", 1.0), (*path, "to"), non_negative=True)
        st = _duration(ck, node.get("start", 0), (*path, "start"), zero_ok=True)
        over = _duration(ck, node.get("over", "1s"), (*path, "over"))
        if None in (a, b, st, over):
            return None
        if max(a or 0, b or 0) <= 0:
            ck.error(path, "a ramp needs from or to above 0")
            return None
        return Profile("ramp", a=a or 0.0, b=b or 0.0, start_s=st or 0.0, over_s=over or 1.0)
    if kind == "diurnal":
        amp = ck.number(node.get("amplitude", 0.5), (*path, "amplitude"), unit_interval=True)
        per = _duration(ck, node.get("period", "24h"), (*path, "period"))
        peak = _duration(ck, node.get("peak", 0), (*path, "peak"), zero_ok=True)
        if None in (amp, per, peak):
            return None
        return Profile("diurnal", amplitude=amp or 0.0, period_s=per or 86400.0, peak_s=peak or 0.0)
    if kind == "spikes":
        spikes = []
        for i, sp in enumerate(ck.sequence(node.get("spikes", []), (*path, "spikes")) or ()):
            sn = ck.mapping(sp, (*path, "spikes", i), what="{at: 10m, duration: 1m, factor: 5}")
            if sn is None:
                continue
            ck.unknown_keys(sn, ("at", "duration", "factor"), (*path, "spikes", i))
            at = _duration(ck, sn.get("at", 0), (*path, "spikes", i, "at"), zero_ok=True)
            du = _duration(ck, sn.get("duration"), (*path, "spikes", i, "duration"))
            fa = ck.number(sn.get("factor"), (*path, "spikes", i, "factor"), positive=True)
            if at is not None and du is not None and fa is not None:
                spikes.append((at, du, fa))
        return Profile("spikes", spikes=tuple(spikes))
    return Profile("constant")


_FAULT_KEYS = (
    "id",
    "kind",
    "target",
    "start",
    "duration",
    "ramp_in",
    "ramp_out",
    "factor",
    "add_ms",
    "rate",
    "status",
    "hang_ms",
)


def _fault(ck: Checker, value: Any, path: Path, wfs: list[Workflow], i: int) -> Fault | None:
    node = ck.mapping(value, path, what="a fault {kind, target, start, duration, ...}")
    if node is None:
        return None
    ck.unknown_keys(node, _FAULT_KEYS, path)
    kind = node.get("kind")
    if kind not in KINDS:
        ck.error((*path, "kind"), f"expected one of {', '.join(KINDS)}, got {kind!r}")
        return None
    fid = str(node.get("id", f"{kind}-{i}"))
    svc, ep = _target(ck, node.get("target"), (*path, "target"), wfs)
    start = _duration(ck, node.get("start", 0), (*path, "start"), zero_ok=True)
    dur = _duration(ck, node.get("duration"), (*path, "duration")) if "duration" in node else None
    if "duration" not in node:
        ck.error((*path, "duration"), "missing (required)")
    rin = _duration(ck, node.get("ramp_in", 0), (*path, "ramp_in"), zero_ok=True)
    rout = _duration(ck, node.get("ramp_out", 0), (*path, "ramp_out"), zero_ok=True)
    if dur is not None and rin is not None and rout is not None and rin + rout > dur:
        ck.error((*path, "ramp_in"), f"ramp_in + ramp_out ({rin + rout:g} s) exceed the duration ({dur:g} s)")
    factor = ck.number(node.get("factor", 1.0), (*path, "factor"), positive=True)
    add = ck.number(node.get("add_ms", 0.0), (*path, "add_ms"), non_negative=True)
    if kind == "latency" and factor == 1.0 and not add:
        ck.error(path, "a latency fault needs factor (other than 1) or add_ms")
    rate = ck.number(node.get("rate", 1.0), (*path, "rate"), unit_interval=True)
    status = ck.integer(node.get("status", 503), (*path, "status"), minimum=400)
    hang = ck.number(node.get("hang_ms", 600_000.0), (*path, "hang_ms"), positive=True)
    if None in (start, dur, rin, rout, factor, add, rate, status, hang) or (svc is None and ep is None):
        return None
    return Fault(
        fid,
        kind,
        svc,
        ep,
        round((start or 0) * 1e6),
        round((dur or 0) * 1e6),
        round((rin or 0) * 1e6),
        round((rout or 0) * 1e6),
        factor or 1.0,
        add or 0.0,
        rate if rate is not None else 1.0,
        status or 503,
        hang or 600_000.0,
    )


def _random_fault(ck: Checker, value: Any, path: Path, wfs: list[Workflow]) -> dict[str, Any] | None:
    node = ck.mapping(value, path, what="{rate_per_hour, kind, targets, duration, ...}")
    if node is None:
        return None
    ck.unknown_keys(
        node,
        ("rate_per_hour", "targets", *(k for k in _FAULT_KEYS if k != "target")),
        path,
    )
    kind = node.get("kind")
    if kind not in KINDS:
        ck.error((*path, "kind"), f"expected one of {', '.join(KINDS)}, got {kind!r}")
        return None
    rph = ck.number(node.get("rate_per_hour"), (*path, "rate_per_hour"), positive=True)
    targets = []
    for j, t in enumerate(ck.sequence(node.get("targets"), (*path, "targets")) or ()):
        svc, ep = _target(ck, t, (*path, "targets", j), wfs)
        if svc or ep:
            targets.append({"service": svc} if svc else {"endpoint": ep})
    if not targets:
        ck.error((*path, "targets"), "at least one target")
        return None
    out: dict[str, Any] = {
        "id": str(node.get("id", f"random-{kind}")),
        "kind": kind,
        "rate_per_hour": rph,
        "targets": targets,
        "duration_s": _range(ck, node.get("duration", "1m"), (*path, "duration"), duration=True),
    }
    for key, dur in (
        ("ramp_in", True),
        ("ramp_out", True),
        ("factor", False),
        ("add_ms", False),
        ("rate", False),
        ("hang_ms", False),
    ):
        if key in node:
            out[key + ("_s" if dur else "")] = _range(ck, node[key], (*path, key), duration=dur)
    if "status" in node:
        out["status"] = ck.integer(node["status"], (*path, "status"), minimum=400)
    return out


def _retry(ck: Checker, value: Any, path: Path) -> RetryPolicy:
    node = ck.mapping(value, path) or {}
    ck.unknown_keys(node, ("max_attempts", "backoff_ms", "multiplier", "max_backoff_ms", "jitter", "on"), path)
    d = RetryPolicy()
    att = ck.integer(node.get("max_attempts", d.max_attempts), (*path, "max_attempts"), minimum=1)
    if att is not None and att > 20:
        ck.error((*path, "max_attempts"), f"expected at most 20, got {att}")
    back = ck.number(node.get("backoff_ms", d.backoff_ms), (*path, "backoff_ms"), non_negative=True)
    mult = ck.number(node.get("multiplier", d.multiplier), (*path, "multiplier"), positive=True)
    mx = ck.number(node.get("max_backoff_ms", d.max_backoff_ms), (*path, "max_backoff_ms"), non_negative=True)
    jit = ck.number(node.get("jitter", d.jitter), (*path, "jitter"), unit_interval=True)
    on = d.on
    if "on" in node:
        codes = [
            ck.integer(c, (*path, "on", i), minimum=400)
            for i, c in enumerate(ck.sequence(node["on"], (*path, "on")) or ())
        ]
        on = tuple(c for c in codes if c is not None)
    return RetryPolicy(
        att or 1,
        back if back is not None else d.backoff_ms,
        mult or d.multiplier,
        mx if mx is not None else d.max_backoff_ms,
        jit if jit is not None else d.jitter,
        on,
    )


def _reactions(ck: Checker, value: Any, path: Path) -> Reactions:
    node = ck.mapping(value, path) or {}
    ck.unknown_keys(node, ("abandon", "retry", "max_user_retries"), path)
    ab = ck.number(node.get("abandon", 0.0), (*path, "abandon"), unit_interval=True) or 0.0
    rt = ck.number(node.get("retry", 0.0), (*path, "retry"), unit_interval=True) or 0.0
    if ab + rt > 1:
        ck.error(path, f"abandon + retry = {ab + rt:g} exceeds 1")
    mx = ck.integer(node.get("max_user_retries", 2), (*path, "max_user_retries"), minimum=0)
    return Reactions(ab, rt, 2 if mx is None else mx)
