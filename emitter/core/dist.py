"""Positive-valued distributions (latencies, think times, pauses), parsed from YAML and sampled in bulk.

A distribution is a mixture of components; each component is one of a few kinds whose draws are a
transform of one standard normal or one uniform. A :class:`DistTable` packs the distributions of many
owners (one per endpoint, say) so that a whole vector of owners is sampled with a handful of numpy calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..checks import Checker, Path
from ._kernels import categorical

__all__ = ["Component", "Dist", "DistTable", "parse_dist"]

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99

CONSTANT, UNIFORM, EXPONENTIAL, LOGNORMAL, NORMAL = range(5)
_KIND_NAMES = {
    "constant": CONSTANT,
    "uniform": UNIFORM,
    "exponential": EXPONENTIAL,
    "lognormal": LOGNORMAL,
    "normal": NORMAL,
}
_KEYS = {
    "constant": ("value",),
    "uniform": ("min", "max"),
    "exponential": ("mean",),
    "lognormal": ("p50", "p99", "mean", "stddev", "mu", "sigma"),
    "normal": ("mean", "stddev", "min"),
}


@dataclass(frozen=True)
class Component:
    """One kind with two parameters: constant(value), uniform(lo, hi), exponential(mean),
    lognormal(mu, sigma) of the log, normal(mean, stddev) clipped at ``floor``."""

    kind: int
    a: float
    b: float = 0.0
    floor: float = 0.0
    spec: tuple[tuple[str, float], ...] = ()

    def mean(self) -> float:
        if self.kind == CONSTANT:
            return self.a
        if self.kind == UNIFORM:
            return (self.a + self.b) / 2
        if self.kind == EXPONENTIAL:
            return self.a
        if self.kind == LOGNORMAL:
            return math.exp(self.a + self.b * self.b / 2)
        return self.a  # normal (ignoring the clip)


@dataclass(frozen=True)
class Dist:
    components: tuple[Component, ...]
    weights: tuple[float, ...]

    def mean(self) -> float:
        return math.fsum(w * c.mean() for w, c in zip(self.weights, self.components, strict=True))

    def scaled(self, factor: float) -> Dist:
        """The same shape with every value multiplied by ``factor`` (used for latency factors)."""
        comps = []
        for c in self.components:
            if c.kind == LOGNORMAL:
                comps.append(Component(c.kind, c.a + math.log(factor), c.b, 0.0, c.spec))
            elif c.kind == NORMAL:
                comps.append(Component(c.kind, c.a * factor, c.b * factor, c.floor * factor, c.spec))
            else:
                comps.append(Component(c.kind, c.a * factor, c.b * factor, 0.0, c.spec))
        return Dist(tuple(comps), self.weights)

    @staticmethod
    def lognormal_mean(mean: float, sigma: float = 0.4) -> Dist:
        mu = math.log(mean) - sigma * sigma / 2
        return Dist((Component(LOGNORMAL, mu, sigma, 0.0, (("mean", mean), ("sigma", sigma))),), (1.0,))

    def to_spec(self) -> dict[str, Any]:
        """The YAML form this distribution was read from (normalised), for writing workflows back."""

        def one(c: Component) -> dict[str, Any]:
            name = next(k for k, v in _KIND_NAMES.items() if v == c.kind)
            return {"dist": name, **dict(c.spec)}

        if len(self.components) == 1:
            return one(self.components[0])
        return {
            "dist": "mixture",
            "components": [{"weight": w, **one(c)} for w, c in zip(self.weights, self.components, strict=True)],
        }


def _component(ck: Checker, node: Mapping[str, Any], path: Path, kind_name: str) -> Component | None:
    keys = _KEYS[kind_name]
    ck.unknown_keys({k: v for k, v in node.items() if k not in ("dist", "weight")}, keys, path)

    def num(key: str, **kw: bool) -> float | None:
        if key not in node:
            ck.error((*path, key), f"missing for a {kind_name} distribution")
            return None
        return ck.number(node[key], (*path, key), **kw)

    if kind_name == "constant":
        v = num("value", positive=True)
        return None if v is None else Component(CONSTANT, v, 0.0, 0.0, (("value", v),))
    if kind_name == "uniform":
        lo, hi = num("min", non_negative=True), num("max", positive=True)
        if lo is None or hi is None:
            return None
        if hi < lo:
            ck.error((*path, "max"), f"max {hi:g} is below min {lo:g}")
            return None
        return Component(UNIFORM, lo, hi, 0.0, (("min", lo), ("max", hi)))
    if kind_name == "exponential":
        m = num("mean", positive=True)
        return None if m is None else Component(EXPONENTIAL, m, 0.0, 0.0, (("mean", m),))
    if kind_name == "normal":
        m, s = num("mean", positive=True), num("stddev", non_negative=True)
        floor = ck.number(node.get("min", 0.0), (*path, "min"), non_negative=True)
        if m is None or s is None or floor is None:
            return None
        spec = (("mean", m), ("stddev", s)) + ((("min", floor),) if "min" in node else ())
        return Component(NORMAL, m, s, floor, spec)
    # lognormal: exactly one parameterisation
    given = {k for k in ("p50", "p99", "mean", "stddev", "mu", "sigma") if k in node}
    if given == {"p50", "p99"}:
        p50, p99 = num("p50", positive=True), num("p99", positive=True)
        if p50 is None or p99 is None:
            return None
        if p99 <= p50:
            ck.error((*path, "p99"), f"p99 {p99:g} must be above p50 {p50:g}")
            return None
        return Component(
            LOGNORMAL,
            math.log(p50),
            (math.log(p99) - math.log(p50)) / _Z99,
            0.0,
            (("p50", p50), ("p99", p99)),
        )
    if given == {"mean", "stddev"}:
        m, s = num("mean", positive=True), num("stddev", positive=True)
        if m is None or s is None:
            return None
        sigma2 = math.log1p((s / m) ** 2)
        return Component(LOGNORMAL, math.log(m) - sigma2 / 2, math.sqrt(sigma2), 0.0, (("mean", m), ("stddev", s)))
    if given == {"mean", "sigma"}:
        m, sg = num("mean", positive=True), num("sigma", non_negative=True)
        if m is None or sg is None:
            return None
        return Component(LOGNORMAL, math.log(m) - sg * sg / 2, sg, 0.0, (("mean", m), ("sigma", sg)))
    if given == {"mu", "sigma"}:
        mu = ck.number(node["mu"], (*path, "mu"))
        sg = num("sigma", non_negative=True)
        if mu is None or sg is None:
            return None
        return Component(LOGNORMAL, mu, sg, 0.0, (("mu", mu), ("sigma", sg)))
    ck.error(
        path,
        f"a lognormal needs exactly one of: p50+p99, mean+stddev, mean+sigma, mu+sigma; got {sorted(given) or 'none'}",
    )
    return None


def parse_dist(ck: Checker, value: Any, path: Path) -> Dist | None:
    """Parse ``{dist: lognormal, p50: 80, p99: 400}`` and friends; a bare number means a constant."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = ck.number(value, path, positive=True)
        return None if v is None else Dist((Component(CONSTANT, v, 0.0, 0.0, (("value", v),)),), (1.0,))
    node = ck.mapping(value, path, what="a distribution such as {dist: lognormal, p50: 80, p99: 400}")
    if node is None:
        return None
    kind = node.get("dist")
    if kind == "mixture":
        ck.unknown_keys(node, ("dist", "components"), path)
        comps_node = ck.sequence(node.get("components"), (*path, "components"))
        if comps_node is None:
            return None
        comps: list[Component] = []
        weights: list[float] = []
        for i, c in enumerate(comps_node):
            cpath = (*path, "components", i)
            cnode = ck.mapping(c, cpath)
            if cnode is None:
                continue
            w = ck.number(cnode.get("weight"), (*cpath, "weight"), positive=True)
            sub = cnode.get("dist")
            if sub not in _KEYS:
                ck.error((*cpath, "dist"), f"unknown distribution {sub!r} (expected one of: {', '.join(_KEYS)})")
                continue
            comp = _component(ck, cnode, cpath, sub)
            if comp is not None and w is not None:
                comps.append(comp)
                weights.append(w)
        if not comps:
            if comps_node is not None and not comps_node:
                ck.error((*path, "components"), "a mixture needs at least one component")
            return None
        total = math.fsum(weights)
        return Dist(tuple(comps), tuple(w / total for w in weights))
    if kind not in _KEYS:
        ck.error((*path, "dist"), f"unknown distribution {kind!r} (expected one of: {', '.join(_KEYS)}, mixture)")
        return None
    comp = _component(ck, node, path, kind)
    return None if comp is None else Dist((comp,), (1.0,))


