"""The impact strand's mixed-model inference on the bundled data against lmerTest/pbkrtest.

Reference: ``tests/fixtures/impact_kr`` (data exported by ``make_data.py`` from
``data/synthetic``, values by ``make_fixtures.R`` with lmerTest 3.1-3 /
pbkrtest 0.5.2 on lme4 1.1-31; R is not needed here). What is pinned, through
the functions the notebooks call (``impact.primary``, ``impact.moderators``):

- the primary model's treatment effect with Kenward-Roger SE, df, p and CI,
  and the Satterthwaite sensitivity (pooled confidence; pooled org_practice,
  whose team variance is 0; LA07 strategy_effectiveness, one LA with team
  variance 0: KR p 0.056 on 5.75 df where Satterthwaite gives 0.018 on 57);
- ``hedges_g_total`` and its CI (the KR CI over the unconditional model's SD)
  and the conditional variant; the ICC and the variance components;
- the moderators: every age-band and LA interaction and within-level effect,
  the experience interaction, the effect at 10 years and at 0 years (a
  contrast: ``lmerTest::contest``), and the joint KR F test of arm by LA.

Tolerance: RTOL = 1e-6 relative (absolute 1e-9 for numbers near 0), the gap
between our REML estimates and R's polished ones propagated through KR, as in
``tests/test_kenward_roger.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from isafe_helpers import impact
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import subgroups as M
from isafe_helpers.resources import BUNDLED_DATA

FIX = Path(__file__).resolve().parent / "fixtures" / "impact_kr"
RTOL, ATOL = 1e-6, 1e-9
PRIMARY = {
    "trial_confidence": ("trial", "confidence"),
    "trial_org_practice": ("trial", "org_practice"),
    "la07_strategy_effectiveness": ("LA07", "strategy_effectiveness"),
}


@pytest.fixture(scope="module")
def data():
    return load_root(BUNDLED_DATA)


@pytest.fixture(scope="module")
def ref() -> pd.DataFrame:
    return pd.read_csv(FIX / "ref.csv", keep_default_na=False, dtype={"term": str})


def _r(ref, dataset, model, term, quantity) -> float:
    hit = ref[(ref.dataset == dataset) & (ref.model == model) & (ref.term == term) & (ref.quantity == quantity)]
    assert len(hit) == 1, (dataset, model, term, quantity)
    return float(hit["value"].iloc[0])


def test_fixture_data_are_the_bundled_analysis_frames(data):
    """The reference was computed on exactly the frames the analyses see."""
    import sys

    sys.path.insert(0, str(FIX))
    try:
        from make_data import frames
    finally:
        sys.path.pop(0)
    got = frames()
    want = pd.read_csv(FIX / "data.csv", keep_default_na=False, na_values={"yq": [""]}, dtype={"age_band": str})
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False, rtol=0, atol=0)


@pytest.mark.parametrize("dataset", list(PRIMARY))
def test_primary_effect_kenward_roger_and_satterthwaite_match_lmertest(data, ref, dataset):
    scope, outcome = PRIMARY[dataset]
    r = impact.primary(data.for_scope(scope), outcome)
    assert r.converged and r.note == ""
    got = {
        "estimate": r.estimate,
        "kr_se": r.se,
        "kr_df": r.df,
        "kr_p": r.p_value,
        "kr_ci_low": r.ci_low,
        "kr_ci_high": r.ci_high,
        "sat_se": r.sat_se,
        "sat_df": r.sat_df,
        "sat_p": r.sat_p_value,
        "sat_ci_low": r.sat_ci_low,
        "sat_ci_high": r.sat_ci_high,
    }
    for q, v in got.items():
        assert v == pytest.approx(_r(ref, dataset, "primary", "arm", q), rel=RTOL, abs=ATOL), q


@pytest.mark.parametrize("dataset", list(PRIMARY))
def test_effect_sizes_and_variances_match_lme4(data, ref, dataset):
    scope, outcome = PRIMARY[dataset]
    r = impact.primary(data.for_scope(scope), outcome)
    for model, g in (("g_total", r.g), ("g_conditional", r.g_conditional)):
        for q in ("estimate", "ci_low", "ci_high"):
            assert getattr(g, q) == pytest.approx(_r(ref, dataset, model, "arm", q), rel=RTOL, abs=ATOL), (model, q)
    assert r.team_variance == pytest.approx(_r(ref, dataset, "primary", "", "team_variance"), rel=RTOL, abs=ATOL)
    assert r.residual_variance == pytest.approx(_r(ref, dataset, "primary", "", "residual_variance"), rel=RTOL)
    assert r.team_variance_unconditional == pytest.approx(
        _r(ref, dataset, "unconditional", "", "team_variance"), rel=RTOL
    )
    assert r.icc == pytest.approx(_r(ref, dataset, "unconditional", "", "icc"), rel=RTOL)


def test_la07_is_no_longer_a_finding_with_kenward_roger(data):
    """The reviewer's case: Satterthwaite's df jump to N - p at a zero team variance; KR's do not."""
    r = impact.primary(data.for_scope("LA07"), "strategy_effectiveness")
    assert r.team_variance == 0.0
    assert r.sat_df == pytest.approx(r.n - 3) and r.sat_p_value < 0.05
    assert r.df == pytest.approx(5.75, abs=0.005) and r.p_value == pytest.approx(0.056, abs=0.0005)
    assert r.g.ci_low < 0 < r.g.ci_high  # the g interval agrees with the test


