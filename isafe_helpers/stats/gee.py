"""Generalised estimating equations for a clustered binary outcome (file-level, logit link)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def gee_logit_exchangeable(events, trials, X, cluster, tol: float = 1e-10, maxiter: int = 100) -> dict:
    """Binomial GEE (logit link, exchangeable working correlation within cluster), robust covariance.

    Each row is a unit of ``trials`` binary observations (files) sharing the
    covariates ``X``, of which ``events`` are 1; the model is the file-level
    GEE (every file of a cluster exchangeable with every other), computed from
    per-unit and per-cluster sums so that no file-level array is built.
    With ``R^-1 = (I - c2 11') / (1 - alpha)``, ``c2 = alpha / (1 - alpha + n alpha)``,
    the Fisher-scoring step and the sandwich use only cluster sums.
    ``alpha`` is the moment estimator on Pearson residuals without a
    degrees-of-freedom correction (as R's geepack and statsmodels with
    ``ddof_scale=0``): ``alpha = sum_pairs r_j r_k / (phi * n_pairs)``,
    ``phi = sum r^2 / n_files``. Iterates (alpha update, one scoring step,
    halved while it does not reduce the norm of the estimating equations)
    until the largest coefficient step is below ``tol``; starts with five
    independence (GLM) steps.

    Returns ``params``, ``cov`` (robust), ``alpha``, ``converged`` and ``iterations``.
    """
    ys = np.asarray(events, float)
    m = np.asarray(trials, float)
    X = np.asarray(X, float)
    codes, uniq = pd.factorize(pd.Series(cluster))
    G = len(uniq)

    def tsum(w):
        out = np.zeros((G,) + w.shape[1:])
        np.add.at(out, codes, w)
        return out

    n = np.bincount(codes, weights=m, minlength=G)
    npairs = float(np.sum(n * (n - 1) / 2))
    b = np.zeros(X.shape[1])
    p0 = np.clip(ys.sum() / m.sum(), 1e-6, 1 - 1e-6)
    b[0] = np.log(p0 / (1 - p0)) if np.allclose(X[:, 0], 1) else 0.0
    alpha, converged, it = 0.0, False, 0

    def pieces(b, alpha, update_alpha):
        mu = 1 / (1 + np.exp(-(X @ b)))
        v = mu * (1 - mu)
        sv = np.sqrt(v)
        rsum = (ys - m * mu) / sv
        rsq = (ys * (1 - mu) ** 2 + (m - ys) * mu**2) / v
        R1 = np.bincount(codes, weights=rsum, minlength=G)
        if update_alpha and npairs > 0:
            phi = rsq.sum() / m.sum()
            alpha = float(np.sum((R1**2 - np.bincount(codes, weights=rsq, minlength=G)) / 2) / (phi * npairs))
        c1 = 1 / (1 - alpha)
        c2 = alpha / (1 - alpha + n * alpha)
        S = tsum(X * (m * sv)[:, None])
        Bm = c1 * ((X * (m * v)[:, None]).T @ X - (S.T * c2) @ S)
        U = c1 * (tsum(X * (ys - m * mu)[:, None]) - (c2 * R1)[:, None] * S)
        return Bm, U, alpha

    # Fisher scoring, first with alpha = 0 (the independence GLM), then with
    # alpha updated every iteration; a step that does not reduce the norm of
    # the estimating equations (at the current alpha) is halved, so that small
    # samples do not oscillate. The solution is the same GEE fixed point.
    for it in range(1, maxiter + 1):
        Bm, U, alpha = pieces(b, alpha, update_alpha=it > 5)
        score = U.sum(0)
        step = np.linalg.solve(Bm, score)
        norm0 = np.linalg.norm(score)
        for _ in range(30):
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                new = np.linalg.norm(pieces(b + step, alpha, update_alpha=False)[1].sum(0))
            if np.isfinite(new) and new <= norm0 * (1 + 1e-8) or np.max(np.abs(step)) < tol:
                break
            step = step / 2
        b = b + step
        if np.max(np.abs(step)) < tol and it > 6:
            converged = True
            break
    Bm, U, alpha = pieces(b, alpha, update_alpha=True)
    Bi = np.linalg.inv(Bm)
    return dict(params=b, cov=Bi @ (U.T @ U) @ Bi, alpha=alpha, converged=converged, iterations=it)


def gee_binary(events, trials, X: pd.DataFrame, cluster, term: str, df: float | None = None) -> dict:
    """File-level binary GEE (:func:`gee_logit_exchangeable`) and the effects of ``term``.

    Returns ``odds_ratio`` and ``risk_difference`` tuples (estimate, SE, CI
    low, CI high, p; the SE of the odds ratio is on the log scale), the fitted
    coefficients ``params``, their robust covariance ``cov``, the working
    correlation ``alpha`` and ``note`` (says when the fit did not converge:
    never silent). The risk difference is marginally standardised over files:
    the mean predicted probability with ``term`` set to 1 for every file minus
    that with it set to 0; its SE is by the delta method from the robust covariance.
    CIs and p-values use the normal reference, or Student's t on ``df`` degrees
    of freedom when ``df`` is given (the small-sample reference for few clusters).
    """
    m = np.asarray(trials, float)
    fit = gee_logit_exchangeable(events, m, X.to_numpy(float), cluster)
    note = "" if fit["converged"] else f"did not converge: GEE stopped after {fit['iterations']} iterations"
    b, V = fit["params"], fit["cov"]
    k = list(X.columns).index(term)
    ref = stats.norm if df is None else stats.t(df)
    z = ref.ppf(0.975)
    se = float(np.sqrt(V[k, k]))
    odds = (float(np.exp(b[k])), se, float(np.exp(b[k] - z * se)), float(np.exp(b[k] + z * se)),
            float(2 * ref.sf(abs(b[k] / se))))
    X1, X0 = X.to_numpy(float).copy(), X.to_numpy(float).copy()
    X1[:, k], X0[:, k] = 1.0, 0.0
    p1, p0 = 1 / (1 + np.exp(-X1 @ b)), 1 / (1 + np.exp(-X0 @ b))
    w = m / m.sum()
    rd = float(w @ (p1 - p0))
    grad = w @ (X1 * (p1 * (1 - p1))[:, None]) - w @ (X0 * (p0 * (1 - p0))[:, None])
    rd_se = float(np.sqrt(grad @ V @ grad))
    return dict(odds_ratio=odds, params=b, cov=V, alpha=fit["alpha"], note=note,
                risk_difference=(rd, rd_se, rd - z * rd_se, rd + z * rd_se, float(2 * ref.sf(abs(rd / rd_se)))))
