"""The sampling band of the worst cell's error (max_error_band): its quantiles against the exact binomial
ones, its coverage over many null samples, and a drifted sample it must put above the band."""

from __future__ import annotations

import numpy as np
from scipy import stats

from emitter.validate.stats import max_error_band


def test_band_of_one_two_way_row_matches_the_exact_binomial_quantiles() -> None:
    n, p = 400, 0.3  # two cells: both errors are |K/n - p|, K ~ Binomial(n, p)
    lo, mid, hi = max_error_band([(n, [p, 1 - p])], seed=1)
    m = round(n * p)  # 120: P(|K - m| <= j), in whole counts (no rounding of n * (p + x))
    j = np.arange(0, m + 1)
    cdf = stats.binom.cdf(m + j, n, p) - stats.binom.cdf(m - j - 1, n, p)
    # each Monte Carlo quantile is a lattice point k/n whose exact coverage brackets q, give or take 1 %
    # (2,000 draws: the sampling error of a 97.5 % point's coverage is about 0.35 %)
    for got, q in zip((lo, mid, hi), (0.025, 0.5, 0.975), strict=True):
        k = round(got * n)
        below = cdf[k - 1] if k > 0 else 0.0
        assert below - 0.01 <= q <= cdf[k] + 0.01, (got, q, below, cdf[k])


def test_null_samples_fall_inside_the_band_about_95_percent_of_the_time() -> None:
    rows = [(300, [0.5, 0.3, 0.2]), (120, [0.9, 0.1]), (900, [0.25, 0.25, 0.25, 0.25])]
    lo, _, hi = max_error_band(rows, seed=0, draws=4000)
    rng = np.random.default_rng(7)
    inside = 0
    trials = 400
    for _ in range(trials):
        worst = max(float(np.abs(rng.multinomial(n, p) / n - np.array(p)).max()) for n, p in rows)
        inside += lo <= worst <= hi
    # 95 % nominal; binomial sd over 400 trials is 1.1 %: 4 sd either side
    assert abs(inside / trials - 0.95) < 0.045


def test_a_drifted_row_lands_above_the_band() -> None:
    n = 2000
    hi = max_error_band([(n, [0.3, 0.7])], seed=3)[2]
    k = np.random.default_rng(11).binomial(n, 0.36)  # the stream's chain moved 0.06 away
    assert abs(k / n - 0.3) > hi
    assert hi < 0.03  # about 1.96 * sqrt(0.21 / 2000) = 0.020 (with the two-sided max)


def test_band_is_deterministic_for_a_seed_and_widens_as_n_shrinks() -> None:
    rows = [(500, [0.6, 0.4])]
    assert max_error_band(rows, seed=5) == max_error_band(rows, seed=5)
    assert max_error_band([(50, [0.6, 0.4])], seed=5)[2] > max_error_band(rows, seed=5)[2]
