"""Tests for isafe_helpers.stats.kenward_roger and MixedFit.kenward_roger().

Reference values come from lmerTest 3.1-3 / pbkrtest 0.5.2 on lme4 1.1-31 (see
tests/fixtures/kr/README.md); R is not needed to run these tests.

Tolerances (stated once, used below):
- RTOL_FIT = 1e-6: our REML fit, then KR at our estimates, against lmerTest's
  summary(ddf = "Kenward-Roger") / pbkrtest at R's (polished) estimates: SEs,
  df, t, p-values, the full adjusted covariance (entries scaled by
  sqrt(Phi_ii Phi_jj)) and the joint F tests.  The gap is the difference
  between the two sets of REML estimates (~1e-9) propagated through KR.
- RTOL_EXACT = 1e-9: our KR formulas evaluated at R's own variance components
  (so both sides evaluate the same function at the same point); what is left
  is rounding in R's and our linear algebra.
- Closed forms and the dense N x N transcription of pbkrtest: 1e-9.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from isafe_helpers.stats.kenward_roger import (
    KRResult,
    kenward_roger,
    kenward_roger_from_sums,
    kenward_roger_test,
    team_sums,
)
from isafe_helpers.stats.mixed import MixedFit, fit_formula_free, fit_random_intercept

FIX = Path(__file__).resolve().parent / "fixtures" / "kr"
LME4 = Path(__file__).resolve().parent / "fixtures" / "lme4"
DATASETS = ["main", "boundary", "small", "high_icc", "la07"]

RTOL_FIT = 1e-6
RTOL_EXACT = 1e-9
RTOL_CLOSED = 1e-9


def _data(name: str) -> pd.DataFrame:
    path = FIX / "data_la07.csv" if name == "la07" else LME4 / f"data_{name}.csv"
    return pd.read_csv(path, dtype={"team": str, "la": str})


def _covs(d: pd.DataFrame) -> list[str]:
    return ["arm", "baseline"] + (["la"] if d["la"].nunique() > 1 else [])


def _design(d: pd.DataFrame) -> np.ndarray:
    """The design fit_formula_free builds (intercept, arm, baseline, LA dummies)."""
    las = sorted(d["la"].unique())
    return np.column_stack(
        [np.ones(len(d)), d["arm"], d["baseline"]] + [(d["la"] == v).to_numpy(float) for v in las[1:]]
    )


@pytest.fixture(scope="module")
def fits() -> dict[str, MixedFit]:
    out = {}
    for name in DATASETS:
        d = _data(name)
        out[name] = fit_formula_free(d, "y", _covs(d), "team")
    return out


def _ref_kr(name: str) -> pd.DataFrame:
    ref = pd.read_csv(FIX / "ref_kr.csv")
    return ref[ref.dataset == name].reset_index(drop=True)


def _ref_vc(name: str) -> pd.Series:
    return pd.read_csv(FIX / "ref_varcomp.csv").set_index("dataset").loc[name]


def _check_against_ref(kr: KRResult, ref: pd.DataFrame, rtol: float) -> None:
    np.testing.assert_allclose(kr.se_adj, ref.se, rtol=rtol)
    np.testing.assert_allclose(kr.df, ref.df, rtol=rtol)
    np.testing.assert_allclose(kr.t, ref.t, rtol=rtol)
    np.testing.assert_allclose(kr.p_value, ref.p_value, rtol=rtol)
    np.testing.assert_allclose(kr.se, ref.se_unadj, rtol=rtol)


# ---------------------------------------------------------------------------
# agreement with lmerTest / pbkrtest
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_lmertest_summary_kenward_roger(fits, name):
    """fit.kenward_roger() against summary(fit, ddf = "Kenward-Roger")."""
    ref = _ref_kr(name)
    fit = fits[name]
    assert fit.names == list(ref.term)
    kr = fit.kenward_roger()
    assert kr.names == fit.names
    np.testing.assert_allclose(kr.beta, ref.estimate, rtol=RTOL_FIT, atol=1e-9)
    _check_against_ref(kr, ref, RTOL_FIT)
    # the Satterthwaite columns of the same fixture are what MixedFit reports
    np.testing.assert_allclose(fit.df, ref.df_sat, rtol=1e-3)
    tidy = kr.tidy()
    np.testing.assert_allclose(tidy["p_value"], ref.p_value, rtol=RTOL_FIT)
    q = stats.t.ppf(0.975, ref.df)
    np.testing.assert_allclose(tidy["ci_low"], ref.estimate - q * ref.se, rtol=RTOL_FIT, atol=1e-9)


@pytest.mark.parametrize("name", DATASETS)
def test_formula_at_r_variance_components(name):
    """Our KR evaluated at R's variance components and estimates: the formulas alone."""
    d = _data(name)
    ref = _ref_kr(name)
    vc = _ref_vc(name)
    kr = kenward_roger(
        _design(d),
        d["team"].to_numpy(),
        vc.team_variance,
        vc.residual_variance,
        beta=ref.estimate.to_numpy(),
        names=list(ref.term),
    )
    _check_against_ref(kr, ref, RTOL_EXACT)


