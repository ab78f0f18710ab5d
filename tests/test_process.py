"""Process figures on tiny hand-made data roots, checked by plain arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import COSTS_HEAD, TARGETS, make_root, standard_root

from isafe_helpers import process
from isafe_helpers.loading import load_root


@pytest.fixture
def root(tmp_path):
    return standard_root(tmp_path)


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

