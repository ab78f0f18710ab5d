"""Multiple imputation of a two-wave cluster randomised trial, on arrays.

Arrays in, results out: no trial-data frames here (the frame-level wrapper is
:func:`isafe_helpers.impact_robust.multiple_imputation`).

What it does
------------
:func:`mi_arm_effect` imputes missing follow-up and baseline scores by chained
equations (fully conditional specification, FCS; van Buuren 2018, *Flexible
Imputation of Missing Data*, 2nd ed., ch. 4 and 7), each wave from a
two-level normal model on the other wave's current score and the fixed
columns ``F`` (intercept, arm, LA dummies) with a random intercept for team
(:class:`TwoLevelImputer`). The analysis model (follow-up on ``F`` and
baseline, random team intercept, REML, Satterthwaite df as lmerTest) is
fitted to every completed data set (:func:`fit_team_model`) and the arm
effects pooled by Rubin's rules with the Barnard-Rubin (1999) df
(:func:`rubin`).

The imputation draw: variance components are drawn, never held fixed
--------------------------------------------------------------------
Each call of :meth:`TwoLevelImputer.draw` makes one exact, independent draw
from the posterior predictive distribution of the random-intercept model

    y = X b + u_team + e,   u ~ N(0, s2_B),   e ~ N(0, s2_W),   X = [F, z]

fitted to the rows where ``y`` is observed, under the priors ``p(b) ∝ 1``,
``p(s2_W) ∝ 1 / s2_W`` and a half-Cauchy(0, ``prior_scale``) prior on the
relative team standard deviation ``tau = s_B / s_W = sqrt(theta)``:

1. ``theta`` from its marginal posterior. Integrating ``b`` (flat) and
   ``s2_W`` (Jeffreys) out of the likelihood leaves exactly the restricted
   (REML) likelihood of ``theta`` (Harville 1974, *Biometrika* 61:383-385):
   ``p(theta | y) ∝ p(theta) exp(-f(theta) / 2)`` with ``f`` the profiled
   REML criterion of :mod:`isafe_helpers.mixed`. This 1-D density is
   evaluated on a grid in ``tau`` (a coarse log grid to find where the mass
   is, then a fine uniform grid over that region) and sampled by inverting
   its piecewise-linear CDF, the grid method of Gelman et al. (2013, *Bayesian
   Data Analysis*, 3rd ed., section 5.4) for the hierarchical normal model.
   The REML *estimate* of ``theta`` may be 0, the posterior never is a point
   mass there: drawn values are positive with probability one.
2. ``s2_W | theta, y ~ Q(theta) / chi2(n - p)`` (``Q`` the generalised
   residual sum of squares).
3. ``b | theta, s2_W, y ~ N(b_GLS(theta), s2_W (X'V0^-1 X)^-1)``.
4. each team's ``u_j | b, theta, s2_W, y`` from its conditional normal
   (mean ``theta r_j / (1 + theta n_j)``, variance
   ``s2_W theta / (1 + theta n_j)``, with ``r_j`` the team's residual sum over
   its ``n_j`` observed rows; a team with no observed row draws from
   ``N(0, theta s2_W)``).
5. each missing ``y = x b + u_team + e`` with ``e ~ N(0, s2_W)``.

This is the same target as the Gibbs samplers of pan (Schafer & Yucel 2002,
*JCGS* 11:437-457), jomo and mice's ``2l.pan``, but needs no chain: with a
single random intercept the only non-conjugate parameter is the scalar
``theta``, which is drawn directly. It differs from the previous
implementation (``theta`` held at its REML value, so no team-level
uncertainty whenever the estimate was 0) and from mice's ``2l.lmer``
(Jolani 2018), whose draw of the team variance scales the sum of squared
BLUPs and so collapses to 0 whenever the REML estimate is 0.

The prior on ``tau``: half-Cauchy with scale 1 (Gelman 2006, *Bayesian
Analysis* 1:515-534, recommends the half-Cauchy for group-level standard
deviations when the groups are few). It is unit-free (``tau`` is a ratio of
standard deviations), has its maximum density at 0 (does not push the team
variance away from 0, unlike an inverse-gamma), and its scale 1 means a team
SD equal to the residual SD (ICC 0.5), far above the team ICCs of staff
surveys, so it restrains only implausible values; it also keeps the posterior
proper with very few teams (a flat prior on ``tau`` needs more teams than
team-level fixed effects plus one). ``prior_scale=np.inf`` gives that flat
prior.

Per-team sufficient statistics
------------------------------
Every column of ``F`` is constant within a team. The model's cross products
are a within-team part (only the row-level columns ``z`` and ``y`` have one)
plus team sums weighted by ``a_j = 1 / (n_j (1 + theta n_j))``, as in
:mod:`isafe_helpers.mixed`. In addition the columns of ``F`` that are 0/1
indicators with disjoint supports (the LA dummies) are *absorbed*: their
block of ``X'V0^-1X`` is diagonal, so ``log|X'V0^-1X|``, the GLS solution and
the derivatives the Satterthwaite df need follow from a Schur complement onto
the few remaining columns (intercept, arm, ``z``) in ``O(G r^2)`` per value of
``theta`` (``G`` teams, ``r`` remaining columns) instead of ``O(p^3)`` with
``p`` ~ 150 at national scale. The REML fit is the exact criterion of
:func:`isafe_helpers.mixed.fit_random_intercept` (same parameters, same
optimum, same Satterthwaite df; tested to agree).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse, stats

__all__ = ["TwoLevelImputer", "fit_team_model", "mi_arm_effect", "rubin", "PRIOR_SCALE"]

#: Scale of the half-Cauchy prior on tau = s_B / s_W (module docstring).
PRIOR_SCALE = 1.0
# Grid over log10(theta) bracketing the REML optimum (theta = 0 is added), as mixed.py.
_GRID_LOG10 = np.linspace(-8.0, 8.0, 33)
# Posterior grid for tau: coarse log grid (plus 0), fine uniform grid, log-density cut-off.
_TAU_COARSE = np.concatenate(([0.0], np.geomspace(1e-4, 1e3, 36)))
_TAU_FINE = 49
_TAU_BULK = 12
_LOG_CUT = 15.0
# Pool teams by size when (number of sizes) x (number of strata) <= this x (number of teams).
_POOL_RATIO = 8
_EIG_TOL = 1e-8  # lmerTest's tolerance for "positive" Hessian eigenvalues


# ---------------------------------------------------------------------------
# Rubin's rules
# ---------------------------------------------------------------------------


def rubin(estimates, variances, df_complete: float) -> dict:
    """Pool estimates by Rubin's rules with Barnard-Rubin (1999) degrees of freedom.

    ``T = W + (1 + 1/m) B``; ``lambda = (1 + 1/m) B / T``;
    ``nu_old = (m - 1) / lambda^2``; ``nu_obs = (nu_com + 1)/(nu_com + 3) nu_com (1 - lambda)``;
    ``nu = 1 / (1/nu_old + 1/nu_obs)``.

    >>> r = rubin([1.0, 1.2], [0.04, 0.04], 30.0)
    >>> round(r["estimate"], 6), round(r["se"] ** 2, 6)
    (1.1, 0.07)
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
    return dict(estimate=qbar, se=se, df=nu, ci_low=qbar - tq * se, ci_high=qbar + tq * se,
                p_value=float(2 * stats.t.sf(abs(qbar / se), nu)), fmi=lam)


