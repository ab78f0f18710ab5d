"""Standardised effect size for a two-arm cluster randomised trial.

Implements the total-variance effect size ``g_T`` with the clustering
adjustment for unequal cluster (team) sizes of Hedges (2007), as written in
``methods.md`` ("Effect size for a cluster randomised trial (Hedges 2007)").
The eefAnalytics R package (``g.total`` used by ``crtFREQ``) computes the same
quantity.

Reference: Hedges, L. V. (2007). Effect sizes in cluster-randomized designs.
Journal of Educational and Behavioral Statistics, 32(4), 341-370.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["HedgesG", "hedges_g_total"]


@dataclass(frozen=True)
class HedgesG:
    """Effect size ``g_T``, its standard error and 95% confidence interval."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float


def _sizes(x, arm: str) -> np.ndarray:
    n = np.asarray(x, dtype=float).reshape(-1)
    if n.size < 2:
        raise ValueError(f"{arm} arm needs at least two teams (got {n.size})")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"{arm} team sizes must be positive and finite")
    return n


def hedges_g_total(
    beta: float, team_variance: float, residual_variance: float, sizes_treatment, sizes_control
) -> HedgesG:
    r"""Hedges' (2007) ``g_T`` for a cluster randomised trial with unequal team sizes.

    Parameters
    ----------
    beta : the treatment coefficient (difference between arms) from the model.
    team_variance, residual_variance : ``s2_B`` and ``s2_W`` (``methods.md`` says
        which model they come from; this function just uses them).
    sizes_treatment, sizes_control : the analysed sizes ``n_j`` of each arm's teams.

    Formula (``methods.md``; ``a`` in {T, C}; ``N_a = sum n_j``, ``m_a`` teams,
    ``S2_a = sum n_j^2``, ``S3_a = sum n_j^3`` over the arm's teams)::

        s2_T = s2_B + s2_W,  rho = s2_B / s2_T,  N = N_T + N_C
        nU_a = (N_a^2 - S2_a) / (N_a (m_a - 1))
        g_T  = (beta / sqrt(s2_T))
               * sqrt(1 - rho ((N - nU_T m_T - nU_C m_C) + nU_T + nU_C - 2) / (N - 2))
        nS   = N_C S2_T / (N_T N) + N_T S2_C / (N_C N)
        B    = nU_T (m_T - 1) + nU_C (m_C - 1)
        A    = sum_a (N_a^2 S2_a + S2_a^2 - 2 N_a S3_a) / N_a^2
        Var(g_T) = (N / (N_T N_C)) (1 + (nS - 1) rho)
                   + g_T^2 ((N - 2)(1 - rho)^2 + A rho^2 + 2 B rho (1 - rho))
                     / (2 (N - 2)((N - 2) - rho (N - 2 - B)))
        95% CI: g_T +/- 1.96 sqrt(Var(g_T))

    With equal team sizes ``n`` this reduces to Hedges' (2007) equal-size
    expressions: ``g_T = (beta/s_T) sqrt(1 - 2(n-1) rho / (N-2))``.  No further
    small-sample correction is applied.

    References: Hedges (2007), J. Educ. Behav. Stat. 32(4), 341-370;
    eefAnalytics ``g.total``.
    """
    nT = _sizes(sizes_treatment, "treatment")
    nC = _sizes(sizes_control, "control")
    s2b = float(team_variance)
    s2w = float(residual_variance)
    if not (s2b >= 0 and s2w >= 0 and s2b + s2w > 0):
        raise ValueError("variances must be non-negative with a positive total")
    s2t = s2b + s2w
    rho = s2b / s2t

    NT, NC = float(nT.sum()), float(nC.sum())
    N = NT + NC
    mT, mC = float(nT.size), float(nC.size)
    S2T, S2C = float(np.sum(nT**2)), float(np.sum(nC**2))
    S3T, S3C = float(np.sum(nT**3)), float(np.sum(nC**3))
    if N <= 2:
        raise ValueError("need more than two participants in total")

    nUT = (NT**2 - S2T) / (NT * (mT - 1.0))
    nUC = (NC**2 - S2C) / (NC * (mC - 1.0))
    g = (float(beta) / math.sqrt(s2t)) * math.sqrt(
        1.0 - rho * ((N - nUT * mT - nUC * mC) + nUT + nUC - 2.0) / (N - 2.0)
    )

    nS = NC * S2T / (NT * N) + NT * S2C / (NC * N)
    B = nUT * (mT - 1.0) + nUC * (mC - 1.0)
    A = (NT**2 * S2T + S2T**2 - 2.0 * NT * S3T) / NT**2 + (NC**2 * S2C + S2C**2 - 2.0 * NC * S3C) / NC**2
    var = (N / (NT * NC)) * (1.0 + (nS - 1.0) * rho) + g**2 * (
        (N - 2.0) * (1.0 - rho) ** 2 + A * rho**2 + 2.0 * B * rho * (1.0 - rho)
    ) / (2.0 * (N - 2.0) * ((N - 2.0) - rho * (N - 2.0 - B)))
    se = math.sqrt(var)
    return HedgesG(estimate=g, se=se, ci_low=g - 1.96 * se, ci_high=g + 1.96 * se)
