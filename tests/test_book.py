"""The book's generated parts: executive-summary numbers, LA sections, pages.

The summary is checked on a hand-made pooled ``estimates.csv`` frame whose
headline numbers are worked out here by plain arithmetic.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from isafe_helpers.data.contract import COMPONENTS, SCALES
from isafe_helpers.publish import book
from isafe_helpers.publish import summary as S
from isafe_helpers.results.estimates import COLUMNS


def _r(strand, analysis, outcome, quantity, estimate, ci_low=None, ci_high=None, n=None, note="", p=math.nan):
    return dict(
        scope="trial",
        strand=strand,
        analysis=analysis,
        outcome=outcome,
        quantity=quantity,
        estimate=estimate,
        se=math.nan,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p,
        n=n,
        n_clusters=math.nan,
        note=note,
    )


def pooled(n=400) -> pd.DataFrame:
    rows = []
    for i, scale in enumerate(SCALES):  # g = 0.1 * (i - 1); CI +/- 0.15
        g = 0.1 * (i - 1)
        rows.append(_r("impact", "primary", scale, "hedges_g_total", g, g - 0.15, g + 0.15, n))
        # the model's own interval is narrower (baseline-adjusted): +/- 0.08 scale points
        rows.append(_r("impact", "primary", scale, "treatment_effect", g, g - 0.08, g + 0.08, n, p=0.5 - i / 10))
    rows.append(_r("impact", "primary", "father_contact_recorded", "odds_ratio", 1.5, 1.2, 1.9, n))
    rows.append(_r("impact", "attrition", "teams", "overall_attrition_pct", 0.0, n=40))
    rows.append(_r("impact", "attrition", "participants", "overall_attrition_pct", 12.4, n=500))
    for k, comp in enumerate(COMPONENTS):  # attendees 30, 31, ...; intended 40 each
        rows.append(_r("process", "reach", comp, "attendees", 30 + k))
        rows.append(_r("process", "reach", comp, "intended_n", 40))
        rows.append(_r("process", "reach", comp, "reach_pct", 100 * (30 + k) / 40, n=40))
    rows.append(_r("process", "satisfaction", "all", "satisfied_pct", 75.0, 70.1, 79.4, 200))
    rows.append(_r("cost", "unit_cost", "total", "cost_per_participant_gbp", 312.5, n=160, note="price year 2023"))
    rows.append(_r("cost", "unit_cost", "total", "cost_rating", 2.0, n=160))
    rows.append(_r("cost", "unit_cost", "total", "price_year", 2023.0))
    return pd.DataFrame(rows, columns=COLUMNS)


def by_key(summ: S.Summary) -> dict[str, str]:
    return dict(zip(summ.table["key"], summ.table["display"]))


def test_summary_numbers_come_from_the_contract_rows():
    shown = by_key(S.pooled_summary(pooled(), limit=10))
    assert shown["confidence"] == "-0.10 (-0.25 to 0.05)"
    assert shown["competence"] == "0.00 (-0.15 to 0.15)"
    assert shown["father_contact_recorded"] == "1.50 (1.20 to 1.90)"
    # reach is a ratio of sums: (30 + 31 + 32 + 33 + 34) / (5 x 40) = 160 / 200
    assert shown["reach"] == "80%"
    assert shown["satisfaction"] == "75% (70% to 79%)"
    assert shown["cost_per_participant"] == "£312" and shown["cost_rating"] == "2"


def test_summary_glue_names_the_price_year_threshold_and_direction_of_each_effect():
    glue = S.pooled_summary(pooled(), limit=10).glue
    assert glue["s_price_year"] == "2023" and glue["s_threshold"] == "10"
    # effects -0.1, 0.0, 0.1, 0.2, 0.3 with model intervals +/- 0.08: the last three lie above zero and
    # the first below (the g intervals, +/- 0.15, would have said two above and none below: the finding
    # follows the model's test)
    assert glue["s_impact_sentence"] == (
        "The 95% interval of the primary model's treatment effect lies above zero (favouring ISAFE) for "
        "organisational practice on father engagement, perceived effectiveness of father-engagement "
        "strategies and frequency of use of father-engagement strategies; it lies below zero for confidence in "
        "engaging fathers; it includes zero (no clear difference between the arms) for competence in engaging "
        "fathers."
    )
    md = S.findings_markdown(S.pooled_summary(pooled(), limit=10))
    assert "| improved (p = 0.300) |" in md and "| no clear difference (p = 0.400) |" in md


def test_numbers_resting_on_few_people_are_withheld():
    est = pooled(n=8)
    est.loc[est["quantity"] == "satisfied_pct", "estimate"] = 4.0  # 4% of 200 is 8 people
    summ = S.pooled_summary(est, limit=10)
    shown = by_key(summ)
    assert shown["confidence"] == "c" and shown["father_contact_recorded"] == "c"
    assert shown["satisfaction"] == "c"
    assert shown["reach"] == "80%"
    assert "withheld" in S.findings_markdown(summ)


def test_a_failed_strand_is_named_instead_of_a_number():
    est = pooled()
    est = est[est["strand"] != "cost"]
    summ = S.pooled_summary(est, failed={"cost": "ValueError: deflators.csv missing"}, limit=10)
    assert by_key(summ)["cost_per_participant"] == S.NOT_AVAILABLE
    assert summ.missing == ["The pooled cost notebook failed in this run (ValueError: deflators.csv missing)."]
    assert "deflators.csv missing" in S.findings_markdown(summ)


def test_an_estimate_the_model_could_not_make_says_why():
    est = pooled()
    est.loc[est["outcome"] == "confidence", ["estimate", "note"]] = [math.nan, "not estimable: one team per arm"]
    summ = S.pooled_summary(est, limit=10)
    assert by_key(summ)["confidence"] == S.NOT_ESTIMABLE
    assert any("one team per arm" in m for m in summ.missing)


def test_headline_figure_has_one_row_per_scale():
    fig = S.headline_figure(S.pooled_summary(pooled(), limit=10))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [S.OUTCOME_LABELS[s] for s in SCALES]


@pytest.mark.parametrize("n_las", [3, 30])
def test_each_la_gets_its_own_section_with_its_pages(n_las):
    toc = {
        "format": "jb-book",
        "root": "book/index",
        "parts": [
            {"caption": "Trial", "chapters": [{"glob": "results/trial/*"}]},
            {"caption": "Local authorities", "chapters": [{"file": "book/local_authorities"}, {"glob": book.LA_GLOB}]},
        ],
    }
    las = {f"LA{i:02d}": ["1_impact", "2_process", "3_cost"] for i in range(1, n_las + 1)}
    las["LA01"] = []  # nothing run for this LA: its index page only
    out = book.expand_toc(toc, las)
    chapters = out["parts"][1]["chapters"]
    assert chapters[0] == {"file": "book/local_authorities"}
    assert [c["file"] for c in chapters[1:]] == [f"book/las/{la}" for la in las]
    assert "sections" not in chapters[1]
    assert chapters[2]["sections"] == [{"file": f"results/las/LA02/{p}"} for p in ("1_impact", "2_process", "3_cost")]
    assert out["parts"][0] == toc["parts"][0]


def test_la_index_page_warns_that_la_estimates_are_imprecise():
    page = book.la_index_markdown("LA04", ["1_impact"], pooled(), {})
    assert page.startswith("# Local authority LA04")
    assert "far less precise" in page and "{tableofcontents}" in page
    assert "No notebook was run" in book.la_index_markdown("LA05", [], pooled(), {})


def test_staging_fills_every_page_and_glues_the_numbers(tmp_path):
    results = tmp_path / "results"
    (results / "trial").mkdir(parents=True)
    pooled().to_csv(results / "trial" / "estimates.csv", index=False)
    run = {
        "data_root": str(tmp_path / "root"),
        "fingerprint": "abc",
        "synthetic": None,
        "las": ["LA01", "LA02"],
        "finished": "2026-01-01 00:00 UTC",
        "python": "3.11",
        "tasks": [{"scope": "trial", "strand": "cost", "status": "failed", "message": "KeyError: 'unit'"}],
    }
    (results / "run.json").write_text(__import__("json").dumps(run))
    stage = tmp_path / "stage"
    book.stage(results, stage)
    import yaml

    trial = sorted(p.name for p in (stage / "results" / "trial").iterdir())
    assert trial == ["1_impact.md", "2_process.md", "3_cost.md"]  # nothing ran but the part is whole
    assert "was not run" in (stage / "results/trial/1_impact.md").read_text()
    assert "KeyError: 'unit'" in (stage / "results/trial/3_cost.md").read_text()
    assert (stage / "book/las/LA02.md").read_text().startswith("# Local authority LA02")
    assert (stage / "book/figures/headline.png").stat().st_size > 1000
    config = yaml.safe_load((stage / "_config.yml").read_text())
    glue = config["parse"]["myst_substitutions"]
    assert glue["s_reach"] == "80%" and glue["s_n_teams"] == "40" and glue["s_n_las"] == "2"
    assert glue["s_cost_per_participant"] == S.NOT_AVAILABLE
    toc = yaml.safe_load((stage / "_toc.yml").read_text())
    la_part = next(p for p in toc["parts"] if p["caption"] == "Local authorities")
    assert [c["file"] for c in la_part["chapters"]] == ["book/local_authorities", "book/las/LA01", "book/las/LA02"]
