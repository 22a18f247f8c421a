"""Workflow files -> the core's :class:`~emitter.core.spec.Workflow`: loaded, checked, written back.

The file is converted against its declared spec (:class:`.specs.WorkflowFile`), every bad value reported
at once; then defaults fill in what it leaves out (:mod:`.defaults`), and what no single value shows is
checked: probabilities that must sum to 1, status codes, placeholders, the chain and the service graph
(:mod:`.graph`). Every problem is one line, ``FILE: key -> path: message naming the value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import Any

from msgspec import UNSET

from ..core.dist import Dist
from ..core.limits import MAX_STATES
from ..core.spec import EXIT, PLACEHOLDER, Endpoint, Param, Service, UserType, Workflow
from .convert import INVALID, Path, Problems, convert, valid
from .defaults import (
    DEFAULT_ERROR_CODES,
    DEFAULT_ERROR_RATE,
    DEFAULT_LATENCY_MS,
    DEFAULT_LATENCY_SIGMA,
    DEFAULT_MAX_CALLS,
    DEFAULT_THINK_TIME,
    DEFAULT_USER_TYPES,
    METHODS,
    default_query,
    infer_method,
    infer_service,
)
from .dist import to_dist
from .graph import check_calls, check_chain
from .specs import EndpointSpec, ErrorsSpec, ParamSpec, ServiceSpec, UserTypeSpec, WorkflowFile
from .yamlio import dump_yaml, load_yaml_file, load_yaml_text

__all__ = ["load_workflow", "loads_workflow", "parse_workflow", "save_workflow", "workflow", "workflow_yaml"]


def load_workflow(path: str | FsPath) -> Workflow:
    """Read and validate a workflow file; raises :class:`ConfigError` listing every problem."""
    return parse_workflow(load_yaml_file(path), str(path))


def loads_workflow(text: str, source: str = "<string>") -> Workflow:
    return parse_workflow(load_yaml_text(text, source), source)


def workflow_yaml(wf: Workflow) -> str:
    """The normalised form as YAML; loading it back gives the same workflow (the same digest)."""
    return dump_yaml(wf.to_dict())


def save_workflow(wf: Workflow, path: str | FsPath) -> FsPath:
    """Write the workflow as YAML (:func:`workflow_yaml`); :func:`load_workflow` reads it back equal."""
    p = FsPath(path)
    p.write_text(workflow_yaml(wf), encoding="utf-8")
    return p


def workflow(name: str, **fields: Any) -> Workflow:
    """A workflow built in Python from the file format's keys, like the seed's ``WorkflowDefinition``::

        emitter.workflow("api", entry_points={"/login": 1.0}, transitions={"/login": {"/logout": 1.0}},
                         exit_points=["/logout"], avg_response_times={"/login": 120})

    It is checked exactly as a file is (a :class:`ConfigError` lists every problem, naming ``<python>``
    and the key path). Sets are taken as lists (``exit_points={"/logout"}``)."""
    data = {"name": name, **{k: sorted(v) if isinstance(v, set | frozenset) else v for k, v in fields.items()}}
    return parse_workflow(data, "<python>")


class _Defaults:
    def __init__(self, rate: float, codes: tuple[tuple[int, float], ...], sigma: float, success: int) -> None:
        self.error_rate, self.error_codes, self.latency_sigma, self.success_status = rate, codes, sigma, success


def parse_workflow(data: Any, source: str = "<memory>") -> Workflow:
    """A workflow from the data of a file (a mapping); raises :class:`ConfigError` listing every problem."""
    probs = Problems(source)
    f = convert(data, WorkflowFile, probs)
    if f is INVALID:
        probs.raise_if_any()
    assert isinstance(f, WorkflowFile)
    name = f.name if isinstance(f.name, str) else (FsPath(source).stem or "workflow")
    entry = _probabilities(probs, f.entry_points, ("entry_points",), what="entry point")
    transitions: dict[str, dict[str, float]] = {}
    for state, row in (f.transitions if isinstance(f.transitions, dict) else {}).items():
        if row is None or (isinstance(row, dict) and not row):
            transitions[state] = {}
            continue
        parsed = _probabilities(probs, row, ("transitions", state), what="target")
        if parsed is not None:
            transitions[state] = parsed
    exits: list[str] = []
    for i, e in enumerate(f.exit_points if isinstance(f.exit_points, list) else ()):
        if e is INVALID:
            continue
        if e in exits:
            probs.error(("exit_points", i), f"exit point {e!r} listed twice")
        elif e == EXIT:
            probs.error(("exit_points", i), f"{EXIT!r} is reserved for the leave-anywhere pseudo-target")
        else:
            exits.append(e)
    avg = f.avg_response_times if isinstance(f.avg_response_times, dict) else {}
    ep_specs = f.endpoints if isinstance(f.endpoints, dict) else {}

    # states in order of first appearance
    order: dict[str, None] = {}
    names: list[Any] = [*(entry or {}), *transitions]
    for row in transitions.values():
        names += list(row)
    names += [*exits, *avg, *ep_specs]
    for s in names:
        if isinstance(s, str) and s != EXIT:
            order.setdefault(s, None)
    states = list(order)
    declared = set(transitions) | set(exits) | set(avg) | set(ep_specs)
    if len(states) > MAX_STATES:
        probs.error(("transitions",), f"at most {MAX_STATES:,} endpoints, got {len(states):,}")
        probs.raise_if_any()
    for s in states:
        if "?" in s or "#" in s:
            where: Path = (
                ("transitions", s)
                if s in transitions
                else ("endpoints", s)
                if s in ep_specs
                else ("entry_points", s)
                if entry and s in entry
                else ("exit_points",)
            )
            probs.error(
                where,
                f"a route is a path: {s!r} holds {'?' if '?' in s else '#'} "
                f"(query parameters are declared under endpoints -> {s.split('?')[0]} -> query)",
            )

    d = _defaults(probs, f)
    services = _services(probs, f.services if isinstance(f.services, dict) else {})
    endpoints = {s: _endpoint(probs, s, avg, ep_specs.get(s), d, services) for s in states}
    think = to_dist(f.think_time, probs, ("think_time",)) if f.think_time is not UNSET else DEFAULT_THINK_TIME
    max_calls = f.max_calls if isinstance(f.max_calls, int) else DEFAULT_MAX_CALLS
    user_types = _user_types(probs, f.user_types, states)

    warnings: list[str] = []
    if entry is not None and valid(f.entry_points, f.transitions):
        check_chain(probs, "", entry, transitions, exits, states, declared, warnings, ("entry_points",))
        for ut in user_types:
            if ut.entry_points is None and not ut.transitions:
                continue
            check_chain(
                probs,
                ut.name,
                ut.entry_points if ut.entry_points is not None else entry,
                {**transitions, **ut.transitions},
                exits,
                states,
                declared,
                [],
                ("user_types", ut.name, "overrides"),
            )
    probs.raise_if_any()
    assert entry is not None and think is not None
    return Workflow(
        name=name,
        description=f.description,
        entry_points=entry,
        transitions=transitions,
        exit_points=tuple(exits),
        endpoints=endpoints,
        services=services,
        think_time=think,
        user_types=tuple(user_types),
        max_calls=max_calls,
        source=source,
        warnings=tuple(f"{source}: {w}" for w in warnings),
    )


def _probabilities(probs: Problems, row: Any, path: Path, *, what: str) -> dict[str, float] | None:
    """A mapping name -> probability that sums to 1 (within 1e-6); None when unusable."""
    if not isinstance(row, dict) or not valid(row):
        return None
    if not row:
        probs.error(path, f"no {what} given")
        return None
    total = math.fsum(row.values())
    if abs(total - 1.0) > 1e-6:
        probs.error(path, f"probabilities sum to {total:.9g}, not 1 (within 1e-6)")
        return None
    return dict(row)


def _errors(
    probs: Problems, spec: ErrorsSpec, path: Path, base: _Defaults
) -> tuple[float, tuple[tuple[int, float], ...]]:
    rate = base.error_rate if spec.rate is UNSET or spec.rate is INVALID else spec.rate
    codes = base.error_codes
    if isinstance(spec.codes, dict):
        parsed: list[tuple[int, float]] = []
        total = 0.0
        ok = True
        for code, p in spec.codes.items():
            c = code if isinstance(code, int) and not isinstance(code, bool) else None
            if c is None and isinstance(code, str) and code.isdigit():
                c = int(code)
            if c is None or not 100 <= c <= 599:
                probs.error((*path, "codes", str(code)), f"expected an HTTP status code 100-599, got {code!r}")
                continue
            if c < 400:
                probs.error((*path, "codes", str(code)), f"error status {c} is not an error (expected 400-599)")
                continue
            if p is INVALID:
                ok = False
                continue
            parsed.append((c, p))
            total += p
        if parsed and ok and abs(total - 1.0) > 1e-6:
            probs.error((*path, "codes"), f"probabilities sum to {total:.9g}, not 1 (within 1e-6)")
        elif parsed:
            codes = tuple(parsed)
        elif not spec.codes:
            probs.error((*path, "codes"), "no status codes given")
    return rate, codes


def _defaults(probs: Problems, f: WorkflowFile) -> _Defaults:
    base = _Defaults(DEFAULT_ERROR_RATE, tuple(DEFAULT_ERROR_CODES.items()), DEFAULT_LATENCY_SIGMA, 200)
    spec = f.defaults
    if spec is INVALID:
        return base
    rate, codes = (
        _errors(probs, spec.errors, ("defaults", "errors"), base)
        if isinstance(spec.errors, ErrorsSpec)
        else (base.error_rate, base.error_codes)
    )
    sigma = spec.latency_sigma if isinstance(spec.latency_sigma, float) else base.latency_sigma
    ok = spec.success_status if isinstance(spec.success_status, int) else 200
    return _Defaults(rate, codes, sigma, ok)


def _services(probs: Problems, specs: Mapping[str, Any]) -> dict[str, Service]:
    out: dict[str, Service] = {}
    for name, spec in specs.items():
        if not isinstance(spec, ServiceSpec):
            continue
        calls = tuple(c for c in spec.calls if c is not INVALID) if isinstance(spec.calls, list) else ()
        lat = to_dist(spec.latency, probs, ("services", name, "latency")) if spec.latency is not UNSET else None
        version = str(spec.version) if spec.version is not INVALID else "1.0.0"
        timeout = spec.timeout_ms if isinstance(spec.timeout_ms, float) else None
        out[name] = Service(name, calls, lat, version, timeout)
    check_calls(probs, {n: s.calls for n, s in out.items()})
    return out


def _param(probs: Problems, name: str, spec: ParamSpec, path: Path) -> Param | None:
    if spec.source is not UNSET:
        if spec.source == "user":
            return Param(name, "user")
        probs.error((*path, "from"), f"expected 'user', got {spec.source!r}")
        return None
    if spec.values is not UNSET:
        vals = spec.values
        if not isinstance(vals, list):
            return None
        if not vals:
            probs.error((*path, "values"), "empty list")
            return None
        strs = tuple(str(v) for v in vals)
        weights: tuple[float, ...] = (1.0,) * len(strs)
        if spec.weights is not UNSET:
            ws = spec.weights if isinstance(spec.weights, list) else []
            if len(ws) != len(strs):
                probs.error((*path, "weights"), f"{len(ws)} weights for {len(strs)} values")
                return None
            if not valid(ws):
                return None
            weights = tuple(float(w) for w in ws)
            if math.fsum(weights) <= 0:
                probs.error((*path, "weights"), "weights sum to 0")
                return None
        return Param(name, "choice", values=strs, weights=weights)
    lo = spec.min
    hi = 99_999 if spec.max is UNSET else spec.max
    if lo is INVALID or hi is INVALID:
        return None
    if hi < lo:
        probs.error((*path, "max"), f"max {hi} is below min {lo}")
        return None
    return Param(name, "int", lo, hi)


def _endpoint(
    probs: Problems,
    route: str,
    avg: Mapping[str, Any],
    spec: EndpointSpec | None,
    d: _Defaults,
    services: Mapping[str, Service],
) -> Endpoint:
    path: Path = ("endpoints", route)
    node = spec if isinstance(spec, EndpointSpec) else EndpointSpec()
    method = infer_method(route) if node.method is UNSET else node.method
    if not isinstance(method, str) or method.upper() not in METHODS:
        probs.error((*path, "method"), f"unknown HTTP method {method!r} (expected one of: {', '.join(METHODS)})")
        method = "GET"
    service = infer_service(route) if node.service is UNSET else node.service
    if not isinstance(service, str) or not service:
        probs.error((*path, "service"), f"expected a service name, got {service!r}")
        service = "frontend"
    elif services and service not in services:
        probs.error((*path, "service"), f"unknown service {service!r} (declared under services: {', '.join(services)})")
    latency: Dist | None
    if node.latency is not UNSET:
        latency = to_dist(node.latency, probs, (*path, "latency"))
    elif route in avg:
        mean = avg[route]
        latency = Dist.lognormal_mean(mean, d.latency_sigma) if mean is not INVALID else None
    else:
        latency = Dist.lognormal_mean(DEFAULT_LATENCY_MS, d.latency_sigma)
    rate, codes = (
        _errors(probs, node.errors, (*path, "errors"), d)
        if isinstance(node.errors, ErrorsSpec)
        else (d.error_rate, d.error_codes)
    )
    success = d.success_status if node.success_status is UNSET else node.success_status
    if success is INVALID:
        success = 200
    elif not 100 <= success < 400:
        probs.error((*path, "success_status"), f"expected a 1xx-3xx status, got {success}")
    placeholders = PLACEHOLDER.findall(route)
    pspecs = node.params if isinstance(node.params, dict) else {}
    params: list[Param] = []
    for name in placeholders:
        if name in pspecs:
            ps = pspecs[name]
            p = _param(probs, name, ps, (*path, "params", name)) if isinstance(ps, ParamSpec) else None
            if p is not None:
                params.append(p)
        elif name in ("user_id", "uid"):
            params.append(Param(name, "user"))
        else:
            params.append(Param(name, "int"))
    for name in pspecs:
        if name not in placeholders:
            probs.error((*path, "params", str(name)), f"route {route!r} has no placeholder {{{name}}}")
    if node.query is UNSET:
        query = default_query(route)
    else:
        qspecs = node.query if isinstance(node.query, dict) else {}
        query = tuple(
            q
            for q in (
                _param(probs, str(n), s, (*path, "query", str(n))) if isinstance(s, ParamSpec) else None
                for n, s in qspecs.items()
            )
            if q is not None
        )
    timeout = node.timeout_ms if isinstance(node.timeout_ms, float) else None
    if latency is None:
        latency = Dist.lognormal_mean(DEFAULT_LATENCY_MS)
    return Endpoint(route, method.upper(), service, latency, rate, codes, success, tuple(params), query, timeout)


def _user_types(probs: Problems, specs: Any, states: list[str]) -> list[UserType]:
    if specs is UNSET or specs is INVALID:
        return [UserType(n, w) for n, w in DEFAULT_USER_TYPES.items()]
    out: list[UserType] = []
    weights: dict[str, float] = {}
    for name, spec in specs.items():
        path: Path = ("user_types", str(name))
        if isinstance(spec, UserTypeSpec):
            w, ov = spec.weight, spec.overrides
        else:
            w, ov = spec, None
        if w is INVALID:
            continue
        weights[name] = w
        opath: Path = (*path, "overrides")
        entry: dict[str, float] | None = None
        rows: dict[str, dict[str, float]] = {}
        think: Dist | None = None
        factor = 1.0
        if ov is not None and ov is not INVALID:
            if ov.entry_points is not UNSET:
                entry = _probabilities(probs, ov.entry_points, (*opath, "entry_points"), what="entry point")
            if isinstance(ov.transitions, dict):
                for s, row in ov.transitions.items():
                    if row is None or (isinstance(row, dict) and not row):
                        rows[s] = {}
                        continue
                    parsed = _probabilities(probs, row, (*opath, "transitions", s), what="target")
                    if parsed is not None:
                        rows[s] = parsed
            for s in rows:
                if s not in states:
                    probs.error((*opath, "transitions", s), f"unknown state {s!r} (overrides may only replace rows)")
            think = to_dist(ov.think_time, probs, (*opath, "think_time")) if ov.think_time is not UNSET else None
            if isinstance(ov.latency_factor, float):
                factor = ov.latency_factor
        out.append(UserType(name, w, entry, rows or {}, think, factor))
    total = math.fsum(weights.values())
    if len(out) > MAX_STATES:
        probs.error(("user_types",), f"at most {MAX_STATES:,} user types, got {len(out):,}")
    if weights and abs(total - 1.0) > 1e-6:
        probs.error(("user_types",), f"weights sum to {total:.9g}, not 1 (within 1e-6)")
    if not out and not probs.problems:
        probs.error(("user_types",), "no user types given")
    return out