@pytest.fixture(scope="module")
def mods(data):
    t = M.moderators(data).frame
    return t[t["outcome"] == "confidence"].set_index("quantity")


def test_age_band_interactions_and_within_band_effects_match_lmertest(mods, ref):
    bands = [b for b in ("30_39", "40_49", "50_plus")]
    for band in bands:
        row = mods.loc[f"interaction_{band}_vs_under_30"]
        _check(row, ref, "age", "interaction", f"arm:age{band}")
    for band in ("under_30", *bands):
        _check(mods.loc[f"effect_in_{band}"], ref, "age", "nested", f"age{band}:arm")


def test_experience_interaction_and_effects_match_lmertest(data, mods, ref):
    _check(mods.loc["interaction_per_year"], ref, "experience", "interaction", "arm:yq")
    _check(mods.loc["effect_at_10_years"], ref, "experience", "interaction", "arm")
    curve = M.moderators(data).curves
    c0 = curve[(curve["outcome"] == "confidence") & (curve["years"] == 0.0)].iloc[0]
    est = _r(ref, "experience", "curve_years0", "arm - 10 arm:yq", "estimate")
    se = _r(ref, "experience", "curve_years0", "arm - 10 arm:yq", "kr_se")
    df = _r(ref, "experience", "curve_years0", "arm - 10 arm:yq", "kr_df")
    q = stats.t.ppf(0.975, df)
    assert c0["effect"] == pytest.approx(est, rel=RTOL)
    assert c0["ci_low"] == pytest.approx(est - q * se, rel=RTOL)
    assert c0["ci_high"] == pytest.approx(est + q * se, rel=RTOL)


def test_la_interactions_and_the_joint_kr_f_test_match_pbkrtest(data, mods, ref):
    for la in data.las[1:]:
        _check(mods.loc[f"interaction_{la}_vs_{data.las[0]}"], ref, "la", "interaction", f"arm:la{la}")
    for la in data.las:
        _check(mods.loc[f"effect_in_{la}"], ref, "la", "nested", f"la{la}:arm")
    joint = mods.loc["wald_f_arm_x_la"]
    assert joint["estimate"] == pytest.approx(_r(ref, "la", "joint", "arm:la", "f_stat"), rel=RTOL)
    assert joint["ndf"] == _r(ref, "la", "joint", "arm:la", "ndf")
    assert joint["df"] == pytest.approx(_r(ref, "la", "joint", "arm:la", "ddf"), rel=RTOL)
    assert joint["p_value"] == pytest.approx(_r(ref, "la", "joint", "arm:la", "p_value"), rel=RTOL)


def _check(row, ref, dataset, model, term):
    for ours, theirs in (
        ("estimate", "estimate"),
        ("se", "kr_se"),
        ("df", "kr_df"),
        ("p_value", "kr_p"),
        ("ci_low", "kr_ci_low"),
        ("ci_high", "kr_ci_high"),
    ):
        assert row[ours] == pytest.approx(_r(ref, dataset, model, term, theirs), rel=RTOL, abs=ATOL), (term, ours)
    assert np.isfinite(row["df"])


@pytest.mark.parametrize("moderator", ["age", "experience"])
def test_each_moderators_joint_kr_f_test_matches_pbkrtest(mods, moderator):
    """wald_f_age (3 numerator df) and wald_f_experience (1) against pbkrtest::KRmodcomp
    (tests/fixtures/moderator_joint_f; lmerTest::contest gives the same), 1e-6 relative."""
    ref = pd.read_csv(FIX.parent / "moderator_joint_f" / "ref.csv")
    ref = ref[(ref["moderator"] == moderator) & (ref["source"] == "KRmodcomp")].set_index("quantity")["value"]
    joint = mods.loc[f"wald_f_{moderator}"]
    assert joint["estimate"] == pytest.approx(ref["f_stat"], rel=RTOL)
    assert joint["ndf"] == ref["ndf"]
    assert joint["df"] == pytest.approx(ref["ddf"], rel=RTOL)
    assert joint["p_value"] == pytest.approx(ref["p_value"], rel=RTOL)
