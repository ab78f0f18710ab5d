"""Intervals for proportions: Wilson's, and a cluster-robust interval for a pooled ratio of sums."""

from __future__ import annotations

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportion_confint


# --------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------
def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson 95% interval for k successes of n, in percent (NaN if n == 0).

    Values of k above n (reach over 100%) have no binomial interval: NaN.
    """
    if n <= 0 or k > n:
        return (np.nan, np.nan)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return (100 * lo, 100 * hi)


def cluster_ci(k: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """Cluster-robust 95% interval for a pooled proportion, in percent.

    The pooled proportion is the ratio of sums p = sum(k) / sum(n). Its
    variance is the sandwich (linearisation) variance of a ratio estimator
    with clusters as the sampling units and the small-sample factor
    G / (G - 1): ``var = G / (G - 1) * sum((k_j - p n_j)^2) / (sum n)^2``.
    The interval is p +/- t(0.975, G - 1) * se, clipped to [0, 100].

    Parameters
    ----------
    k, n : arrays
        Successes and trials per cluster (clusters with n = 0 are dropped).

    Returns
    -------
    (se, ci_low, ci_high) in percent; NaN with fewer than two clusters.
    """
    k, n = np.asarray(k, float), np.asarray(n, float)
    keep = n > 0
    k, n = k[keep], n[keep]
    g = len(n)
    if g < 2:
        return (np.nan, np.nan, np.nan)
    p = k.sum() / n.sum()
    var = g / (g - 1) * np.sum((k - p * n) ** 2) / n.sum() ** 2
    se = float(np.sqrt(var))
    t = stats.t.ppf(0.975, g - 1)
    return (100 * se, max(0.0, 100 * (p - t * se)), min(100.0, 100 * (p + t * se)))
