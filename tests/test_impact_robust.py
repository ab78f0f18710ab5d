"""Robustness checks of the impact strand: randomisation inference, multiple
imputation (Rubin's rules), CR2 (the R reference is in test_impact_reference.py).

Tolerances: the vectorised GLS statistic equals a direct dense GLS fit at the
same theta to 1e-10 (same algebra); full REML refits under a permuted
allocation re-estimate theta and differ from it by far less than the
estimate's SE (stated below).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from isafe_helpers import impact
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import sensitivity as R
from isafe_helpers.stats import randomisation
from isafe_helpers.stats.imputation import rubin
from isafe_helpers.stats.mixed import fit_random_intercept


def _sim(seed=1, n_la=3, teams=6, effect=0.3, icc=0.15):
    rng = np.random.default_rng(seed)
    rows = []
    for la in range(n_la):
        arms = rng.permutation([1] * (teams // 2) + [0] * (teams - teams // 2))
        for j, a in enumerate(arms):
            u = rng.normal(0, math.sqrt(icc))
            for _ in range(int(rng.integers(3, 11))):
                b = rng.normal()
                rows.append(
                    dict(
                        team_id=f"L{la}T{j}",
                        la=f"L{la}",
                        treated=float(a),
                        baseline=b,
                        followup=effect * a + 0.5 * b + u + rng.normal(0, math.sqrt(1 - icc)),
                    )
                )
    d = pd.DataFrame(rows)
    d["arm"] = np.where(d["treated"] == 1, "treatment", "control")
    return d


def _dense_gls(y, X, codes, theta):
    G = codes.max() + 1
    V = np.eye(len(y))
    for g in range(G):
        i = np.flatnonzero(codes == g)
        V[np.ix_(i, i)] += theta
    Vi = np.linalg.inv(V)
    return np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)


def test_fast_gls_equals_dense_gls_for_many_allocations():
    d = _sim()
    codes, uniq = pd.factorize(d["team_id"])
    X, _ = R.design(d)
    Z = np.delete(X, 1, axis=1)
    y = d["followup"].to_numpy()
    theta = 0.37
    fast = randomisation._FastGLS(y, Z, codes, len(uniq), theta)
    rng = np.random.default_rng(3)
    T = (rng.random((6, len(uniq))) < 0.5).astype(float)
    got = fast.estimates(T)
    for t, g in zip(T, got):
        Xp = np.column_stack([Z[:, :1], t[codes], Z[:, 1:]])
        assert g == pytest.approx(_dense_gls(y, Xp, codes, theta)[1], abs=1e-10)


def test_fast_statistic_close_to_full_refits():
    """Holding theta at the null-model value changes the estimate by far less than its SE."""
    d = _sim(seed=5)
    codes, uniq = pd.factorize(d["team_id"])
    X, _ = R.design(d)
    Z = np.delete(X, 1, axis=1)
    y = d["followup"].to_numpy()
    null = fit_random_intercept(y, Z, codes)
    fast = randomisation._FastGLS(y, Z, codes, len(uniq), null.team_variance / null.residual_variance)
    rng = np.random.default_rng(9)
    for _ in range(5):
        tau = (rng.random(len(uniq)) < 0.5).astype(float)
        full = fit_random_intercept(y, np.column_stack([Z[:, :1], tau[codes], Z[:, 1:]]), codes)
        assert abs(fast.estimates(tau[None])[0] - full.beta[1]) < 0.1 * full.se[1]


def test_allocations_keep_each_las_number_of_treated_teams():
    teams = pd.DataFrame(
        {
            "team_id": [f"t{i}" for i in range(20)],
            "la": ["A"] * 8 + ["B"] * 12,
            "arm": ["treatment"] * 3 + ["control"] * 5 + ["treatment"] * 6 + ["control"] * 6,
        }
    )
    T, exact = randomisation.allocations(teams["la"].to_numpy(), (teams["arm"] == "treatment").to_numpy(), 500, seed=1)
    assert not exact and T.shape == (500, 20)
    assert (T[:, :8].sum(1) == 3).all() and (T[:, 8:].sum(1) == 6).all()
    # every team is treated in about its LA's share of draws
    assert np.allclose(T[:, :8].mean(0), 3 / 8, atol=0.1)


def test_allocations_enumerated_when_few():
    teams = pd.DataFrame(
        {
            "team_id": list("abcdefg"),
            "la": ["A"] * 4 + ["B"] * 3,
            "arm": ["treatment", "treatment", "control", "control", "treatment", "control", "control"],
        }
    )
    T, exact = randomisation.allocations(teams["la"].to_numpy(), (teams["arm"] == "treatment").to_numpy(), 5000, seed=1)
    assert exact and len(T) == math.comb(4, 2) * math.comb(3, 1)
    assert len({tuple(r) for r in T}) == len(T)


def test_ri_p_value_by_hand_on_enumerated_allocations(small_root):
    """Exact enumeration: p is the share of allocations at least as extreme, counted here by brute force."""
    data = load_root(small_root).for_scope("LA01")
    res = R.randomisation_inference(data, "confidence")
    assert res.exact and res.n_permutations == math.comb(4, 2)
    extreme = np.sum(np.abs(res.permuted) >= abs(res.estimate) - 1e-12)
    assert res.p_value == pytest.approx(extreme / res.n_permutations)
    assert res.p_value >= 1 / 6  # the observed allocation is one of six


def test_ri_rejects_a_large_effect_and_ci_covers_it():
    d = _sim(seed=2, n_la=4, teams=8, effect=1.0, icc=0.05)
    data = _as_trialdata(d)
    res = R.randomisation_inference(data, "confidence", n_perm=2000, seed=4)
    assert res.p_value < 0.01
    assert res.ci_low < 1.0 < res.ci_high
    assert res.ci_low < res.estimate < res.ci_high


def _as_trialdata(d: pd.DataFrame):
    """A minimal TrialData-like object for analysis_frame (confidence = the simulated scores)."""
    from types import SimpleNamespace

    parts = d.assign(participant_id=[f"p{i}" for i in range(len(d))])
    survey = pd.concat(
        [
            parts.assign(wave="baseline", confidence=parts["baseline"]),
            parts.assign(wave="followup", confidence=parts["followup"]),
        ]
    )[["participant_id", "wave", "confidence"]]
    teams = parts[["team_id", "arm", "la"]].drop_duplicates("team_id")
    participants = parts[["participant_id", "team_id", "la"]].assign(age_band="30_39", years_qualified=5.0)
    return SimpleNamespace(survey=survey, participants=participants, teams=teams, las=sorted(d["la"].unique()))


def test_rubin_rules_by_hand():
    q, u = [1.0, 1.2, 0.8, 1.1], [0.04, 0.05, 0.045, 0.05]
    m, W, B = 4, np.mean(u), np.var(q, ddof=1)
    T = W + (1 + 1 / m) * B
    lam = (1 + 1 / m) * B / T
    nu_com = 30.0
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
    nu = 1 / (lam**2 / (m - 1) + 1 / nu_obs)
    r = rubin(q, u, nu_com)
    assert r["estimate"] == pytest.approx(1.025)
    assert r["se"] == pytest.approx(math.sqrt(T))
    assert r["df"] == pytest.approx(nu)
    assert r["fmi"] == pytest.approx(lam)


def test_mi_without_missing_data_equals_complete_case(small_root):
    """No missing score: nothing is imputed, every completed data set is the data, so MI is the complete-case fit.

    No imputation model is built and no team variance is drawn (the draws happen only for a wave with missing
    scores), so MI pools identical fits: the primary model's estimate with its Kenward-Roger SE; with no
    between-imputation variance the df is Barnard-Rubin's at lambda = 0, ``(nu + 1) / (nu + 3) * nu`` with
    ``nu`` the primary model's KR df.
    """
    data = load_root(small_root).for_scope("trial")
    d = R.mi_frame(data, "confidence")
    keep = d.dropna(subset=["baseline", "followup"])["participant_id"]
    data.tables["participants"] = data.participants[data.participants["participant_id"].isin(keep)]
    mi = R.multiple_imputation(data, "confidence", n_imputations=3)
    pr = impact.primary(data, "confidence")
    assert mi.n_missing_followup == 0 and mi.n_missing_baseline == 0
    assert mi.estimate == pytest.approx(pr.estimate, rel=1e-8)
    assert mi.se == pytest.approx(pr.se, rel=1e-8)
    assert mi.fmi == 0
    nu = pr.df
    assert mi.df == pytest.approx((nu + 1) / (nu + 3) * nu, rel=1e-8)


def test_mi_df_no_larger_than_kenward_roger_df_where_team_variance_is_zero(small_root):
    """Issue 24: an LA whose primary model has zero team variance gets MI df no larger than its KR df.

    Before, MI pooled with Satterthwaite's complete-data df, N - p at the boundary (10-16 here, against
    KR's 0.7-2.4)."""
    root = load_root(small_root)
    seen = 0
    for scope in ("LA01", "LA02"):
        data = root.for_scope(scope)
        for scale in ("confidence", "org_practice", "strategy_effectiveness"):
            pr = impact.primary(data, scale)
            if pr.team_variance != 0:
                continue
            mi = R.multiple_imputation(data, scale, n_imputations=5)
            assert mi.n_missing_followup > 0
            assert mi.df <= pr.df + 1e-12, (scope, scale, mi.df, pr.df)
            assert mi.df < pr.sat_df / 2
            seen += 1
    assert seen >= 2