@pytest.mark.parametrize("name", DATASETS)
def test_vcov_adj_matrix(fits, name):
    """The whole KR-adjusted covariance against pbkrtest::vcovAdj (and vcov against lme4's)."""
    va = pd.read_csv(FIX / "ref_vcovadj.csv")
    va = va[va.dataset == name]
    fit = fits[name]
    p = len(fit.names)
    ix = {t: k for k, t in enumerate(fit.names)}
    ref_a, ref_0 = np.empty((p, p)), np.empty((p, p))
    for r in va.itertuples():
        ref_a[ix[r.row], ix[r.col]] = r.vcov_adj
        ref_0[ix[r.row], ix[r.col]] = r.vcov
    kr = fit.kenward_roger()
    scale = np.sqrt(np.outer(np.diag(ref_0), np.diag(ref_0)))
    assert np.max(np.abs(kr.cov_beta_adj - ref_a) / scale) < RTOL_FIT
    assert np.max(np.abs(kr.cov_beta - ref_0) / scale) < RTOL_FIT
    np.testing.assert_allclose(kr.cov_beta, fit.cov_beta, rtol=1e-9, atol=1e-14)
    # at R's variance components
    d = _data(name)
    vc = _ref_vc(name)
    kr_r = kenward_roger(_design(d), d["team"].to_numpy(), vc.team_variance, vc.residual_variance)
    assert np.max(np.abs(kr_r.cov_beta_adj - ref_a) / scale) < RTOL_EXACT


def _contrasts():
    ct = pd.read_csv(FIX / "ref_contrasts.csv")
    rows = pd.read_csv(FIX / "ref_contrast_rows.csv")
    return ct, rows


@pytest.mark.parametrize("contrast", list(_contrasts()[0].contrast))
def test_joint_contrasts(fits, contrast):
    """KR F tests of L b = rhs against pbkrtest::KRmodcomp and lmerTest::contest."""
    ct, rows = _contrasts()
    ref = ct.set_index("contrast").loc[contrast]
    fit = fits[ref.dataset]
    r = rows[rows.contrast == contrast]
    q = int(r["row"].max()) + 1
    L = np.zeros((q, len(fit.names)))
    rhs = np.zeros(q)
    for x in r.itertuples():
        L[x.row, fit.names.index(x.term)] = x.weight
        rhs[x.row] = x.rhs
    res = fit.kenward_roger().test(L, rhs=rhs)
    assert res.ndf == ref.ndf
    for ours, theirs in [
        (res.f_stat, ref.f_stat),
        (res.ddf, ref.ddf),
        (res.scaling, ref.scaling),
        (res.p_value, ref.p_value),
        (res.f_unscaled, ref.f_unscaled),
        (res.p_value_unscaled, ref.p_value_unscaled),
        (res.a1, ref.a1),
        (res.a2, ref.a2),
        (res.rho, ref.rho),
        (res.f_stat, ref.contest_f),
        (res.ddf, ref.contest_ddf),
        (res.p_value, ref.contest_p),
    ]:
        np.testing.assert_allclose(ours, theirs, rtol=RTOL_FIT)
    # the same with the functional interface and R's variance components
    d = _data(ref.dataset)
    vc = _ref_vc(ref.dataset)
    kr_r = kenward_roger(
        _design(d),
        d["team"].to_numpy(),
        vc.team_variance,
        vc.residual_variance,
        beta=_ref_kr(ref.dataset).estimate.to_numpy(),
    )
    res_r = kenward_roger_test(kr_r, L, rhs=rhs)
    np.testing.assert_allclose(
        [res_r.f_stat, res_r.ddf, res_r.scaling, res_r.p_value],
        [ref.f_stat, ref.ddf, ref.scaling, ref.p_value],
        rtol=RTOL_EXACT,
    )