# ---------------------------------------------------------------------------
# team-level layout of the fixed columns
# ---------------------------------------------------------------------------


class _Layout:
    """The fixed columns ``F`` at team level, split into absorbed indicators and dense columns.

    ``dcols``: 0/1 columns with pairwise disjoint supports (each team has at
    most one; ``stratum[j]`` is the index of its column, -1 for none).
    ``rcols``: the other columns (dense), in their original order. Columns in
    ``keep`` (the coefficient of interest) are never absorbed.
    """

    def __init__(self, F: np.ndarray, codes: np.ndarray, G: int, keep=()):
        F = np.asarray(F, float)
        if F.ndim != 2 or F.shape[0] != codes.size:
            raise ValueError("F must be a 2-D array with one row per element of codes")
        if codes.min(initial=0) < 0 or codes.max(initial=-1) >= G:
            raise ValueError("codes must lie in 0 .. n_groups - 1")
        present, first = np.unique(codes, return_index=True)
        if present.size != G:
            raise ValueError("every team code 0 .. n_groups - 1 needs at least one row")
        Ft = F[first]
        if not np.array_equal(Ft[codes], F):
            raise ValueError("the columns of F must be constant within each team (team-level columns)")
        if not np.all(np.isfinite(F)):
            raise ValueError("F must be finite")
        self.F, self.Ft, self.G, self.p = F, Ft, G, F.shape[1]
        counts = np.bincount(codes, minlength=G)
        cand = [k for k in range(self.p) if k not in set(keep) and np.isin(Ft[:, k], (0.0, 1.0)).all()
                and 0 < Ft[:, k].sum() < G]
        cand.sort(key=lambda k: (counts @ Ft[:, k], k))
        used = np.zeros(G, bool)
        dcols = []
        for k in cand:
            on = Ft[:, k] == 1.0
            if not (used & on).any():
                dcols.append(k)
                used |= on
        dcols.sort()
        self.dcols = dcols
        self.rcols = [k for k in range(self.p) if k not in set(dcols)]
        self.FtR = Ft[:, self.rcols]
        # is the constant in the span of F? (then centring y and z on their means is exact)
        res = np.linalg.lstsq(Ft, np.ones(G), rcond=None)[0]
        self.has_const = bool(np.max(np.abs(Ft @ res - 1.0)) < 1e-9)
        stratum = np.full(G, -1)
        for i, k in enumerate(dcols):
            stratum[Ft[:, k] == 1.0] = i
        self.stratum = stratum
        self.L = len(dcols)


