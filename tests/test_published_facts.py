"""One book, one set of facts: the built bundled book, read as a commissioner, an LA director and an auditor.

The book is built once from the bundled run (the session's ``bundled_run``):
- the summary and each LA index page publish the case-file outcome exactly
  as that scope's impact page does, each headline cell linking to the table
  it comes from, and no finding stands beside a withheld estimate;
- every row of every ``<scope>-published-numbers.csv`` that names its
  ``estimates.csv`` cell joins to it, with the cell's value at the book's
  rounding, as a plain number;
- no alt text holds a number its page does not show.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup
from published_numbers import alt_numbers_absent, figure_numbers_unpublished, joins_estimates

from isafe_helpers.publish.facts import CSV_COLUMNS


@pytest.fixture(scope="module")
def book_html(tmp_path_factory, bundled_run) -> Path:
    build = tmp_path_factory.mktemp("factsbook") / "build"
    res = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "book", "--out", str(bundled_run), "--build", str(build)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return build / "html"


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _scopes(html: Path) -> dict[str, tuple[Path, Path]]:
    """Each scope's headline page and impact page."""
    out = {"trial": (html / "book/index.html", html / "results/trial/1_impact.html")}
    for page in sorted((html / "book/las").glob("*.html")):
        out[page.stem] = (page, html / f"results/las/{page.stem}/1_impact.html")
    return out


def _casefile_on_page(impact: Path) -> tuple[str, str]:
    """The odds ratio with its interval, and its p, as the impact page's case-file table prints them."""
    soup = _soup(impact)
    for table in soup.find_all("table"):
        cap = table.find("caption")
        if cap is None or "contact details recorded in case files" not in cap.get_text():
            continue
        head = [th.get_text(" ", strip=True) for th in table.find("thead").find_all("th")]
        for tr in table.find("tbody").find_all("tr"):
            cells = [c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])]
            if cells[0] == "Odds ratio":
                row = dict(zip(head, cells))
                e, lo, hi = row["Estimate"], row["95% CI low"], row["95% CI high"]
                symbols = {"[c]", "[x]"}
                return (e if e in symbols else f"{e} ({lo} to {hi})"), row["p"]
    raise AssertionError(f"no case-file table on {impact}")


def _headline_row(page: Path, outcome: str) -> dict:
    soup = _soup(page)
    table = next(t for t in soup.find_all("table") if "Headline results" in t.find("caption").get_text())
    head = [th.get_text(" ", strip=True) for th in table.find("thead").find_all("th")]
    for tr in table.find("tbody").find_all("tr"):
        cells = tr.find_all(["th", "td"])
        if cells[0].get_text(" ", strip=True).startswith(outcome):
            return {h: (c.get_text(" ", strip=True).replace("\u00a0", " "), c.find("a")) for h, c in zip(head, cells)}
    raise AssertionError(f"no {outcome} row on {page}")


def test_summary_and_la_index_pages_publish_the_casefile_outcome_as_the_pages_do(book_html):
    shown = 0
    for scope, (headline, impact) in _scopes(book_html).items():
        effect, p = _casefile_on_page(impact)
        row = _headline_row(headline, "Fathers' contact details recorded in case files")
        assert row["Estimate (95% CI)"][0] == effect, scope
        assert row["p"][0] == p, scope
        link = row["Estimate (95% CI)"][1]
        if effect not in ("[c]", "[x]"):
            shown += 1
            # the cell links to the table it comes from, and that table carries the anchor
            target, _, anchor = link["href"].partition("#")
            page = (headline.parent / target).resolve()
            assert page == impact.resolve() and _soup(page).find(id=anchor) is not None, scope
    assert shown >= 2  # the pooled trial's and LA03's odds ratios, among others


