"""Cost figures on tiny hand-made data roots, checked by plain arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tiny import COSTS_HEAD, TARGETS, make_root, standard_root

from isafe_helpers import cost
from isafe_helpers.cost import costing
from isafe_helpers.data.loading import DataValidationError, load_root
from isafe_helpers.publish import prose

ATT = "person_id,component,attended\n{la}-P1,father_engagement,true\n{la}-P2,motivational_interviewing,true\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The standard tiny root, loaded once (tests only read it)."""
    return load_root(standard_root(tmp_path_factory.mktemp("std")))


def rows_of(rows):
    return {(r["analysis"], r["outcome"], r["quantity"]): r for r in rows}


def test_unit_cost_hand_computed(data):
    rows = rows_of(cost.unit_cost(data).rows())
    assert rows[("unit_cost", "total", "total_cost_gbp")]["estimate"] == pytest.approx(600.0)
    # reached: P1 and P2 (treatment team, practice pathway); not P3 (control) nor X9 (not a participant)
    assert rows[("unit_cost", "total", "cost_per_participant_gbp")]["estimate"] == pytest.approx(300.0)
    assert rows[("unit_cost", "total", "cost_per_participant_gbp")]["n"] == 2
    assert rows[("unit_cost", "total", "cost_rating")]["estimate"] == 2
    assert rows[("unit_cost", "setup", "total_cost_gbp")]["estimate"] == pytest.approx(100.0)
    assert rows[("unit_cost", "delivery", "total_cost_gbp")]["estimate"] == pytest.approx(500.0)
    assert rows[("unit_cost", "staff_time", "total_cost_gbp")]["estimate"] == pytest.approx(240.0)


def test_other_unit_costs_and_staff_time_beside(data):
    rows = rows_of(cost.unit_cost(data).rows())
    # intended: the larger practice-pathway intended_n (FE 2, MI 4) = 4 -> 600 / 4
    assert rows[("unit_cost", "total", "cost_per_intended_participant_gbp")]["estimate"] == pytest.approx(150.0)
    # one treatment team
    assert rows[("unit_cost", "total", "cost_per_team_gbp")]["estimate"] == pytest.approx(600.0)
    # with staff time: (600 + 240) / 2 = 420, still rating 2; the financial total is unchanged
    assert rows[("unit_cost", "total_with_staff_time", "cost_per_participant_gbp")]["estimate"] == pytest.approx(420)
    assert rows[("unit_cost", "total_with_staff_time", "total_cost_gbp")]["estimate"] == pytest.approx(840)
    assert rows[("unit_cost", "total", "total_cost_gbp")]["estimate"] == pytest.approx(600.0)


def test_totals_by_category_and_bearer(data):
    res = cost.unit_cost(data)
    rows = rows_of(res.rows())
    assert rows[("cost_by_category", "trainer_fees", "delivery_cost_gbp")]["estimate"] == pytest.approx(500)
    assert rows[("cost_by_category", "licences", "setup_cost_gbp")]["estimate"] == pytest.approx(100)
    assert rows[("cost_by_category", "staff_time", "total_cost_gbp")]["estimate"] == pytest.approx(240)
    assert rows[("cost_by_bearer", "developer", "total_cost_gbp")]["estimate"] == pytest.approx(500)
    assert rows[("cost_by_bearer", "funder", "total_cost_gbp")]["estimate"] == pytest.approx(100)
    assert ("cost_by_bearer", "local_authority", "total_cost_gbp") not in rows  # only staff time there
    # every table names its price year
    assert "GBP (2023 prices)" in res.by_phase.columns
    assert "GBP (2023 prices)" in res.by_bearer.columns
    assert "GBP (2023 prices)" in res.unit_costs.columns
    assert all(r["note"].find("2023") >= 0 for r in res.rows() if r["quantity"].endswith("_gbp"))


@pytest.mark.parametrize(
    "unit, rating",
    [(0, 1), (99.99, 1), (100, 2), (499.99, 2), (500, 3), (999.99, 3), (1000, 4), (2000, 4), (2000.01, 5)],
)
def test_cost_rating_band_edges(unit, rating):
    assert costing.cost_rating(unit) == rating


@pytest.fixture(scope="module")
def edge_root(tmp_path_factory):
    """Two participants reached; one cost row whose quantity we vary."""
    tmp = tmp_path_factory.mktemp("edge")
    return make_root(
        tmp,
        "LA01",
        ATT.format(la="LA01"),
        TARGETS,
        None,
        None,
        COSTS_HEAD + "fees,trainer_fees,delivery,funder,1,item,1,2023\n",
    )


