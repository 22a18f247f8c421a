"""Goodness-of-fit arithmetic: Pearson's X² with an exact (Monte-Carlo) fallback, Holm, Wilson intervals, and
the band the largest estimation error falls in when the stream follows the workflow."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

__all__ = ["GofResult", "holm", "max_error_band", "pearson_gof", "wilson"]

MIN_EXPECTED = 5.0  # the chi-square approximation needs about this many expected counts per cell
MC_DRAWS = 20_000


@dataclass(frozen=True)
class GofResult:
    statistic: float
    dof: int
    p_value: float
    method: str  # "chi2", "exact-mc" or "none" (one possible target: nothing to test)


def pearson_gof(counts: npt.NDArray[np.int64], probs: npt.NDArray[np.float64], seed: int = 0) -> GofResult:
    """Test observed ``counts`` against multinomial(n, ``probs``) over the cells with p > 0.

    Cells with p = 0 are not part of the statistic; an observation there is a hard violation the caller
    reports on its own. When an expected count is under 5, the p-value is a Monte-Carlo estimate of the
    exact multinomial tail (seeded, so reports are reproducible), with the usual +1 correction.
    """
    live = probs > 0
    c = counts[live].astype(np.float64)
    p = probs[live] / probs[live].sum()
    n = c.sum()
    k = int(live.sum())
    if k <= 1 or n == 0:
        return GofResult(0.0, 0, 1.0, "none")
    e = n * p
    x2 = float(((c - e) ** 2 / e).sum())
    if e.min() >= MIN_EXPECTED:
        return GofResult(x2, k - 1, float(sps.chi2.sf(x2, k - 1)), "chi2")
    rng = np.random.default_rng(seed)
    sims = rng.multinomial(int(n), p, size=MC_DRAWS).astype(np.float64)
    x2s = ((sims - e) ** 2 / e).sum(axis=1)
    ge = int(np.count_nonzero(x2s >= x2 - 1e-9 * max(1.0, x2)))
    return GofResult(x2, k - 1, (ge + 1) / (MC_DRAWS + 1), "exact-mc")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1): reject where adjusted <= alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adj[i] = running
    return adj


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; well behaved at small n and near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    ph = successes / n
    denom = 1 + z * z / n
    centre = (ph + z * z / (2 * n)) / denom
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


BAND_DRAWS = 2_000


def max_error_band(
    rows: Sequence[tuple[int, Sequence[float]]],
    quantiles: Sequence[float] = (0.025, 0.5, 0.975),
    *,
    seed: int = 0,
    draws: int = BAND_DRAWS,
) -> list[float]:
    """Quantiles of the largest ``|observed - declared|`` over every cell of ``rows`` (each ``(n, declared
    probabilities)``) when each row's ``n`` departures are drawn from its declared probabilities: the range
    a stream that follows the workflow puts the learned matrix's worst cell in (Monte Carlo, ``draws``
    samples from a generator seeded by ``seed``)."""
    rng = np.random.default_rng(seed)
    worst = np.zeros(draws)
    for n, probs in rows:
        if n <= 0:
            continue
        p = np.asarray(probs, np.float64)
        p = p / p.sum()
        k = rng.multinomial(n, p, size=draws)
        worst = np.maximum(worst, np.abs(k / n - p).max(axis=1))
    return [float(v) for v in np.quantile(worst, quantiles)]
