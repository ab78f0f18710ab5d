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
