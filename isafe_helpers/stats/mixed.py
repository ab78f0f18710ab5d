"""Linear mixed model with a single random intercept, fitted by exact profiled REML.

Model
-----
    y = X b + u_team + e,   u_team ~ N(0, s2_B),   e ~ N(0, s2_W)

With ``theta = s2_B / s2_W`` the covariance of team ``j`` is
``V_j = s2_W * (I + theta * 1 1')``, so that

    V_j^{-1} * s2_W = I - theta / (1 + theta n_j) * 1 1'
    log|V_j / s2_W| = log(1 + theta n_j).

Writing the fixed-effect cross products as a within-team part plus a
between-team part (``s_j = X_j'1`` and ``t_j = 1'y_j`` are the team sums),

    X'V0^{-1}X = W_xx + sum_j s_j s_j' / (n_j (1 + theta n_j))
    X'V0^{-1}y = W_xy + sum_j s_j t_j  / (n_j (1 + theta n_j))

(``W`` = cross products of the within-team centred data), there is no
cancellation, and every quantity the REML criterion needs is a per-team sum.
Team sums are computed once (``O(N p^2)``).  Because the team weights depend
on the team only through its size ``n_j``, the ``s_j s_j'`` are further
pooled by team size, so a criterion evaluation costs
``O(K p^2 + p^3)`` with ``K`` the number of distinct team sizes (``O(G p^2)``
when there are too many distinct sizes to pool).

``s2_W`` and ``b`` are profiled out.  The profiled REML criterion
(-2 x REML log-likelihood, the constant as in lme4's ``REMLcrit``) is

    f(theta) = sum_j log(1 + theta n_j) + log|X'V0^{-1}X|
               + (N - p) (1 + log(2 pi Q(theta) / (N - p)))

with ``Q`` the generalised residual sum of squares.  It is minimised over
``theta >= 0`` by a grid over ``log theta`` (plus ``theta = 0``), a bounded
Brent search inside the best grid bracket, and a safeguarded Newton polish
using analytic first and second derivatives.  The ``theta = 0`` boundary is
taken when the one-sided derivative there is non-negative (as lme4 does).

Standard errors are the conventional ones, ``cov(b) = s2_W (X'V0^{-1}X)^{-1}``
at the REML estimates (lme4, SAS, Stata).  Denominator degrees of freedom are
Satterthwaite's, computed exactly as lmerTest does it: variance parameters
``(tau, sigma)`` with ``tau = sqrt(theta)`` (lme4's relative standard
deviation) and ``sigma = sqrt(s2_W)``; their asymptotic covariance is
``2 H^{-1}`` with ``H`` the Hessian of the (unprofiled) REML deviance
(pseudo-inverse over the eigenvalues above 1e-8, as lmerTest); the gradient
of ``var(b_k)`` is taken with respect to the same parameters;
``df_k = 2 var(b_k)^2 / (g' (2 H^{-1}) g)``.  All derivatives are analytic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from isafe_helpers.stats.kenward_roger import KRResult, TeamSums, kenward_roger_from_sums

__all__ = ["MixedFit", "fit_random_intercept", "fit_formula_free"]


# Pool the per-team outer products by team size when the pooled array stays
# below this many float64 elements (K * p * p); otherwise work per team.
_MAX_POOLED_ELEMENTS = 8_000_000


# Grid over log10(theta) used to bracket the optimum (theta = 0 is added).
_GRID_LOG10 = np.linspace(-8.0, 8.0, 33)


# lmerTest's tolerance for "positive" Hessian eigenvalues.
_EIG_TOL = 1e-8


@dataclass(frozen=True)
class MixedFit:
    """Result of :func:`fit_random_intercept` / :func:`fit_formula_free`."""

    names: list[str]
    beta: np.ndarray
    cov_beta: np.ndarray
    se: np.ndarray
    team_variance: float  # s2_B
    residual_variance: float  # s2_W
    icc: float
    reml_criterion: float  # -2 * REML log-likelihood (lme4's REMLcrit)
    n: int
    n_groups: int
    converged: bool
    message: str
    df: np.ndarray  # Satterthwaite denominator df for each coefficient (as lmerTest)
    # what Kenward-Roger needs (team sums of X) and its cached result; not compared, not shown
    _kr: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def kenward_roger(self) -> KRResult:
        """Kenward-Roger adjusted covariance, SEs and df (as ``lmerTest`` with ddf = "Kenward-Roger"),
        evaluated at this fit's REML estimates; computed on first call, then cached.
        See :mod:`isafe_helpers.stats.kenward_roger`; ``.test(L)`` gives a KR F test."""
        if "result" not in self._kr:
            if "sums" not in self._kr:
                raise ValueError("this MixedFit does not carry its design: refit with fit_random_intercept")
            self._kr["result"] = kenward_roger_from_sums(
                self._kr["sums"], self.team_variance, self.residual_variance, beta=self.beta, names=self.names
            )
        return self._kr["result"]

    def icc_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Profile-likelihood interval of the ICC, ``s2_B / (s2_B + s2_W)``.

        The ICC is a monotone function of ``theta = s2_B / s2_W`` alone, and
        the profiled REML criterion ``f(theta)`` (module docstring) already
        maximises over ``s2_W`` and the fixed effects, so the profile
        likelihood interval is ``{theta : f(theta) - f(theta_hat) <=
        chi2_1(level)}``, mapped to ``theta / (1 + theta)``. Its ends are
        found by root finding on ``f``; an end that the set reaches (theta = 0,
        where the set includes it) is 0. The interval therefore lies in
        [0, 1]. At theta_hat = 0 the chi-square(1) cut-off is conservative
        (the boundary distribution is a 50:50 mixture). This is the interval
        lme4's REML deviance function gives when profiled on its relative SD
        (``sqrt(theta)``; R reference in tests/fixtures/icc_profile).
        """
        crit = self._kr.get("crit")
        if crit is None:
            raise ValueError("this MixedFit does not carry its design: refit with fit_random_intercept")
        theta_hat = self.team_variance / self.residual_variance
        f_hat = float(crit(theta_hat))
        cut = float(stats.chi2.ppf(level, 1))

        def g(th: float) -> float:
            return float(crit(th)) - f_hat - cut

        lo = 0.0
        if theta_hat > 0 and g(0.0) > 0:
            lo = optimize.brentq(g, 0.0, theta_hat, xtol=1e-14 * max(theta_hat, 1e-12), rtol=1e-13, maxiter=500)
        hi_b = max(theta_hat, 1e-6) * 2.0
        while g(hi_b) <= 0:
            hi_b *= 4.0
            if hi_b > 1e12:
                return lo / (1.0 + lo), 1.0
        hi = optimize.brentq(g, theta_hat, hi_b, xtol=1e-14 * hi_b, rtol=1e-13, maxiter=500)
        return float(lo / (1.0 + lo)), float(hi / (1.0 + hi))

    def tidy(self) -> pd.DataFrame:
        """One row per fixed effect: estimate, SE, Satterthwaite df, t, two-sided
        p-value and t-based 95% confidence interval (normal if df is not finite)."""
        beta = np.asarray(self.beta, dtype=float)
        se = np.asarray(self.se, dtype=float)
        df = np.asarray(self.df, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = beta / se
        finite = np.isfinite(df) & (df > 0)
        p = np.where(finite, 2.0 * stats.t.sf(np.abs(t), np.where(finite, df, 1.0)), 2.0 * stats.norm.sf(np.abs(t)))
        q = np.where(finite, stats.t.ppf(0.975, np.where(finite, df, 1.0)), stats.norm.ppf(0.975))
        return pd.DataFrame(
            {
                "term": list(self.names),
                "estimate": beta,
                "se": se,
                "df": df,
                "t": t,
                "p_value": p,
                "ci_low": beta - q * se,
                "ci_high": beta + q * se,
            }
        )


class _Problem:
    """Per-team sufficient statistics and REML criterion for one data set."""

    def __init__(self, y: np.ndarray, X: np.ndarray, codes: np.ndarray, n_groups: int):
        N, p = X.shape
        self.N, self.p, self.G = N, p, n_groups
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=n_groups)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        self._counts, self._starts = counts, starts
        Xs = X[order]
        self._Xs = Xs
        self._ys = y[order]
        Sx = np.add.reduceat(Xs, starts, axis=0)  # (G, p) team sums of X
        nj = counts.astype(float)
        Xc = Xs - np.repeat(Sx / nj[:, None], counts, axis=0)
        self._Xc = Xc
        self.W = Xc.T @ Xc
        self.W = 0.5 * (self.W + self.W.T)
        self.Sx, self.nj = Sx, nj

        sizes, cls = np.unique(counts, return_inverse=True)
        K = sizes.size
        self.pooled = K * p * p <= _MAX_POOLED_ELEMENTS
        if self.pooled:
            self.cls = cls
            self.nk = sizes.astype(float)
            self.Gk = np.bincount(cls, minlength=K).astype(float)
            M = np.empty((K, p, p))
            by = np.argsort(cls, kind="stable")
            bounds = np.concatenate(([0], np.cumsum(self.Gk.astype(int))))
            for k in range(K):
                S = Sx[by[bounds[k] : bounds[k + 1]]]
                M[k] = S.T @ S
            self.M: np.ndarray | None = M
        else:  # one "class" per team
            self.cls = np.arange(n_groups)
            self.nk = nj
            self.Gk = np.ones(n_groups)
            self.M = None
        self.b0 = np.zeros(p)
        self._set_y(self._ys)

    def _set_y(self, ys: np.ndarray) -> None:
        """Outcome statistics: within-team cross products and team sums."""
        t = np.add.reduceat(ys, self._starts)  # (G,) team sums of y
        yc = ys - np.repeat(t / self.nj, self._counts)
        self.Wxy = self._Xc.T @ yc
        self.Wyy = float(yc @ yc)
        self.t = t
        if self.pooled:
            K = self.nk.size
            self.C = np.zeros((K, self.p))
            np.add.at(self.C, self.cls, self.Sx * t[:, None])
            self.D = np.bincount(self.cls, weights=t * t, minlength=K)
        else:
            self.C = self.Sx * t[:, None]
            self.D = t * t

    def centre_outcome(self) -> None:
        """Replace y by y - X b0 with b0 the OLS fit (twice, to refine).

        The REML fit is exactly equivariant (b -> b - b0, everything else
        unchanged), and working with a residual-sized outcome avoids
        cancellation in the generalised residual sum of squares when y has a
        large mean relative to its spread.  Call after the rank check."""
        xtx = self.xtx()
        for _ in range(2):
            xty = self.Wxy + self.Sx.T @ (self.t / self.nj)
            step = np.linalg.solve(xtx, xty)
            self.b0 = self.b0 + step
            self._set_y(self._ys - self._Xs @ self.b0)

    # weighted sum over classes of the outer products s s'
    def _outer(self, w: np.ndarray) -> np.ndarray:
        if self.M is not None:
            return np.tensordot(w, self.M, axes=1)
        return (self.Sx.T * w) @ self.Sx

    def _outer_many(self, w: np.ndarray) -> np.ndarray:  # w: (T, K)
        if self.M is not None:
            return np.tensordot(w, self.M, axes=1)
        return np.stack([self._outer(wi) for wi in w])

    def xtx(self) -> np.ndarray:
        return self.W + self._outer(1.0 / self.nk)

    def _const(self) -> float:
        r = self.N - self.p
        return r * (1.0 + np.log(2.0 * np.pi / r))

    def crit_many(self, thetas: np.ndarray) -> np.ndarray:
        """Profiled REML criterion at several theta values (vectorised)."""
        thetas = np.atleast_1d(np.asarray(thetas, dtype=float))
        onep = 1.0 + thetas[:, None] * self.nk[None, :]  # (T, K)
        a = 1.0 / (self.nk[None, :] * onep)
        A = self.W[None] + self._outer_many(a)
        c = self.Wxy[None] + a @ self.C
        e = self.Wyy + a @ self.D
        out = np.full(thetas.shape, np.inf)
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            if thetas.size == 1:
                return out
            return np.concatenate([self.crit_many(th[None]) for th in thetas])
        z = np.linalg.solve(L, c[..., None])[..., 0]  # L z = c, Q = e - |z|^2
        Q = e - np.einsum("ij,ij->i", z, z)
        logdetA = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        logdetV = np.log(onep) @ self.Gk
        ok = Q > 0
        out[ok] = logdetV[ok] + logdetA[ok] + (self.N - self.p) * np.log(Q[ok]) + self._const()
        return out

    def crit(self, theta: float) -> float:
        return float(self.crit_many(np.array([theta]))[0])

    def details(self, theta: float, second: bool = True) -> dict:
        """Criterion, estimates and analytic derivatives with respect to theta."""
        N, p = self.N, self.p
        nk = self.nk
        onep = 1.0 + theta * nk
        a = 1.0 / (nk * onep)
        a1 = -1.0 / onep**2
        a2 = 2.0 * nk / onep**3
        A = self.W + self._outer(a)
        A = 0.5 * (A + A.T)
        c = self.Wxy + a @ self.C
        # numpy's LAPACK only in the hot path (mixing numpy's and scipy's
        # OpenBLAS thread pools is very slow on small machines)
        L = np.linalg.cholesky(A)
        Linv = np.linalg.solve(L, np.eye(p))
        b = Linv.T @ (Linv @ c)
        Ainv = Linv.T @ Linv
        # team-level residual sums (no cancellation against the grand mean)
        r = self.t - self.Sx @ b
        aj, a1j, a2j = a[self.cls], a1[self.cls], a2[self.cls]
        Q = self.Wyy - 2.0 * b @ self.Wxy + b @ self.W @ b + aj @ (r * r)
        logdetA = 2.0 * np.log(np.diag(L)).sum()
        logdetV = np.log(onep) @ self.Gk
        f = logdetV + logdetA + (N - p) * np.log(Q) + self._const()
        A1 = self._outer(a1)
        L1 = self.Gk @ (nk / onep)
        D1 = float(np.sum(Ainv * A1))
        Q1 = a1j @ (r * r)
        out = dict(
            theta=theta,
            f=float(f),
            b=b,
            Ainv=Ainv,
            Q=float(Q),
            A1=A1,
            f1=float(L1 + D1 + (N - p) * Q1 / Q),
            L1=L1,
            D1=D1,
            Q1=float(Q1),
        )
        if second:
            A2 = self._outer(a2)
            B = Ainv @ A1
            L2 = -self.Gk @ (nk**2 / onep**2)
            D2 = float(np.sum(Ainv * A2) - np.sum(B * B.T))
            u = self.Sx.T @ (a1j * r)
            Q2 = a2j @ (r * r) - 2.0 * u @ Ainv @ u
            f2 = L2 + D2 + (N - p) * (Q2 / Q - (Q1 / Q) ** 2)
            out.update(f2=float(f2), L2=L2, D2=D2, Q2=float(Q2), B=B)
        return out


