"""Process figures on tiny hand-made data roots, checked by plain arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from tiny import COSTS_HEAD, TARGETS, make_root, standard_root

from isafe_helpers import process
from isafe_helpers.data.loading import load_root
from isafe_helpers.stats import proportions

COSTS = COSTS_HEAD + "t,trainer_fees,delivery,developer,1,item,10,2023\n"
FB_HEAD = "person_id,component,satisfaction,usefulness,would_recommend,comment\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The standard tiny root, loaded once (tests only read it)."""
    return load_root(standard_root(tmp_path_factory.mktemp("std")))


def rows_of(res):
    return {(r["analysis"], r["outcome"], r["quantity"]): r for r in res.rows()}


# --------------------------------------------------------------------------
# Reach
# --------------------------------------------------------------------------
def test_reach_hand_computed(data):
    t = process.reach(data).frame.set_index("component")
    # father_engagement: P1 (twice) and X9 attended, P2 did not: 2 distinct of 2
    assert t.loc["father_engagement", "attendees"] == 2
    assert t.loc["father_engagement", "reach_pct"] == pytest.approx(100.0)
    # motivational_interviewing: P2 and P3: 2 of 4
    assert t.loc["motivational_interviewing", "reach_pct"] == pytest.approx(50.0)
    assert t.loc["qa_audit", "attendees"] == 0 and t.loc["qa_audit", "reach_pct"] == 0
    assert t.loc["leaders_webinar", "reach_pct"] == pytest.approx(200.0)
    assert "over 100%" in t.loc["leaders_webinar", "flag"]


def test_reach_over_100_is_not_capped_and_has_no_interval(data):
    rows = rows_of(process.reach(data))
    r = rows[("reach", "leaders_webinar", "reach_pct")]
    assert r["estimate"] == pytest.approx(200.0)
    assert np.isnan(r["ci_low"]) and np.isnan(r["ci_high"])
    assert "over 100%" in r["note"]


def test_pathway_reach_is_places_filled_over_places_intended(data):
    t = process.reach(data).frame.set_index("component")
    # practice: (2 FE + 2 MI) / (2 + 4) ; system: (0 qa + 1 champion + 2 leaders) / (1 + 1 + 1)
    assert t.loc["practice_pathway", "attendees"] == 4
    assert t.loc["practice_pathway", "intended_n"] == 6
    assert t.loc["practice_pathway", "reach_pct"] == pytest.approx(100 * 4 / 6)
    assert t.loc["system_pathway", "reach_pct"] == pytest.approx(100.0)


def test_reach_rows_keep_the_contract_names(data):
    rows = rows_of(process.reach(data))
    for comp in ("father_engagement", "motivational_interviewing", "qa_audit", "champion", "leaders_webinar"):
        for q in ("reach_pct", "attendees", "intended_n"):
            assert ("reach", comp, q) in rows
    assert rows[("reach", "motivational_interviewing", "intended_n")]["estimate"] == 4


def test_reach_wilson_interval(data):
    t = process.reach(data).frame.set_index("component")
    # Wilson for 2 of 4 at z = 1.959964: centre 0.5, half-width computed by hand
    z, n, p = 1.959963984540054, 4, 0.5
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert t.loc["motivational_interviewing", "ci_low"] == pytest.approx(100 * (centre - half))
    assert t.loc["motivational_interviewing", "ci_high"] == pytest.approx(100 * (centre + half))


def _two_las(tmp_path):
    att = "person_id,component,attended\n{la}-P1,father_engagement,true\n{la}-P2,motivational_interviewing,true\n"
    r1 = make_root(tmp_path / "a", "LA01", att.format(la="LA01"), TARGETS, None, None, COSTS)
    r2 = make_root(
        tmp_path / "a",
        "LA02",
        att.format(la="LA02"),
        TARGETS.replace("father_engagement,2", "father_engagement,8"),
        None,
        None,
        COSTS,
    )
    assert r1 == r2
    return r1


