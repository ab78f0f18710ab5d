"""The evaluator's own pages (``report/`` at the data root): checked before any run, their numbers the book's.

- validation names file and line for an unknown key, a missing page, raw
  HTML, a directive that runs code or reads files, a malformed fact key,
  and ``validate`` exits 2 on them before any notebook runs;
- a cited fact shows the book's published text: a withheld one ``[c]``; a
  fact no page publishes is refused at staging;
- the pages go first in the Overview part, right after the executive summary.
"""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

from test_book import pooled, solved
from tiny import standard_root

from isafe_helpers.data.contract import CASEFILE_OUTCOME
from isafe_helpers.data.report_pages import check_report
from isafe_helpers.publish import authored as A


def _report(root: Path, pages: dict[str, str], index: str | None = None) -> Path:
    folder = root / "report"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.yml").write_text(index or "pages:\n" + "".join(f"  - {p}\n" for p in pages), encoding="utf-8")
    for name, text in pages.items():
        (folder / name).write_text(text, encoding="utf-8")
    return root


GOOD = """# Implications

The trial's effect on confidence was {fact}`trial/impact/primary/confidence/hedges_g_total`
(95% CI {fact}`trial/impact/primary/confidence/hedges_g_total:ci_low` to
{fact}`trial/impact/primary/confidence/hedges_g_total:ci_high`).

```python
<b>literal code is not checked</b> {eval}`x`
```

```{note}
Cost per participant in LA01: {fact}`LA01/cost/unit_cost//per_participant`.
```
"""


def test_a_good_report_folder_has_no_problems(tmp_path):
    assert check_report(_report(tmp_path, {"implications.md": GOOD}), ["LA01"]) == []
    assert check_report(tmp_path / "nowhere", []) == []  # no report/: nothing to check


def test_every_problem_names_its_file_and_line(tmp_path):
    bad = (
        "# Findings\n"  # 1
        "A <span>tag</span> here.\n"  # 2
        "```{raw} html\n"  # 3
        "<script>x</script>\n"  # 4
        "```\n"  # 5
        ":::{include} ../LA01/teams.csv\n"  # 6
        ":::\n"  # 7
        "g {fact}`trial/impact/primary` and {fact}`LA99/impact/primary/confidence/g` "  # 8
        "and {fact}`trial/impact/primary/confidence/g:stderr`\n"
        "```{code-cell} python\nimport os\n```\n"  # 9..11
        "![logic model](../secret.png)\n"  # 12
    )
    root = _report(tmp_path, {"findings.md": bad}, "pages:\n  - findings.md\n  - gone.md\ntitle: x\n")
    found = {(p.file, p.row, p.value): p.rule for p in check_report(root, ["LA01"])}
    where = {(f, r) for f, r, _ in found}
    assert ("report/report.yml", 3) in where  # the missing page gone.md
    assert any("missing page" in r for r in found.values())
    assert found[("report/report.yml", 4, None)] == "unknown key: report.yml holds only pages"  # title: x
    for line, what in [
        (2, "raw HTML"),
        (3, "directive {raw}"),
        (6, "directive {include}"),
        (8, "five segments"),
        (8, "'LA99' is neither"),
        (8, "field 'stderr'"),
        (9, "directive {code-cell}"),
        (12, "an image must be a file inside report/"),
    ]:
        assert any(f == "report/findings.md" and r == line and what in rule for (f, r, _), rule in found.items()), (
            line,
            what,
            found,
        )


def test_validate_exits_2_naming_the_page_and_line_before_any_run(tmp_path):
    root = standard_root(tmp_path)
    _report(root, {"about.md": "# About\n\nSee <iframe src=x></iframe>.\n"})
    res = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "validate", "--data", str(root)], capture_output=True, text=True
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "report/about.md" in res.stdout + res.stderr and "row 3" in res.stdout + res.stderr
    assert "raw HTML" in res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    # the report folder is not taken for an LA folder
    (root / "report" / "about.md").write_text("# About\n\nNothing to hide.\n", encoding="utf-8")
    ok = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "validate", "--data", str(root)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def _odds_ratio_key(b) -> tuple:
    return next(k for k in b.facts() if k[3] == CASEFILE_OUTCOME and k[4] == "odds_ratio" and k[5] == "estimate")


def test_an_authored_page_citing_a_withheld_fact_shows_c(tmp_path):
    est = pooled()
    few = (est["outcome"] == CASEFILE_OUTCOME) & (est["quantity"] == "odds_ratio")
    est.loc[few, "n"] = 6  # the results page withholds the odds ratio: it rests on 6 staff
    b = solved(est)
    key = _odds_ratio_key(b)
    cite = "/".join(key[:5])
    root = _report(tmp_path / "root", {"findings.md": f"# Findings\n\nThe odds ratio was {{fact}}`{cite}`.\n"})
    entries, missing = A.stage_report(root, tmp_path / "book", b.facts())
    assert missing == [] and entries == ["book/report/findings"]
    shown = html.unescape((tmp_path / "book" / "report" / "findings.md").read_text(encoding="utf-8"))
    assert "The odds ratio was [c]." in shown and "1.5" not in shown
    # published, the same citation shows the results page's number at its rounding
    b = solved(pooled())
    A.stage_report(root, tmp_path / "book2", b.facts())
    shown = html.unescape((tmp_path / "book2" / "report" / "findings.md").read_text(encoding="utf-8"))
    assert "The odds ratio was 1.500." in shown