def test_single_row_contrast_is_the_t_test(fits):
    """q = 1: the scaling is 1, F = t^2 and ddf = the coefficient's KR df."""
    fit = fits["small"]
    kr = fit.kenward_roger()
    for k in range(len(fit.names)):
        res = kr.test(np.eye(len(fit.names))[k])
        assert res.ndf == 1
        np.testing.assert_allclose(res.scaling, 1.0, rtol=1e-12)
        np.testing.assert_allclose(res.f_stat, kr.t[k] ** 2, rtol=1e-10)
        np.testing.assert_allclose(res.ddf, kr.df[k], rtol=1e-10)
        np.testing.assert_allclose(res.p_value, kr.p_value[k], rtol=1e-8)


# ---------------------------------------------------------------------------
# the boundary and the reviewer's single-LA case
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["boundary", "la07"])
def test_boundary_fits(fits, name):
    """s2_B = 0 exactly: KR is evaluated there unchanged (as pbkrtest), so its df stay
    finite and small, while Satterthwaite's (lmerTest) jump to N - p."""
    fit = fits[name]
    assert fit.team_variance == 0.0 and _ref_vc(name).team_variance == 0.0
    p = len(fit.names)
    np.testing.assert_allclose(fit.df, fit.n - p, rtol=1e-9)
    kr = fit.kenward_roger()
    assert np.all(np.isfinite(kr.df)) and np.all(kr.df > 0)
    k = fit.names.index("arm")
    assert kr.df[k] < 0.2 * (fit.n - p)
    assert kr.se_adj[k] > kr.se[k]


def test_reviewer_la07_case(fits):
    """LA07, strategy_effectiveness, bundled synthetic data: Satterthwaite p = 0.018 on
    57 df; Kenward-Roger p = 0.056 on 5.75 df (numbers quoted in the review)."""
    fit = fits["la07"]
    assert (fit.n, fit.n_groups) == (60, 9)
    k = fit.names.index("arm")
    sat = fit.tidy().iloc[k]
    assert round(sat.p_value, 3) == 0.018 and round(sat.df) == 57
    kr = fit.kenward_roger()
    assert round(kr.p_value[k], 3) == 0.056
    assert round(kr.df[k], 2) == 5.75
    ref = _ref_kr("la07").set_index("term").loc["arm"]
    np.testing.assert_allclose([kr.df[k], kr.p_value[k]], [ref.df, ref.p_value], rtol=RTOL_FIT)
    np.testing.assert_allclose([fit.df[k], sat.p_value], [ref.df_sat, ref.p_sat], rtol=RTOL_FIT)


# ---------------------------------------------------------------------------
# hand-checkable cases and independent implementations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("s2b,s2w", [(0.3, 1.0), (0.0, 2.0), (5.0, 0.1)])
def test_balanced_closed_form(s2b, s2w):
    """Balanced one-way design, G teams of n, half per arm, X = [1, arm]: the REML
    information of (s2_W + n s2_B, s2_W) is diagonal with (G - 2) / (2 lambda^2), so
    KR df = G - 2 exactly for both coefficients and for the joint test, Phi_A = Phi
    (b does not depend on the variance components), the F scaling is 1 and
    var(arm) = 4 (s2_W + n s2_B) / (n G)."""
    G, n = 10, 6
    codes = np.repeat(np.arange(G), n)
    arm = (np.arange(G) % 2)[codes].astype(float)
    X = np.column_stack([np.ones(G * n), arm])
    kr = kenward_roger(X, codes, s2b, s2w, beta=[1.0, 0.5])
    np.testing.assert_allclose(kr.df, G - 2, rtol=RTOL_CLOSED)
    np.testing.assert_allclose(kr.cov_beta_adj, kr.cov_beta, rtol=RTOL_CLOSED)
    np.testing.assert_allclose(kr.cov_beta[1, 1], 4 * (s2w + n * s2b) / (n * G), rtol=RTOL_CLOSED)
    joint = kr.test(np.eye(2))
    np.testing.assert_allclose([joint.ddf, joint.scaling], [G - 2, 1.0], rtol=RTOL_CLOSED)


