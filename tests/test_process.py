"""Process figures on tiny hand-made data roots, checked by plain arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats
from tiny import COSTS_HEAD, TARGETS, make_root, standard_root

from isafe_helpers import process
from isafe_helpers.data.loading import DataValidationError, load_root
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


def test_places_filled_is_named_so_and_sums_every_component(data):
    res = process.reach(data)
    t = res.frame.set_index("component")
    # attendees 2 + 2 + 0 + 1 + 2 = 7 over intended 2 + 4 + 1 + 1 + 1 = 9; a person counts once per component
    assert t.loc["places_filled", ["attendees", "intended_n"]].tolist() == [7, 9]
    assert t.loc["places_filled", "reach_pct"] == pytest.approx(100 * 7 / 9)
    rows = rows_of(res)
    r = rows[("reach", "all", "places_filled_pct")]
    assert r["estimate"] == pytest.approx(100 * 7 / 9) and r["n"] == 9
    assert "places filled" in r["note"] and "not a share of people" in r["note"]
    assert rows[("reach", "all", "places_filled")]["estimate"] == 7
    assert rows[("reach", "all", "places_intended")]["estimate"] == 9
    # within one LA places are not people: no interval, and the table says why
    assert np.isnan(r["ci_low"]) and t.loc["places_filled", "interval"] == "none"
    assert "places are not people" in t.loc["places_filled", "flag"]
    # no place-based figure goes under another name
    assert not [k for k in rows if k[1] in ("practice_pathway", "system_pathway")]
    assert not [k for k in rows if k[1] == "all" and k[2] == "reach_pct"]


NO_TARGET_RULE = "is offered in attendance but has no row in the LA's ipe_targets: give its intended_n"


def _without_target(data, la, component):
    """``data`` with the ipe_targets row of (``la``, ``component``) taken out after validation:
    the loader refuses such a root, so this is how reach's own guard is reached."""
    tgt = data.ipe_targets
    keep = ~((tgt["la"] == la) & (tgt["component"] == component))
    return dataclasses.replace(data, tables={**data.tables, "ipe_targets": tgt[keep].reset_index(drop=True)})


def test_attendees_without_an_intended_audience_are_refused_by_the_validator(tmp_path):
    att = "person_id,component,attended\nLA01-P1,father_engagement,true\nLA01-M1,champion,true\n"
    targets = "component,intended_n\nfather_engagement,2\nmotivational_interviewing,4\n"
    with pytest.raises(DataValidationError) as err:
        load_root(make_root(tmp_path, "LA01", att, targets, None, None, COSTS))
    assert [(p.file, p.row, p.column, p.value, p.rule) for p in err.value.problems] == [
        ("LA01/attendance.csv", 3, "component", "champion", NO_TARGET_RULE)
    ]
    assert NO_TARGET_RULE in str(err.value)


def test_places_filled_is_not_computed_when_a_component_has_attendees_but_no_audience(tmp_path):
    att = "person_id,component,attended\nLA01-P1,father_engagement,true\nLA01-M1,champion,true\n"
    targets = "component,intended_n\nfather_engagement,2\nmotivational_interviewing,4\nchampion,1\n"
    data = _without_target(load_root(make_root(tmp_path, "LA01", att, targets, None, None, COSTS)), "LA01", "champion")
    res = process.reach(data)
    t = res.frame.set_index("component")
    assert t.loc["champion", "flag"] == "no intended audience given" and np.isnan(t.loc["champion", "reach_pct"])
    assert np.isnan(t.loc["places_filled", "reach_pct"])
    assert "champion had attendees but no intended audience" in t.loc["places_filled", "flag"]
    assert t.loc["father_engagement", "reach_pct"] == pytest.approx(50.0)


def test_pooled_attendees_without_an_intended_audience_are_refused_by_the_validator(tmp_path):
    att = "person_id,component,attended\n{la}-M1,champion,true\n"
    make_root(tmp_path, "LA01", att.format(la="LA01"), TARGETS, None, None, COSTS)
    no_champion = TARGETS.replace("champion,1\n", "")
    root = make_root(tmp_path, "LA02", att.format(la="LA02"), no_champion, None, None, COSTS)
    with pytest.raises(DataValidationError) as err:
        load_root(root)
    assert [(p.file, p.row, p.column, p.value, p.rule) for p in err.value.problems] == [
        ("LA02/attendance.csv", 2, "component", "champion", NO_TARGET_RULE)
    ]


