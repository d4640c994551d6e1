"""Welch's t-test against scipy and a hand-computed case; the paired bootstrap against
scipy.stats.bootstrap and cases whose answer is known; the verdict rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from facerec.experiments import stats


def test_welch_matches_hand_computation():
    # a = 1,2,3: mean 2, s^2 = 1 -> s^2/n = 1/3; b = 4..7: mean 5.5, s^2 = 5/3 -> s^2/n = 5/12
    # t = -3.5 / sqrt(3/4) = -4.04145; df = (3/4)^2 / ((1/3)^2/2 + (5/12)^2/3) = 0.5625 / 0.1134259 = 4.95918
    w = stats.welch([1, 2, 3], [4, 5, 6, 7])
    assert w.t == pytest.approx(-4.041452, abs=1e-6)
    assert w.df == pytest.approx(4.959184, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(10, 1, 3), rng.normal(11, 2, 4)
    ref = sps.ttest_ind(a, b, equal_var=False)
    w = stats.welch(a, b)
    assert w.t == pytest.approx(ref.statistic, rel=1e-12)
    assert w.p == pytest.approx(ref.pvalue, rel=1e-10)


def test_welch_undefined_cases():
    assert stats.welch([1.0], [2.0, 3.0]) is None  # one seed: no variance estimate
    assert stats.welch([2.0, 2.0], [2.0, 2.0]) is None  # zero variance on both sides


def test_mean_std_uses_sample_std():
    assert stats.mean_std([1, 2, 3, 4]) == pytest.approx((2.5, np.std([1, 2, 3, 4], ddof=1)))
    mean, std = stats.mean_std([5.0])
    assert mean == 5.0 and np.isnan(std)  # one seed measures no spread: never shown as "± 0.00"


def _pairs(n=400, seed=0, separation=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return labels, rng.normal(labels * separation, 1.0)


def test_bootstrap_of_identical_systems_is_exactly_zero():
    labels, s = _pairs()
    b = stats.paired_bootstrap([s], [s.copy()], labels, n_boot=200)
    assert (b.delta, b.low, b.high) == (0.0, 0.0, 0.0)


def test_bootstrap_matches_scipy_for_a_paired_mean_difference():
    labels, s1 = _pairs(seed=1)
    s2 = s1 + np.random.default_rng(5).normal(0.1, 0.5, len(s1))
    ours = stats.paired_bootstrap([s2], [s1], labels, statistic=lambda s, y: s.mean(), n_boot=4000, seed=3)
    ref = sps.bootstrap((s2, s1), lambda a, b: a.mean() - b.mean(), paired=True, vectorized=False,
                        method="percentile", n_resamples=4000, random_state=4).confidence_interval
    assert ours.delta == pytest.approx(np.mean(s2) - np.mean(s1))
    width = ref.high - ref.low
    assert ours.low == pytest.approx(ref.low, abs=0.08 * width)
    assert ours.high == pytest.approx(ref.high, abs=0.08 * width)


def test_bootstrap_on_eer_separates_a_clearly_better_system():
    labels, weak = _pairs(n=600, seed=2, separation=0.5)
    strong = weak + labels * 2.0  # the same pairs, much better separated
    b = stats.paired_bootstrap([strong], [weak], labels, n_boot=300)
    assert b.high < 0 < -b.delta
    assert stats.verdict(b, None) == "better"
    worse = stats.paired_bootstrap([weak], [strong], labels, n_boot=300)
    assert worse.low > 0 and stats.verdict(worse, None) == "worse"


@pytest.mark.parametrize("low,high,p,t,expected", [
    (-2.0, -0.5, 0.01, -3.0, "better"),
    (-2.0, -0.5, 0.30, -1.0, "not significant"),  # the seeds do not confirm it
    (-2.0, -0.5, 0.01, 3.0, "not significant"),  # the seeds point the other way
    (0.5, 2.0, 0.01, 3.0, "worse"),
    (-0.5, 0.5, 0.001, -5.0, "not significant"),  # the interval holds 0
])
def test_verdict_rule(low, high, p, t, expected):
    b = stats.Bootstrap((low + high) / 2, low, high, 1000)
    assert stats.verdict(b, stats.Welch(t, 4.0, p)) == expected
