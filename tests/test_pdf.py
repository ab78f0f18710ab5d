"""The book as PDFs (:mod:`isafe_helpers.publish.pdf`).

Two kinds of test:

- on a small hand-made book (a few pages shaped like Jupyter Book's output):
  which pages each PDF takes, what is dropped, how tables and figures are
  renumbered and links rewritten, the cover, the headers, page counting, and
  the message when there is no Chromium. These need no browser.
- marked ``slow``, in Debian's Chromium (skipped with a reason when there is
  none, or no ``pdftotext``): the pipeline run on the bundled data for the
  pooled trial and LA01, the book built, the PDFs printed and read back with
  poppler's ``pdftotext``: page 1 says the data are synthetic, every page's
  header carries the notice and its footer "Page N of M", the tables and
  figures are numbered 1, 2, ... in reading order, every table's last column
  is printed and nothing is printed in the right margin (no cut table).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from isafe_helpers.publish import pdf
from isafe_helpers.resources import BUNDLED_DATA

SYNTHETIC_RUN = {"synthetic": {"synthetic": True, "seed": 99}, "finished": "2026-01-02 03:04 UTC", "fingerprint": "ab"}
REAL_RUN = {"finished": "2026-01-02 03:04 UTC", "fingerprint": "cd"}

NAV = """<nav class="bd-links bd-docs-nav" aria-label="Main"><ul class="nav bd-sidenav bd-sidenav__home-link">
<li class="toctree-l1 current active"><a class="reference internal" href="{root}">Summary</a></li></ul>
<p class="caption" role="heading"><span class="caption-text">Overview</span></p><ul class="nav bd-sidenav">
<li class="toctree-l1"><a class="reference internal" href="{up}book/methods.html">Methods</a></li></ul>
<p class="caption" role="heading"><span class="caption-text">Trial</span></p><ul class="nav bd-sidenav">
<li class="toctree-l1"><a class="reference internal" href="{up}results/trial/1_impact.html">Impact: Pooled trial</a></li></ul>
<p class="caption" role="heading"><span class="caption-text">Local authorities</span></p><ul class="nav bd-sidenav">
<li class="toctree-l1 has-children"><a class="reference internal" href="{up}book/las/LA01.html">Local authority LA01</a>
<details><summary>more</summary><ul>
<li class="toctree-l2"><a class="reference internal" href="{up}results/las/LA01/1_impact.html">Impact: LA01</a></li>
</ul></details></li>
<li class="toctree-l1"><a class="reference internal" href="{up}book/las/LA02.html">Local authority LA02</a></li></ul>
<p class="caption" role="heading"><span class="caption-text">Reference</span></p><ul class="nav bd-sidenav">
<li class="toctree-l1"><a class="reference internal" href="{up}book/rerun.html">How to rerun</a></li>
<li class="toctree-l1"><a class="reference internal" href="{up}book/status.html">Status</a></li></ul></nav>"""


def _table(n: int, caption: str, last: str) -> str:
    return (
        f'<div class="isafe-table"><div class="isafe-table-scroll" tabindex="0" role="region" '
        f'aria-label="Table {n}. {caption}"><table><caption>Table {n}. {caption}</caption><thead><tr>'
        f'<th scope="col" class="text">Outcome</th><th scope="col" class="num">{last}</th></tr></thead>'
        '<tbody><tr><th scope="row" class="text">Confidence</th><td class="num">0.12</td></tr></tbody></table></div></div>'
    )


def _figure(n: int, caption: str) -> str:
    return (
        '<figure class="isafe-figure"><img src="data:image/svg+xml;base64,PHN2Zy8+" alt="a chart"/>'
        f"<figcaption>Figure {n}. {caption}</figcaption></figure>"
    )


PAGES = {
    "book/index.html": (
        "Summary",
        '<p>See <a href="../results/trial/1_impact.html#primary">the primary analysis</a> and '
        '<a href="rerun.html">how to rerun</a> or <a href="https://example.org/eef">the EEF</a>.</p>'
        '<figure class="align-default" id="id1"><a class="reference internal image-reference" '
        'href="../_images/headline.png"><img alt="headline" src="../_images/headline.png"/></a>'
        '<figcaption><p><span class="caption-number">Fig. 1 </span><span class="caption-text">Headline.</span>'
        '<a class="headerlink" href="#id1">#</a></p></figcaption></figure>'
        "<p>As Fig. 1 shows.</p>",
    ),
    "book/methods.html": ("Methods", '<p>Maths: <span class="math notranslate nohighlight">\\(g\\)</span>.</p>'),
    "results/trial/1_impact.html": (
        "Impact: Pooled trial",
        '<section id="primary"><h2>Primary<a class="headerlink" href="#primary">#</a></h2>'
        '<div class="cell tag_remove-input docutils container"><div class="cell_input"><pre>import pandas</pre></div>'
        '<div class="cell_output">'
        + _table(1, "Trial flow", "Control (n)")
        + _table(2, "Primary analysis", "Residual variance")
        + _figure(1, "Effect sizes")
        + "</div></div><p>Table 2 and Figure 1 give the effect; Tables 1 and 2 the numbers; Table 9 is elsewhere."
        '</p><button class="btn">Print</button><script>alert(1)</script><form><input></form>'
        '<a href="#primary">back up</a></section>',
    ),
    "book/las/LA01.html": ("Local authority LA01", "<p>LA01's headline numbers.</p>" + _table(1, "Headline", "p")),
    "results/las/LA01/1_impact.html": ("Impact: LA01", _table(1, "Trial flow", "Teams") + _figure(1, "Flow")),
    "book/las/LA02.html": ("Local authority LA02", "<p>No notebook was run for LA02 in this build.</p>"),
    "book/rerun.html": ("How to rerun", "<p>Analysts only.</p>"),
    "book/status.html": ("Status", "<p>Data root fingerprint.</p>"),
}


def _html(path: str, title: str, body: str) -> str:
    up = "../" * path.count("/")
    root = "#" if path == "book/index.html" else f"{up}book/index.html"
    return (
        f'<!DOCTYPE html><html><head><title>{title}</title></head><body><aside class="bd-header-announcement">'
        f'Synthetic data</aside><div class="bd-sidebar-primary">{NAV.format(up=up, root=root)}</div>'
        f'<main id="main-content" class="bd-main"><div class="bd-header-article d-print-none"><button>menu</button>'
        f'</div><article class="bd-article"><section id="top"><h1>{title}<a class="headerlink" href="#top">#</a>'
        f"</h1>{body}</section></article></main></body></html>"
    )


@pytest.fixture
def book(tmp_path) -> Path:
    """A hand-made built book: the root redirect, eight pages, MathJax and one image."""
    html = tmp_path / "html"
    for path, (title, body) in PAGES.items():
        (html / path).parent.mkdir(parents=True, exist_ok=True)
        (html / path).write_text(_html(path, title, body), encoding="utf-8")
    (html / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/index.html" />')
    (html / "_images").mkdir()
    (html / "_images" / "headline.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (html / "_static" / "mathjax").mkdir(parents=True)
    (html / "_static" / "mathjax" / "tex-svg.js").write_text("window.MathJax.startup = {promise: Promise.resolve()};")
    (html / "_static" / "isafe.css").write_text(".isafe-table { margin: 0; }")
    return html


def _assembled(book: Path, which: int = 0, run: dict = SYNTHETIC_RUN) -> tuple[pdf.Assembled, BeautifulSoup]:
    doc = pdf.documents(book)[which]
    out = pdf.assemble(doc, book, run, book.parent / "pdf" / f"{doc.name}.html", datetime(2026, 3, 4, tzinfo=UTC))
    return out, BeautifulSoup(out.html, "html.parser")


def _text(soup: BeautifulSoup, selector: str = "body") -> str:
    return " ".join(soup.select_one(selector).get_text(" ").split())


# --------------------------------------------------------------------------
# Which pages
# --------------------------------------------------------------------------
def test_the_whole_report_takes_the_book_in_reading_order_less_the_analyst_pages(book):
    report = pdf.documents(book)[0]
    assert report.name == "isafe_report"
    assert [p.path for p in report.pages] == [
        "book/index.html",
        "book/methods.html",
        "results/trial/1_impact.html",
        "book/las/LA01.html",
        "results/las/LA01/1_impact.html",
        "book/las/LA02.html",
        "book/status.html",
    ]
    assert [p.part for p in report.pages][:3] == ["", "Overview", "Trial"]
    assert report.pages[4].level == 2


def test_an_la_gets_a_pdf_of_its_index_and_pages_only_when_it_has_results_pages(book):
    docs = pdf.documents(book)
    assert [d.name for d in docs] == ["isafe_report", "isafe_report_LA01"]
    la = docs[1]
    assert [p.path for p in la.pages] == [
        pdf.ABOUT_PAGE,
        pdf.METHODS_PAGE,
        "book/las/LA01.html",
        "results/las/LA01/1_impact.html",
    ]
    # a flat contents by strand: nothing nested under the LA's index page
    assert {p.level for p in la.pages} == {1}
    assert [p.part for p in la.pages] == ["About this report", "About this report", "Local authority LA01", "Impact"]
    assert la.title == "ISAFE evaluation: Local authority LA01"
    assert "descriptive only" in la.scope


def test_an_la_pdf_opens_with_about_this_report_and_methods_in_brief_read_from_the_book(book):
    _, soup = _assembled(book, 1)
    about = soup.select_one("#page-1")
    assert about.h1.get_text() == "About this report"
    assert "How the trial ran" in about.get_text() and "headline, for context" in about.get_text()
    methods = soup.select_one("#page-2")
    assert methods.h1.get_text() == "Methods in brief" and "Maths" in methods.get_text()
    contents = soup.select_one("#contents")
    assert [h.get_text() for h in contents.find_all("h2")] == ["About this report", "Local authority LA01", "Impact"]
    assert contents.select("ul ul") == []  # flat


def test_a_folder_without_a_built_book_is_refused_with_its_name(tmp_path):
    with pytest.raises(pdf.PdfError, match=r"holds no built book \(index.html missing\)"):
        pdf.documents(tmp_path)


# --------------------------------------------------------------------------
# The print document
# --------------------------------------------------------------------------
def test_tables_and_figures_keep_the_numbers_of_their_html_pages(book):
    """One id everywhere (issue 21): Table 2 of the pooled impact page is Table 2 in the PDF too (and
    trial-impact-table-2 in the published-numbers CSV); a page is a section of the PDF."""
    out, soup = _assembled(book)
    captions = [" ".join(c.get_text().split()) for c in soup.find_all("caption")]
    assert captions == [
        "Table 1. Trial flow",
        "Table 2. Primary analysis",
        "Table 1. Headline",
        "Table 1. Trial flow",
    ]
    figures = [" ".join(c.get_text().split()) for c in soup.find_all("figcaption")]
    assert figures == ["Figure 1. Headline.", "Figure 1. Effect sizes", "Figure 1. Flow"]
    assert (out.tables, out.figures) == (4, 3)


def test_references_to_a_table_or_figure_of_the_same_page_keep_its_number(book):
    _, soup = _assembled(book)
    impact = _text(soup, '[data-source="results/trial/1_impact.html"]')
    assert "Table 2 and Figure 1 give the effect; Tables 1 and 2 the numbers" in impact
    assert "Table 9 is elsewhere" in impact  # no such table on the page: left as written
    assert "As Figure 1 shows." in _text(soup, '[data-source="book/index.html"]')  # Sphinx's "Fig. 1"
    labels = [d["aria-label"] for d in soup.select(".isafe-table-scroll")]
    assert labels[:2] == ["Table 1. Trial flow", "Table 2. Primary analysis"]


def test_an_la_pdf_keeps_its_pages_numbers(book):
    _, soup = _assembled(book, which=1)
    assert [c.get_text() for c in soup.find_all("caption")] == ["Table 1. Headline", "Table 1. Trial flow"]


def test_navigation_controls_scripts_and_code_are_not_printed(book):
    _, soup = _assembled(book)
    body = soup.body
    for selector in (
        "nav",
        "button",
        "form",
        "input",
        "script",
        ".headerlink",
        ".cell_input",
        ".bd-header-announcement",
    ):
        assert body.select(selector) == [], selector
    assert "import pandas" not in body.get_text()


def test_links_point_within_the_document_or_become_text_and_images_are_embedded(book):
    _, soup = _assembled(book)
    summary = soup.select_one('[data-source="book/index.html"]')
    hrefs = [a["href"] for a in summary.find_all("a")]
    assert hrefs == ["#page-3-primary", "https://example.org/eef"]  # rerun.html is not in the report
    assert "how to rerun" in summary.get_text()
    assert summary.find("img")["src"].startswith("data:image/png;base64,")
    impact = soup.select_one('[data-source="results/trial/1_impact.html"]')
    assert impact.find(id="page-3-primary").name == "section"
    assert impact.find("a", string="back up")["href"] == "#page-3-primary"
    ids = [el["id"] for el in soup.find_all(id=True)]
    assert len(ids) == len(set(ids))


def test_mathjax_comes_from_the_books_own_copy_when_a_page_has_maths(book):
    out, soup = _assembled(book)
    srcs = [s["src"] for s in soup.head.find_all("script", src=True)]
    assert srcs == ["../html/_static/mathjax/tex-svg.js"]
    _, la = _assembled(book, which=1)  # its methods in brief carry the methods page's maths
    assert [s["src"] for s in la.head.find_all("script", src=True)] == srcs
    (book / "book" / "methods.html").write_text(_html("book/methods.html", "Methods", "<p>No maths.</p>"))
    _, la = _assembled(book, which=1)  # no maths there
    assert la.head.find_all("script", src=True) == []


def test_the_cover_carries_title_scope_date_and_the_synthetic_notice(book):
    _, soup = _assembled(book)
    cover = _text(soup, "#cover")
    assert "ISAFE evaluation report" in cover
    assert "The pooled trial and each of its 2 local authorities (LA01, LA02)" in cover
    assert "4 March 2026" in cover
    assert "Synthetic data: every number in this book comes from a synthetic trial" in cover
    assert "(seed 99)" in cover
    contents = [a["href"] for a in soup.select("#contents a")]
    assert contents == [f"#page-{i}" for i in range(1, 8)]


def test_real_data_get_no_synthetic_notice(book):
    _, soup = _assembled(book, run=REAL_RUN)
    assert "ynthetic" not in _text(soup, "#cover")
    doc = pdf.documents(book)[0]
    assert "ynthetic" not in pdf.header_template(doc, REAL_RUN)


def test_the_header_carries_the_notice_and_the_footer_the_page_numbers(book):
    doc = pdf.documents(book)[1]
    header = pdf.header_template(doc, SYNTHETIC_RUN)
    assert "Synthetic data (seed 99): illustrative numbers, not the ISAFE trial&#x27;s" in header
    assert "ISAFE evaluation: Local authority LA01" in header
    footer = pdf.footer_template(doc, datetime(2026, 3, 4, tzinfo=UTC))
    assert 'Page <span class="pageNumber"></span> of <span class="totalPages"></span>' in footer


# --------------------------------------------------------------------------
# Pages and missing tools
# --------------------------------------------------------------------------
def test_pages_are_counted_from_the_root_of_a_nested_page_tree(tmp_path):
    f = tmp_path / "x.pdf"
    f.write_bytes(
        b"%PDF-1.4\n3 0 obj\n<</Type /Pages\n/Count 2\n/Kids [5 0 R 6 0 R]\n/Parent 9 0 R>>\nendobj\n"
        b"9 0 obj\n<</Type /Pages\n/Count 12\n/Kids [3 0 R 4 0 R]>>\nendobj\n"
        b"5 0 obj\n<</Type /Page\n/Parent 3 0 R\n/Resources <</Font <</F1 7 0 R>>>>>>\nendobj\n"
    )
    assert pdf.page_count(f) == 12


def test_a_file_with_no_page_tree_is_an_error(tmp_path, monkeypatch):
    f = tmp_path / "x.pdf"
    f.write_bytes(b"not a pdf")
    monkeypatch.setattr(pdf.shutil, "which", lambda name: None)
    with pytest.raises(pdf.PdfError, match="could not count its pages"):
        pdf.page_count(f)


def test_without_chromium_the_error_says_how_to_get_the_pdfs(book, tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text(json.dumps(SYNTHETIC_RUN))
    monkeypatch.setattr(pdf, "find_chromium", lambda: None)
    with pytest.raises(pdf.ChromiumMissing) as err:
        pdf.build_pdfs(book, tmp_path / "results", tmp_path / "out")
    assert "apt-get install chromium" in str(err.value)
    assert "make browser" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_missing_run_record_is_named(book, tmp_path):
    with pytest.raises(pdf.PdfError, match=r"holds no run \(run.json missing\)"):
        pdf.build_pdfs(book, tmp_path, tmp_path / "out")


# --------------------------------------------------------------------------
# In Chromium
# --------------------------------------------------------------------------
def _need_tools() -> str:
    chromium = pdf.find_chromium()
    if chromium is None:
        pytest.skip(
            "PDF test skipped: no Chromium found (looked at ISAFE_CHROMIUM, "
            f"{', '.join(pdf.CHROMIUM_CANDIDATES)} and PATH); install Debian's chromium, e.g. `make browser` as root"
        )
    if shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None:
        pytest.skip("PDF test skipped: poppler's pdftotext/pdfinfo are missing (apt-get install poppler-utils)")
    return chromium


def _pdftotext(path: Path, *crop: str) -> list[str]:
    """The text of each page (optionally of a region, ``-x -y -W -H`` in points)."""
    res = subprocess.run(["pdftotext", *crop, str(path), "-"], capture_output=True, text=True, check=True)
    pages = res.stdout.split("\f")
    return [" ".join(p.split()) for p in (pages[:-1] if pages and not pages[-1].strip() else pages)]


# A4 in points (pdftotext's default 72 dpi): 595 x 842; margins 16 mm (45 pt) left/right, 20 mm top, 16 mm bottom.
HEADER = ("-x", "0", "-y", "0", "-W", "596", "-H", "52")
FOOTER = ("-x", "0", "-y", "800", "-W", "596", "-H", "42")
BODY = ("-x", "0", "-y", "60", "-W", "596", "-H", "730")
#: The right edge of the text column in points (A4 width less the 16 mm margin), with half a point of slack.
COLUMN_RIGHT = 595.92 - 16 / 25.4 * 72 + 0.5


def _words(path: Path) -> list[list[tuple[str, float, float, float]]]:
    """Each page's words with their right edge, top and bottom, in points (``pdftotext -bbox``)."""
    res = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True)
    soup = BeautifulSoup(res.stdout, "html.parser")
    return [
        [(w.get_text(), float(w["xmax"]), float(w["ymin"]), float(w["ymax"])) for w in page.find_all("word")]
        for page in soup.find_all("page")
    ]