def _optimise(prob: _Problem) -> tuple[float, bool, str]:
    grid = np.concatenate(([0.0], 10.0**_GRID_LOG10))
    fv = prob.crit_many(grid)
    if not np.any(np.isfinite(fv)):
        return 0.0, False, "REML criterion is not finite anywhere on the theta grid"
    i = int(np.nanargmin(np.where(np.isfinite(fv), fv, np.nan)))
    if i == grid.size - 1:
        th = float(grid[-1])
        return (
            th,
            False,
            (f"theta = s2_B/s2_W reached the upper search limit {th:.0e}: within-team variance is essentially zero"),
        )
    if i == 0:
        d0 = prob.details(0.0, second=False)
        if d0["f1"] >= 0.0:
            return (
                0.0,
                True,
                (
                    "converged at the boundary: team variance = 0 "
                    f"(one-sided derivative of REML criterion at 0 = {d0['f1']:.3g} >= 0)"
                ),
            )
        lo, hi = 0.0, float(grid[1])
    else:
        lo, hi = float(grid[i - 1]), float(grid[i + 1])

    # Brent on the sqrt(theta) scale within the bracket
    with np.errstate(invalid="ignore", over="ignore"):
        res = optimize.minimize_scalar(
            lambda s: prob.crit(s * s),
            bounds=(np.sqrt(lo), np.sqrt(hi)),
            method="bounded",
            options={"xatol": 1e-7 * np.sqrt(hi), "maxiter": 200},
        )
    th = float(res.x) ** 2
    # safeguarded Newton on f'(theta) = 0 within [lo, hi]
    blo, bhi = lo, hi
    d = prob.details(th)
    for _ in range(60):
        g, h = d["f1"], d["f2"]
        if g < 0:
            blo = max(blo, th)
        else:
            bhi = min(bhi, th)
        step = -g / h if h > 0 else np.nan
        new = th + step if np.isfinite(step) else np.nan
        if not (blo < new < bhi) or not np.isfinite(new):
            new = np.sqrt(blo * bhi) if blo > 0 else 0.5 * (blo + bhi)
        if abs(new - th) <= 1e-14 * max(th, 1e-300) or bhi - blo <= 1e-15 * bhi:
            th = new
            d = prob.details(th)
            break
        th = new
        d = prob.details(th)
        if abs(d["f1"]) * th <= 1e-13 * max(1.0, abs(d["f"])):
            break

    # boundary: take theta = 0 when it is at least as good (lme4 does the same)
    if lo == 0.0:
        d0 = prob.details(0.0, second=False)
        if d0["f1"] >= 0.0 or prob.crit(0.0) <= d["f"]:
            ok0 = d0["f1"] >= -1e-6
            return (
                0.0,
                ok0,
                (
                    ("" if ok0 else "NOT converged: ") + "optimum at the boundary: team variance = 0 "
                    f"(one-sided derivative of REML criterion at 0 = {d0['f1']:.3g})"
                ),
            )
    grad = d["f1"] * th  # derivative with respect to log(theta)
    ok = abs(grad) < 1e-6 and d["f2"] > 0 and d["f"] <= np.nanmin(fv) + 1e-8
    msg = f"converged: interior optimum theta = {th:.6g}, d f / d log(theta) = {grad:.2e}, d2f/dtheta2 = {d['f2']:.3g}"
    if not ok:
        msg = "NOT converged: " + msg
    return th, bool(ok), msg


