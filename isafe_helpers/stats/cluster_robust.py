"""Cluster-robust OLS: the CR2 (Bell-McCaffrey) covariance with Satterthwaite degrees of freedom."""

from __future__ import annotations

import numpy as np
import pandas as pd


def cr2(y: np.ndarray, X: np.ndarray, cluster, df_for=None) -> dict:
    """OLS with the CR2 (Bell-McCaffrey) cluster-robust covariance and Satterthwaite df.

    ``V = M (sum_j X_j' A_j e_j e_j' A_j X_j) M`` with ``M = (X'X)^-1`` and
    ``A_j = (I - H_jj)^(-1/2)`` (symmetric square root; ``H_jj = X_j M X_j'``),
    as ``clubSandwich::vcovCR(type = "CR2")`` with the identity working model.
    Degrees of freedom for coefficient ``k`` (Bell & McCaffrey 2002;
    Pustejovsky & Tipton 2018): with ``u_j = A_j X_j M c`` placed in cluster
    ``j``'s rows and ``g_j = (I - H) u_j``,
    ``df = (sum_j g_j'g_j)^2 / sum_i sum_j (g_i'g_j)^2``, where
    ``g_i'g_j = [i = j] u_j'u_j - (X'u_i)' M (X'u_j)``.

    ``df_for``: indices of the coefficients whose df are wanted (default all;
    the others are NaN). Returns a dict of arrays ``beta``, ``se``, ``df`` and
    the covariance ``vcov``.
    """
    y = np.asarray(y, float)
    X = np.asarray(X, float)
    codes, uniq = pd.factorize(pd.Series(cluster))
    G = len(uniq)
    N, p = X.shape
    M = np.linalg.inv(X.T @ X)
    beta = M @ (X.T @ y)
    e = y - X @ beta
    if not np.any(np.abs(e) > 1e-10 * max(1.0, float(np.abs(y).max()))):
        raise ValueError("no residual variance: the model reproduces every score exactly")
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=G))))
    AX = np.empty_like(X)  # rows of A_j X_j, in sorted order
    meat = np.zeros((p, p))
    for j in range(G):
        idx = order[bounds[j] : bounds[j + 1]]
        Xj = X[idx]
        H = Xj @ M @ Xj.T
        ev, vec = np.linalg.eigh(np.eye(len(idx)) - H)
        if ev.min() <= 1e-12:
            raise ValueError("CR2 adjustment undefined: a cluster is perfectly fitted (I - H_jj singular)")
        A = (vec / np.sqrt(ev)) @ vec.T
        AX[idx] = A @ Xj
        v = (A @ e[idx]) @ Xj
        meat += np.outer(v, v)
    V = M @ meat @ M
    se = np.sqrt(np.diag(V))
    dfs = np.full(p, np.nan)
    starts = bounds[:-1]
    Xs = X[order]
    for k in range(p) if df_for is None else df_for:
        u = AX[order] @ M[:, k]  # u_j stacked, sorted by cluster
        Q = np.add.reduceat(Xs * u[:, None], starts, axis=0)  # X_j' u_j per cluster
        uu = np.add.reduceat(u * u, starts)
        Gram = np.diag(uu) - Q @ M @ Q.T
        dfs[k] = np.trace(Gram) ** 2 / np.sum(Gram * Gram)
    return dict(beta=beta, se=se, df=dfs, vcov=V)
