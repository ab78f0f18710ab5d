"""Intervals for shares: Wilson's, and a cluster-robust interval for a pooled ratio of sums.

The process strand chooses between them (:mod:`isafe_helpers.process.shares`);
this module only computes them.
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from isafe_helpers.stats.inference import interval


# --------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------
def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson 95% interval for k successes of n, in percent (NaN if n == 0).

    Values of k above n (reach over 100%) have no binomial interval: NaN.

    >>> [round(x, 2) for x in wilson(2, 4)]
    [15.0, 85.0]
    """
    if n <= 0 or k > n:
        return (np.nan, np.nan)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return (100 * lo, 100 * hi)


def cluster_ci(k, n, bounded: bool = True) -> tuple[float, float, float]:
    """Cluster-robust 95% interval for a pooled ratio of sums, in percent.

    The pooled share is the ratio of sums p = sum(k) / sum(n). Its variance
    is the sandwich (linearisation) variance of a ratio estimator with the
    clusters as the sampling units and the small-sample factor G / (G - 1):
    ``var = G / (G - 1) * sum((k_j - p n_j)^2) / (sum n)^2``. For 0/1
    outcomes this is the CR1 standard error of an intercept-only regression
    clustered on the same units. The interval is p +/- t(0.975, G - 1) * se
    (:func:`isafe_helpers.stats.inference.interval`).

    Parameters
    ----------
    k, n : array-like
        Numerator and denominator per cluster (clusters with n = 0 are dropped).
    bounded : bool
        True for a proportion (k_j <= n_j): the interval is clipped to
        [0, 100]. False for a ratio that may exceed 100% (reach over the
        intended audience): clipped at 0 only.

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
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = interval(p, se, df=g - 1)
    lo, hi = max(0.0, 100 * ci.ci_low), 100 * ci.ci_high
    return (100 * se, lo, min(100.0, hi) if bounded else hi)