def test_a_fact_no_page_publishes_is_refused_with_file_and_line(tmp_path):
    b = solved(pooled())
    root = _report(tmp_path / "root", {"p.md": "# P\n\nx\n{fact}`trial/impact/primary/nothing/hedges_g_total`\n"})
    _, missing = A.stage_report(root, tmp_path / "book", b.facts())
    assert missing == [
        "report/p.md, line 4: {fact}`trial/impact/primary/nothing/hedges_g_total` is not published on any page of the book"
    ]


def test_a_fact_of_a_page_that_did_not_run_shows_x_and_the_book_is_still_built(tmp_path):
    b = solved(pooled())
    root = _report(tmp_path / "root", {"p.md": "Cost: {fact}`trial/cost/unit_cost/total/cost_per_participant_gbp`.\n"})
    pages = {(p.scope, p.strand) for p in b.pages}
    assert ("trial", "cost") not in pages  # the book's only results page is the pooled impact page
    _, missing = A.stage_report(root, tmp_path / "book", b.facts(), pages)
    assert missing == []
    assert html.unescape((tmp_path / "book" / "report" / "p.md").read_text(encoding="utf-8")) == "Cost: [x].\n"


def test_authored_pages_come_first_in_the_overview_part():
    toc = {"root": "book/index", "parts": [{"caption": "Overview", "chapters": [{"file": "book/about_isafe"}]}]}
    out = A.with_report(toc, ["book/report/a", "book/report/b"])
    assert [c["file"] for c in out["parts"][0]["chapters"]] == ["book/report/a", "book/report/b", "book/about_isafe"]


def test_template_writes_a_starter_report_folder_that_validates_and_keeps_what_is_there(tmp_path):
    from isafe_helpers.data.report_pages import STARTER

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "implications.md").write_text("# Mine\n", encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "template", "--out", str(tmp_path / "returns.xlsx")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "evaluator's pages" in res.stdout and "kept as they were" in res.stdout
    folder = tmp_path / "report"
    assert (folder / "implications.md").read_text(encoding="utf-8") == "# Mine\n"  # never written over
    for name, title, _ in STARTER[:3]:
        text = (folder / name).read_text(encoding="utf-8")
        assert text.startswith(f"# {title}") and "What belongs here:" in text
    titles = [t.lower() for _, t, _ in STARTER]
    assert any("logic model" in t for t in titles) and any("research questions" in t for t in titles)
    assert any("process findings" in t for t in titles) and any("implications" in t for t in titles)
    assert check_report(tmp_path, ["LA01"]) == []  # the starter's own example citation is code, not a fact


def test_the_bundled_synthetic_trial_ships_marked_synthetic_pages_citing_facts(tmp_path):
    from isafe_helpers.data.report_pages import page_list
    from isafe_helpers.resources import BUNDLED_DATA

    pages = page_list(BUNDLED_DATA)
    assert pages and check_report(BUNDLED_DATA, [f"LA0{i}" for i in range(1, 8)]) == []
    texts = [(BUNDLED_DATA / "report" / p).read_text(encoding="utf-8") for p in pages]
    assert all("synthetic" in t.split("\n", 1)[0].lower() for t in texts)
    assert sum(t.count("{fact}`") for t in texts) >= 3


def test_an_la_result_with_baseline_inequivalence_and_high_attrition_carries_the_caution_in_its_row():
    import pandas as pd

    from isafe_helpers.data.contract import SCALES
    from isafe_helpers.publish import summary as S
    from isafe_helpers.results.estimates import Lookup

    est = pooled()
    scale = SCALES[2]
    extra = pd.DataFrame(
        [
            {
                **est.iloc[0].to_dict(),
                "analysis": "baseline_equivalence",
                "outcome": f"{scale}:{scale}_baseline",
                "quantity": "standardised_difference",
                "estimate": 0.45,
                "note": "not satisfied",
            },
            {
                **est.iloc[0].to_dict(),
                "analysis": "attrition",
                "outcome": f"{scale}:participants",
                "quantity": "wwc_cautious_boundary_pct",
                "estimate": 4.1,
                "note": "WWC cautious boundary: high attrition; analysed sample",
            },
        ]
    )
    look = Lookup(pd.concat([est, extra], ignore_index=True))
    t = S.headline_table(look, ["LA01"], pooled=False)
    assert "caution" in [c.key for c in t.columns]
    row = t.data.set_index("outcome").loc[S.label(scale)]
    assert row["caution"] == "Baseline equivalence not satisfied; high attrition"
    assert any(n.startswith("Caution: baseline equivalence not satisfied means") for n in t.notes)
    assert (t.data["caution"] == "").sum() == len(t.data) - 1  # the other outcomes carry none
    assert "caution" not in [c.key for c in S.headline_table(Lookup(est), ["LA01"], pooled=False).columns]


def test_each_la_index_page_and_the_front_page_link_their_pdf_beside_the_html():
    from isafe_helpers.publish import book

    text = book.la_index_markdown("LA01", ["1_impact"], "")
    assert '<a href="../../pdf/isafe_report_LA01.pdf">' in text  # html/book/las/LA01.html -> html/pdf/
    assert book.pdf_link("book/index", None, "PDF") == '<a href="../pdf/isafe_report.pdf">PDF</a>'
    # every PDF the pages link is listed in the book's manifest, so a later build may replace the folder
    assert book.pdf_files({"las": ["LA02", "LA01"]}) == [
        "pdf/isafe_report.pdf",
        "pdf/isafe_report_LA01.pdf",
        "pdf/isafe_report_LA02.pdf",
    ]