class _Model:
    """``y = [F, Z] b + u_team + e`` on a subset of rows, in per-team sufficient statistics.

    Coefficients are kept as ``b_D`` (absorbed indicator columns) and
    ``b_R`` (dense columns of ``F`` followed by the columns of ``Z``).
    """

    def __init__(self, lay: _Layout, codes: np.ndarray, rows: np.ndarray, q: int):
        self.lay, self.q = lay, q
        self.rows = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
        cnt = np.bincount(codes[self.rows], minlength=lay.G)
        teams = np.flatnonzero(cnt > 0)
        strat = lay.stratum[teams]
        key = np.where(strat >= 0, strat, lay.L)
        order = np.argsort(key, kind="stable")
        self.teams = teams[order]
        self.Gm = self.teams.size
        self.strat = strat[order]
        self.nD = int(np.sum(self.strat >= 0))
        if lay.L and np.unique(self.strat[: self.nD]).size < lay.L:
            missing = sorted(set(range(lay.L)) - set(self.strat[: self.nD].tolist()))
            raise ValueError("fixed-effect design matrix is rank deficient: indicator column(s) "
                             f"{[lay.dcols[i] for i in missing]} have no analysed row")
        self.starts = np.searchsorted(self.strat[: self.nD], np.arange(lay.L))
        self.n = cnt[self.teams].astype(float)
        pos = np.full(lay.G, -1)
        pos[self.teams] = np.arange(self.Gm)
        self.rc = pos[codes[self.rows]]  # model team of each analysed row
        self.N = self.rows.size
        self.r = len(lay.rcols) + q
        self.p = lay.L + self.r
        self.sF = self.n[:, None] * lay.FtR[self.teams]  # team sums of the dense F columns
        if self.N - self.p < 1:
            raise ValueError("need more observations than fixed-effect columns")
        if self.Gm < 2:
            raise ValueError("need at least two groups")
        if self.Gm >= self.N:
            raise ValueError("every group has a single observation: the team variance is not identifiable")
        # team weights depend on the team only through its size: pool by size (K sizes) where that pays
        sizes, ks = np.unique(self.n, return_inverse=True)
        K, L, Gm = sizes.size, lay.L, self.Gm
        self.nk, self.Gk = sizes, np.bincount(ks, minlength=K).astype(float)
        self.Pk = sparse.csr_matrix((np.ones(Gm), (ks, np.arange(Gm))), shape=(K, Gm))
        self.pooled = K * L <= _POOL_RATIO * Gm
        if self.pooled and L:
            nD = self.nD
            idx = ks[:nD] * L + self.strat[:nD]
            self.Pkl = sparse.csr_matrix((np.ones(nD), (idx, np.arange(nD))), shape=(K * L, nD))

    # -- data ------------------------------------------------------------------
    def set_data(self, y: np.ndarray, Z: np.ndarray, check_rank: bool = False, centre: bool = True) -> None:
        """Outcome ``y`` and row-level columns ``Z`` on the analysed rows (length ``N``).

        ``centre``: work with ``y`` minus its OLS fit (exactly equivariant, as
        mixed.py: no cancellation in ``Q`` when ``y`` has a large mean); the
        imputer, which centres on the means itself, skips this."""
        rc, Gm, n = self.rc, self.Gm, self.n
        Z = Z.reshape(self.N, self.q)
        self._y, self._Z = y, Z
        sz = np.column_stack([np.bincount(rc, weights=Z[:, k], minlength=Gm) for k in range(self.q)]) \
            if self.q else np.zeros((Gm, 0))
        self.sR = np.hstack([self.sF, sz])
        Zc = Z - (sz / n[:, None])[rc]
        self.WRR = np.zeros((self.r, self.r))
        self.WRR[self.r - self.q:, self.r - self.q:] = Zc.T @ Zc
        self._Zc = Zc
        # outer products of team sums, flattened, for a @ (...)
        self._kRR = self.Pk @ np.einsum("gr,gs->grs", self.sR, self.sR).reshape(Gm, -1)  # (K, r*r)
        self.b0D, self.b0R = np.zeros(self.lay.L), np.zeros(self.r)
        self._set_y(y)
        if check_rank:
            self._check_rank()
        if not centre:
            return
        d = self.solve(np.array([0.0]))
        self.b0D, self.b0R = d["bD"][0], d["bR"][0]
        self._set_y(y - self.fitted_rows(self.b0D, self.b0R))

    def _set_y(self, y: np.ndarray) -> None:
        t = np.bincount(self.rc, weights=y, minlength=self.Gm)
        yc = y - (t / self.n)[self.rc]
        self.t = t
        self.WRy = np.zeros(self.r)
        if self.q:
            self.WRy[self.r - self.q:] = self._Zc.T @ yc
        self.Wyy = float(yc @ yc)
        self._kRt = self.Pk @ (self.sR * t[:, None])  # (K, r)
        self._ktt = self.Pk @ (t * t)  # (K,)
        self._nts = np.column_stack([self.n, t, self.sR])  # (Gm, 2 + r)
        if self.pooled and self.lay.L:
            self._X = (self.Pkl @ self._nts[: self.nD]).reshape(self.nk.size, -1)  # (K, L * (2 + r))

    def _check_rank(self) -> None:
        d = self.solve(np.array([0.0]))
        # X'X = A(0): indicator block (team-size sums) and the Schur complement onto the dense block
        S = d["S"][0]
        dg = np.sqrt(np.diag(S))
        if np.any(dg <= 0) or np.linalg.eigvalsh(S / np.outer(dg, dg))[0] <= 1e-10:
            raise ValueError("fixed-effect design matrix is rank deficient")

    def fitted_rows(self, bD: np.ndarray, bR: np.ndarray, rows=None, codes=None, Z=None) -> np.ndarray:
        """``X b`` on the analysed rows (or on other rows: their team ``codes`` and row-level columns ``Z``)."""
        lay = self.lay
        nF = len(lay.rcols)
        if rows is None:
            codes, Z = self.teams[self.rc], self._Z
        team = lay.FtR @ bR[:nF]  # team-level part, per team
        st = lay.stratum
        team = team + np.where(st >= 0, np.concatenate((bD, [0.0]))[st], 0.0)
        out = team[codes]
        if self.q:
            out = out + Z.reshape(-1, self.q) @ bR[nF:]
        return out

    # -- criterion -----------------------------------------------------------
    def _reduce(self, x: np.ndarray) -> np.ndarray:
        """Sum over the teams of each stratum along the last team axis (first ``nD`` teams)."""
        if self.lay.L == 0:
            return np.zeros(x.shape[:-1] + (0,))
        return np.add.reduceat(x[..., : self.nD], self.starts, axis=-1)

    def solve(self, thetas: np.ndarray) -> dict:
        """GLS pieces at several theta values (vectorised over theta; team-major arrays)."""
        th = np.asarray(thetas, float)
        T, r, L, nD = th.size, self.r, self.lay.L, self.nD
        m = 2 + r
        onepK = 1.0 + th[:, None] * self.nk[None, :]  # (T, K)
        anK = 1.0 / onepK  # a n for each size
        aK = anK / self.nk[None, :]
        # per-stratum sums of a_j n_j * (n_j, t_j, sR_j)
        if L == 0:
            red = np.zeros((T, 0, m))
        elif self.pooled:
            red = (anK @ self._X).reshape(T, L, m)
        else:  # team-major, one reduceat over contiguous team rows
            an = 1.0 / (1.0 + self.n[:nD, None] * th[None, :])  # (nD, T)
            red = np.add.reduceat(an[:, None, :] * self._nts[:nD, :, None], self.starts, axis=0)
            red = np.moveaxis(red, 2, 0)  # (T, L, m)
        dD, cD, B = red[:, :, 0], red[:, :, 1], red[:, :, 2:]  # B: (T, L, r)
        C = self.WRR[None] + (aK @ self._kRR).reshape(T, r, r)
        cR = self.WRy[None] + aK @ self._kRt
        e = self.Wyy + aK @ self._ktt
        BsT = (B / dD[:, :, None]).transpose(0, 2, 1)  # (T, r, L)
        S = C - BsT @ B
        ct = cR - (BsT @ cD[:, :, None])[:, :, 0]
        et = e - np.sum(cD * cD / dD, axis=1)
        Lc = np.linalg.cholesky(S)
        bR = np.linalg.solve(S, ct[..., None])[..., 0]
        Q = et - np.sum(ct * bR, axis=1)
        bD = (cD - (B @ bR[:, :, None])[:, :, 0]) / dD
        logdetA = np.log(dD).sum(axis=1) + 2.0 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum(axis=1)
        return dict(dD=dD, B=B, cD=cD, S=S, bR=bR, bD=bD, Q=Q, logdetA=logdetA, logdetV=np.log(onepK) @ self.Gk)

    def _const(self) -> float:
        r = self.N - self.p
        return r * (1.0 + np.log(2.0 * np.pi / r))

    def crit_many(self, thetas) -> np.ndarray:
        """Profiled REML criterion (-2 REML log-likelihood, lme4's REMLcrit) at several theta."""
        thetas = np.atleast_1d(np.asarray(thetas, float))
        with np.errstate(invalid="ignore", divide="ignore"):
            try:
                d = self.solve(thetas)
            except np.linalg.LinAlgError:
                if thetas.size == 1:
                    return np.full(1, np.inf)
                return np.concatenate([self.crit_many(t) for t in thetas])
            f = d["logdetV"] + d["logdetA"] + (self.N - self.p) * np.log(d["Q"]) + self._const()
        return np.where(d["Q"] > 0, f, np.inf)

    def details(self, theta: float, coef: int | None = None) -> dict:
        """Criterion, GLS estimates and analytic theta-derivatives at one theta.

        ``coef``: index into ``b_R`` of a coefficient whose variance derivative
        (for the Satterthwaite df) is wanted.
        """
        d = self.solve(np.array([theta]))
        dD, B, S = d["dD"][0], d["B"][0].T, d["S"][0]
        bR, bD = d["bR"][0], d["bD"][0]
        n = self.n
        onep = 1.0 + theta * n
        a = 1.0 / (n * onep)
        a1 = -1.0 / onep**2
        a2 = 2.0 * n / onep**3
        M = np.linalg.inv(S)
        M = 0.5 * (M + M.T)
        nD = self.nD
        st = self.strat[:nD]
        # team residual sums r_j = t_j - s_j'b
        r = self.t - self.sR @ bR
        r[:nD] -= n[:nD] * bD[st]
        Q = self.Wyy - 2.0 * bR @ self.WRy + bR @ self.WRR @ bR + a @ (r * r)
        # v_j = sR_j - n_j B_l / dD_l : the team sum's component orthogonal to the absorbed block
        v = self.sR.copy()
        if nD:
            v[:nD] -= n[:nD, None] * (B / dD[None, :]).T[st]
        Mv = v @ M
        h = np.einsum("gr,gr->g", Mv, v)
        if nD:
            h[:nD] += n[:nD] ** 2 / dD[st]
        L1 = float(np.sum(n / onep))
        L2 = float(-np.sum(n**2 / onep**2))
        D1 = float(a1 @ h)
        # tr(A^-1 A1 A^-1 A1) = sum_jk a1_j a1_k (s_j'A^-1 s_k)^2 split into the absorbed and dense parts
        Va = (v * a1[:, None]).T @ v
        tr2 = float(np.sum((M @ Va) * (M @ Va).T))
        if nD:
            g = self._reduce(a1 * n * n)
            w = self._reduce((a1 * n)[:, None].T * v.T)  # (r, L)
            tr2 += float(np.sum(g * g / dD**2)) + 2.0 * float(np.einsum("rl,rs,sl->l", w, M, w) @ (1.0 / dD))
        D2 = float(a2 @ h) - tr2
        Q1 = float(a1 @ (r * r))
        uD = self._reduce(a1 * r * n)
        uR = (a1 * r) @ self.sR
        ut = uR - (B / dD[None, :]) @ uD if nD else uR
        uAu = float(np.sum(uD * uD / dD) + ut @ M @ ut) if nD else float(ut @ M @ ut)
        Q2 = float(a2 @ (r * r)) - 2.0 * uAu
        N, p = self.N, self.p
        logdetA = float(d["logdetA"][0])
        f = float(np.log(onep).sum() + logdetA + (N - p) * np.log(Q) + self._const())
        out = dict(theta=theta, f=f, Q=float(Q), bR=bR, bD=bD, M=M, r=r, L1=L1, L2=L2, D1=D1, D2=D2,
                   Q1=Q1, Q2=Q2, dD=dD, B=B, cD=d["cD"][0])
        out["f1"] = L1 + D1 + (N - p) * Q1 / Q
        out["f2"] = L2 + D2 + (N - p) * (Q2 / Q - (Q1 / Q) ** 2)
        if coef is not None:
            out["dvar"] = float(a1 @ (Mv[:, coef] ** 2))  # [A^-1 A1 A^-1]_kk
        return out


