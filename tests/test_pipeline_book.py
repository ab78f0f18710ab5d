"""A book build that scales (issue 16, item 3).

On a tiny trial (2 LAs): the book builds with two Sphinx processes under
``-W``; it carries no copies of the page sources; a page outside an LA's
branch does not draw that LA's pages in its sidebar; and after one LA's
costs change, an incremental build rewrites that LA's cost page but not the
pages that did not change, and equals a clean build file for file.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from isafe_helpers.data.synth import generate
from isafe_helpers.publish import book
from isafe_helpers.publish.build import STAGE_CACHE, WORK, build_book
from isafe_helpers.resources import SOURCES as REPO

pytestmark = pytest.mark.slow


class _FixedClock(dt.datetime):
    """The status page states when the book was built: the same minute for every build of the test."""

    @classmethod
    def now(cls, tz=None):
        return dt.datetime(2026, 1, 2, 3, 4, tzinfo=tz)


def cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ISAFE_VALIDATED_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=REPO, env=env
    )


def _files(html: Path) -> dict[str, bytes]:
    return {p.relative_to(html).as_posix(): p.read_bytes() for p in sorted(html.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("incremental")
    root = generate(tmp / "root", seed=12, las=2, teams_per_la=4, staff_per_team=4)
    out, build = tmp / "out", tmp / "build"
    res = cli("run", "--data", root, "--out", out, "--no-book")
    assert res.returncode == 0, res.stdout + res.stderr
    mp = pytest.MonkeyPatch()
    mp.setattr(book, "datetime", _FixedClock)
    try:
        build_book(out, build, jobs=2)
        first = _files(build / "html")
        staged_first = _staged(build)
        pages = build / WORK / "html"
        stamps = {p: p.stat().st_mtime_ns for p in pages.rglob("*.html")}

        costs = pd.read_csv(root / "LA01" / "costs.csv", dtype=str, keep_default_na=False)
        costs.loc[0, "unit_cost_gbp"] = str(float(costs.loc[0, "unit_cost_gbp"]) * 3)
        costs.to_csv(root / "LA01" / "costs.csv", index=False, lineterminator="\n")
        res = cli("run", "--data", root, "--out", out, "--no-book")
        assert res.returncode == 0, res.stdout + res.stderr
        build_book(out, build, jobs=2)
        staged_again = _staged(build)
        rewritten = {p.relative_to(pages).as_posix() for p, t in stamps.items() if p.stat().st_mtime_ns != t}
        clean = tmp / "clean"
        build_book(out, clean, jobs=2, clean=True)
    finally:
        mp.undo()
    return {
        "first": first,
        "incremental": _files(build / "html"),
        "clean": _files(clean / "html"),
        "rewritten": rewritten,
        "staged": (staged_first, staged_again),
        "html": build / "html",
        "out": out,
    }


def test_an_incremental_build_equals_a_clean_build_file_for_file(books):
    inc, clean = books["incremental"], books["clean"]
    assert sorted(inc) == sorted(clean)
    differ = [name for name in inc if inc[name] != clean[name]]
    assert differ == []
    assert inc != books["first"]  # the change reached the book


def _staged(build: Path) -> set:
    """The keys of the pages the stage cache holds after a build."""
    return set(pickle.loads((build / STAGE_CACHE).read_bytes())["pages"])


def test_the_incremental_build_stages_again_only_the_pages_whose_inputs_changed(books):
    """9 results pages (3 scopes x 3 strands); the cost change reruns LA01's and the pooled cost notebooks:
    their 2 pages are staged again, the other 7 are copied from the cache (and the build equals a clean one)."""
    first, again = books["staged"]
    assert len(first) == len(again) == 9
    assert len(first & again) == 7


def test_an_incremental_build_rewrites_the_changed_pages_only(books):
    rewritten = books["rewritten"]
    assert "results/las/LA01/3_cost.html" in rewritten and "results/trial/3_cost.html" in rewritten
    for untouched in ("results/las/LA02/1_impact.html", "results/las/LA01/1_impact.html", "book/methods.html"):
        assert untouched not in rewritten
    assert len(rewritten) < len([n for n in books["incremental"] if n.endswith(".html")]) / 2


def test_the_book_carries_no_copy_of_its_sources(books):
    assert not any(name.startswith("_sources/") for name in books["incremental"])
    page = (books["html"] / "results/las/LA01/1_impact.html").read_text(encoding="utf-8")
    assert "_sources/" not in page


def _sidebar(html: Path, page: str) -> set[str]:
    """The pages the sidebar of ``page`` links to, as paths from the book's root."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((html / page).read_text(encoding="utf-8"), "html.parser")
    links = soup.select_one("nav.bd-docs-nav").find_all("a")
    base = (html / page).parent
    return {
        (base / a["href"]).resolve().relative_to(html.resolve()).as_posix() if a["href"] != "#" else page for a in links
    }


def test_a_page_outside_an_la_does_not_draw_that_las_pages(books):
    html = books["html"]
    methods = _sidebar(html, "book/methods.html")
    assert "book/local_authorities.html" in methods and "results/trial/3_cost.html" in methods
    assert not any(p.startswith(("book/las/", "results/las/")) for p in methods)
    la = _sidebar(html, "results/las/LA01/1_impact.html")  # its own branch is open, not the others
    assert {"book/las/LA01.html", "results/las/LA01/3_cost.html", "book/las/LA02.html"} <= la
    assert not any(p.startswith("results/las/LA02/") for p in la)


def test_a_failed_build_keeps_the_book_and_makes_the_next_build_clean(books, tmp_path):
    import nbformat

    html = books["html"]
    build = html.parent
    before = _files(html)
    results = tmp_path / "results"
    shutil.copytree(books["out"], results)
    nb = nbformat.read(results / "LA02" / "impact.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("```{no-such-directive}\n```"))  # a warning, so an error
    nbformat.write(nb, results / "LA02" / "impact.ipynb")
    with pytest.raises(book.BookError, match="no-such-directive"):
        build_book(results, build, jobs=2)
    assert _files(html) == before
    assert not (build / WORK).exists()  # Sphinx would not repeat the warning for an unchanged page
