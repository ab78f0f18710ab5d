"""The one profiled-REML core of the random-intercept model, on per-team sufficient statistics.

Every REML fit of ``y = X b + u_team + e`` in the package is computed here:
the mixed models (:func:`isafe_helpers.stats.mixed.fit_random_intercept`,
nothing absorbed, a batch of one), the analysis and imputation models of
multiple imputation (:mod:`isafe_helpers.stats.imputation`, LA dummies
absorbed, a batch of imputations); Kenward-Roger takes its team statistics
from here (:meth:`Model.team_sums`).

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
Team sums are computed once (``O(N p^2)``). The outcome is first replaced by
its OLS residual ``y - X b0`` (the REML fit is exactly equivariant, ``b -> b
- b0`` and everything else unchanged), which avoids cancellation in the
generalised residual sum of squares when ``y`` has a large mean.

``s2_W`` and ``b`` are profiled out.  The profiled REML criterion
(-2 x REML log-likelihood, the constant as in lme4's ``REMLcrit``) is

    f(theta) = sum_j log(1 + theta n_j) + log|X'V0^{-1}X|
               + (N - p) (1 + log(2 pi Q(theta) / (N - p)))

with ``Q`` the generalised residual sum of squares.  It is minimised over
``theta >= 0`` (:func:`optimise`) by a grid over ``log theta`` (plus
``theta = 0``) that brackets the optimum, then a safeguarded Newton
iteration on ``f'(theta) = 0`` inside the bracket using analytic first and
second derivatives (bisection on ``log theta`` whenever a step would leave
the bracket).  The ``theta = 0`` boundary is taken when the one-sided
derivative there is non-negative or 0 is at least as good (as lme4 does).

Standard errors are the conventional ones, ``cov(b) = s2_W (X'V0^{-1}X)^{-1}``
at the REML estimates (lme4, SAS, Stata).  Denominator degrees of freedom are
Satterthwaite's, computed exactly as lmerTest does it (:func:`satterthwaite`):
variance parameters ``(tau, sigma)`` with ``tau = sqrt(theta)`` (lme4's
relative standard deviation) and ``sigma = sqrt(s2_W)``; their asymptotic
covariance is ``2 H^{-1}`` with ``H`` the Hessian of the (unprofiled) REML
deviance (pseudo-inverse over the eigenvalues above 1e-8, as lmerTest); the
gradient of ``var(b_k)`` is taken with respect to the same parameters;
``df_k = 2 var(b_k)^2 / (g' (2 H^{-1}) g)``.  All derivatives are analytic.

Per-team sufficient statistics, absorption and pooling
------------------------------------------------------
The columns of ``X = [F, Z]`` are split into team-level columns ``F``
(constant within each team) and row-level columns ``Z`` (:class:`Layout`).
The model's cross products are a within-team part (only the row-level
columns ``Z`` and ``y`` have one) plus team sums weighted by
``a_j = 1 / (n_j (1 + theta n_j))``. In addition the columns of ``F`` that
are 0/1 indicators with disjoint supports (the LA dummies) are *absorbed*:
their block of ``X'V0^-1X`` is diagonal, so ``log|X'V0^-1X|``, the GLS
solution and the derivatives the Satterthwaite df need follow from a Schur
complement onto the few remaining columns (intercept, arm, ``z``) in
``O(G r^2)`` per value of ``theta`` (``G`` teams, ``r`` remaining columns)
instead of ``O(p^3)`` with ``p`` ~ 150 at national scale. Because the team
weights depend on the team only through its size ``n_j``, the outer
products ``s_j s_j'`` are pooled by team size (and the per-LA sums by size
and LA), so a criterion evaluation costs ``O(K r^2 + r^3)`` with ``K`` the
number of distinct team sizes. A design with nothing to absorb (``F`` with
no columns, every column of ``X`` in ``Z``) is the plain model.

A :class:`Model` holds a *batch* of data sets on the same rows (the
imputations of multiple imputation): every array carries a leading batch
axis, so one criterion evaluation, one optimiser step, is one set of array
operations for all of them.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from isafe_helpers.stats.kenward_roger import TeamSums

__all__ = ["Layout", "Model", "optimise", "satterthwaite", "team_codes"]

# Grid of theta bracketing the REML optimum: 0 and 33 points evenly spaced in log10(theta) over [-8, 8].
_GRID = np.concatenate(([0.0], 10.0 ** np.linspace(-8.0, 8.0, 33)))
# How optimise's search ended, in order of precedence.
_KINDS = np.array(["bad", "top", "at0", "zero", "interior"])
# Pool teams by size when (number of sizes) x (number of strata) <= this x (number of teams).
_POOL_RATIO = 8
_EIG_TOL = 1e-8  # lmerTest's tolerance for "positive" Hessian eigenvalues


def team_codes(groups) -> tuple[np.ndarray, int]:
    """Team codes 0..G-1 (in sorted label order) and G from any team labels."""
    uniq, codes = np.unique(np.asarray(groups), return_inverse=True)
    return codes.reshape(-1), uniq.size


def _pooling(key: np.ndarray, K: int) -> sparse.csr_matrix:
    """The 0/1 matrix (K, key.size) that sums the elements with each key 0..K-1 (in their order)."""
    order = np.argsort(key, kind="stable").astype(np.int32)  # int32: scipy's own index type, no conversion
    bounds = np.concatenate(([0], np.cumsum(np.bincount(key, minlength=K)))).astype(np.int32)
    return sparse.csr_matrix((np.ones(key.size), order, bounds), shape=(K, key.size))


class Layout:
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
        if self.p:
            res = np.linalg.lstsq(Ft, np.ones(G), rcond=None)[0]
            self.has_const = bool(np.max(np.abs(Ft @ res - 1.0)) < 1e-9)
        else:
            self.has_const = False
        stratum = np.full(G, -1)
        for i, k in enumerate(dcols):
            stratum[Ft[:, k] == 1.0] = i
        self.stratum = stratum
        self.L = len(dcols)


class Model:
    """``y = [F, Z] b + u_team + e`` on a subset of rows, in per-team sufficient statistics.

    Holds a *batch* of ``M`` data sets on the same rows (the imputations; one
    for the mixed model): every data array has a leading axis ``M``.
    Coefficients are kept as ``b_D`` (absorbed indicator columns) and ``b_R``
    (dense columns of ``F`` followed by the columns of ``Z``). ``F`` may have
    no columns: the plain model, every column of ``X`` in ``Z`` (``q`` of them).
    """

    def __init__(self, lay: Layout, codes: np.ndarray, rows: np.ndarray, q: int):
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
        self._rows_per_team = cnt[self.teams]
        self.row_starts = np.concatenate(([0], np.cumsum(self._rows_per_team)[:-1]))
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
        self.Pk = _pooling(ks, K)  # row k: the model teams of size nk[k], Pk.indices[Pk.indptr[k]:Pk.indptr[k + 1]]
        self.pooled = K * lay.L <= _POOL_RATIO * Gm
        if self.pooled and lay.L:
            self.Pkl = _pooling(ks[:nD] * lay.L + self.strat[:nD], K * lay.L)

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

        ``centre``: work with ``y`` minus its OLS fit (:meth:`centre`; exactly
        equivariant, module docstring: no cancellation in ``Q`` when ``y`` has a
        large mean); the imputer, which centres on the means itself, skips this,
        and the mixed model centres after its own rank check.
        """
        M, N, q = Y.shape[0], self.N, self.q
        Z = Z.reshape(M, N, q)
        self.M, self._Z = M, Z
        n = self.n
        sz = self._tsum(Z)  # (M, Gm, q)
        Zc = Z - np.repeat(sz / n[None, :, None], self._rows_per_team, axis=1)
        self._Zc = Zc
        self.WRR = np.zeros((M, self.r, self.r))
        self.WRR[:, self.r - q :, self.r - q :] = Zc.transpose(0, 2, 1) @ Zc
        if self.sF.shape[1]:
            self.sR = np.concatenate([np.broadcast_to(self.sF, (M,) + self.sF.shape), sz], axis=2)  # (M, Gm, r)
        else:
            self.sR = sz
        # sum of s_j s_j' over the teams of each size (M, K, r * r), one Gram matrix per size
        sR, b = self.sR[:, self.Pk.indices], self.Pk.indptr  # model teams grouped by size
        self._kRR = np.stack([np.swapaxes(sR[:, i:j], 1, 2) @ sR[:, i:j] for i, j in zip(b[:-1], b[1:])], 1).reshape(
            M, b.size - 1, -1
        )
        self.b0D, self.b0R = np.zeros((M, self.lay.L)), np.zeros((M, self.r))
        self._set_y(Y)
        self._Y = Y
        if check_rank or centre:
            ols = self.solve(np.zeros((self.M, 1)))
            if check_rank:
                self._check_rank(ols["S"][:, 0])
            if centre:
                self.centre(ols)

    def centre(self, ols: dict | None = None) -> None:
        """Work with ``y`` minus its OLS fit ``X b0`` (set_data's ``centre``); call after any rank check.
        ``ols``: :meth:`solve` at theta = 0 on the current data, if the caller has it."""
        d = self.solve(np.zeros((self.M, 1))) if ols is None else ols
        self.b0D, self.b0R = d["bD"][:, 0], d["bR"][:, 0]
        self._set_y(self._Y - self.fitted(self.b0D, self.b0R, self.teams[self.rc], self._Z))

    def _set_y(self, Y: np.ndarray) -> None:
        M, r = Y.shape[0], self.r
        t = self._tsum(Y)  # (M, Gm)
        yc = Y - np.repeat(t / self.n, self._rows_per_team, axis=1)
        self.t = t
        self.WRy = np.zeros((M, r))
        self.WRy[:, r - self.q :] = (self._Zc.transpose(0, 2, 1) @ yc[:, :, None])[:, :, 0]
        self.Wyy = np.einsum("mn,mn->m", yc, yc)
        self._kRt = self._pool(self.sR * t[:, :, None], self.Pk)  # (M, K, r)
        self._ktt = self._pool((t * t)[:, :, None], self.Pk)[:, :, 0]  # (M, K)
        if self.lay.L:  # what the absorbed block needs: per team (n_j, t_j, sR_j), pooled by size and stratum
            self._nts = np.concatenate([np.broadcast_to(self.n, t.shape)[:, :, None], t[:, :, None], self.sR], axis=2)
            if self.pooled:
                K, L = self.nk.size, self.lay.L
                X = self._pool(self._nts[:, : self.nD], self.Pkl)  # (M, K * L, 2 + r)
                self._X = X.reshape(M, K, L * (2 + r))

    def _check_rank(self, S: np.ndarray) -> None:
        """Raise if ``X`` is rank deficient: ``S`` (M, r, r), the Schur complement of ``X'X`` onto the dense
        columns (:meth:`solve` at theta = 0), is singular."""
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
        onepK = 1.0 + th[:, :, None] * self.nk  # (M, T, K)
        anK = 1.0 / onepK  # a n for each size
        aK = anK / self.nk
        C = self.WRR[:, None] + (aK @ self._kRR).reshape(M, T, r, r)
        cR = self.WRy[:, None] + aK @ self._kRt
        e = self.Wyy[:, None] + (aK @ self._ktt[:, :, None])[..., 0]
        if L == 0:  # nothing absorbed: S is the whole of X'V0^-1X
            dD, cD, B = np.empty((M, T, 0)), np.empty((M, T, 0)), np.empty((M, T, 0, r))
            S, ct, et = C, cR, e
        else:
            w = 2 + r
            # per-stratum sums of a_j n_j * (n_j, t_j, sR_j)
            if self.pooled:
                red = (anK @ self._X).reshape(M, T, L, w)
            else:  # per batch member, one reduceat over contiguous team rows
                red = np.empty((M, T, L, w))
                for i in range(M):
                    an = 1.0 / (1.0 + self.n[:nD, None] * th[i][None, :])  # (nD, T)
                    red[i] = np.add.reduceat(
                        an[:, None, :] * self._nts[i, :nD, :, None], self.starts, axis=0
                    ).transpose(2, 0, 1)
            dD, cD, B = red[..., 0], red[..., 1], red[..., 2:]  # B: (M, T, L, r)
            BsT = np.swapaxes(B / dD[..., None], -1, -2)  # (M, T, r, L)
            S = C - BsT @ B
            ct = cR - (BsT @ cD[..., None])[..., 0]
            et = e - (cD * cD / dD).sum(axis=-1)
        try:
            Lc = np.linalg.cholesky(S)
            logdetS = 2.0 * np.log(Lc.diagonal(axis1=-2, axis2=-1)).sum(axis=-1)
            bR = np.linalg.solve(S, ct[..., None])[..., 0]
        except np.linalg.LinAlgError:  # not positive definite somewhere: those thetas get criterion inf
            sign, logdetS = np.linalg.slogdet(S)
            logdetS = np.where(sign > 0, logdetS, np.nan)
            bR = (np.linalg.pinv(S) @ ct[..., None])[..., 0]
        Q = et - (ct * bR).sum(axis=-1)
        if L == 0:
            bD, logdetA = cD, logdetS  # bD: empty
        else:
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

    def crit(self, theta: float) -> float:
        """The criterion of the first (for a batch of one: the) data set at one ``theta``."""
        return float(self.crit_many(np.array([[theta]], dtype=float))[0, 0])

    def team_resid(self, bR: np.ndarray, bD: np.ndarray) -> np.ndarray:
        """Team residual sums ``r_j = t_j - s_j'b`` (M, Gm) at coefficients ``b_R`` (M, r), ``b_D`` (M, L)."""
        nD = self.nD
        res = self.t - (self.sR @ bR[:, :, None])[:, :, 0]
        if nD:
            res[:, :nD] -= self.n[:nD] * bD[:, self.strat[:nD]]
        return res

    def rss(self, bR: np.ndarray, res: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Generalised residual sum of squares ``Q`` (M,) from ``b_R``, the team residual sums ``res`` and the
        team weights ``a`` (M, Gm): within-team part plus team part, no cancellation against the grand mean."""
        return (
            self.Wyy
            - 2.0 * (bR * self.WRy).sum(1)
            + np.einsum("mr,mrs,ms->m", bR, self.WRR, bR)
            + (a * res * res).sum(1)
        )

    def details(self, theta: np.ndarray, full: bool = True) -> dict:
        """Criterion, GLS estimates and analytic theta-derivatives at one theta per batch member (M,).

        ``M``: the inverse of the Schur complement ``S`` (the dense block of
        ``(X'V0^-1X)^-1``); ``dvar`` (M, r): the diagonal of ``S^-1 S1 S^-1``
        (``S1`` the theta-derivative of ``S``), which the Satterthwaite df of the
        dense coefficients need. ``full=False`` leaves out what a Newton step
        on ``f'(theta) = 0`` does not need: the criterion ``f`` and ``dvar``.
        """
        theta = np.asarray(theta, float)
        d = self.solve(theta[:, None])
        dD, B, S, bR, bD = (d[k][:, 0] for k in ("dD", "B", "S", "bR", "bD"))  # B: (M, L, r)
        n, nD, st = self.n, self.nD, self.strat[: self.nD]
        onep = 1.0 + theta[:, None] * n  # (M, Gm)
        onep2 = onep**2
        a = 1.0 / (n * onep)
        a1 = -1.0 / onep2
        a2 = 2.0 * n / onep**3
        Minv = np.linalg.inv(S)
        Minv = 0.5 * (Minv + np.swapaxes(Minv, 1, 2))
        res = self.team_resid(bR, bD)
        Q = self.rss(bR, res, a)
        L1 = (n / onep).sum(1)
        L2 = -(n**2 / onep2).sum(1)
        dvar = None
        if self.lay.p:  # team-level columns, some perhaps absorbed: per team
            Bd = B / dD[:, :, None]
            # v_j = sR_j - n_j B_l / dD_l: the team sum's component orthogonal to the absorbed block
            v = self.sR.copy()
            v[:, :nD] -= n[:nD, None] * Bd[:, st]
            Mv = v @ Minv
            h = (Mv * v).sum(axis=2)
            h[:, :nD] += n[:nD] ** 2 / dD[:, st]
            D1 = (a1 * h).sum(1)
            # tr(A^-1 A1 A^-1 A1) = sum_jk a1_j a1_k (s_j'A^-1 s_k)^2, split into the absorbed and dense parts
            MVa = Minv @ (np.swapaxes(v * a1[:, :, None], 1, 2) @ v)
            tr2 = (MVa * np.swapaxes(MVa, 1, 2)).sum(axis=(1, 2))
            if nD:
                g = self._ssum(a1 * n * n)
                w = self._ssum((a1 * n)[:, :, None] * v)  # (M, L, r)
                tr2 = tr2 + (g * g / dD**2).sum(1) + 2.0 * (np.einsum("mlr,mrs,mls->ml", w, Minv, w) / dD).sum(1)
            D2 = (a2 * h).sum(1) - tr2
            if full:
                dvar = (a1[:, :, None] * Mv**2).sum(1)  # [A^-1 A1 A^-1]_kk
        else:  # the plain model (every column row-level): A1, A2 from the outer products pooled by size
            onepK = 1.0 + theta[:, None] * self.nk
            A1 = np.einsum("mk,mkq->mq", -1.0 / onepK**2, self._kRR).reshape(Minv.shape)
            A2 = np.einsum("mk,mkq->mq", 2.0 * self.nk / onepK**3, self._kRR).reshape(Minv.shape)
            MA1 = Minv @ A1
            D1 = MA1.trace(axis1=1, axis2=2)
            D2 = (Minv * A2).sum(axis=(1, 2)) - (MA1 * np.swapaxes(MA1, 1, 2)).sum(axis=(1, 2))
            if full:
                dvar = (MA1 @ Minv).diagonal(axis1=1, axis2=2)
        ar = a1 * res
        Q1 = (ar * res).sum(1)
        ut = np.einsum("mg,mgr->mr", ar, self.sR)
        uAu = 0.0
        if nD:  # (then F has columns: Bd is set)
            uD = self._ssum(ar * n)
            ut = ut - np.einsum("mlr,ml->mr", Bd, uD)
            uAu = (uD * uD / dD).sum(1)
        uAu = uAu + np.einsum("mr,mrs,ms->m", ut, Minv, ut)
        Q2 = (a2 * res * res).sum(1) - 2.0 * uAu
        N, p = self.N, self.p
        out = dict(theta=theta, Q=Q, bR=bR, bD=bD, M=Minv, L1=L1, L2=L2, D1=D1, D2=D2, Q1=Q1, Q2=Q2)
        out["f1"] = L1 + D1 + (N - p) * Q1 / Q
        out["f2"] = L2 + D2 + (N - p) * (Q2 / Q - (Q1 / Q) ** 2)
        if full:
            out["f"] = np.log(onep).sum(1) + d["logdetA"][:, 0] + (N - p) * np.log(Q) + self._const()
            out["dvar"] = dvar
        return out

    def team_sums(self, j: int) -> TeamSums:
        """Team statistics of the whole design ``X = [F, Z]`` (columns in that order) of batch member ``j``,
        for Kenward-Roger: the absorbed columns' team sums are ``n_j`` on their teams, and ``F`` has no
        within-team part."""
        lay, q = self.lay, self.q
        cols = lay.rcols + list(range(lay.p, lay.p + q))
        sums = np.zeros((self.Gm, lay.p + q))
        sums[:, cols] = self.sR[j]
        sums[:, lay.dcols] = self.n[:, None] * lay.Ft[self.teams][:, lay.dcols]
        within = np.zeros((lay.p + q, lay.p + q))
        within[np.ix_(cols, cols)] = self.WRR[j]
        return TeamSums(within=within, sums=sums, sizes=self.n)


def optimise(m: Model) -> tuple[np.ndarray, dict, dict]:
    """Minimise the profiled REML criterion over theta >= 0 for every batch member.

    A grid over log theta (plus 0) brackets the optimum; ``theta = 0`` when
    the criterion's one-sided derivative there is non-negative or 0 is at
    least as good (lme4's rule); otherwise a safeguarded Newton iteration on
    ``f'(theta) = 0`` (analytic derivatives, bisection on log theta when a
    step leaves the bracket) inside the bracket.

    Returns theta (M,), how each member ended, for the callers' messages,
    and :meth:`Model.details` at theta (every fit needs it, and the search has
    usually computed it already). ``how``: ``kind`` (M,) one of ``"bad"``
    (criterion not finite anywhere on the grid; theta 0), ``"top"`` (the upper
    grid limit), ``"at0"`` (the boundary with a non-negative one-sided
    derivative at 0 on the grid), ``"zero"`` (the boundary after the search),
    ``"interior"``; ``converged`` (M,) bool; ``f1_0`` (the one-sided
    derivative at 0; only computed when some member's grid minimum is at 0 or
    the first grid point above it, the only cases that use it, NaN
    otherwise), and ``grad`` (d f / d log theta), ``f2`` (d2 f / d theta2) at
    the optimum found.
    """
    M = m.M
    grid = _GRID
    fv = m.crit_many(np.broadcast_to(grid, (M, grid.size)))
    i = np.argmin(fv, axis=1)
    bad = ~np.isfinite(fv[np.arange(M), i])
    top = i == grid.size - 1
    lo = np.where(i > 0, grid[np.maximum(i - 1, 0)], 0.0)
    hi = grid[np.minimum(i + 1, grid.size - 1)]
    d0 = m.details(np.zeros(M)) if (i <= 1).any() else None  # then theta = 0 is a candidate
    f1_0 = d0["f1"] if d0 is not None else np.full(M, np.nan)
    at0 = (i == 0) & (f1_0 >= 0.0)
    th = np.where(i > 0, grid[i], 0.5 * hi)
    active = ~(bad | top | at0)
    for _ in range(100):
        if not active.any():
            break
        d = m.details(np.where(active, th, 1.0), full=False)
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
    d = m.details(th) if th.any() or d0 is None else d0
    # boundary: take theta = 0 when it is at least as good (lme4 does the same)
    zero = (i <= 1) & ~at0 & ~bad & ((f1_0 >= 0.0) | (fv[:, 0] <= d["f"]))
    th = np.where(zero, 0.0, th)
    kind = _KINDS[np.argmax([bad, top, at0, zero, np.ones(M, bool)], axis=0)]  # the first that applies
    grad = d["f1"] * th
    interior_ok = (np.abs(grad) < 1e-6) & (d["f2"] > 0) & (d["f"] <= fv.min(axis=1) + 1e-8)
    converged = ~(bad | top) & np.where(at0 | zero, f1_0 >= -1e-6, interior_ok)
    how = dict(kind=kind, converged=converged, f1_0=f1_0, grad=grad, f2=d["f2"])
    if zero.any():
        d = m.details(th) if th.any() or d0 is None else d0
    return th, how, d


def satterthwaite(m: Model, d: dict, sigma2: float, j: int) -> np.ndarray:
    """Satterthwaite df (r,) of the dense coefficients ``b_R`` for batch member ``j``, as lmerTest.

    Variance parameters ``(tau, sigma)`` with ``tau = sqrt(theta)`` (lme4's
    relative standard deviation) and ``sigma = sqrt(s2_W)``; their asymptotic
    covariance is ``2 H^-1`` with ``H`` the Hessian of the (unprofiled) REML
    deviance; the gradient of ``var(b_k)`` is taken with respect to the same
    parameters; ``df_k = 2 var(b_k)^2 / (g' (2 H^-1) g)``.
    """
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
    # lmerTest pseudo-inverts H over eigenvalues > 1e-8.  Applied to H itself
    # that test depends on the units of y (h_ss scales as 1/sigma^2), so it is
    # applied to the Hessian with respect to (tau, sigma / sigma_hat), a linear
    # reparameterisation: identical to lmerTest for outcomes on a unit scale,
    # and invariant to rescaling y.
    D = np.array([1.0, sigma])
    DD = np.outer(D, D)
    evals, evecs = np.linalg.eigh(H * DD)
    pos = evals > _EIG_TOL
    vcov_vp = 2.0 * ((evecs[:, pos] / evals[pos]) @ evecs[:, pos].T) * DD
    mkk = d["M"][j].diagonal()
    var = sigma2 * mkk
    J = np.column_stack([-2.0 * tau * sigma2 * d["dvar"][j], 2.0 * sigma * mkk])
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * var**2 / np.einsum("ij,jk,ik->i", J, vcov_vp, J)
