"""A workflow as the core sees it: validated, typed, plain data (what :mod:`emitter.inputs` compiles files into).

Nothing here reads files or knows YAML. :meth:`Workflow.to_dict` is the normalised form (every default
spelled out); its digest identifies the workflow in a run's identity, so two files that load to the same
workflow share it. ``states`` lists every endpoint in a stable order (first appearance in the file).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .dist import Dist

__all__ = ["EXIT", "Endpoint", "Param", "Service", "UserType", "Workflow"]

EXIT = "$exit"
"""Pseudo-target in a transitions row: the user leaves from this state (the session ends here)."""

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_PARAM_MAX = 99_999


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
        return PLACEHOLDER.split(self.route)[0::2]


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
        """The full, normalised form; loading it back gives an equal workflow (same :attr:`digest`)."""
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

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the normalised form: two files that load to the same workflow share it."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _round(x: float) -> float:
    r = round(x, 6)
    return int(r) if r == int(r) else r