@pytest.mark.parametrize("total, rating", [(200, 2), (1000, 3), (2000, 4), (4000, 4), (4000.02, 5), (199.98, 1)])
def test_rating_on_band_edges_from_data(edge_root, total, rating):
    # a total of 200 over 2 participants reached is exactly 100 per participant, and so on
    base = load_root(edge_root)
    costs = base.costs.copy()
    costs["quantity"] = float(total)
    data = dataclasses.replace(base, tables={**base.tables, "costs": costs})
    rows = rows_of(cost.unit_cost(data).rows())
    assert rows[("unit_cost", "total", "cost_per_participant_gbp")]["estimate"] == pytest.approx(total / 2)
    assert rows[("unit_cost", "total", "cost_rating")]["estimate"] == rating


def test_deflated_costs(tmp_path):
    att = "person_id,component,attended\nLA01-P1,father_engagement,true\n"
    costs = COSTS_HEAD + "a,materials,setup,funder,2,item,50,2021\nb,materials,setup,funder,1,item,100,2023\n"
    root = make_root(tmp_path, "LA01", att, TARGETS, None, None, costs)
    (root / "deflators.csv").write_text("year,index\n2021,80\n2023,100\n")
    rows = rows_of(cost.unit_cost(load_root(root)).rows())
    # 2 x 50 at 2021 prices = 100 x 100/80 = 125 in 2023 prices; plus 100
    assert rows[("unit_cost", "total", "total_cost_gbp")]["estimate"] == pytest.approx(225.0)


def test_deflation_pooled_and_per_la_use_the_root_price_year(tmp_path):
    c1 = (
        COSTS_HEAD + "a,materials,setup,funder,1,item,90,2022\nst,staff_time,delivery,local_authority,1,hours,45,2022\n"
    )
    c2 = COSTS_HEAD + "b,venue,delivery,local_authority,1,item,200,2024\n"
    make_root(tmp_path, "LA01", ATT.format(la="LA01"), TARGETS, None, None, c1)
    root = make_root(tmp_path, "LA02", ATT.format(la="LA02"), TARGETS, None, None, c2)
    (root / "deflators.csv").write_text("year,index\n2022,90\n2023,95\n2024,100\n")
    full = load_root(root)
    year = cost.report_price_year(full)
    assert year == 2024
    pooled = rows_of(cost.unit_cost(full).rows())
    # 90 x 100/90 = 100 (2022 -> 2024) plus 200; staff 45 x 100/90 = 50, beside
    assert pooled[("unit_cost", "total", "total_cost_gbp")]["estimate"] == pytest.approx(300.0)
    assert pooled[("unit_cost", "staff_time", "total_cost_gbp")]["estimate"] == pytest.approx(50.0)
    assert pooled[("unit_cost", "total", "cost_per_participant_gbp")]["estimate"] == pytest.approx(300 / 4)
    assert pooled[("unit_cost", "total", "cost_rating")]["estimate"] == 1
    la1 = rows_of(cost.unit_cost(full.for_scope("LA01"), price_year=year).rows())
    assert la1[("unit_cost", "total", "total_cost_gbp")]["estimate"] == pytest.approx(100.0)
    assert "2024" in la1[("unit_cost", "total", "total_cost_gbp")]["note"]
    by_la = cost.unit_cost(full).by_la.set_index("la")
    assert by_la.loc["LA02", "cost_per_participant_gbp"] == pytest.approx(100.0)
    assert by_la.loc["LA02", "cost_rating"] == 2


def test_several_price_years_without_deflators_is_an_error_naming_them(tmp_path):
    costs = COSTS_HEAD + "a,materials,setup,funder,2,item,50,2021\nb,materials,setup,funder,1,item,100,2023\n"
    root = make_root(tmp_path, "LA01", ATT.format(la="LA01"), TARGETS, None, None, costs)
    with pytest.raises(DataValidationError, match="2021, 2023"):
        load_root(root)


