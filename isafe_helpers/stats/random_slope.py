"""REML fit of a linear mixed model with a team random intercept and an LA random arm slope, on arrays.

Model (teams nested in LAs, the arm constant within team)::

    y = X b + u_team + a * v_LA + e,   u ~ N(0, s2_T),  v ~ N(0, tau2),  e ~ N(0, s2_W)

as ``lme4::lmer(y ~ arm + baseline + la + (1 | team) + (0 + arm | la), REML = TRUE)``
(``tau2`` is the variance of the arm effect across LAs, ``tau2_arm_x_la``).

Computation. With ``t1 = s2_T / s2_W`` and ``t2 = tau2 / s2_W`` the marginal
covariance is ``s2_W V0``, ``V0 = I + Z D Z'``, ``Z`` = [team indicators,
arm x LA indicators], ``D = diag(t1, ..., t2, ...)``. ``Z D Z'`` is block
diagonal by LA (an LA's teams and its slope touch only its rows), so with
``Lam = D^(1/2)`` and, per LA, ``M_k = I + Lam Z_k'Z_k Lam`` (size: its teams
+ 1), the profiled REML criterion (Harville 1977; lme4's ``REMLcrit``)

    f = log|V0| + log|X'V0^-1 X| + (N - p) (1 + log(2 pi Q / (N - p))),
    log|V0| = sum_k log|M_k|,  V0^-1 = I - Z Lam M^-1 Lam Z'  (Woodbury),
    Q = y'V0^-1 y - b'X'V0^-1 y,  b = (X'V0^-1 X)^-1 X'V0^-1 y,  s2_W = Q / (N - p)

needs only per-LA cross products of ``Z`` with ``X`` and ``y``, computed
once. ``f`` is minimised over the relative standard deviations
``(sqrt t1, sqrt t2) >= 0`` (lme4's ``theta``, so a variance estimated at 0
is reached exactly, which log-ratios cannot) by L-BFGS-B from several
starts, then each component at the boundary is tried at 0.
The fixed effects' covariance is ``s2_W (X'V0^-1 X)^-1`` (model-based).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["fit_team_and_slope"]


def _codes(x) -> tuple[np.ndarray, int]:
    u, c = np.unique(np.asarray(x), return_inverse=True)
    return c.reshape(-1), u.size


def fit_team_and_slope(y, X, team, la, slope) -> dict:
    """REML fit of ``y = X b + u_team + slope * v_la + e`` (module docstring).

    Parameters
    ----------
    y : (N,) outcome; X : (N, p) fixed design (full column rank);
    team, la : (N,) labels (each team in one LA); slope : (N,) the random
        slope's covariate (the arm, 0/1).

    Returns a dict: ``beta`` (p,), ``cov_beta`` (p, p), ``team_variance``,
    ``slope_variance`` (tau2), ``residual_variance``, ``reml_criterion``
    (lme4's REMLcrit), ``theta`` (relative SDs), ``converged``, ``message``.
    """
    y = np.asarray(y, float).reshape(-1)
    X = np.asarray(X, float)
    a = np.asarray(slope, float).reshape(-1)
    tc, G = _codes(team)
    lc, K = _codes(la)
    N, p = X.shape
    if y.size != N or a.size != N or tc.size != N or lc.size != N:
        raise ValueError("y, X, team, la and slope need one row per observation")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X)) and np.all(np.isfinite(a))):
        raise ValueError("y, X and slope must be finite")
    if np.linalg.matrix_rank(X) < p or N - p < 1:
        raise ValueError("the fixed-effect design is rank deficient")
    team_la = np.full(G, -1)
    team_la[tc] = lc
    if np.any(team_la[tc] != lc):
        raise ValueError("every team must lie in one LA")
    XtX, Xty, yty = X.T @ X, X.T @ y, float(y @ y)
    blocks = []
    for k in range(K):
        rows = lc == k
        teams_k = np.unique(tc[rows])
        Zk = np.column_stack([(tc[rows][:, None] == teams_k[None, :]).astype(float), a[rows]])
        blocks.append((Zk.T @ Zk, Zk.T @ X[rows], Zk.T @ y[rows], teams_k.size))
    r = N - p

    def pieces(th: np.ndarray):
        logdet = 0.0
        A = XtX.copy()
        c = Xty.copy()
        s = yty
        for ZtZ, ZtX, Zty, g in blocks:
            lam = np.append(np.full(g, th[0]), th[1])
            M = np.eye(g + 1) + lam[:, None] * ZtZ * lam[None, :]
            L = np.linalg.cholesky(M)
            logdet += 2.0 * np.sum(np.log(np.diag(L)))
            B = np.linalg.solve(L, lam[:, None] * np.column_stack([ZtX, Zty]))
            A -= B[:, :p].T @ B[:, :p]
            c -= B[:, :p].T @ B[:, p]
            s -= float(B[:, p] @ B[:, p])
        A = 0.5 * (A + A.T)
        LA = np.linalg.cholesky(A)
        b = np.linalg.solve(A, c)
        Q = s - float(b @ c)
        f = logdet + 2.0 * np.sum(np.log(np.diag(LA))) + r * (1.0 + np.log(2.0 * np.pi * Q / r))
        return f, b, A, Q

    def crit(th: np.ndarray) -> float:
        return float(pieces(np.abs(th))[0])

    best = None
    for start in ((0.5, 0.5), (0.1, 0.1), (1.0, 0.05), (0.05, 1.0)):
        res = optimize.minimize(
            crit,
            np.array(start),
            method="L-BFGS-B",
            bounds=[(0.0, None), (0.0, None)],
            options=dict(ftol=1e-15, gtol=1e-9, maxiter=2000),
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    th = np.abs(best.x)
    for i in (0, 1):  # a component near the boundary: is 0 at least as good?
        t0 = th.copy()
        t0[i] = 0.0
        if th[i] < 1e-3 and crit(t0) <= crit(th) + 1e-10:
            th = t0
    if np.any(th == 0):  # re-optimise the other component on the boundary
        free = [i for i in (0, 1) if th[i] > 0]
        for i in free:

            def one(x, i=i):
                t = th.copy()
                t[i] = abs(x)
                return crit(t)

            r1 = optimize.minimize_scalar(one, bracket=(th[i] * 0.5, th[i]), tol=1e-12)
            if r1.fun <= crit(th):
                th[i] = abs(r1.x)
    f, b, A, Q = pieces(th)
    s2w = Q / r
    grad = np.empty(2)
    for i in (0, 1):  # central differences, forward at the boundary
        h = 1e-5 * max(th[i], 1e-3)
        e = np.zeros(2)
        e[i] = h
        grad[i] = (crit(th + e) - crit(th - e)) / (2 * h) if th[i] > h else (crit(th + e) - crit(th)) / h
    ok = bool(np.all((np.abs(grad) < 1e-3) | ((th == 0) & (grad >= -1e-3))))
    return dict(
        beta=b,
        cov_beta=s2w * np.linalg.inv(A),
        team_variance=float(th[0] ** 2 * s2w),
        slope_variance=float(th[1] ** 2 * s2w),
        residual_variance=float(s2w),
        reml_criterion=float(f),
        theta=th,
        converged=ok,
        message="" if ok else "NOT converged: REML gradient not zero at the optimum",
    )