def test_pooled_reach_is_ratio_of_sums(tmp_path):
    t = process.reach(load_root(_two_las(tmp_path))).frame.set_index("component")
    assert t.loc["father_engagement", "reach_pct"] == pytest.approx(100 * 2 / 10)  # not mean(50, 12.5)
    # practice pathway pooled: (1 + 1 + 1 + 1) / (2 + 4 + 8 + 4)
    assert t.loc["practice_pathway", "reach_pct"] == pytest.approx(100 * 4 / 18)


def test_reach_per_la_in_pooled_scope(tmp_path):
    by_la = process.reach(load_root(_two_las(tmp_path))).frames["by_la"].set_index(["la", "component"])
    assert by_la.loc[("LA01", "father_engagement"), "reach_pct"] == pytest.approx(50.0)
    assert by_la.loc[("LA02", "father_engagement"), "reach_pct"] == pytest.approx(12.5)
    assert by_la.loc[("LA02", "practice_pathway"), "reach_pct"] == pytest.approx(100 * 2 / 12)


# --------------------------------------------------------------------------
# Who was reached, dose
# --------------------------------------------------------------------------
@pytest.fixture
def dose_root(tmp_path):
    """Six participants, P1..P4 in the treatment team, P5 and P6 in control."""
    la = "LA01"
    att = (
        "person_id,component,attended\n"
        f"{la}-P1,father_engagement,true\n{la}-P1,motivational_interviewing,yes\n"  # both
        f"{la}-P2,father_engagement,true\n{la}-P2,father_engagement,true\n"  # one (same session twice)
        f"{la}-P3,motivational_interviewing,false\n"  # none: offered, not attended
        f"{la}-P5,father_engagement,true\n"  # control team: not in dose
        f"{la}-X9,motivational_interviewing,true\n"  # outside the participants table
    )  # P4: no attendance row at all: none
    people = [
        ("social_worker", "30_39", "2"),
        ("social_worker", "under_30", "12"),
        ("team_manager", "30_39", ""),
        ("social_worker", "", "25"),
        ("social_worker", "30_39", "5"),
        ("other", "40_49", "5"),
    ]
    scores = {f"{la}-P1": (2, 4), f"{la}-P2": (3, 4), f"{la}-P3": (3, 3), f"{la}-P4": (4, 3)}
    return make_root(
        tmp_path, la, att, TARGETS, None, None, COSTS, n_people=6, n_treated=4, people=people, scores=scores
    )


def test_dose_hand_computed(dose_root):
    res = process.dose(load_root(dose_root))
    t = res.frame.set_index("la").loc["all"]
    assert (t["participants"], t["none"], t["one"], t["both"]) == (4, 2, 1, 1)
    assert t["none_pct"] == pytest.approx(50.0) and t["both_pct"] == pytest.approx(25.0)
    rows = rows_of(res)
    assert rows[("dose", "one", "participants")]["estimate"] == 1
    assert rows[("dose", "none", "share_pct")]["n"] == 4


def test_reached_profile_by_role_age_and_experience(dose_root):
    t = process.reached_profile(load_root(dose_root)).frame.set_index(["characteristic", "group"])
    # reached: P1, P2; not reached: P3, P4 (P5 control and X9 outside do not count)
    assert (t.loc[("all", "all"), "reached"], t.loc[("all", "all"), "not_reached"]) == (2, 2)
    assert t.loc[("role", "social_worker"), ["reached", "not_reached"]].tolist() == [2, 1]
    assert t.loc[("role", "team_manager"), ["reached", "not_reached"]].tolist() == [0, 1]
    assert t.loc[("age_band", "not given"), "not_reached"] == 1  # P4's blank age band
    assert t.loc[("experience", "under 5 years"), "reached"] == 1  # P1, 2 years
    assert t.loc[("experience", "10 to under 20 years"), "reached"] == 1  # P2, 12 years
    assert t.loc[("experience", "not given"), "not_reached"] == 1  # P3
    assert t.loc[("experience", "20 years or more"), "reached_pct"] == 0  # P4, 25 years
    assert t.loc[("role", "social_worker"), "reached_pct"] == pytest.approx(200 / 3)


