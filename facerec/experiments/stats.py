"""Is an experiment's difference from the baseline real?

Two complementary tests, both on EER (lower is better):
- a paired bootstrap over the validation pairs: resample the pairs (the same indices for the
  experiment and the baseline), recompute every seed's EER on the resample, and take the
  2.5/97.5 percentiles of mean(EER_experiment) - mean(EER_baseline). It captures the
  uncertainty of a finite pair list, which seeds cannot.
- Welch's t-test over the per-seed EERs (unequal variances): the run-to-run noise, which one
  pair list cannot show.
Verdict: "better" when the bootstrap interval lies entirely below 0 and, when both sides have
two or more seeds, Welch's p < 0.05; "worse" symmetrically; otherwise "not significant".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerec.evaluation.metrics import eer

ALPHA = 0.05


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for a single value: one seed measures no spread)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


@dataclass
class Welch:
    t: float
    df: float
    p: float


def welch(a, b) -> Welch | None:
    """Welch's unequal-variance t-test of mean(a) vs mean(b); None when either side has fewer
    than two values or both have zero variance (the statistic is undefined)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return None
    if a.var(ddof=1) + b.var(ddof=1) == 0:
        return None
    from scipy import stats

    r = stats.ttest_ind(a, b, equal_var=False)
    return Welch(float(r.statistic), float(r.df), float(r.pvalue))


@dataclass
class Bootstrap:
    delta: float  # on the full pair list
    low: float
    high: float
    n_boot: int


def paired_bootstrap(experiment: list[np.ndarray], baseline: list[np.ndarray], labels: np.ndarray, *,
                     statistic=None, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Bootstrap:
    """CI of mean(statistic over experiment seeds) - mean(statistic over baseline seeds), every
    score array aligned with `labels` (the same pairs in the same order)."""
    stat = statistic or (lambda s, y: eer(s, y)[0])
    labels = np.asarray(labels)
    n = len(labels)

    def delta(idx) -> float:
        y = labels[idx]
        return (float(np.mean([stat(s[idx], y) for s in experiment]))
                - float(np.mean([stat(s[idx], y) for s in baseline])))

    rng = np.random.default_rng(seed)
    full = delta(np.arange(n))
    draws = []
    while len(draws) < n_boot:
        idx = rng.integers(0, n, n)
        if 0 < labels[idx].sum() < n:  # a resample needs both classes for an EER
            draws.append(delta(idx))
    lo, hi = np.percentile(draws, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Bootstrap(full, float(lo), float(hi), n_boot)


def verdict(boot: Bootstrap | None, test: Welch | None) -> str:
    """For EER (lower is better); `test` is Welch(experiment, baseline) or None."""
    if boot is None:
        return "not comparable"
    for name, holds, direction in (("better", boot.high < 0, -1), ("worse", boot.low > 0, 1)):
        if holds:
            confirmed = test is None or (test.p < ALPHA and np.sign(test.t) == direction)
            return name if confirmed else "not significant"
    return "not significant"