def _parts(text: str) -> set[str]:
    """The words of ``text`` split at hyphens too (a header may break after one)."""
    return {p for w in text.split() for p in w.split("-") if p}


def _beyond_the_column(pages: list[list[tuple[str, float, float, float]]]) -> list[tuple[int, str]]:
    return [(i, w) for i, page in enumerate(pages, start=1) for w, x, _, _ in page if x > COLUMN_RIGHT]


@pytest.mark.slow
def test_a_page_that_asks_the_network_is_blocked_and_fails(book, tmp_path):
    _need_tools()
    page = book / "book" / "status.html"
    page.write_text(page.read_text().replace("Data root", '<img src="https://example.org/x.png"> Data root'))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text(json.dumps(SYNTHETIC_RUN))
    with pytest.raises(pdf.PdfError, match=r"asked the network for https://example.org/x.png \(blocked\)"):
        pdf.build_pdfs(book, tmp_path / "results", tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("columns, squeezed", [(12, False), (40, True)], ids=["scaled", "squeezed"])
def test_a_table_too_wide_for_the_page_is_scaled_to_fit(book, tmp_path, columns, squeezed):
    _need_tools()
    wide = "".join(f'<th scope="col" class="num">Column number {i}</th>' for i in range(columns))
    cells = "".join(f'<td class="num">{i}.5</td>' for i in range(columns))
    page = book / "book" / "status.html"
    page.write_text(
        page.read_text().replace(
            "<p>Data root fingerprint.</p>",
            f'<div class="isafe-table"><table><caption>Table 1. Wide</caption><thead><tr>{wide}'
            f"<th>Last header</th></tr></thead><tbody><tr>{cells}<td>last cell</td></tr></tbody></table></div>",
        )
    )
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text(json.dumps(SYNTHETIC_RUN))
    made = pdf.build_pdfs(book, tmp_path / "results", tmp_path / "out")
    layout = json.loads((tmp_path / "out" / pdf.LAYOUT_LOG).read_text())
    wide_table = next(t for t in layout[0]["scaled"] if t["caption"].endswith("Wide"))
    assert wide_table["fits"] and wide_table["squeezed"] is squeezed
    assert pdf.MIN_ZOOM <= wide_table["zoom"] < 1
    assert layout[0]["overflow"] == []
    pages = _words(made[0][0])
    assert _beyond_the_column(pages) == []  # nothing printed past the text column: no column is lost
    if not squeezed:  # words are whole (a squeezed table may break a word across lines)
        assert {"Last", "header", "last", "cell", f"{columns - 1}.5"} <= {w for page in pages for w, *_ in page}


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """The pipeline on the bundled data for the pooled trial and LA01, its book, and the PDFs (``run --pdf``)."""
    _need_tools()
    tmp = tmp_path_factory.mktemp("pdfbook")
    out, build = tmp / "results", tmp / "build"
    res = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "run", "--data", BUNDLED_DATA, "--out", out, "--build", build]
        + ["--scope", "trial", "LA01", "--pdf"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # as the command line prints them: "pdf: <path> (<n> pages)", the whole report first
    made = [(Path(p), int(n)) for p, n in re.findall(r"^pdf: (.+) \((\d+) pages\)$", res.stdout, re.MULTILINE)]
    return {"made": made, "dir": build / "pdf", "run": json.loads((out / "run.json").read_text())}


@pytest.mark.slow
def test_the_whole_report_and_the_la_with_results_are_printed_with_their_page_counts(printed):
    names = [p.name for p, _ in printed["made"]]
    assert names == ["isafe_report.pdf", "isafe_report_LA01.pdf"]  # LA02..LA07 were not run: no PDF
    for path, pages in printed["made"]:
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        assert re.search(rf"^Pages:\s+{pages}$", info, re.MULTILINE), (path.name, pages, info)
        assert pages > 5


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_page_one_and_every_header_say_the_data_are_synthetic(printed, which):
    path, pages = printed["made"][which]
    seed = printed["run"]["synthetic"]["seed"]
    assert "Synthetic data: every number in this book comes from a synthetic trial" in _pdftotext(path, *BODY)[0]
    headers = _pdftotext(path, *HEADER)
    assert len(headers) == pages
    notice = f"Synthetic data (seed {seed}): illustrative numbers, not the ISAFE trial's"
    assert [i for i, h in enumerate(headers, start=1) if notice not in h] == []


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_every_footer_numbers_its_page(printed, which):
    path, pages = printed["made"][which]
    footers = _pdftotext(path, *FOOTER)
    assert [f"Page {i} of {pages}" in f for i, f in enumerate(footers, start=1)] == [True] * pages


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_the_contents_give_the_page_each_part_starts_on(printed, which):
    path, pages = printed["made"][which]
    res = subprocess.run(["pdftotext", "-layout", "-f", "2", "-l", "2", str(path), "-"], capture_output=True, text=True)
    entries = re.findall(r"^\s*(\S.*?)\s{2,}(\d+)$", res.stdout, re.MULTILINE)
    doc = pdf.documents(path.parent.parent / "html")[which]
    assert [title for title, _ in entries] == [p.title for p in doc.pages]
    tops = _pdftotext(path, "-x", "0", "-y", "50", "-W", "596", "-H", "60")  # a title may take two lines
    numbers = [int(n) for _, n in entries]
    assert numbers == sorted(numbers) and 2 < numbers[0] and numbers[-1] <= pages
    assert [tops[n - 1].startswith(title) for (title, _), n in zip(entries, numbers)] == [True] * len(entries)


@pytest.mark.slow
def test_an_la_pdf_stands_alone_with_its_about_page_methods_summary_and_glossary(printed):
    path, pages = printed["made"][1]
    tops = _pdftotext(path, "-x", "0", "-y", "50", "-W", "596", "-H", "60")
    starts = {}
    for title in ("About this report", "Methods in brief", "Glossary"):
        hits = [n for n, t in enumerate(tops, 1) if n > 2 and t.startswith(title)]  # after the cover and contents
        assert hits, (title, [t[:30] for t in tops])
        starts[title] = hits[0]
    assert starts["About this report"] < starts["Methods in brief"] < starts["Glossary"] <= pages
    about = " ".join(_pdftotext(path)[starts["About this report"] - 1].split())
    assert "What ISAFE is" in about and "How the trial ran" in about
    assert "The pooled trial's headline, for context" in about
    # the contents are flat, one heading per strand: the strands are not nested under the LA's index page
    res = subprocess.run(["pdftotext", "-layout", "-f", "2", "-l", "2", str(path), "-"], capture_output=True, text=True)
    for part in ("Impact", "Implementation and process", "Cost", "Reference"):
        assert re.search(rf"^\s*{part}\s*$", res.stdout, re.MULTILINE), (part, res.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_tables_and_figures_are_numbered_as_their_pages_in_the_printed_text(printed, which):
    path, _ = printed["made"][which]
    soup = BeautifulSoup(path.with_suffix(".html").read_text(encoding="utf-8"), "html.parser")
    text = " ".join(_pdftotext(path))
    for tag, kind in (("caption", "Table"), ("figcaption", "Figure")):
        numbered = []
        for section in soup.select("section.print-page"):  # each page numbers its own from 1, as in the HTML
            captions = [" ".join(c.get_text().split()) for c in section.find_all(tag)]
            mine = [c for c in captions if c.startswith(kind)]
            # a wide table shown in parts keeps one number: "(part 2 of 2)" repeats the number before it
            want, n = [], 0
            for c in mine:
                n += 0 if re.search(r"\(part ([2-9]|\d\d+) of \d+\)", c) else 1
                want.append(n)
            assert [int(re.match(rf"{kind} (\d+)\.", c).group(1)) for c in mine] == want, section["data-source"]
            numbered += mine
        assert len(numbered) >= 5
        at = 0
        for caption in numbered:  # each caption is printed, in order
            found = text.find(caption[:60], at)
            assert found >= 0, f"{caption!r} is not printed after position {at}"
            at = found


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_no_table_is_cut(printed, which):
    path, _ = printed["made"][which]
    soup = BeautifulSoup(path.with_suffix(".html").read_text(encoding="utf-8"), "html.parser")
    pages = _words(path)
    texts = [" ".join(w for w, *_ in page) for page in pages]
    for table in soup.find_all("table"):
        heads = table.select("thead th")
        if not heads:
            continue
        last = _parts(heads[-1].get_text())
        caption = table.find("caption")
        start = " ".join(caption.get_text().split()[:6]) if caption else " ".join(heads[0].get_text().split())
        where = [i for i, t in enumerate(texts) if start in t]
        assert where, f"{start!r} is not printed"
        assert any(last <= _parts(texts[i]) for i in where), f"the last column ({last}) of {start!r} is not printed"
    assert _beyond_the_column(pages) == []  # nothing printed past the text column
    # and the document was not shrunk to fit (what Chromium does when anything is wider than the page):
    # the cover's title is printed at its 26 pt (a DejaVu Sans word box is 1.164 em tall)
    title = max(b - t for _, _, t, b in pages[0])
    assert abs(title / 1.164 - 26) < 0.5, f"the title is {title / 1.164:.1f} pt, not 26: the document was shrunk"
    layout = json.loads((printed["dir"] / pdf.LAYOUT_LOG).read_text())
    assert layout[which]["overflow"] == []
    assert all(t["fits"] for t in layout[which]["scaled"])


# --------------------------------------------------------------------------
# Tagging: what a screen reader and an accessibility checker read
# --------------------------------------------------------------------------
def test_a_pdf_2_type_is_role_mapped_and_a_figure_without_alt_text_is_found():
    """The reader of a PDF's tagging names what a checker fails; the role map fixes the types."""
    body = (
        b"%PDF-1.4\n1 0 obj\n<</Type /Catalog /StructTreeRoot 2 0 R /MarkInfo <</Marked true>> /Lang (en)"
        b" /ViewerPreferences <</DisplayDocTitle true>> /Outlines 6 0 R>>\nendobj\n"
        b"2 0 obj\n<</Type /StructTreeRoot\n/K [3 0 R 4 0 R 5 0 R]>>\nendobj\n"
        b"3 0 obj\n<</Type /StructElem /S /Strong /P 2 0 R>>\nendobj\n"
        b"4 0 obj\n<</Type /StructElem /S /Figure /P 2 0 R>>\nendobj\n"
        b"5 0 obj\n<</Type /StructElem /S /Figure /Alt (The effect is small \\(g 0.1\\)) /P 2 0 R>>\nendobj\n"
        b"6 0 obj\n<</Type /Outlines /First 7 0 R>>\nendobj\n7 0 obj\n<</Title (Summary)>>\nendobj\n"
        b"8 0 obj\n<</Title (Report)>>\nendobj\n"
    )
    xref = len(body)
    data = body + b"xref\n0 1\n0000000000 65535 f \ntrailer\n<</Size 9\n/Root 1 0 R\n/Info 8 0 R>>\nstartxref\n"
    data += b"%d\n%%%%EOF\n" % xref
    found = pdf.tagging(data)
    assert found.figures == ["", "The effect is small (g 0.1)"]
    assert found.problems() == [
        "structure types neither standard nor role-mapped to one: Strong",
        "1 of 2 figures have no alternative text (/Alt)",
    ]
    mapped = pdf.tagging(pdf.with_role_map(data))
    assert mapped.role_map == {"Strong": "Span"} and mapped.title == "Report" and mapped.outline == [(1, "Summary")]
    assert mapped.problems() == ["1 of 2 figures have no alternative text (/Alt)"]
    # a role map the PDF has already is extended, not replaced
    own = data.replace(b"/K [3 0 R 4 0 R 5 0 R]>>", b"/K [3 0 R 4 0 R 5 0 R] /RoleMap <</Chart /Figure>>>>")
    assert pdf.tagging(pdf.with_role_map(own)).role_map == {"Strong": "Span", "Chart": "Figure"}
    # a file not laid out as Chromium writes it (no trailer) is left as it is, its problems reported
    bare = data[: data.index(b"xref")]
    assert pdf.with_role_map(bare) == bare


def test_each_figure_of_the_print_document_is_a_group_around_its_image(book):
    _, soup = _assembled(book)
    figures = soup.find_all("figure")
    assert figures and all(f.get("role") == "group" for f in figures)
    assert all(f.find("img").get("alt") for f in figures)


def _outline(path: Path) -> list[str]:
    """The top-level bookmarks of a PDF as poppler reads them (``pdftohtml -xml``)."""
    res = subprocess.run(
        ["pdftohtml", "-xml", "-i", "-stdout", "-f", "1", "-l", "1", str(path)], capture_output=True, text=True
    )
    top, depth = [], 0
    for tag, text in re.findall(r"<(/?outline)\b[^>]*>|<item\b[^>]*>(.*?)</item>", res.stdout, re.DOTALL):
        depth += {"outline": 1, "/outline": -1}.get(tag, 0)
        if not tag and depth == 1:
            top.append(" ".join(html.unescape(text).split()))
    return top


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_the_pdf_is_tagged_with_standard_types_a_language_a_title_bookmarks_and_alt_text(printed, which):
    """What PDF/UA and WCAG's PDF techniques ask, read back from the printed file.

    Standard structure types only (or role-mapped to one), the document's
    language and title (shown by the viewer), every figure with alternative
    text, and a bookmark for every page's heading.
    """
    path, _ = printed["made"][which]
    data = path.read_bytes()
    found = pdf.tagging(data)
    assert found.problems() == []
    assert found.lang == "en" and found.types.get("Figure", 0) >= 5
    assert not set(found.types) - pdf.STANDARD_TYPES - set(found.role_map)
    doc = pdf.documents(path.parent.parent / "html")[which]
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Tagged:\s+yes$", info, re.MULTILINE), info
    assert re.search(rf"^Title:\s+{re.escape(doc.title)}$", info, re.MULTILINE), info
    # poppler reads the role map: no PDF 2.0 type is left in the structure it shows
    struct = subprocess.run(["pdfinfo", "-struct", str(path)], capture_output=True, text=True, check=True).stdout
    assert not re.search(r"^\s*(Strong|Em)\b", struct, re.MULTILINE)
    # every page's title (its h1) is a top-level bookmark, in reading order
    soup = BeautifulSoup(path.with_suffix(".html").read_text(encoding="utf-8"), "html.parser")
    titles = [" ".join(s.find("h1").get_text().split()) for s in soup.select("section.print-page") if s.find("h1")]
    assert len(titles) == len(doc.pages)
    outline = _outline(path)
    at = 0
    for title in titles:
        assert title in outline[at:], f"{title!r} is not bookmarked after {outline[:at][-1:]}"
        at = outline.index(title, at) + 1
    layout = json.loads((printed["dir"] / pdf.LAYOUT_LOG).read_text())
    assert layout[which]["tagging"] == []


# --------------------------------------------------------------------------
# Headings stay with what follows them
# --------------------------------------------------------------------------
def test_a_heading_is_kept_with_the_first_block_after_it_even_inside_a_cell(book):
    _, soup = _assembled(book)
    impact = soup.select_one('[data-source="results/trial/1_impact.html"]')
    keep = impact.find("h2").parent
    assert "print-keep" in keep["class"]
    # the first block after "Primary" is the first table, inside the notebook cell's wrappers
    assert [c.name for c in keep.find_all(recursive=False)] == ["h2", "div"]
    assert "isafe-table" in keep.find_all(recursive=False)[1]["class"]
    assert ".print-keep { break-inside: avoid; }" in pdf.PRINT_CSS


def _last_lines(path: Path) -> list[tuple[int, str, float]]:
    """Each page's last line of body text (header and footer left out): page, text and its height in points."""
    res = subprocess.run(["pdftotext", "-bbox-layout", str(path), "-"], capture_output=True, text=True, check=True)
    out = []
    for n, page in enumerate(BeautifulSoup(res.stdout, "html.parser").find_all("page"), start=1):
        lines = [
            (float(line["ymax"]), " ".join(w.get_text() for w in line.find_all("word")), line)
            for line in page.find_all("line")
            if 52 < float(line["ymin"]) and float(line["ymax"]) < 800  # below the header, above the footer
        ]
        if lines:
            _, text, line = max(lines, key=lambda x: x[0])
            out.append((n, text, max(float(w["ymax"]) - float(w["ymin"]) for w in line.find_all("word"))))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_no_page_ends_with_a_heading(printed, which):
    """No heading is left at the foot of a page: the last line of every page is not a heading's (last) line.

    A heading's line is told from a table cell or a paragraph that says the
    same words by its size: headings are printed at 11.5 pt and more, body
    text at 10 pt and tables at 8.5 pt (a DejaVu Sans line box is 1.164 em).
    """
    path, _ = printed["made"][which]
    soup = BeautifulSoup(path.with_suffix(".html").read_text(encoding="utf-8"), "html.parser")
    heads = [" ".join(h.get_text(" ").split()) for h in soup.select(".print-page h2, .print-page h3, .print-page h4")]
    assert len(heads) > 10
    stranded = [
        (page, text)
        for page, text, height in _last_lines(path)
        if height > 11 * 1.164 and any(h == text or h.endswith(" " + text) for h in heads)
    ]
    assert stranded == [], f"headings at the foot of a page: {stranded}"


@pytest.mark.slow
def test_the_first_results_page_is_filled(printed):
    """The pooled impact page's trial flow figure follows its introduction on the same page (not a half-empty page)."""
    path, _ = printed["made"][0]
    doc = pdf.documents(path.parent.parent / "html")[0]
    first = next(i for i, p in enumerate(doc.pages) if p.path.startswith("results/"))
    tops = _pdftotext(path, "-x", "0", "-y", "50", "-W", "596", "-H", "60")
    start = next(n for n, t in enumerate(tops, 1) if n > 2 and t.startswith(doc.pages[first].title))
    assert "Trial flow (CONSORT)" in _pdftotext(path)[start - 1]


@pytest.mark.slow
def test_the_front_page_and_each_la_index_page_link_their_pdf_placed_with_the_html(printed):
    """The links work when the HTML folder is published alone: each PDF is copied beside the pages."""
    html = printed["dir"].parent / "html"
    for page, name in (("book/index.html", "isafe_report.pdf"), ("book/las/LA01.html", "isafe_report_LA01.pdf")):
        main = BeautifulSoup((html / page).read_text(encoding="utf-8"), "html.parser").select_one("main")
        links = [a["href"] for a in main.select("a[href$='.pdf']")]
        assert len(links) == 1, (page, links)
        target = ((html / page).parent / links[0]).resolve()
        assert target == (html / "pdf" / name).resolve() and target.is_file(), (page, links[0])
        assert target.read_bytes() == (printed["dir"] / name).read_bytes()
    # an LA whose pages were not run has no PDF, and its index page links none
    main = BeautifulSoup((html / "book/las/LA02.html").read_text(encoding="utf-8"), "html.parser").select_one("main")
    assert main.select("a[href$='.pdf']") == []


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["report", "LA01"])
def test_a_pdf_prints_no_number_its_book_does_not_show(printed, which):
    """Issue 22: the PDFs are an intruder's source too. Every number in the body of a PDF's pages after its cover
    and contents (headers and footers: page numbers and the notice, checked above) is on one of the HTML pages
    it prints, or on the book's own pages (the about, methods and glossary a PDF opens with): their main content
    as the browser shows it, or a chart's text, which the book-wide checks hold to the published numbers and
    axis labels. Another LA's pages do not count."""
    from published_numbers import NUMBER, _norm, _svgs

    path, pages = printed["made"][which]
    html = printed["dir"].parent / "html"
    doc = pdf.documents(html)[which]
    # a PDF's own parts ("print:about") are read from the book's pages
    sources = {p.path for p in doc.pages if (html / p.path).is_file()}
    sources |= {p.relative_to(html).as_posix() for p in (html / "book").glob("*.html")}
    shown: set[str] = set()
    for rel in sources:
        text = (html / rel).read_text(encoding="utf-8")
        soup = BeautifulSoup(text, "html.parser")
        main = (soup.find("main") or soup).get_text(" ")
        shown |= {_norm(n) for n in NUMBER.findall(main)}
        # a date broken at its hyphen at the end of a printed line is read back joined (2022-07: 202207)
        shown |= {a + b for a, b in re.findall(r"(\d+)-(\d+)", main)}
        for svg in _svgs(text):
            shown |= {_norm(n) for n in NUMBER.findall(svg.get_text(" ").replace("\u2212", "-"))}
    body = _pdftotext(path, *BODY)[2:]  # after the cover and the contents
    found = {_norm(n) for n in NUMBER.findall(" ".join(body))}
    assert len(found) > 100  # not vacuous: the tables' numbers are read
    assert sorted(found - shown) == []
