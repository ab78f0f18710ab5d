"""Multiple imputation: a two-level normal imputer and Rubin's rules."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from isafe_helpers.stats.sums import team_indicator


class _TwoLevelImputer:
    """Draws for one incomplete variable from a random-intercept normal model.

    The model: ``y = [F, z] b + u_team + e`` on the rows where ``y`` is
    observed, with ``F`` fixed columns (intercept, arm, LA dummies) and ``z``
    the other wave's current (partly imputed) score. The variance ratio
    ``theta = s2_B / s2_W`` is held at its REML value from the rows where both
    are observed (fitted once); each draw then needs only GLS at that
    ``theta``, for which ``V^-1 ~ I - a_j 11'`` (``a_j = theta / (1 + theta n_j)``,
    ``n_j`` the team's observed rows) turns every cross product into a plain
    one minus per-team sums. The fixed columns' part is computed once.
    """

    def __init__(self, F: np.ndarray, codes: np.ndarray, G: int, miss: np.ndarray, theta: float):
        self.F, self.codes, self.G, self.miss, self.theta = F, codes, G, miss, theta
        obs = ~miss
        self.obs = obs
        self.cobs = codes[obs]
        self.nj = np.bincount(self.cobs, minlength=G).astype(float)
        self.a = theta / (1.0 + theta * self.nj)
        Fo = F[obs]
        self.Fo = Fo
        self.SF = self._tsum(Fo)
        self.FF = Fo.T @ Fo - (self.SF.T * self.a) @ self.SF

    def _tsum(self, x):
        if x.ndim == 1:
            return np.bincount(self.cobs, weights=x, minlength=self.G)
        return team_indicator(self.cobs, self.G) @ x

    def _ip(self, u, su, v, sv):  # u' V0^-1 v from vectors and their team sums
        return u.T @ v - (su.T * self.a) @ sv if u.ndim > 1 else u @ v - (su * self.a) @ sv

    def draw(self, y: np.ndarray, z: np.ndarray, rng) -> np.ndarray:
        obs, miss = self.obs, self.miss
        zo, yo = z[obs], y[obs]
        sz, sy = self._tsum(zo), self._tsum(yo)
        Fz = self._ip(self.Fo, self.SF, zo, sz)
        A = np.block([[self.FF, Fz[:, None]], [Fz[None, :], np.array([[self._ip(zo, sz, zo, sz)]])]])
        c = np.concatenate([self._ip(self.Fo, self.SF, yo, sy), [self._ip(zo, sz, yo, sy)]])
        Ainv = np.linalg.inv(A)
        bhat = Ainv @ c
        Xo = np.column_stack([self.Fo, zo])
        r = yo - Xo @ bhat
        n_obs, p = obs.sum(), A.shape[0]
        s2w_hat = self._ip(r, self._tsum(r), r, self._tsum(r)) / (n_obs - p)
        s2w = s2w_hat * (n_obs - p) / rng.chisquare(n_obs - p)
        s2b = self.theta * s2w
        b = rng.multivariate_normal(bhat, s2w * Ainv, method="cholesky")
        r = yo - Xo @ b
        rs = self._tsum(r)
        shrink = self.nj * s2b / (s2w + self.nj * s2b)
        mean = np.where(self.nj > 0, shrink * rs / np.maximum(self.nj, 1), 0.0)
        var = s2b * s2w / (s2w + self.nj * s2b)
        u = mean + np.sqrt(var) * rng.standard_normal(self.G)
        out = y.copy()
        Xm = np.column_stack([self.F[miss], z[miss]])
        cm = self.codes[miss]
        out[miss] = Xm @ b + u[cm] + np.sqrt(s2w) * rng.standard_normal(miss.sum())
        return out


def rubin(estimates, variances, df_complete: float) -> dict:
    """Pool estimates by Rubin's rules with Barnard-Rubin (1999) degrees of freedom.

    ``T = W + (1 + 1/m) B``; ``lambda = (1 + 1/m) B / T``;
    ``nu_old = (m - 1) / lambda^2``; ``nu_obs = (nu_com + 1)/(nu_com + 3) nu_com (1 - lambda)``;
    ``nu = 1 / (1/nu_old + 1/nu_obs)``.
    """
    q = np.asarray(estimates, float)
    u = np.asarray(variances, float)
    m = q.size
    qbar, w = q.mean(), u.mean()
    b = q.var(ddof=1) if m > 1 else 0.0
    t = w + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t if t > 0 else 0.0
    nu_com = float(df_complete)
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
    nu = nu_obs if lam == 0 else 1 / ((lam**2) / (m - 1) + 1 / nu_obs)
    se = math.sqrt(t)
    tq = stats.t.ppf(0.975, nu)
    return dict(
        estimate=qbar,
        se=se,
        df=nu,
        ci_low=qbar - tq * se,
        ci_high=qbar + tq * se,
        p_value=float(2 * stats.t.sf(abs(qbar / se), nu)),
        fmi=lam,
    )