def test_pooled_reach_flags_an_la_with_attendees_but_no_audience(tmp_path):
    att = "person_id,component,attended\n{la}-M1,champion,true\n"
    make_root(tmp_path, "LA01", att.format(la="LA01"), TARGETS, None, None, COSTS)
    root = make_root(tmp_path, "LA02", att.format(la="LA02"), TARGETS, None, None, COSTS)
    t = process.reach(_without_target(load_root(root), "LA02", "champion")).frame.set_index("component")
    assert t.loc["champion", "flag"].startswith("LA02: attendees but no intended audience")
    assert t.loc["champion", "reach_pct"] == pytest.approx(200.0)  # 2 attendees over LA01's 1: as the contract sums
    assert np.isnan(t.loc["places_filled", "reach_pct"]) and "champion" in t.loc["places_filled", "flag"]


def test_practice_pathway_reach_is_person_level_over_treatment_team_participants(dose_root):
    res = process.reach(load_root(dose_root))
    rows = rows_of(res)
    # treatment team P1..P4: P1 both sessions, P2 one (twice the same), P3 offered but absent, P4 no row;
    # P5 (control) and X9 (not a participant) do not count
    one, both = (
        rows[("reach", "practice_pathway_one", "reach_pct")],
        rows[("reach", "practice_pathway_both", "reach_pct")],
    )
    assert one["estimate"] == pytest.approx(50.0) and one["n"] == 4
    assert both["estimate"] == pytest.approx(25.0) and both["n"] == 4
    assert rows[("reach", "practice_pathway_one", "attendees")]["estimate"] == 2
    assert rows[("reach", "practice_pathway_both", "attendees")]["estimate"] == 1
    assert rows[("reach", "practice_pathway_both", "treatment_participants")]["estimate"] == 4
    assert "person level" in one["note"] and "at least one" in one["note"] and "both" in both["note"]
    # Wilson for 1 of 4, by hand
    z, n, p = 1.959963984540054, 4, 0.25
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert (both["ci_low"], both["ci_high"]) == pytest.approx((100 * (centre - half), 100 * (centre + half)))
    t = res.table("practice_pathway")
    assert t.data[["staff", "one", "both"]].values.tolist() == [[4, 2, 1]]
    assert {c.key: c.kind for c in t.columns}["staff"] == "people"
    assert t.col("both_pct").base == "staff" and "people" in t.caption


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


def test_pooled_reach_is_ratio_of_sums_with_an_la_clustered_interval(tmp_path):
    res = process.reach(load_root(_two_las(tmp_path)))
    t = res.frame.set_index("component")
    assert t.loc["father_engagement", "reach_pct"] == pytest.approx(100 * 2 / 10)  # not mean(50, 12.5)
    # LA clusters: k = (1, 1), n = (2, 8), p = 0.2; residuals 1 - 0.4 = 0.6 and 1 - 1.6 = -0.6
    # var = G/(G-1) * (0.36 + 0.36) / 10^2 = 2 * 0.72 / 100 = 0.0144 -> se 0.12
    r = rows_of(res)[("reach", "father_engagement", "reach_pct")]
    assert r["se"] == pytest.approx(12.0) and r["n_clusters"] == 2
    q = stats.t.ppf(0.975, 1)
    assert r["ci_low"] == 0.0  # 20 - 12.7 x 12 < 0
    assert r["ci_high"] == pytest.approx(20 + q * 12)  # reach may pass 100%: not clipped there
    assert (
        "LA as the cluster" in r["note"] and t.loc["father_engagement", "interval"] == "cluster-robust, LA as cluster"
    )
    # places filled pooled: (1 + 1 + 1 + 1) / ((2 + 4 + 1 + 1 + 1) + (8 + 4 + 1 + 1 + 1))
    assert t.loc["places_filled", "reach_pct"] == pytest.approx(100 * 4 / 24)
    assert not np.isnan(t.loc["places_filled", "ci_high"])


