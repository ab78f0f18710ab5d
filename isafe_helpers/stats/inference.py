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


def interval(estimate: float, se: float, df: float | None = None, level: float = 0.95) -> Interval:
    """``estimate +/- q * se`` and ``2 P(T > |estimate / se|)`` (scalars, or arrays of the same shape).

    ``T`` is Student's t on ``df`` degrees of freedom, or the standard normal
    when ``df`` is None (a Wald interval: pages that show one say so).

    >>> r = interval(1.0, 0.5)
    >>> round(r.ci_low, 4), round(r.ci_high, 4), round(r.p_value, 4)
    (0.02, 1.98, 0.0455)
    >>> round(interval(1.0, 0.5, df=10).p_value, 4)
    0.0734
    """
    ref = stats.norm if df is None else stats.t(df)
    q = ref.ppf(0.5 + level / 2)
    lo, hi, p = estimate - q * se, estimate + q * se, 2 * ref.sf(np.abs(estimate / se))
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


def joint_wald(beta, cov, df2: float) -> dict:
    """Joint Wald F test that the coefficients ``beta`` (covariance ``cov``) are all zero.

    ``F = b' V^-1 b / q`` referred to ``F(q, df2)``. Returns ``estimate`` (F),
    ``df`` (df2), ``p_value`` and NaN ``se``, ``ci_low``, ``ci_high``.

    >>> round(joint_wald([1.0, 2.0], np.diag([1.0, 4.0]), 10)["estimate"], 6)  # (1/1 + 4/4) / 2
    1.0
    """
    b = np.asarray(beta, float)
    V = np.asarray(cov, float)
    F = float(b @ np.linalg.solve(V, b)) / b.size
    p = float(stats.f.sf(F, b.size, df2)) if df2 >= 1 else np.nan
    return dict(estimate=F, se=np.nan, df=float(df2), ci_low=np.nan, ci_high=np.nan, p_value=p)