# ---------------------------------------------------------------------------
# REML fit of the analysis model
# ---------------------------------------------------------------------------


def _optimise(m: _Model) -> tuple[float, bool, str]:
    """Minimise the profiled REML criterion over theta >= 0 (grid, root of f', boundary rule of lme4)."""
    grid = np.concatenate(([0.0], 10.0**_GRID_LOG10))
    fv = m.crit_many(grid)
    if not np.any(np.isfinite(fv)):
        return 0.0, False, "REML criterion is not finite anywhere on the theta grid"
    i = int(np.nanargmin(np.where(np.isfinite(fv), fv, np.nan)))
    if i == grid.size - 1:
        return float(grid[-1]), False, "theta reached the upper search limit: within-team variance is essentially zero"
    if i == 0:
        d0 = m.details(0.0)
        if d0["f1"] >= 0.0:
            return 0.0, True, "converged at the boundary: team variance = 0"
        lo, hi = 0.0, float(grid[1])
    else:
        lo, hi = float(grid[i - 1]), float(grid[i + 1])
    # safeguarded Newton on f'(theta) = 0 inside the bracket (analytic f', f''), from the best grid point
    th = float(grid[i]) if i > 0 else 0.5 * hi
    for _ in range(100):
        d = m.details(th)
        g, h = d["f1"], d["f2"]
        if g < 0:
            lo = th
        else:
            hi = th
        new = th - g / h if h > 0 else np.nan
        if not (lo < new < hi):
            new = math.sqrt(lo * hi) if lo > 0 else 0.5 * (lo + hi)
        if abs(new - th) <= 1e-13 * th or hi - lo <= 1e-15 * hi:
            th = new
            break
        th = new
    d = m.details(th)
    if lo == 0.0:
        d0 = m.details(0.0)
        if d0["f1"] >= 0.0 or m.crit_many(0.0)[0] <= d["f"]:
            ok0 = d0["f1"] >= -1e-6
            return 0.0, ok0, ("" if ok0 else "NOT converged: ") + "optimum at the boundary: team variance = 0"
    grad = d["f1"] * th
    ok = abs(grad) < 1e-6 and d["f2"] > 0 and d["f"] <= np.nanmin(fv) + 1e-8
    msg = f"converged: interior optimum theta = {th:.6g}"
    return th, bool(ok), msg if ok else "NOT converged: " + msg