def test_balanced_fit_matches_anova():
    """The same with a fitted model: the KR t test of arm is the exact t test on the team
    means (G - 2 df), as long as the REML team variance is interior."""
    rng = np.random.default_rng(11)
    G, n = 12, 5
    codes = np.repeat(np.arange(G), n)
    arm_t = (np.arange(G) % 2).astype(float)
    y = 0.4 * arm_t[codes] + rng.normal(0, 0.7, G)[codes] + rng.normal(0, 1.0, G * n)
    X = np.column_stack([np.ones(G * n), arm_t[codes]])
    fit = fit_random_intercept(y, X, codes)
    assert fit.team_variance > 0
    kr = fit.kenward_roger()
    means = np.bincount(codes, weights=y) / n
    res = stats.ttest_ind(means[arm_t == 1], means[arm_t == 0])
    np.testing.assert_allclose(kr.df[1], G - 2, rtol=RTOL_CLOSED)
    np.testing.assert_allclose(kr.t[1], res.statistic, rtol=1e-8)
    np.testing.assert_allclose(kr.p_value[1], res.pvalue, rtol=1e-8)


def _dense_pbkrtest(X, groups, s2b, s2w):
    """Line-by-line transcription of pbkrtest 0.5.2 vcovAdj_internal and Lb_ddf (q = 1)
    with N x N matrices (small data only)."""
    N, p = X.shape
    Z = (groups[:, None] == np.unique(groups)[None, :]).astype(float)
    Gs = [Z @ Z.T, np.eye(N)]
    Si = np.linalg.inv(s2b * Gs[0] + s2w * Gs[1])
    Phi = np.linalg.inv(X.T @ Si @ X)
    TT = Si @ X
    HH = [g @ Si for g in Gs]
    OO = [h @ X for h in HH]
    PP = [-(o.T @ TT) for o in OO]
    QQ = {(r, s): OO[r].T @ Si @ OO[s] for r in range(2) for s in range(2)}
    K = np.array([[np.sum(HH[r].T * HH[s]) for s in range(2)] for r in range(2)])
    IE2 = np.array(
        [
            [K[i, j] - 2 * np.sum(Phi * QQ[i, j]) + np.sum((Phi @ PP[i]) * (PP[j] @ Phi)) for j in range(2)]
            for i in range(2)
        ]
    )
    W = 2 * np.linalg.inv(IE2)
    U = sum(W[i, j] * (QQ[i, j] - PP[i] @ Phi @ PP[j]) for i in range(2) for j in range(2))
    PhiA = Phi + 2 * Phi @ U @ Phi
    df = []
    for k in range(p):
        th = np.zeros((p, p))
        th[k, k] = 1 / Phi[k, k]
        u = [th @ Phi @ PP[i] @ Phi for i in range(2)]
        A1 = sum(W[i, j] * np.trace(u[i]) * np.trace(u[j]) for i in range(2) for j in range(2))
        A2 = sum(W[i, j] * np.sum(u[i] * u[j].T) for i in range(2) for j in range(2))
        B = (A1 + 6 * A2) / 2
        g = (2 * A1 - 5 * A2) / (3 * A2)
        c1, c2, c3 = g / (3 + 2 * (1 - g)), (1 - g) / (3 + 2 * (1 - g)), (3 - g) / (3 + 2 * (1 - g))
        rho = ((1 - A2) / (1 - c2 * B)) ** 2 * (1 + c1 * B) / (1 - c3 * B)
        df.append(4 + 3 / (rho - 1))
    return Phi, PhiA, np.array(df)


