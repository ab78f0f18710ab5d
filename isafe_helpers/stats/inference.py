"""Intervals, p-values and tests shared by every analysis.

:func:`interval` is the one place a t- or normal-based 95% interval and
two-sided p-value are made from an estimate and its standard error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests


@dataclass(frozen=True)
class Interval:
    """A confidence interval and the two-sided p-value of the same test."""

    ci_low: float
    ci_high: float
    p_value: float


def interval(
    estimate: float | np.ndarray, se: float | np.ndarray, df: float | np.ndarray | None = None, level: float = 0.95
) -> Interval:
    """``estimate +/- q * se`` and ``2 P(T > |estimate / se|)`` (scalars, or arrays of the same shape).

    ``T`` is Student's t on ``df`` degrees of freedom, or the standard normal
    when ``df`` is None (a Wald interval: pages that show one say so).

    >>> r = interval(1.0, 0.5)
    >>> round(r.ci_low, 4), round(r.ci_high, 4), round(r.p_value, 4)
    (0.02, 1.98, 0.0455)
    >>> round(interval(1.0, 0.5, df=10).p_value, 4)
    0.0734
    """
    if df is None:
        q = stats.norm.ppf(0.5 + level / 2)
        p = 2 * stats.norm.sf(np.abs(estimate / se))
    else:  # not stats.t(df): freezing a distribution costs milliseconds (it builds a docstring)
        q = stats.t.ppf(0.5 + level / 2, df)
        p = 2 * stats.t.sf(np.abs(estimate / se), df)
    lo, hi = estimate - q * se, estimate + q * se
    if np.ndim(p) == 0:
        return Interval(float(lo), float(hi), float(p))
    return Interval(lo, hi, p)


def holm(p) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (statsmodels ``multipletests``); NaN stays NaN.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out
