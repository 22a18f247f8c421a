"""Positive-valued distributions (latencies, think times, pauses), sampled in bulk.

A distribution is a mixture of components; each component is one of a few kinds whose draws are a
transform of one standard normal or one uniform. A :class:`DistTable` packs the distributions of many
owners (one per endpoint, say) so that a whole vector of owners is sampled with a handful of numpy calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._kernels import categorical
from .limits import MAX_VALUE

__all__ = ["CONSTANT", "EXPONENTIAL", "LOGNORMAL", "NORMAL", "UNIFORM", "Component", "Dist", "DistTable"]

CONSTANT, UNIFORM, EXPONENTIAL, LOGNORMAL, NORMAL = range(5)
_KIND_NAMES = {
    "constant": CONSTANT,
    "uniform": UNIFORM,
    "exponential": EXPONENTIAL,
    "lognormal": LOGNORMAL,
    "normal": NORMAL,
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
    def normal(mean: float, stddev: float) -> Dist:
        return Dist((Component(NORMAL, mean, stddev, 0.0, (("mean", mean), ("stddev", stddev))),), (1.0,))

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
        np.minimum(out, MAX_VALUE, out=out)  # heavy tails (a lognormal's sigma of 10) stay in range
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
