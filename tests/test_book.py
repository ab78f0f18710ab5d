"""The book's generated parts: the executive summary's tables and sentences, LA sections, staging.

The summary is checked on a hand-made pooled ``estimates.csv`` frame whose
headline numbers are known by construction: the tables must carry them, the
findings must follow the rules of ``book/methods.md`` (the primary outcome
read from its model's interval, a secondary outcome from its Holm-adjusted
p), and the sentences must be built only from what the disclosure ledger
lets a table publish.
"""

from __future__ import annotations

import html
import json
import math
import pickle
from pathlib import Path

import pandas as pd
import pytest
import yaml
from published_numbers import joins_estimates

from isafe_helpers.data.contract import CASEFILE_OUTCOME, SCALES
from isafe_helpers.publish import book
from isafe_helpers.publish import facts as F
from isafe_helpers.publish import summary as S
from isafe_helpers.publish.assemble import BookDisclosure, PageSpecs
from isafe_helpers.publish.report import Spec
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import COLUMNS, Lookup
from isafe_helpers.results.table import Col, Table, facts

LAS = ["LA01", "LA02"]


def _r(strand, analysis, outcome, quantity, estimate, ci_low=None, ci_high=None, n=None, note="", p=math.nan, k=None):
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
        n_clusters=k,
        note=note,
    )


def pooled(n=200) -> pd.DataFrame:
    """Effects g = 0.1 * (i - 1) on the scales (CI +/- 0.15), model intervals +/- 0.08 points, p 0.5 - i / 10."""
    rows = [_r("impact", "protocol", SCALES[0], "primary_outcome", 1.0, note="protocol.yml")]
    for i, scale in enumerate(SCALES):
        g = 0.1 * (i - 1)
        rows.append(_r("impact", "primary", scale, "hedges_g_total", g, g - 0.15, g + 0.15, 2 * n, k=40))
        rows.append(
            _r("impact", "primary", scale, "treatment_effect", g, g - 0.08, g + 0.08, 2 * n, p=0.5 - i / 10, k=40)
        )
        rows.append(_r("impact", "primary", scale, "analysed_treatment", n, n=n))
        rows.append(_r("impact", "primary", scale, "analysed_control", n, n=n))
        if i:
            rows.append(_r("impact", "secondary", scale, "p_holm", min(1.0, (0.5 - i / 10) * 4)))
    rows.append(_r("impact", "primary", CASEFILE_OUTCOME, "odds_ratio", 1.5, 1.2, 1.9, 2 * n, p=0.01, k=40))
    rows.append(_r("impact", "secondary", CASEFILE_OUTCOME, "p_holm", 0.04))
    for a in ("treatment", "control"):
        rows.append(_r("impact", "primary", CASEFILE_OUTCOME, f"analysed_{a}", n, n=n))
    rows.append(_r("impact", "attrition", f"{SCALES[0]}:teams", "overall_attrition_pct", 0.0, n=40))
    rows.append(_r("impact", "attrition", f"{SCALES[0]}:participants", "overall_attrition_pct", 12.4, n=500))
    rows.append(_r("impact", "attrition", f"{SCALES[0]}:participants", "differential_attrition_pct", 1.3, n=500))
    rows.append(_r("process", "reach", "practice_pathway_one", "reach_pct", 80.0, 75.0, 84.0, n=250))
    rows.append(_r("process", "reach", "practice_pathway_one", "attendees", 200.0))
    rows.append(_r("process", "reach", "practice_pathway_one", "treatment_participants", 250.0))
    rows.append(_r("process", "satisfaction", "all", "satisfied_people_pct", 75.0, 70.1, 79.4, 160))
    rows.append(_r("process", "satisfaction", "all", "respondents", 160.0))
    rows.append(_r("process", "satisfaction", "all", "satisfied_people", 120.0))
    rows.append(_r("cost", "unit_cost", "total", "cost_per_participant_gbp", 312.5, n=200))
    rows.append(_r("cost", "unit_cost", "total", "participants_reached", 200.0))  # = reach's attendees
    rows.append(_r("cost", "unit_cost", "total", "cost_rating", 2.0, n=200))
    rows.append(_r("cost", "unit_cost", "total", "price_year", 2023.0))
    return pd.DataFrame(rows, columns=COLUMNS)