def _satterthwaite(prob: _Problem, d: dict, sigma2: float) -> np.ndarray:
    """Satterthwaite df for each coefficient, parameterised as lmerTest."""
    N, p = prob.N, prob.p
    theta = d["theta"]
    tau = np.sqrt(theta)
    sigma = np.sqrt(sigma2)
    Q = d["Q"]
    g_th = d["L1"] + d["D1"] + d["Q1"] / sigma2
    g_thth = d["L2"] + d["D2"] + d["Q2"] / sigma2
    h_tt = 2.0 * g_th + 4.0 * theta * g_thth
    h_ts = -4.0 * tau * d["Q1"] / sigma**3
    h_ss = -2.0 * (N - p) / sigma2 + 6.0 * Q / sigma2**2
    H = np.array([[h_tt, h_ts], [h_ts, h_ss]])
    # lmerTest pseudo-inverts H over eigenvalues > 1e-8.  Applied to H itself
    # that test depends on the units of y (h_ss scales as 1/sigma^2), so it is
    # applied to the Hessian with respect to (tau, sigma / sigma_hat), a linear
    # reparameterisation: identical to lmerTest for outcomes on a unit scale,
    # and invariant to rescaling y.
    D = np.array([1.0, sigma])
    Hs = H * np.outer(D, D)
    evals, evecs = np.linalg.eigh(Hs)
    pos = evals > _EIG_TOL
    Hinv = ((evecs[:, pos] / evals[pos]) @ evecs[:, pos].T) * np.outer(D, D)
    vcov_vp = 2.0 * Hinv
    Ainv = d["Ainv"]
    diag_inv = np.diag(Ainv)
    diag_dA = np.einsum("ij,ji->i", d["B"], Ainv)  # diag(Ainv A1 Ainv)
    var = sigma2 * diag_inv
    j_tau = -2.0 * tau * sigma2 * diag_dA
    j_sig = 2.0 * sigma * diag_inv
    J = np.column_stack([j_tau, j_sig])
    denom = np.einsum("ij,jk,ik->i", J, vcov_vp, J)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * var**2 / denom


