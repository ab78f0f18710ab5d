"""Trial flow, WWC attrition and baseline equivalence (hand-computed cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny import standard_root

from isafe_helpers import impact
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import flow as F
from isafe_helpers.publish.figures import impact as fig


@pytest.mark.parametrize("overall, bound", [(0, 5.7), (10, 6.3), (20, 5.4), (30, 4.1), (40, 2.6), (50, 1.0)])
def test_wwc_boundary_at_the_methods_points(overall, bound):
    assert F.wwc_boundary(overall) == pytest.approx(bound)


def test_wwc_boundary_interpolates_linearly_and_is_high_from_58():
    assert F.wwc_boundary(25) == pytest.approx((5.4 + 4.1) / 2)
    assert F.wwc_boundary(54) == pytest.approx(0.5)
    assert F.wwc_boundary(58) == -np.inf
    assert F.wwc_judgement(60, 0.0) == "high"
    assert F.wwc_judgement(25, 4.7) == "low"
    assert F.wwc_judgement(25, 4.8) == "high"
    with pytest.raises(ValueError, match="percentage"):
        F.wwc_boundary(120)


def test_attrition_and_flow_counted_by_hand(tmp_path):
    """Tiny root: 2 teams, 4 participants, all with both waves: no attrition."""
    data = load_root(standard_root(tmp_path))
    flow = F.trial_flow(data)
    assert flow.count("allocated", "treatment", "staff") == 2
    assert flow.count("analysed", "control", "teams") == 1
    assert flow.count("lost_to_follow_up", "control", "staff") == 0
    att = impact.attrition(data)
    assert att.frame["overall_attrition_pct"].tolist() == [0.0, 0.0]
    assert att.frame["wwc_attrition"].tolist() == ["low", "low"]


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
    assert fig.consort(flow) is not None  # draws offline without error


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
