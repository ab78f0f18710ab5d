"""The impact strand end to end on small roots: contract rows, non-convergence
never silent, and a scope that cannot be analysed says so instead of crashing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from isafe_helpers import impact
from isafe_helpers.config import threshold
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import casefiles
from isafe_helpers.impact import compliance as impact_cace
from isafe_helpers.impact import flow as impact_flow
from isafe_helpers.impact import primary_model as primary_mod
from isafe_helpers.impact import sensitivity as impact_robust
from isafe_helpers.impact import subgroups as impact_moderators
from isafe_helpers.publish import report
from isafe_helpers.publish.figures import impact as fig
from isafe_helpers.publish.ledger import Ledger
from isafe_helpers.results.labels import label
from isafe_helpers.stats import gee

CONTRACT = {
    "treatment_effect",
    "hedges_g_total",
    "hedges_g_total_conditional",
    "icc",
    "team_variance",
    "residual_variance",
    "team_variance_unconditional",
    "residual_variance_unconditional",
}


def published(*tabs):
    """The tables' views as a page publishes them (:func:`report.views` under a fresh ledger)."""
    ledger = Ledger(threshold())
    keys = [ledger.register(t, f"test/figure/{j}") for j, t in enumerate(tabs)]
    return report.views(report.Spec("figure-1", "figure", 1, list(tabs)), ledger.solve(), keys)


def _all_rows(data):
    primary = impact.primary_all(data)
    rob = impact_robust.robustness(data, n_perm=200, n_imputations=2)
    mods = impact_moderators.moderators(data)
    flow = impact_flow.trial_flow(data)
    # each figure drawn as a page draws it: from its tables' published views, withheld values NaN
    fig.consort(published(flow.table()), n_las=flow.n_las, outcome=flow.outcome)
    fig.experience_moderation(published(fig.curve_table(mods.curves)))
    fig.effect_sizes(published(primary.table()))
    rows = (
        primary.rows()
        + impact.casefile(data).rows()
        + impact.attrition(data).rows()
        + impact_flow.baseline_equivalence(data).rows()
        + flow.rows()
        + rob.rows()
        + impact_cace.cace_all(data, primary).rows()
        + mods.rows()
    )
    return pd.DataFrame(rows), primary


@pytest.fixture(scope="module")
def trial(_small_root_template):
    return load_root(_small_root_template)


def test_contract_rows_for_trial_and_la(trial):
    for scope in ("trial", "LA01"):
        rows, _ = _all_rows(trial.for_scope(scope))
        prim = rows[rows["analysis"] == "primary"]
        for scale in trial.instrument.scale_names:
            assert CONTRACT <= set(prim.loc[prim["outcome"] == scale, "quantity"])
        assert {"odds_ratio", "risk_difference", "cox_index"} <= set(
            prim.loc[prim["outcome"] == "father_contact_recorded", "quantity"]
        )
        att = rows[rows["analysis"] == "attrition"]
        assert {"overall_attrition_pct", "differential_attrition_pct"} <= set(att["quantity"])
        for a in (
            "sensitivity_mi",
            "sensitivity_ri",
            "sensitivity_cr2",
            "cace",
            "subgroup_age",
            "subgroup_experience",
            "baseline_equivalence",
            "secondary",
            "sensitivity_satterthwaite",
            "sensitivity_cace_one_session",
        ):
            assert a in set(rows["analysis"]), a
        assert ("subgroup_la" in set(rows["analysis"])) == (scope == "trial")


def test_an_la_with_every_team_in_one_arm_is_reported_not_crashed(small_root):
    data = load_root(small_root).for_scope("LA01")
    data.tables["teams"] = data.teams.assign(arm="treatment")
    rows, primary = _all_rows(data)
    assert all(p.note.startswith("not estimable") for p in primary)
    est = rows[
        rows["analysis"].isin(["primary", "sensitivity_ri", "sensitivity_cr2", "sensitivity_mi", "cace"])
        & rows["estimate"].isna()
    ]
    assert len(est) and est["note"].str.startswith("not estimable").all()
    shown = primary.table()  # compact: no note column; each outcome's reason is among the table's notes
    assert shown.data[["effect", "hedges_g"]].isna().all().all()
    assert all(f"{label(p.outcome)}: {p.note}." in shown.notes and p.note.startswith("not estimable") for p in primary)
    assert "not estimable" in impact.convergence_message(primary)


