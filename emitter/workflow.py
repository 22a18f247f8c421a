"""Workflow files: a Markov chain of API endpoints, loaded from YAML, validated, and written back.

The seed format (``name``, ``entry_points``, ``transitions``, ``exit_points``, ``avg_response_times``) loads
unchanged; every extension key is optional. See ``docs/workflow-format.md`` for the reference.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from .checks import Checker, Path
from .core.dist import Component, Dist, parse_dist
from .errors import ConfigError
from .yamlio import dump_yaml, load_yaml_file, load_yaml_text

__all__ = [
    "EXIT",
    "Endpoint",
    "Param",
    "Service",
    "UserType",
    "Workflow",
    "load_workflow",
    "parse_workflow",
]

EXIT = "$exit"
"""Pseudo-target in a transitions row: the user leaves from this state (the session ends here)."""

DEFAULT_MAX_CALLS = 1000
DEFAULT_LATENCY_SIGMA = 0.4
DEFAULT_LATENCY_MS = 100.0
DEFAULT_ERROR_RATE = 0.05
DEFAULT_ERROR_CODES: dict[int, float] = {500: 0.4, 503: 0.3, 502: 0.1, 429: 0.1, 404: 0.1}
DEFAULT_USER_TYPES: dict[str, float] = {"premium": 0.3, "free": 0.5, "guest": 0.2}
DEFAULT_THINK_TIME = Dist(
    (
        Component(1, 1.0, 5.0, 0.0, (("min", 1.0), ("max", 5.0))),
        Component(1, 10.0, 30.0, 0.0, (("min", 10.0), ("max", 30.0))),
    ),
    (0.8, 0.2),
)
DEFAULT_PARAM_MAX = 99_999
SEARCH_TERMS = (
    "shoes",
    "laptop",
    "headphones",
    "coffee",
    "backpack",
    "watch",
    "jacket",
    "lamp",
    "camera",
    "desk",
)
CATEGORIES = ("electronics", "home", "fashion", "sports", "books", "toys", "garden", "beauty")

_TOP_KEYS = (
    "name",
    "description",
    "entry_points",
    "transitions",
    "exit_points",
    "avg_response_times",
    "endpoints",
    "services",
    "think_time",
    "user_types",
    "max_calls",
    "defaults",
)
_ENDPOINT_KEYS = ("method", "service", "latency", "errors", "params", "query", "success_status", "timeout_ms")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_POST_WORDS = {
    "login",
    "logout",
    "checkout",
    "payment",
    "payments",
    "pay",
    "register",
    "signup",
    "submit",
    "add",
    "create",
    "update",
    "purchase",
    "order",
}
_VERSION_SEGMENT = re.compile(r"^v\d+$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Param:
    """A value for a path placeholder or a query parameter.

    ``kind`` is ``int`` (uniform in [lo, hi]), ``choice`` (``values`` with ``weights``) or ``user``
    (the session's user number).
    """

    name: str
    kind: str
    lo: int = 1
    hi: int = DEFAULT_PARAM_MAX
    values: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()

    def to_spec(self) -> dict[str, Any]:
        if self.kind == "int":
            return {"min": self.lo, "max": self.hi}
        if self.kind == "user":
            return {"from": "user"}
        spec: dict[str, Any] = {"values": list(self.values)}
        if len(set(self.weights)) > 1:
            spec["weights"] = list(self.weights)
        return spec


@dataclass(frozen=True)
class Endpoint:
    route: str
    method: str
    service: str
    latency: Dist
    error_rate: float
    error_codes: tuple[tuple[int, float], ...]
    success_status: int
    params: tuple[Param, ...]
    query: tuple[Param, ...]
    timeout_ms: float | None = None

    @property
    def path_pieces(self) -> list[str]:
        """The route split around its placeholders: ``/a/{id}/b`` -> ``['/a/', '/b']``."""
        return _PLACEHOLDER.split(self.route)[0::2]


@dataclass(frozen=True)
class Service:
    name: str
    calls: tuple[str, ...] = ()
    latency: Dist | None = None
    version: str = "1.0.0"
    timeout_ms: float | None = None  # how long callers wait for it (default 30 s)


@dataclass(frozen=True)
class UserType:
    name: str
    weight: float
    entry_points: Mapping[str, float] | None = None
    transitions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    think_time: Dist | None = None
    latency_factor: float = 1.0

    @property
    def has_overrides(self) -> bool:
        return bool(
            self.entry_points is not None
            or self.transitions
            or self.think_time is not None
            or self.latency_factor != 1.0
        )


@dataclass(frozen=True)
class Workflow:
    """A validated workflow. ``states`` lists every endpoint in a stable order (first appearance)."""

    name: str
    description: str
    entry_points: Mapping[str, float]
    transitions: Mapping[str, Mapping[str, float]]
    exit_points: tuple[str, ...]
    endpoints: Mapping[str, Endpoint]
    services: Mapping[str, Service]
    think_time: Dist
    user_types: tuple[UserType, ...]
    max_calls: int
    source: str = "<memory>"
    warnings: tuple[str, ...] = ()

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(self.endpoints)

    def entry_for(self, user_type: str) -> Mapping[str, float]:
        ut = self.user_type(user_type)
        return ut.entry_points if ut.entry_points is not None else self.entry_points

    def row_for(self, user_type: str, state: str) -> Mapping[str, float]:
        """The declared next-state distribution of ``state`` for ``user_type`` ({} for an exit point)."""
        if state in self.exit_points:
            return {}
        return self.user_type(user_type).transitions.get(state, self.transitions.get(state, {}))

    def user_type(self, name: str) -> UserType:
        for ut in self.user_types:
            if ut.name == name:
                return ut
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The full, normalised form; ``parse_workflow(w.to_dict())`` equals ``w``."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["entry_points"] = dict(self.entry_points)
        out["transitions"] = {s: dict(r) for s, r in self.transitions.items()}
        out["exit_points"] = list(self.exit_points)
        out["avg_response_times"] = {s: _round(e.latency.mean()) for s, e in self.endpoints.items()}
        eps: dict[str, Any] = {}
        for s, e in self.endpoints.items():
            spec: dict[str, Any] = {
                "method": e.method,
                "service": e.service,
                "latency": e.latency.to_spec(),
                "errors": {"rate": e.error_rate, "codes": dict(e.error_codes)},
                "success_status": e.success_status,
            }
            if e.params:
                spec["params"] = {p.name: p.to_spec() for p in e.params}
            spec["query"] = {p.name: p.to_spec() for p in e.query}
            if e.timeout_ms is not None:
                spec["timeout_ms"] = e.timeout_ms
            eps[s] = spec
        out["endpoints"] = eps
        if self.services:
            out["services"] = {
                n: {
                    "calls": list(s.calls),
                    "version": s.version,
                    **({"latency": s.latency.to_spec()} if s.latency else {}),
                    **({"timeout_ms": s.timeout_ms} if s.timeout_ms is not None else {}),
                }
                for n, s in self.services.items()
            }
        out["think_time"] = self.think_time.to_spec()
        uts: dict[str, Any] = {}
        for ut in self.user_types:
            spec = {"weight": ut.weight}
            ov: dict[str, Any] = {}
            if ut.entry_points is not None:
                ov["entry_points"] = dict(ut.entry_points)
            if ut.transitions:
                ov["transitions"] = {s: dict(r) for s, r in ut.transitions.items()}
            if ut.think_time is not None:
                ov["think_time"] = ut.think_time.to_spec()
            if ut.latency_factor != 1.0:
                ov["latency_factor"] = ut.latency_factor
            if ov:
                spec["overrides"] = ov
            uts[ut.name] = spec
        out["user_types"] = uts
        out["max_calls"] = self.max_calls
        return out

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    @property
    def digest(self) -> str:
        """SHA-256 of the normalised form: two files that load to the same workflow share it."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _round(x: float) -> float:
    r = round(x, 6)
    return int(r) if r == int(r) else r


# ---------------------------------------------------------------- loading


def load_workflow(path: str | FsPath) -> Workflow:
    """Read and validate a workflow file; raises :class:`ConfigError` listing every problem."""
    return parse_workflow(load_yaml_file(path), str(path))


def loads_workflow(text: str, source: str = "<string>") -> Workflow:
    return parse_workflow(load_yaml_text(text, source), source)


def parse_workflow(data: Any, source: str = "<memory>") -> Workflow:
    ck = Checker(source)
    top = ck.mapping(data, (), what="a mapping of workflow keys (name, entry_points, transitions, ...)")
    if top is None:
        ck.raise_if_any()
        raise AssertionError("unreachable")
    ck.unknown_keys(top, _TOP_KEYS, ())
    for key in ("entry_points", "transitions", "exit_points"):
        if key not in top:
            ck.error((key,), "missing (required)")
    name = ck.string(top.get("name", FsPath(source).stem or "workflow"), ("name",)) or "workflow"
    description = top.get("description", "")
    if not isinstance(description, str):
        ck.error(("description",), f"expected a string, got {description!r}")
        description = ""

    entry = (
        ck.probabilities(top.get("entry_points"), ("entry_points",), what="entry point")
        if "entry_points" in top
        else None
    )
    transitions = _parse_transitions(ck, top.get("transitions"), ("transitions",)) if "transitions" in top else {}
    exits_node = ck.sequence(top.get("exit_points"), ("exit_points",)) if "exit_points" in top else None
    exits: list[str] = []
    for i, e in enumerate(exits_node or ()):
        s = ck.string(e, ("exit_points", i))
        if s is not None:
            if s in exits:
                ck.error(("exit_points", i), f"exit point {s!r} listed twice")
            elif s == EXIT:
                ck.error(("exit_points", i), f"{EXIT!r} is reserved for the leave-anywhere pseudo-target")
            else:
                exits.append(s)

    avg = ck.mapping(top.get("avg_response_times", {}), ("avg_response_times",)) or {}
    ep_node = ck.mapping(top.get("endpoints", {}), ("endpoints",)) or {}

    # states in order of first appearance
    order: dict[str, None] = {}
    names: list[Any] = [*(entry or {}), *transitions]
    for row in transitions.values():
        names += list(row)
    names += [*exits, *avg, *ep_node]
    for s in names:
        if True:
            if isinstance(s, str) and s != EXIT:
                order.setdefault(s, None)
    states = list(order)
    declared = set(transitions) | set(exits) | set(avg) | set(ep_node)

    defaults = _parse_defaults(ck, top.get("defaults", {}))
    services = _parse_services(ck, top.get("services", {}))
    endpoints: dict[str, Endpoint] = {}
    for s in states:
        endpoints[s] = _parse_endpoint(ck, s, avg, ep_node, defaults, services)

    think = parse_dist(ck, top["think_time"], ("think_time",)) if "think_time" in top else DEFAULT_THINK_TIME
    max_calls = DEFAULT_MAX_CALLS
    if "max_calls" in top:
        max_calls = ck.integer(top["max_calls"], ("max_calls",), minimum=1) or DEFAULT_MAX_CALLS
    user_types = _parse_user_types(ck, top.get("user_types"), states)

    warnings: list[str] = []
    if entry is not None:
        _check_chain(ck, "", entry, transitions, exits, states, declared, warnings, ("entry_points",))
        for ut in user_types:
            if ut.entry_points is None and not ut.transitions:
                continue
            eff_entry = ut.entry_points if ut.entry_points is not None else entry
            eff_rows = {**transitions, **ut.transitions}
            _check_chain(
                ck,
                ut.name,
                eff_entry,
                eff_rows,
                exits,
                states,
                declared,
                [],
                ("user_types", ut.name, "overrides"),
            )
    ck.raise_if_any()
    assert entry is not None
    if think is None:  # pragma: no cover - recorded as a problem above
        raise ConfigError(ck.problems)
    return Workflow(
        name=name,
        description=description,
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


def _parse_transitions(ck: Checker, value: Any, path: Path) -> dict[str, dict[str, float]]:
    node = ck.mapping(value, path)
    out: dict[str, dict[str, float]] = {}
    for state, row in (node or {}).items():
        if not isinstance(state, str) or not state:
            ck.error((*path, str(state)), f"expected an endpoint name, got {state!r}")
            continue
        if row is None or (isinstance(row, Mapping) and not row):
            out[state] = {}
            continue
        parsed = ck.probabilities(row, (*path, state), what="target")
        if parsed is not None:
            out[state] = parsed
    return out


@dataclass(frozen=True)
class _Defaults:
    error_rate: float = DEFAULT_ERROR_RATE
    error_codes: tuple[tuple[int, float], ...] = tuple(DEFAULT_ERROR_CODES.items())
    latency_sigma: float = DEFAULT_LATENCY_SIGMA
    success_status: int = 200


def _parse_errors(ck: Checker, value: Any, path: Path, base: _Defaults) -> tuple[float, tuple[tuple[int, float], ...]]:
    node = ck.mapping(value, path, what="a mapping like {rate: 0.02, codes: {500: 0.5, 503: 0.5}}")
    if node is None:
        return base.error_rate, base.error_codes
    ck.unknown_keys(node, ("rate", "codes"), path)
    rate = ck.number(node.get("rate", base.error_rate), (*path, "rate"), unit_interval=True)
    codes = base.error_codes
    if "codes" in node:
        cnode = ck.mapping(node["codes"], (*path, "codes"))
        parsed: list[tuple[int, float]] = []
        total = 0.0
        for code, p in (cnode or {}).items():
            c = code if isinstance(code, int) and not isinstance(code, bool) else None
            if c is None and isinstance(code, str) and code.isdigit():
                c = int(code)
            if c is None or not 100 <= c <= 599:
                ck.error((*path, "codes", str(code)), f"expected an HTTP status code 100-599, got {code!r}")
                continue
            if c < 400:
                ck.error((*path, "codes", str(code)), f"error status {c} is not an error (expected 400-599)")
                continue
            x = ck.number(p, (*path, "codes", str(code)), unit_interval=True)
            if x is not None:
                parsed.append((c, x))
                total += x
        if parsed and abs(total - 1.0) > 1e-6:
            ck.error((*path, "codes"), f"probabilities sum to {total:.9g}, not 1 (within 1e-6)")
        elif parsed:
            codes = tuple(parsed)
        elif cnode is not None:
            ck.error((*path, "codes"), "no status codes given")
    return (rate if rate is not None else base.error_rate), codes


def _parse_defaults(ck: Checker, value: Any) -> _Defaults:
    node = ck.mapping(value, ("defaults",))
    if not node:
        return _Defaults()
    ck.unknown_keys(node, ("errors", "latency_sigma", "success_status"), ("defaults",))
    base = _Defaults()
    rate, codes = (
        _parse_errors(ck, node["errors"], ("defaults", "errors"), base)
        if "errors" in node
        else (base.error_rate, base.error_codes)
    )
    sigma = ck.number(node.get("latency_sigma", base.latency_sigma), ("defaults", "latency_sigma"), non_negative=True)
    ok = ck.integer(node.get("success_status", 200), ("defaults", "success_status"), minimum=100)
    return _Defaults(rate, codes, base.latency_sigma if sigma is None else sigma, ok or 200)


def _parse_services(ck: Checker, value: Any) -> dict[str, Service]:
    node = ck.mapping(value, ("services",))
    if not node:
        return {}
    out: dict[str, Service] = {}
    for name, spec in node.items():
        path: Path = ("services", str(name))
        if not isinstance(name, str) or not name:
            ck.error(path, f"expected a service name, got {name!r}")
            continue
        snode = ck.mapping(spec if spec is not None else {}, path) or {}
        ck.unknown_keys(snode, ("calls", "latency", "version", "timeout_ms"), path)
        calls: list[str] = []
        for i, c in enumerate(ck.sequence(snode.get("calls", []), (*path, "calls")) or ()):
            cs = ck.string(c, (*path, "calls", i))
            if cs is not None:
                calls.append(cs)
        lat = parse_dist(ck, snode["latency"], (*path, "latency")) if "latency" in snode else None
        version = snode.get("version", "1.0.0")
        if not isinstance(version, str | int | float):
            ck.error((*path, "version"), f"expected a version string, got {version!r}")
            version = "1.0.0"
        timeout = (
            ck.number(snode["timeout_ms"], (*path, "timeout_ms"), positive=True) if "timeout_ms" in snode else None
        )
        out[name] = Service(name, tuple(calls), lat, str(version), timeout)
    for s in out.values():
        for i, c in enumerate(s.calls):
            if c not in out:
                ck.error(("services", s.name, "calls", i), f"unknown service {c!r} (declared: {', '.join(out)})")
            elif c == s.name:
                ck.error(("services", s.name, "calls", i), f"service {c!r} calls itself")
    # cycles make a call tree infinite
    colour: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        colour[n] = 1
        for c in out[n].calls:
            if c not in out or c == n:
                continue
            if colour.get(c) == 1:
                cyc = [*stack[stack.index(c) :], c] if c in stack else [n, c]
                ck.error(("services", n, "calls"), f"call cycle {' -> '.join(cyc)}")
            elif c not in colour:
                visit(c, [*stack, c])
        colour[n] = 2

    for n in out:
        if n not in colour:
            visit(n, [n])
    return out


def _infer_method(route: str) -> str:
    words = {w.lower() for w in re.split(r"[^A-Za-z]+", route) if w}
    if "delete" in words or "remove" in words:
        return "DELETE"
    return "POST" if words & _POST_WORDS else "GET"


def _infer_service(route: str) -> str:
    segs = [s for s in route.split("?", maxsplit=1)[0].split("/") if s and not _PLACEHOLDER.fullmatch(s)]
    segs = [s for s in segs if s.lower() not in ("api", "rest") and not _VERSION_SEGMENT.match(s)]
    return segs[0].lower() if segs else "frontend"


def _default_query(route: str) -> tuple[Param, ...]:
    last = [s for s in route.split("/") if s and not _PLACEHOLDER.fullmatch(s)]
    word = last[-1].lower() if last else ""
    if word == "search":
        return (Param("q", "choice", values=SEARCH_TERMS, weights=(1.0,) * len(SEARCH_TERMS)),)
    if word in ("browse", "products", "catalog"):
        return (
            Param("category", "choice", values=CATEGORIES, weights=(1.0,) * len(CATEGORIES)),
            Param("page", "int", 1, 5),
        )
    return ()


def _parse_param(ck: Checker, name: str, value: Any, path: Path) -> Param | None:
    node = ck.mapping(value, path, what="a mapping like {min: 1, max: 500} or {values: [a, b]}")
    if node is None:
        return None
    ck.unknown_keys(node, ("min", "max", "values", "weights", "from"), path)
    if node.get("from") == "user":
        return Param(name, "user")
    if "from" in node:
        ck.error((*path, "from"), f"expected 'user', got {node['from']!r}")
        return None
    if "values" in node:
        vals = ck.sequence(node["values"], (*path, "values"))
        if vals is None:
            return None
        if not vals:
            ck.error((*path, "values"), "empty list")
            return None
        strs = tuple(str(v) for v in vals)
        weights: tuple[float, ...] = (1.0,) * len(strs)
        if "weights" in node:
            ws = ck.sequence(node["weights"], (*path, "weights")) or []
            if len(ws) != len(strs):
                ck.error((*path, "weights"), f"{len(ws)} weights for {len(strs)} values")
                return None
            parsed = [ck.number(w, (*path, "weights", i), non_negative=True) for i, w in enumerate(ws)]
            if any(w is None for w in parsed):
                return None
            weights = tuple(float(w) for w in parsed if w is not None)
            if math.fsum(weights) <= 0:
                ck.error((*path, "weights"), "weights sum to 0")
                return None
        return Param(name, "choice", values=strs, weights=weights)
    lo = ck.integer(node.get("min", 1), (*path, "min"), minimum=0)
    hi = ck.integer(node.get("max", DEFAULT_PARAM_MAX), (*path, "max"), minimum=0)
    if lo is None or hi is None:
        return None
    if hi < lo:
        ck.error((*path, "max"), f"max {hi} is below min {lo}")
        return None
    return Param(name, "int", lo, hi)


def _parse_endpoint(
    ck: Checker,
    route: str,
    avg: Mapping[Any, Any],
    ep_node: Mapping[Any, Any],
    d: _Defaults,
    services: Mapping[str, Service],
) -> Endpoint:
    path: Path = ("endpoints", route)
    node = ck.mapping(ep_node.get(route) or {}, path) or {}
    ck.unknown_keys(node, _ENDPOINT_KEYS, path)
    method = node.get("method", _infer_method(route))
    if not isinstance(method, str) or method.upper() not in _METHODS:
        ck.error((*path, "method"), f"unknown HTTP method {method!r} (expected one of: {', '.join(_METHODS)})")
        method = "GET"
    service = node.get("service", _infer_service(route))
    if not isinstance(service, str) or not service:
        ck.error((*path, "service"), f"expected a service name, got {service!r}")
        service = "frontend"
    elif services and service not in services:
        ck.error(
            (*path, "service"),
            f"unknown service {service!r} (declared under services: {', '.join(services)})",
        )
    latency: Dist | None
    if "latency" in node:
        latency = parse_dist(ck, node["latency"], (*path, "latency"))
    elif route in avg:
        mean = ck.number(avg[route], ("avg_response_times", route), positive=True)
        latency = Dist.lognormal_mean(mean, d.latency_sigma) if mean is not None else None
    else:
        latency = Dist.lognormal_mean(DEFAULT_LATENCY_MS, d.latency_sigma)
    rate, codes = (
        _parse_errors(ck, node["errors"], (*path, "errors"), d) if "errors" in node else (d.error_rate, d.error_codes)
    )
    success = ck.integer(node.get("success_status", d.success_status), (*path, "success_status"), minimum=100) or 200
    if not 100 <= success < 400:
        ck.error((*path, "success_status"), f"expected a 1xx-3xx status, got {success}")
    placeholders = _PLACEHOLDER.findall(route)
    pnode = ck.mapping(node.get("params", {}), (*path, "params")) or {}
    params: list[Param] = []
    for name in placeholders:
        if name in pnode:
            p = _parse_param(ck, name, pnode[name], (*path, "params", name))
            if p is not None:
                params.append(p)
        elif name in ("user_id", "uid"):
            params.append(Param(name, "user"))
        else:
            params.append(Param(name, "int"))
    for name in pnode:
        if name not in placeholders:
            ck.error((*path, "params", str(name)), f"route {route!r} has no placeholder {{{name}}}")
    if "query" in node:
        qnode = ck.mapping(node["query"] if node["query"] is not None else {}, (*path, "query")) or {}
        query = []
        for name, spec in qnode.items():
            q = _parse_param(ck, str(name), spec, (*path, "query", str(name)))
            if q is not None:
                query.append(q)
        query_t = tuple(query)
    else:
        query_t = _default_query(route)
    timeout = None
    if "timeout_ms" in node:
        timeout = ck.number(node["timeout_ms"], (*path, "timeout_ms"), positive=True)
    if latency is None:
        latency = Dist.lognormal_mean(DEFAULT_LATENCY_MS)
    return Endpoint(route, method.upper(), service, latency, rate, codes, success, tuple(params), query_t, timeout)


def _parse_user_types(ck: Checker, value: Any, states: list[str]) -> list[UserType]:
    if value is None:
        return [UserType(n, w) for n, w in DEFAULT_USER_TYPES.items()]
    node = ck.mapping(value, ("user_types",), what="a mapping of user type -> weight or {weight, overrides}")
    if node is None:
        return [UserType(n, w) for n, w in DEFAULT_USER_TYPES.items()]
    out: list[UserType] = []
    weights: dict[str, float] = {}
    for name, spec in node.items():
        path: Path = ("user_types", str(name))
        if not isinstance(name, str) or not name:
            ck.error(path, f"expected a user type name, got {name!r}")
            continue
        if isinstance(spec, Mapping):
            ck.unknown_keys(spec, ("weight", "overrides"), path)
            w = ck.number(spec.get("weight"), (*path, "weight"), unit_interval=True)
            ov = ck.mapping(spec.get("overrides", {}), (*path, "overrides")) or {}
        else:
            w = ck.number(spec, path, unit_interval=True)
            ov = {}
        if w is None:
            continue
        weights[name] = w
        opath: Path = (*path, "overrides")
        ck.unknown_keys(ov, ("entry_points", "transitions", "think_time", "latency_factor"), opath)
        entry = (
            ck.probabilities(ov["entry_points"], (*opath, "entry_points"), what="entry point")
            if "entry_points" in ov
            else None
        )
        rows = _parse_transitions(ck, ov["transitions"], (*opath, "transitions")) if "transitions" in ov else {}
        for s in rows:
            if s not in states:
                ck.error((*opath, "transitions", s), f"unknown state {s!r} (overrides may only replace rows)")
        think = parse_dist(ck, ov["think_time"], (*opath, "think_time")) if "think_time" in ov else None
        factor = 1.0
        if "latency_factor" in ov:
            factor = ck.number(ov["latency_factor"], (*opath, "latency_factor"), positive=True) or 1.0
        out.append(UserType(name, w, entry, rows, think, factor))
    total = math.fsum(weights.values())
    if weights and abs(total - 1.0) > 1e-6:
        ck.error(("user_types",), f"weights sum to {total:.9g}, not 1 (within 1e-6)")
    if not out and not ck.problems:
        ck.error(("user_types",), "no user types given")
    return out


def _check_chain(
    ck: Checker,
    who: str,
    entry: Mapping[str, float],
    rows: Mapping[str, Mapping[str, float]],
    exits: list[str],
    states: list[str],
    declared: set[str],
    warnings: list[str],
    entry_path: Path,
) -> None:
    """Structure checks: unknown targets, dead ends, unreachable states, states that cannot reach an exit."""
    tpath: Path = ("transitions",) if not who else (*entry_path, "transitions")
    label = f" for user type {who!r}" if who else ""
    exit_set = set(exits)
    bad = False
    for s in entry:
        if s not in declared or (s not in rows and s not in exit_set):
            ck.error(
                (*entry_path, "entry_points", s) if who else ("entry_points", s),
                f"unknown entry point {s!r}{label}: not an exit point and has no transitions",
            )
            bad = True
    for s, row in rows.items():
        for t in row:
            if t != EXIT and t not in rows and t not in exit_set:
                ck.error(
                    (*tpath, s, t),
                    f"unknown target {t!r} from state {s!r}{label}: not an exit point and has no transitions",
                )
                bad = True
    for s in states:
        if s in exit_set:
            if s in rows and rows[s] and not who:
                warnings.append(
                    f"transitions -> {s}: exit point has transitions; they are never used "
                    "(reaching an exit point ends the session)"
                )
            continue
        if s in rows and not rows[s]:
            ck.error((*tpath, s), f"dead end{label}: state {s!r} has no transitions and is not an exit point")
            bad = True
        elif s not in rows and s in declared and s not in entry and not who:
            ck.error(("transitions", s), f"dead end: state {s!r} has no transitions and is not an exit point")
            bad = True
    if bad:
        return
    # reachability over edges with p > 0
    reach: set[str] = set()
    todo = deque(s for s, p in entry.items() if p > 0)
    while todo:
        s = todo.popleft()
        if s in reach:
            continue
        reach.add(s)
        if s in exit_set:
            continue
        todo.extend(t for t, p in rows.get(s, {}).items() if p > 0 and t != EXIT)
    for s in states:
        if s not in reach and not who:
            ck.error(
                ("transitions", s) if s in rows else ("exit_points",) if s in exit_set else ("endpoints", s),
                f"unreachable state {s!r}: no path from an entry point reaches it",
            )
    # every reachable state must reach an exit (an exit point, or a $exit target)
    can_exit = set(exit_set) | {s for s, r in rows.items() if r.get(EXIT, 0) > 0}
    changed = True
    while changed:
        changed = False
        for s, r in rows.items():
            if s not in can_exit and s not in exit_set and any(p > 0 and t in can_exit for t, p in r.items()):
                can_exit.add(s)
                changed = True
    for s in states:
        if s in reach and s not in can_exit:
            ck.error((*tpath, s), f"state {s!r}{label} cannot reach an exit: sessions entering it never end")