def test_reach_per_la_in_pooled_scope(tmp_path):
    res = process.reach(load_root(_two_las(tmp_path)))
    by_la = res.frames["by_la"].set_index(["la", "component"])
    assert by_la.loc[("LA01", "father_engagement"), "reach_pct"] == pytest.approx(50.0)
    assert by_la.loc[("LA02", "father_engagement"), "reach_pct"] == pytest.approx(12.5)
    assert by_la.loc[("LA02", "father_engagement"), "interval"] == "Wilson"
    pw = res.frames["practice_pathway"].set_index("la")
    assert pw.index.tolist() == ["LA01", "LA02", "all"]
    assert pw.loc["LA02", "one_pct"] == pytest.approx(100.0) and pw.loc["all", "staff"] == 4


def test_pooled_practice_pathway_interval_is_clustered_by_la(tmp_path):
    att = "person_id,component,attended\n{la}-P1,father_engagement,true\n{la}-P1,motivational_interviewing,1\n"
    make_root(tmp_path, "LA01", att.format(la="LA01"), TARGETS, None, None, COSTS)
    root = make_root(tmp_path, "LA02", att.format(la="LA02"), TARGETS, None, None, COSTS, n_treated=3)
    rows = rows_of(process.reach(load_root(root)))
    r = rows[("reach", "practice_pathway_both", "reach_pct")]
    # LA01 1 of 2, LA02 1 of 3: p = 2/5; residuals 1 - 0.8 = 0.2, 1 - 1.2 = -0.2
    # var = 2 * 0.08 / 25 = 0.0064 -> se 0.08
    assert r["estimate"] == pytest.approx(40.0) and r["se"] == pytest.approx(8.0)
    q = stats.t.ppf(0.975, 1)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((max(0.0, 40 - q * 8), min(100.0, 40 + q * 8)))


def test_reach_table_labels_say_what_each_row_counts(data):
    t = process.reach(data).table()
    assert t.data["component"].iloc[-1].startswith("All components: places filled")
    assert any("not a share of people" in n for n in t.notes)
    kinds = {c.key: c.kind for c in t.columns}
    # attendees are people; the intended audience is a count of places, not of people
    assert kinds["attendees"] == "people" and kinds["intended_n"] == "int"
    assert "places" in t.col("intended_n").label.lower()
    # a reach percentage gives back its attendee count (places are no people base)
    assert all(t.col(k).reveals == "attendees" for k in ("reach_pct", "ci_low", "ci_high"))


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
    assert t.loc["all_responses", "satisfied_pct"] == pytest.approx(200 / 3)
    assert t.loc["all_responses", "respondents"] == 3
    assert np.isnan(t.loc["qa_audit", "satisfied_pct"])


@pytest.fixture
def feedback_root(tmp_path):
    """Seven feedback rows from four people: P1 (5 on FE, 2 on MI), P2 (4 and 4), X9 (3 on FE),
    and P3 twice on MI (5 and 3: a person the contract expects once per component)."""
    fb = FB_HEAD + (
        "LA01-P1,father_engagement,5,,,\nLA01-P1,motivational_interviewing,2,,,\n"
        "LA01-P2,father_engagement,4,,,\nLA01-P2,motivational_interviewing,4,,,\n"
        "LA01-X9,father_engagement,3,,,\n"
        "LA01-P3,motivational_interviewing,5,,,\nLA01-P3,motivational_interviewing,3,,,\n"
    )
    # the same people attended what they rated (an LA with treatment teams returns attendance rows)
    att = "person_id,component,attended\n" + "".join(
        f"LA01-{p},{c},true\n"
        for p, c in (
            ("P1", "father_engagement"),
            ("P1", "motivational_interviewing"),
            ("P2", "father_engagement"),
            ("P2", "motivational_interviewing"),
            ("X9", "father_engagement"),
            ("P3", "motivational_interviewing"),
        )
    )
    return make_root(tmp_path, "LA01", att, TARGETS, fb, None, COSTS)


def test_satisfaction_per_component_is_over_distinct_respondents(feedback_root):
    res = process.satisfaction(load_root(feedback_root))
    rows = rows_of(res)
    # FE: P1 yes, P2 yes, X9 no -> 2 of 3; MI: P1 no, P2 yes, P3 (5 and 3: not every rating 4-5) no -> 1 of 3
    fe, mi = (
        rows[("satisfaction", "father_engagement", "satisfied_pct")],
        rows[("satisfaction", "motivational_interviewing", "satisfied_pct")],
    )
    assert fe["estimate"] == pytest.approx(200 / 3) and fe["n"] == 3
    assert mi["estimate"] == pytest.approx(100 / 3) and mi["n"] == 3
    assert rows[("satisfaction", "motivational_interviewing", "respondents")]["estimate"] == 3
    assert mi["note"].startswith("per person")
    # Wilson for 1 of 3 (person level, one LA)
    assert (mi["ci_low"], mi["ci_high"]) == pytest.approx(proportions.wilson(1, 3))