def test_sensitivity_hand_computed(data):
    s = cost.sensitivity(data)
    t = s.frame.set_index("scenario")
    # base: 600 / 2 = 300 (rating 2); largest items: trainer 500, licence 100
    assert s.base_cost == pytest.approx(300.0) and s.base_rating == 2
    assert t.loc["trainer -20%", "cost_per_participant_gbp"] == pytest.approx((600 - 100) / 2)
    assert t.loc["trainer +20%", "cost_per_participant_gbp"] == pytest.approx((600 + 100) / 2)
    assert t.loc["licence -20%", "cost_per_participant_gbp"] == pytest.approx((600 - 20) / 2)
    assert t.loc["scale-up: no set-up costs", "cost_per_participant_gbp"] == pytest.approx(500 / 2)
    assert t.loc["denominator: per intended participant", "cost_per_participant_gbp"] == pytest.approx(150)
    assert t.loc["denominator: per treatment-team participant", "cost_per_participant_gbp"] == pytest.approx(300)
    # anyone attending anything: P1, P2, X9, P3, M1, L1, L2 = 7 people -> 600 / 7 = 85.71: rating 1
    row = t.loc["denominator: per person attending any session"]
    assert row["denominator"] == 7 and row["cost_rating"] == 1 and row["changes_rating"]
    # staff time (240) included: (600 + 240) / 2 = 420; at -20% (600 + 192) / 2 = 396; at +20% (600 + 288) / 2 = 444
    assert t.loc["including staff time", "cost_per_participant_gbp"] == pytest.approx(420)
    assert t.loc["including staff time at -20%", "cost_per_participant_gbp"] == pytest.approx(396)
    assert t.loc["including staff time at +20%", "cost_per_participant_gbp"] == pytest.approx(444)
    assert t.loc["including staff time at +20%", "total_cost_gbp"] == pytest.approx(888)
    assert int(t["changes_rating"].sum()) == 1
    assert len(t) == 11  # 2 items x 2, 3 staff time, scale-up, 3 denominators
    assert "changes in 1 of the 11 sensitivity scenarios" in s.robustness_sentence()
    assert s.summary() == s.robustness_sentence()
    rows = rows_of(s.rows())
    assert rows[("sensitivity", "largest_item_1", "cost_per_participant_gbp_plus_20pct")]["estimate"] == 350
    assert rows[("sensitivity", "any", "scenarios_changing_rating")]["estimate"] == 1
    assert rows[("sensitivity", "any", "scenarios_changing_rating")]["n"] == 11
    assert rows[("sensitivity", "staff_time_included", "cost_per_participant_gbp")]["estimate"] == pytest.approx(420)
    assert rows[("sensitivity", "staff_time_included", "cost_rating_plus_20pct")]["estimate"] == 2


@pytest.fixture(scope="module")
def near_edge(tmp_path_factory):
    """The issue's shape: financial 600 over 2 participants reached (300, rating 2) and staff time 350,
    so staff time included gives 475 (rating 2) and 20% more staff time 510 (rating 3)."""
    costs = COSTS_HEAD + (
        "trainer,trainer_fees,delivery,developer,10,hours,50,2023\n"
        "licence,licences,setup,funder,1,item,100,2023\n"
        "attending,staff_time,delivery,local_authority,10,hours,35,2023\n"
    )
    root = make_root(tmp_path_factory.mktemp("near"), "LA01", ATT.format(la="LA01"), TARGETS, None, None, costs)
    return cost.sensitivity(load_root(root))


def test_staff_time_scenarios_are_rated_and_one_crosses_the_band(near_edge):
    t = near_edge.frame.set_index("scenario")
    assert near_edge.base_cost == pytest.approx(300) and near_edge.base_rating == 2
    assert t.loc["including staff time", ["cost_per_participant_gbp", "cost_rating"]].tolist() == [
        pytest.approx(475),
        2,
    ]
    assert t.loc["including staff time at -20%", "cost_per_participant_gbp"] == pytest.approx(440)
    row = t.loc["including staff time at +20%"]
    assert row["cost_per_participant_gbp"] == pytest.approx(510) and row["cost_rating"] == 3 and row["changes_rating"]
    assert t.index[t["changes_rating"]].tolist() == ["including staff time at +20%"]


def test_robustness_sentence_is_computed_from_every_scenario(near_edge):
    # scenarios: trainer 500 -/+20% (250, 350), licence 100 -/+20% (290, 310), staff time (475, 440, 510),
    # scale-up (250), per intended participant (600 / 4 = 150), per treatment-team participant and
    # per person attending any session (600 / 2 = 300)
    text = near_edge.robustness_sentence()
    assert text.startswith("The cost rating (2) changes in 1 of the 11 sensitivity scenarios: ")
    assert "including staff time at +20% gives £510 (rating 3)" in text
    assert "It holds in the other 10, whose unit costs range from £150 to £475." in text
    assert "including staff time comes nearest to a band edge: £475, £25 below £500." in text