def test_no_finding_stands_beside_a_withheld_or_missing_estimate(book_html):
    soup = _soup(book_html / "book/index.html")
    table = next(t for t in soup.find_all("table") if "Headline results" in t.find("caption").get_text())
    head = [th.get_text(" ", strip=True) for th in table.find("thead").find_all("th")]
    for tr in table.find("tbody").find_all("tr"):
        row = dict(zip(head, (c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"]))))
        if row["Estimate (95% CI)"] in ("[c]", "[x]"):
            assert row["Finding"].startswith("no verdict"), row
        else:
            assert not row["Finding"].startswith("no verdict"), row


#: The numbers the bundled book shows that name no ``estimates.csv`` row yet, by (column, start of the row's
#: label): none (a number added to a table without declaring its cell fails the test below).
NOT_YET_KEYED: set[tuple[str, str]] = set()


def _estimates(run: Path) -> pd.DataFrame:
    """Every scope's estimates.csv: a pooled page's breakdown by LA shows each LA's own cells."""
    return pd.concat([pd.read_csv(f) for f in sorted(run.glob("*/estimates.csv"))], ignore_index=True)


def test_every_published_number_joins_its_estimates_row(book_html, bundled_run):
    files = sorted(book_html.glob("_downloads/*/*-published-numbers.csv"))
    assert len(files) == 8  # the pooled trial and 7 LAs
    est = _estimates(bundled_run)
    checked = rows = 0
    unkeyed: set[tuple[str, str]] = set()
    for f in files:
        scope = f.name.removesuffix("-published-numbers.csv")
        published = pd.read_csv(f, keep_default_na=False, dtype={"value": str})
        assert list(published.columns) == CSV_COLUMNS
        assert not published["value"].str.contains(r"[^0-9.eE+\-]", regex=True).any()  # plain numbers only
        checked += joins_estimates(published, est)
        rows += len(published)
        # the summary's and index pages' headline cells all name their cell, or carry a symbol
        head = published[published["table"].str.endswith(("summary-table-1", "index-table-1"))]
        assert len(head) and ((head["quantity"] != "") | (head["symbol"] != "")).all(), scope
        # a row without a key is a symbol with no cell behind it ([x]: not available, [z]: not applicable),
        # or a number listed above
        bare = published[(published["quantity"] == "") & (published["symbol"] == "")]
        for r in bare.itertuples():
            hit = next(((c, s) for c, s in NOT_YET_KEYED if r.column == c and r.row.startswith(s)), None)
            assert hit is not None, f"{f.name}: {r.table} row {r.row!r} column {r.column!r} names no estimates.csv cell"
            unkeyed.add(hit)
        assert (published.loc[published["quantity"] == "", "symbol"].isin(["", "[x]", "[z]"])).all(), scope
    assert checked > 0.95 * rows  # each joined, at the book's rounding
    assert unkeyed == NOT_YET_KEYED  # the list shrinks as the tables declare their cells


def test_table_ids_are_the_anchors_of_the_html_tables(book_html):
    published = pd.read_csv(next(book_html.glob("_downloads/*/trial-published-numbers.csv")), keep_default_na=False)
    ids = {i for i in published["table"] if re.fullmatch(r"trial-impact-table-\d+", i)}
    anchors = {t["id"] for t in _soup(book_html / "results/trial/1_impact.html").select("div.isafe-table[id]")}
    assert ids and ids <= anchors


def test_no_alt_text_holds_a_number_its_page_does_not_show(book_html):
    pages = [p for p in sorted(book_html.rglob("*.html")) if "_static" not in p.parts]
    seen = 0
    bad = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        seen += text.count("<img")
        bad += [
            (page.relative_to(book_html).as_posix(), missing, alt[:120]) for alt, missing in alt_numbers_absent(text)
        ]
    assert seen > 50
    assert not bad, "\n".join(map(str, bad[:20]))


def test_the_search_index_holds_no_number_its_pages_do_not_show(book_html):
    """Issue 22: the search index is an intruder's source too. Every word of digits it files under a page is a
    word of that page's main content: its visible text, or that text as the indexer reads it (tags stripped with
    nothing between, so adjacent table cells run together: 0.00 beside 167 is indexed as 0 and 00167). Content
    the built page does not carry (a removed cell's output, a notebook's text form of a table) would be filed
    and fail here."""
    import html as html_lib
    import json

    raw = (book_html / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(raw[raw.index("(") + 1 : raw.rindex(")")])
    words: dict[int, set[str]] = {}
    for i, doc in enumerate(index["docnames"]):
        main = _soup(book_html / f"{doc}.html")
        main = main.find("main") or main
        joined = re.sub(r"<(style|script).*?</\1>", "", str(main), flags=re.IGNORECASE | re.DOTALL)
        joined = html_lib.unescape(re.sub(r"<[^<]+?>", "", joined))
        words[i] = set(re.findall(r"\w+", main.get_text(" ").lower())) | set(re.findall(r"\w+", joined.lower()))
    numbers = {t: v if isinstance(v, list) else [v] for t, v in index["terms"].items() if re.fullmatch(r"\d+", t)}
    assert len(numbers) > 200  # not vacuous: the tables' numbers are indexed
    bad = [(t, index["docnames"][i]) for t, docs in numbers.items() for i in docs if t not in words[i]]
    assert not bad, bad[:20]


def _published_texts(html: Path) -> dict[str, set[str]]:
    """Each scope's published values as a chart may print them (0 to 3 decimals, no sign or commas)."""
    out: dict[str, set[str]] = {}
    for f in html.glob("_downloads/*/*-published-numbers.csv"):
        values = pd.to_numeric(pd.read_csv(f, keep_default_na=False)["value"], errors="coerce").dropna()
        out[f.name.removesuffix("-published-numbers.csv")] = {
            f"{abs(v):.{d}f}" for v in values if abs(v) != float("inf") for d in range(4)
        }
    return out


def test_every_number_a_chart_draws_is_a_published_number_or_an_axis_label(book_html):
    """Issue 21: a figure's text (SVG) gives no number the book does not publish for that page's scope."""
    published = _published_texts(book_html)
    every = set().union(*published.values())
    bad, charts = [], 0
    for page in sorted(book_html.rglob("*.html")):
        if "_static" in page.parts:
            continue
        rel = page.relative_to(book_html).as_posix()
        hit = re.match(r"results/las/(LA\d+)/|book/las/(LA\d+)\.html", rel)
        scope = (
            (hit.group(1) or hit.group(2))
            if hit
            else ("trial" if rel.startswith(("results/trial/", "book/index")) else None)
        )
        text = page.read_text(encoding="utf-8")
        charts += text.count("data:image/svg+xml;base64,")
        missing = figure_numbers_unpublished(text, published.get(scope, every) if scope else every)
        bad += [(rel, n) for n in missing]
    assert charts > 20
    assert not bad, bad[:20]


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True)


def test_a_small_three_la_book_passes_the_book_wide_check(tmp_path):
    """A 3-LA root with small groups ([c] in every scope): the build's check passes, every keyed number joins."""
    assert (
        _cli("synth", "--out", tmp_path / "root", "--las", 3, "--teams-per-la", 6, "--staff-per-team", 8).returncode
        == 0
    )
    res = _cli(
        "run", "--data", tmp_path / "root", "--out", tmp_path / "out", "--build", tmp_path / "build", "--jobs", 2
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]  # the build runs the book-wide check
    html = tmp_path / "build" / "html"
    withheld = 0
    for f in sorted(html.glob("_downloads/*/*-published-numbers.csv")):
        published = pd.read_csv(f, keep_default_na=False, dtype={"value": str})
        joins_estimates(published, _estimates(tmp_path / "out"))
        withheld += int((published["symbol"] == "[c]").sum())
    assert withheld > 100  # small groups really are withheld
    for page in html.rglob("*.html"):
        if "_static" not in page.parts:
            assert not alt_numbers_absent(page.read_text(encoding="utf-8")), page


def _seeded(monkeypatch, seeds: dict):
    """Make renderings compute their own numbers: ``seeds`` maps a table caption's start to a change of its cells.

    Every table the book prints (pages, figures, summary, index pages) is read through
    :func:`isafe_helpers.publish.tables.protected`: a seed there is a rendering that no longer prints the fact
    the results page publishes.
    """
    from isafe_helpers.publish import tables

    real = tables.protected

    def protected(table, plan=None, keys=None, limit=None):
        cells = real(table, plan, keys, limit)
        for start, change in seeds.items():
            if table.caption.startswith(start):
                cells = change(table, cells.copy())
        return cells

    monkeypatch.setattr(tables, "protected", protected)


def _la01(table):
    """The rows of LA01 in a breakdown by LA (every outcome's)."""
    return [i for i, la in enumerate(table.data["la"].tolist()) if la == "LA01"]


def test_the_build_fails_naming_page_and_fact_when_a_rendering_computes_its_own(bundled_run, tmp_path, monkeypatch):
    """Issue 21's inconsistencies, seeded at once; the book-wide check names each fact and where it appears.

    - the process strand prints an LA's effect at its own rounding (0.18 beside the LA page's 0.184);
    - the pooled page's per-LA forest computes the pooled effect anew (a second number under one label);
    - an LA index page withholds the case-file odds ratio its impact page publishes (its own symbol).
    """
    from isafe_helpers.publish import book, tables

    def own_rounding(table, cells):
        for i in _la01(table):
            if table.data["outcome"].iloc[i].startswith("Confidence"):
                cells.loc[i, "treatment_effect"] = tables.number(table.data["treatment_effect"].iloc[i], "number", 2)
        return cells

    def own_number(table, cells):
        for i, la in enumerate(table.data["la"].tolist()):
            if la == "Pooled":
                cells.loc[i, "estimate"] = tables.number(table.data["estimate"].iloc[i] + 0.05, "number", 3)
        return cells

    def own_symbol(table, cells):  # on LA03's index page (its odds ratio is its only nominally significant result)
        if not any("LA03-impact" in str(link) for link in table.links.get("effect", [])):
            return cells
        for i, o in enumerate(table.data["outcome"].tolist()):
            if str(o).startswith("Fathers' contact"):
                cells.loc[i, "effect"] = "[c]"
        return cells

    _seeded(
        monkeypatch,
        {
            "Reach against impact": own_rounding,
            "Arm effect within each LA": own_number,
            "Headline results": own_symbol,
        },
    )
    with pytest.raises(book.BookError, match="one fact two ways") as e:
        book.stage(bundled_run, tmp_path / "stage")
    msg = str(e.value)
    # the process strand's LA effect: LA01's own primary-model cell, on the LA01 page and the pooled process page
    assert "LA01/impact/primary/confidence/treatment_effect/estimate" in msg
    assert "process trial-process-table-" in msg and "impact LA01-impact-table-" in msg
    # the forest's own number: the pooled effect it draws beside the LAs', against the primary table's
    assert "trial/impact/primary/confidence/treatment_effect/estimate" in msg
    assert "impact trial-impact-figure-" in msg and "impact trial-impact-table-" in msg
    # the index page's own symbol: LA03's case-file odds ratio, [c] on its index page, published on its impact page
    assert "LA03/impact/primary/father_contact_recorded/odds_ratio/estimate" in msg
    assert "index LA03-index-table-1" in msg and "impact LA03-impact-table-" in msg and "[c]" in msg