def test_non_convergence_is_never_silent(trial, monkeypatch):
    real = primary_mod.fit_formula_free

    def unconverged(*a, **k):
        fit = real(*a, **k)  # keeps what Kenward-Roger needs (dataclasses.replace would drop it)
        object.__setattr__(fit, "converged", False)
        object.__setattr__(fit, "message", "NOT converged: test")
        return fit

    monkeypatch.setattr(primary_mod, "fit_formula_free", unconverged)
    r = impact.primary(trial, "confidence")
    assert not r.converged and r.withheld and "did not converge" in r.note
    rows = pd.DataFrame(r.rows())
    assert rows["note"].str.contains("did not converge").all()
    assert rows["estimate"].notna().all()  # estimates.csv keeps the numbers, with the note
    table = primary_mod.PrimaryAnalysis([r]).table()
    shown = table.data
    # the compact table has no note column: the reason is among its notes
    assert f"{label(r.outcome)}: not available: {r.note}." in table.notes and r.note.startswith("did not converge")
    number_cols = ["effect", "ci_low", "ci_high", "p_value", "hedges_g", "g_ci_low", "g_ci_high", "icc"]
    assert shown[number_cols].isna().all().all()  # the table withholds them
    assert "Confidence in engaging fathers (did not converge" in impact.convergence_message([r])


def test_a_withheld_estimate_leaves_the_holm_family_and_the_robustness_table(trial, monkeypatch):
    real = primary_mod.fit_formula_free

    def unconverged(*a, **k):
        fit = real(*a, **k)  # keeps what Kenward-Roger needs (dataclasses.replace would drop it)
        object.__setattr__(fit, "converged", False)
        object.__setattr__(fit, "message", "NOT converged: test")
        return fit

    good = impact.primary_all(trial)
    monkeypatch.setattr(primary_mod, "fit_formula_free", unconverged)
    bad = impact.primary(trial, "competence")
    pa = primary_mod.PrimaryAnalysis([good[0], bad, *good.results[2:]], good.casefile, good.protocol)
    fam = pa.family.set_index("outcome")
    assert np.isnan(fam.loc["competence", "p_holm"])
    holm = pa.tidy().query("quantity == 'p_holm'").set_index("outcome")
    assert "no p-value to adjust (did not converge" in holm.loc["competence", "note"]
    rob = impact_robust.Robustness([], [], [], primary=pa).table().data
    comp = rob[rob["outcome"] == "Competence in engaging fathers"]
    assert comp["estimate"].isna().all() and comp["note"].str.startswith("not available").all()


def test_a_gee_that_did_not_converge_says_so_in_the_casefile_note(trial, monkeypatch):
    real = gee.gee_binary

    def stopped(*a, **k):
        return dataclasses.replace(real(*a, **k), converged=False, reason="estimating equations not solved: test")

    monkeypatch.setattr(casefiles, "gee_binary", stopped)
    c = impact.casefile(trial)
    assert not c.converged and c.note.startswith("did not converge: estimating equations not solved: test")
    assert all(r["note"].startswith("did not converge") for r in c.rows())
    assert all(np.isfinite(r["estimate"]) for r in c.rows())  # kept in estimates.csv
    shown = c.table().data
    assert shown[["estimate", "ci_low", "ci_high", "p_value"]].isna().all().all()
    assert shown["note"].str.startswith("not available: did not converge").all()


def test_the_diverging_la06_case_file_model_falls_back_to_a_labelled_independence_gee():
    """LA06 of the bundled data: the exchangeable GEE diverges (geepack too: coefficients to 1e15), so the
    independence GEE with the same Mancl-DeRouen correction is reported, labelled as such."""
    from isafe_helpers.resources import BUNDLED_DATA

    c = impact.casefile(load_root(BUNDLED_DATA).for_scope("LA06"))
    assert c.converged and c.working == "independence"
    assert c.note.startswith("independence working correlation (the exchangeable GEE did not converge: the iter")
    assert all(r["note"].startswith("independence working correlation") for r in c.rows())
    t = c.table()
    assert t.data["estimate"].notna().all()
    assert any("independence working correlation" in n for n in t.notes)
    pa = primary_mod.PrimaryAnalysis([], c)
    assert np.isfinite(pa.family.set_index("outcome").loc["father_contact_recorded", "p_value"])


