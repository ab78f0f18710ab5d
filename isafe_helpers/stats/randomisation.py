"""Randomisation inference for a cluster-randomised arm effect: allocations, the fast statistic, the test.

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

import numpy as np

from isafe_helpers.stats.sums import team_indicator


class _FastGLS:
    """GLS arm estimate at fixed ``theta`` for many allocations at once (module docstring)."""

    def __init__(self, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, G: int, theta: float):
        nj = np.bincount(codes, minlength=G).astype(float)
        s = 1.0 / np.sqrt(1.0 + theta * nj)  # t*_i = tau_j * s_j for arm constant in team j
        c = (1.0 - s) / nj
        ind = team_indicator(codes, G)
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


def allocations(strata, treated, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """0/1 allocation matrix (allocations x randomised teams), re-randomised within strata.

    ``strata`` labels each team's stratum (its LA) and ``treated`` (bool) its
    allocated arm. Each stratum keeps its number of treated teams, as the
    trial's stratified randomisation did. When the number of possible
    allocations is at most ``n_perm`` every allocation is enumerated
    (``exact`` True); otherwise ``n_perm`` independent seeded draws are returned.
    """
    strata = np.asarray(strata)
    treated = np.asarray(treated, bool)
    groups = [np.flatnonzero(strata == s) for s in sorted(set(strata.tolist()))]
    ks = [int(treated[g].sum()) for g in groups]
    total = math.prod(math.comb(len(g), k) for g, k in zip(groups, ks))
    M = len(strata)
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


def randomisation_test(
    y: np.ndarray,
    Z: np.ndarray,
    codes: np.ndarray,
    theta: float,
    tau_obs: np.ndarray,
    T: np.ndarray,
    exact: bool,
    scale: float,
) -> dict:
    """Randomisation p-value and test-inversion CI of the GLS arm estimate at fixed ``theta``.

    ``y``: outcomes; ``Z``: the covariates without arm (with the intercept);
    ``codes``: team of each row (0..G-1); ``tau_obs``: the observed arm of each
    team; ``T``: allocations x teams (:func:`allocations`, same team order);
    ``scale``: a first step for the interval search. The two-sided p-value is
    ``(1 + #{|b_perm| >= |b_obs|}) / (1 + n_perm)`` for seeded draws and
    ``#{|b_perm| >= |b_obs|} / n_alloc`` when every allocation is enumerated
    (the observed one among them). Returns ``estimate``, ``p_value``,
    ``ci_low``, ``ci_high`` and ``permuted`` (the statistic under each allocation).
    """
    fast = _FastGLS(y, Z, codes, len(tau_obs), theta)
    obs = float(fast.estimates(tau_obs[None, :])[0])
    perm_y, perm_t = fast.estimates(T, extra=fast.team_vector(tau_obs))

    def pval(delta: float) -> float:
        # outcome y - delta * t_obs: statistic b(y) - delta * b(t_obs), and observed obs - delta
        stat = perm_y - delta * perm_t
        tol = 1e-9 * max(1.0, abs(obs - delta))
        hits = np.sum(np.abs(stat) >= abs(obs - delta) - tol)
        return hits / len(T) if exact else (1 + hits) / (1 + len(T))

    lo, hi = _invert(pval, obs, max(scale, np.std(perm_y), 1e-8))
    return dict(estimate=obs, p_value=float(pval(0.0)), ci_low=lo, ci_high=hi, permuted=perm_y)
