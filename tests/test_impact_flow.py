"""Trial flow, WWC attrition and baseline equivalence (hand-computed cases)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from tiny import standard_root

from isafe_helpers import impact
from isafe_helpers.config import threshold
from isafe_helpers.data import frames
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import flow as F
from isafe_helpers.publish import report
from isafe_helpers.publish.figures import impact as fig
from isafe_helpers.publish.ledger import Ledger

#: WWC Standards Handbook v4.0, Table II.1, as printed (overall attrition %: cautious / optimistic boundary).
WWC_TABLE = """
 0: 5.7/10.0   1: 5.8/10.1   2: 5.9/10.2   3: 5.9/10.3   4: 6.0/10.4
 5: 6.1/10.5   6: 6.2/10.7   7: 6.3/10.8   8: 6.3/10.9   9: 6.3/10.9
10: 6.3/10.9  11: 6.2/10.9  12: 6.2/10.9  13: 6.1/10.9  14: 6.0/10.8
15: 5.9/10.8  16: 5.9/10.7  17: 5.8/10.6  18: 5.7/10.5  19: 5.5/10.3
20: 5.4/10.2  21: 5.3/10.0  22: 5.2/9.9   23: 5.1/9.7   24: 4.9/9.5
25: 4.8/9.4   26: 4.7/9.2   27: 4.5/9.0   28: 4.4/8.8   29: 4.3/8.6
30: 4.1/8.4   31: 4.0/8.2   32: 3.8/8.0   33: 3.6/7.8   34: 3.5/7.6
35: 3.3/7.4   36: 3.2/7.2   37: 3.1/7.0   38: 2.9/6.7   39: 2.8/6.5
40: 2.6/6.3   41: 2.5/6.0   42: 2.3/5.8   43: 2.1/5.6   44: 2.0/5.3
45: 1.8/5.1   46: 1.6/4.9   47: 1.5/4.6   48: 1.3/4.4   49: 1.2/4.2
50: 1.0/3.9   51: 0.9/3.7   52: 0.7/3.5   53: 0.6/3.2   54: 0.4/3.0
55: 0.3/2.8   56: 0.2/2.6   57: 0.0/2.3
"""
PRINTED = {int(a): (float(b), float(c)) for a, b, c in re.findall(r"(\d+): ([\d.]+)/([\d.]+)", WWC_TABLE)}


def test_every_row_of_the_wwc_table():
    assert sorted(PRINTED) == list(range(58))
    assert F.WWC_BOUNDARIES == PRINTED
    for overall, (cautious, optimistic) in PRINTED.items():
        assert F.wwc_boundary(overall) == cautious
        assert F.wwc_boundary(overall, "optimistic") == optimistic


@pytest.mark.parametrize(
    "overall, row",
    [(14.5, 15), (14.49, 14), (14.4999999999, 15), (0.49, 0), (0.5, 1), (56.5, 57), (57.49, 57), (12.5, 13)],
)
def test_overall_attrition_is_rounded_half_up_to_its_row(overall, row):
    assert F.round_half_up(overall) == row
    assert F.wwc_boundary(overall) == PRINTED[row][0]


@pytest.mark.parametrize(
    "overall, diff, cautious, optimistic",
    [
        (10.0, 6.3, "low", "low"),  # at the boundary: low
        (10.0, 6.3000001, "high", "low"),  # just above: high
        (14.5, 5.9, "low", "low"),  # row 15 (5.9), not row 14 (6.0)
        (14.5, 5.95, "high", "low"),
        (14.49, 5.95, "low", "low"),  # row 14 (6.0)
        (30.0, 8.4, "high", "low"),
        (30.0, 8.41, "high", "high"),
        (57.0, 0.0, "low", "low"),  # the last row: cautious boundary 0
        (57.49, 2.3, "high", "low"),
        (57.5, 0.0, "high", "high"),  # rounds to 58: above 57%, high whatever the differential
        (80.0, 0.0, "high", "high"),
    ],
)
def test_wwc_lookup_edges(overall, diff, cautious, optimistic):
    assert F.wwc_judgement(overall, diff) == cautious
    assert F.wwc_judgement(overall, diff, "optimistic") == optimistic


def test_wwc_refuses_a_non_percentage_and_an_unknown_boundary():
    with pytest.raises(ValueError, match="percentage"):
        F.wwc_boundary(120)
    with pytest.raises(ValueError, match="cautious"):
        F.wwc_boundary(10, "lenient")
    assert F.wwc_judgement(np.nan, 1.0) == "not assessable"


def test_attrition_is_judged_for_every_outcome_at_team_and_staff_level(_small_root_template):
    """Hand count on a small root: one participant's follow-up dropped changes only that sample."""
    data = load_root(_small_root_template)
    att = impact.attrition(data)
    outcomes = [*data.instrument.scale_names, "father_contact_recorded"]
    assert att.frame[["outcome", "unit"]].apply(tuple, axis=1).tolist() == [
        (o, u) for o in outcomes for u in ("teams", "participants")
    ]
    parts = frames.with_arm(data)
    for o in outcomes:
        r = att.frame[(att.frame["outcome"] == o) & (att.frame["unit"] == "participants")].iloc[0]
        ids = att_ids(data, o)
        lost = ~parts["participant_id"].isin(ids)
        assert r["overall_attrition_pct"] == pytest.approx(100 * lost.mean())
        by_arm = lost.groupby(parts["arm"]).mean() * 100
        assert r["differential_attrition_pct"] == pytest.approx(abs(by_arm["treatment"] - by_arm["control"]))
        assert r["wwc_cautious"] == F.wwc_judgement(r["overall_attrition_pct"], r["differential_attrition_pct"])
    rows = pd.DataFrame(att.rows())
    # the contract's rows (outcome teams / participants) are the primary outcome's
    contract = rows[rows["outcome"].isin(["teams", "participants"])]
    primary = rows[rows["outcome"].isin(["confidence:teams", "confidence:participants"])]
    np.testing.assert_array_equal(contract["estimate"].to_numpy(), primary["estimate"].to_numpy())
    assert {"overall_attrition_pct", "differential_attrition_pct", "wwc_cautious_boundary_pct"} <= set(
        contract["quantity"]
    )
    assert {f"{o}:{u}" for o in outcomes for u in ("teams", "participants")} <= set(rows["outcome"])
    table = att.table()
    assert len(table.data) == len(outcomes) and table.col("teams_randomised").kind == "units"
    assert table.col("staff_randomised").kind == "people"


