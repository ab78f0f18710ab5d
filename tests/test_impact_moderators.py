"""Exploratory moderators: Holm adjustment, reparameterisation, scope rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import subgroups as M


def test_holm_by_hand_and_against_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> cummax 0.06
    np.testing.assert_allclose(M.holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(M.holm(p)[4])
    q = np.random.default_rng(0).random(25)
    np.testing.assert_allclose(M.holm(q), multipletests(q, method="holm")[1])


@pytest.fixture(scope="module")
def mods(_small_root_template):
    return M.moderators(load_root(_small_root_template))


def test_within_level_effects_are_base_plus_interaction(mods):
    t = mods.frame
    for outcome in t["outcome"].unique():
        a = t[(t["outcome"] == outcome) & (t["moderator"] == "la")].set_index("quantity")["estimate"]
        if a.isna().all():
            continue
        levels = [q.removeprefix("effect_in_") for q in a.index if q.startswith("effect_in_")]
        ref = levels[0]
        for lev in levels[1:]:
            assert a[f"effect_in_{lev}"] == pytest.approx(
                a[f"effect_in_{ref}"] + a[f"interaction_{lev}_vs_{ref}"], abs=1e-8
            )


def test_holm_family_and_rows(mods):
    t = mods.frame
    inter = t[t["kind"] == "interaction"]
    np.testing.assert_allclose(inter["p_holm"], M.holm(inter["p_value"].to_numpy()))
    rows = pd.DataFrame(mods.rows())
    assert set(rows["analysis"]) <= {"subgroup_age", "subgroup_experience", "subgroup_la"}
    assert rows["note"].str.contains("exploratory|not estimable").all()


def test_no_la_moderation_in_an_la_scope(_small_root_template):
    m = M.moderators(load_root(_small_root_template).for_scope("LA01"))
    assert "la" not in set(m.frame["moderator"])


def test_level_in_one_arm_only_is_left_out_with_a_note(small_root):
    data = load_root(small_root)
    treated = data.teams.loc[data.teams["arm"] == "treatment", "team_id"]
    p = data.participants.copy()
    p["age_band"] = p["age_band"].astype(object)
    p.loc[p["team_id"].isin(treated), "age_band"] = "under_30"  # under_30 only in treatment teams
    p.loc[~p["team_id"].isin(treated) & (p["age_band"] == "under_30"), "age_band"] = "30_39"
    data.tables["participants"] = p
    t = M.moderators(data).frame
    age = t[t["moderator"] == "age"]
    assert age["note"].str.contains("under_30").all() or age["note"].str.startswith("not estimable").all()


def test_a_moderator_model_that_did_not_converge_is_kept_in_the_rows_and_not_shown(_small_root_template, monkeypatch):
    real = M.fit_random_intercept

    def unconverged(*a, **k):
        fit = real(*a, **k)
        object.__setattr__(fit, "converged", False)
        object.__setattr__(fit, "message", "NOT converged: test")
        return fit

    monkeypatch.setattr(M, "fit_random_intercept", unconverged)
    res = M.moderators(load_root(_small_root_template))
    fitted = res.frame[res.frame["estimate"].notna()]
    assert len(fitted) and fitted["note"].str.startswith("did not converge").all()
    assert fitted["p_holm"].isna().all()  # out of the Holm family
    rows = pd.DataFrame(res.rows())
    assert rows.loc[rows["estimate"].notna(), "note"].str.startswith("did not converge").all()
    shown = res.table().data
    assert shown["estimate"].isna().all() and shown["p_value"].isna().all()
    assert res.curves.empty


def test_each_categorical_moderator_gets_a_joint_kenward_roger_f_test_in_its_own_row(mods):
    """wald_f_age: F on (bands - 1) numerator df; with one band pair the KR F is the square of the KR t."""
    t = mods.frame
    rows = pd.DataFrame(mods.rows())
    for outcome in t["outcome"].unique():
        age = t[(t["outcome"] == outcome) & (t["moderator"] == "age")].set_index("quantity")
        inter = age[age["kind"] == "interaction"]
        if inter["estimate"].isna().all():
            continue
        f = age.loc["wald_f_age"]
        assert f["kind"] == "joint" and f["ndf"] == len(inter) and f["estimate"] >= 0 and 0 <= f["p_value"] <= 1
        if len(inter) == 1:  # F(1, d) = t^2 on the same KR df
            assert f["estimate"] == pytest.approx((inter["estimate"].iloc[0] / inter["se"].iloc[0]) ** 2, rel=1e-8)
        row = rows[(rows["analysis"] == "subgroup_age") & (rows["quantity"] == "wald_f_age")]
        assert len(row[row["outcome"] == outcome]) == 1
        assert row["note"].str.contains("joint Kenward-Roger F test of every arm x age band term").all()
        # years qualified: one arm-by-years term, so its joint F is that term's KR t squared on the same df
        ex = t[(t["outcome"] == outcome) & (t["moderator"] == "experience")].set_index("quantity")
        if "wald_f_experience" in ex.index:
            fe, it = ex.loc["wald_f_experience"], ex.loc["interaction_per_year"]
            assert fe["ndf"] == 1 and fe["df"] == pytest.approx(it["df"], rel=1e-8)
            assert fe["estimate"] == pytest.approx((it["estimate"] / it["se"]) ** 2, rel=1e-8)
            assert fe["p_value"] == pytest.approx(it["p_value"], rel=1e-8)
    # never in an Estimate column: the moderator table leaves the F tests out; the joint table shows them
    assert len(mods.table().data) == int((~t["quantity"].str.startswith("wald_f")).sum())
    joint = mods.joint_table().data
    assert set(joint.columns) >= {"f_stat", "ndf", "ddf", "p_value"} and "estimate" not in joint.columns
    assert len(joint) == int(t["quantity"].str.startswith("wald_f").sum())


def test_the_joint_f_test_of_one_term_equals_the_square_of_its_kr_t():
    """Against the KR machinery directly: a 2-band moderator, one interaction, F = t^2 and the same p."""
    from isafe_helpers.stats.kenward_roger import kenward_roger_test
    from isafe_helpers.stats.mixed import fit_random_intercept

    rng = np.random.default_rng(3)
    J, n = 16, 6
    team = np.repeat(np.arange(J), n)
    treated = (np.arange(J) % 2)[team].astype(float)
    band = rng.integers(0, 2, J * n).astype(float)
    y = 0.2 * treated + 0.1 * band + 0.3 * treated * band + rng.normal(0, 0.4, J)[team] + rng.normal(0, 1, J * n)
    X = np.column_stack([np.ones(J * n), treated, band, treated * band])
    fit = fit_random_intercept(y, X, team)
    kr = fit.kenward_roger()
    L = np.zeros((1, 4))
    L[0, 3] = 1.0
    f = kenward_roger_test(kr, L)
    t = fit.beta[3] / np.sqrt(kr.cov_beta_adj[3, 3])
    assert f.f_stat == pytest.approx(t**2, rel=1e-8) and f.ndf == 1