#: The estimates.csv quantities the hand-made results page shows, and the decimals it prints them at.
PAGE_QUANTITIES = {"hedges_g_total": 2, "treatment_effect": 2, "odds_ratio": 3, "p_holm": 3}


def results_page(est: pd.DataFrame, las=LAS, scope: str = "trial") -> PageSpecs:
    """A results page of the impact strand showing the frame's model rows, each cell declaring its fact.

    The staff analysed (``n``) are the count each row's statistics rest on, as on the real pages.
    """
    rows = est[est["quantity"].isin(list(PAGE_QUANTITIES))].reset_index(drop=True)
    model = est[est["quantity"].isin(["treatment_effect", "odds_ratio"])].set_index("outcome")["n"]
    rows["own_n"] = rows["n"].notna()  # a row's own count is a fact; a Holm p's borrowed one is not
    rows["n"] = rows["n"].fillna(rows["outcome"].map(model))  # a Holm p rests on its model's staff
    tabs = []
    for q, digits in PAGE_QUANTITIES.items():
        r = rows[rows["quantity"] == q].reset_index(drop=True)
        data = pd.DataFrame(
            {
                "label": r["outcome"],
                "n": r["n"],
                "estimate": r["estimate"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "p_value": r["p_value"],
                "teams": r["n_clusters"],
            }
        )
        stat = dict(base="n")
        tabs.append(
            Table(
                data,
                [
                    Col("label", "Outcome", "text"),
                    Col("n", "Staff analysed", "people"),
                    Col("estimate", "Estimate", "number", digits, **stat),
                    Col("ci_low", "95% CI low", "number", digits, **stat),
                    Col("ci_high", "95% CI high", "number", digits, **stat),
                    Col("p_value", "p", "p", **stat),
                    Col("teams", "Teams", "units"),
                ],
                caption=f"Model rows: {q}",
                keys={"n": [K.analysed(las, o) for o in r["outcome"]]},
                facts=facts(
                    "impact",
                    [k if own else None for k, own in zip(zip(r["analysis"], r["outcome"], r["quantity"]), r["own_n"])],
                    n="n",
                )
                | facts(
                    "impact",
                    list(zip(r["analysis"], r["outcome"], r["quantity"])),
                    estimate="estimate",
                    ci_low="ci_low",
                    ci_high="ci_high",
                    p_value="p_value",
                    teams="n_clusters",
                ),
            )
        )
    specs = [Spec(f"table-{i}", "table", i, [t], t.caption) for i, t in enumerate(tabs, 1)]
    return PageSpecs(scope, "impact", specs, list(las))


def solved(est: pd.DataFrame, limit: int = 10, page: bool = True) -> BookDisclosure:
    """The book of one results page (the frame's model rows) and the summary's tables, solved and filled."""
    look = Lookup(est)
    b = BookDisclosure([results_page(est)] if page else [], limit)
    b.add("summary/headline", S.headline_table(look, LAS, pooled=True))
    b.add("summary/cost", S.cost_table(look, LAS))
    b.add("summary/delivery", S.delivery_table(look, LAS))
    b.solve()
    b.refill(
        "summary/headline",
        S.headline_table(look, LAS, True, b.facts(), "trial", lambda f: book.page_address(f, "book/index")),
    )
    return b


def glue_of(est: pd.DataFrame, limit: int = 10) -> dict[str, str]:
    b = solved(est, limit)
    views = (b.cells("summary/headline"), b.view("summary/cost"), b.view("summary/delivery"))
    return plain(S.sentences(*views, Lookup(est), limit))


def plain(glue: dict[str, str]) -> dict[str, str]:
    """The sentences as a reader sees them (they are escaped for Markdown as HTML character references)."""
    return {k: html.unescape(v) for k, v in glue.items()}


# ---------------------------------------------------------------------------
def test_headline_table_carries_the_rows_and_names_its_populations():
    b = solved(pooled())
    t = b.extra["summary/headline"][0]
    d = b.cells("summary/headline")
    assert list(t.data["role"]) == ["Primary"] + ["Secondary"] * len(SCALES)
    assert d.loc[0, "outcome"].endswith(S.PRIMARY_MARK) and not d.loc[1:, "outcome"].str.endswith(S.PRIMARY_MARK).any()
    # a view of the results page: its printed cells, rounding and symbol
    assert d.loc[0, "effect"] == "-0.10 (-0.25 to 0.05)" and d.loc[0, "p"] == "0.500"
    assert d.loc[5, "effect"] == "1.500 (1.200 to 1.900)"  # the page prints odds ratios at 3 decimals
    assert d["n_treatment"].tolist() == ["200"] * (len(SCALES) + 1)
    assert list(d["measure"]) == ["g"] * len(SCALES) + ["odds ratio"]
    assert d.loc[0, "p_holm"] == "[x]" and d.loc[1, "p_holm"] == "1.000"
    # the analysed staff are the same population as the trial flow's and the attrition table's
    assert t.keys["n_treatment"][0] == K.analysed(LAS, SCALES[0], "treatment")


def test_each_headline_cell_links_to_the_table_it_comes_from():
    b = solved(pooled())
    out = b.render_table("summary/headline", 1)
    # the g of the first scale is on the page's first table, the odds ratio on its third
    assert '<a href="../results/trial/1_impact.html#trial-impact-table-1">-0.10 (-0.25\u00a0to\u00a00.05)</a>' in out
    assert '<a href="../results/trial/1_impact.html#trial-impact-table-3">1.500 (1.200\u00a0to\u00a01.900)</a>' in out
    assert '<a href="../results/trial/1_impact.html#trial-impact-table-4">0.040</a>' in out  # its Holm p


def test_findings_follow_the_model_interval_for_the_primary_and_holm_for_the_secondaries():
    d = solved(pooled()).cells("summary/headline")["finding"].tolist()
    # primary: effect -0.1 with model interval -0.18 to -0.02: below zero
    assert d[0] == "worsened"
    # secondaries: Holm p = min(1, 4 x (0.4, 0.3, 0.2, 0.1)) = 1, 1, 0.8, 0.4: none survives adjustment, and
    # none had unadjusted p < .05 either, so the adjustment changed nothing and is not named (issue 24)
    assert d[1:5] == ["no clear difference"] * 4
    # case files: Holm p 0.04, OR interval 1.2 to 1.9 above 1
    assert d[5] == "improved"
    assert S.finding(0.1, 0.3, 0.01, None, 0.0, True) == "improved"
    assert S.finding(-0.1, 0.3, 0.4, None, 0.0, True) == "no clear difference"
    assert S.finding(math.nan, 0.3, 0.4, None, 0.0, True) == "not available"


def casefile_like_the_pipeline(est: pd.DataFrame) -> pd.DataFrame:
    """The case-file result writes no per-arm counts: only its model rows carry ``n`` (as the real rows)."""
    return est[~((est["outcome"] == CASEFILE_OUTCOME) & est["quantity"].str.startswith("analysed_"))]


def test_the_casefile_outcome_is_published_exactly_as_its_page_publishes_it():
    est = casefile_like_the_pipeline(pooled())
    b = solved(est)
    row = b.cells("summary/headline").iloc[-1]
    assert row["effect"] == "1.500 (1.200 to 1.900)" and row["p"] == "0.010" and row["p_holm"] == "0.040"
    assert row["n_treatment"] == "[x]" and row["finding"] == "improved"
    glue = plain(S.sentences(b.cells("summary/headline"), None, None, Lookup(est), 10))
    assert "odds ratio 1.500 (95% CI 1.200 to 1.900), p = 0.010; Holm p = 0.040" in glue["s_secondary_sentence"]


def test_with_the_casefile_outcome_primary_the_headline_row_shows_its_estimate():
    est = casefile_like_the_pipeline(pooled())
    est.loc[est["quantity"] == "primary_outcome", "outcome"] = CASEFILE_OUTCOME
    b = solved(est)
    head = b.cells("summary/headline")
    row = S.primary_rows(head).iloc[0]
    assert row["effect"] == "1.500 (1.200 to 1.900)" and row["finding"] == "improved"
    glue = plain(S.sentences(head, None, None, Lookup(est), 10))
    assert "improvement: odds ratio 1.500 (95% CI 1.200 to 1.900), p = 0.010" in glue["s_primary_sentence"]


def test_a_withheld_estimate_gets_no_verdict():
    est = pooled()
    few = (est["outcome"] == CASEFILE_OUTCOME) & (est["quantity"] == "odds_ratio")
    est.loc[few, "n"] = 6  # the page withholds the odds ratio: it rests on 6 staff
    row = solved(est).cells("summary/headline").iloc[-1]
    assert row["effect"] == "[c]" and row["p"] == "[c]"
    assert row["finding"] == "no verdict: the estimate is withheld"  # never "improved" beside withheld cells
    # with no results page at all, nothing is published and nothing is judged
    none = solved(pooled(), page=False).cells("summary/headline")
    assert set(none["effect"]) == {"[x]"} and none["finding"].str.startswith("no verdict").all()


def test_an_la_headline_table_carries_no_verdict():
    t = S.headline_table(Lookup(pooled()), ["LA01"], pooled=False)
    assert "finding" not in [c.key for c in t.columns]
    assert any("no verdict" in n for n in t.notes)


def test_summary_sentences_state_the_published_numbers():
    glue = glue_of(pooled())
    assert glue["s_primary_sentence"].startswith("On the primary outcome, confidence in engaging fathers, the trial")
    assert "worsening: g -0.10 (95% CI -0.25 to 0.05), p = 0.500" in glue["s_primary_sentence"]
    assert "Holm p = 0.400" in glue["s_secondary_sentence"]
    assert glue["s_reach_sentence"].startswith("80% of intervention-team staff")
    assert "(95% CI 70% to 79%)" in glue["s_satisfaction_sentence"]
    assert "£313 per participant reached" in glue["s_cost_sentence"]
    assert "rating 2, medium-low cost" in glue["s_cost_sentence"]


def test_numbers_resting_on_few_people_are_withheld_and_no_sentence_states_them():
    est = pooled(n=4)  # 8 staff analysed per outcome, under a threshold of 10
    est.loc[est["quantity"].isin(["participants_reached", "respondents", "attendees"]), "estimate"] = 6.0
    b = solved(est)
    head = b.cells("summary/headline")
    assert (head["n_treatment"] == "[c]").all() and (head["effect"] == "[c]").all()
    assert "[c]" in b.render_table("summary/headline", 1)
    glue = plain(S.sentences(head, b.view("summary/cost"), b.view("summary/delivery"), Lookup(est), 10))
    assert "no published estimate" in glue["s_primary_sentence"]
    assert "withheld" in glue["s_cost_sentence"] and "withheld" in glue["s_satisfaction_sentence"]
    assert "-0.10" not in " ".join(glue.values())


def test_a_failed_strand_is_not_read():
    est = pooled()
    look = book._usable(est, {"cost": "ValueError: deflators.csv missing"})
    assert look.get("cost", "unit_cost", "total", "cost_per_participant_gbp") is None
    glue = plain(S.sentences(solved(est).cells("summary/headline"), S.cost_table(look, LAS).data, None, look, 10))
    assert (
        glue["s_cost_sentence"]
        == "The cost per participant is withheld: it rests on fewer than 10 participants or would give a withheld count back."
    )
    assert S.failed_strands({"tasks": [{"scope": "trial", "strand": "cost", "status": "failed", "message": "x"}]}) == {
        "cost": "x"
    }


def test_an_estimate_the_model_could_not_make_says_why():
    est = pooled()
    hit = (est["outcome"] == SCALES[1]) & (est["quantity"] == "hedges_g_total")
    est.loc[hit, ["estimate", "ci_low", "ci_high", "note"]] = [
        math.nan,
        math.nan,
        math.nan,
        "not estimable: one team per arm",
    ]
    b = solved(est)
    assert b.cells("summary/headline").loc[1, "effect"] == "[x]"
    assert "Competence in engaging fathers: not available: not estimable: one team per arm." in html.unescape(
        b.render_table("summary/headline", 1)
    )
    assert "competence in engaging fathers: not published" in glue_of(est)["s_secondary_sentence"]


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
    page = book.la_index_markdown("LA04", ["1_impact"], "<table></table>")
    assert page.startswith("# ")
    assert "far less precise" in page and "no verdict" in page and "{tableofcontents}" in page
    assert "No notebook was run" in book.la_index_markdown("LA05", [], "")


def test_staging_fills_every_page_and_glues_the_numbers(tmp_path, monkeypatch):
    filled: dict[str, str] = {}
    fill = book.fill_pages
    monkeypatch.setattr(
        book, "fill_pages", lambda folder, names, glue: (filled.update(glue), fill(folder, names, glue))
    )
    results = tmp_path / "results"
    (results / "trial").mkdir(parents=True)
    pooled().to_csv(results / "trial" / "estimates.csv", index=False)
    page = results_page(pooled())  # what the pooled impact notebook recorded: the summary is its view
    (results / "trial" / "impact.specs.pkl").write_bytes(
        pickle.dumps({"scope": "trial", "strand": "impact", "las": LAS, "specs": page.specs})
    )
    run = {
        "data_root": str(tmp_path / "root"),
        "fingerprint": "abc",
        "synthetic": None,
        "las": LAS,
        "finished": "2026-01-01 00:00 UTC",
        "python": "3.11",
        "tasks": [{"scope": "trial", "strand": "cost", "status": "failed", "message": "KeyError: 'unit'"}],
    }
    (results / "run.json").write_text(json.dumps(run))
    stage = tmp_path / "stage"
    book.stage(results, stage)

    trial = sorted(p.name for p in (stage / "results" / "trial").iterdir())
    assert trial == ["1_impact.md", "2_process.md", "3_cost.md"]  # nothing ran but the part is whole
    assert "was not run" in (stage / "results/trial/1_impact.md").read_text()
    assert "KeyError" in html.unescape((stage / "results/trial/3_cost.md").read_text())
    assert (stage / "book/las/LA02.md").is_file()
    headline = (stage / "book/headline.md").read_text()
    assert (
        "Table 1. Headline results" in headline and "-0.10 (-0.25\u00a0to\u00a00.05)" in headline
    )  # the interval does not break
    glue = plain(filled)
    staged = (stage / "book/index.md").read_text()
    assert "{{" not in staged and glue["s_report_status"] in html.unescape(staged)  # written into the page
    assert glue["s_n_teams"] == "40" and glue["s_n_las"] == "2" and glue["s_threshold"] == "10"
    assert glue["s_price_year"] == S.NOT_AVAILABLE  # the cost strand failed: its rows are not read
    assert glue["s_cost_sentence"] != "" and "£313" not in glue["s_cost_sentence"]
    toc = yaml.safe_load((stage / "_toc.yml").read_text())
    la_part = next(p for p in toc["parts"] if p["caption"] == "Local authorities")
    assert [c["file"] for c in la_part["chapters"]] == ["book/local_authorities"]  # the LAs' own index
    assert [s["file"] for s in la_part["chapters"][0]["sections"]] == ["book/las/LA01", "book/las/LA02"]
    published = pd.read_csv(stage / "book/downloads/trial-published-numbers.csv", keep_default_na=False)
    # the summary's tables are published numbers of the pooled scope, each traced to its estimates.csv cell
    head = published[published["table"] == "trial-summary-table-1"]
    assert len(head) and ((head["quantity"] != "") | (head["symbol"] != "")).all()  # only a symbol is keyless
    values = set(pd.to_numeric(head["value"]))
    assert {1.5, -0.25, 0.04} <= values
    assert joins_estimates(published, pooled()) > 20


def _staged_run(tmp_path, est: pd.DataFrame) -> Path:
    """A results folder with the pooled rows, the pooled impact page's specs and a run record."""
    results = tmp_path / "results"
    (results / "trial").mkdir(parents=True)
    est.to_csv(results / "trial" / "estimates.csv", index=False)
    page = results_page(est)
    (results / "trial" / "impact.specs.pkl").write_bytes(
        pickle.dumps({"scope": "trial", "strand": "impact", "las": LAS, "specs": page.specs})
    )
    run = {"data_root": str(tmp_path / "root"), "fingerprint": "abc", "synthetic": None, "las": LAS}
    run |= {"finished": "2026-01-01 00:00 UTC", "python": "3.11", "tasks": []}
    (results / "run.json").write_text(json.dumps(run))
    return results


def test_the_book_wide_check_passes_when_every_fact_has_one_face(tmp_path):
    book.stage(_staged_run(tmp_path, pooled()), tmp_path / "stage")  # the summary repeats the page's facts
    published = pd.read_csv(tmp_path / "stage/book/downloads/trial-published-numbers.csv", keep_default_na=False)
    assert F.check(published) > 20  # facts that appear twice (page and summary), each with one face


@pytest.mark.parametrize(
    "seed",
    [
        # the summary computes its own effect instead of copying the page's cell
        ("_effect_cell", lambda f: "9.99 (1.00 to 2.00)" if f["effect"] is not None else "[x]", "hedges_g_total"),
        # the summary withholds a p-value the page publishes
        ("_text", lambda f: "[c]" if f is not None else "[x]", "p_value"),
    ],
    ids=["own-number", "own-symbol"],
)
def test_the_book_wide_check_fails_the_build_on_a_fact_shown_two_ways(tmp_path, monkeypatch, seed):
    name, fake, quantity_or_field = seed
    monkeypatch.setattr(S, name, fake)
    with pytest.raises(book.BookError, match="one fact two ways") as e:
        book.stage(_staged_run(tmp_path, pooled()), tmp_path / "stage")
    assert quantity_or_field in str(e.value) and "trial-summary-table-1" in str(e.value)
    assert "trial-impact-table-" in str(e.value)  # where the page shows the other face


def no_primary() -> pd.DataFrame:
    """The pooled rows of a run whose protocol names no primary outcome: all six outcomes are one Holm family."""
    est = pooled()
    est.loc[est["quantity"] == "primary_outcome", ["outcome", "note"]] = [
        "not_pre_specified",
        "protocol.yml names none",
    ]
    # confidence (p 0.5, model interval -0.18 to -0.02, below zero) joins the family: Holm p 0.6
    holm = _r("impact", "secondary", SCALES[0], "p_holm", 0.6)
    return pd.concat([est, pd.DataFrame([holm], columns=COLUMNS)], ignore_index=True)


def test_without_a_named_primary_nothing_is_primary_and_every_finding_reads_its_holm_p():
    est = no_primary()
    assert S.primary_outcome(Lookup(est)) is None
    assert S.primary_outcome(Lookup(est[est["analysis"] != "protocol"])) is None  # no row: not assumed either
    b = solved(est)
    head = b.cells("summary/headline")
    assert S.primary_rows(head).empty and not head["outcome"].str.contains("primary").any()
    assert head.loc[0, "p_holm"] == "0.600"  # confidence shows its Holm p, not [x]
    # confidence's model interval lies below zero, but its Holm p (0.6) decides: no verdict of worsening
    assert head["finding"].tolist()[0] == "no clear difference"
    notes = " ".join(S.headline_table(Lookup(est), LAS, pooled=True).notes)
    assert "No primary outcome was pre-specified" in notes and "finding reads" in notes
    glue = plain(S.sentences(head, None, None, Lookup(est), 10))
    assert glue["s_primary_sentence"].startswith("No primary outcome was pre-specified")
    assert glue["s_primary_sentence"].count(".") == 1  # one sentence
    assert glue["s_secondary_sentence"].startswith("Every outcome, with p-values adjusted")
    assert "confidence in engaging fathers: g -0.10" in glue["s_secondary_sentence"]
    assert glue["s_primary_outcome"] == "none pre-specified"
    assert glue["s_outcomes_sentence"].startswith("No primary outcome was pre-specified")
    security = S.security_table(Lookup(est), {"las": LAS}).data
    assert security.iloc[1, 1].startswith("None pre-specified")


def test_with_a_named_primary_the_summary_says_the_protocol_named_it():
    glue = glue_of(pooled())
    assert "(an assumption" not in glue["s_primary_sentence"]
    assert glue["s_outcomes_sentence"].startswith("The primary outcome, named by the protocol, is confidence")
    security = S.security_table(Lookup(pooled()), {"las": LAS}).data
    assert security.iloc[1, 1] == "Confidence in engaging fathers (named by the protocol)"


def test_summary_values_are_written_into_the_pages_and_an_unknown_one_stops_the_build(tmp_path):
    (tmp_path / "index.md").write_text("# Summary\n\n{{ s_a }} and {{s_b}}; {{ s_a }}.\n", encoding="utf-8")
    (tmp_path / "other.md").write_text("no values\n", encoding="utf-8")
    book.fill_pages(tmp_path, ["index.md", "other.md"], {"s_a": "40 teams", "s_b": "7 LAs"})
    assert (tmp_path / "index.md").read_text() == "# Summary\n\n40 teams and 7 LAs; 40 teams.\n"
    (tmp_path / "limits.md").write_text("{{ s_c }}\n", encoding="utf-8")
    with pytest.raises(book.BookError, match=r"book/limits.md .*s_c"):
        book.fill_pages(tmp_path, ["limits.md"], {"s_a": "x"})