def _exchangeable_fails(monkeypatch, independence_fails=False):
    real = gee.gee_binary

    def fit(*a, corr="exchangeable", **k):
        out = real(*a, corr=corr, **k)
        if corr == "exchangeable" or independence_fails:
            return dataclasses.replace(out, converged=False, reason=f"test: {corr} stopped")
        return out

    monkeypatch.setattr(casefiles, "gee_binary", fit)
    return real


def test_a_failed_exchangeable_gee_gives_the_labelled_independence_fit(trial, monkeypatch):
    real = _exchangeable_fails(monkeypatch)
    c = impact.casefile(trial)
    assert c.converged and c.working == "independence" and c.alpha == 0
    assert c.note.startswith("independence working correlation (the exchangeable GEE did not converge: test: exch")
    # the numbers are the independence GEE's, with the Mancl-DeRouen SE on the same df
    d = casefiles.casefile_frame(trial)
    X = pd.DataFrame({"const": 1.0, "treated": (d["arm"] == "treatment").astype(float), "base": d["base"]})
    X = X.join(pd.get_dummies(d["la"].astype(str), prefix="la", drop_first=True, dtype=float))
    ref = real(d["recorded"], d["audited"], X, d["team_id"], "treated", corr="independence")
    assert np.allclose(c.odds_ratio, ref.odds_ratio.as_tuple())
    assert np.allclose(c.risk_difference, ref.risk_difference.as_tuple())
    t = c.table()
    assert t.data["estimate"].notna().all() and "independence correlation within team" in t.notes[0]
    assert any("exchangeable working correlation did not converge" in n for n in t.notes)


def test_when_both_working_correlations_fail_the_exchangeable_failure_is_reported(trial, monkeypatch):
    _exchangeable_fails(monkeypatch, independence_fails=True)
    c = impact.casefile(trial)
    assert not c.converged and c.working == "exchangeable"
    assert c.note.startswith("did not converge: test: exchangeable stopped")
    assert c.table().data["estimate"].isna().all()


def test_cox_index_is_the_log_odds_ratio_over_1_65_beside_the_odds_ratio(trial):
    c = impact.casefile(trial)
    rows = pd.DataFrame(c.rows()).set_index("quantity")
    o, x = rows.loc["odds_ratio"], rows.loc["cox_index"]
    assert x["estimate"] == pytest.approx(np.log(o["estimate"]) / 1.65, rel=1e-12)
    assert x["ci_low"] == pytest.approx(np.log(o["ci_low"]) / 1.65, rel=1e-12)
    assert x["ci_high"] == pytest.approx(np.log(o["ci_high"]) / 1.65, rel=1e-12)
    assert x["se"] == pytest.approx(o["se"] / 1.65, rel=1e-12) and x["p_value"] == o["p_value"]
    # by hand from the arm coefficient: ln(OR) is the coefficient itself
    assert x["estimate"] * 1.65 == pytest.approx(np.log(c.odds_ratio[0]))
    t = c.table().data.set_index("measure")
    assert t.loc["Cox index (standardised effect size)", "estimate"] == pytest.approx(x["estimate"])


def test_a_randomisation_test_whose_null_model_did_not_converge_is_not_shown(trial, monkeypatch):
    real = impact_robust.fit_random_intercept

    def unconverged(*a, **k):
        fit = real(*a, **k)
        object.__setattr__(fit, "converged", False)
        object.__setattr__(fit, "message", "NOT converged: test")
        return fit

    monkeypatch.setattr(impact_robust, "fit_random_intercept", unconverged)
    ri = impact_robust.randomisation_inference(trial, "confidence", n_perm=50)
    assert np.isfinite(ri.estimate) and ri.rows()[0]["note"].startswith("did not converge: null model")
    shown = impact_robust.Robustness([], [ri], []).table().data
    assert shown["estimate"].isna().all() and shown["note"].str.startswith("not available").all()


def test_cox_index_by_hand_from_a_given_odds_ratio():
    # OR 2 (1.2 to 3.5), SE(log OR) 0.3: Cox index ln 2 / 1.65 = 0.42009..., CI 0.11049 to 0.75925
    c = casefiles.CasefileResult(40, 4, odds_ratio=(2.0, 0.3, 1.2, 3.5, 0.01))
    est, se, lo, hi, p = c.cox_index
    assert (round(est, 5), round(se, 5), round(lo, 5), round(hi, 5), p) == (0.42009, 0.18182, 0.1105, 0.75925, 0.01)