def _check_rank(prob: _Problem, X: np.ndarray, names: list[str]) -> None:
    xtx = prob.xtx()
    dg = np.sqrt(np.diag(xtx))
    if np.any(dg == 0):
        bad = [names[k] for k in np.flatnonzero(dg == 0)]
        raise ValueError(f"fixed-effect columns are all zero: {bad}")
    ev = np.linalg.eigvalsh(xtx / np.outer(dg, dg))
    if ev[0] <= 1e-10 * ev[-1]:
        _, _, piv = linalg.qr(X / np.sqrt((X * X).sum(axis=0)), mode="economic", pivoting=True)
        rank = np.linalg.matrix_rank(X / np.sqrt((X * X).sum(axis=0)), tol=None)
        bad = [names[k] for k in piv[rank:]]
        flat = [names[k] for k in range(1, X.shape[1]) if np.ptp(X[:, k]) == 0 and names[k] != "Intercept"]
        if flat:
            raise ValueError(f"no variance in {', '.join(flat)} (every analysed value is the same)")
        raise ValueError(
            f"fixed-effect design matrix is rank deficient (rank {rank} < {X.shape[1]}); aliased column(s): {bad}"
        )


def fit_random_intercept(y, X, groups, names=None) -> MixedFit:
    """Fit ``y = X b + u_group + e`` by exact profiled REML.

    Parameters
    ----------
    y : (N,) array of the outcome.
    X : (N, p) fixed-effect design matrix (include the intercept column yourself).
    groups : (N,) labels of the random-intercept groups (any hashable values).
    names : optional list of p column names.

    No missing values are allowed (use :func:`fit_formula_free` for data frames).
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] != y.size:
        raise ValueError("X must be a 2-D array with one row per element of y")
    N, p = X.shape
    if names is None:
        names = [f"x{k}" for k in range(p)]
    names = [str(s) for s in names]
    if len(names) != p:
        raise ValueError("names must have one entry per column of X")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
        raise ValueError("y and X must be finite (drop missing values first)")
    if not isinstance(groups, (pd.Series, pd.Index, pd.Categorical, np.ndarray)):
        groups = pd.Series(list(groups), dtype=object)
    codes, uniques = pd.factorize(groups, sort=False)
    codes = np.asarray(codes)
    if codes.size != N:
        raise ValueError("groups must have one label per observation")
    if np.any(codes < 0):
        raise ValueError("groups contains missing labels")
    G = len(uniques)
    if G < 2:
        raise ValueError("need at least two groups")
    if N - p < 1:
        raise ValueError("need more observations than fixed-effect columns")
    if G >= N:
        raise ValueError(
            "every group has a single observation: the team variance is not "
            "identifiable (number of groups must be < number of observations)"
        )

    if np.ptp(y) == 0:
        raise ValueError("no variance in the outcome (every analysed score is the same)")
    prob = _Problem(y, X, codes, G)
    _check_rank(prob, X, names)
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    if not np.any(np.abs(resid) > 1e-10 * max(1.0, float(np.abs(y).max()))):
        raise ValueError("no residual variance: the model reproduces every score exactly")
    prob.centre_outcome()
    theta, converged, message = _optimise(prob)
    d = prob.details(theta)
    sigma2 = d["Q"] / (N - p)
    if not sigma2 > 1e-12 * float(np.var(y)):
        raise ValueError("no residual variance: the model reproduces every score exactly")
    s2b = theta * sigma2
    cov = sigma2 * d["Ainv"]
    df = _satterthwaite(prob, d, sigma2)
    fit = MixedFit(
        names=list(names),
        beta=d["b"] + prob.b0,
        cov_beta=cov,
        se=np.sqrt(np.diag(cov)),
        team_variance=float(s2b),
        residual_variance=float(sigma2),
        icc=float(s2b / (s2b + sigma2)),
        reml_criterion=float(d["f"]),
        n=int(N),
        n_groups=int(G),
        converged=bool(converged),
        message=message,
        df=df,
    )
    fit._kr["sums"] = TeamSums(within=prob.W, sums=prob.Sx, sizes=prob.nj)
    fit._kr["crit"] = prob.crit  # the profiled REML criterion, for icc_interval()
    return fit


def _levels(s: pd.Series) -> list:
    """Observed levels in reference-first order."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.unique())
        return [c for c in s.cat.categories if c in present]
    vals = list(pd.unique(s))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=lambda v: (type(v).__name__, str(v)))