def test_dose_outcome_is_mean_change_within_treatment_arm(dose_root):
    from isafe_helpers.process import variation as process_variation

    t = process_variation.dose_outcome(load_root(dose_root)).frame
    conf = t[t["outcome"] == "confidence"].set_index("dose")
    # both: P1 2 -> 4; one: P2 3 -> 4; none: P3 3 -> 3 and P4 4 -> 3
    assert conf.loc["both", "mean_change"] == pytest.approx(2.0)
    assert conf.loc["one", "mean_change"] == pytest.approx(1.0)
    assert conf.loc["none", "mean_change"] == pytest.approx(-0.5)
    assert conf.loc["none", "n"] == 2
    assert conf.loc["none", "se"] == pytest.approx(np.std([0, -1], ddof=1) / np.sqrt(2))


# --------------------------------------------------------------------------
# Satisfaction, usefulness, would-recommend, response rate, themes
# --------------------------------------------------------------------------
def test_satisfaction_hand_computed(data):
    t = process.satisfaction(data).frame.set_index("component")
    assert t.loc["father_engagement", "satisfied_pct"] == pytest.approx(50.0)
    assert t.loc["all", "satisfied_pct"] == pytest.approx(200 / 3)
    assert t.loc["all", "respondents"] == 3
    assert np.isnan(t.loc["qa_audit", "satisfied_pct"])


def test_satisfaction_distribution_counts_each_answer(data):
    d = process.satisfaction(data).frames["distribution"].set_index("component")
    assert d.loc["all", ["1", "2", "3", "4", "5"]].tolist() == [0, 0, 1, 1, 1]


def test_pooled_satisfaction_interval_is_cluster_robust_by_la(tmp_path):
    att = "person_id,component,attended\n{la}-P1,father_engagement,true\n"
    fb1 = FB_HEAD + "LA01-P1,father_engagement,5,,,\nLA01-P2,father_engagement,4,,,\nLA01-X1,father_engagement,2,,,\n"
    fb2 = FB_HEAD + "LA02-P1,father_engagement,5,,,\nLA02-P2,father_engagement,1,,,\n"
    make_root(tmp_path, "LA01", att.format(la="LA01"), TARGETS, fb1, None, COSTS)
    root = make_root(tmp_path, "LA02", att.format(la="LA02"), TARGETS, fb2, None, COSTS)
    rows = rows_of(process.satisfaction(load_root(root)))
    r = rows[("satisfaction", "father_engagement", "satisfied_pct")]
    # p = 3/5; residuals 2 - 0.6*3 = 0.2 and 1 - 0.6*2 = -0.2
    # var = G/(G-1) * (0.2^2 + 0.2^2) / 5^2 = 2 * 0.08 / 25 = 0.0064 -> se 0.08
    assert r["estimate"] == pytest.approx(60.0)
    assert r["se"] == pytest.approx(8.0)
    t = stats.t.ppf(0.975, 1)
    assert r["ci_low"] == pytest.approx(max(0.0, 60 - t * 8))
    assert r["ci_high"] == pytest.approx(min(100.0, 60 + t * 8))
    assert r["n_clusters"] == 2 and "cluster" in r["note"]


def test_cluster_ci_unclipped_three_clusters():
    # k = (3, 5, 2), n = (5, 10, 5): p = 0.5; residuals 0.5, 0, -0.5
    se, lo, hi = proportions.cluster_ci(np.array([3, 5, 2]), np.array([5, 10, 5]))
    var = 3 / 2 * (0.25 + 0 + 0.25) / 20**2
    assert se == pytest.approx(100 * np.sqrt(var))
    t = stats.t.ppf(0.975, 2)
    assert (lo, hi) == pytest.approx((50 - t * 100 * np.sqrt(var), 50 + t * 100 * np.sqrt(var)))