class DistTable:
    """Distributions of many owners packed into arrays; ``sample(owner, rng)`` draws one value per row.

    Values come back multiplied by ``scale`` and rounded to integers (e.g. ms -> µs), at least ``minimum``.
    """

    def __init__(self, dists: Sequence[Dist], scale: float, minimum: int = 1) -> None:
        kinds: list[int] = []
        a: list[float] = []
        b: list[float] = []
        floor: list[float] = []
        starts: list[int] = []
        cum: list[list[float]] = []
        max_c = max(len(d.components) for d in dists)
        for d in dists:
            starts.append(len(kinds))
            acc = 0.0
            row = []
            for c, w in zip(d.components, d.weights, strict=True):
                kinds.append(c.kind)
                a.append(c.a)
                b.append(c.b)
                floor.append(c.floor)
                acc += w
                row.append(acc)
            row[-1] = 1.0 + 1e-12
            row += [2.0] * (max_c - len(row))
            cum.append(row)
        self.kind = np.array(kinds, np.int8)
        self.a = np.array(a)
        self.b = np.array(b)
        self.floor = np.array(floor)
        self.start = np.array(starts, np.int64)
        self.cum = np.array(cum)
        self.mixed = max_c > 1
        self.kinds_present = sorted(set(kinds))
        self.scale = scale
        self.minimum = minimum
        self.means = np.array([d.mean() for d in dists])

    def sample(
        self,
        owner: npt.NDArray[np.integer[Any]],
        rng: np.random.Generator,
        factor: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.int64]:
        n = len(owner)
        comp = self.start[owner]
        if self.mixed:
            u = rng.random(n)
            comp = comp + categorical(u, self.cum, owner)
        kind = self.kind[comp]
        a, b = self.a[comp], self.b[comp]
        out = np.empty(n)
        if len(self.kinds_present) == 1:
            out[:] = self._draw(self.kinds_present[0], a, b, self.floor[comp], rng, n)
        else:
            for k in self.kinds_present:
                m = kind == k
                cnt = int(m.sum())
                if cnt:
                    out[m] = self._draw(k, a[m], b[m], self.floor[comp][m], rng, cnt)
        if factor is not None:
            out *= factor
        res = np.rint(out * self.scale).astype(np.int64)
        np.maximum(res, self.minimum, out=res)
        return res

    @staticmethod
    def _draw(
        kind: int,
        a: npt.NDArray[np.float64],
        b: npt.NDArray[np.float64],
        floor: npt.NDArray[np.float64],
        rng: np.random.Generator,
        n: int,
    ) -> npt.NDArray[np.float64]:
        if kind == LOGNORMAL:
            return np.exp(a + b * rng.standard_normal(n))
        if kind == UNIFORM:
            return a + (b - a) * rng.random(n)
        if kind == EXPONENTIAL:
            return a * rng.standard_exponential(n)
        if kind == NORMAL:
            return np.maximum(a + b * rng.standard_normal(n), floor)
        return a.copy()