def fit_formula_free(data: pd.DataFrame, outcome: str, covariates: list[str], group: str) -> MixedFit:
    """Fit ``outcome ~ 1 + covariates + (1 | group)`` by REML without a formula parser.

    The design has an intercept (``Intercept``), numeric covariates as they are,
    and categorical / string / bool covariates treatment-coded against the first
    level (sorted order; for a pandas Categorical the first category that occurs
    in the analysed rows), named ``col[T.level]``.  Rows with a missing value in
    the outcome, any covariate or the group are dropped first.
    """
    covariates = list(covariates)
    cols = list(dict.fromkeys([outcome, *covariates, group]))
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise KeyError(f"columns not in data: {missing}")
    sub = data[cols]
    keep = ~sub.isna().any(axis=1).to_numpy()
    sub = sub.loc[keep]
    if sub.empty:
        raise ValueError("no complete rows")
    yv = sub[outcome]
    if pd.api.types.is_bool_dtype(yv.dtype):
        yv = yv.astype(float)
    if not pd.api.types.is_numeric_dtype(yv.dtype):
        raise TypeError(f"outcome {outcome!r} must be numeric")
    blocks = [np.ones((len(sub), 1))]
    names = ["Intercept"]
    for col in covariates:
        s = sub[col]
        dt = s.dtype
        numeric = (
            pd.api.types.is_numeric_dtype(dt)
            and not pd.api.types.is_bool_dtype(dt)
            and not isinstance(dt, pd.CategoricalDtype)
        )
        if numeric:
            blocks.append(s.to_numpy(dtype=float)[:, None])
            names.append(col)
            continue
        levels = _levels(s)
        if len(levels) < 2:
            raise ValueError(f"covariate {col!r} has fewer than two levels in the analysed rows")
        vals = s.to_numpy(dtype=object)
        for lev in levels[1:]:
            blocks.append((vals == lev).astype(float)[:, None])
            names.append(f"{col}[T.{lev}]")
    X = np.hstack(blocks)
    return fit_random_intercept(yv.to_numpy(dtype=float), X, sub[group].to_numpy(), names=names)