def test_robustness_sentence_when_no_scenario_changes_the_rating(edge_root):
    s = cost.sensitivity(load_root(edge_root))  # one cost row of 1: unit cost 0.50, rating 1; no staff time
    text = s.robustness_sentence()
    assert text.startswith(f"The cost rating (1) holds in all {len(s.frame)} sensitivity scenarios")
    assert "No staff time was recorded, so no staff-time scenario is made." in text
    assert not (s.frame["kind"] == "staff_time").any()


def test_sensitivity_table_starts_from_the_base_case_and_marks_people(near_edge):
    t = near_edge.table()
    assert t.data["scenario"].iloc[0].startswith("Base case")
    assert t.data.iloc[0][["total_cost_gbp", "denominator", "cost_per_participant_gbp"]].tolist() == [600, 2, 300]
    assert t.data["changes"].tolist()[0] == "(base)" and t.data["changes"].tolist().count("yes") == 1
    assert t.col("denominator").kind == "people" and t.col("cost_per_participant_gbp").base == "denominator"
    assert "Cost counted" in t.col("total_cost_gbp").label
    assert t.data["scenario"].str[0].str.isupper().all()


def test_unit_cost_table_keeps_teams_out_of_the_people_column(data):
    t = cost.unit_cost(data).table()
    assert "per treatment team" not in " ".join(t.data["unit cost"]).lower()
    assert t.col("denominator").kind == "people"
    assert t.notes == ["Cost per treatment team (1 team, not people): £600 at 2023 prices."]


def _without_costs(data, la=None):
    costs = data.costs.iloc[0:0] if la is None else data.costs[data.costs["la"] != la]
    return dataclasses.replace(data, tables={**data.tables, "costs": costs.reset_index(drop=True)})


def test_no_cost_rows_writes_no_invented_numbers(data):
    empty = _without_costs(data)
    res = cost.unit_cost(empty)
    assert res.empty
    contract = [r for r in res.rows() if r["analysis"] == "unit_cost"]
    assert {(r["outcome"], r["quantity"]) for r in contract} >= {
        ("total", "total_cost_gbp"),
        ("total", "cost_per_participant_gbp"),
        ("total", "cost_rating"),
        ("setup", "total_cost_gbp"),
        ("delivery", "total_cost_gbp"),
    }
    assert all(np.isnan(r["estimate"]) and "no cost rows" in r["note"] for r in res.rows())
    sens = cost.sensitivity(empty)
    assert sens.frame.empty and sens.rows() == []
    # as the cost page calls it: an empty scope passes no tables, only that it is empty and its notes
    text = prose.cost_text([], price_year=res.price_year, empty=res.empty, notes=res.notes)
    assert "no cost rows" in text and "£" not in text


def test_pooled_scope_with_an_la_without_cost_rows(tmp_path):
    make_root(
        tmp_path,
        "LA01",
        ATT.format(la="LA01"),
        TARGETS,
        None,
        None,
        COSTS_HEAD + "a,venue,delivery,funder,1,item,300,2023\n",
    )
    root = make_root(
        tmp_path,
        "LA02",
        ATT.format(la="LA02"),
        TARGETS,
        None,
        None,
        COSTS_HEAD + "b,venue,delivery,funder,1,item,500,2023\n",
    )
    data = _without_costs(load_root(root), la="LA02")
    res = cost.unit_cost(data)
    by_la = res.by_la.set_index("la")
    assert by_la.loc["LA01", "cost_per_participant_gbp"] == pytest.approx(150.0)
    assert np.isnan(by_la.loc["LA02", "total_cost_gbp"]) and by_la.loc["LA02", "cost_rating"] == "not rated"
    assert any("LA02: no cost rows" in n for n in res.notes)
    # pooled: LA01's cost over LA01's two participants reached, never over LA02's as well
    rows = rows_of(res.rows())
    assert rows[("unit_cost", "total", "cost_per_participant_gbp")]["estimate"] == pytest.approx(150.0)
    assert rows[("unit_cost", "total", "cost_per_participant_gbp")]["n"] == 2
