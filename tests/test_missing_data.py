"""Missing data (analysis ``missing_data``): the delta-adjusted tipping point and the response model.

The tipping point is checked against a known truth: with follow-up scores that
the imputation model predicts almost exactly (residual SD 0.01), every imputed
data set is the true complete data, so the delta-adjusted MI must tip where the
complete-data primary model (a separate fit: ``stats.mixed`` with
Kenward-Roger) of the true scores shifted by delta tips; that delta is found
here by its own root search. The response model is checked against R (glm, and
the Mancl-DeRouen sandwich by hand): ``tests/fixtures/response_model``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from isafe_helpers.data.frames import mi_frame
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import missing_data
from isafe_helpers.impact.missing_data import response_model, tipping_point
from isafe_helpers.impact.sensitivity import multiple_imputation
from isafe_helpers.resources import BUNDLED_DATA
from isafe_helpers.results import keys as K
from isafe_helpers.stats.gee import gee_binary
from isafe_helpers.stats.imputation import mi_delta_tipping_point
from isafe_helpers.stats.mixed import fit_random_intercept

FIX = Path(__file__).parent / "fixtures" / "response_model"


@pytest.fixture(scope="module")
def bundled():
    return load_root(BUNDLED_DATA)


def _trial(effect: float, noise: float = 0.01, seed: int = 1):
    rng = np.random.default_rng(seed)
    G, n = 16, 8
    team = np.repeat(np.arange(G), n)
    arm = (np.arange(G) % 2)[team].astype(float)
    yb = rng.normal(3, 0.6, G * n)
    yf = 1 + 0.5 * yb + effect * arm + rng.normal(0, noise, G * n)
    miss = (arm == 1) & (rng.random(G * n) < 0.3)
    return team, arm, yb, yf, miss


def _complete_data_tipping(team, arm, yb, yf, miss, sd, end: str) -> float:
    """Delta at which the KR CI of the complete-data model of ``yf + delta * sd * miss`` touches 0."""
    X = np.column_stack([np.ones(yf.size), arm, yb])

    def bound(d: float) -> float:
        f = fit_random_intercept(yf + d * sd * miss, X, team)
        kr = f.kenward_roger()
        half = stats.t.ppf(0.975, kr.df[1]) * kr.se_adj[1]
        return float(f.beta[1] - half if end == "low" else f.beta[1] + half)

    return float(optimize.brentq(bound, -8, 0) if end == "low" else optimize.brentq(bound, 0, 8))


@pytest.mark.parametrize("effect, end", [(0.3, "low"), (-0.3, "high")])
def test_tipping_point_is_where_the_true_complete_data_ci_reaches_zero(effect, end):
    team, arm, yb, yf, miss = _trial(effect)
    obs = np.where(miss, np.nan, yf)
    F = np.column_stack([np.ones(yf.size), arm])
    sd = 0.5
    out = mi_delta_tipping_point(obs, yb, F, team, arm == 1, sd, n_imputations=4, rng=3)
    truth = _complete_data_tipping(team, arm, yb, yf, miss, sd, end)
    # signed: a positive effect tips at a negative delta, and the other way round
    assert np.sign(out["tipping_point"]) == -np.sign(effect)
    # 1%: the imputations add noise of SD 0.01 and Barnard-Rubin's df sit a little below KR's
    assert out["tipping_point"] == pytest.approx(truth, rel=0.01)
    assert out["n_shifted"] == int(miss.sum())
    # at the tipping point the pooled interval's end nearer 0 is 0; at delta 0 it excludes 0
    key = "ci_low" if end == "low" else "ci_high"
    assert out["at_tipping"][key] == pytest.approx(0, abs=1e-3)
    assert out["at_zero"]["ci_low"] > 0 if effect > 0 else out["at_zero"]["ci_high"] < 0


def test_no_tipping_point_when_the_ci_already_includes_zero():
    team, arm, yb, yf, miss = _trial(0.0, noise=0.5)
    obs = np.where(miss, np.nan, yf)
    F = np.column_stack([np.ones(yf.size), arm])
    out = mi_delta_tipping_point(obs, yb, F, team, arm == 1, 0.5, n_imputations=4, rng=3)
    assert np.isnan(out["tipping_point"])
    assert "already includes 0" in out["reason"]
    assert out["at_zero"]["ci_low"] <= 0 <= out["at_zero"]["ci_high"]


def test_no_tipping_point_without_imputed_intervention_scores():
    team, arm, yb, yf, _ = _trial(0.3)
    miss = (arm == 0) & (np.arange(yf.size) % 4 == 0)  # only control staff are missing
    obs = np.where(miss, np.nan, yf)
    F = np.column_stack([np.ones(yf.size), arm])
    out = mi_delta_tipping_point(obs, yb, F, team, arm == 1, 0.5, n_imputations=4, rng=3)
    assert np.isnan(out["tipping_point"]) and "no follow-up score of the intervention arm" in out["reason"]


@pytest.mark.parametrize("scale", ["confidence", "org_practice"])
def test_response_model_matches_r(bundled, scale):
    ref = pd.read_csv(FIX / "ref.csv").set_index("scale").loc[scale]
    m = response_model(bundled, scale)
    # 1e-6: R's glm stops at its own IRLS tolerance (1e-8 on the deviance)
    assert m.estimate == pytest.approx(ref["odds_ratio"], rel=1e-6)
    assert (m.ci_low, m.ci_high) == pytest.approx((ref["ci_low"], ref["ci_high"]), rel=1e-6)
    assert m.p_value == pytest.approx(ref["p_value"], rel=1e-5)
    assert (m.n, m.n_clusters) == (ref["n"], ref["teams"])
    assert f"t on {int(ref['df'])} df" in m.note


def test_response_model_frame_and_plain_sandwich_match_r():
    # the committed frame through the same GEE: geepack's independence sandwich (no correction) and R's MD by hand
    d = pd.read_csv(FIX / "data.csv", dtype={"team_id": str, "la": str})
    ref = pd.read_csv(FIX / "ref.csv").set_index("scale")
    for scale, x in d.groupby("scale"):
        X = pd.get_dummies(x["la"], prefix="la", drop_first=True, dtype=float)
        X.insert(0, "baseline", x["baseline"])
        X.insert(0, "treated", x["treated"].astype(float))
        X.insert(0, "const", 1.0)
        y = x["responded"].to_numpy(float)
        g = gee_binary(y, np.ones_like(y), X, x["team_id"].to_numpy(), "treated", corr="independence")
        k = list(X.columns).index("treated")
        assert np.log(g.odds_ratio.estimate) == pytest.approx(ref.loc[scale, "log_or"], rel=1e-6)
        assert np.sqrt(g.cov_robust[k, k]) == pytest.approx(ref.loc[scale, "se_robust"], rel=1e-5)
        assert np.sqrt(g.cov[k, k]) == pytest.approx(ref.loc[scale, "se_md"], rel=1e-5)


def test_response_model_not_estimable_when_everyone_responded(bundled):
    la = bundled.for_scope("LA07")
    sv = la.survey.copy()
    base = sv[sv["wave"] == "baseline"]
    fu = base.assign(wave="followup")  # every member of staff with a baseline score has a follow-up score
    data = replace(la, tables={**la.tables, "survey": pd.concat([base, fu], ignore_index=True)})
    m = response_model(data, "confidence")
    assert m.note.startswith("not estimable: every member of staff with a baseline score responded")
    assert np.isnan(m.estimate)


def test_delta_zero_is_the_multiple_imputation_and_rows_are_named(bundled):
    la = bundled.for_scope("LA07")
    mi = multiple_imputation(la, "org_practice", n_imputations=3)
    tp = tipping_point(la, "org_practice", n_imputations=3)
    assert tp.estimate_at_zero == pytest.approx(mi.estimate, rel=1e-12)
    assert tp.n_shifted == int(
        (mi_frame(la, "org_practice").pipe(lambda d: d["followup"].isna() & (d["treated"] == 1))).sum()
    )
    md = missing_data(la, n_imputations=3)
    rows = md.tidy()
    q = set(rows["quantity"])
    assert {"delta_tipping_point", "response_odds_ratio_arm", "response_pct_treatment", "responded_control"} <= q
    tips = rows[rows["quantity"] == "delta_tipping_point"]
    assert len(tips) == 5 and (tips["analysis"] == "missing_data").all()
    # a blank tipping point always says why
    assert tips.loc[tips["estimate"].isna(), "note"].str.len().gt(0).all()
    # the response table's counts are the ledger's populations: randomised staff as the trial flow counts them
    t = md.table()
    assert t.keys["randomised_treatment"] == [K.staff(["LA07"], "treatment")]
    assert t.keys["responded_control"] == [K.stage(["LA07"], "responded", "control")]
    assert t.facts["response_pct_control"][0] == (
        "impact",
        "missing_data",
        "followup_survey",
        "response_pct_control",
        "estimate",
    )
