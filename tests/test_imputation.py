"""Multiple imputation on arrays (isafe_helpers.stats.imputation).

References are independent of the module's per-team algebra: dense
covariance matrices for the REML criterion, the posterior of theta and the
posterior predictive distribution; :func:`isafe_helpers.mixed.fit_random_intercept`
for the analysis model; a hand computation for Rubin's rules; a known-truth
simulation for coverage.

Tolerances: the analysis fit equals the reference to 1e-8 relative (the same
criterion, optimised separately); the log posterior of tau equals the dense
one up to an additive constant to 1e-8; the draws of a missing value are
compared with the exact predictive distribution by a Kolmogorov-Smirnov
test on 4,000 draws (fixed seed, p > 0.01); coverage from 150 simulated trials
has Monte Carlo SE ~1.8 points, the interval asked for is [0.90, 0.99].
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from isafe_helpers.stats import imputation as I
from isafe_helpers.stats import reml
from isafe_helpers.stats.mixed import fit_random_intercept


def _trial(rng, n_la=2, teams=6, effect=0.3, icc=0.1, size=(5, 10), p_miss_f=0.3, p_miss_b=0.1):
    """Teams randomised within LA; baseline and follow-up with team effects; scores missing at random.

    Returns F (intercept, arm, LA dummies), team codes, complete follow-up and
    baseline, and the masks of the scores to delete.
    """
    la, team, arm, yb, yf = [], [], [], [], []
    g = 0
    for lv in range(n_la):
        for a in rng.permutation([1] * (teams // 2) + [0] * (teams - teams // 2)):
            ub, uf = rng.normal(0, math.sqrt(icc), 2)
            n = int(rng.integers(size[0], size[1] + 1))
            b = ub + rng.normal(0, math.sqrt(1 - icc), n)
            yb.append(b)
            yf.append(effect * a + 0.5 * b + uf + rng.normal(0, math.sqrt(1 - icc), n))
            la += [lv] * n
            team += [g] * n
            arm += [a] * n
            g += 1
    la, arm = np.array(la), np.array(arm, float)
    F = np.column_stack([np.ones(la.size), arm] + [(la == lv).astype(float) for lv in range(1, n_la)])
    return (
        F,
        np.array(team),
        np.concatenate(yf),
        np.concatenate(yb),
        rng.random(la.size) < p_miss_f,
        rng.random(la.size) < p_miss_b,
    )


def _dense(y, X, codes, thetas):
    """REML pieces of the random-intercept model at each of ``thetas`` by dense (batched) matrices."""
    th = np.atleast_1d(np.asarray(thetas, float))[:, None, None]
    V0 = np.eye(y.size) + th * (codes[:, None] == codes[None, :])
    Vi = np.linalg.inv(V0)
    A = X.T @ Vi @ X
    Ainv = np.linalg.inv(A)
    b = (Ainv @ (X.T @ Vi @ y)[..., None])[..., 0]
    res = y - b @ X.T
    Q = np.einsum("ti,tij,tj->t", res, Vi, res)
    f = np.linalg.slogdet(V0)[1] + np.linalg.slogdet(A)[1] + (y.size - X.shape[1]) * np.log(Q)
    return dict(f=f, b=b, Ainv=Ainv, Q=Q, Vi=Vi, res=res)


# ---------------------------------------------------------------------------
# Rubin's rules
# ---------------------------------------------------------------------------


def test_rubin_rules_by_hand():
    q, u = [1.0, 1.2, 0.8, 1.1], [0.04, 0.05, 0.045, 0.05]
    m, W, B = 4, np.mean(u), np.var(q, ddof=1)
    T = W + (1 + 1 / m) * B
    lam = (1 + 1 / m) * B / T
    nu_com = 30.0
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
    nu = 1 / (lam**2 / (m - 1) + 1 / nu_obs)
    r = I.rubin(q, u, nu_com)
    assert r["estimate"] == pytest.approx(1.025)
    assert r["se"] == pytest.approx(math.sqrt(T))
    assert r["df"] == pytest.approx(nu)
    assert r["fmi"] == pytest.approx(lam)
    tq = stats.t.ppf(0.975, nu)
    assert r["ci_low"] == pytest.approx(1.025 - tq * math.sqrt(T))
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(1.025 / math.sqrt(T), nu))
    # numbers worked by hand: W = 0.04625, B = 0.0291667, T = 0.0827083
    assert W == pytest.approx(0.04625) and B == pytest.approx(0.0291666667) and T == pytest.approx(0.0827083333)


def test_rubin_df_cap():
    """``df_max`` caps the Barnard-Rubin df (and the interval and p follow it); above the df it changes nothing."""
    q, u = [1.0, 1.2, 0.8, 1.1], [0.04, 0.05, 0.045, 0.05]
    free = I.rubin(q, u, 30.0)
    assert I.rubin(q, u, 30.0, df_max=free["df"] + 1) == free
    capped = I.rubin(q, u, 30.0, df_max=2.5)
    assert capped["df"] == 2.5 and capped["se"] == free["se"]
    assert capped["ci_high"] == pytest.approx(1.025 + stats.t.ppf(0.975, 2.5) * free["se"])


def test_rubin_without_between_imputation_variance():
    """Identical imputations: no missing information, df = nu_obs = (nu + 1) / (nu + 3) nu."""
    same = I.rubin([0.3, 0.3, 0.3], [0.01, 0.01, 0.01], 20.0)
    assert same["fmi"] == 0 and same["se"] == pytest.approx(0.1)
    assert same["df"] == pytest.approx(21 / 23 * 20)


# ---------------------------------------------------------------------------
# the analysis model from per-team sums = mixed.fit_random_intercept
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pooled", [True, False])
@pytest.mark.parametrize("seed,n_la,icc", [(1, 3, 0.1), (2, 4, 0.2), (3, 1, 0.1), (5, 2, 0.0), (6, 3, 0.0)])
def test_team_model_equals_fit_random_intercept(monkeypatch, pooled, seed, n_la, icc):
    if not pooled:
        monkeypatch.setattr(reml, "_POOL_RATIO", 0)
    F, codes, yf, yb, _, _ = _trial(np.random.default_rng(seed), n_la=n_la, icc=icc)
    ref = fit_random_intercept(yf, np.column_stack([F, yb]), codes)
    got = I.fit_team_model(yf, F, yb, codes, coef=1)
    assert got["estimate"] == pytest.approx(ref.beta[1], rel=1e-8)
    assert got["se"] == pytest.approx(ref.se[1], rel=1e-8)
    assert got["df"] == pytest.approx(ref.df[1], rel=1e-6)
    assert got["reml_criterion"] == pytest.approx(ref.reml_criterion, rel=1e-10)
    assert got["theta"] == pytest.approx(ref.team_variance / ref.residual_variance, rel=1e-6, abs=1e-10)
    assert got["residual_variance"] == pytest.approx(ref.residual_variance, rel=1e-8)


def test_team_model_without_intercept_column_and_shifted_outcome():
    """Indicators for every LA (no intercept column) and a large outcome mean: same fit."""
    F, codes, yf, yb, _, _ = _trial(np.random.default_rng(8), n_la=3, icc=0.15)
    la = F[:, 2:]
    F2 = np.column_stack([1 - la.sum(1), F[:, 1], la])
    y = yf + 1e4
    ref = fit_random_intercept(y, np.column_stack([F2, yb]), codes)
    got = I.fit_team_model(y, F2, yb, codes, coef=1)
    assert got["estimate"] == pytest.approx(ref.beta[1], rel=1e-7)
    assert got["se"] == pytest.approx(ref.se[1], rel=1e-7)
    assert got["df"] == pytest.approx(ref.df[1], rel=1e-5)


def test_team_model_rejects_row_level_F_and_rank_deficiency():
    F, codes, yf, yb, _, _ = _trial(np.random.default_rng(2))
    with pytest.raises(ValueError, match="constant within each team"):
        I.fit_team_model(yf, np.column_stack([F, yb]), yb, codes)
    with pytest.raises(ValueError, match="rank deficient"):
        I.fit_team_model(yf, np.column_stack([F, 2 * F[:, 1]]), yb, codes)


# ---------------------------------------------------------------------------
# the imputer: posterior of theta and posterior predictive draws
# ---------------------------------------------------------------------------


def _small_problem(seed=3):
    F, codes, yf, yb, _, _ = _trial(np.random.default_rng(seed), n_la=2, teams=6, size=(3, 5), icc=0.2)
    miss = np.zeros(yf.size, bool)
    miss[[0, 7, 15]] = True
    # a team whose every follow-up is missing: its effect can only come from the prior N(0, s2_B)
    lone = codes == codes.max()
    miss |= lone
    return F, codes, yf, yb, miss, int(np.flatnonzero(lone)[0])


@pytest.mark.parametrize("scale", [I.PRIOR_SCALE, 2.0, np.inf])
def test_log_posterior_of_tau_equals_dense_reml_likelihood(scale):
    """log p(tau | y) = -REML criterion / 2 + log half-Cauchy(tau; scale), up to a constant."""
    F, codes, yf, yb, miss, _ = _small_problem()
    imp = I.TwoLevelImputer(F, codes, miss, prior_scale=scale)
    imp.draw(yf, yb, np.random.default_rng(0))  # loads the data
    tau = np.array([0.0, 0.05, 0.2, 0.5, 1.0, 3.0])
    got = imp.log_posterior_tau(tau[None])[0]
    obs = ~miss
    X = np.column_stack([F, yb])[obs]
    ref = -0.5 * _dense(yf[obs], X, codes[obs], tau**2)["f"] - np.log1p((tau / scale) ** 2)
    assert np.ptp(got - ref) < 1e-8


def _predictive_cdf(F, codes, y, z, miss, i, prior_scale=I.PRIOR_SCALE):
    """Exact posterior predictive CDF of the missing ``y[i]``: a mixture over theta of scaled t distributions.

    Given theta, ``y_i | y_obs`` is ``t(nu)`` with the BLUP prediction ``x_i'b + v'V0^-1 (y - X b)`` as
    location and ``sqrt(c Q / nu)`` as scale, ``c = 1 + theta - v'V0^-1 v + w'(X'V0^-1 X)^-1 w``,
    ``v = cov(y_i, y_obs) / s2_W``, ``w = x_i - X'V0^-1 v``; theta is integrated over its posterior.
    """
    obs = ~miss
    X = np.column_stack([F, z])
    Xo, yo, co = X[obs], y[obs], codes[obs]
    nu = obs.sum() - X.shape[1]
    taus = np.concatenate([np.linspace(0.0, 3.0, 301), np.geomspace(3.0, 1e3, 101)[1:]])
    d = _dense(yo, Xo, co, taus**2)
    v = (taus**2)[:, None] * (co == codes[i])[None, :]
    Viv = (d["Vi"] @ v[..., None])[..., 0]
    w = X[i] - Viv @ Xo
    c = 1 + taus**2 - np.sum(v * Viv, 1) + np.einsum("tj,tjk,tk->t", w, d["Ainv"], w)
    lp = -0.5 * d["f"] - np.log1p((taus / prior_scale) ** 2)
    assert lp[-1] < lp.max() - 20  # the grid holds the mass
    mean = d["b"] @ X[i] + np.sum(Viv * d["res"], 1)
    scale = np.sqrt(c * d["Q"] / nu)
    dens = np.exp(lp - lp.max())
    wgt = np.zeros_like(dens)  # trapezoid weights on the uneven grid
    wgt[:-1] += 0.5 * np.diff(taus) * dens[:-1]
    wgt[1:] += 0.5 * np.diff(taus) * dens[1:]
    wgt /= wgt.sum()
    return lambda x: np.sum(wgt * stats.t.cdf((np.asarray(x)[:, None] - mean) / scale, nu), axis=1)


def test_draws_follow_the_exact_posterior_predictive_distribution():
    """Steps 1-5 together: 4,000 draws of a missing value vs its exact predictive CDF."""
    F, codes, yf, yb, miss, lone = _small_problem()
    imp = I.TwoLevelImputer(F, codes, miss)
    M = 4000
    Y = imp.draw(np.tile(yf, (M, 1)), np.tile(yb, (M, 1)), np.random.default_rng(12))
    for i in (0, 15, lone):  # teams with observed rows, and the team with none
        cdf = _predictive_cdf(F, codes, yf, yb, miss, i)
        assert stats.kstest(Y[:, i], cdf).pvalue > 0.01
    # observed values are untouched
    assert np.array_equal(Y[:, ~miss], np.tile(yf[~miss], (M, 1)))


def test_theta_is_drawn_even_when_its_reml_estimate_is_zero():
    """No team effect in the data, baseline complete: the follow-up imputation model has REML theta = 0,
    yet every imputation draws its own positive theta (the old imputer held it at 0)."""
    rng = np.random.default_rng(21)
    F, codes, yf, yb, mf, _ = _trial(rng, n_la=2, teams=6, icc=0.0)
    ok = ~mf
    reml = fit_random_intercept(yf[ok], np.column_stack([F, yb])[ok], codes[ok])
    assert reml.team_variance == 0.0
    y = np.where(mf, np.nan, yf)
    res = I.mi_arm_effect(y, yb, F, codes, n_imputations=20, rng=7)
    th = res["theta_followup"][:, 0]
    assert th.shape == (20,) and res["theta_baseline"].shape == (20, 0)
    assert np.all(th > 0) and np.unique(th).size == 20
    assert th.max() > 10 * th.min()
    # the comparison scheme holds it at the REML value
    fixed = I.mi_arm_effect(y, yb, F, codes, n_imputations=5, rng=7, draw_theta=False)
    assert np.all(fixed["theta_followup"] == 0.0)


# ---------------------------------------------------------------------------
# the whole MI
# ---------------------------------------------------------------------------


def test_mi_is_deterministic_given_the_seed():
    F, codes, yf, yb, mf, mb = _trial(np.random.default_rng(4), n_la=3)
    y_f, y_b = np.where(mf, np.nan, yf), np.where(mb, np.nan, yb)
    a = I.mi_arm_effect(y_f, y_b, F, codes, n_imputations=5, rng=99)
    b = I.mi_arm_effect(y_f, y_b, F, codes, n_imputations=5, rng=np.random.default_rng(99))
    c = I.mi_arm_effect(y_f, y_b, F, codes, n_imputations=5, rng=100)
    for k, v in a.items():
        assert np.array_equal(v, b[k]), k
    assert a["estimate"] != c["estimate"]
    assert a["theta_followup"].shape == (5, 5) and a["theta_baseline"].shape == (5, 5)
    assert a["n_missing_followup"] == mf.sum() and a["n_missing_baseline"] == mb.sum()


def test_mi_without_missing_data_is_the_complete_data_kenward_roger_fit():
    """No missing score: the pooled estimate, SE and complete-data df are the primary model's KR ones."""
    F, codes, yf, yb, _, _ = _trial(np.random.default_rng(9), n_la=3)
    ref = fit_random_intercept(yf, np.column_stack([F, yb]), codes)
    kr = ref.kenward_roger()
    res = I.mi_arm_effect(yf, yb, F, codes, n_imputations=3, rng=1)
    assert res["estimate"] == pytest.approx(ref.beta[1], rel=1e-8)
    assert res["se"] == pytest.approx(kr.se_adj[1], rel=1e-8)
    assert abs(res["fmi"]) < 1e-12 and res["df_complete"] == pytest.approx(kr.df[1], rel=1e-6)
    nu = kr.df[1]
    assert res["df"] == pytest.approx((nu + 1) / (nu + 3) * nu, rel=1e-6)


def _mi_kr_data():
    import pandas as pd

    here = Path(__file__).parent / "fixtures" / "mi_kr"
    d = pd.read_csv(here / "data.csv")
    ref = pd.read_csv(here / "ref.csv").set_index(["dataset", "quantity"])["value"]
    F = np.column_stack([np.ones(len(d)), d["arm"].to_numpy(float)])
    return d, ref, F


def test_mi_complete_data_df_match_r_kenward_roger_at_zero_team_variance():
    """R reference (tests/fixtures/mi_kr, lmerTest/pbkrtest): one LA of 9 teams whose REML team
    variance is 0. With nothing missing, MI's complete-data df and SE are R's KR ones (relative
    1e-6), not Satterthwaite's N - p = 79."""
    d, ref, F = _mi_kr_data()
    res = I.mi_arm_effect(d["y"], d["baseline"], F, d["team"].to_numpy(), n_imputations=2, rng=1)
    assert res["df_complete"] == pytest.approx(ref["complete", "kr_df"], rel=1e-6)
    assert res["se"] == pytest.approx(ref["complete", "kr_se"], rel=1e-6)
    assert res["estimate"] == pytest.approx(ref["complete", "estimate"], rel=1e-6)
    assert ref["complete", "sat_df"] > 70


def test_mi_df_never_exceed_the_kenward_roger_df_at_zero_team_variance():
    """The issue's check: an LA with zero team variance gets MI df no larger than its KR df (R's
    KR df of the complete-case primary model, 6.9; Satterthwaite's are 45)."""
    d, ref, F = _mi_kr_data()
    res = I.mi_arm_effect(d["y_obs"], d["baseline_obs"], F, d["team"].to_numpy(), n_imputations=20, rng=5)
    assert res["fmi"] > 0
    assert res["df"] <= res["df_complete"]
    assert res["df"] <= ref["complete_cases", "kr_df"]
    assert np.all(res["dfs"] < 10)


def test_mi_close_to_complete_data_estimate_under_mcar():
    """A sanity check on one trial (the coverage tests below are the real check): scores deleted
    completely at random, MI lands within 2 SE of the fit to the full data and is less precise."""
    rng = np.random.default_rng(11)
    F, codes, yf, yb, mf, mb = _trial(rng, n_la=4, teams=10, effect=0.4)
    ref = fit_random_intercept(yf, np.column_stack([F, yb]), codes)
    res = I.mi_arm_effect(np.where(mf, np.nan, yf), np.where(mb, np.nan, yb), F, codes, rng=3)
    assert abs(res["estimate"] - ref.beta[1]) < 2 * ref.se[1]
    assert res["se"] > ref.se[1] * 0.95
    assert 0 < res["fmi"] < 0.6
    assert res["ci_low"] < res["estimate"] < res["ci_high"]


def test_mi_not_estimable_raises():
    F, codes, yf, yb, mf, mb = _trial(np.random.default_rng(2), n_la=2)
    y = np.where(F[:, 2] == 1, np.nan, yf)  # no follow-up at all in the second LA
    with pytest.raises(ValueError, match="rank deficient"):
        I.mi_arm_effect(y, yb, F, codes, n_imputations=2, rng=1)


# ---------------------------------------------------------------------------
# known truth: coverage
# ---------------------------------------------------------------------------

#: Simulated trial of the coverage tests: 2 LAs x 6 teams of 5-10 staff, team ICC 0.1 for both waves,
#: 30% of follow-up and 10% of baseline scores missing completely at random. The REML team variance
#: of the complete-case analysis is 0 in about a third of the trials.
COVERAGE_TRIAL = dict(n_la=2, teams=6, effect=0.3, icc=0.1, size=(5, 10), p_miss_f=0.3, p_miss_b=0.1)


def _coverage(n_rep, seed, draw_theta=(True,), n_imputations=20):
    rng = np.random.default_rng(seed)
    hits = {d: 0 for d in draw_theta}
    zero = 0
    for _ in range(n_rep):
        F, codes, yf, yb, mf, mb = _trial(rng, **COVERAGE_TRIAL)
        y_f, y_b = np.where(mf, np.nan, yf), np.where(mb, np.nan, yb)
        cc = ~mf & ~mb
        zero += I.fit_team_model(yf[cc], F[cc], yb[cc], codes[cc])["theta"] == 0
        for d in draw_theta:
            r = I.mi_arm_effect(y_f, y_b, F, codes, n_imputations=n_imputations, rng=rng, draw_theta=d)
            hits[d] += r["ci_low"] < COVERAGE_TRIAL["effect"] < r["ci_high"]
    return {d: h / n_rep for d, h in hits.items()}, zero / n_rep


def test_mi_interval_covers_the_true_effect():
    """150 simulated trials (~10 s): the 95% MI interval covers the true arm effect 90-99% of the time
    (0.967 when written)."""
    cov, zero = _coverage(150, seed=2024)
    assert zero > 0.2  # the REML team variance is often 0 in these trials
    assert 0.90 <= cov[True] <= 0.99


@pytest.mark.slow
def test_coverage_drawing_theta_and_holding_it_at_reml():
    """500 trials (~1 min): drawing theta (the default) and holding it at its REML value (the previous
    scheme, ``draw_theta=False``). Recorded when written: 0.950 drawn, 0.944 held (MC SE 0.010); the
    previous scheme hardly under-covers in this design, its flaw is that it is improper (module docstring)."""
    cov, zero = _coverage(500, seed=7, draw_theta=(True, False))
    assert zero > 0.2
    assert 0.93 <= cov[True] <= 0.98
    assert 0.85 <= cov[False] <= 1.0
