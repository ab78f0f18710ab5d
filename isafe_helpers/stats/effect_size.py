"""Standardised effect size of a covariate-adjusted arm difference.

``g = beta / sqrt(s2_T)``: the model's treatment coefficient (the
covariate-adjusted difference between the arms) over the standard deviation
of the outcome, ``s2_T = s2_B + s2_W`` (between-team plus within-team
variance). Its 95% interval is the model's own interval for ``beta`` on the
same scale, ``[L, U] / sqrt(s2_T)``, so the interval of ``g`` and the model's
test of ``beta`` always agree (both exclude 0, or neither does). The
standardiser is treated as known: the REML variance components already
estimate the population variances, so no Hedges (2007) small-sample factor
and no separate variance formula are applied (that formula is for an
unadjusted difference and ignores the covariate adjustment). Which model
supplies ``s2_B`` and ``s2_W`` (the unconditional model for ``hedges_g_total``,
the primary model for the conditional variant) is the caller's choice; see
``methods.md``, "Effect size and its interval".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["StandardisedEffect", "standardised_effect"]


@dataclass(frozen=True)
class StandardisedEffect:
    """``g`` with the interval and SE of the model's ``beta`` divided by ``sd``."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    sd: float  # the standardiser sqrt(s2_B + s2_W)


def standardised_effect(
    beta: float, se: float, ci_low: float, ci_high: float, team_variance: float, residual_variance: float
) -> StandardisedEffect:
    """``beta``, its SE and its CI ``[ci_low, ci_high]`` divided by ``sqrt(team_variance + residual_variance)``.

    Parameters
    ----------
    beta, se, ci_low, ci_high : the model's treatment coefficient, its SE and
        95% CI (for the primary model: Kenward-Roger SE, t on KR df).
    team_variance, residual_variance : ``s2_B >= 0`` and ``s2_W >= 0``, with a
        positive sum.

    Returns
    -------
    StandardisedEffect

    Raises
    ------
    ValueError
        A negative variance or a zero total.

    >>> g = standardised_effect(0.3, 0.1, 0.1, 0.5, 0.05, 0.2)
    >>> round(g.estimate, 6), round(g.ci_low, 6), round(g.ci_high, 6), round(g.sd, 6)
    (0.6, 0.2, 1.0, 0.5)
    """
    s2b, s2w = float(team_variance), float(residual_variance)
    if not (s2b >= 0 and s2w >= 0 and s2b + s2w > 0 and math.isfinite(s2b + s2w)):
        raise ValueError(
            f"variances must be finite and non-negative with a positive total (got {team_variance}, "
            f"{residual_variance})"
        )
    sd = math.sqrt(s2b + s2w)
    lo, hi = float(ci_low) / sd, float(ci_high) / sd
    return StandardisedEffect(float(beta) / sd, float(se) / sd, min(lo, hi), max(lo, hi), sd)
