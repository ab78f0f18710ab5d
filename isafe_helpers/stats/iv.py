"""Just-identified two-stage least squares with CR2 cluster-robust inference, and Anderson-Rubin sets.

The impact strand publishes the 2SLS coefficient (the IV ratio) but not its
CR2 Wald test: its CACE inference is the reduced form's, with the
Anderson-Rubin set of :func:`anderson_rubin_set` (test inversion of the
primary model; see :mod:`isafe_helpers.impact.compliance`). The CR2
machinery below is kept as a checked reference (``tests/test_iv.py``).

The complier average causal effect (CACE) is the 2SLS coefficient of
compliance ``D`` with random assignment ``Z_excl`` as its instrument and the
exogenous covariates ``W`` (intercept, baseline, LA dummies) in both stages.
Inference on it is CR2 (Bell-McCaffrey) team-clustered with Satterthwaite
degrees of freedom, exactly as

    iv <- AER::ivreg(y ~ complied + baseline + la | arm + baseline + la)
    clubSandwich::coef_test(iv, vcov = "CR2", cluster = team, test = "Satterthwaite")

How clubSandwich (0.5.8) treats an ``ivreg`` fit: its model matrix is the
*projected* design ``Xh = P_Z X`` (``model.matrix(fit, component =
"projected")``), its bread is ``(Xh'Xh)^-1`` (AER's ``bread.ivreg``), its
residuals are the structural ones ``e = y - X b`` (with the observed ``D``, not
the fitted one), and the working model is the identity. So the CR2 covariance
is the OLS CR2 of :func:`isafe_helpers.impact_robust.cr2` with ``Xh`` for the
design and ``e`` for the residuals: ``A_j = (I - H_jj)^(-1/2)``,
``H_jj = Xh_j (Xh'Xh)^-1 Xh_j'``, ``V = M (sum_j Xh_j' A_j e_j e_j' A_j Xh_j) M``,
and the Satterthwaite df (which depend on the design only) are those of an
OLS fit on ``Xh``.

That function is reused rather than copied: because ``Xh'X = Xh'Xh``, the 2SLS
residuals are orthogonal to ``Xh`` (``Xh'e = 0``), so OLS of the pseudo-response
``Xh b + e`` on ``Xh`` returns ``b`` with residuals ``e`` (to rounding); the
CR2 of that OLS fit is clubSandwich's CR2 of the ``ivreg`` fit.

Verified against clubSandwich 0.5.8 / AER 1.2-10 on R 4.2.2
(``tests/test_iv.py``, fixture ``tests/fixtures/gee_iv``): coefficient, SE,
Satterthwaite df and p at relative tolerance 1e-8.

The old CR1 (``G/(G-1) (N-1)/(N-k)``, t on ``G - 1``) standard errors were
smaller than CR2's here (0.303 against 0.324 on the fixture data) and the
``G - 1`` df larger than Satterthwaite's; CR2 matches the ITT's CR2 sensitivity
analysis, so the CACE and the ITT are judged on the same footing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from isafe_helpers.stats.cluster_robust import cr2
from isafe_helpers.stats.inference import interval

__all__ = ["anderson_rubin_set", "tsls_cr2"]


def tsls_cr2(y, D, Z_excl, W, cluster, level: float = 0.95) -> dict:
    """Just-identified 2SLS of ``y`` on ``[D, W]``, instrument ``Z_excl`` for ``D``; CR2 inference for ``D``.

    Parameters
    ----------
    y : (N,) outcome.
    D : (N,) endogenous regressor (compliance, 0/1).
    Z_excl : (N,) the excluded instrument (random assignment, 0/1).
    W : (N, q) exogenous regressors, intercept included (in both stages).
    cluster : (N,) cluster labels (team).
    level : confidence level of ``ci``.

    Returns
    -------
    dict with
        ``beta`` (coefficient of ``D``), ``se`` (CR2), ``df`` (Satterthwaite),
        ``ci`` (tuple low, high; t on ``df``), ``p`` (two-sided, t on ``df``),
        ``first_stage`` (OLS coefficient of ``Z_excl`` in ``D ~ Z_excl + W``),
        ``G`` (number of clusters), ``N``, ``params`` (all 2SLS
        coefficients, order ``[D, W...]``) and ``vcov`` (their CR2 covariance).

    Raises
    ------
    ValueError
        When the instrument has no first stage (``Z_excl`` explains nothing of
        ``D`` beyond ``W``), the design is rank deficient, or CR2 is undefined
        (a cluster perfectly fitted, ``I - H_jj`` singular).
    """
    y = np.asarray(y, float)
    D = np.asarray(D, float)
    W = np.asarray(W, float)
    if W.ndim == 1:
        W = W[:, None]
    Z = np.column_stack([np.asarray(Z_excl, float), W])
    X = np.column_stack([D, W])
    if np.linalg.matrix_rank(Z) < Z.shape[1] or np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError("2SLS design is rank deficient")
    first = np.linalg.lstsq(Z, D, rcond=None)[0]
    Xh = Z @ np.linalg.lstsq(Z, X, rcond=None)[0]  # P_Z X: the first-stage fitted design
    if np.linalg.matrix_rank(Xh) < X.shape[1]:
        raise ValueError("no first stage: the instrument does not predict D beyond W")
    b = np.linalg.solve(Xh.T @ Xh, Xh.T @ y)
    e = y - X @ b  # structural residuals, as residuals(ivreg)
    f = cr2(Xh @ b + e, Xh, pd.Series(cluster).to_numpy(), df_for=[0])
    beta, se, df = float(f["beta"][0]), float(f["se"][0]), float(f["df"][0])
    ci = interval(beta, se, df, level)
    return dict(
        beta=beta,
        se=se,
        df=df,
        ci=(ci.ci_low, ci.ci_high),
        p=ci.p_value,
        first_stage=float(first[0]),
        G=int(pd.Series(cluster).nunique()),
        N=len(y),
        params=f["beta"],
        vcov=f["vcov"],
    )


def anderson_rubin_set(p_of, centre: float, scale: float, p_limit: float, level: float = 0.95) -> dict:
    """Anderson-Rubin confidence set by inverting a test of the reduced form, on any ITT model.

    ``p_of(b)``: the p-value of the assignment coefficient in the ITT model of
    ``y - b D`` (the null ``CACE = b`` holds exactly when assignment has no
    effect on ``y - b D``, under the exclusion restriction); the set is
    ``{b : p_of(b) >= 1 - level}`` (Anderson & Rubin 1949; for cluster trials
    with a mixed ITT model, the test inverted is that model's Kenward-Roger t
    test). ``p_limit``: the p-value as ``|b| -> infinity``, which is the ITT
    model's p for ``D`` itself (the first stage; the p of ``y/b - D`` tends to
    it, as the test is scale invariant). When ``p_limit >= 1 - level`` the
    set is unbounded: the instrument is too weak to exclude any large effect.

    The search: ``p_of`` on a grid ``centre + scale * sinh(t)``, ``t`` in
    ``[-6, 6]`` (25 points, dense near ``centre``, reaching about 200
    ``scale`` either side), every crossing of ``1 - level`` refined by
    Brent's method to ``1e-10 * scale``; where the outermost grid value is in
    the set but ``p_limit`` is not, the grid is extended outwards (doubling)
    until it leaves the set. A crossing between grid points narrower than
    their spacing can be missed (the sinh grid makes that unlikely near the
    estimate). Returns ``intervals`` (list of ``(low, high)``, ``-inf`` /
    ``inf`` for rays), ``kind`` (``"bounded"``, ``"ray"``, ``"two rays"``,
    ``"whole line"``, ``"empty"`` or ``"union"``), ``ci_low`` / ``ci_high``
    (the ends when the set is one interval, ``nan`` where unbounded or not
    an interval) and ``text`` (the set written out).
    """
    from scipy.optimize import brentq

    alpha = 1.0 - level
    scale = float(scale) if np.isfinite(scale) and scale > 0 else max(abs(float(centre)), 1.0)
    cache: dict[float, float] = {}

    def g(b: float) -> float:
        if b not in cache:
            cache[b] = float(p_of(b)) - alpha
        return cache[b]

    grid = list(float(centre) + scale * np.sinh(np.linspace(-6.0, 6.0, 25)))
    inside_limit = p_limit >= alpha
    for side in (0, -1):  # extend outwards while the edge is in the set but infinity is not
        step = grid[side] - float(centre)
        for _ in range(60):
            if inside_limit or g(grid[side]) < 0:
                break
            step *= 2.0
            if side == 0:
                grid.insert(0, float(centre) + step)
            else:
                grid.append(float(centre) + step)
    vals = [g(b) for b in grid]
    edges = []  # (b, entering?) sorted
    for a, b, va, vb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
        if (va >= 0) != (vb >= 0):
            r = brentq(g, a, b, xtol=1e-10 * scale)
            edges.append((r, vb >= 0))
    intervals = []
    start = -np.inf if (inside_limit and vals[0] >= 0) else None
    if start is None and vals[0] >= 0:
        start = grid[0]
    for r, entering in edges:
        if entering:
            start = r
        elif start is not None:
            intervals.append((start, r))
            start = None
    if start is not None:
        intervals.append((start, np.inf if inside_limit else grid[-1]))
    if not intervals:
        kind = "empty"
    elif len(intervals) == 1:
        lo, hi = intervals[0]
        kind = {(True, True): "whole line", (False, False): "bounded"}.get((np.isinf(lo), np.isinf(hi)), "ray")
    elif len(intervals) == 2 and np.isinf(intervals[0][0]) and np.isinf(intervals[1][1]):
        kind = "two rays"
    else:
        kind = "union"
    one = len(intervals) == 1
    ci_low = intervals[0][0] if one and np.isfinite(intervals[0][0]) else np.nan
    ci_high = intervals[0][1] if one and np.isfinite(intervals[0][1]) else np.nan

    def end(x: float) -> str:
        return "-infinity" if x == -np.inf else "infinity" if x == np.inf else f"{x:.3f}"

    text = (
        " or ".join(
            ("(" if np.isinf(lo) else "[") + f"{end(lo)}, {end(hi)}" + (")" if np.isinf(hi) else "]")
            for lo, hi in intervals
        )
        or "empty"
    )
    return dict(intervals=intervals, kind=kind, ci_low=ci_low, ci_high=ci_high, text=text, p_limit=float(p_limit))