def test_mi_recovers_complete_data_estimate_under_mcar():
    """Known truth: delete 25% of follow-up at random; MI is close to the full-data fit."""
    d = _sim(seed=11, n_la=4, teams=10, effect=0.4)
    full = R.design(d)[0]
    codes = pd.factorize(d["team_id"])[0]
    ref = fit_random_intercept(d["followup"].to_numpy(), full, codes)
    rng = np.random.default_rng(0)
    d2 = d.copy()
    d2.loc[rng.random(len(d)) < 0.25, "followup"] = np.nan
    data = _as_trialdata(d2)
    data.survey = data.survey.dropna(subset=["confidence"])
    mi = R.multiple_imputation(data, "confidence", n_imputations=20)
    assert abs(mi.estimate - ref.beta[1]) < ref.se[1]
    assert mi.se > ref.se[1] * 0.95  # missing information widens, not narrows, the interval
    assert 0 < mi.fmi < 0.6


def test_not_estimable_when_an_arm_has_one_team(small_root):
    data = load_root(small_root).for_scope("LA01")
    keep = data.teams["team_id"].iloc[:3]  # 4 teams, 2 per arm: drop one
    data.tables["teams"] = data.teams[data.teams["team_id"].isin(keep)]
    data.tables["participants"] = data.participants[data.participants["team_id"].isin(keep)]
    for f in (R.randomisation_inference, R.cluster_robust, R.multiple_imputation):
        r = f(data, "confidence")
        assert r.note.startswith("not estimable") and np.isnan(r.estimate)
        assert r.rows()[0]["note"].startswith("not estimable")