def test_attrition_rounds_the_exact_share_of_counts(tmp_path):
    """1 of 8 randomised staff lost is exactly 12.5%: row 13 (6.1), not 12 (6.2)."""
    overall = 100 * np.mean([True] + [False] * 7)
    assert overall == 12.5 and F.wwc_boundary(overall) == 6.1


def att_ids(data, outcome):
    if outcome == "father_contact_recorded":
        return set(frames.casefile_frame(data)["participant_id"])
    return set(frames.analysis_frame(data, outcome)["participant_id"])


def test_attrition_and_flow_counted_by_hand(tmp_path):
    """Tiny root: 2 teams, 4 participants, all with both waves: no attrition."""
    data = load_root(standard_root(tmp_path))
    flow = F.trial_flow(data)
    assert flow.count("allocated", "treatment", "staff") == 2
    assert flow.count("analysed", "control", "teams") == 1
    assert flow.count("lost_to_follow_up", "control", "staff") == 0
    att = impact.attrition(data)
    assert (att.frame["overall_attrition_pct"] == 0.0).all() and len(att.frame) == 2 * 6
    assert (att.frame["wwc_cautious"] == "low").all() and (att.frame["wwc_optimistic"] == "low").all()


def test_flow_counts_lost_participants(small_root):
    data = load_root(small_root)
    lost = data.participants["participant_id"].iloc[:3]
    data.tables["survey"] = data.survey[
        ~(data.survey["participant_id"].isin(lost) & (data.survey["wave"] == "followup"))
    ]
    flow = F.trial_flow(data)
    t = flow.frame.groupby("stage")["staff"].sum()
    assert t["allocated"] == len(data.participants)
    assert t["lost_to_follow_up"] >= 3
    assert t["followed_up"] + t["lost_to_follow_up"] == t["allocated"]
    assert t["analysed"] + t["excluded_from_analysis"] == t["followed_up"]
    # drawn as the page draws it, from the flow table's published view (withheld counts NaN)
    table, ledger = flow.table(), Ledger(threshold())
    keys = [ledger.register(table, "test/consort/0")]
    views = report.views(report.Spec("figure-1", "figure", 1, [table]), ledger.solve(), keys)
    assert fig.consort(views, n_las=flow.n_las, outcome=flow.outcome) is not None  # draws offline without error


def test_hedges_and_cox_by_hand():
    xt, xc = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 3.0, 4.0, 5.0, 6.0])
    sp = np.sqrt((3 * np.var(xt, ddof=1) + 4 * np.var(xc, ddof=1)) / 7)
    assert F._hedges(xt, xc) == pytest.approx((1 - 3 / (4 * 9 - 9)) * (2.5 - 4.0) / sp)
    bt, bc = np.array([1, 1, 0, 0.0]), np.array([1, 0, 0, 0, 0.0])
    want = (1 - 3 / 27) * (np.log(0.5 / 0.5) - np.log(0.2 / 0.8)) / 1.65
    assert F._cox(bt, bc) == pytest.approx(want)


@pytest.mark.parametrize(
    "d, adjusted, verdict",
    [
        (0.05, False, "satisfied"),
        (-0.2, True, "satisfied (adjusted in the model)"),
        (0.2, False, "needs adjustment (not adjusted)"),
        (0.26, True, "not satisfied"),
        (np.nan, True, "not assessable"),
    ],
)
def test_baseline_verdicts(d, adjusted, verdict):
    assert F.verdict(d, adjusted) == verdict


def test_baseline_equivalence_rows(small_root):
    data = load_root(small_root)
    be = F.baseline_equivalence(data)
    rows = pd.DataFrame(be.rows())
    assert set(rows["analysis"]) == {"baseline_equivalence"}
    assert "confidence:confidence_baseline" in set(rows["outcome"])
    assert rows["note"].str.len().gt(0).all()


def test_only_the_outcome_domain_baselines_are_judged(small_root):
    be = F.baseline_equivalence(load_root(small_root)).frame
    domain = be["variable"] == be["sample"] + "_baseline"
    assert domain.sum() == 6  # five scales and the case files
    judged = {"satisfied", "satisfied (adjusted in the model)", "not satisfied", "not assessable"}
    assert set(be.loc[domain, "verdict"]) <= judged
    for r in be[domain].itertuples():
        assert r.verdict == F.verdict(r.difference, adjusted=True)
    assert (be.loc[~domain, "verdict"] == F.DESCRIBED).all()