def test_usefulness_and_recommend_leave_blanks_out(data):
    t = process.usefulness(data).frame.set_index("component")
    # usefulness answers: P1 FE 4, X9 FE blank, P2 MI 5; recommend: true, blank, false
    assert t.loc["father_engagement", "usefulness_answers"] == 1
    assert t.loc["all", "useful_pct"] == pytest.approx(100.0)
    assert t.loc["all", "mean_usefulness"] == pytest.approx(4.5)
    assert t.loc["all", "recommend_pct"] == pytest.approx(50.0)
    assert t.loc["all", "recommend_answers"] == 2


def test_response_rate_hand_computed(tmp_path):
    la = "LA01"
    att = (
        "person_id,component,attended\n"
        f"{la}-P1,father_engagement,true\n{la}-P1,father_engagement,true\n{la}-P2,father_engagement,true\n"
        f"{la}-P2,motivational_interviewing,false\n{la}-X9,champion,true\n"
    )
    fb = FB_HEAD + (
        f"{la}-P1,father_engagement,5,,,\n"
        f"{la}-P1,father_engagement,4,,,\n"  # two rows, one respondent
        f"{la}-P2,motivational_interviewing,4,,,\n"
    )  # did not attend MI
    root = make_root(tmp_path, la, att, TARGETS, fb, None, COSTS)
    t = process.response_rate(load_root(root)).frame.set_index("component")
    assert t.loc["father_engagement", ["attendees", "respondents"]].tolist() == [2, 1]
    assert t.loc["father_engagement", "response_rate_pct"] == pytest.approx(50.0)
    assert t.loc["all", "response_rate_pct"] == pytest.approx(100 / 3)  # 1 of (P1 FE, P2 FE, X9 champion)
    assert t.loc["all", "feedback_without_attendance"] == 1


def test_themes_are_counts_only_when_coded(tmp_path, data):
    assert not process.has_themes(data)
    assert process.themes(data).frame.empty
    fb = (
        FB_HEAD.strip() + ",theme\n" + "LA01-P1,father_engagement,5,,,secret words,practical\n"
        "LA01-P2,father_engagement,4,,,,practical\nLA01-P2,motivational_interviewing,4,,,,too_long\n"
    )
    r2 = make_root(tmp_path / "b", "LA01", "person_id,component,attended\n", TARGETS, fb, None, COSTS)
    res = process.themes(load_root(r2))
    t = res.frame.set_index(["theme", "component"])
    assert t.loc[("practical", "father_engagement"), "count"] == 2
    assert t.loc[("practical", "all"), "count"] == 2 and t.loc[("too_long", "all"), "count"] == 1
    assert "secret" not in res.frame.to_string()


# --------------------------------------------------------------------------
# Fidelity
# --------------------------------------------------------------------------
def test_fidelity_is_ratio_of_sums(data):
    t = process.fidelity(data).frame.set_index("component")
    assert t.loc["father_engagement", "delivered_pct"] == pytest.approx(100 * 12 / 16)
    assert t.loc["all", "delivered_pct"] == pytest.approx(100 * 16 / 20)


def test_fidelity_quality_and_sessions_below_threshold(data):
    res = process.fidelity(data)
    t = res.frame.set_index("component")
    # S1 9/10 = 90%, S2 3/6 = 50% (below 80%), S3 4/4; quality 4, blank, 5
    assert t.loc["father_engagement", "quality_mean"] == pytest.approx(4.0)
    assert t.loc["all", "quality_mean"] == pytest.approx(4.5)
    assert t.loc["all", "below_threshold"] == 1
    assert res.frames["below"]["session_id"].tolist() == ["S2"]
    heat = res.frames["by_la"].set_index(["la", "component"])
    assert heat.loc[("LA01", "champion"), "delivered_pct"] == pytest.approx(100.0)
    assert np.isnan(heat.loc[("LA01", "qa_audit"), "delivered_pct"])