def _satterthwaite(m: _Model, d: dict, sigma2: float, k: int) -> float:
    """Satterthwaite df of coefficient ``k`` of ``b_R``, parameterised as lmerTest (as mixed.py)."""
    N, p = m.N, m.p
    theta = d["theta"]
    tau, sigma = np.sqrt(theta), np.sqrt(sigma2)
    Q = d["Q"]
    g_th = d["L1"] + d["D1"] + d["Q1"] / sigma2
    g_thth = d["L2"] + d["D2"] + d["Q2"] / sigma2
    h_tt = 2.0 * g_th + 4.0 * theta * g_thth
    h_ts = -4.0 * tau * d["Q1"] / sigma**3
    h_ss = -2.0 * (N - p) / sigma2 + 6.0 * Q / sigma2**2
    H = np.array([[h_tt, h_ts], [h_ts, h_ss]])
    D = np.array([1.0, sigma])
    evals, evecs = np.linalg.eigh(H * np.outer(D, D))
    pos = evals > _EIG_TOL
    vcov_vp = 2.0 * ((evecs[:, pos] / evals[pos]) @ evecs[:, pos].T) * np.outer(D, D)
    var = sigma2 * d["M"][k, k]
    J = np.array([-2.0 * tau * sigma2 * d["dvar"], 2.0 * sigma * d["M"][k, k]])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(2.0 * var**2 / (J @ vcov_vp @ J))


