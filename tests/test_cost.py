"""Cost figures on tiny hand-made data roots, checked by plain arithmetic."""

from __future__ import annotations

import pytest
from tiny import COSTS_HEAD, TARGETS, make_root, standard_root

from isafe_helpers import cost
from isafe_helpers.loading import load_root


@pytest.fixture
def root(tmp_path):
    return standard_root(tmp_path)


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