@pytest.mark.parametrize("s2b", [0.0, 0.05, 0.4, 3.0])
def test_dense_transcription(s2b):
    """Per-team sums against the N x N computation, unbalanced teams, boundary included."""
    d = _data("small")
    X = _design(d)
    g = d["team"].to_numpy()
    Phi, PhiA, df = _dense_pbkrtest(X, g, s2b, 0.7)
    kr = kenward_roger(X, g, s2b, 0.7)
    scale = np.sqrt(np.outer(np.diag(Phi), np.diag(Phi)))
    assert np.max(np.abs(kr.cov_beta - Phi) / scale) < RTOL_CLOSED
    assert np.max(np.abs(kr.cov_beta_adj - PhiA) / scale) < RTOL_CLOSED
    np.testing.assert_allclose(kr.df, df, rtol=RTOL_CLOSED)


def test_singleton_teams_use_the_generalised_inverse():
    """Every team of size 1: Z Z' = I, so only s2_B + s2_W is identified and IE2 is
    singular; pbkrtest then uses a generalised inverse, which gives ordinary least
    squares: df = N - p exactly and Phi_A = Phi."""
    rng = np.random.default_rng(5)
    N = 30
    X = np.column_stack([np.ones(N), rng.integers(0, 2, N), rng.normal(size=N)])
    kr = kenward_roger(X, np.arange(N), 0.3, 0.7)
    assert kr.ie2_min_abs_eig <= 1e-10
    np.testing.assert_allclose(kr.df, N - 3, rtol=RTOL_CLOSED)
    np.testing.assert_allclose(kr.cov_beta_adj, kr.cov_beta, rtol=RTOL_CLOSED)
    np.testing.assert_allclose(kr.cov_beta, np.linalg.inv(X.T @ X), rtol=RTOL_CLOSED)


def test_invariances():
    """Rescaling y (variance components by c^2) leaves the df and the joint test unchanged
    and scales the SEs by c; the team order and a rank-deficient L do not matter."""
    d = _data("main")
    X = _design(d)
    g = d["team"].to_numpy()
    kr = kenward_roger(X, g, 0.1, 1.0, beta=np.arange(X.shape[1], dtype=float))
    kr9 = kenward_roger(X, g, 0.9, 9.0, beta=3 * np.arange(X.shape[1], dtype=float))
    np.testing.assert_allclose(kr9.df, kr.df, rtol=1e-10)
    np.testing.assert_allclose(kr9.se_adj, 3 * kr.se_adj, rtol=1e-10)
    perm = np.random.default_rng(0).permutation(len(g))
    krp = kenward_roger(X[perm], np.char.add("z", g[perm].astype(str)), 0.1, 1.0)
    np.testing.assert_allclose(krp.cov_beta_adj, kr.cov_beta_adj, rtol=1e-9, atol=1e-15)
    L = np.zeros((2, X.shape[1]))
    L[0, 1] = L[1, 2] = 1
    a = kr.test(L)
    b = kr.test(np.vstack([L, L[0] - 2 * L[1]]))
    assert b.ndf == 2
    np.testing.assert_allclose([b.f_stat, b.ddf, b.scaling], [a.f_stat, a.ddf, a.scaling], rtol=1e-9)
    c = kr.test(L, rhs=[1.0, 2.0])  # the hypothesis holds exactly for these beta
    assert c.f_stat == pytest.approx(0.0, abs=1e-20)


def test_input_checks():
    X = np.column_stack([np.ones(6), [0, 0, 1, 1, 0, 1.0]])
    g = np.array([1, 1, 2, 2, 3, 3])
    with pytest.raises(ValueError):
        kenward_roger(X, g, -0.1, 1.0)
    with pytest.raises(ValueError):
        kenward_roger(X, g, 0.1, 0.0)
    with pytest.raises(ValueError):
        kenward_roger(X, g[:5], 0.1, 1.0)
    kr = kenward_roger(X, g, 0.1, 1.0)
    with pytest.raises(ValueError):
        kr.test([1.0, 0.0])  # no beta
    with pytest.raises(ValueError):
        kr.test([1.0, 0.0, 0.0], beta=[0.0, 1.0])