def _coef_index(lay: _Layout, q: int, coef: int) -> int:
    if coef in lay.dcols:
        raise ValueError("the coefficient of interest cannot be an absorbed indicator column")
    return lay.rcols.index(coef) if coef < lay.p else len(lay.rcols) + (coef - lay.p)


def _fit(m: _Model, k: int) -> dict:
    theta, converged, message = _optimise(m)
    d = m.details(theta, coef=k)
    s2w = d["Q"] / (m.N - m.p)
    var = s2w * d["M"][k, k]
    return dict(estimate=float(d["bR"][k] + m.b0R[k]), var=float(var), se=float(np.sqrt(var)),
                df=_satterthwaite(m, d, s2w, k), theta=float(theta), team_variance=float(theta * s2w),
                residual_variance=float(s2w), reml_criterion=float(d["f"]), converged=converged, message=message)


def fit_team_model(y, F, Z, codes, coef: int = 1, n_groups: int | None = None) -> dict:
    """REML fit of ``y = [F, Z] b + u_team + e`` for one coefficient, from per-team sums.

    The same model, criterion and Satterthwaite df as
    :func:`isafe_helpers.mixed.fit_random_intercept` with design
    ``np.column_stack([F, Z])``, but ``F``'s columns must be constant within
    team, and 0/1 columns of ``F`` with disjoint supports (LA dummies) are
    absorbed (module docstring), so the cost does not grow with their number.

    ``coef``: column index into ``[F, Z]`` of the coefficient reported (the arm
    column of ``F`` by default). Returns ``estimate, var, se, df, theta,
    team_variance, residual_variance, reml_criterion, converged, message``.
    """
    y = np.asarray(y, float).reshape(-1)
    codes = np.asarray(codes)
    Z = np.asarray(Z, float).reshape(y.size, -1)
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(Z))):
        raise ValueError("y and Z must be finite (drop missing values first)")
    G = int(codes.max()) + 1 if n_groups is None else int(n_groups)
    lay = _Layout(F, codes, G, keep=(coef,))
    m = _Model(lay, codes, np.ones(y.size, bool), Z.shape[1])
    m.set_data(y, Z, check_rank=True)
    return _fit(m, _coef_index(lay, Z.shape[1], coef))


# ---------------------------------------------------------------------------
# the imputer
# ---------------------------------------------------------------------------


def _sample_grid(x: np.ndarray, logd: np.ndarray, u: float) -> float:
    """Inverse-CDF draw from the density that is linear between grid points ``x`` (values ``exp(logd)``)."""
    d = np.exp(logd - np.max(logd))
    h = np.diff(x)
    mass = 0.5 * (d[:-1] + d[1:]) * h
    cdf = np.concatenate(([0.0], np.cumsum(mass)))
    target = u * cdf[-1]
    i = int(np.clip(np.searchsorted(cdf, target, side="right") - 1, 0, h.size - 1))
    rem = target - cdf[i]
    d0, d1, hi = d[i], d[i + 1], h[i]
    slope = (d1 - d0) / hi
    if abs(slope) * hi < 1e-10 * max(d0, d1):
        s = rem / d0 if d0 > 0 else 0.0
    else:  # d0 s + slope s^2 / 2 = rem
        s = (-d0 + math.sqrt(max(d0 * d0 + 2.0 * slope * rem, 0.0))) / slope
    return float(x[i] + min(max(s, 0.0), hi))


