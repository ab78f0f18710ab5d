"""Multiple imputation of a two-wave cluster randomised trial, on arrays.

Arrays in, results out: no trial-data frames here (the frame-level wrapper is
``multiple_imputation`` of the impact strand).

What it does
------------
:func:`mi_arm_effect` imputes missing follow-up and baseline scores by chained
equations (fully conditional specification, FCS; van Buuren 2018, *Flexible
Imputation of Missing Data*, 2nd ed., ch. 4 and 7), each wave from a
two-level normal model on the other wave's current score and the fixed
columns ``F`` (intercept, arm, LA dummies) with a random intercept for team
(:class:`TwoLevelImputer`). The analysis model (follow-up on ``F`` and
baseline, random team intercept, REML) is fitted to every completed data set
(:func:`fit_team_model`'s batch fit), its arm coefficient given the
Kenward-Roger adjusted variance and df (pbkrtest, as the primary model), and
the arm effects pooled by Rubin's rules with the Barnard-Rubin (1999) df
(:func:`rubin`) whose complete-data df ``nu_com`` are the mean KR df. The
Satterthwaite df of lmerTest are not used there: at a zero team variance they
jump to N - p, and MI would claim far more df than the primary model.

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
   REML criterion of ``fit_random_intercept``. This 1-D density is evaluated
   on a grid in ``tau`` (a coarse log grid finds where the mass is; then a
   uniform grid over that region joined with a uniform grid over its bulk)
   and sampled by inverting its piecewise-linear CDF: the grid method of
   Gelman et al. (2013, *Bayesian Data Analysis*, 3rd ed., section 5.4) for
   the hierarchical normal model. The REML *estimate* of ``theta`` may be 0;
   the posterior is never a point mass there, and drawn values are positive.
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

The prior on ``tau``: half-Cauchy with scale 0.5 (Gelman 2006, *Bayesian
Analysis* 1:515-534, recommends the half-Cauchy for group-level standard
deviations when the groups are few, with a scale a little above the
plausible values). It is unit-free (``tau`` is a ratio of standard
deviations), has its largest density at 0 (it does not push the team
variance away from 0, unlike an inverse-gamma), and with scale 0.5 its
median ICC is 0.2 and it still gives ICC > 0.5 a prior probability of 0.30:
above the team ICCs usually seen in staff and organisational-climate surveys
(mostly below 0.2), so it restrains only implausible values, which matters
only when the teams are few (single-LA analyses). It also keeps the posterior proper however few the teams (a flat
prior on ``tau`` needs more teams than team-level columns plus one;
``prior_scale=np.inf`` gives it).

Per-team sufficient statistics
------------------------------
Every column of ``F`` is constant within a team. The model's cross products
are a within-team part (only the row-level columns ``z`` and ``y`` have one)
plus team sums weighted by ``a_j = 1 / (n_j (1 + theta n_j))``, as in
``fit_random_intercept``. In addition the columns of ``F`` that are 0/1
indicators with disjoint supports (the LA dummies) are *absorbed*: their
block of ``X'V0^-1X`` is diagonal, so ``log|X'V0^-1X|``, the GLS solution and
the derivatives the Satterthwaite df need follow from a Schur complement onto
the few remaining columns (intercept, arm, ``z``) in ``O(G r^2)`` per value of
``theta`` (``G`` teams, ``r`` remaining columns) instead of ``O(p^3)`` with
``p`` ~ 150 at national scale; team weights depend on a team only through its
size, so the per-LA sums are pooled by team size. The REML fit is the exact
criterion of ``fit_random_intercept`` (same parameters, same optimum, same
Satterthwaite df; tested to agree: estimate and SE to 1e-8, df to 1e-6).

The imputations are independent chains, run side by side: every array
carries a leading imputation axis, so one chained-equation step is one set
of array operations for all imputations. At national scale (150 LAs, 1,500
teams, 15,040 staff) the five scales take about 2.5 s together, against
about 25 s for the previous implementation on the same machine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, sparse, stats

from isafe_helpers.stats.kenward_roger import TeamSums, kenward_roger_from_sums

__all__ = ["TwoLevelImputer", "fit_team_model", "mi_arm_effect", "rubin", "PRIOR_SCALE"]

#: Scale of the half-Cauchy prior on tau = s_B / s_W (module docstring).
PRIOR_SCALE = 0.5
# Grid over log10(theta) bracketing the REML optimum (theta = 0 is added), as mixed.py.
_GRID_LOG10 = np.linspace(-8.0, 8.0, 33)
# Posterior grid for tau: coarse log grid (plus 0); two fine uniform grids (region, bulk) of _TAU_FINE points;
# points required in the bulk; log-density cut-offs that build and that keep a region.
_TAU_COARSE = np.concatenate(([0.0], np.geomspace(1e-4, 1e3, 36)))
_TAU_FINE = 25
_TAU_BULK = 12
_LOG_CUT = 15.0
_LOG_OPEN = 12.0
# Pool teams by size when (number of sizes) x (number of strata) <= this x (number of teams).
_POOL_RATIO = 8
_EIG_TOL = 1e-8  # lmerTest's tolerance for "positive" Hessian eigenvalues


# ---------------------------------------------------------------------------
# Rubin's rules
# ---------------------------------------------------------------------------


def rubin(estimates, variances, df_complete: float, df_max: float | None = None) -> dict:
    """Pool estimates by Rubin's rules with Barnard-Rubin (1999) degrees of freedom.

    ``T = W + (1 + 1/m) B``; ``lambda = (1 + 1/m) B / T``;
    ``nu_old = (m - 1) / lambda^2``; ``nu_obs = (nu_com + 1)/(nu_com + 3) nu_com (1 - lambda)``;
    ``nu = 1 / (1/nu_old + 1/nu_obs)`` (always below ``nu_com``). ``df_max``, when
    given, caps ``nu`` (the impact strand passes the complete-case model's
    Kenward-Roger df, so MI never claims more df than the primary model).

    >>> r = rubin([1.0, 1.2], [0.04, 0.04], 30.0)
    >>> round(float(r["estimate"]), 6), round(r["se"] ** 2, 6)
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
    if df_max is not None and np.isfinite(df_max):
        nu = min(nu, float(df_max))
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


# ---------------------------------------------------------------------------
# team-level layout of the fixed columns
# ---------------------------------------------------------------------------


