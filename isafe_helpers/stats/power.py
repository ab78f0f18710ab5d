"""Minimum detectable effect size (MDES) of a two-level cluster randomised design.

The two-level design of the methods page (teams randomised, staff in teams)::

    MDES = M * sqrt( rho (1 - R2_B) / (P (1 - P) J) + (1 - rho)(1 - R2_W) / (P (1 - P) J n) )
    M    = t(1 - alpha/2; df) + t(power; df),   df = J - 2 - g

with ``J`` teams, ``n`` staff per team, ``P`` the share of teams treated,
``rho`` the ICC, ``R2_B`` and ``R2_W`` the shares of the between-team and
within-team variance explained by the covariates, and ``g`` the number of
covariates (as PowerUp!'s ``CRA2_2``, Dong and Maynard 2013). At 80% power
and 5% two-sided ``M`` tends to 2.80 as ``df`` grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05


POWER = 0.80


@dataclass(frozen=True)
class MDES:
    """One MDES with everything it rests on."""

    mdes: float
    multiplier: float
    df: int
    teams: float
    team_size: float
    p_treated: float
    icc: float
    r2_between: float
    r2_within: float


def mdes(
    teams: float,
    team_size: float,
    icc: float,
    r2_between: float = 0.0,
    r2_within: float = 0.0,
    p_treated: float = 0.5,
    covariates: int = 1,
    alpha: float = ALPHA,
    power: float = POWER,
) -> MDES:
    """MDES of a two-level cluster randomised design (module docstring; ``methods.md``).

    Two-sided test at level ``alpha``; ``M = t(1 - alpha/2; df) + t(power; df)``
    with ``df = teams - 2 - covariates``.

    >>> round(mdes(40, 20, 0.1, p_treated=0.5, covariates=0).mdes, 4)
    0.3463
    """
    df = int(round(teams)) - 2 - int(covariates)
    if df < 1:
        raise ValueError(f"MDES needs teams - 2 - covariates >= 1 degrees of freedom (got {df})")
    for name, v in (("icc", icc), ("r2_between", r2_between), ("r2_within", r2_within)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    if not 0.0 < p_treated < 1.0 or team_size <= 0:
        raise ValueError("p_treated must be in (0, 1) and team_size positive")
    m = float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df))
    pq = p_treated * (1 - p_treated)
    var = icc * (1 - r2_between) / (pq * teams) + (1 - icc) * (1 - r2_within) / (pq * teams * team_size)
    return MDES(
        m * float(np.sqrt(var)),
        m,
        df,
        float(teams),
        float(team_size),
        float(p_treated),
        float(icc),
        float(r2_between),
        float(r2_within),
    )


def harmonic_mean(sizes) -> float:
    """Harmonic mean of positive team sizes.

    >>> harmonic_mean([5, 10, 20])
    8.571428571428571
    """
    s = np.asarray(sizes, float)
    return float(len(s) / np.sum(1.0 / s))