class TwoLevelImputer:
    """Posterior-predictive draws for one incomplete variable from a random-intercept normal model.

    ``y = [F, z] b + u_team + e`` fitted to the rows where ``y`` is observed
    (``miss`` False), with ``z`` the other wave's current score; every draw
    draws ``theta``, ``s2_W``, ``b`` and the team effects from their joint
    posterior (module docstring, steps 1-5), then the missing values.

    ``F`` (N, p): team-level fixed columns; ``codes`` (N,): team codes
    0..G-1; ``miss`` (N,) bool; ``prior_scale``: scale of the half-Cauchy
    prior on ``tau = sqrt(theta)`` (``np.inf``: flat prior on ``tau``).
    ``keep``: columns of ``F`` not to absorb (no effect on the draws).
    """

    def __init__(self, F, codes, miss, n_groups: int | None = None, prior_scale: float = PRIOR_SCALE,
                 keep=(), layout: _Layout | None = None):
        codes = np.asarray(codes)
        self.codes, self.miss = codes, np.asarray(miss, bool)
        G = int(codes.max()) + 1 if n_groups is None else int(n_groups)
        self.lay = layout if layout is not None else _Layout(F, codes, G, keep=keep)
        self.model = _Model(self.lay, codes, ~self.miss, 1)
        self.mrows = np.flatnonzero(self.miss)
        self.prior_scale = float(prior_scale)
        self._region: tuple[float, float] | None = None
        self.last: dict = {}

    def log_prior(self, tau: np.ndarray) -> np.ndarray:
        if not np.isfinite(self.prior_scale):
            return np.zeros_like(tau)
        return -np.log1p((tau / self.prior_scale) ** 2)

    def log_posterior_tau(self, tau: np.ndarray) -> np.ndarray:
        """Log marginal posterior density of ``tau`` (up to a constant) at the current data."""
        return -0.5 * self.model.crit_many(tau * tau) + self.log_prior(tau)

    def _coarse_region(self) -> tuple[float, float]:
        lp = self.log_posterior_tau(_TAU_COARSE)
        ok = np.isfinite(lp)
        if not ok.any():
            raise ValueError("posterior of the team variance is not finite anywhere on the grid")
        keep = np.flatnonzero(ok & (lp > np.max(lp[ok]) - _LOG_CUT))
        return (float(_TAU_COARSE[max(keep[0] - 1, 0)]), float(_TAU_COARSE[min(keep[-1] + 1, _TAU_COARSE.size - 1)]))

    def draw_tau(self, rng) -> float:
        """One draw of ``tau`` from its marginal posterior by the grid method.

        The grid is uniform over a region outside which the log density is more
        than ``_LOG_CUT`` below its maximum, and fine enough to hold at least
        ``_TAU_BULK`` points within 3 log units of the maximum. The region is
        found on a coarse log grid, then kept for the next draw of the same
        imputer (the posterior moves little between cycles) and re-found or
        narrowed whenever it no longer meets those two conditions.
        """
        region = self._region or self._coarse_region()
        refound = self._region is None
        for _ in range(12):
            lo, hi = region
            x = np.linspace(lo, hi, _TAU_FINE)
            lpf = self.log_posterior_tau(x)
            lpf = np.where(np.isfinite(lpf), lpf, -np.inf)
            top = np.max(lpf)
            keep = np.flatnonzero(lpf > top - _LOG_CUT)
            open_lo = keep[0] == 0 and lo > 0
            open_hi = keep[-1] == x.size - 1 and hi < _TAU_COARSE[-1]
            if open_lo or open_hi:  # mass beyond the region
                if refound:
                    region = (lo / 4 if open_lo else lo, min(4 * hi, _TAU_COARSE[-1]) if open_hi else hi)
                else:
                    region, refound = self._coarse_region(), True
                continue
            if np.sum(lpf > top - 3.0) >= _TAU_BULK:
                break
            region = (float(x[max(keep[0] - 1, 0)]), float(x[min(keep[-1] + 1, x.size - 1)]))  # zoom in
        self._region = region
        return _sample_grid(x, lpf, rng.random())

    def draw(self, y: np.ndarray, z: np.ndarray, rng) -> np.ndarray:
        """A copy of ``y`` with its missing entries drawn; parameters drawn kept in ``self.last``."""
        m = self.model
        obs = m.rows
        # shift y and z to mean 0 when the constant is in the span of F (exactly equivariant:
        # only the intercept moves), so no sufficient statistic carries a large mean
        yo, zo = y[obs], z[obs]
        my, mz = (float(yo.mean()), float(zo.mean())) if self.lay.has_const else (0.0, 0.0)
        m.set_data(yo - my, zo - mz, centre=not self.lay.has_const)
        tau = self.draw_tau(rng)
        theta = tau * tau
        d = m.solve(np.array([theta]))
        dD, B, S = d["dD"][0], d["B"][0], d["S"][0]  # B: (L, r)
        bR_hat = d["bR"][0]
        nu = m.N - m.p
        # Q by the residual route at the GLS solution (no cancellation)
        bD_hat = d["bD"][0]
        r = m.t - m.sR @ bR_hat
        r[: m.nD] -= m.n[: m.nD] * bD_hat[m.strat[: m.nD]]
        Q = m.Wyy - 2.0 * bR_hat @ m.WRy + bR_hat @ m.WRR @ bR_hat + (r * r) @ (1.0 / (m.n * (1.0 + theta * m.n)))
        s2w = Q / rng.chisquare(nu)
        # b_R ~ N(bhat_R, s2w S^-1); b_D | b_R ~ N((c_D - B'b_R) / dD, s2w / dD)
        Ls = np.linalg.cholesky(S)
        bR = bR_hat + np.sqrt(s2w) * np.linalg.solve(Ls.T, rng.standard_normal(m.r))
        bD = (d["cD"][0] - B @ bR) / dD + np.sqrt(s2w / dD) * rng.standard_normal(self.lay.L)
        # team effects given b (residual sums over observed rows)
        r = m.t - m.sR @ bR
        r[: m.nD] -= m.n[: m.nD] * bD[m.strat[: m.nD]]
        u = np.sqrt(theta * s2w) * rng.standard_normal(self.lay.G)  # teams without observed rows
        den = 1.0 + theta * m.n
        u[m.teams] = theta * r / den + np.sqrt(s2w * theta / den) * rng.standard_normal(m.Gm)
        out = y.copy()
        mr = self.mrows
        cm = self.codes[mr]
        fit = m.fitted_rows(bD + m.b0D, bR + m.b0R, rows=mr, codes=cm, Z=z[mr] - mz) + my
        out[mr] = fit + u[cm] + np.sqrt(s2w) * rng.standard_normal(mr.size)
        self.last = dict(theta=theta, tau=tau, residual_variance=s2w, team_variance=theta * s2w)
        return out


