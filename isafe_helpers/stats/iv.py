"""Instrumental variables: just-identified two-stage least squares with team-clustered errors."""

from __future__ import annotations

import numpy as np
import pandas as pd


def tsls_clustered(y, D, Z_excl, W, cluster) -> dict:
    """Just-identified 2SLS of ``y`` on ``[D, W]`` with instrument ``Z_excl`` for ``D``.

    ``W`` holds the exogenous columns (with the intercept). Returns the
    coefficient of ``D``, its CR1 team-clustered SE (factor
    ``G/(G-1) (N-1)/(N-k)``), ``G`` and the first-stage coefficient of the instrument.
    """
    y = np.asarray(y, float)
    X = np.column_stack([D, W])
    Z = np.column_stack([Z_excl, W])
    ZZi = np.linalg.inv(Z.T @ Z)
    Xh = Z @ (ZZi @ (Z.T @ X))
    A = np.linalg.inv(Xh.T @ X)
    b = A @ (Xh.T @ y)
    e = y - X @ b
    codes, uniq = pd.factorize(pd.Series(cluster))
    G, (N, k) = len(uniq), X.shape
    S = np.zeros((G, k))
    np.add.at(S, codes, Xh * e[:, None])
    V = A @ (S.T @ S) @ A.T * (G / (G - 1)) * ((N - 1) / (N - k))
    first = np.linalg.lstsq(Z, np.asarray(D, float), rcond=None)[0][0]
    return dict(beta=float(b[0]), se=float(np.sqrt(V[0, 0])), G=G, first_stage=float(first))