def test_satisfaction_all_per_response_and_per_person(feedback_root):
    res = process.satisfaction(load_root(feedback_root))
    rows = rows_of(res)
    resp = rows[("satisfaction", "all", "satisfied_pct")]
    people = rows[("satisfaction", "all", "satisfied_people_pct")]
    # per response: 5, 2, 4, 4, 3, 5, 3 -> 4 of 7 rows
    assert resp["estimate"] == pytest.approx(400 / 7) and resp["n"] == 7
    assert rows[("satisfaction", "all", "responses")]["estimate"] == 7
    # per person: only P2 rated 4 or 5 every time -> 1 of 4 people
    assert people["estimate"] == pytest.approx(25.0) and people["n"] == 4
    assert rows[("satisfaction", "all", "respondents")]["estimate"] == 4
    assert resp["note"].startswith("per response") and people["note"].startswith("per person")
    assert (people["ci_low"], people["ci_high"]) == pytest.approx(proportions.wilson(1, 4))
    # responses within one LA: clustered by person. P1 1 of 2, P2 2 of 2, X9 0 of 1, P3 1 of 2; p = 4/7
    # residuals -1/7, 6/7, -4/7, -1/7; var = 4/3 * (54/49) / 7^2
    se = np.sqrt(4 / 3 * (54 / 49) / 49)
    q = stats.t.ppf(0.975, 3)
    assert resp["se"] == pytest.approx(100 * se)
    assert (resp["ci_low"], resp["ci_high"]) == pytest.approx(
        (100 * (4 / 7 - q * se), min(100.0, 100 * (4 / 7 + q * se)))
    )
    assert "person as the cluster" in resp["note"]


def test_satisfaction_tables_label_per_person_and_per_response(feedback_root):
    res = process.satisfaction(load_root(feedback_root))
    t = res.table()
    assert t.data["component"].tolist()[-1] == "All components, per response"
    assert t.data["counted"].tolist() == ["person"] * 5 + ["response"]
    assert any("per response" in n.lower() for n in t.notes)
    p = res.table("people")
    assert p.data[["la", "respondents", "satisfied"]].values.tolist() == [["all", 4, 1]]
    assert "per person" in p.caption.lower() and p.col("satisfied_pct").base == "respondents"


def test_satisfaction_distribution_counts_each_person_once_per_component(feedback_root):
    d = process.satisfaction(load_root(feedback_root)).frames["distribution"].set_index("component")
    # MI per person: P1 2, P2 4, P3 counted once by the lower of 5 and 3
    assert d.loc["motivational_interviewing", ["1", "2", "3", "4", "5"]].tolist() == [0, 1, 1, 1, 0]
    assert d.loc["motivational_interviewing", "respondents"] == 3
    assert d.loc["all_responses", ["1", "2", "3", "4", "5"]].tolist() == [0, 1, 2, 2, 2]
    assert d.loc["all_responses", ["respondents", "counted"]].tolist() == [7, "response"]


def test_satisfaction_distribution_counts_each_answer(data):
    d = process.satisfaction(data).frames["distribution"].set_index("component")
    assert d.loc["all_responses", ["1", "2", "3", "4", "5"]].tolist() == [0, 0, 1, 1, 1]


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
    assert t.loc["all_responses", "useful_pct"] == pytest.approx(100.0)
    assert t.loc["all_responses", "mean_usefulness"] == pytest.approx(4.5)
    assert t.loc["all_responses", "recommend_pct"] == pytest.approx(50.0)
    assert t.loc["all_responses", "recommend_answers"] == 2


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
    att = (
        "person_id,component,attended\n"
        "LA01-P1,father_engagement,true\nLA01-P2,father_engagement,true\nLA01-P2,motivational_interviewing,true\n"
    )
    r2 = make_root(tmp_path / "b", "LA01", att, TARGETS, fb, None, COSTS)
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