# ---------------------------------------------------------------------------
# the MixedFit hook
# ---------------------------------------------------------------------------


def test_hook_is_lazy_cached_and_invisible(fits):
    fit = fits["main"]
    assert "_kr" not in repr(fit)
    a = fit.kenward_roger()
    assert fit.kenward_roger() is a
    # same result from the team sums alone, and from X itself
    d = _data("main")
    b = kenward_roger(_design(d), d["team"].to_numpy(), fit.team_variance, fit.residual_variance, beta=fit.beta)
    np.testing.assert_allclose(a.cov_beta_adj, b.cov_beta_adj, rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(a.df, b.df, rtol=1e-10)
    # equality ignores the cache; a replaced fit carries no stale KR result
    again = fit_formula_free(d, "y", _covs(d), "team")
    assert dataclasses.replace(fit).names == fit.names
    with pytest.raises(ValueError):
        dataclasses.replace(fit, team_variance=2 * fit.team_variance).kenward_roger()
    assert "result" not in again._kr
    np.testing.assert_array_equal(again.beta, fit.beta)


# ---------------------------------------------------------------------------
# scale and a known-truth check
# ---------------------------------------------------------------------------


def test_national_scale_without_big_matrices():
    """G = 1500 teams, N ~ 11,500, p = 152 (intercept, arm, baseline, 149 LA dummies):
    finite results with a peak allocation far below one N x N matrix (~1 GB)."""
    rng = np.random.default_rng(3)
    G = 1500
    nj = rng.integers(4, 12, G)
    codes = np.repeat(np.arange(G), nj)
    N = int(nj.sum())
    la = np.arange(G) // 10
    X = np.column_stack(
        [np.ones(N), np.repeat(np.arange(G) % 2, nj), rng.normal(size=N)]
        + [(la[codes] == k).astype(float) for k in range(1, 150)]
    )
    assert X.shape[1] == 152
    tracemalloc.start()
    try:
        sums = team_sums(X, codes)
        kr = kenward_roger_from_sums(sums, 0.05, 0.9, beta=np.zeros(152))
        joint = kr.test(np.eye(152)[3:])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * N * N * 8
    assert np.all(np.isfinite(kr.cov_beta_adj)) and np.all(np.isfinite(kr.df))
    assert np.all(kr.se_adj >= kr.se * (1 - 1e-12))
    assert joint.ndf == 149 and np.isfinite(joint.ddf) and np.isfinite(joint.p_value)


def test_coverage_with_few_teams():
    """Known truth, 8 teams of 3-10 (4 per arm), ICC ~ 0.09: the 95% KR interval for the
    arm effect covers about 95% (KR is a little conservative here), and in the fits that
    hit s2_B = 0 it covers clearly more often than the Satterthwaite interval on N - p df."""
    rng = np.random.default_rng(2024)
    G, nsim, truth = 8, 400, 0.5
    hit_kr = hit_sat = n0 = hit_kr0 = hit_sat0 = 0
    for _ in range(nsim):
        nj = rng.integers(3, 11, G)
        arm = np.zeros(G)
        arm[rng.permutation(G)[: G // 2]] = 1
        codes = np.repeat(np.arange(G), nj)
        N = int(nj.sum())
        base = rng.normal(size=N)
        y = 1 + truth * arm[codes] + 0.5 * base + rng.normal(0, np.sqrt(0.1), G)[codes] + rng.normal(size=N)
        fit = fit_random_intercept(y, np.column_stack([np.ones(N), arm[codes], base]), codes)
        kr = fit.kenward_roger()
        err = abs(fit.beta[1] - truth)
        in_kr = err <= stats.t.ppf(0.975, kr.df[1]) * kr.se_adj[1]
        in_sat = err <= stats.t.ppf(0.975, fit.df[1]) * fit.se[1]
        hit_kr += in_kr
        hit_sat += in_sat
        if fit.team_variance == 0:
            n0 += 1
            hit_kr0 += in_kr
            hit_sat0 += in_sat
    assert 0.93 <= hit_kr / nsim <= 0.99
    assert n0 >= 50
    assert hit_kr0 / n0 > hit_sat0 / n0 + 0.03
