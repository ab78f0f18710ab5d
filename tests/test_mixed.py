"""Tests for isafe_helpers.mixed (random-intercept LMM by exact profiled REML).

Reference values come from lme4 1.1-31 / lmerTest 3.1-3 (see
tests/fixtures/lme4/README.md); R is not needed to run these tests.

Tolerances (stated once, used below):
- lme4 fixtures: fixed effects and variance components rtol 1e-6 or atol 1e-8,
  REML criterion rtol 1e-9, SEs rtol 1e-5, Satterthwaite df rtol 1e-3.
- statsmodels MixedLM(reml=True): estimates and variance components rtol 1e-4
  (its optimiser stops earlier); its SEs come from the numerical Hessian of its
  profiled likelihood, not the conventional s2_W (X'V^-1X)^-1, so they are
  compared at rtol 5e-3, and the conventional SE is recomputed densely at
  statsmodels' estimates and compared at rtol 1e-4.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import isafe_helpers.stats.mixed as mixed
from isafe_helpers.stats.mixed import MixedFit, fit_formula_free, fit_random_intercept

FIX = Path(__file__).resolve().parent / "fixtures" / "lme4"
DATASETS = ["main", "boundary", "small", "high_icc"]
COVS = ["arm", "baseline", "la"]

RTOL_EST, ATOL_EST = 1e-6, 1e-8
RTOL_SE = 1e-5
RTOL_DF = 1e-3


def _ref():
    fixed = pd.read_csv(FIX / "ref_fixed.csv")
    vc = pd.read_csv(FIX / "ref_varcomp.csv").set_index("dataset")
    return fixed, vc


def _fit(name: str) -> MixedFit:
    d = pd.read_csv(FIX / f"data_{name}.csv", dtype={"team": str, "la": str})
    return fit_formula_free(d, "y", COVS, "team")


@pytest.fixture(scope="module")
def fits():
    return {name: _fit(name) for name in DATASETS}


# ---------------------------------------------------------------------------
# agreement with lme4 / lmerTest
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_lme4_fixed_effects(fits, name):
    fixed, _ = _ref()
    ref = fixed[fixed.dataset == name]
    fit = fits[name]
    assert fit.names == list(ref.term)
    np.testing.assert_allclose(fit.beta, ref.estimate, rtol=RTOL_EST, atol=ATOL_EST)
    np.testing.assert_allclose(fit.se, ref.se, rtol=RTOL_SE)
    np.testing.assert_allclose(fit.df, ref.df, rtol=RTOL_DF)
    tidy = fit.tidy()
    np.testing.assert_allclose(tidy["t"], ref.t, rtol=RTOL_SE)
    # straight lme4 optimiser output (no polishing of theta in R): same tolerances
    np.testing.assert_allclose(fit.beta, ref.estimate_optim, rtol=RTOL_EST, atol=ATOL_EST)
    np.testing.assert_allclose(fit.se, ref.se_optim, rtol=RTOL_SE)
    np.testing.assert_allclose(fit.df, ref.df_optim, rtol=RTOL_DF)


@pytest.mark.parametrize("name", DATASETS)
def test_lme4_variance_components(fits, name):
    _, vc = _ref()
    r = vc.loc[name]
    fit = fits[name]
    assert fit.n == r.n and fit.n_groups == r.n_groups
    assert fit.converged, fit.message
    np.testing.assert_allclose(fit.team_variance, r.team_variance, rtol=RTOL_EST, atol=ATOL_EST)
    np.testing.assert_allclose(fit.residual_variance, r.residual_variance, rtol=RTOL_EST, atol=ATOL_EST)
    np.testing.assert_allclose(fit.reml_criterion, r.reml_criterion, rtol=1e-9)
    np.testing.assert_allclose(fit.team_variance, r.team_variance_optim, rtol=RTOL_EST, atol=ATOL_EST)
    np.testing.assert_allclose(fit.residual_variance, r.residual_variance_optim, rtol=RTOL_EST, atol=ATOL_EST)
    icc = r.team_variance / (r.team_variance + r.residual_variance)
    np.testing.assert_allclose(fit.icc, icc, rtol=RTOL_EST, atol=ATOL_EST)


def test_boundary_case(fits):
    fit = fits["boundary"]
    assert fit.team_variance == 0.0
    assert fit.icc == 0.0
    assert fit.converged
    assert "boundary" in fit.message
    # at the boundary the Satterthwaite df is the residual df N - p (as lmerTest)
    np.testing.assert_allclose(fit.df, fit.n - len(fit.names), rtol=1e-9)


# ---------------------------------------------------------------------------
# independent dense implementation
# ---------------------------------------------------------------------------


def _dense_reml(y, X, groups, s2b, s2w):
    """-2 REML log-likelihood (lme4 constant) with the full N x N covariance."""
    N, p = X.shape
    Z = (groups[:, None] == np.unique(groups)[None, :]).astype(float)
    V = s2w * np.eye(N) + s2b * Z @ Z.T
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    b = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ b
    return (
        ((N - p) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + r @ Vi @ r),
        b,
        np.linalg.inv(XtViX),
    )


def test_dense_cross_check():
    d = pd.read_csv(FIX / "data_small.csv", dtype={"team": str, "la": str})
    fit = fit_formula_free(d, "y", COVS, "team")
    las = sorted(d.la.unique())
    X = np.column_stack([np.ones(len(d)), d.arm, d.baseline] + [(d.la == v).to_numpy(float) for v in las[1:]])
    y = d.y.to_numpy()
    g = d.team.to_numpy()
    crit, b, cov = _dense_reml(y, X, g, fit.team_variance, fit.residual_variance)
    np.testing.assert_allclose(fit.reml_criterion, crit, rtol=1e-11)
    np.testing.assert_allclose(fit.beta, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.cov_beta, cov, rtol=1e-8, atol=1e-14)
    # it is a minimum of the dense criterion over (s2_B, s2_W)
    for db, dw in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        c2, _, _ = _dense_reml(y, X, g, fit.team_variance * (1 + db), fit.residual_variance * (1 + dw))
        assert c2 > crit


def test_analytic_derivatives():
    d = pd.read_csv(FIX / "data_main.csv", dtype={"team": str, "la": str})
    fit = fit_formula_free(d, "y", COVS, "team")
    las = sorted(d.la.unique())
    X = np.column_stack([np.ones(len(d)), d.arm, d.baseline] + [(d.la == v).to_numpy(float) for v in las[1:]])
    codes = pd.factorize(d.team)[0]
    m = mixed._model(d.y.to_numpy(), X, codes, codes.max() + 1)

    def details(th):
        return {k: v[0] for k, v in m.details(np.array([th])).items() if k in ("f", "f1", "f2", "Q1", "Q2")}

    def crit(th):
        return m.crit_many(np.array([[th]]))[0, 0]

    for th in [0.0, 0.02, 0.3, 5.0]:
        h = 1e-5 * max(th, 0.01)
        det = details(th)
        f1 = (crit(th + h) - crit(th - h)) / (2 * h)
        f2 = (details(th + h)["f1"] - details(th - h)["f1"]) / (2 * h)
        q2 = (details(th + h)["Q1"] - details(th - h)["Q1"]) / (2 * h)
        np.testing.assert_allclose(det["f"], crit(th), rtol=1e-12)
        np.testing.assert_allclose(det["f1"], f1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(det["f2"], f2, rtol=1e-6)
        np.testing.assert_allclose(det["Q2"], q2, rtol=1e-6)
    th = fit.team_variance / fit.residual_variance
    assert abs(details(th)["f1"]) * th < 1e-8


# ---------------------------------------------------------------------------
# statsmodels
# ---------------------------------------------------------------------------


def _sim(rng, G=50, s2b=0.15, s2w=1.0, effect=0.3, lo=5, hi=16):
    n = rng.integers(lo, hi, G)
    g = np.repeat(np.arange(G), n)
    N = n.sum()
    arm = np.repeat(rng.permutation(np.arange(G) % 2), n).astype(float)
    base = rng.normal(size=N) + np.repeat(rng.normal(0, 0.5, G), n)
    X = np.column_stack([np.ones(N), arm, base])
    y = X @ np.array([1.0, effect, 0.5]) + np.repeat(rng.normal(0, np.sqrt(s2b), G), n) + rng.normal(0, np.sqrt(s2w), N)
    return y, X, g


def test_statsmodels_agreement():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(7)
    y, X, g = _sim(rng)
    fit = fit_random_intercept(y, X, g, names=["Intercept", "arm", "baseline"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.MixedLM(y, X, groups=g).fit(reml=True)
    s2b_sm = float(np.asarray(res.cov_re)[0, 0])
    np.testing.assert_allclose(fit.beta, res.fe_params, rtol=1e-4)
    np.testing.assert_allclose(fit.team_variance, s2b_sm, rtol=1e-4)
    np.testing.assert_allclose(fit.residual_variance, res.scale, rtol=1e-4)
    np.testing.assert_allclose(fit.se, res.bse_fe, rtol=5e-3)
    # conventional SE at statsmodels' estimates, computed densely
    _, _, cov = _dense_reml(y, X, g, s2b_sm, res.scale)
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(cov)), rtol=1e-4)


# ---------------------------------------------------------------------------
# known truth
# ---------------------------------------------------------------------------


def test_known_truth_simulation():
    """400 replicate trials (40 teams of 4-12, ICC 0.09): the arm estimate is
    unbiased (|mean - truth| < 4 Monte-Carlo SEs), the Satterthwaite-t 95% CI
    covers the truth in 92-98% of replicates (binomial SD 1.1 points), the mean
    residual variance is within 4 MC SEs of the truth and the mean team
    variance within 0.02 of 0.1 (REML is unbiased apart from the truncation at 0)."""
    rng = np.random.default_rng(2024)
    R, s2b, s2w, effect = 400, 0.1, 1.0, 0.25
    est, cover, vb, vw, conv = [], [], [], [], []
    for _ in range(R):
        y, X, g = _sim(rng, G=40, s2b=s2b, s2w=s2w, effect=effect, lo=4, hi=13)
        fit = fit_random_intercept(y, X, g)
        row = fit.tidy().iloc[1]
        est.append(row.estimate)
        cover.append(row.ci_low <= effect <= row.ci_high)
        vb.append(fit.team_variance)
        vw.append(fit.residual_variance)
        conv.append(fit.converged)
    est, vb, vw = map(np.asarray, (est, vb, vw))
    assert all(conv)
    assert abs(est.mean() - effect) < 4 * est.std(ddof=1) / np.sqrt(R)
    assert 0.92 <= np.mean(cover) <= 0.98
    assert abs(vw.mean() - s2w) < 4 * vw.std(ddof=1) / np.sqrt(R)
    assert abs(vb.mean() - s2b) < 0.02


# ---------------------------------------------------------------------------
# API behaviour
# ---------------------------------------------------------------------------


def test_row_order_and_labels_do_not_matter():
    d = pd.read_csv(FIX / "data_main.csv", dtype={"team": str, "la": str})
    a = fit_formula_free(d, "y", COVS, "team")
    e = d.sample(frac=1.0, random_state=3).reset_index(drop=True)
    e["team"] = pd.factorize(e["team"])[0] * 7 + 100  # integer labels
    b = fit_formula_free(e, "y", COVS, "team")
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.team_variance, b.team_variance, rtol=1e-9)
    np.testing.assert_allclose(a.reml_criterion, b.reml_criterion, rtol=1e-12)


def test_formula_free_coding_and_missing():
    d = pd.read_csv(FIX / "data_main.csv", dtype={"team": str, "la": str})
    full = fit_formula_free(d, "y", COVS, "team")
    e = d.copy()
    e.loc[[0, 5], "y"] = np.nan
    e.loc[10, "baseline"] = np.nan
    e.loc[20, "team"] = None
    fit = fit_formula_free(e, "y", COVS, "team")
    assert fit.n == len(d) - 4
    assert fit.names == full.names
    # pandas Categorical: reference = first category (here LA07)
    e = d.copy()
    e["la"] = pd.Categorical(e["la"], categories=[f"LA{k:02d}" for k in range(7, 0, -1)])
    e["female"] = np.arange(len(e)) % 3 == 0
    fit = fit_formula_free(e, "y", ["arm", "baseline", "la", "female"], "team")
    assert fit.names[3] == "la[T.LA06]" and fit.names[-1] == "female[T.True]"
    assert "la[T.LA07]" not in fit.names
    t = fit.tidy()
    assert list(t.columns) == ["term", "estimate", "se", "df", "t", "p_value", "ci_low", "ci_high"]


def test_rank_deficient_raises():
    d = pd.read_csv(FIX / "data_main.csv", dtype={"team": str, "la": str})
    d["arm2"] = 1 - d["arm"]
    with pytest.raises(ValueError, match="rank deficient"):
        fit_formula_free(d, "y", ["arm", "arm2", "baseline"], "team")


def test_scale_and_shift_equivariance():
    """Rescaling / shifting y rescales the estimates exactly; df are unchanged."""
    rng = np.random.default_rng(11)
    y, X, g = _sim(rng, G=30)
    a = fit_random_intercept(y, X, g)
    for scale, shift in [(1e-4, 0.0), (1e5, 0.0), (1.0, 1e6)]:
        b = fit_random_intercept(scale * y + shift, X, g)
        assert b.converged
        np.testing.assert_allclose(b.beta[1:] / scale, a.beta[1:], rtol=1e-6)
        np.testing.assert_allclose(b.team_variance / scale**2, a.team_variance, rtol=1e-6)
        np.testing.assert_allclose(b.residual_variance / scale**2, a.residual_variance, rtol=1e-6)
        np.testing.assert_allclose(b.df, a.df, rtol=1e-6)


def test_unidentifiable_inputs_raise():
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(20), rng.normal(size=20)])
    with pytest.raises(ValueError, match="single observation"):
        fit_random_intercept(rng.normal(size=20), X, np.arange(20))
    with pytest.raises(ValueError, match="finite"):
        y = rng.normal(size=20)
        y[3] = np.nan
        fit_random_intercept(y, X, np.arange(20) // 4)
