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
from published_numbers import alt_numbers_absent, joins_estimates

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


def test_every_published_number_joins_its_estimates_row(book_html, bundled_run):
    files = sorted(book_html.glob("_downloads/*/*-published-numbers.csv"))
    assert len(files) == 8  # the pooled trial and 7 LAs
    checked = 0
    for f in files:
        scope = f.name.removesuffix("-published-numbers.csv")
        published = pd.read_csv(f, keep_default_na=False, dtype={"value": str})
        assert list(published.columns) == CSV_COLUMNS
        assert not published["value"].str.contains(r"[^0-9.eE+\-]", regex=True).any()  # plain numbers only
        est = pd.read_csv(bundled_run / scope / "estimates.csv")
        checked += joins_estimates(published, est)
        # the summary's and index pages' headline cells all name their cell, or carry a symbol
        head = published[published["table"].str.endswith(("summary-table-1", "index-table-1"))]
        assert len(head) and ((head["quantity"] != "") | (head["symbol"] != "")).all(), scope
    assert checked > 500


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
        scope = f.name.removesuffix("-published-numbers.csv")
        joins_estimates(published, pd.read_csv(tmp_path / "out" / scope / "estimates.csv"))
        withheld += int((published["symbol"] == "[c]").sum())
    assert withheld > 100  # small groups really are withheld
    for page in html.rglob("*.html"):
        if "_static" not in page.parts:
            assert not alt_numbers_absent(page.read_text(encoding="utf-8")), page