def _codes(groups) -> tuple[np.ndarray, int]:
    """Team codes 0..G-1 (in sorted label order) and G from any team labels."""
    uniq, codes = np.unique(np.asarray(groups), return_inverse=True)
    return codes.reshape(-1), uniq.size


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
        cand = [
            k
            for k in range(self.p)
            if k not in set(keep) and np.isin(Ft[:, k], (0.0, 1.0)).all() and 0 < Ft[:, k].sum() < G
        ]
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

    Holds a *batch* of ``M`` data sets on the same rows (the imputations):
    every data array has a leading axis ``M``. Coefficients are kept as
    ``b_D`` (absorbed indicator columns) and ``b_R`` (dense columns of ``F``
    followed by the columns of ``Z``).
    """

    def __init__(self, lay: _Layout, codes: np.ndarray, rows: np.ndarray, q: int):
        self.lay, self.q = lay, q
        rows = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
        cnt = np.bincount(codes[rows], minlength=lay.G)
        teams = np.flatnonzero(cnt > 0)
        strat = lay.stratum[teams]
        order = np.argsort(np.where(strat >= 0, strat, lay.L), kind="stable")
        self.teams = teams[order]  # model teams: those with rows, grouped by stratum, unstratified last
        self.Gm = Gm = self.teams.size
        self.strat = strat[order]
        self.nD = nD = int(np.sum(self.strat >= 0))
        if lay.L and np.unique(self.strat[:nD]).size < lay.L:
            missing = sorted(set(range(lay.L)) - set(self.strat[:nD].tolist()))
            raise ValueError(
                "fixed-effect design matrix is rank deficient: indicator column(s) "
                f"{[lay.dcols[i] for i in missing]} have no analysed row"
            )
        self.starts = np.searchsorted(self.strat[:nD], np.arange(lay.L))  # strata as runs of model teams
        self.n = cnt[self.teams].astype(float)
        pos = np.full(lay.G, -1)
        pos[self.teams] = np.arange(Gm)
        rc = pos[codes[rows]]
        o = np.argsort(rc, kind="stable")  # analysed rows sorted by model team: team sums are runs
        self.rows, self.rc = rows[o], rc[o]
        self.row_starts = np.concatenate(([0], np.cumsum(cnt[self.teams])[:-1]))
        self.N = rows.size
        self.r = len(lay.rcols) + q
        self.p = lay.L + self.r
        self.sF = self.n[:, None] * lay.FtR[self.teams]  # team sums of the dense F columns
        if self.N - self.p < 1:
            raise ValueError("need more observations than fixed-effect columns")
        if Gm < 2:
            raise ValueError("need at least two groups")
        if Gm >= self.N:
            raise ValueError("every group has a single observation: the team variance is not identifiable")
        # team weights depend on the team only through its size: pool by size (K sizes) where that pays
        sizes, ks = np.unique(self.n, return_inverse=True)
        K = sizes.size
        self.nk, self.Gk = sizes, np.bincount(ks, minlength=K).astype(float)
        self.Pk = sparse.csr_matrix((np.ones(Gm), (ks, np.arange(Gm))), shape=(K, Gm))
        self.pooled = K * lay.L <= _POOL_RATIO * Gm
        if self.pooled and lay.L:
            self.Pkl = sparse.csr_matrix(
                (np.ones(nD), (ks[:nD] * lay.L + self.strat[:nD], np.arange(nD))), shape=(K * lay.L, nD)
            )

    # -- helpers ---------------------------------------------------------------
    def _tsum(self, A: np.ndarray) -> np.ndarray:
        """Team sums over the analysed rows (axis 1, rows in model order)."""
        return np.add.reduceat(A, self.row_starts, axis=1)

    def _ssum(self, A: np.ndarray) -> np.ndarray:
        """Sums over the teams of each stratum (axis 1 holds the model teams)."""
        return np.add.reduceat(A[:, : self.nD], self.starts, axis=1)

    def _pool(self, A: np.ndarray, P) -> np.ndarray:
        """``P @ A[m]`` for every batch member ``m`` (``A``: (M, Gm or nD, k)); returns (M, rows of P, k)."""
        M, g, k = A.shape
        out = P @ A.transpose(1, 0, 2).reshape(g, M * k)
        return out.reshape(-1, M, k).transpose(1, 0, 2)

    # -- data ------------------------------------------------------------------
    def set_data(self, Y: np.ndarray, Z: np.ndarray, check_rank: bool = False, centre: bool = True) -> None:
        """Outcomes ``Y`` (M, N) and row-level columns ``Z`` (M, N, q) on the analysed rows, in model row order.

        ``centre``: work with ``y`` minus its OLS fit (exactly equivariant, as
        mixed.py: no cancellation in ``Q`` when ``y`` has a large mean); the
        imputer, which centres on the means itself, skips this.
        """
        M, N, q = Y.shape[0], self.N, self.q
        Z = Z.reshape(M, N, q)
        self.M, self._Z = M, Z
        n = self.n
        sz = self._tsum(Z)  # (M, Gm, q)
        Zc = Z - np.repeat(sz / n[None, :, None], np.diff(np.append(self.row_starts, N)), axis=1)
        self._Zc = Zc
        self.WRR = np.zeros((M, self.r, self.r))
        self.WRR[:, self.r - q :, self.r - q :] = Zc.transpose(0, 2, 1) @ Zc
        self.sR = np.concatenate([np.broadcast_to(self.sF, (M,) + self.sF.shape), sz], axis=2)  # (M, Gm, r)
        self._kRR = self._pool((self.sR[:, :, :, None] * self.sR[:, :, None, :]).reshape(M, self.Gm, -1), self.Pk)
        self.b0D, self.b0R = np.zeros((M, self.lay.L)), np.zeros((M, self.r))
        self._set_y(Y)
        if check_rank:
            self._check_rank()
        if centre:
            d = self.solve(np.zeros((M, 1)))
            self.b0D, self.b0R = d["bD"][:, 0], d["bR"][:, 0]
            self._set_y(Y - self.fitted(self.b0D, self.b0R, self.teams[self.rc], Z))

    def _set_y(self, Y: np.ndarray) -> None:
        M, r = Y.shape[0], self.r
        t = self._tsum(Y)  # (M, Gm)
        yc = Y - np.repeat(t / self.n, np.diff(np.append(self.row_starts, self.N)), axis=1)
        self.t = t
        self.WRy = np.zeros((M, r))
        self.WRy[:, r - self.q :] = (self._Zc.transpose(0, 2, 1) @ yc[:, :, None])[:, :, 0]
        self.Wyy = np.einsum("mn,mn->m", yc, yc)
        self._kRt = self._pool(self.sR * t[:, :, None], self.Pk)  # (M, K, r)
        self._ktt = self._pool((t * t)[:, :, None], self.Pk)[:, :, 0]  # (M, K)
        self._nts = np.concatenate([np.broadcast_to(self.n, t.shape)[:, :, None], t[:, :, None], self.sR], axis=2)
        if self.pooled and self.lay.L:
            K, L = self.nk.size, self.lay.L
            X = self._pool(self._nts[:, : self.nD], self.Pkl)  # (M, K * L, 2 + r)
            self._X = X.reshape(M, K, L * (2 + r))

    def _check_rank(self) -> None:
        """Raise if ``X`` is rank deficient: the Schur complement of ``X'X`` onto the dense columns is singular."""
        S = self.solve(np.zeros((self.M, 1)))["S"][:, 0]
        dg = np.sqrt(np.abs(np.diagonal(S, axis1=1, axis2=2)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ev = np.linalg.eigvalsh(S / (dg[:, :, None] * dg[:, None, :]))[:, 0] if np.all(dg > 0) else np.zeros(1)
        if not np.all(ev > 1e-10):
            raise ValueError("fixed-effect design matrix is rank deficient")

    def fitted(self, bD: np.ndarray, bR: np.ndarray, codes: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """``X b`` (M, n) on rows of teams ``codes`` with row-level columns ``Z`` (M, n, q)."""
        lay = self.lay
        nF = len(lay.rcols)
        team = bR[:, :nF] @ lay.FtR.T  # (M, G) team-level part
        if lay.L:
            team = team + np.where(
                lay.stratum >= 0, np.concatenate((bD, np.zeros((bD.shape[0], 1))), 1)[:, lay.stratum], 0.0
            )
        out = team[:, codes]
        if self.q:
            out = out + (Z.reshape(Z.shape[0], -1, self.q) @ bR[:, nF:, None])[:, :, 0]
        return out

    # -- criterion -----------------------------------------------------------
    def solve(self, thetas: np.ndarray) -> dict:
        """GLS pieces at thetas (M, T): each batch member at its own T values."""
        th = np.asarray(thetas, float)
        M, T = th.shape
        r, L, nD = self.r, self.lay.L, self.nD
        w = 2 + r
        onepK = 1.0 + th[:, :, None] * self.nk  # (M, T, K)
        anK = 1.0 / onepK  # a n for each size
        aK = anK / self.nk
        # per-stratum sums of a_j n_j * (n_j, t_j, sR_j)
        if L == 0:
            red = np.zeros((M, T, 0, w))
        elif self.pooled:
            red = (anK @ self._X).reshape(M, T, L, w)
        else:  # per batch member, one reduceat over contiguous team rows
            red = np.empty((M, T, L, w))
            for i in range(M):
                an = 1.0 / (1.0 + self.n[:nD, None] * th[i][None, :])  # (nD, T)
                red[i] = np.add.reduceat(an[:, None, :] * self._nts[i, :nD, :, None], self.starts, axis=0).transpose(
                    2, 0, 1
                )
        dD, cD, B = red[..., 0], red[..., 1], red[..., 2:]  # B: (M, T, L, r)
        C = self.WRR[:, None] + (aK @ self._kRR).reshape(M, T, r, r)
        cR = self.WRy[:, None] + aK @ self._kRt
        e = self.Wyy[:, None] + (aK @ self._ktt[:, :, None])[..., 0]
        BsT = np.swapaxes(B / dD[..., None], -1, -2)  # (M, T, r, L)
        S = C - BsT @ B
        ct = cR - (BsT @ cD[..., None])[..., 0]
        et = e - np.sum(cD * cD / dD, axis=-1)
        try:
            Lc = np.linalg.cholesky(S)
            logdetS = 2.0 * np.log(np.diagonal(Lc, axis1=-2, axis2=-1)).sum(axis=-1)
            bR = np.linalg.solve(S, ct[..., None])[..., 0]
        except np.linalg.LinAlgError:  # not positive definite somewhere: those thetas get criterion inf
            sign, logdetS = np.linalg.slogdet(S)
            logdetS = np.where(sign > 0, logdetS, np.nan)
            bR = (np.linalg.pinv(S) @ ct[..., None])[..., 0]
        Q = et - np.sum(ct * bR, axis=-1)
        bD = (cD - (B @ bR[..., None])[..., 0]) / dD
        logdetA = np.log(dD).sum(axis=-1) + logdetS
        return dict(dD=dD, B=B, cD=cD, S=S, bR=bR, bD=bD, Q=Q, logdetA=logdetA, logdetV=np.log(onepK) @ self.Gk)

    def _const(self) -> float:
        r = self.N - self.p
        return r * (1.0 + np.log(2.0 * np.pi / r))

    def crit_many(self, thetas: np.ndarray) -> np.ndarray:
        """Profiled REML criterion (-2 REML log-likelihood, lme4's REMLcrit) at thetas (M, T)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            d = self.solve(thetas)
            f = d["logdetV"] + d["logdetA"] + (self.N - self.p) * np.log(d["Q"]) + self._const()
        return np.where((d["Q"] > 0) & np.isfinite(f), f, np.inf)

    def details(self, theta: np.ndarray, coef: int | None = None) -> dict:
        """Criterion, GLS estimates and analytic theta-derivatives at one theta per batch member (M,).

        ``coef``: index into ``b_R`` of a coefficient whose variance derivative
        (for the Satterthwaite df) is wanted.
        """
        theta = np.asarray(theta, float)
        d = self.solve(theta[:, None])
        dD, B, S, bR, bD = (d[k][:, 0] for k in ("dD", "B", "S", "bR", "bD"))  # B: (M, L, r)
        n, nD, st = self.n, self.nD, self.strat[: self.nD]
        onep = 1.0 + theta[:, None] * n  # (M, Gm)
        a = 1.0 / (n * onep)
        a1 = -1.0 / onep**2
        a2 = 2.0 * n / onep**3
        Minv = np.linalg.inv(S)
        Minv = 0.5 * (Minv + np.swapaxes(Minv, 1, 2))
        # team residual sums r_j = t_j - s_j'b
        res = self.t - (self.sR @ bR[:, :, None])[:, :, 0]
        res[:, :nD] -= n[:nD] * bD[:, st]
        Q = (
            self.Wyy
            - 2.0 * np.sum(bR * self.WRy, 1)
            + np.einsum("mr,mrs,ms->m", bR, self.WRR, bR)
            + np.sum(a * res * res, 1)
        )
        # v_j = sR_j - n_j B_l / dD_l: the team sum's component orthogonal to the absorbed block
        Bd = B / dD[:, :, None]
        v = self.sR.copy()
        v[:, :nD] -= n[:nD, None] * Bd[:, st]
        Mv = v @ Minv
        h = np.sum(Mv * v, axis=2)
        h[:, :nD] += n[:nD] ** 2 / dD[:, st]
        L1 = np.sum(n / onep, 1)
        L2 = -np.sum(n**2 / onep**2, 1)
        D1 = np.sum(a1 * h, 1)
        # tr(A^-1 A1 A^-1 A1) = sum_jk a1_j a1_k (s_j'A^-1 s_k)^2, split into the absorbed and dense parts
        MVa = Minv @ (np.swapaxes(v * a1[:, :, None], 1, 2) @ v)
        tr2 = np.sum(MVa * np.swapaxes(MVa, 1, 2), axis=(1, 2))
        if nD:
            g = self._ssum(a1 * n * n)
            w = self._ssum((a1 * n)[:, :, None] * v)  # (M, L, r)
            tr2 = tr2 + np.sum(g * g / dD**2, 1) + 2.0 * np.sum(np.einsum("mlr,mrs,mls->ml", w, Minv, w) / dD, 1)
        D2 = np.sum(a2 * h, 1) - tr2
        Q1 = np.sum(a1 * res * res, 1)
        ar = a1 * res
        ut = np.einsum("mg,mgr->mr", ar, self.sR)
        uAu = 0.0
        if nD:
            uD = self._ssum(ar * n)
            ut = ut - np.einsum("mlr,ml->mr", Bd, uD)
            uAu = np.sum(uD * uD / dD, 1)
        uAu = uAu + np.einsum("mr,mrs,ms->m", ut, Minv, ut)
        Q2 = np.sum(a2 * res * res, 1) - 2.0 * uAu
        N, p = self.N, self.p
        f = np.log(onep).sum(1) + d["logdetA"][:, 0] + (N - p) * np.log(Q) + self._const()
        out = dict(theta=theta, f=f, Q=Q, bR=bR, bD=bD, M=Minv, L1=L1, L2=L2, D1=D1, D2=D2, Q1=Q1, Q2=Q2)
        out["f1"] = L1 + D1 + (N - p) * Q1 / Q
        out["f2"] = L2 + D2 + (N - p) * (Q2 / Q - (Q1 / Q) ** 2)
        if coef is not None:
            out["dvar"] = np.sum(a1 * Mv[:, :, coef] ** 2, 1)  # [A^-1 A1 A^-1]_kk
        return out


# ---------------------------------------------------------------------------
# REML fit of the analysis model
# ---------------------------------------------------------------------------


def _optimise(m: _Model) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Minimise the profiled REML criterion over theta >= 0 for every batch member.

    As the mixed-model module (``fit_random_intercept``): a grid over log theta (plus 0) brackets the
    optimum; ``theta = 0`` when the criterion's one-sided derivative there is
    non-negative or 0 is at least as good (lme4's rule); otherwise a
    safeguarded Newton iteration on ``f'(theta) = 0`` (analytic derivatives)
    inside the bracket.
    """
    M = m.M
    grid = np.concatenate(([0.0], 10.0**_GRID_LOG10))
    fv = m.crit_many(np.broadcast_to(grid, (M, grid.size)))
    i = np.argmin(fv, axis=1)
    bad = ~np.isfinite(fv[np.arange(M), i])
    top = i == grid.size - 1
    lo = np.where(i > 0, grid[np.maximum(i - 1, 0)], 0.0)
    hi = grid[np.minimum(i + 1, grid.size - 1)]
    d0 = m.details(np.zeros(M))
    at0 = (i == 0) & (d0["f1"] >= 0.0)
    th = np.where(i > 0, grid[i], 0.5 * hi)
    active = ~(bad | top | at0)
    for _ in range(100):
        if not active.any():
            break
        d = m.details(np.where(active, th, 1.0))
        g, h = d["f1"], d["f2"]
        lo = np.where(active & (g < 0), th, lo)
        hi = np.where(active & (g >= 0), th, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = th - g / h
        bis = np.where(lo > 0, np.sqrt(lo * hi), 0.5 * (lo + hi))
        new = np.where((h > 0) & (lo < new) & (new < hi), new, bis)
        done = (np.abs(new - th) <= 1e-13 * th) | (hi - lo <= 1e-15 * hi)
        th = np.where(active, new, th)
        active &= ~done
    th = np.where(at0 | bad, 0.0, np.where(top, grid[-1], th))
    d = m.details(th)
    # boundary: take theta = 0 when it is at least as good (lme4 does the same)
    zero = (i <= 1) & ~at0 & ~bad & ((d0["f1"] >= 0.0) | (fv[:, 0] <= d["f"]))
    th = np.where(zero, 0.0, th)
    msgs = []
    for k in range(M):
        if bad[k]:
            msgs.append("NOT converged: REML criterion is not finite anywhere on the theta grid")
        elif top[k]:
            msgs.append("NOT converged: theta reached the upper search limit: within-team variance is essentially 0")
        elif at0[k] or zero[k]:
            ok = d0["f1"][k] >= -1e-6
            msgs.append(("" if ok else "NOT converged: ") + "optimum at the boundary: team variance = 0")
        else:
            ok = abs(d["f1"][k] * th[k]) < 1e-6 and d["f2"][k] > 0 and d["f"][k] <= fv[k].min() + 1e-8
            msgs.append(("" if ok else "NOT converged: ") + f"interior optimum theta = {th[k]:.6g}")
    return th, np.array([not s.startswith("NOT") for s in msgs]), msgs


def _satterthwaite(m: _Model, d: dict, sigma2: float, k: int, j: int) -> float:
    """Satterthwaite df of coefficient ``k`` of ``b_R`` for batch member ``j``, as lmerTest (as mixed.py)."""
    N, p = m.N, m.p
    theta = d["theta"][j]
    tau, sigma = np.sqrt(theta), np.sqrt(sigma2)
    Q = d["Q"][j]
    g_th = d["L1"][j] + d["D1"][j] + d["Q1"][j] / sigma2
    g_thth = d["L2"][j] + d["D2"][j] + d["Q2"][j] / sigma2
    h_tt = 2.0 * g_th + 4.0 * theta * g_thth
    h_ts = -4.0 * tau * d["Q1"][j] / sigma**3
    h_ss = -2.0 * (N - p) / sigma2 + 6.0 * Q / sigma2**2
    H = np.array([[h_tt, h_ts], [h_ts, h_ss]])
    # lmerTest pseudo-inverts H over eigenvalues > 1e-8, here (as mixed.py) on the Hessian with respect
    # to (tau, sigma / sigma_hat), which makes the test invariant to the units of y
    D = np.array([1.0, sigma])
    evals, evecs = np.linalg.eigh(H * np.outer(D, D))
    pos = evals > _EIG_TOL
    vcov_vp = 2.0 * ((evecs[:, pos] / evals[pos]) @ evecs[:, pos].T) * np.outer(D, D)
    mkk = d["M"][j, k, k]
    var = sigma2 * mkk
    J = np.array([-2.0 * tau * sigma2 * d["dvar"][j], 2.0 * sigma * mkk])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(2.0 * var**2 / (J @ vcov_vp @ J))


def _coef_index(lay: _Layout, coef: int) -> int:
    if coef in lay.dcols:
        raise ValueError("the coefficient of interest cannot be an absorbed indicator column")
    return lay.rcols.index(coef) if coef < lay.p else len(lay.rcols) + (coef - lay.p)


def _fit(m: _Model, k: int) -> list[dict]:
    """REML fit of every batch member; coefficient ``k`` of ``b_R``."""
    theta, converged, messages = _optimise(m)
    d = m.details(theta, coef=k)
    s2w = d["Q"] / (m.N - m.p)
    out = []
    for j in range(m.M):
        var = s2w[j] * d["M"][j, k, k]
        out.append(
            dict(
                estimate=float(d["bR"][j, k] + m.b0R[j, k]),
                var=float(var),
                se=float(np.sqrt(var)),
                df=_satterthwaite(m, d, s2w[j], k, j),
                theta=float(theta[j]),
                team_variance=float(theta[j] * s2w[j]),
                residual_variance=float(s2w[j]),
                reml_criterion=float(d["f"][j]),
                converged=bool(converged[j]),
                message=messages[j],
            )
        )
    return out


def fit_team_model(y, F, Z, groups, coef: int = 1) -> dict:
    """REML fit of ``y = [F, Z] b + u_team + e`` for one coefficient, from per-team sums.

    The same model, criterion and Satterthwaite df as
    ``fit_random_intercept`` of the mixed-model module with design
    ``np.column_stack([F, Z])``, but ``F``'s columns must be constant within
    team, and 0/1 columns of ``F`` with disjoint supports (LA dummies) are
    absorbed (module docstring), so the cost does not grow with their number.

    ``groups``: team labels (any values); ``coef``: column index into
    ``[F, Z]`` of the coefficient reported (the arm column of ``F`` by default). Returns a dict: ``estimate, var, se, df,
    theta, team_variance, residual_variance, reml_criterion, converged,
    message``.
    """
    y = np.asarray(y, float).reshape(-1)
    codes, G = _codes(groups)
    Z = np.asarray(Z, float).reshape(y.size, -1)
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(Z))):
        raise ValueError("y and Z must be finite (drop missing values first)")
    lay = _Layout(F, codes, G, keep=(coef,))
    m = _Model(lay, codes, np.ones(y.size, bool), Z.shape[1])
    m.set_data(y[m.rows][None], Z[m.rows][None], check_rank=True)
    return _fit(m, _coef_index(lay, coef))[0]


# ---------------------------------------------------------------------------
# the imputer
# ---------------------------------------------------------------------------


def _sample_grid(x: np.ndarray, logd: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws, one per row, from densities linear between grid points ``x`` (values ``exp(logd)``)."""
    d = np.exp(logd - np.max(logd, axis=1, keepdims=True))
    h = np.diff(x, axis=1)
    mass = 0.5 * (d[:, :-1] + d[:, 1:]) * h
    cdf = np.concatenate((np.zeros((x.shape[0], 1)), np.cumsum(mass, axis=1)), axis=1)
    target = u * cdf[:, -1]
    i = np.clip(np.sum(cdf <= target[:, None], axis=1) - 1, 0, h.shape[1] - 1)
    rows = np.arange(x.shape[0])
    rem = target - cdf[rows, i]
    d0, d1, hi = d[rows, i], d[rows, i + 1], h[rows, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (d1 - d0) / hi
        lin = np.where(d0 > 0, rem / d0, 0.0)
        quad = (-d0 + np.sqrt(np.maximum(d0 * d0 + 2.0 * slope * rem, 0.0))) / slope  # d0 s + slope s^2/2 = rem
    s = np.where(np.abs(slope) * hi < 1e-10 * np.maximum(d0, d1), lin, quad)
    return x[rows, i] + np.clip(np.nan_to_num(s), 0.0, hi)


class TwoLevelImputer:
    """Posterior-predictive draws for one incomplete variable from a random-intercept normal model.

    ``y = [F, z] b + u_team + e`` fitted to the rows where ``y`` is observed
    (``miss`` False), with ``z`` the other wave's current score; every draw
    draws ``theta``, ``s2_W``, ``b`` and the team effects from their joint
    posterior (module docstring, steps 1-5), then the missing values.

    ``F`` (N, p): team-level fixed columns; ``groups`` (N,): team labels;
    ``miss`` (N,) bool; ``prior_scale``: scale of the half-Cauchy
    prior on ``tau = sqrt(theta)`` (``np.inf``: flat prior on ``tau``).
    ``keep``: columns of ``F`` not to absorb (no effect on the draws).
    ``draw_theta=False`` holds ``theta`` at its REML estimate on the current
    data instead of drawing it (the previous, improper scheme: no team-level
    uncertainty when the estimate is 0); for comparisons only.
    :meth:`draw` takes one data set (``y``, ``z`` of shape (N,)) or a batch
    (shape (M, N), one independent draw for each row).
    """

    def __init__(
        self,
        F,
        groups,
        miss,
        prior_scale: float = PRIOR_SCALE,
        keep=(),
        draw_theta: bool = True,
        layout: _Layout | None = None,
    ):
        codes, G = _codes(groups)
        self.codes, self.miss = codes, np.asarray(miss, bool)
        self.lay = layout if layout is not None else _Layout(F, codes, G, keep=keep)
        self.model = _Model(self.lay, codes, ~self.miss, 1)
        self.mrows = np.flatnonzero(self.miss)
        if not np.isfinite(prior_scale) and self.model.Gm - len(self.lay.rcols) - self.lay.L <= 1:
            raise ValueError("the flat prior on tau needs more teams than team-level columns plus one")
        self.prior_scale = float(prior_scale)
        self.draw_theta = bool(draw_theta)
        self._region: np.ndarray | None = None
        self._bulk: np.ndarray | None = None
        self.last: dict = {}

    def log_prior(self, tau: np.ndarray) -> np.ndarray:
        if not np.isfinite(self.prior_scale):
            return np.zeros_like(tau)
        return -np.log1p((tau / self.prior_scale) ** 2)

    def log_posterior_tau(self, tau: np.ndarray) -> np.ndarray:
        """Log marginal posterior density of ``tau`` (M, T), up to a constant, at the current data."""
        return -0.5 * self.model.crit_many(tau * tau) + self.log_prior(tau)

    @staticmethod
    def _spans(x: np.ndarray, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From sorted grids ``x`` (M, T) and log densities: the region where ``lp`` is within ``_LOG_CUT``
        of its maximum and the bulk where it is within 3, each widened by one grid point on both sides."""
        top = lp.max(axis=1, keepdims=True)
        rows = np.arange(x.shape[0])[:, None]
        out = []
        for cut in (_LOG_CUT, 3.0):
            keep = lp > top - cut
            first = np.argmax(keep, axis=1)
            last = keep.shape[1] - 1 - np.argmax(keep[:, ::-1], axis=1)
            idx = np.column_stack([np.maximum(first - 1, 0), np.minimum(last + 1, keep.shape[1] - 1)])
            out.append(x[rows, idx])
        return out[0], out[1]

    def _coarse_spans(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.broadcast_to(_TAU_COARSE, (self.model.M, _TAU_COARSE.size))
        lp = self.log_posterior_tau(x)
        if not np.isfinite(lp).any(axis=1).all():
            raise ValueError("posterior of the team variance is not finite anywhere on the grid")
        return self._spans(x, np.where(np.isfinite(lp), lp, -np.inf))

    def draw_tau(self, rng) -> np.ndarray:
        """One draw of ``tau`` per batch member from its marginal posterior, by the grid method.

        The grid is the union of two uniform grids of ``_TAU_FINE`` points: one
        over a region at whose ends the log density is more than ``_LOG_OPEN``
        below its maximum (built with ``_LOG_CUT``; the mass left out is
        negligible), one over the bulk (log density within 3 of its maximum),
        so that heavy-tailed posteriors (few teams) are resolved where the mass
        is; at least ``_TAU_BULK`` points must fall in the bulk. Region and bulk
        are found on a coarse log grid, then kept for the next draw of the same
        imputer (the posterior moves little between cycles) and re-found,
        widened or moved whenever they no longer meet those conditions.
        """
        M = self.model.M
        kept, kept_bulk = self._region, self._bulk
        fresh = kept is None or kept_bulk is None or kept.shape[0] != M
        region, bulk = (
            self._coarse_spans() if fresh or kept is None or kept_bulk is None else (kept.copy(), kept_bulk.copy())
        )
        refound = np.full(M, fresh)
        done = np.zeros(M, bool)
        u01 = np.linspace(0.0, 1.0, _TAU_FINE)
        xs, lps = np.empty((M, 2 * _TAU_FINE)), np.empty((M, 2 * _TAU_FINE))
        for _ in range(8):
            x = np.sort(
                np.concatenate(
                    [
                        region[:, :1] + (region[:, 1:] - region[:, :1]) * u01,
                        bulk[:, :1] + (bulk[:, 1:] - bulk[:, :1]) * u01,
                    ],
                    axis=1,
                ),
                axis=1,
            )
            lp = self.log_posterior_tau(x)
            lp = np.where(np.isfinite(lp), lp, -np.inf)
            top = lp.max(axis=1, keepdims=True)
            edge = lp[:, [0, -1]] > top - _LOG_OPEN  # (a margin below _LOG_CUT keeps the region for longer)
            open_lo = edge[:, 0] & (region[:, 0] > 0)
            open_hi = edge[:, 1] & (region[:, 1] < _TAU_COARSE[-1])
            enough = np.sum(lp > top - 3.0, axis=1) >= _TAU_BULK
            ok = ~done & ~open_lo & ~open_hi & enough
            xs[ok], lps[ok] = x[ok], lp[ok]
            done |= ok
            if done.all():
                break
            # mass beyond the region: re-find it on the coarse grid, or widen a region already re-found
            out = ~done & (open_lo | open_hi)
            if (out & ~refound).any():
                cr, cb = self._coarse_spans()
                sel = out & ~refound
                region[sel], bulk[sel] = cr[sel], cb[sel]
            wid = out & refound
            region[wid & open_lo, 0] /= 4.0
            region[wid & open_hi, 1] = np.minimum(4.0 * region[wid & open_hi, 1], _TAU_COARSE[-1])
            refound |= out
            # too few points in the bulk: move the bulk grid to where the bulk now is
            move = ~done & ~out
            bulk[move] = self._spans(x, lp)[1][move]
        xs[~done], lps[~done] = x[~done], lp[~done]
        self._region, self._bulk = region, self._spans(xs, lps)[1]
        return _sample_grid(xs, lps, rng.random(M))

    def draw(self, y: np.ndarray, z: np.ndarray, rng) -> np.ndarray:
        """A copy of ``y`` with its missing entries drawn; the parameters drawn are kept in ``self.last``."""
        single = np.ndim(y) == 1
        Y, Zf = np.atleast_2d(y), np.atleast_2d(z)
        M = Y.shape[0]
        m = self.model
        obs = m.rows
        # shift y and z to mean 0 when the constant is in the span of F (exactly equivariant:
        # only the intercept moves), so that no sufficient statistic carries a large mean
        yo, zo = Y[:, obs], Zf[:, obs]
        if self.lay.has_const:
            my, mz = yo.mean(axis=1, keepdims=True), zo.mean(axis=1, keepdims=True)
        else:
            my, mz = np.zeros((M, 1)), np.zeros((M, 1))
        m.set_data(yo - my, (zo - mz)[:, :, None], check_rank=not self.last, centre=not self.lay.has_const)
        if self.draw_theta:
            tau = self.draw_tau(rng)
        else:
            tau = np.sqrt(_optimise(m)[0])
        theta = tau * tau
        d = m.solve(theta[:, None])
        dD, B, S, cD = (d[k][:, 0] for k in ("dD", "B", "S", "cD"))  # B: (M, L, r)
        bR_hat, bD_hat = d["bR"][:, 0], d["bD"][:, 0]
        n, nD, st = m.n, m.nD, m.strat[: m.nD]
        den = 1.0 + theta[:, None] * n  # (M, Gm)

        def team_resid(bR, bD):
            res = m.t - (m.sR @ bR[:, :, None])[:, :, 0]
            res[:, :nD] -= n[:nD] * bD[:, st]
            return res

        # Q by the residual route at the GLS solution (no cancellation); s2_W | theta
        res = team_resid(bR_hat, bD_hat)
        Q = (
            m.Wyy
            - 2.0 * np.sum(bR_hat * m.WRy, 1)
            + np.einsum("mr,mrs,ms->m", bR_hat, m.WRR, bR_hat)
            + np.sum(res * res / (n * den), 1)
        )
        s2w = Q / rng.chisquare(m.N - m.p, M)
        # b_R ~ N(bhat_R, s2w S^-1); b_D | b_R ~ N((c_D - B b_R) / dD, s2w / dD)
        Ls = np.linalg.cholesky(S)
        z_r = np.linalg.solve(np.swapaxes(Ls, 1, 2), rng.standard_normal((M, m.r))[:, :, None])[:, :, 0]
        bR = bR_hat + np.sqrt(s2w)[:, None] * z_r
        bD = (cD - (B @ bR[:, :, None])[:, :, 0]) / dD + np.sqrt(s2w[:, None] / dD) * rng.standard_normal(dD.shape)
        # team effects given b; teams without observed rows from N(0, theta s2_W)
        res = team_resid(bR, bD)
        u = np.sqrt(theta * s2w)[:, None] * rng.standard_normal((M, self.lay.G))
        u[:, m.teams] = theta[:, None] * res / den + np.sqrt(s2w[:, None] * theta[:, None] / den) * rng.standard_normal(
            (M, m.Gm)
        )
        out = Y.copy()
        mr = self.mrows
        cm = self.codes[mr]
        fit = m.fitted(bD + m.b0D, bR + m.b0R, cm, (Zf[:, mr] - mz)[:, :, None]) + my
        out[:, mr] = fit + u[:, cm] + np.sqrt(s2w)[:, None] * rng.standard_normal((M, mr.size))
        self.last = dict(theta=theta, tau=tau, residual_variance=s2w, team_variance=theta * s2w)
        return out[0] if single else out


def _kenward_roger_fits(
    F: np.ndarray, codes: np.ndarray, G: int, Yb: np.ndarray, fits: list[dict], coef: int
) -> np.ndarray:
    """Kenward-Roger variance and df of coefficient ``coef`` of ``[F, z]`` for each completed data set.

    ``Yb`` (M, N): the completed baseline scores (the analysis model's one
    participant-level column ``z``); ``fits``: the REML fits of :func:`_fit`
    (their variance components). ``F`` is constant within team, so its
    within-team cross products vanish and its team sums are ``n_j F_j``: the
    team statistics of ``X = [F, z]`` cost ``O(N + G p)`` per data set.
    Returns (M, 2): KR-adjusted variance, KR df (pbkrtest; kenward_roger module).
    """
    n = np.bincount(codes, minlength=G).astype(float)
    first = np.zeros(G, dtype=int)
    first[codes[::-1]] = np.arange(codes.size)[::-1]
    SF = F[first] * n[:, None]
    p = F.shape[1] + 1
    out = np.empty((Yb.shape[0], 2))
    for j, f in enumerate(fits):
        z = Yb[j]
        zs = np.bincount(codes, weights=z, minlength=G)
        zc = z - (zs / n)[codes]
        W = np.zeros((p, p))
        W[-1, -1] = float(zc @ zc)
        sums = TeamSums(within=W, sums=np.column_stack([SF, zs]), sizes=n)
        res = kenward_roger_from_sums(sums, f["team_variance"], f["residual_variance"])
        out[j] = res.cov_beta_adj[coef, coef], res.df[coef]
    return out


# ---------------------------------------------------------------------------
# the whole multiple imputation
# ---------------------------------------------------------------------------


def mi_arm_effect(
    y_followup,
    y_baseline,
    F,
    groups,
    arm_col: int = 1,
    n_imputations: int = 20,
    n_cycles: int = 5,
    rng=None,
    prior_scale: float = PRIOR_SCALE,
    draw_theta: bool = True,
    df_max: float | None = None,
) -> dict:
    """Arm effect with missing follow-up and baseline scores multiply imputed (module docstring).

    Parameters
    ----------
    y_followup, y_baseline : (N,) scores, NaN where missing.
    F : (N, p) team-level fixed columns: intercept, arm, LA dummies (as the
        impact strand's ``design(df, covariates=())`` builds them).
    groups : (N,) team labels (any values, e.g. team ids or codes).
    arm_col : column of ``F`` holding the arm (0/1).
    n_imputations, n_cycles : imputations and chained-equation cycles (one cycle
        when only one wave has missing values).
    rng : ``numpy.random.Generator`` or seed (``None``: fresh entropy).
    prior_scale : scale of the half-Cauchy prior on ``tau = s_B / s_W``.
    draw_theta : False holds the imputation models' ``theta`` at its REML
        estimate (the previous scheme, for comparisons only).
    df_max : optional cap on the pooled df (:func:`rubin`).

    Each imputation starts from random draws of the observed values, then
    alternates follow-up given baseline and baseline given follow-up; the
    imputations are independent chains, run side by side as one batch. The
    analysis model (follow-up on ``F`` and baseline, random team intercept,
    REML) is fitted to every completed data set and the arm effects pooled by
    :func:`rubin` on the fits' Kenward-Roger variances with the complete-data df
    the mean of their Kenward-Roger df (so the pooled df never exceed it).

    Returns a dict: ``estimate, se, df, ci_low, ci_high, p_value, fmi`` (pooled),
    ``n_imputations, n_missing_followup, n_missing_baseline, df_complete``,
    per imputation ``estimates, variances, dfs`` (KR), ``theta_analysis`` (REML theta of
    the completed-data fit), and the drawn ``theta_followup`` /
    ``theta_baseline`` (imputations x cycles; no columns when that wave is
    complete). Raises ``ValueError`` when a model is not estimable.
    """
    c = _impute(y_followup, y_baseline, F, groups, arm_col, n_imputations, n_cycles, rng, prior_scale, draw_theta)
    out = _pool_completed(c, c["Yf"], df_max)
    out.update(
        n_imputations=c["M"],
        n_missing_followup=int(c["miss_f"].sum()),
        n_missing_baseline=int(c["miss_b"].sum()),
        theta_followup=c["draws"]["followup"],
        theta_baseline=c["draws"]["baseline"],
    )
    return out


def _impute(y_followup, y_baseline, F, groups, arm_col, n_imputations, n_cycles, rng, prior_scale, draw_theta) -> dict:
    """The completed data sets of :func:`mi_arm_effect`: ``Yf``, ``Yb`` (M, N) and what pooling them needs."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    yf0 = np.asarray(y_followup, float).reshape(-1)
    yb0 = np.asarray(y_baseline, float).reshape(-1)
    codes, G = _codes(groups)
    F = np.asarray(F, float)
    N, M = yf0.size, int(n_imputations)
    if yb0.size != N or codes.size != N or F.shape[0] != N:
        raise ValueError("y_followup, y_baseline, F and groups need one row per participant")
    if M < 2:
        raise ValueError("need at least two imputations")
    lay = _Layout(F, codes, G, keep=(arm_col,))
    k = _coef_index(lay, arm_col)
    miss_f, miss_b = np.isnan(yf0), np.isnan(yb0)
    if (~miss_f).sum() < 2 or (~miss_b).sum() < 2:
        raise ValueError("too few observed scores to impute")
    imputers = {
        key: TwoLevelImputer(F, codes, miss, prior_scale=prior_scale, draw_theta=draw_theta, layout=lay)
        for key, miss in (("followup", miss_f), ("baseline", miss_b))
        if miss.any()
    }
    cycles = n_cycles if len(imputers) == 2 else 1
    draws = {key: np.full((M, cycles if key in imputers else 0), np.nan) for key in ("followup", "baseline")}
    Yf, Yb = np.tile(yf0, (M, 1)), np.tile(yb0, (M, 1))
    Yf[:, miss_f] = rng.choice(yf0[~miss_f], (M, miss_f.sum()))
    Yb[:, miss_b] = rng.choice(yb0[~miss_b], (M, miss_b.sum()))
    for c in range(cycles):
        if "followup" in imputers:
            Yf = imputers["followup"].draw(Yf, Yb, rng)
            draws["followup"][:, c] = imputers["followup"].last["theta"]
        if "baseline" in imputers:
            Yb = imputers["baseline"].draw(Yb, Yf, rng)
            draws["baseline"][:, c] = imputers["baseline"].last["theta"]
    return dict(
        Yf=Yf,
        Yb=Yb,
        draws=draws,
        lay=lay,
        codes=codes,
        G=G,
        F=F,
        k=k,
        arm_col=arm_col,
        M=M,
        miss_f=miss_f,
        miss_b=miss_b,
    )


def _pool_completed(c: dict, Yf: np.ndarray, df_max: float | None) -> dict[str, Any]:
    """Fit the analysis model to each completed data set (follow-up ``Yf``, baseline ``c["Yb"]``) and pool."""
    lay, codes, Yb = c["lay"], c["codes"], c["Yb"]
    analysis = _Model(lay, codes, np.ones(codes.size, bool), 1)
    analysis.set_data(Yf[:, analysis.rows], Yb[:, analysis.rows, None], check_rank=True)
    fits = _fit(analysis, c["k"])
    est = np.array([f["estimate"] for f in fits])
    kr = _kenward_roger_fits(c["F"], codes, c["G"], Yb, fits, c["arm_col"])
    var = kr[:, 0]
    dfs = kr[:, 1]
    df_com = float(np.mean(dfs))
    out: dict[str, Any] = {key: float(v) for key, v in rubin(est, var, df_com, df_max).items()}
    out.update(
        df_complete=df_com,
        estimates=est,
        variances=var,
        dfs=dfs,
        theta_analysis=np.array([f["theta"] for f in fits]),
    )
    return out


# ---------------------------------------------------------------------------
# delta adjustment (MNAR sensitivity) and its tipping point
# ---------------------------------------------------------------------------

#: Largest |delta| (in SD units) the tipping-point search tries before it says "beyond".
DELTA_MAX = 8.0
#: First step of the outward search (SD units); steps double until the interval covers 0.
DELTA_STEP = 0.25


def mi_delta_tipping_point(
    y_followup,
    y_baseline,
    F,
    groups,
    shifted,
    sd: float,
    arm_col: int = 1,
    n_imputations: int = 20,
    n_cycles: int = 5,
    rng=None,
    prior_scale: float = PRIOR_SCALE,
    df_max: float | None = None,
    delta_max: float = DELTA_MAX,
    xtol: float = 1e-4,
) -> dict:
    """Delta-adjusted (MNAR) multiple imputation and the delta at which the 95% CI first includes 0.

    The data are imputed once, as :func:`mi_arm_effect` imputes them (missing
    at random given the imputation model); then the imputed follow-up scores
    of the rows ``shifted`` (the intervention arm) are moved by ``delta * sd``
    and the analysis model refitted and pooled (Rubin's rules, Barnard-Rubin
    df on Kenward-Roger complete-data df, ``df_max`` cap), for each delta
    tried. This is the "delta-adjustment after imputation" of the
    pattern-mixture approach (Carpenter & Kenward 2013, *Multiple Imputation
    and its Application*, ch. 10; Cro et al. 2020, *Stat Med* 39:2815): the
    same imputations at every delta, so the pooled interval moves smoothly
    with delta. Observed scores are never moved.

    The tipping point is signed: delta moves the intervention arm's imputed
    scores towards no effect (negative when the estimate at delta 0 is
    positive). From 0 the search steps outwards (``DELTA_STEP``, doubling)
    until the interval covers 0, then finds the crossing by Brent's method
    (to ``xtol`` SD): the delta at which the interval's end nearer 0 is 0.

    Returns a dict: ``tipping_point`` (NaN when there is none, with
    ``reason``), ``at_zero`` (the pooled result at delta 0, the MAR analysis),
    ``at_tipping`` (pooled at the tipping point), ``n_shifted`` (imputed
    scores shifted per data set), ``sd``, and ``evaluated`` (delta -> pooled
    result, every delta the search fitted).
    """
    c = _impute(y_followup, y_baseline, F, groups, arm_col, n_imputations, n_cycles, rng, prior_scale, True)
    rows = c["miss_f"] & np.asarray(shifted, bool).reshape(-1)
    evaluated: dict[float, dict] = {}

    def at(delta: float) -> dict:
        if delta not in evaluated:
            Yf = c["Yf"].copy()
            Yf[:, rows] += delta * sd
            evaluated[delta] = _pool_completed(c, Yf, df_max)
        return evaluated[delta]

    r0 = at(0.0)
    out: dict[str, Any] = dict(
        tipping_point=np.nan, reason="", at_zero=r0, at_tipping=None, n_shifted=int(rows.sum()), sd=float(sd)
    )
    if r0["ci_low"] <= 0 <= r0["ci_high"]:
        out["reason"] = "the 95% CI of the analysis at delta 0 (missing at random) already includes 0"
    elif not rows.any():
        out["reason"] = "no follow-up score of the intervention arm is imputed, so no delta moves the estimate"
    elif not (np.isfinite(sd) and sd > 0):
        out["reason"] = "the SD of the outcome is not positive"
    if out["reason"]:
        out["evaluated"] = evaluated
        return out
    sign = -1.0 if r0["estimate"] > 0 else 1.0
    end = "ci_low" if r0["estimate"] > 0 else "ci_high"

    def gap(d: float) -> float:  # > 0 while the interval excludes 0 (d the unsigned size of delta)
        return sign * -at(sign * d)[end]

    lo, hi = 0.0, DELTA_STEP
    while gap(hi) > 0:
        if hi >= delta_max:
            out["reason"] = f"the 95% CI excludes 0 for every delta up to {delta_max:g} SD"
            out["evaluated"] = evaluated
            return out
        lo, hi = hi, min(2 * hi, delta_max)
    d = float(optimize.brentq(gap, lo, hi, xtol=xtol))
    out.update(tipping_point=sign * d, at_tipping=at(sign * d), evaluated=evaluated)
    return out
