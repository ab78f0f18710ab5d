"""Kenward-Roger small-sample inference for the random-intercept linear mixed model.

Model and parameterisation
--------------------------
    y = X b + Z u + e,   u ~ N(0, s2_B I_G),   e ~ N(0, s2_W I_N)

(``Z`` the N x G team indicator), so that ``Sigma = s2_B G_1 + s2_W G_2`` with
``G_1 = Z Z'`` and ``G_2 = I``.  This is the *linear* parameterisation used by
pbkrtest (variance components ``(s2_B, s2_W)``, in that order): the
derivatives of ``Sigma`` are ``G_1`` and ``G_2`` and all second derivatives
vanish, so the ``R_ij`` terms of Kenward and Roger drop out.

Formulas (Kenward & Roger 1997, Biometrics 53:983-997; as implemented in
pbkrtest 0.5.2, ``vcovAdj_internal``, ``.KR_adjust`` and ``Lb_ddf``; Halekoh &
Hojsgaard 2014, J Stat Softw 59(9)).  With ``Phi = (X' Sigma^-1 X)^-1`` (the
conventional covariance of the REML/GLS estimate ``b``):

    P_i  = -X' Sigma^-1 G_i Sigma^-1 X
    Q_ij =  X' Sigma^-1 G_i Sigma^-1 G_j Sigma^-1 X
    IE2_ij = tr(Sigma^-1 G_i Sigma^-1 G_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j)
    W = 2 IE2^-1            (the inverse expected REML information of (s2_B, s2_W);
                             pbkrtest uses a generalised inverse when the smallest
                             absolute eigenvalue of IE2 is <= 1e-10)
    U = sum_ij W_ij (Q_ij - P_i Phi P_j)
    Phi_A = Phi + 2 Phi U Phi                         (KR-adjusted covariance of b)

For a hypothesis ``L b = r`` with ``L`` of full row rank ``q`` (a
rank-deficient ``L`` is replaced by an orthonormal basis of its row space,
with ``r`` mapped through ``b_H = L^+ r``, as pbkrtest does):

    Theta = L' (L Phi L')^-1 L
    A1 = sum_ij W_ij tr(Theta Phi P_i Phi) tr(Theta Phi P_j Phi)
    A2 = sum_ij W_ij tr(Theta Phi P_i Phi Theta Phi P_j Phi)
    B  = (A1 + 6 A2) / (2 q)
    g  = ((q + 1) A1 - (q + 4) A2) / ((q + 2) A2)
    c1 = g / (3q + 2(1 - g)),  c2 = (q - g) / (3q + 2(1 - g)),  c3 = (q + 2 - g) / (3q + 2(1 - g))
    E* = 1 / (1 - A2/q)
    V* = (2/q) (1 + c1 B) / ((1 - c2 B)^2 (1 - c3 B))
    rho = V* / (2 E*^2)
    m  = 4 + (q + 2) / (q rho - 1)                    (denominator df)
    lambda = m / (E* (m - 2)) = m (1 - A2/q) / (m - 2)  (F scaling; 1 if |m - 2| < 0.01)
    F_KR = lambda * (L b - r)' (L Phi_A L')^-1 (L b - r) / q  ~  F(q, m)

For one coefficient (``q = 1``) A1 = A2 = A, lambda = 1 and ``m = 2 / A``:
a Satterthwaite df with the expected information of ``(s2_B, s2_W)``; the
t statistic uses the KR-adjusted SE ``sqrt(Phi_A[k, k])``.  This is what
``lmerTest::summary(fit, ddf = "Kenward-Roger")`` reports.

Boundary.  pbkrtest treats ``s2_B = 0`` like any other value: ``Sigma =
s2_W I`` is still positive definite, and every formula above is evaluated
there unchanged (the expected information for ``s2_B`` stays positive, so the
df stay finite and small when there are few teams, unlike Satterthwaite's df
with lmerTest's observed-information Hessian, which jump to ``N - p``).  This
module does exactly the same.

Computation.  Every matrix above is of the form ``X' f(Sigma, Z Z') X``.  Per
team, ``Sigma_j`` has eigenvalue ``s2_W`` on the within-team space and
``lambda_j = s2_W + n_j s2_B`` on ``1``, and ``Z_j Z_j' = 1 1'`` has 0 and
``n_j``; so with ``W = sum_j (X_j - 1 xbar_j')'(X_j - 1 xbar_j')`` (within-team
cross products), ``s_j = X_j' 1`` (team sums) and ``c_j = 1 / lambda_j``:

    X' Sigma^-1 X = W / s2_W + sum_j c_j s_j s_j' / n_j
    P_1 = -sum_j c_j^2 s_j s_j'                 P_2 = -(W / s2_W^2 + sum_j c_j^2 s_j s_j' / n_j)
    Q_11 = sum_j n_j c_j^3 s_j s_j'             Q_12 = sum_j c_j^3 s_j s_j'
    Q_22 = W / s2_W^3 + sum_j c_j^3 s_j s_j' / n_j
    tr(Sigma^-1 G_1 Sigma^-1 G_1) = sum_j n_j^2 c_j^2,   tr(... G_1 ... G_2) = sum_j n_j c_j^2,
    tr(Sigma^-2) = (N - G) / s2_W^2 + sum_j c_j^2

(equivalently ``V_j^-1 = (I - a_j 1 1') / s2_W`` with ``a_j = s2_B / (s2_W +
n_j s2_B)``).  The team statistics cost ``O(N p^2)`` once, everything else
``O(G p^2 + p^3)``; no N x N or n_j x n_j matrix is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "TeamSums",
    "KRResult",
    "KRTest",
    "team_sums",
    "kenward_roger",
    "kenward_roger_from_sums",
    "kenward_roger_test",
]

# pbkrtest: use a generalised inverse of IE2 when min |eigenvalue| <= this
_IE2_EIG_TOL = 1e-10
# pbkrtest .KR_adjust: no F scaling when the denominator df is within this of 2
_SCALING_DF_TOL = 0.01


# ---------------------------------------------------------------------------
# sufficient statistics
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamSums:
    """Per-team sufficient statistics of the fixed-effect design ``X``.

    ``within`` (p, p): within-team cross products ``sum_j (X_j - 1 xbar_j')'(X_j - 1 xbar_j')``;
    ``sums`` (G, p): team sums ``X_j' 1``; ``sizes`` (G,): team sizes ``n_j``.
    """

    within: np.ndarray
    sums: np.ndarray
    sizes: np.ndarray

    @property
    def n(self) -> int:
        return int(round(float(np.sum(self.sizes))))

    @property
    def n_groups(self) -> int:
        return int(self.sizes.size)

    @property
    def p(self) -> int:
        return int(self.within.shape[0])


def team_sums(X, groups) -> TeamSums:
    """Team sums and within-team cross products of ``X`` (N, p) for group labels ``groups`` (N,).

    Labels may be any values ``numpy.unique`` can sort; teams are taken in
    sorted-label order (the order does not affect any KR quantity).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    groups = np.asarray(groups)
    if X.ndim != 2 or groups.shape != (X.shape[0],):
        raise ValueError("X must be (N, p) and groups must have one label per row of X")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite")
    _, codes = np.unique(groups, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    Xs = X[order]
    S = np.add.reduceat(Xs, starts, axis=0)  # (G, p) team sums
    n = counts.astype(float)
    Xc = Xs - np.repeat(S / n[:, None], counts, axis=0)
    W = Xc.T @ Xc
    return TeamSums(within=0.5 * (W + W.T), sums=S, sizes=n)


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KRTest:
    """Kenward-Roger F test of ``L b = rhs`` (as ``pbkrtest::KRmodcomp``).

    ``f_stat`` = ``scaling * f_unscaled`` is referred to F(``ndf``, ``ddf``)
    (``p_value``); ``f_unscaled`` is the Wald statistic with the KR-adjusted
    covariance divided by ``ndf`` (pbkrtest's ``FtestU``; ``p_value_unscaled``
    is its p on the same df); ``scaling`` is lambda.  ``a1``, ``a2``, ``rho``
    are the intermediate quantities of Kenward & Roger (1997).
    """

    f_stat: float
    ndf: int
    ddf: float
    scaling: float
    p_value: float
    f_unscaled: float
    p_value_unscaled: float
    a1: float
    a2: float
    rho: float


@dataclass(frozen=True, eq=False)
class KRResult:
    """Kenward-Roger adjusted covariance and per-coefficient df.

    Fields
    ------
    cov_beta : (p, p) conventional covariance ``Phi = (X' Sigma^-1 X)^-1``.
    cov_beta_adj : (p, p) KR-adjusted covariance ``Phi_A`` (pbkrtest ``vcovAdj``).
    se : conventional SEs ``sqrt(diag(Phi))``.
    se_adj : KR-adjusted SEs ``sqrt(diag(Phi_A))``.
    df : KR denominator df of each coefficient (as ``lmerTest`` summary, ddf = "Kenward-Roger").
    team_variance, residual_variance : the variance components KR was evaluated at.
    info_inv : (2, 2) ``W = 2 IE2^-1``, inverse expected REML information of (s2_B, s2_W).
    P : (2, p, p) the ``P_i`` matrices.
    ie2_min_abs_eig : smallest absolute eigenvalue of IE2 (pbkrtest's ``condi``).
    beta, names : optional estimates and names (given to the constructor); when
        ``beta`` is set, ``t`` and ``p_value`` are the KR t statistics and two-sided p.
    """

    cov_beta: np.ndarray
    cov_beta_adj: np.ndarray
    se: np.ndarray
    se_adj: np.ndarray
    df: np.ndarray
    team_variance: float
    residual_variance: float
    info_inv: np.ndarray
    P: np.ndarray
    ie2_min_abs_eig: float
    beta: np.ndarray | None = None
    names: list[str] | None = None

    @property
    def t(self) -> np.ndarray:
        if self.beta is None:
            raise ValueError("no estimates: pass beta to kenward_roger()")
        return np.asarray(self.beta, float) / self.se_adj

    @property
    def p_value(self) -> np.ndarray:
        return 2.0 * stats.t.sf(np.abs(self.t), self.df)

    def test(self, L, rhs=0.0, beta=None) -> KRTest:
        """KR F test of ``L b = rhs``; see :func:`kenward_roger_test`."""
        return kenward_roger_test(self, L, rhs=rhs, beta=beta)

    def tidy(self, level: float = 0.95):
        """One row per coefficient: estimate, KR SE, KR df, t, p and t-based CI (needs ``beta``)."""
        import pandas as pd  # local: the computation itself needs only numpy/scipy

        b = np.asarray(self.beta, float) if self.beta is not None else None
        if b is None:
            raise ValueError("no estimates: pass beta to kenward_roger()")
        q = stats.t.ppf(0.5 + level / 2.0, self.df)
        names = self.names if self.names is not None else [f"x{k}" for k in range(b.size)]
        return pd.DataFrame(
            {
                "term": list(names),
                "estimate": b,
                "se": self.se_adj,
                "df": self.df,
                "t": self.t,
                "p_value": self.p_value,
                "ci_low": b - q * self.se_adj,
                "ci_high": b + q * self.se_adj,
            }
        )


# ---------------------------------------------------------------------------
# the computation
# ---------------------------------------------------------------------------


def _kr_scalars(a1, a2, q):
    """Denominator df, F scaling and rho from A1, A2 (pbkrtest ``.KR_adjust`` / ``Lb_ddf``)."""
    a1 = np.asarray(a1, dtype=float)
    a2 = np.asarray(a2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        B = (a1 + 6.0 * a2) / (2.0 * q)
        g = ((q + 1.0) * a1 - (q + 4.0) * a2) / ((q + 2.0) * a2)
        den = 3.0 * q + 2.0 * (1.0 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2.0 - g) / den
        V0 = 1.0 + c1 * B
        V1 = 1.0 - c2 * B
        V2 = 1.0 - c3 * B
        V0 = np.where(np.abs(V0) < 1e-10, 0.0, V0)
        x = 1.0 - a2 / q
        ratio = np.where((np.abs(x) < 1e-14) & (np.abs(V1) < 1e-14), 1.0, x / V1)  # .divZero
        rho = ratio**2 * V0 / V2 / q
        ddf = 4.0 + (q + 2.0) / (q * rho - 1.0)
        scaling = np.where(np.abs(ddf - 2.0) < _SCALING_DF_TOL, 1.0, ddf * (1.0 - a2 / q) / (ddf - 2.0))
    return ddf, scaling, rho


def kenward_roger_from_sums(
    sums: TeamSums, team_variance: float, residual_variance: float, beta=None, names=None
) -> KRResult:
    """Kenward-Roger adjusted covariance and df from per-team statistics (see the module docstring).

    ``team_variance`` (s2_B >= 0) and ``residual_variance`` (s2_W > 0) are the
    REML estimates at which KR is evaluated.  Cost ``O(G p^2 + p^3)``.
    """
    s2b = float(team_variance)
    s2w = float(residual_variance)
    if not (np.isfinite(s2b) and np.isfinite(s2w)) or s2b < 0.0 or s2w <= 0.0:
        raise ValueError("need team_variance >= 0 and residual_variance > 0")
    Wx, S, n = sums.within, sums.sums, np.asarray(sums.sizes, dtype=float)
    N, G, p = float(n.sum()), n.size, Wx.shape[0]
    c = 1.0 / (s2w + n * s2b)  # between-team eigenvalue of Sigma_j^-1

    # sum_j w_j s_j s_j' / n_j for six weights w, in one product over the teams
    c2, c3 = c * c, c * c * c
    Sn = S / n[:, None]
    stacked = S.T @ np.hstack(
        [
            Sn * c[:, None],
            Sn * (c2 * n)[:, None],
            Sn * c2[:, None],
            Sn * (c3 * n * n)[:, None],
            Sn * (c3 * n)[:, None],
            Sn * c3[:, None],
        ]
    )
    O_c, O_c2n, O_c2, O_c3nn, O_c3n, O_c3 = np.split(stacked, 6, axis=1)

    info_b = Wx / s2w + O_c  # X' Sigma^-1 X
    info_b = 0.5 * (info_b + info_b.T)
    Lc = np.linalg.cholesky(info_b)
    Li = np.linalg.solve(Lc, np.eye(p))
    Phi = Li.T @ Li
    Phi = 0.5 * (Phi + Phi.T)

    P = np.stack([-O_c2n, -(Wx / s2w**2 + O_c2)])
    P = 0.5 * (P + np.transpose(P, (0, 2, 1)))
    Q = {(0, 0): O_c3nn, (0, 1): O_c3n, (1, 0): O_c3n, (1, 1): Wx / s2w**3 + O_c3}
    K = np.array([[np.sum(n * n * c2), np.sum(n * c2)], [np.sum(n * c2), (N - G) / s2w**2 + np.sum(c2)]])

    PhiP = [Phi @ P[0], Phi @ P[1]]  # Phi P_i
    IE2 = np.empty((2, 2))
    for i in range(2):
        for j in range(i, 2):
            IE2[i, j] = IE2[j, i] = K[i, j] - 2.0 * np.sum(Phi * Q[i, j]) + np.sum(PhiP[i] * PhiP[j].T)
    ev = np.linalg.eigvalsh(IE2)
    condi = float(np.min(np.abs(ev)))
    Wm = 2.0 * (np.linalg.inv(IE2) if condi > _IE2_EIG_TOL else np.linalg.pinv(IE2, rcond=np.sqrt(np.finfo(float).eps)))
    Wm = 0.5 * (Wm + Wm.T)

    U = np.zeros((p, p))
    for i in range(2):
        for j in range(2):
            U += Wm[i, j] * (Q[i, j] - P[i] @ PhiP[j])
    U = 0.5 * (U + U.T)
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    PhiA = 0.5 * (PhiA + PhiA.T)

    # single coefficients: L = e_k, q = 1 (lmerTest get_KR1D -> pbkrtest Lb_ddf)
    dphi = np.diag(Phi)
    gk = np.stack([np.einsum("ij,ji->i", PhiP[i], Phi) for i in range(2)])  # (2, p): diag(Phi P_i Phi)
    A = np.einsum("ik,ij,jk->k", gk, Wm, gk) / dphi**2
    df, _, _ = _kr_scalars(A, A, 1.0)

    if beta is not None:
        beta = np.asarray(beta, dtype=float).reshape(-1).copy()
        if beta.size != p:
            raise ValueError("beta must have one entry per column of X")
    if names is not None:
        names = [str(s) for s in names]
        if len(names) != p:
            raise ValueError("names must have one entry per column of X")
    return KRResult(
        cov_beta=Phi,
        cov_beta_adj=PhiA,
        se=np.sqrt(dphi),
        se_adj=np.sqrt(np.diag(PhiA)),
        df=np.asarray(df, dtype=float),
        team_variance=s2b,
        residual_variance=s2w,
        info_inv=Wm,
        P=P,
        ie2_min_abs_eig=condi,
        beta=beta,
        names=names,
    )


def kenward_roger(X, groups, team_variance: float, residual_variance: float, beta=None, names=None) -> KRResult:
    """Kenward-Roger adjusted covariance and per-coefficient df for ``y = X b + u_group + e``.

    Parameters
    ----------
    X : (N, p) fixed-effect design (as fitted, intercept included).
    groups : (N,) random-intercept group labels.
    team_variance, residual_variance : REML estimates of s2_B (>= 0) and s2_W (> 0).
    beta : optional (p,) REML estimates, for t statistics and p-values.
    names : optional p coefficient names.

    Returns a :class:`KRResult`: ``cov_beta_adj`` (Phi_A), ``se_adj``, ``df``
    and, with ``beta``, ``t`` and ``p_value``; ``result.test(L)`` gives the KR
    F test of a contrast matrix.  Formulas and references: module docstring.
    """
    return kenward_roger_from_sums(team_sums(X, groups), team_variance, residual_variance, beta=beta, names=names)


def _full_row_rank(L: np.ndarray) -> np.ndarray:
    """``L`` itself if of full row rank, else an orthonormal basis of its row space
    (pbkrtest ``force_full_rank``; every KR quantity depends on the row space only)."""
    rank = np.linalg.matrix_rank(L)
    if rank == 0:
        raise ValueError("L is zero")
    if rank == L.shape[0]:
        return L
    _, _, Vt = np.linalg.svd(L, full_matrices=False)
    return Vt[:rank]


def kenward_roger_test(kr: KRResult, L, rhs=0.0, beta=None) -> KRTest:
    """Kenward-Roger F test of ``L b = rhs`` (``L`` q x p, or a length-p vector for one row).

    As ``pbkrtest::KRmodcomp(fit, L)`` and ``lmerTest::contest(fit, L, ddf =
    "Kenward-Roger")`` (formulas in the module docstring).  ``beta`` defaults
    to ``kr.beta``.  ``rhs`` is a scalar or a length-q vector; it enters as
    ``b_H = L^+ rhs`` (as pbkrtest), so ``L b = rhs`` must be consistent.
    """
    b = kr.beta if beta is None else np.asarray(beta, dtype=float).reshape(-1)
    if b is None:
        raise ValueError("no estimates: pass beta")
    L = np.atleast_2d(np.asarray(L, dtype=float))
    p = kr.cov_beta.shape[0]
    if L.shape[1] != p or b.size != p:
        raise ValueError(f"L must have {p} columns and beta {p} entries")
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
    bH = np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else np.zeros(p)
    Lf = _full_row_rank(L)
    q = Lf.shape[0]
    Phi, PhiA, Wm = kr.cov_beta, kr.cov_beta_adj, kr.info_inv
    M = Lf @ Phi @ Lf.T
    Mi = np.linalg.inv(0.5 * (M + M.T))
    LPhi = Lf @ Phi
    # C_i = L Phi P_i Phi L'; tr(Theta Phi P_i Phi) = tr(M^-1 C_i)
    C = [LPhi @ kr.P[i] @ LPhi.T for i in range(2)]
    MC = [Mi @ Ci for Ci in C]
    tr = [np.trace(x) for x in MC]
    a1 = a2 = 0.0
    for i in range(2):
        for j in range(2):
            a1 += Wm[i, j] * tr[i] * tr[j]
            a2 += Wm[i, j] * np.sum(MC[i] * MC[j].T)
    ddf, scaling, rho = (float(v) for v in _kr_scalars(a1, a2, float(q)))
    d = Lf @ (b - bH)
    MA = Lf @ PhiA @ Lf.T
    wald = float(d @ np.linalg.solve(0.5 * (MA + MA.T), d))
    fu = wald / q
    f = scaling * fu
    return KRTest(
        f_stat=f,
        ndf=int(q),
        ddf=ddf,
        scaling=scaling,
        p_value=float(stats.f.sf(f, q, ddf)),
        f_unscaled=fu,
        p_value_unscaled=float(stats.f.sf(fu, q, ddf)),
        a1=float(a1),
        a2=float(a2),
        rho=rho,
    )
