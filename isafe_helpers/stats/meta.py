"""Heterogeneity of independent estimates (statsmodels' ``combine_effects``)."""

from __future__ import annotations

import warnings

import numpy as np
from statsmodels.stats.meta_analysis import combine_effects


def cochran_q(estimates, ses) -> dict:
    """Cochran's Q, its chi-square p (k - 1 df) and I^2 (%) of independent estimates.

    Inverse-variance weights ``w = 1/se^2``; ``Q = sum w (b - b_FE)^2``;
    ``I2 = max(0, (Q - (k - 1)) / Q) * 100`` (Higgins and Thompson 2002),
    from statsmodels' fixed-effect combination. Returns ``q``, ``df``,
    ``p_value``, ``i2`` and the fixed-effect mean ``fixed``.

    >>> r = cochran_q([0.0, 1.0], [1.0, 1.0])
    >>> r["q"], r["df"], round(r["i2"], 1)
    (0.5, 1, 0.0)
    """
    b = np.asarray(estimates, float)
    k = b.size
    if k < 2:
        return dict(q=np.nan, df=max(k - 1, 0), p_value=np.nan, i2=np.nan, fixed=np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the random-effects parts it also computes are not used
        res = combine_effects(b, np.asarray(ses, float) ** 2, method_re="chi2")
        test = res.test_homogeneity()
    q = float(res.q)
    return dict(
        q=q,
        df=k - 1,
        p_value=float(test.pvalue),
        i2=float(max(0.0, res.i2) * 100) if q > 0 else 0.0,
        fixed=float(res.mean_effect_fe),
    )
