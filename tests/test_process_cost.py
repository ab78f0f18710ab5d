"""Process and cost figures on a tiny hand-made data root, checked by plain
arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from isafe_helpers import cost, process
from isafe_helpers.contract import DEFAULT_INSTRUMENT
from isafe_helpers.loading import load_root

ITEMS = DEFAULT_INSTRUMENT.items


def _survey(pids):
    head = "participant_id,wave," + ",".join(ITEMS)
    rows = [f"{p},{w}," + ",".join("3" for _ in ITEMS) for p in pids for w in ("baseline", "followup")]
    return "\n".join([head, *rows]) + "\n"


def make_root(tmp_path: Path, la: str, attendance: str, targets: str, feedback: str | None,
              fidelity: str | None, costs: str) -> Path:
    d = tmp_path / "root" / la
    d.mkdir(parents=True)
    pids = [f"{la}-P{i}" for i in range(1, 5)]
    (d / "teams.csv").write_text(f"team_id,arm\n{la}-T1,treatment\n{la}-T2,control\n")
    (d / "participants.csv").write_text(
        "participant_id,team_id,role,age_band,years_qualified\n"
        + "".join(f"{p},{la}-T{1 if i < 2 else 2},social_worker,30_39,5\n" for i, p in enumerate(pids))
    )
    (d / "survey.csv").write_text(_survey(pids))
    (d / "casefile_audit.csv").write_text(
        "participant_id,wave,cases_audited,father_contact_recorded\n"
        + "".join(f"{p},{w},4,2\n" for p in pids for w in ("baseline", "followup"))
    )
    (d / "attendance.csv").write_text(attendance)
    (d / "ipe_targets.csv").write_text(targets)
    if feedback is not None:
        (d / "feedback.csv").write_text(feedback)
    if fidelity is not None:
        (d / "fidelity.csv").write_text(fidelity)
    (d / "costs.csv").write_text(costs)
    return tmp_path / "root"


TARGETS = (
    "component,intended_n\nfather_engagement,2\nmotivational_interviewing,4\n"
    "qa_audit,1\nchampion,1\nleaders_webinar,1\n"
)
COSTS_HEAD = "item,category,phase,bearer,quantity,unit,unit_cost_gbp,price_year\n"


@pytest.fixture
def root(tmp_path):
    la = "LA01"
    attendance = (
        "person_id,component,attended\n"
        f"{la}-P1,father_engagement,true\n"
        f"{la}-P1,father_engagement,true\n"  # attended twice: counted once
        f"{la}-P2,father_engagement,no\n"
        f"{la}-P2,motivational_interviewing,yes\n"
        f"{la}-X9,father_engagement,1\n"  # staff outside the participants table
        f"{la}-P3,motivational_interviewing,1\n"  # a control-team participant
        f"{la}-M1,qa_audit,false\n"  # nobody attended qa_audit
        f"{la}-M1,champion,true\n"
        f"{la}-L1,leaders_webinar,true\n"
        f"{la}-L2,leaders_webinar,true\n"  # 2 of 1 intended: over 100%
    )
    feedback = (
        "person_id,component,satisfaction,usefulness,would_recommend,comment\n"
        f"{la}-P1,father_engagement,5,4,true,Great session\n"
        f"{la}-X9,father_engagement,3,,,\n"
        f"{la}-P2,motivational_interviewing,4,5,false,\n"
    )
    fidelity = (
        "session_id,component,planned_elements,delivered_elements,quality\n"
        "S1,father_engagement,10,9,4\nS2,father_engagement,6,3,\nS3,champion,4,4,5\n"
    )
    costs = COSTS_HEAD + (
        "trainer,trainer_fees,delivery,developer,10,hours,50,2023\n"  # 500
        "licence,licences,setup,funder,1,item,100,2023\n"  # 100
        "attending,staff_time,delivery,local_authority,8,hours,30,2023\n"  # 240, not financial
    )
    return make_root(tmp_path, la, attendance, TARGETS, feedback, fidelity, costs)


def test_reach_hand_computed(root):
    t = process.reach(load_root(root)).table.set_index("component")
    # father_engagement: P1 (twice) and X9 attended, P2 did not: 2 distinct of 2
    assert t.loc["father_engagement", "attendees"] == 2
    assert t.loc["father_engagement", "reach_pct"] == pytest.approx(100.0)
    # motivational_interviewing: P2 and P3: 2 of 4
    assert t.loc["motivational_interviewing", "reach_pct"] == pytest.approx(50.0)
    assert t.loc["qa_audit", "attendees"] == 0 and t.loc["qa_audit", "reach_pct"] == 0
    assert t.loc["leaders_webinar", "reach_pct"] == pytest.approx(200.0)
    assert "over 100%" in t.loc["leaders_webinar", "flag"]


def test_reach_wilson_interval(root):
    t = process.reach(load_root(root)).table.set_index("component")
    # Wilson for 2 of 4 at z = 1.959964: centre 0.5, half-width computed by hand
    z, n, p = 1.959963984540054, 4, 0.5
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert t.loc["motivational_interviewing", "ci_low"] == pytest.approx(100 * (centre - half))
    assert t.loc["motivational_interviewing", "ci_high"] == pytest.approx(100 * (centre + half))


def test_satisfaction_hand_computed(root):
    t = process.satisfaction(load_root(root)).table.set_index("component")
    assert t.loc["father_engagement", "satisfied_pct"] == pytest.approx(50.0)
    assert t.loc["all", "satisfied_pct"] == pytest.approx(200 / 3)
    assert t.loc["all", "respondents"] == 3
    assert np.isnan(t.loc["qa_audit", "satisfied_pct"])


def test_fidelity_is_ratio_of_sums(root):
    t = process.fidelity(load_root(root)).table.set_index("component")
    assert t.loc["father_engagement", "delivered_pct"] == pytest.approx(100 * 12 / 16)
    assert t.loc["all", "delivered_pct"] == pytest.approx(100 * 16 / 20)


def test_pooled_reach_is_ratio_of_sums(tmp_path):
    att = "person_id,component,attended\n{la}-P1,father_engagement,true\n"
    costs = COSTS_HEAD + "t,trainer_fees,delivery,developer,1,item,10,2023\n"
    r1 = make_root(tmp_path / "a", "LA01", att.format(la="LA01"), TARGETS, None, None, costs)
    r2 = make_root(tmp_path / "a", "LA02", att.format(la="LA02"),
                   TARGETS.replace("father_engagement,2", "father_engagement,8"), None, None, costs)
    assert r1 == r2
    t = process.reach(load_root(r1)).table.set_index("component")
    assert t.loc["father_engagement", "reach_pct"] == pytest.approx(100 * 2 / 10)  # not mean(50, 12.5)


def test_optional_files_missing_give_blank_rows_with_notes(tmp_path):
    att = "person_id,component,attended\nLA01-P1,father_engagement,true\n"
    root = make_root(tmp_path, "LA01", att, TARGETS, None, None, COSTS_HEAD + "t,other,setup,funder,1,item,1,2023\n")
    data = load_root(root)
    sat = process.satisfaction(data)
    assert all(np.isnan(r["estimate"]) for r in sat.rows if r["quantity"] == "satisfied_pct")
    assert all(r["note"] == "no feedback returned" for r in sat.rows if r["quantity"] == "satisfied_pct")
    fid = process.fidelity(data)
    assert all(np.isnan(r["estimate"]) and r["note"] for r in fid.rows)


def test_unit_cost_hand_computed(root):
    res = cost.unit_cost(load_root(root))
    rows = {(r["outcome"], r["quantity"]): r for r in res.rows}
    assert rows[("total", "total_cost_gbp")]["estimate"] == pytest.approx(600.0)
    # reached: P1 and P2 (treatment team, practice pathway); not P3 (control) nor X9 (not a participant)
    assert rows[("total", "cost_per_participant_gbp")]["estimate"] == pytest.approx(300.0)
    assert rows[("total", "cost_per_participant_gbp")]["n"] == 2
    assert rows[("total", "cost_rating")]["estimate"] == 2
    assert rows[("setup", "total_cost_gbp")]["estimate"] == pytest.approx(100.0)
    assert rows[("delivery", "total_cost_gbp")]["estimate"] == pytest.approx(500.0)
    assert rows[("staff_time", "total_cost_gbp")]["estimate"] == pytest.approx(240.0)


@pytest.mark.parametrize(
    "unit, rating",
    [(0, 1), (99.99, 1), (100, 2), (499.99, 2), (500, 3), (999.99, 3), (1000, 4), (2000, 4), (2000.01, 5)],
)
def test_cost_rating_band_edges(unit, rating):
    assert cost.cost_rating(unit) == rating


def test_deflated_costs(tmp_path):
    att = "person_id,component,attended\nLA01-P1,father_engagement,true\n"
    costs = COSTS_HEAD + "a,materials,setup,funder,2,item,50,2021\nb,materials,setup,funder,1,item,100,2023\n"
    root = make_root(tmp_path, "LA01", att, TARGETS, None, None, costs)
    (root / "deflators.csv").write_text("year,index\n2021,80\n2023,100\n")
    rows = {(r["outcome"], r["quantity"]): r for r in cost.unit_cost(load_root(root)).rows}
    # 2 x 50 at 2021 prices = 100 x 100/80 = 125 in 2023 prices; plus 100
    assert rows[("total", "total_cost_gbp")]["estimate"] == pytest.approx(225.0)
