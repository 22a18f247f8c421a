"""The seed's dataset model in the engine: num_users x sessions_per_user over a date range.

Statistics are tested statistically: fixed seeds, stated tolerances, and a case that must be rejected.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from emitter.core.dist import Dist
from emitter.core.load import Load, WeeklyProfile
from emitter.core.model import END_CAP

from ..helpers import START_US, all_events, ecommerce, simulate

DAY_US = 86_400 * 1_000_000


def _starts(b) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Each session's start time and user (its first call's)."""
    first = (b.cols["seq"] == 0) & (b.cols["attempt"] == 1)
    return b.cols["t"][first], b.cols["user"][first]


def test_every_user_gets_at_least_one_session_and_events_are_in_time_order() -> None:
    sim = simulate(ecommerce(), 3, Load(num_users=1500, date_range_s=7 * 86_400))
    b = all_events(sim)
    t, users = _starts(b)
    assert (np.diff(b.cols["t"]) >= 0).all()
    assert sim.target_sessions == sim.sessions_started == len(t)
    assert set(users.tolist()) == set(range(1500))  # every user, and nobody else
    assert t.min() >= 0 and t.max() < 7 * DAY_US
    # session numbers follow session starts
    first = (b.cols["seq"] == 0) & (b.cols["attempt"] == 1)
    assert (np.diff(b.cols["sess"][first]) > 0).all()


def test_sessions_per_user_follow_the_seeds_rounded_normal() -> None:
    """(3, 2): a normal rounded to an integer, at least 1. The mean of that (not 3) is what must hold."""
    n_users = 4000
    b = all_events(simulate(ecommerce(), 11, Load(num_users=n_users, sessions_per_user=Dist.normal(3, 2))))
    _, users = _starts(b)
    counts = np.bincount(users, minlength=n_users)
    z = np.arange(-50, 60)
    p = stats.norm.cdf(z + 0.5, 3, 2) - stats.norm.cdf(z - 0.5, 3, 2)  # P(round(X) = z)
    expected = {k: p[z == k].sum() for k in range(2, 12)} | {1: p[z <= 1].sum()}
    observed = np.array([(counts == k).sum() if k > 1 else (counts <= 1).sum() for k in sorted(expected)])
    probs = np.array([expected[k] for k in sorted(expected)])
    observed_tail = n_users - observed.sum()
    chi = stats.chisquare(np.r_[observed, observed_tail], n_users * np.r_[probs, 1 - probs.sum()])
    assert chi.pvalue > 0.001, chi
    # the same test must reject a plain (unrounded-at-1) Poisson of mean 3
    pois = stats.poisson.pmf(sorted(expected), 3)
    wrong = stats.chisquare(np.r_[observed, observed_tail], n_users * np.r_[pois, 1 - pois.sum()])
    assert wrong.pvalue < 1e-6


def test_starts_are_uniform_over_the_range_and_a_weekly_profile_is_not() -> None:
    wf = ecommerce()
    rng_s = 14 * 86_400
    t, _ = _starts(all_events(simulate(wf, 5, Load(num_users=3000, date_range_s=rng_s))))
    ks = stats.kstest(t / (rng_s * 1e6), "uniform")
    assert ks.pvalue > 0.001, ks
    weekly = WeeklyProfile(days=[1, 1, 1, 1, 1, 0.25, 0.25], amplitude=0.6, peak_at=15 * 3600)
    t2, _ = _starts(all_events(simulate(wf, 5, Load(num_users=3000, date_range_s=rng_s, profile=weekly))))
    assert stats.kstest(t2 / (rng_s * 1e6), "uniform").pvalue < 1e-6  # the shape shows
    # and it is the declared shape: weekday shares against the factors (2026-01-01, the start, is a Thursday)
    weekday = ((START_US + t2) // DAY_US + 3) % 7
    observed = np.bincount(weekday, minlength=7)
    factors = np.array(weekly.days) * 2  # two of each weekday in 14 days
    chi = stats.chisquare(observed, observed.sum() * factors / factors.sum())
    assert chi.pvalue > 0.001, chi
    hours = (t2 // 3_600_000_000) % 24
    assert np.bincount(hours, minlength=24).argmax() in (14, 15, 16)


def test_a_run_repeats_byte_for_byte_and_another_seed_differs() -> None:
    wf = ecommerce()
    load = Load(num_users=300, date_range_s=86_400)
    a, b, c = (all_events(simulate(wf, s, load)) for s in (9, 9, 10))
    assert all(np.array_equal(a.cols[k], b.cols[k]) for k in a.cols)
    assert len(a) != len(c) or not np.array_equal(a.cols["t"], c.cols["t"])


def test_the_dataset_model_refuses_the_other_models_counts() -> None:
    for kw in ({"sessions": 5}, {"duration_s": 60.0}, {"users": 3}, {"arrival_rate": 2.0}):
        with pytest.raises(ValueError, match="dataset model"):
            Load(num_users=10, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_users"):
        Load(num_users=0)


def test_capped_sessions_still_end() -> None:
    """A constant 1 session per user: exactly num_users sessions; every one ends (exit, abandon or cap)."""
    b = all_events(simulate(ecommerce(), 2, Load(num_users=500, sessions_per_user=Dist.normal(1, 0))))
    t, _ = _starts(b)
    assert len(t) == 500
    assert int((b.cols["end"] != 0).sum()) == 500
    assert int((b.cols["end"] == END_CAP).sum()) <= 500


def test_weekly_profile_checks_its_days() -> None:
    assert WeeklyProfile(days=[1.0] * 6).problems()
    assert WeeklyProfile(days=[0.0] * 7).problems()
    assert not WeeklyProfile().problems()
