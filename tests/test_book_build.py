"""The built book on a data root with small cells and free-text comments.

One run of every notebook on a tiny synthetic root (2 LAs, 2 teams of 3
staff each, so nearly every count is under the threshold), with a comment
on every feedback row; the pooled cost notebook is then recorded as failed,
as the pipeline records a failure, with its rows left in ``estimates.csv``
as an earlier run would leave them. The book built from it must carry no
participant ID, no comment and no local path in any file, suppress every
small count in every table, and say what failed and why.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup

from isafe_helpers.publish import disclosure

pytestmark = pytest.mark.slow

FAILURE = "ValueError: deflators.csv is needed for rows in two price years"


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smallbook")
    root, out, build = tmp / "root", tmp / "out", tmp / "build"
    assert cli("synth", "--out", root, "--las", 2, "--teams-per-la", 2, "--staff-per-team", 3).returncode == 0
    comments = []
    for fb in sorted(root.glob("*/feedback.csv")):
        df = pd.read_csv(fb, dtype=str, keep_default_na=False)
        df["comment"] = [f"Zebra remark {fb.parent.name} number {i}" for i in range(len(df))]
        df.to_csv(fb, index=False)
        comments += df["comment"].tolist()
    res = cli("run", "--data", root, "--out", out, "--no-book", "--jobs", 2)
    errors = "".join(f"\n{p}: {p.read_text()}" for p in sorted(out.glob("*/*.error.txt")))
    assert res.returncode == 0, res.stdout + res.stderr + errors  # a notebook's error, if one failed
    run = json.loads((out / "run.json").read_text())
    for t in run["tasks"]:
        if (t["scope"], t["strand"]) == ("trial", "cost"):
            t.update(status="failed", message=FAILURE)
    (out / "run.json").write_text(json.dumps(run))
    (out / "trial" / "cost.ipynb").unlink()
    # its rows stay in estimates.csv, as rows of an earlier run would: the book must not show them
    res = cli("book", "--out", out, "--build", build)
    assert res.returncode == 0, res.stdout + res.stderr
    ids = set()
    for f in root.glob("*/participants.csv"):
        ids |= set(pd.read_csv(f, dtype=str)["participant_id"])
    for f in root.glob("*/attendance.csv"):
        ids |= set(pd.read_csv(f, dtype=str)["person_id"])
    return {"html": build / "html", "root": root, "out": out, "comments": comments, "ids": ids}


def every_file(html: Path):
    for p in sorted(html.rglob("*")):
        if p.is_file() and p.suffix in {".html", ".js", ".txt", ".ipynb", ".md", ".json"} and "_static" not in p.parts:
            yield p, p.read_text(encoding="utf-8", errors="replace")


def test_no_comment_participant_id_or_local_path_is_published(built):
    assert built["comments"] and built["ids"]
    id_pattern = re.compile("|".join(map(re.escape, sorted(built["ids"], key=len, reverse=True))))
    seen = 0
    for path, text in every_file(built["html"]):
        seen += 1
        assert not any(c in text for c in built["comments"]), f"a feedback comment is in {path}"
        hit = id_pattern.search(text)
        assert hit is None, f"participant or staff ID {hit.group(0) if hit else ''} is in {path}"
        assert str(built["root"]) not in text and str(built["out"]) not in text, f"a local path is in {path}"
    assert seen > 20


def _tables(path: Path):
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for table in soup.find_all("table"):
        rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])] for tr in table.find_all("tr")]
        if rows:
            yield rows


def _people_cells(path: Path):
    """Every cell of a column the renderer marks as a count of people (class ``people``), less the trial
    flow's counts, which CONSORT asks to publish whatever their size (class ``exempt``)."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for cell in soup.select("td.people"):
        if "exempt" not in cell.get("class", []):
            yield cell.get_text(" ", strip=True)


def test_every_count_of_people_in_every_table_is_at_least_the_threshold_or_c(built):
    limit = disclosure.threshold()
    checked = suppressed = 0
    for page in sorted(built["html"].glob("results/**/*.html")):
        for text in _people_cells(page):
            checked += 1
            if text in ("[c]", "[x]"):
                suppressed += text == "[c]"
                continue
            value = float(text.replace(",", ""))
            # a zero is published (methods: disclosure) unless it puts a whole group in one category
            assert value == 0 or value >= limit, f"{page.name}: a count of people {text}"
    assert checked > 50 and suppressed > 20  # the tiny root really has small cells


def test_la_pages_show_rates_only_where_their_counts_are_shown(built):
    page = built["html"] / "results/las/LA01/2_process.html"
    seen = 0
    for rows in _tables(page):
        header = rows[0]
        if "Reach (%)" in header:
            for row in rows[1:]:
                seen += 1
                audience = next(i for i, h in enumerate(header) if h.startswith("Intended audience"))
                if "[c]" in (row[header.index("Attendees")], row[audience]):
                    assert row[header.index("Reach (%)")] == "[c]", row
    assert seen


def test_a_failed_notebook_has_a_page_that_says_so_and_why(built):
    page = (built["html"] / "results/trial/3_cost.html").read_text(encoding="utf-8")
    assert "failed in the last run" in page and "deflators.csv is needed" in page
    summary = BeautifulSoup((built["html"] / "book/index.html").read_text(encoding="utf-8"), "html.parser").get_text()
    assert "The pooled cost notebook failed in this run" in summary
    assert "The cost per participant is not available: the pooled cost notebook failed" in " ".join(summary.split())


def test_each_la_has_a_section_with_its_caveat_and_three_pages(built):
    for la in ("LA01", "LA02"):
        index = (built["html"] / f"book/las/{la}.html").read_text(encoding="utf-8")
        assert "far less precise" in index
        for name in ("1_impact", "2_process", "3_cost"):
            assert f"results/las/{la}/{name}.html" in index
            assert (built["html"] / f"results/las/{la}/{name}.html").is_file()


def test_no_page_loads_a_script_style_or_image_from_the_network(built):
    remote = re.compile(r'<(?:script|img|link|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.I)
    pages = sorted(built["html"].rglob("*.html"))
    assert len(pages) > 15
    for page in pages:
        hit = remote.search(page.read_text(encoding="utf-8"))
        assert hit is None, f"{page.relative_to(built['html'])} loads {hit.group(0) if hit else ''}"
