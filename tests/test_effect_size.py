"""Tests for isafe_helpers.effect_size.hedges_g_total (Hedges 2007, methods.md)."""

from __future__ import annotations

import math

import pytest

from isafe_helpers.stats.effect_size import HedgesG, hedges_g_total


def test_hand_computed_case():
    # treatment teams of 2 and 3, control teams of 4, 1 and 3;
    # beta = 0.5, s2_B = 0.2, s2_W = 0.8  ->  s2_T = 1, rho = 0.2
    beta, s2b, s2w = 0.5, 0.2, 0.8
    res = hedges_g_total(beta, s2b, s2w, [2, 3], [4, 1, 3])

    s2t = 0.2 + 0.8
    rho = 0.2 / 1.0
    NT, NC, N = 5, 8, 13
    mT, mC = 2, 3
    S2T, S2C = 2**2 + 3**2, 4**2 + 1**2 + 3**2  # 13, 26
    S3T, S3C = 2**3 + 3**3, 4**3 + 1**3 + 3**3  # 35, 92
    nUT = (NT**2 - S2T) / (NT * (mT - 1))  # 12/5 = 2.4
    nUC = (NC**2 - S2C) / (NC * (mC - 1))  # 38/16 = 2.375
    assert nUT == pytest.approx(2.4) and nUC == pytest.approx(2.375)
    inner = (N - nUT * mT - nUC * mC) + nUT + nUC - 2  # 3.85
    assert inner == pytest.approx(3.85)
    g = (beta / math.sqrt(s2t)) * math.sqrt(1 - rho * inner / (N - 2))  # 0.5 sqrt(0.93)
    assert g == pytest.approx(0.5 * math.sqrt(0.93))
    nS = NC * S2T / (NT * N) + NT * S2C / (NC * N)  # 1.6 + 1.25 = 2.85
    assert nS == pytest.approx(2.85)
    B = nUT * (mT - 1) + nUC * (mC - 1)  # 7.15
    A = (NT**2 * S2T + S2T**2 - 2 * NT * S3T) / NT**2 + (
        NC**2 * S2C + S2C**2 - 2 * NC * S3C
    ) / NC**2  # 144/25 + 868/64 = 19.3225
    assert B == pytest.approx(7.15) and A == pytest.approx(19.3225)
    var = (N / (NT * NC)) * (1 + (nS - 1) * rho) + g**2 * (
        (N - 2) * (1 - rho) ** 2 + A * rho**2 + 2 * B * rho * (1 - rho)
    ) / (2 * (N - 2) * ((N - 2) - rho * (N - 2 - B)))
    # = 0.325 * 1.37 + 0.2325 * 10.1009 / 225.06
    assert var == pytest.approx(0.44525 + 0.2325 * 10.1009 / 225.06, rel=1e-12)
    se = math.sqrt(var)

    assert isinstance(res, HedgesG)
    assert res.estimate == pytest.approx(g, rel=1e-14)
    assert res.se == pytest.approx(se, rel=1e-14)
    assert res.ci_low == pytest.approx(g - 1.96 * se, rel=1e-14)
    assert res.ci_high == pytest.approx(g + 1.96 * se, rel=1e-14)


def _hedges_equal(b, s2b, s2w, n, mT, mC):
    """Hedges (2007) expressions for equal team sizes n."""
    s2t = s2b + s2w
    rho = s2b / s2t
    NT, NC = mT * n, mC * n
    N = NT + NC
    g = (b / math.sqrt(s2t)) * math.sqrt(1 - 2 * (n - 1) * rho / (N - 2))
    v = ((NT + NC) / (NT * NC)) * (1 + (n - 1) * rho) + g**2 * (
        (N - 2) * (1 - rho) ** 2 + n * (N - 2 * n) * rho**2 + 2 * (N - 2 * n) * rho * (1 - rho)
    ) / (2 * (N - 2) * ((N - 2) - 2 * (n - 1) * rho))
    return g, v


@pytest.mark.parametrize(
    "b,s2b,s2w,n,mT,mC",
    [
        (0.3, 0.1, 0.9, 8, 31, 32),
        (-0.25, 0.05, 1.2, 5, 10, 12),
        (1.0, 2.0, 0.5, 3, 2, 2),
        (0.2, 0.0, 1.0, 10, 4, 7),
        (0.4, 0.3, 0.0001, 20, 6, 3),
        (0.15, 0.12, 1.0, 1, 30, 30),
    ],
)
def test_reduces_to_equal_size_formulas(b, s2b, s2w, n, mT, mC):
    res = hedges_g_total(b, s2b, s2w, [n] * mT, [n] * mC)
    g, v = _hedges_equal(b, s2b, s2w, n, mT, mC)
    assert abs(res.estimate - g) <= 1e-12 * max(1.0, abs(g))
    assert abs(res.se**2 - v) <= 1e-12 * max(1.0, v)
    assert res.ci_low == pytest.approx(g - 1.96 * math.sqrt(v), rel=1e-12)


def test_no_clustering_is_standardised_difference():
    # rho = 0: g = b / s_T and Var = N/(N_T N_C) + g^2 / (2 (N - 2))
    res = hedges_g_total(0.4, 0.0, 4.0, [3, 5, 7], [2, 9])
    NT, NC, N = 15, 11, 26
    g = 0.4 / 2.0
    assert res.estimate == pytest.approx(g, rel=1e-14)
    assert res.se**2 == pytest.approx(N / (NT * NC) + g**2 / (2 * (N - 2)), rel=1e-13)


def test_sign_and_validation():
    pos = hedges_g_total(0.3, 0.1, 0.9, [4, 6, 8], [5, 5])
    neg = hedges_g_total(-0.3, 0.1, 0.9, [4, 6, 8], [5, 5])
    assert neg.estimate == pytest.approx(-pos.estimate) and neg.se == pytest.approx(pos.se)
    with pytest.raises(ValueError):
        hedges_g_total(0.3, 0.1, 0.9, [4], [5, 5])
    with pytest.raises(ValueError):
        hedges_g_total(0.3, 0.1, 0.9, [4, 0], [5, 5])
    with pytest.raises(ValueError):
        hedges_g_total(0.3, -0.1, 0.9, [4, 3], [5, 5])
