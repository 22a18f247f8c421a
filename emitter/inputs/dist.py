"""Distribution specs (as written in a file) to the core's :class:`~emitter.core.dist.Dist`."""

from __future__ import annotations

import math
from typing import Any

from msgspec import UNSET

from ..core.dist import CONSTANT, EXPONENTIAL, LOGNORMAL, NORMAL, UNIFORM, Component, Dist
from .convert import INVALID, Path, Problems
from .specs import (
    ConstantSpec,
    DistSpec,
    ExponentialSpec,
    LognormalSpec,
    MixtureSpec,
    NormalSpec,
    UniformSpec,
)

__all__ = ["to_dist"]

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


def to_dist(spec: Any, probs: Problems, path: Path) -> Dist | None:
    """The distribution a converted spec describes (a bare number is a constant); None when it is unusable
    (the problem is recorded)."""
    if spec is INVALID or spec is UNSET or spec is None:
        return None
    if isinstance(spec, float):
        return Dist((Component(CONSTANT, spec, 0.0, 0.0, (("value", spec),)),), (1.0,))
    if isinstance(spec, MixtureSpec):
        given: Any = spec.components  # INVALID when it was not a list (the problem is recorded)
        if not isinstance(given, list | tuple):
            return None
        comps: list[Component] = []
        weights: list[float] = []
        for i, c in enumerate(spec.components):
            cpath = (*path, "components", i)
            if c is INVALID:
                continue
            if c.weight is UNSET:
                probs.error((*cpath, "weight"), "expected a number, got None")
                continue
            comp = _component(c, probs, cpath)
            if comp is not None and c.weight is not INVALID:
                comps.append(comp)
                weights.append(c.weight)
        if not comps:
            if not spec.components:
                probs.error((*path, "components"), "a mixture needs at least one component")
            return None
        total = math.fsum(weights)
        return Dist(tuple(comps), tuple(w / total for w in weights))
    comp = _component(spec, probs, path)
    return None if comp is None else Dist((comp,), (1.0,))


def _component(c: DistSpec, probs: Problems, path: Path) -> Component | None:
    if isinstance(c, ConstantSpec):
        return None if c.value is INVALID else Component(CONSTANT, c.value, 0.0, 0.0, (("value", c.value),))
    if isinstance(c, UniformSpec):
        lo, hi = c.min, c.max
        if lo is INVALID or hi is INVALID:
            return None
        if hi < lo:
            probs.error((*path, "max"), f"max {hi:g} is below min {lo:g}")
            return None
        return Component(UNIFORM, lo, hi, 0.0, (("min", lo), ("max", hi)))
    if isinstance(c, ExponentialSpec):
        return None if c.mean is INVALID else Component(EXPONENTIAL, c.mean, 0.0, 0.0, (("mean", c.mean),))
    if isinstance(c, NormalSpec):
        floor = 0.0 if c.min is UNSET else c.min
        if INVALID in (c.mean, c.stddev, floor):
            return None
        spec = (("mean", c.mean), ("stddev", c.stddev)) + ((("min", floor),) if c.min is not UNSET else ())
        return Component(NORMAL, c.mean, c.stddev, floor, spec)
    assert isinstance(c, LognormalSpec)
    given = {k for k in ("p50", "p99", "mean", "stddev", "mu", "sigma") if getattr(c, k) is not UNSET}
    if any(getattr(c, k) is INVALID for k in given):
        return None
    if given == {"p50", "p99"}:
        p50, p99 = float(c.p50), float(c.p99)  # type: ignore[arg-type]
        if p99 <= p50:
            probs.error((*path, "p99"), f"p99 {p99:g} must be above p50 {p50:g}")
            return None
        return Component(
            LOGNORMAL, math.log(p50), (math.log(p99) - math.log(p50)) / _Z99, 0.0, (("p50", p50), ("p99", p99))
        )
    if given == {"mean", "stddev"}:
        m, s = float(c.mean), float(c.stddev)  # type: ignore[arg-type]
        sigma2 = math.log1p((s / m) ** 2)
        return Component(LOGNORMAL, math.log(m) - sigma2 / 2, math.sqrt(sigma2), 0.0, (("mean", m), ("stddev", s)))
    if given == {"mean", "sigma"}:
        m, sg = float(c.mean), float(c.sigma)  # type: ignore[arg-type]
        return Component(LOGNORMAL, math.log(m) - sg * sg / 2, sg, 0.0, (("mean", m), ("sigma", sg)))
    if given == {"mu", "sigma"}:
        mu, sg = float(c.mu), float(c.sigma)  # type: ignore[arg-type]
        return Component(LOGNORMAL, mu, sg, 0.0, (("mu", mu), ("sigma", sg)))
    probs.error(
        path,
        f"a lognormal needs exactly one of: p50+p99, mean+stddev, mean+sigma, mu+sigma; got {sorted(given) or 'none'}",
    )
    return None
