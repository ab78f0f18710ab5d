"""Impact strand, robustness of the primary analysis.

Three checks of the primary model of each scale (:func:`isafe_helpers.impact.primary`):

- :func:`multiple_imputation` (``sensitivity_mi``): missing baseline and
  follow-up scores imputed by chained equations from two-level (team random
  intercept) normal models that carry arm, LA and team information; the
  primary model fitted to every completed data set and pooled by Rubin's rules
  with the Barnard-Rubin degrees of freedom.
- :func:`randomisation_inference` (``sensitivity_ri``): teams re-randomised
  within LA exactly as the trial did (the number of treatment teams of each LA
  kept), at least 5,000 seeded permutations, or every allocation when there
  are fewer.
- :func:`cluster_robust` (``sensitivity_cr2``): OLS with team-clustered CR2
  (Bell-McCaffrey) standard errors and Satterthwaite degrees of freedom, as R's
  ``clubSandwich::coef_test(vcov = "CR2", test = "Satterthwaite")``.

Randomisation inference, design of the fast statistic
-----------------------------------------------------
The test statistic is the GLS treatment estimate of the primary model with the
team-to-residual variance ratio ``theta`` held at its REML value from the same
model *without* the arm term. That ``theta`` is a function of the outcomes and
covariates only, not of the allocation, so the statistic is the same function
of (outcomes, allocation) in every permutation and the test is exact under the
sharp null of no effect for anyone. With ``theta`` fixed, the GLS model is an
OLS model after the transform ``x -> x - c_j * (team sum of x)`` with
``c_j = (1 - 1/sqrt(1 + theta n_j)) / n_j``; by Frisch-Waugh the arm estimate
is ``t*' e / (t*' t* - t*' Z* (Z*'Z*)^-1 Z*' t*)``, with ``e`` the transformed
outcome residualised on the transformed covariates ``Z*``. Arm is constant
within a team, so for every allocation these reduce to products of the 0/1
allocation matrix (permutations x teams) with per-team sums that are computed
once: all permutations are evaluated in a few matrix products, no refits.
The confidence interval inverts the test of a constant additive effect
``delta`` (outcomes ``y - delta * t``) on a fine grid refined by bisection,
with ``theta`` held at the same value.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse, stats

from .estimates import est_row
from .impact import ArmEffect, analysis_frame
from .loading import TrialData
from .mixed import fit_random_intercept

#: Seed of every random draw of this module (permutations, imputations).
SEED = 20240601
#: Permutations of the randomisation test (published results use at least this many).
N_PERMUTATIONS = 5000
#: Imputations and chained-equation cycles of the multiple imputation.
N_IMPUTATIONS = 20
N_CYCLES = 5

NOT_ESTIMABLE = "not estimable: needs at least two analysed teams in each arm"


# ---------------------------------------------------------------------------
# shared design
# ---------------------------------------------------------------------------


def design(df: pd.DataFrame, covariates: tuple[str, ...] = ("baseline",)) -> tuple[np.ndarray, list[str]]:
    """Fixed-effect design of the primary model: intercept, arm, covariates, LA dummies.

    LA dummies (treatment-coded against the first LA in sorted order) are added
    only when the frame holds more than one LA.
    """
    cols = [np.ones(len(df)), df["treated"].to_numpy(float)]
    names = ["Intercept", "treated"]
    for c in covariates:
        cols.append(df[c].to_numpy(float))
        names.append(c)
    las = sorted(df["la"].unique())
    for la in las[1:]:
        cols.append((df["la"].to_numpy() == la).astype(float))
        names.append(f"la[T.{la}]")
    return np.column_stack(cols), names


def _estimable(df: pd.DataFrame) -> bool:
    arms = df.groupby("arm")["team_id"].nunique()
    return len(arms) == 2 and arms.min() >= 2


def _rows_effect(analysis: str, outcome: str, est, se, lo, hi, p, n, g, note: str) -> list[dict]:
    return [est_row(analysis, outcome, "treatment_effect", est, se, lo, hi, p, n=n, n_clusters=g, note=note)]


def _indicator(codes: np.ndarray, G: int) -> sparse.csr_matrix:
    """Sparse team-by-row indicator: ``_indicator(codes, G) @ x`` gives team sums of ``x``."""
    return sparse.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(G, codes.size))


# ---------------------------------------------------------------------------
# (a) multiple imputation
# ---------------------------------------------------------------------------


@dataclass
class MIResult(ArmEffect):
    """Multiple-imputation estimate of the arm effect on one scale."""

    n_imputations: int = 0
    n_missing_followup: int = 0
    n_missing_baseline: int = 0
    fmi: float = np.nan  # fraction of missing information

    def rows(self) -> list[dict]:
        note = self.note or f"{self.n_imputations} imputations, Rubin's rules"
        return _rows_effect("sensitivity_mi", self.outcome, self.estimate, self.se, self.ci_low,
                            self.ci_high, self.p_value, self.n, self.n_clusters, note)


def mi_frame(data: TrialData, outcome: str) -> pd.DataFrame:
    """Every randomised participant, with baseline and follow-up score of ``outcome`` (may be missing)."""
    sv = data.survey.pivot_table(index="participant_id", columns="wave", values=outcome, aggfunc="first")
    sv = sv.reindex(columns=["baseline", "followup"])
    df = data.participants[["participant_id", "team_id", "la"]].merge(
        data.teams[["team_id", "arm"]], on="team_id").merge(sv, left_on="participant_id", right_index=True,
                                                            how="left")
    df["treated"] = (df["arm"] == "treatment").astype(float)
    df["la"] = df["la"].astype(str)
    return df.reset_index(drop=True)


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
        return _indicator(self.cobs, self.G) @ x

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
    return dict(estimate=qbar, se=se, df=nu, ci_low=qbar - tq * se, ci_high=qbar + tq * se,
                p_value=float(2 * stats.t.sf(abs(qbar / se), nu)), fmi=lam)


def multiple_imputation(data: TrialData, outcome: str, n_imputations: int = N_IMPUTATIONS,
                        n_cycles: int = N_CYCLES, seed: int = SEED) -> MIResult:
    """Arm effect on ``outcome`` with missing scores multiply imputed (chained equations).

    Every randomised participant is included (intention to treat). Missing
    follow-up and baseline scores are imputed in turn (``n_cycles`` cycles,
    starting from random draws of the observed values), each from a two-level
    normal model (:class:`_TwoLevelImputer`) on the other wave's score, arm and
    LA dummies with a random intercept for team (residual variance drawn from
    its scaled inverse chi-square, coefficients from their normal
    approximation, each team's intercept from its conditional distribution
    given the team's observed rows, the variance ratio held at its REML value). The primary model is then
    fitted to each completed data set and the results pooled by Rubin's rules
    (:func:`rubin`), with the complete-data df the mean Satterthwaite df.
    """
    df = mi_frame(data, outcome)
    codes, uniq = pd.factorize(df["team_id"])
    G = len(uniq)
    res = MIResult(outcome, len(df), G, n_imputations=n_imputations)
    miss_f, miss_b = df["followup"].isna().to_numpy(), df["baseline"].isna().to_numpy()
    res.n_missing_followup, res.n_missing_baseline = int(miss_f.sum()), int(miss_b.sum())
    if not _estimable(df) or (~miss_f).sum() < 10:
        res.note = NOT_ESTIMABLE
        return res
    Xbase, _ = design(df, covariates=())  # intercept, arm, LA dummies
    rng = np.random.default_rng(np.random.SeedSequence([seed, sum(map(ord, outcome))]))
    yf0, yb0 = df["followup"].to_numpy(float), df["baseline"].to_numpy(float)
    both = ~miss_f & ~miss_b
    ests, vars_, dfs = [], [], []
    try:
        imputers = {}
        for key, miss, y0, z0 in (("f", miss_f, yf0, yb0), ("b", miss_b, yb0, yf0)):
            if miss.any():
                fit = fit_random_intercept(y0[both], np.column_stack([Xbase[both], z0[both]]), codes[both])
                imputers[key] = _TwoLevelImputer(Xbase, codes, G, miss, fit.team_variance / fit.residual_variance)
        for _ in range(n_imputations):
            yf, yb = yf0.copy(), yb0.copy()
            yf[miss_f] = rng.choice(yf0[~miss_f], miss_f.sum())
            yb[miss_b] = rng.choice(yb0[~miss_b], miss_b.sum())
            for _c in range(n_cycles if len(imputers) == 2 else 1):
                if "f" in imputers:
                    yf = imputers["f"].draw(yf, yb, rng)
                if "b" in imputers:
                    yb = imputers["b"].draw(yb, yf, rng)
            X = np.column_stack([Xbase[:, :2], yb, Xbase[:, 2:]])
            fit = fit_random_intercept(yf, X, codes)
            ests.append(fit.beta[1])
            vars_.append(fit.cov_beta[1, 1])
            dfs.append(fit.df[1])
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    pooled = rubin(ests, vars_, float(np.mean(dfs)))
    for k, v in pooled.items():
        setattr(res, k, float(v))
    return res


# ---------------------------------------------------------------------------
# (b) randomisation inference
# ---------------------------------------------------------------------------


@dataclass
class RIResult(ArmEffect):
    """Randomisation test of the arm effect on one scale (``estimate``: GLS at the null-model theta)."""

    n_permutations: int = 0
    exact: bool = False  # every possible allocation enumerated
    theta: float = np.nan
    permuted: np.ndarray = field(default=None, repr=False)  # the statistic under each allocation

    def rows(self) -> list[dict]:
        how = ("all {} allocations" if self.exact else "{} seeded permutations").format(self.n_permutations)
        note = self.note or f"teams re-randomised within LA; {how}; CI by test inversion"
        return _rows_effect("sensitivity_ri", self.outcome, self.estimate, None, self.ci_low,
                            self.ci_high, self.p_value, self.n, self.n_clusters, note)


class _FastGLS:
    """GLS arm estimate at fixed ``theta`` for many allocations at once (module docstring)."""

    def __init__(self, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, G: int, theta: float):
        nj = np.bincount(codes, minlength=G).astype(float)
        s = 1.0 / np.sqrt(1.0 + theta * nj)  # t*_i = tau_j * s_j for arm constant in team j
        c = (1.0 - s) / nj
        ind = _indicator(codes, G)
        self._ind = ind

        def tr(x):
            sums = ind @ x
            return x - c[codes].reshape((-1,) + (1,) * (x.ndim - 1)) * sums[codes]

        Zs, ys = tr(Z), tr(y)
        self.codes, self.G, self.s, self.nj = codes, G, s, nj
        q, r = np.linalg.qr(Zs)
        self.Q = q
        e = ys - q @ (q.T @ ys)
        self.a = s * np.bincount(codes, weights=e, minlength=G)  # t*'e = tau' a
        self.w = s * s * nj  # t*'t* = tau' w
        # t*'Z* projected: tau' Bq with Bq_j = s_j * (team sums of Q)
        self.Bq = (ind @ q) * s[:, None]

    def estimates(self, T: np.ndarray, extra: np.ndarray | None = None):
        """Arm estimate for each row of the allocation matrix ``T`` (allocations x teams).

        With ``extra`` (team-level vector a_x of another outcome) returns also its estimate."""
        U = T @ self.Bq
        den = T @ self.w - np.einsum("ij,ij->i", U, U)
        out = (T @ self.a) / den
        if extra is None:
            return out
        return out, (T @ extra) / den

    def team_vector(self, tau: np.ndarray) -> np.ndarray:
        """Team-level ``a`` of the outcome ``tau_j`` per row (the arm column itself)."""
        y = tau[self.codes]
        sums = np.bincount(self.codes, weights=y, minlength=self.G)
        c = (1.0 - self.s) / self.nj
        ys = y - c[self.codes] * sums[self.codes]
        e = ys - self.Q @ (self.Q.T @ ys)
        return self.s * np.bincount(self.codes, weights=e, minlength=self.G)


def allocations(teams: pd.DataFrame, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """0/1 allocation matrix (allocations x randomised teams), re-randomised within LA.

    Each LA keeps its number of treatment teams, as the trial's stratified
    randomisation did. When the number of possible allocations is at most
    ``n_perm`` every allocation is enumerated (``exact`` True); otherwise
    ``n_perm`` independent seeded draws are returned.
    """
    groups = [np.flatnonzero(teams["la"].to_numpy() == la) for la in sorted(teams["la"].unique())]
    treated = (teams["arm"].to_numpy() == "treatment")
    ks = [int(treated[g].sum()) for g in groups]
    total = math.prod(math.comb(len(g), k) for g, k in zip(groups, ks))
    M = len(teams)
    if total <= n_perm:
        per_la = [list(itertools.combinations(g, k)) for g, k in zip(groups, ks)]
        T = np.zeros((total, M))
        for i, combo in enumerate(itertools.product(*per_la)):
            for c in combo:
                T[i, list(c)] = 1.0
        return T, True
    rng = np.random.default_rng(seed)
    T = np.zeros((n_perm, M))
    for g, k in zip(groups, ks):
        if k == 0:
            continue
        ranks = rng.random((n_perm, len(g))).argsort(axis=1).argsort(axis=1)
        T[:, g] = (ranks < k).astype(float)
    return T, False


def randomisation_inference(data: TrialData, outcome: str, n_perm: int = N_PERMUTATIONS,
                            seed: int = SEED) -> RIResult:
    """Randomisation test and test-inversion CI of the arm effect on ``outcome``.

    See the module docstring for the statistic. The two-sided p-value is the
    share of allocations whose statistic is at least as far from zero as the
    observed one: ``(1 + #{|b_perm| >= |b_obs|}) / (1 + n_perm)`` for seeded
    draws, ``#{|b_perm| >= |b_obs|} / n_alloc`` when every allocation is
    enumerated (the observed one among them).
    """
    df = analysis_frame(data, outcome)
    codes, uniq = pd.factorize(df["team_id"])
    res = RIResult(outcome, len(df), len(uniq))
    if not _estimable(df):
        res.note = NOT_ESTIMABLE
        return res
    X, _names = design(df)
    y = df["followup"].to_numpy(float)
    Z = np.delete(X, 1, axis=1)
    try:
        null = fit_random_intercept(y, Z, codes)
    except ValueError as exc:
        res.note = f"not estimable: {exc}"
        return res
    theta = null.team_variance / null.residual_variance
    fast = _FastGLS(y, Z, codes, len(uniq), theta)
    teams = data.teams[["team_id", "arm", "la"]].drop_duplicates("team_id").reset_index(drop=True)
    T_all, exact = allocations(teams, n_perm, seed)
    col = pd.Index(teams["team_id"]).get_indexer(uniq)
    T = T_all[:, col]
    tau_obs = np.asarray(df.groupby(codes)["treated"].first().to_numpy(float))
    obs = float(fast.estimates(tau_obs[None, :])[0])
    a_t = fast.team_vector(tau_obs)
    perm_y, perm_t = fast.estimates(T, extra=a_t)
    res.permuted = perm_y
    res.estimate, res.theta, res.n_permutations, res.exact = obs, float(theta), len(T), exact

    # the observed allocation's own "t on t" slope (t*'M t* / den = 1)
    def pval(delta: float) -> float:
        # outcome y - delta * t_obs: statistic b(y) - delta * b(t_obs), and observed obs - delta
        stat = perm_y - delta * perm_t
        tol = 1e-9 * max(1.0, abs(obs - delta))
        hits = np.sum(np.abs(stat) >= abs(obs - delta) - tol)
        return hits / len(T) if exact else (1 + hits) / (1 + len(T))

    res.p_value = float(pval(0.0))
    scale = max(null.se[0], np.std(perm_y), 1e-8)
    res.ci_low, res.ci_high = _invert(pval, obs, scale)
    if exact and len(T) < 40:
        res.note = (f"teams re-randomised within LA; all {len(T)} allocations: too few to reach p < 0.05; "
                    "CI by test inversion")
    return res


def _invert(pval, centre: float, scale: float, alpha: float = 0.05) -> tuple[float, float]:
    """Ends of {delta : p(delta) > alpha} by stepping out from ``centre`` then bisecting."""
    out = []
    for sign in (-1.0, 1.0):
        inside = centre
        step = scale
        outside = centre + sign * step
        k = 0
        while pval(outside) > alpha and k < 60:
            inside = outside
            step *= 2
            outside = centre + sign * step
            k += 1
        if k == 60:
            out.append(sign * np.inf)
            continue
        for _ in range(50):
            mid = 0.5 * (inside + outside)
            if pval(mid) > alpha:
                inside = mid
            else:
                outside = mid
        out.append(0.5 * (inside + outside))
    return float(out[0]), float(out[1])


# ---------------------------------------------------------------------------
# (c) cluster-robust OLS with CR2
# ---------------------------------------------------------------------------


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
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=G))))
    AX = np.empty_like(X)  # rows of A_j X_j, in sorted order
    meat = np.zeros((p, p))
    for j in range(G):
        idx = order[bounds[j]:bounds[j + 1]]
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


@dataclass
class CR2Result(ArmEffect):
    """Cluster-robust OLS estimate of the arm effect on one scale."""

    def rows(self) -> list[dict]:
        note = self.note or "OLS, team-clustered CR2 SE, Satterthwaite df"
        return _rows_effect("sensitivity_cr2", self.outcome, self.estimate, self.se, self.ci_low,
                            self.ci_high, self.p_value, self.n, self.n_clusters, note)


def cluster_robust(data: TrialData, outcome: str) -> CR2Result:
    """OLS of follow-up on arm, baseline and LA with CR2 team-clustered inference (:func:`cr2`)."""
    df = analysis_frame(data, outcome)
    res = CR2Result(outcome, len(df), df["team_id"].nunique())
    if not _estimable(df):
        res.note = NOT_ESTIMABLE
        return res
    X, _ = design(df)
    try:
        f = cr2(df["followup"].to_numpy(float), X, df["team_id"].to_numpy(), df_for=[1])
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    res.estimate, res.se, res.df = float(f["beta"][1]), float(f["se"][1]), float(f["df"][1])
    tq = stats.t.ppf(0.975, res.df)
    res.ci_low, res.ci_high = res.estimate - tq * res.se, res.estimate + tq * res.se
    res.p_value = float(2 * stats.t.sf(abs(res.estimate / res.se), res.df))
    return res


# ---------------------------------------------------------------------------
# all three, one table
# ---------------------------------------------------------------------------

Check = Literal["mi", "ri", "cr2"]


@dataclass
class Robustness:
    """The three robustness checks of every scale."""

    mi: list[MIResult]
    ri: list[RIResult]
    cr2: list[CR2Result]

    def rows(self) -> list[dict]:
        return [r for res in (*self.mi, *self.ri, *self.cr2) for r in res.rows()]

    def table(self, primary=None) -> pd.DataFrame:
        """One display row per scale and method: estimate, 95% CI, p."""
        recs = []
        for r in primary or []:
            recs.append(dict(outcome=r.outcome, method="primary (REML, Satterthwaite)", estimate=r.estimate,
                             ci_low=r.ci_low, ci_high=r.ci_high, p_value=r.p_value, note=r.note))
        labels = {"mi": "multiple imputation", "ri": "randomisation inference", "cr2": "OLS, CR2 cluster-robust"}
        for key in ("mi", "ri", "cr2"):
            for r in getattr(self, key):
                recs.append(dict(outcome=r.outcome, method=labels[key], estimate=r.estimate, ci_low=r.ci_low,
                                 ci_high=r.ci_high, p_value=r.p_value,
                                 note=r.note if r.note.startswith("not estimable") or "too few" in r.note else ""))
        t = pd.DataFrame(recs)
        order = {o: i for i, o in enumerate(dict.fromkeys(t["outcome"]))}
        return t.sort_values("outcome", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def robustness(data: TrialData, n_perm: int = N_PERMUTATIONS, n_imputations: int = N_IMPUTATIONS,
               seed: int = SEED) -> Robustness:
    """Run the three robustness checks for every scale of the instrument."""
    scales = data.instrument.scale_names
    return Robustness(
        mi=[multiple_imputation(data, s, n_imputations=n_imputations, seed=seed) for s in scales],
        ri=[randomisation_inference(data, s, n_perm=n_perm, seed=seed) for s in scales],
        cr2=[cluster_robust(data, s) for s in scales],
    )