# --------------------------------------------------------------------------
# Missing optional files
# --------------------------------------------------------------------------
def test_optional_files_missing_give_blank_rows_with_notes(tmp_path):
    att = "person_id,component,attended\nLA01-P1,father_engagement,true\n"
    root = make_root(tmp_path, "LA01", att, TARGETS, None, None, COSTS_HEAD + "t,other,setup,funder,1,item,1,2023\n")
    data = load_root(root)
    sat = process.satisfaction(data)
    assert all(np.isnan(r["estimate"]) for r in sat.rows() if r["quantity"] == "satisfied_pct")
    assert all(r["note"] == "no feedback returned" for r in sat.rows() if r["quantity"] == "satisfied_pct")
    fid = process.fidelity(data)
    assert all(np.isnan(r["estimate"]) and r["note"] for r in fid.rows())
    resp = process.response_rate(data)
    assert all(np.isnan(r["estimate"]) for r in resp.rows() if r["quantity"] == "response_rate_pct")
    # reach and dose rows are still written
    assert rows_of(process.reach(data))[("reach", "father_engagement", "reach_pct")]["estimate"] == 50.0
    assert rows_of(process.dose(data))[("dose", "one", "participants")]["estimate"] == 1


def test_skipped_sections_say_which_and_why(tmp_path):
    from isafe_helpers.process import variation as process_variation

    att = "person_id,component,attended\n{la}-P1,father_engagement,true\n"
    fb = FB_HEAD + "LA01-P1,father_engagement,5,,,\n"
    make_root(tmp_path, "LA01", att.format(la="LA01"), TARGETS, fb, None, COSTS)
    root = make_root(tmp_path, "LA02", att.format(la="LA02"), TARGETS, None, None, COSTS)
    data = load_root(root)
    pooled = process_variation.skipped_sections(data)
    assert any(s.startswith("LA02 returned no feedback file") for s in pooled)
    assert any(s.startswith("No fidelity file was returned") for s in pooled)
    la1 = process_variation.skipped_sections(data.for_scope("LA01"))
    assert len(la1) == 1 and "fidelity" in la1[0]
    # the pooled response rate leaves LA02's attendees out (no feedback there): 1 of 1
    t = process.response_rate(data).frame.set_index("component")
    assert t.loc["father_engagement", "response_rate_pct"] == pytest.approx(100.0)


def test_nothing_skipped_when_every_file_is_there(data):
    from isafe_helpers.process import variation as process_variation

    assert "no section is skipped" in process_variation.skipped_text(data)


def test_pooled_dose_and_fidelity_are_sums_over_las(tmp_path):
    att = "person_id,component,attended\n{la}-P1,father_engagement,true\n{la}-P1,motivational_interviewing,1\n"
    fid1 = "session_id,component,planned_elements,delivered_elements,quality\nS1,champion,10,9,4\n"
    fid2 = "session_id,component,planned_elements,delivered_elements,quality\nS1,champion,2,0,2\n"
    make_root(tmp_path, "LA01", att.format(la="LA01"), TARGETS, None, fid1, COSTS)
    root = make_root(tmp_path, "LA02", att.format(la="LA02"), TARGETS, None, fid2, COSTS, n_treated=3)
    data = load_root(root)
    dose = process.dose(data).frame.set_index("la")
    # LA01: P1 both, P2 none; LA02: P1 both, P2 and P3 none
    assert dose.loc["LA01", ["participants", "none", "both"]].tolist() == [2, 1, 1]
    assert dose.loc["all", ["participants", "none", "one", "both"]].tolist() == [5, 3, 0, 2]
    assert dose.loc["all", "both_pct"] == pytest.approx(40.0)
    fid = process.fidelity(data)
    # pooled champion: (9 + 0) / (10 + 2), not the mean of 90% and 0%
    assert fid.frame.set_index("component").loc["champion", "delivered_pct"] == pytest.approx(75.0)
    assert fid.frame.set_index("component").loc["all", "quality_mean"] == pytest.approx(3.0)
    below = fid.frames["below"]
    assert below[["la", "session_id"]].values.tolist() == [["LA02", "S1"]]