# ---------------------------------------------------------------------------
# the whole multiple imputation
# ---------------------------------------------------------------------------


def mi_arm_effect(y_followup, y_baseline, F, codes, arm_col: int = 1, n_imputations: int = 20,
                  n_cycles: int = 5, rng=None, prior_scale: float = PRIOR_SCALE, n_groups: int | None = None) -> dict:
    """Arm effect with missing follow-up and baseline scores multiply imputed (module docstring).

    Parameters
    ----------
    y_followup, y_baseline : (N,) scores, NaN where missing.
    F : (N, p) team-level fixed columns: intercept, arm, LA dummies (as
        ``impact_robust.design(df, covariates=())``).
    codes : (N,) team codes 0..G-1.
    arm_col : column of ``F`` holding the arm (0/1).
    n_imputations, n_cycles : imputations and chained-equation cycles (one cycle
        when only one wave has missing values).
    rng : ``numpy.random.Generator`` or seed (``None``: fresh entropy).
    prior_scale : scale of the half-Cauchy prior on ``tau = s_B / s_W``.

    Each imputation starts from random draws of the observed values, then
    alternates follow-up given baseline and baseline given follow-up. The
    analysis model (follow-up on ``F`` and baseline, random team intercept,
    REML) is fitted to every completed data set and the arm effects pooled by
    :func:`rubin` with the complete-data df the mean Satterthwaite df.

    Returns a dict: ``estimate, se, df, ci_low, ci_high, p_value, fmi`` (pooled),
    ``n_imputations, n_missing_followup, n_missing_baseline, df_complete``,
    per imputation ``estimates, variances, dfs, theta_analysis`` (REML theta of
    the completed-data fit), and the drawn ``theta_followup`` /
    ``theta_baseline`` (imputations x cycles; empty when that wave is complete).
    Raises ``ValueError`` when a model is not estimable.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    yf0 = np.asarray(y_followup, float).reshape(-1)
    yb0 = np.asarray(y_baseline, float).reshape(-1)
    codes = np.asarray(codes)
    F = np.asarray(F, float)
    N = yf0.size
    if yb0.size != N or codes.size != N or F.shape[0] != N:
        raise ValueError("y_followup, y_baseline, F and codes need one row per participant")
    G = int(codes.max()) + 1 if n_groups is None else int(n_groups)
    lay = _Layout(F, codes, G, keep=(arm_col,))
    k = _coef_index(lay, 1, arm_col)
    miss_f, miss_b = np.isnan(yf0), np.isnan(yb0)
    if (~miss_f).sum() < 2 or (~miss_b).sum() < 2:
        raise ValueError("too few observed scores to impute")
    imputers = {}
    for key, miss in (("followup", miss_f), ("baseline", miss_b)):
        if miss.any():
            imputers[key] = TwoLevelImputer(F, codes, miss, G, prior_scale=prior_scale, layout=lay)
    cycles = n_cycles if len(imputers) == 2 else 1
    analysis = _Model(lay, codes, np.ones(N, bool), 1)
    draws = {key: np.full((n_imputations, cycles if key in imputers else 0), np.nan)
             for key in ("followup", "baseline")}
    fits = []
    first = True
    for i in range(n_imputations):
        yf, yb = yf0.copy(), yb0.copy()
        yf[miss_f] = rng.choice(yf0[~miss_f], miss_f.sum())
        yb[miss_b] = rng.choice(yb0[~miss_b], miss_b.sum())
        for c in range(cycles):
            if "followup" in imputers:
                yf = imputers["followup"].draw(yf, yb, rng)
                draws["followup"][i, c] = imputers["followup"].last["theta"]
            if "baseline" in imputers:
                yb = imputers["baseline"].draw(yb, yf, rng)
                draws["baseline"][i, c] = imputers["baseline"].last["theta"]
        analysis.set_data(yf, yb, check_rank=first)
        first = False
        fits.append(_fit(analysis, k))
    est = np.array([f["estimate"] for f in fits])
    var = np.array([f["var"] for f in fits])
    dfs = np.array([f["df"] for f in fits])
    df_com = float(np.mean(dfs))
    out = {key: float(v) for key, v in rubin(est, var, df_com).items()}
    out.update(n_imputations=int(n_imputations), n_missing_followup=int(miss_f.sum()),
               n_missing_baseline=int(miss_b.sum()), df_complete=df_com, estimates=est, variances=var, dfs=dfs,
               theta_analysis=np.array([f["theta"] for f in fits]), theta_followup=draws["followup"],
               theta_baseline=draws["baseline"])
    return out
