"""The book as PDFs: the whole report, and one report per LA.

Each PDF is printed by headless Chromium from one print-styled HTML
document assembled from the *built* HTML book (no second Sphinx build), so
the PDF shows exactly the numbers, tables and figures of the HTML pages.

Choices, stated once:

- **Which pages.** The book's own navigation (the sidebar of its root page)
  gives the pages in reading order. The whole report takes the executive
  summary, the Overview part (about ISAFE, methods, the effect-size formula,
  the protocol page), the pooled trial's three pages, the Local authorities
  part (its introduction, then each LA's index page and its three pages),
  and the reference pages a commissioner needs: every reference page except
  those written for analysts and reviewers (:data:`ANALYST_PAGES`: the data
  dictionary, how to rerun, the reviewer's path), so the status page (which
  data, which run, which versions) and any glossary are kept. An LA's PDF
  stands alone: an "About this report" page (what ISAFE is, how the trial
  ran and the pooled headline for context, read from the executive summary),
  "Methods in brief" (the first paragraph of each part of the methods page),
  that LA's index page and its pages, listed flat under one contents heading
  per strand, and the glossary (so its terms' links lead somewhere); an LA
  without results pages gets no PDF.
- **What is kept of a page.** Its article (``article.bd-article``), less
  navigation, buttons, forms, scripts, code inputs and heading anchors.
  Links to pages in the same PDF become links within it; links to other
  pages of the book become plain text; web links are kept. Images are
  embedded as ``data:`` URIs, so the document is one file beside the PDF.
- **Numbering.** A table or figure keeps the number its HTML page gives it
  (the book numbers them per page, and a page is a section of the PDF), so
  "Table 4" of the pooled impact page is Table 4 in the HTML, in the PDF and,
  as ``trial-impact-table-4``, in the published-numbers CSV (issue 21: one
  id everywhere). Sphinx's "Fig. 1" is written "Figure 1." as the book's own
  captions are, and so is "Fig. N" in the page's text. Tables without a
  caption are left unnumbered.
- **Tables whole.** Tables and figures avoid page breaks inside them (a table
  longer than a page breaks between rows and repeats its header row). A
  table still wider than the text column after its cells wrap is scaled
  down to fit (CSS ``zoom``, no smaller than :data:`MIN_ZOOM`; below that its
  words may break anywhere); none is cut. Only that table is scaled: were
  anything left wider than the page, Chromium would shrink the whole
  document, so what is left is logged (:data:`LAYOUT_LOG`).
- **Paper.** A4 portrait, with a header on every page (the synthetic-data
  notice when the data are synthetic, and the document's title) and a
  footer "Page N of M". Page 1 is a cover (title, scope, data, dates, the
  synthetic-data notice); page 2 the contents, under the book's part
  headings, with each page's number (read from where the first print put
  each page's anchor, then printed again) and links; the PDF has bookmarks
  from the headings and is tagged.
- **Tagged for screen readers.** Chromium tags the PDF from the HTML and sets
  its language (``<html lang>``), title and bookmarks. Two things a checker
  (PDF/UA, WCAG's PDF techniques) fails are put right: a ``<figure>`` is
  printed as a group, so its image is the one ``Figure`` (with the alt text)
  beside its ``Caption``; and the PDF 2.0 types Chromium writes into its PDF
  1.4 files (``Strong``, ``Em``) get a role map to PDF 1.7's ``Span``
  (:func:`with_role_map`). :func:`tagging` reads it all back; what is still
  missing is logged and written to :data:`LAYOUT_LOG`.
- **Offline.** The print document loads nothing from the network: styles are
  inline, images embedded, and MathJax (only when a page has maths) comes
  from the built book's ``_static``. Every request is watched; one that is
  not local is blocked and fails the build.
- **Chromium** is the system's (``ISAFE_CHROMIUM``, then Debian's paths, then
  ``PATH``), driven by Playwright; no browser is ever downloaded.
- **Pages** are counted from the PDF's page tree (``/Type /Pages`` ...
  ``/Count``), with ``pdfinfo`` as a fallback: no extra dependency.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import mimetypes
import os
import posixpath
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup, NavigableString, Tag

from isafe_helpers.publish.book import REPORT_PDF, RUN_FILE, synthetic_notice

log = logging.getLogger(__name__)

#: Where the system Chromium is looked for, after ``ISAFE_CHROMIUM`` and before ``PATH``.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")
#: Chromium's command line: no sandbox (root in containers), no GPU, no background traffic.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Reference pages written for analysts and reviewers, left out of the whole report.
ANALYST_PAGES = ("book/data_dictionary.html", "book/rerun.html", "book/reviewing.html")
#: The whole report's file stem; an LA's is ``<REPORT_NAME>_<LA>``.
REPORT_NAME = REPORT_PDF
#: Paper and margins (A4 portrait); the header and footer sit in the top and bottom margins.
PAPER = "A4"
PAPER_WIDTH_MM = 210.0
MARGIN_MM = {"top": 20.0, "bottom": 16.0, "left": 16.0, "right": 16.0}
#: The text column in CSS pixels (96 per inch): the width tables are fitted to.
COLUMN_PX = int((PAPER_WIDTH_MM - MARGIN_MM["left"] - MARGIN_MM["right"]) / 25.4 * 96)
#: The smallest scale a wide table is printed at (below it text would be under about 5 pt).
MIN_ZOOM = 0.6
#: Written beside the PDFs: each PDF's pages, its tables scaled to fit and anything wider than the page.
LAYOUT_LOG = "pdf_layout.json"
#: How long to wait for a document to load and typeset, in milliseconds.
TIMEOUT_MS = 120_000

HOW_TO_GET_CHROMIUM = (
    "install Debian's Chromium (`apt-get install chromium`, or `make browser` as root) and build the book "
    "again (`python -m isafe_helpers book --pdf`); another Chromium binary can be named with ISAFE_CHROMIUM"
)

_LA_INDEX = re.compile(r"^book/las/(?P<la>[^/]+)\.html$")
_LA_RESULT = re.compile(r"^results/las/(?P<la>[^/]+)/[^/]+\.html$")
_REF = re.compile(
    r"\b(?P<kind>Tables?|Figures?|Figs?\.)(?P<sp>\s+)(?P<nums>\d+(?:(?:\s*,\s*|\s+and\s+|\s+to\s+|\s*[–-]\s*)\d+)*)"
)
_LEADING = re.compile(r"^(?P<pre>\s*)(?:Table|Figure|Fig\.)\s*(?P<n>\d+)\s*[.:]?\s*")
#: Elements that are navigation, controls or code, never printed.
_DROP = (
    "script",
    "noscript",
    "style",
    "link",
    "button",
    "form",
    "input",
    "select",
    "textarea",
    "nav",
    "iframe",
    ".headerlink",
    ".cell_input",
    ".toggle-details",
    "details.above-input",
    ".d-print-none",
    ".prev-next-area",
    ".copybtn",
    ".header-article-items",
    ".bd-sidebar",
)


class PdfError(Exception):
    """A PDF could not be made."""


class ChromiumMissing(PdfError):
    """No usable Chromium (or Playwright): the HTML book stands, the PDFs are not made."""


@dataclass(frozen=True)
class BookPage:
    """A page of the built book: its path under the HTML folder (``/`` separated), title, level and part."""

    path: str
    title: str
    level: int = 1
    part: str = ""


@dataclass
class PrintDocument:
    """One PDF to make: its file stem, title, scope line and pages in reading order."""

    name: str
    title: str
    scope: str
    pages: list[BookPage]
    la: str | None = None


@dataclass
class Assembled:
    """A print document's HTML and what assembling it did."""

    html: str
    tables: int = 0
    figures: int = 0
    renumbered: list[tuple[str, str, str]] = field(default_factory=list)  # (page, old, new)


# --------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------
def find_chromium() -> str | None:
    """The system Chromium: ``ISAFE_CHROMIUM``, Debian's paths, then ``PATH``; None when there is none."""
    env = os.environ.get("ISAFE_CHROMIUM")
    for path in ([env] if env else []) + list(CHROMIUM_CANDIDATES) + [shutil.which("chromium") or ""]:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


# --------------------------------------------------------------------------
# Which pages
# --------------------------------------------------------------------------
def _root_page(html_dir: Path) -> str:
    """The book's root page (where ``index.html`` redirects), relative to ``html_dir``."""
    index = html_dir / "index.html"
    if not index.is_file():
        raise PdfError(f"{html_dir} holds no built book (index.html missing): build the book first")
    text = index.read_text(encoding="utf-8")
    hit = re.search(r'http-equiv="Refresh"\s+content="\d+;\s*url=([^"]+)"', text, re.IGNORECASE)
    if hit:
        return posixpath.normpath(unquote(hit.group(1).split("#")[0]))
    return "index.html"


def _resolve(page: str, href: str) -> tuple[str | None, str]:
    """A relative link of ``page`` as (target path under the HTML folder, fragment); path None if external."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc:
        return None, parts.fragment
    if not parts.path:
        return page, parts.fragment
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    return target, parts.fragment


def _attr(el: Tag, name: str) -> str:
    """An attribute of ``el`` as one string ("" when absent; a multi-valued one joined by spaces)."""
    value = el.get(name)
    return " ".join(value) if isinstance(value, list) else str(value or "")


def _nav_links(nav: Tag, page: str, html_dir: Path, part: str = "") -> list[BookPage]:
    """The internal links of a navigation (or a branch of it) in order."""
    out = []
    for el in nav.find_all(["a", "p"]):
        if el.name == "p":
            if "caption" in _attr(el, "class").split():
                part = " ".join(el.get_text().split())
            continue
        if not {"reference", "internal"} <= set(_attr(el, "class").split()):
            continue
        target, _ = _resolve(page, _attr(el, "href"))
        if target is None or not (html_dir / target).is_file():
            continue
        li = el.find_parent("li")
        classes = _attr(li, "class") if li else ""
        hit = re.search(r"\btoctree-l(\d+)\b", classes)
        level = int(hit.group(1)) if hit else 1
        out.append(BookPage(target, " ".join(el.get_text().split()), level, part))
    return out


def _nav_of(path: Path) -> Tag | None:
    """A page's navigation (``nav.bd-docs-nav``), parsed alone: the rest of the page is not read."""
    text = path.read_text(encoding="utf-8")
    start = text.find('<nav class="bd-docs-nav')
    if start < 0:
        start = text.find("bd-docs-nav")
        start = text.rfind("<nav", 0, start) if start >= 0 else -1
    if start < 0:
        return None
    end = text.find("</nav>", start)
    return BeautifulSoup(text[start : end + 6], "html.parser").nav


def book_pages(html_dir: str | Path) -> list[BookPage]:
    """Every page of the built book in reading order, read from the navigation.

    The root page's navigation gives the top level; a collapsed navigation
    (``collapse_navbar``) shows a page's children only on that page, so each
    page's own navigation is read for them in turn.

    Raises
    ------
    PdfError
        When ``html_dir`` holds no built book or its root page has no navigation.
    """
    html_dir = Path(html_dir)
    root = _root_page(html_dir)
    soup = BeautifulSoup((html_dir / root).read_text(encoding="utf-8"), "html.parser")
    nav = soup.select_one("nav.bd-docs-nav")
    if nav is None:
        raise PdfError(f"{html_dir / root} has no navigation (nav.bd-docs-nav): is it a Jupyter Book page?")
    pages: list[BookPage] = []
    seen: set[str] = set()

    def visit(entries: list[BookPage]) -> None:
        for page in entries:
            if page.path in seen:
                continue
            seen.add(page.path)
            pages.append(page)
            own = _nav_of(html_dir / page.path)
            here = own.select_one("a.current[href='#']") if own is not None else None
            item = here.find_parent("li") if here is not None else None
            branch = item.find("ul") if item is not None else None
            if branch is not None:
                visit([BookPage(p.path, p.title, p.level, page.part) for p in _nav_links(branch, page.path, html_dir)])

    visit(_nav_links(nav, root, html_dir))
    return pages


def documents(html_dir: str | Path) -> list[PrintDocument]:
    """The PDFs to make: the whole report, then one per LA that has results pages."""
    pages = book_pages(html_dir)
    las: dict[str, list[BookPage]] = {}
    for p in pages:
        hit = _LA_INDEX.match(p.path) or _LA_RESULT.match(p.path)
        if hit:
            las.setdefault(hit.group("la"), []).append(p)
    n = len(las)
    report = PrintDocument(
        REPORT_NAME,
        "ISAFE evaluation report",
        f"The pooled trial and each of its {n} local authorit{'y' if n == 1 else 'ies'} "
        f"({', '.join(las)}): executive summary, methods, impact, implementation and process, and cost.",
        [p for p in pages if p.path not in ANALYST_PAGES],
    )
    out = [report]
    glossary = [BookPage(p.path, p.title, 1, "Reference") for p in pages if p.path == GLOSSARY_PAGE]
    for la, la_pages in las.items():
        if not any(_LA_RESULT.match(p.path) for p in la_pages):
            continue
        index = next((p for p in la_pages if _LA_INDEX.match(p.path)), None)
        name = index.title if index else f"Local authority {la}"
        out.append(
            PrintDocument(
                f"{REPORT_NAME}_{la}",
                f"ISAFE evaluation: {name}",
                f"{name} alone: its headline numbers and its impact, implementation and process, and cost pages. "
                "An LA's estimates rest on a handful of teams and are descriptive only; the trial's findings "
                "are the pooled trial's, in the whole report.",
                [
                    BookPage(ABOUT_PAGE, "About this report", 1, "About this report"),
                    BookPage(METHODS_PAGE, "Methods in brief", 1, "About this report"),
                    *(BookPage(p.path, p.title, 1, _strand_part(p.path, name)) for p in la_pages),
                    *glossary,
                ],
                la,
            )
        )
    return out


#: The book's glossary page: the last part of each LA's PDF, so its terms' links lead somewhere.
GLOSSARY_PAGE = "book/glossary.html"
#: Pages an LA's PDF makes itself from the book's own pages (:func:`_about`, :func:`_methods_summary`).
ABOUT_PAGE = "print:about"
METHODS_PAGE = "print:methods"
#: The contents' part of an LA's results page, by its file name's strand: flat, one part per strand.
_STRAND_PARTS = (("impact", "Impact"), ("process", "Implementation and process"), ("cost", "Cost"))


def _strand_part(path: str, name: str) -> str:
    """The contents part an LA's page is listed under: its strand, or the LA itself for its index page."""
    stem = path.rsplit("/", 1)[-1]
    return next((part for key, part in _STRAND_PARTS if _LA_RESULT.match(path) and key in stem), name)


def _sections(article: Tag, ids: tuple[str, ...]) -> list[Tag]:
    return [sec for sec in article.find_all("section") if sec.get("id") in ids]


def _about(html_dir: Path, doc: PrintDocument) -> str:
    """ "About this report" for an LA's PDF, read from the executive summary as the book publishes it.

    What ISAFE is (the summary's opening), how the trial ran (its "The
    trial" and "About this evaluation" sections) and the pooled headline for
    context (its first key finding, the primary outcome's): the LA's own
    numbers are descriptive, the trial's finding is the pooled one.
    """
    summary = _article(html_dir, "book/index.html")
    _drop_interactive(summary)
    top = summary.find("section")
    opening = [str(p) for p in (top.find_all("p", recursive=False)[:1] if top is not None else [])]
    ran = [
        "".join(str(c) for c in sec.find_all(["p"], recursive=False))
        for sec in _sections(summary, ("the-trial", "about-this-evaluation"))
    ]
    findings = _sections(summary, ("key-findings",))
    headline = findings[0].find("li") if findings else None
    return (
        "<h1>About this report</h1>"
        f"<p>This is the report of one local authority in the ISAFE trial ({html.escape(doc.la or '')}). It stands "
        "alone: what the programme is, how the trial ran, the pooled result for context, the methods in brief, "
        "this LA's results by strand and a glossary.</p>"
        "<h2>What ISAFE is</h2>"
        + "".join(opening)
        + "<h2>How the trial ran</h2>"
        + "".join(ran)
        + "<h2>The pooled trial's headline, for context</h2>"
        + (f"<p>{headline.decode_contents()}</p>" if headline is not None else "<p>Not available in this build.</p>")
        + "<p>This LA's own estimates rest on a handful of teams: they describe this LA and carry no verdict. "
        "The trial's findings are the pooled trial's, in the whole report.</p>"
    )


def _methods_summary(html_dir: Path) -> str:
    """ "Methods in brief": each section of the book's methods page, its heading and first paragraph."""
    methods = _article(html_dir, "book/methods.html")
    _drop_interactive(methods)
    out = [
        "<h1>Methods in brief</h1><p>The first paragraph of each part of the book's methods page; the whole "
        "page is in the full report.</p>"
    ]
    for sec in methods.find_all("section"):
        head = sec.find(["h1", "h2"], recursive=False)
        first = sec.find("p", recursive=False)
        if head is None or first is None:
            continue
        if head.name == "h2":  # the page's own opening paragraph goes under the summary's heading
            out.append(f"<h2>{html.escape(head.get_text(' ', strip=True).rstrip('#'))}</h2>")
        out.append(str(first))
    return "".join(out)


# --------------------------------------------------------------------------
# The print document
# --------------------------------------------------------------------------
PRINT_CSS = """
@page { size: A4 portrait; }
html { font-size: 10pt; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 10pt; line-height: 1.4;
       color: #0b0c0c; margin: 0; }
.print-page, .print-contents { break-before: page; }
h1 { font-size: 18pt; margin: 0 0 0.6em; }
h2 { font-size: 13.5pt; margin: 1.2em 0 0.4em; }
h3 { font-size: 11.5pt; margin: 1em 0 0.3em; }
h1, h2, h3, h4, h5, h6, caption, .admonition-title { break-after: avoid; }
figcaption { break-after: auto; }  /* below its figure: a page may end after it */
p, li { orphans: 3; widows: 3; }
a { color: #1d4f91; text-decoration: none; }
code, pre { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; }
code { overflow-wrap: anywhere; }
blockquote { margin: 0.6em 0; padding: 0.4em 0.8em; border-left: 4px solid #b1b4b6; }
.admonition { border-left: 4px solid #1d70b8; background: #f3f2f1; padding: 0.4em 0.8em; margin: 0.8em 0;
              break-inside: avoid; }
.admonition.caution, .admonition.warning { border-left-color: #d4351c; }
.admonition-title { font-weight: 700; margin: 0 0 0.2em; }
body table { border-collapse: collapse; width: 100%; font-size: 8.5pt; font-variant-numeric: tabular-nums;
             margin: 0.4em 0; }
body table th, body table td { padding: 2px 4px; border-bottom: 1px solid #b1b4b6; vertical-align: top;
                               overflow-wrap: break-word; }
body table thead th { border-bottom: 2px solid #0b0c0c; vertical-align: bottom; text-align: left; }
body thead { display: table-header-group; }
body tr { break-inside: avoid; }
body td p, body th p { margin: 0; }
body table caption { caption-side: top; text-align: left; font-weight: 700; font-size: 10pt; padding: 0 0 0.3em; }
.isafe-table, .pst-scrollable-table-container, figure, .isafe-figure { break-inside: avoid; margin: 0.8em 0 1em; }
.isafe-table-scroll, .pst-scrollable-table-container { overflow: visible !important; max-width: none; }
body .isafe-table-notes p { font-size: 8.5pt; margin: 0.15em 0; }
figure { margin-left: 0; margin-right: 0; }
figure img, .isafe-figure img { display: block; max-width: 100%; max-height: 140mm; width: auto; height: auto;
                                margin: 0 auto; }
figcaption { font-weight: 700; margin-top: 0.3em; }
figcaption p { margin: 0; }
.isafe-figure-note { font-size: 9pt; margin: 0.3em 0 0; }
img { max-width: 100%; height: auto; }
.isafe-figure img { min-width: 0 !important; }  /* printed to the column: 12 pt chart text is 10.5 pt */
.isafe-figure-scroll { overflow: visible !important; }
mjx-container[display="true"] { overflow: visible; }
.cover-kicker { font-size: 12pt; color: #505a5f; margin: 40mm 0 0.2em; }
.cover h1 { font-size: 26pt; margin: 0 0 0.4em; }
.cover-subtitle { font-size: 12pt; margin: 0 0 1.6em; }
.cover-notice { border: 3px solid #d4351c; padding: 0.6em 0.9em; font-size: 11pt; font-weight: 700;
                margin: 0 0 1.6em; }
.cover dl { display: grid; grid-template-columns: max-content auto; gap: 0.3em 1em; margin: 0; }
.cover dt { font-weight: 700; }
.cover dd { margin: 0; overflow-wrap: anywhere; }
.print-contents h2 { font-size: 12pt; margin: 1em 0 0.2em; }
.print-contents ul { list-style: none; padding-left: 0; margin: 0.2em 0; }
.print-contents ul ul { padding-left: 1.5em; }
.print-contents li { margin: 0.15em 0; }
.toc-entry { display: flex; justify-content: space-between; align-items: baseline; gap: 1em; }
.toc-page { min-width: 3em; text-align: right; font-variant-numeric: tabular-nums; }
.print-keep { break-inside: avoid; }
.print-squeeze { table-layout: fixed; }
.print-squeeze th, .print-squeeze td { overflow-wrap: anywhere; white-space: normal !important; }
"""

#: Fits every table into its column (``args``: the smallest zoom) and finds what still sticks out.
#: A table wider than its column is scaled down (CSS ``zoom``); one that would need less than the
#: smallest zoom gets it, with fixed column widths and words broken anywhere, so no column is lost.
FIT_TABLES_JS = """
(minZoom) => {
  const tables = [];
  for (const table of document.querySelectorAll('table')) {
    const box = table.closest('.isafe-table, .pst-scrollable-table-container') || table;
    const avail = box.parentElement.getBoundingClientRect().width;
    const wide = Math.max(table.scrollWidth, table.getBoundingClientRect().width);
    if (wide <= avail + 0.5) continue;
    let zoom = Math.floor(1000 * avail / wide) / 1000;
    const squeezed = zoom < minZoom;
    if (squeezed) { zoom = minZoom; table.classList.add('print-squeeze'); }
    box.style.zoom = String(zoom);
    const cap = table.querySelector('caption');
    tables.push({caption: cap ? cap.textContent.trim() : '(no caption)', width: Math.round(wide),
                 column: Math.round(avail), zoom: zoom, squeezed: squeezed,
                 fits: table.getBoundingClientRect().width <= avail + 0.5});
  }
  const limit = document.documentElement.clientWidth + 0.5;
  const overflow = [];
  for (const el of document.querySelectorAll('.print-page *, .cover *, .print-contents *')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > limit && !(el.parentElement && el.parentElement.getBoundingClientRect().right > limit)) {
      overflow.push(el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' +
                    el.className.split(' ')[0] : '') + ': ' + (el.textContent || '').trim().slice(0, 60));
    }
  }
  return {tables: tables, overflow: overflow.slice(0, 20)};
}
"""


def _drop_interactive(article: Tag) -> None:
    for el in article.select(", ".join(_DROP)):
        if el.parent is not None:  # not already gone with an ancestor
            el.decompose()
    for details in article.find_all("details"):
        details["open"] = ""
    for el in article.find_all(True):
        for attr in ("tabindex", "onclick", "srcset", "loading", "data-bs-toggle", "data-bs-placement"):
            el.attrs.pop(attr, None)


#: Blocks a heading is kept with: a wrapper (a notebook cell, a section) is looked into for its first block.
_KEEP_UNITS = ("isafe-table", "isafe-figure", "admonition", "pst-scrollable-table-container", "print-keep")


def _first_block(el: Tag) -> Tag:
    """The first block a reader meets in ``el``: ``el`` itself, or the first child of the wrappers it opens."""
    while el.name in ("div", "section") and not set(_attr(el, "class").split()) & set(_KEEP_UNITS):
        if any(isinstance(c, NavigableString) and c.strip() for c in el.children):
            break  # it holds text of its own: it is the block
        child = next((c for c in el.children if isinstance(c, Tag)), None)
        if child is None:
            break
        el = child
    return el


def _keep_headings_with_next(article: Tag) -> None:
    """Wrap each heading below the page title with the first block after it, unbroken (``.print-keep``).

    ``break-after: avoid`` alone leaves a heading at the foot of a page when
    what follows it sits inside a notebook cell's wrappers or cannot be split
    (a table or figure that avoids breaks inside): Chromium then breaks after
    the heading all the same. A wrapper that avoids breaks inside takes the
    heading to the next page with its first block. The last heading is
    wrapped first, so a heading followed by a subheading keeps both with
    the first block.
    """
    for head in reversed(article.find_all(["h2", "h3", "h4", "h5", "h6"])):
        nxt = head.find_next_sibling()
        if nxt is None:
            continue
        block = _first_block(nxt)
        keep = Tag(name="div", attrs={"class": "print-keep"})
        block.insert_before(keep)
        keep.append(head.extract())
        keep.append(block.extract())


def _group_figures(article: Tag) -> None:
    """Make each ``<figure>`` a group, so the PDF tags it ``Div`` around the image's ``Figure`` and its ``Caption``.

    Chromium tags both a ``<figure>`` and its ``<img>`` as ``Figure``, and
    only the image carries the alternative text: the outer one would be a
    figure without any (what a checker fails). As a group, the one ``Figure``
    is the image, with its alt text.
    """
    for fig in article.find_all("figure"):
        fig["role"] = "group"


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _rewrite_links(article: Tag, page: str, key: str, anchors: dict[str, str], html_dir: Path) -> None:
    """Prefix ids with the page's key; point links at this document; embed images."""
    for el in article.find_all(id=True):
        el["id"] = f"{key}-{el['id']}"
    for a in article.find_all("a", href=True):
        target, frag = _resolve(page, _attr(a, "href"))
        if target is None:
            continue  # a web link: kept as it is
        if target in anchors:
            a["href"] = f"#{anchors[target]}-{frag}" if frag else f"#{anchors[target]}"
        else:
            a.unwrap()  # another page of the book, a download, an image file: not in this PDF
    for img in article.find_all("img", src=True):
        src = _attr(img, "src")
        if src.startswith("data:"):
            continue
        target, _ = _resolve(page, src)
        if target is not None and (html_dir / target).is_file():
            img["src"] = _data_uri(html_dir / target)


def _caption_string(cap: Tag) -> NavigableString | None:
    for s in cap.find_all(string=True):
        if s.strip():
            return s
    return None


def _number_captions(article: Tag, counters: dict[str, int], log: list, page: str) -> dict[str, dict[int, int]]:
    """Write the page's captions as "Table N." / "Figure N." with the page's own N; count them in ``counters``.

    Returns old -> new per kind (the same number: a table keeps its HTML number, the id the CSV gives it).

    A number shared by two captions of one kind on the page (the book's own
    figure numbering beside Sphinx's) is ambiguous and left out of the map.
    """
    mapping: dict[str, dict[int, int]] = {"Table": {}, "Figure": {}}
    clash: dict[str, set[int]] = {"Table": set(), "Figure": set()}
    for cap in article.find_all(["caption", "figcaption"]):
        kind = "Table" if cap.name == "caption" else "Figure"
        if kind == "Figure" and cap.find_parent("figure") is None:
            continue
        # a wide table shown in parts (publish.tables) keeps one number: "(part 2 of 2)" does not count again
        later_part = kind == "Table" and re.search(r"\(part ([2-9]|\d\d+) of \d+\)", cap.get_text()) is not None
        if not later_part:
            counters[kind] += 1
        old = None
        number_span = cap.select_one("span.caption-number")
        if number_span is not None:  # Sphinx: "Fig. 1 " / "Table 1 "
            hit = re.search(r"\d+", number_span.get_text())
            old = int(hit.group()) if hit else None
            if old is not None:
                number_span.string = f"{kind} {old}. "
            number_span["data-isafe-numbered"] = ""
        else:
            s = _caption_string(cap)
            hit = _LEADING.match(str(s)) if s is not None else None
            if hit and s is not None:
                old = int(hit.group("n"))
                s.replace_with(NavigableString(f"{hit.group('pre')}{kind} {old}. {s[hit.end() :]}"))
        new_caption = " ".join(cap.get_text().split())
        box = cap.find_parent(class_="isafe-table-scroll")
        if box is not None and box.has_attr("aria-label"):
            box["aria-label"] = new_caption
        # mark the caption so the text pass leaves its (already new) number alone
        cap["data-isafe-numbered"] = ""
        if old is not None and not later_part:
            if old in mapping[kind] or old in clash[kind]:
                clash[kind].add(old)
                mapping[kind].pop(old, None)
            else:
                mapping[kind][old] = old
    return mapping


def _renumber_references(article: Tag, mapping: dict[str, dict[int, int]]) -> None:
    """Rewrite "Table N" / "Figure N" / "Fig. N" in the page's text by the page's map."""

    def swap(m: re.Match) -> str:
        kind = "Table" if m.group("kind").startswith("Table") else "Figure"
        table = mapping[kind]
        nums = re.sub(r"\d+", lambda d: str(table.get(int(d.group()), d.group())), m.group("nums"))
        word = m.group("kind")
        if word.startswith("Fig") and not word.startswith("Figure"):
            word = "Figures" if word.startswith("Figs") else "Figure"
        return f"{word}{m.group('sp')}{nums}"

    for s in list(article.find_all(string=True)):
        if not _REF.search(s) or s.find_parent(attrs={"data-isafe-numbered": True}) is not None:
            continue
        if s.find_parent(["code", "pre", "script", "style"]) is not None:
            continue
        s.replace_with(NavigableString(_REF.sub(swap, str(s))))


def _article(html_dir: Path, page: str) -> Tag:
    text = (html_dir / page).read_text(encoding="utf-8")
    start, end = text.find('<article class="bd-article"'), text.rfind("</article>")
    if 0 <= start < end:  # parse the article alone: the page around it is navigation
        text = text[start : end + len("</article>")]
    soup = BeautifulSoup(text, "html.parser")
    article = soup.select_one("article.bd-article") or soup.select_one("main")
    if article is None:
        raise PdfError(f"{html_dir / page}: no article (article.bd-article or main) to print")
    return article


def _mathjax(html_dir: Path, out_html: Path) -> str:
    """Script tags loading the book's own MathJax (SVG output) with the book's settings."""
    static = html_dir / "_static" / "mathjax"
    script = next((static / n for n in ("tex-svg.js", "tex-chtml.js") if (static / n).is_file()), None)
    if script is None:
        raise PdfError(f"a page has maths but the book has no MathJax in {static}")
    src = Path(os.path.relpath(script, out_html.parent)).as_posix()
    config = (
        '{"options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}, '
        '"svg": {"fontCache": "global"}, "startup": {"typeset": true}}'
    )
    return f'<script>window.MathJax = {config};</script>\n<script defer src="{html.escape(src)}"></script>'


def _contents(doc: PrintDocument, anchors: dict[str, str]) -> str:
    """The contents page: the pages under the book's part headings, second-level pages under their parent."""
    out = ['<section class="print-contents" id="contents"><h1>Contents</h1>']
    part, depth = None, 0
    for i, p in enumerate(doc.pages):
        if p.part != part and i > 0:
            out.append("</li></ul>" * depth)
            depth = 0
        if p.part != part or i == 0:
            if p.part:
                out.append(f"<h2>{html.escape(p.part)}</h2>")
            part = p.part
        level = min(p.level, depth + 1)
        if level > depth:
            out.append("<ul>" * (level - depth))
        else:
            out.append("</li>" + "</ul></li>" * (depth - level))
        depth = level
        out.append(
            f'<li><div class="toc-entry"><a href="#{anchors[p.path]}">{html.escape(p.title)}</a>'
            f'<span class="toc-page" data-target="{anchors[p.path]}"></span></div>'
        )
    out.append("</li></ul>" * depth)
    out.append("</section>")
    return "".join(out)


def _cover(doc: PrintDocument, run: dict, built: datetime) -> str:
    """The first page: title, scope, the synthetic-data notice (when synthetic) and where the numbers come from."""
    notice = synthetic_notice(run) if run.get("synthetic") else ""  # already escaped for HTML
    facts = [
        ("Scope", doc.scope),
        ("Data", "synthetic (illustrative numbers)" if run.get("synthetic") else "the trial's returns"),
        ("Results computed", str(run.get("finished", "not recorded"))),
        ("Document built", built.strftime("%-d %B %Y, %H:%M UTC")),
        ("Data root fingerprint", str(run.get("fingerprint", "not recorded"))[:16]),
    ]
    if run.get("disclosure_threshold"):
        facts.append(("Disclosure control", f"counts of fewer than {run['disclosure_threshold']} people withheld"))
    return (
        '<section class="cover" id="cover">'
        '<p class="cover-kicker">ISAFE: Improving Safeguarding through Audited Father-Engagement</p>'
        f"<h1>{html.escape(doc.title)}</h1>"
        '<p class="cover-subtitle">A cluster randomised trial of social-work teams, with its implementation '
        "and process and cost strands.</p>"
        + (f'<p class="cover-notice" role="note">{notice}</p>' if notice else "")
        + "<dl>"
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
        + "</dl></section>"
    )


def assemble(
    doc: PrintDocument, html_dir: str | Path, run: dict, out_html: str | Path, built: datetime | None = None
) -> Assembled:
    """The print document of ``doc``: cover, then each page's article, renumbered and made static.

    ``out_html`` is where the document will be written (links to the book's
    MathJax are made relative to it); ``built`` is the date on the cover
    (default: now).
    """
    html_dir, out_html = Path(html_dir), Path(out_html)
    built = built or datetime.now(UTC)
    anchors = {p.path: f"page-{i}" for i, p in enumerate(doc.pages, start=1)}
    counters = {"Table": 0, "Figure": 0}
    log: list[tuple[str, str, str]] = []
    bodies, has_math = [], False
    for p in doc.pages:
        if p.path in (ABOUT_PAGE, METHODS_PAGE):
            made = _about(html_dir, doc) if p.path == ABOUT_PAGE else _methods_summary(html_dir)
            article = BeautifulSoup(f"<article>{made}</article>", "html.parser").find("article") or Tag(name="article")
        else:
            article = _article(html_dir, p.path)
        _drop_interactive(article)
        _group_figures(article)
        _keep_headings_with_next(article)
        source = {ABOUT_PAGE: "book/index.html", METHODS_PAGE: "book/methods.html"}.get(p.path, p.path)
        _rewrite_links(article, source, anchors[p.path], anchors, html_dir)
        mapping = _number_captions(article, counters, log, p.path)
        _renumber_references(article, mapping)
        has_math = has_math or article.select_one(".math") is not None
        inner = "".join(str(c) for c in article.contents)
        bodies.append(
            f'<section class="print-page" id="{anchors[p.path]}" data-source="{html.escape(p.path)}">{inner}</section>'
        )
    css = PRINT_CSS
    book_css = html_dir / "_static" / "isafe.css"
    head_extra = _mathjax(html_dir, out_html) if has_math else ""
    text = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(doc.title)}</title>\n"
        + (f"<style>{book_css.read_text(encoding='utf-8')}</style>\n" if book_css.is_file() else "")
        + f"<style>{css}</style>\n{head_extra}\n</head>\n<body>\n"
        + _cover(doc, run, built)
        + _contents(doc, anchors)
        + "\n".join(bodies)
        + "\n</body>\n</html>\n"
    )
    return Assembled(text, counters["Table"], counters["Figure"], log)


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------
def header_template(doc: PrintDocument, run: dict) -> str:
    """Chromium's page header: the synthetic-data notice (when synthetic) and the document's title."""
    seed = (run.get("synthetic") or {}).get("seed")
    notice = (
        f"Synthetic data{f' (seed {seed})' if seed is not None else ''}: illustrative numbers, not the ISAFE trial's"
        if run.get("synthetic")
        else ""
    )
    left = f'<span style="color:#d4351c;font-weight:700">{html.escape(notice)}</span>' if notice else ""
    return (
        "<div style=\"font-family:'DejaVu Sans',sans-serif;font-size:7.5pt;width:100%;"
        f"margin:0 {MARGIN_MM['left']}mm;display:flex;justify-content:space-between;gap:4mm;"
        '-webkit-print-color-adjust:exact">'
        f'{left}<span style="color:#505a5f">{html.escape(doc.title)}</span></div>'
    )


def footer_template(doc: PrintDocument, built: datetime) -> str:
    """Chromium's page footer: the build date and "Page N of M"."""
    return (
        "<div style=\"font-family:'DejaVu Sans',sans-serif;font-size:7.5pt;width:100%;"
        f'margin:0 {MARGIN_MM["left"]}mm;display:flex;justify-content:space-between;color:#505a5f">'
        f"<span>{html.escape(doc.title)}, built {built.strftime('%Y-%m-%d')}</span>"
        '<span>Page <span class="pageNumber"></span> of <span class="totalPages"></span></span></div>'
    )


def _is_local(url: str) -> bool:
    return url.startswith(("file:", "data:", "blob:", "about:"))


def print_pdf(browser, html_path: Path, pdf_path: Path, header: str, footer: str) -> dict:
    """Print one document to ``pdf_path`` with an open Playwright ``browser``.

    Returns what the layout check found (:data:`FIT_TABLES_JS`): ``tables``, the
    tables scaled to fit their column, and ``overflow``, anything still wider
    than the page (empty when nothing is cut).

    Raises
    ------
    PdfError
        When the document asked for anything not on this machine (the request
        is blocked, never sent), or a local file or script failed.
    """
    page = browser.new_page(viewport={"width": COLUMN_PX, "height": 1100})
    remote: list[str] = []
    errors: list[str] = []
    page.on("request", lambda req: None if _is_local(req.url) else remote.append(req.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda req: errors.append(f"failed to load {req.url}") if _is_local(req.url) else None)
    page.route("**/*", lambda r: r.continue_() if _is_local(r.request.url) else r.abort())
    try:
        page.emulate_media(media="print")
        page.goto(html_path.resolve().as_uri(), wait_until="load", timeout=TIMEOUT_MS)
        if page.evaluate("() => !!window.MathJax"):
            page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=TIMEOUT_MS
            )
            page.evaluate("() => MathJax.startup.promise.then(() => true)")
        page.evaluate("() => document.fonts.ready.then(() => true)")
        layout = page.evaluate(FIT_TABLES_JS, MIN_ZOOM)
        if remote or errors:
            problems = (
                [f"asked the network for {', '.join(sorted(set(remote)))} (blocked)"] if remote else []
            ) + errors
            raise PdfError(f"{html_path.name}: " + "; ".join(problems))
        options = dict(
            format=PAPER,
            margin={k: f"{v}mm" for k, v in MARGIN_MM.items()},
            display_header_footer=True,
            header_template=header,
            footer_template=footer,
            print_background=True,
        )
        final = {**options, "outline": True, "tagged": True}  # bookmarks, and tags for screen readers
        # the contents' page numbers: print once (plain, quicker) to read where each page landed,
        # write the numbers in, and print for good; the numbers take no new line, so nothing moves
        targets = page.evaluate("() => Array.from(document.querySelectorAll('.toc-page')).map(s => s.dataset.target)")
        where = named_pages(page.pdf(**options)) if targets else {}
        layout["contents_numbered"] = bool(targets) and all(t in where for t in targets)
        if layout["contents_numbered"]:
            page.evaluate(
                "(where) => document.querySelectorAll('.toc-page').forEach(s => { s.textContent = where[s.dataset.target]; })",
                where,
            )
        data = page.pdf(**final)
        if layout["contents_numbered"] and any(named_pages(data).get(t) != where[t] for t in targets):
            # numbering the contents moved a page after all: print without numbers rather than wrong ones
            page.evaluate("() => document.querySelectorAll('.toc-page').forEach(s => { s.textContent = ''; })")
            data = page.pdf(**final)
            layout["contents_numbered"] = False
        data = with_role_map(data)  # Chromium's PDF 2.0 types (Strong, Em) named as PDF 1.7 knows them
        layout["tagging"] = tagging(data).problems()
        pdf_path.write_bytes(data)
    finally:
        page.close()
    return layout


def _objects(data: bytes) -> dict[int, bytes]:
    """The dictionary objects of a PDF written without object streams (as Chromium's Skia writes them)."""
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(rb"(?m)^(\d+) 0 obj\s*(<<.*?>>)\s*endobj", data, re.DOTALL)
        if b"stream" not in m.group(2)
    }


def named_pages(data: bytes) -> dict[str, int]:
    r"""The page number (from 1) of each named destination of a PDF printed by Chromium.

    Chromium writes a destination for every element a link points to (here
    each page's ``page-N`` anchor) in the catalog's ``/Dests`` dictionary.
    Returns an empty dict when the PDF is not laid out so (the contents then
    go without page numbers).

    >>> pdf = (b"1 0 obj\n<</Type /Catalog /Pages 2 0 R /Dests 9 0 R>>\nendobj\n"
    ...        b"2 0 obj\n<</Type /Pages /Count 3 /Kids [3 0 R 4 0 R]>>\nendobj\n"
    ...        b"3 0 obj\n<</Type /Pages /Count 2 /Kids [5 0 R 6 0 R] /Parent 2 0 R>>\nendobj\n"
    ...        b"9 0 obj\n<</page-1 [5 0 R /XYZ 0 842 0]\n/page-2 [4 0 R /XYZ 0 842 0]>>\nendobj\n")
    >>> named_pages(pdf)
    {'page-1': 1, 'page-2': 3}
    """
    objs = _objects(data)
    root = next((n for n, d in objs.items() if re.search(rb"/Type\s*/Pages\b", d) and b"/Parent" not in d), None)
    catalog = next((d for d in objs.values() if re.search(rb"/Type\s*/Catalog\b", d)), b"")
    dests = re.search(rb"/Dests\s+(\d+)\s+0\s+R", catalog)
    if root is None or dests is None or int(dests.group(1)) not in objs:
        return {}
    order: list[int] = []

    def walk(n: int, depth: int = 0) -> None:
        body = objs.get(n, b"")
        kids = re.search(rb"/Kids\s*\[([^\]]*)\]", body)
        if kids and re.search(rb"/Type\s*/Pages\b", body) and depth < 50:
            for k in re.findall(rb"(\d+)\s+0\s+R", kids.group(1)):
                walk(int(k), depth + 1)
        else:
            order.append(n)

    walk(root)
    index = {n: i for i, n in enumerate(order, start=1)}
    return {
        name.decode("latin-1"): index[int(page)]
        for name, page in re.findall(rb"/([^\s/\[\]<>()]+)\s*\[\s*(\d+)\s+0\s+R", objs[int(dests.group(1))])
        if int(page) in index
    }


def page_count(pdf: str | Path) -> int:
    """The number of pages of a PDF: its page tree root's ``/Count``, else what ``pdfinfo`` says.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.pdf"
    >>> _ = p.write_bytes(b"%PDF-1.4 1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] /Count 3 >> endobj "
    ...                   b"2 0 obj << /Type /Pages /Parent 1 0 R /Count 2 >> endobj")
    >>> page_count(p)
    3
    """
    data = Path(pdf).read_bytes()
    counts = []
    for d in re.finditer(rb"<<(?:(?!<<|>>).)*?/Type\s*/Pages\b(?:(?!<<|>>).)*>>", data, re.DOTALL):
        hit = re.search(rb"/Count\s+(\d+)", d.group())
        if hit:
            counts.append(int(hit.group(1)))
    if counts:
        return max(counts)  # the root of the page tree counts every page
    if shutil.which("pdfinfo"):
        res = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True)
        pages = re.search(r"^Pages:\s+(\d+)", res.stdout, re.MULTILINE)
        if pages:
            return int(pages.group(1))
    raise PdfError(f"{pdf}: could not count its pages (no page tree found, and pdfinfo could not read it)")


def _launch(playwright, executable: str):
    try:
        return playwright.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
    except Exception as err:  # any failure to launch means the same to the caller
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ChromiumMissing(f"Chromium at {executable} would not start ({first}): {HOW_TO_GET_CHROMIUM}") from err


def build_pdfs(html_dir: Path, results_dir: Path, out_dir: Path) -> list[tuple[Path, int]]:
    """Print the whole report and each LA's report to PDF; return each PDF and its page count.

    Parameters
    ----------
    html_dir
        The built HTML book (``<build>/html``).
    results_dir
        The results folder it was built from (its ``run.json`` says whether the data are synthetic).
    out_dir
        Where the PDFs go, each beside the print document it was made from
        (``isafe_report.pdf`` and ``.html``, ``isafe_report_<LA>.pdf`` and ``.html``), with
        :data:`LAYOUT_LOG` (each PDF's pages, tables scaled to fit and anything too wide).
        Made if missing; a PDF is replaced only when its new version is complete, and the
        PDFs of LAs no longer in the book are removed.

    Returns
    -------
    list of (Path, int)
        Each PDF and its number of pages, the whole report first.

    Raises
    ------
    ChromiumMissing
        When there is no Chromium or Playwright: the message says how to get the PDFs
        (the HTML book is not touched).
    PdfError
        When the book or its run record is missing, or a document could not be printed.
    """
    html_dir, results_dir, out_dir = Path(html_dir), Path(results_dir), Path(out_dir)
    run_file = results_dir / RUN_FILE
    if not run_file.is_file():
        raise PdfError(f"{results_dir} holds no run ({RUN_FILE} missing): run `python -m isafe_helpers run` first")
    run = json.loads(run_file.read_text(encoding="utf-8"))
    docs = documents(html_dir)
    executable = find_chromium()
    if executable is None:
        raise ChromiumMissing(
            f"no Chromium found (looked at ISAFE_CHROMIUM, {', '.join(CHROMIUM_CANDIDATES)} and PATH): "
            + HOW_TO_GET_CHROMIUM
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise ChromiumMissing(
            "Playwright for Python is not installed (pip install 'isafe-helpers[pdf]', or -r requirements.txt): "
            + HOW_TO_GET_CHROMIUM
        ) from err
    out_dir.mkdir(parents=True, exist_ok=True)
    built = datetime.now(UTC)
    made: list[tuple[Path, int]] = []
    record = []
    with sync_playwright() as p:
        browser = _launch(p, executable)
        try:
            for doc in docs:
                html_path = out_dir / f"{doc.name}.html"
                pdf_path = out_dir / f"{doc.name}.pdf"
                tmp_pdf = out_dir / f".{doc.name}.pdf.tmp"
                assembled = assemble(doc, html_dir, run, html_path, built)
                html_path.write_text(assembled.html, encoding="utf-8")
                layout = print_pdf(browser, html_path, tmp_pdf, header_template(doc, run), footer_template(doc, built))
                tmp_pdf.replace(pdf_path)
                pages = page_count(pdf_path)
                made.append((pdf_path, pages))
                for t in layout["tables"]:
                    log.info("%s: %s scaled to %.0f%% to fit the page", pdf_path.name, t["caption"], 100 * t["zoom"])
                for o in layout["overflow"]:
                    log.warning("%s: wider than the page, may be cut: %s", pdf_path.name, o)
                for problem in layout["tagging"]:
                    log.warning("%s: accessibility: %s", pdf_path.name, problem)
                record.append(
                    {
                        "pdf": pdf_path.name,
                        "pages": pages,
                        "tables": assembled.tables,
                        "figures": assembled.figures,
                        "contents_numbered": layout["contents_numbered"],
                        "scaled": layout["tables"],
                        "overflow": layout["overflow"],
                        "tagging": layout["tagging"],
                    }
                )
        finally:
            browser.close()
    keep = {d.name for d in docs}
    for old in out_dir.glob(f"{REPORT_NAME}_*.pdf"):
        if old.stem not in keep:
            old.unlink()
            old.with_suffix(".html").unlink(missing_ok=True)
    (out_dir / LAYOUT_LOG).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return made


# --------------------------------------------------------------------------
# Tagging: what a screen reader and an accessibility checker see
# --------------------------------------------------------------------------
#: The standard structure types of PDF 1.7 (ISO 32000-1, 14.8.4); any other type needs a /RoleMap entry.
STANDARD_TYPES = frozenset(
    "Document Part Art Sect Div BlockQuote Caption TOC TOCI Index NonStruct Private "
    "P H H1 H2 H3 H4 H5 H6 L LI Lbl LBody Table TR TH TD THead TBody TFoot "
    "Span Quote Note Reference BibEntry Code Link Annot Ruby RB RT RP Warichu WT WP "
    "Figure Formula Form".split()
)


@dataclass
class Tagging:
    """What a PDF declares for assistive technology (:func:`tagging`)."""

    marked: bool = False
    lang: str = ""
    title: str = ""
    display_title: bool = False
    types: dict[str, int] = field(default_factory=dict)  # structure type -> elements
    role_map: dict[str, str] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)  # each Figure element's alternative text ("" if none)
    outline: list[tuple[int, str]] = field(default_factory=list)  # (depth, title) in order

    def problems(self) -> list[str]:
        """What an accessibility checker (PDF/UA, WCAG's PDF techniques) would fail, in words; empty when none."""
        out = []
        if not self.marked or not self.types:
            out.append("not tagged (no structure tree, or /MarkInfo not /Marked true)")
        if not self.lang:
            out.append("no document language (/Lang)")
        if not self.title.strip():
            out.append("no document title (/Title)")
        if not self.display_title:
            out.append("the viewer shows the file name, not the title (/DisplayDocTitle not true)")
        odd = sorted(t for t in self.types if t not in STANDARD_TYPES and self.role_map.get(t) not in STANDARD_TYPES)
        if odd:
            out.append(f"structure types neither standard nor role-mapped to one: {', '.join(odd)}")
        bare = sum(1 for alt in self.figures if not alt.strip())
        if bare:
            out.append(f"{bare} of {len(self.figures)} figures have no alternative text (/Alt)")
        if not self.outline:
            out.append("no bookmarks (/Outlines)")
        return out


def _pdf_string(raw: bytes) -> str:
    r"""A PDF string token (``(literal)`` or ``<hex>``) as text: escapes undone, UTF-16 or PDFDocEncoding read.

    >>> _pdf_string(rb"(A \(b\) c\\d\nx\101)")
    'A (b) c\\d\nxA'
    >>> _pdf_string(b"<FEFF00E9>")
    'é'
    """
    if raw.startswith(b"<"):
        digits = re.sub(rb"\s", b"", raw[1:-1])
        data = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
    else:
        out, i, body = bytearray(), 0, raw[1:-1]
        escapes = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
        while i < len(body):
            c = body[i]
            if c != 0x5C:  # backslash
                out.append(c)
                i += 1
                continue
            nxt = body[i + 1 : i + 2]
            octal = re.match(rb"[0-7]{1,3}", body[i + 1 : i + 4])
            if octal:
                out.append(int(octal.group(), 8) & 0xFF)
                i += 1 + len(octal.group())
            elif nxt in (b"\n", b"\r"):  # a line continuation
                i += 2 + (body[i + 1 : i + 3] == b"\r\n")
            else:
                out.append(escapes.get(nxt[0], nxt[0]) if nxt else 0x5C)
                i += 2
        data = bytes(out)
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be", errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    return data.decode("latin-1")


def _string_value(body: bytes, key: bytes) -> str | None:
    """The string value of ``/key`` in a dictionary's bytes (balanced parentheses honoured), or None."""
    hit = re.search(rb"/" + key + rb"(?![A-Za-z0-9])\s*([(<])", body)
    if hit is None or body[hit.start(1) : hit.start(1) + 2] == b"<<":
        return None
    start = hit.start(1)
    if body[start : start + 1] == b"<":
        end = body.index(b">", start)
        return _pdf_string(body[start : end + 1])
    depth, i = 0, start
    while i < len(body):
        c = body[i : i + 1]
        if c == b"\\":
            i += 2
            continue
        depth += (c == b"(") - (c == b")")
        if depth == 0:
            return _pdf_string(body[start : i + 1])
        i += 1
    return None


def _indirect_objects(data: bytes) -> dict[int, bytes]:
    """Every ``N 0 obj ... endobj`` that is a dictionary and not a stream (Chromium writes no object streams)."""
    out = {}
    for m in re.finditer(rb"(?m)^(\d+) 0 obj\b(.*?)\bendobj", data, re.DOTALL):
        body = m.group(2).strip()
        if body.startswith(b"<<") and not re.search(rb">>\s*stream\r?\n", body):
            out[int(m.group(1))] = body
    return out


def tagging(data: bytes) -> Tagging:
    r"""Read a PDF's tagging as Chromium writes it: structure types, role map, figures' alt text, language,
    title and bookmarks (:meth:`Tagging.problems` says what is missing).

    >>> pdf = (b"1 0 obj\n<</Type /Catalog /MarkInfo <</Marked true>> /Lang (en) /StructTreeRoot 2 0 R "
    ...        b"/ViewerPreferences <</DisplayDocTitle true>> /Outlines 5 0 R>>\nendobj\n"
    ...        b"2 0 obj\n<</Type /StructTreeRoot /RoleMap <</Chart /Figure>> /K 3 0 R>>\nendobj\n"
    ...        b"3 0 obj\n<</Type /StructElem /S /Chart /Alt (Effects \\(g\\) rise) /P 2 0 R>>\nendobj\n"
    ...        b"5 0 obj\n<</Type /Outlines /First 6 0 R>>\nendobj\n"
    ...        b"6 0 obj\n<</Title <FEFF00480069> /Parent 5 0 R>>\nendobj\n"
    ...        b"7 0 obj\n<</Title (A report)>>\nendobj\ntrailer\n<</Root 1 0 R /Info 7 0 R>>\n")
    >>> t = tagging(pdf)
    >>> t.types, t.role_map, t.figures, t.outline, t.title, t.problems()
    ({'Chart': 1}, {'Chart': 'Figure'}, ['Effects (g) rise'], [(1, 'Hi')], 'A report', [])
    """
    objs = _indirect_objects(data)
    trailer = data[data.rfind(b"trailer") :] if b"trailer" in data else b""
    root = re.search(rb"/Root\s+(\d+)\s+0\s+R", trailer)
    catalog = objs.get(int(root.group(1)), b"") if root else b""
    if not catalog:
        catalog = next((d for d in objs.values() if re.search(rb"/Type\s*/Catalog\b", d)), b"")
    info = re.search(rb"/Info\s+(\d+)\s+0\s+R", trailer)
    out = Tagging(
        marked=re.search(rb"/Marked\s+true", catalog) is not None,
        lang=_string_value(catalog, b"Lang") or "",
        title=(_string_value(objs.get(int(info.group(1)), b""), b"Title") or "") if info else "",
        display_title=re.search(rb"/DisplayDocTitle\s+true", catalog) is not None,
    )
    tree = re.search(rb"/StructTreeRoot\s+(\d+)\s+0\s+R", catalog)
    tree_body = objs.get(int(tree.group(1)), b"") if tree else b""
    role_map = re.search(rb"/RoleMap\s*<<(.*?)>>", tree_body, re.DOTALL)
    if role_map:
        out.role_map = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in re.findall(rb"/([^\s/<>\[\]()]+)\s*/([^\s/<>\[\]()]+)", role_map.group(1))
        }
    for body in objs.values():
        if not re.search(rb"/Type\s*/StructElem\b", body):
            continue
        kind = re.search(rb"/S\s*/([^\s/<>\[\]()]+)", body)
        if kind is None:
            continue
        name = kind.group(1).decode("latin-1")
        out.types[name] = out.types.get(name, 0) + 1
        if name == "Figure" or out.role_map.get(name) == "Figure":
            out.figures.append(_string_value(body, b"Alt") or "")
    top = re.search(rb"/Outlines\s+(\d+)\s+0\s+R", catalog)
    seen: set[int] = set()

    def walk(n: int | None, depth: int) -> None:
        while n is not None and n not in seen and n in objs:
            seen.add(n)
            body = objs[n]
            out.outline.append((depth, _string_value(body, b"Title") or ""))
            first = re.search(rb"/First\s+(\d+)\s+0\s+R", body)
            if first:
                walk(int(first.group(1)), depth + 1)
            nxt = re.search(rb"/Next\s+(\d+)\s+0\s+R", body)
            n = int(nxt.group(1)) if nxt else None

    first = re.search(rb"/First\s+(\d+)\s+0\s+R", objs.get(int(top.group(1)), b"")) if top else None
    if first:
        walk(int(first.group(1)), 1)
    return out


#: PDF 2.0 structure types Chromium writes, as the PDF 1.7 standard types a 1.7 reader knows them by.
ROLE_MAP = {
    "Em": "Span",
    "Strong": "Span",
    "Sub": "Span",
    "Title": "P",
    "FENote": "Note",
    "Aside": "Div",
    "DocumentFragment": "Div",
    "Artifact": "NonStruct",
}


def with_role_map(data: bytes) -> bytes:
    r"""The PDF with a /RoleMap for every structure type that is not a PDF 1.7 standard one.

    Chromium writes some PDF 2.0 types (``Strong``, ``Em``) into a PDF 1.4 file,
    which a checker (PDF/UA, WCAG's PDF techniques) reads as non-standard. Each
    is mapped to its PDF 1.7 equivalent (:data:`ROLE_MAP`; any other unknown
    type to ``NonStruct``) by an incremental update: the structure tree root is
    written again, with the role map, after the file's end, with its own
    cross-reference section and a trailer pointing back to the first (a role
    map it has already is extended). Nothing else of the file is touched; a
    PDF with nothing to map, or not laid out as Chromium writes it (no classic
    trailer), is returned as it is, and :func:`tagging` reports what is left.

    >>> pdf = (b"%PDF-1.4\n1 0 obj\n<</Type /Catalog /StructTreeRoot 2 0 R>>\nendobj\n"
    ...        b"2 0 obj\n<</Type /StructTreeRoot\n/K 3 0 R>>\nendobj\n"
    ...        b"3 0 obj\n<</Type /StructElem /S /Strong /P 2 0 R>>\nendobj\n"
    ...        b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000070 00000 n \n0000000125 00000 n \n"
    ...        b"trailer\n<</Size 4\n/Root 1 0 R>>\nstartxref\n180\n%%EOF\n")
    >>> out = with_role_map(pdf)
    >>> tagging(out).role_map
    {'Strong': 'Span'}
    >>> lines = out[len(pdf):].decode().splitlines()
    >>> lines[:4]
    ['2 0 obj', '<</Type /StructTreeRoot', '/K 3 0 R /RoleMap <</Strong /Span>>>>', 'endobj']
    >>> lines[4:]
    ['xref', '2 1', '0000000313 00000 n ', 'trailer', '<</Size 4 /Root 1 0 R /Prev 180>>', 'startxref', '390', '%%EOF']
    >>> out.index(b"2 0 obj", len(pdf)), out.index(b"xref", len(pdf))
    (313, 390)
    """
    found = tagging(data)
    odd = sorted(t for t in found.types if t not in STANDARD_TYPES and t not in found.role_map)
    if not odd:
        return data
    objs = _indirect_objects(data)
    trailer = data[data.rfind(b"trailer") :]
    root = re.search(rb"/Root\s+(\d+)\s+0\s+R", trailer)
    catalog = objs.get(int(root.group(1)), b"") if root else b""
    tree = re.search(rb"/StructTreeRoot\s+(\d+)\s+0\s+R", catalog)
    prev = re.search(rb"startxref\s+(\d+)", data[data.rfind(b"startxref") :])
    size = re.search(rb"/Size\s+(\d+)", trailer)
    if not (root and tree and prev and size) or int(tree.group(1)) not in objs:
        # not laid out as Chromium writes (an xref stream, no structure tree): left as it is; what is
        # still missing is reported by tagging() and logged, the PDF is not lost
        return data
    n = int(tree.group(1))
    body = objs[n]
    entries = " ".join(f"/{t} /{ROLE_MAP.get(t, 'NonStruct')}" for t in odd).encode("ascii")
    inline = re.search(rb"/RoleMap\s*<<", body)
    if inline:  # a role map of its own: the missing types are added to it
        new_body = body[: inline.end()] + entries + b" " + body[inline.end() :]
    elif b"/RoleMap" in body:  # a role map in another object: not rewritten
        return data
    else:
        new_body = body[:-2].rstrip() + b" /RoleMap <<" + entries + b">>>>"
    keep = b"".join(b" " + m.group(0) for m in re.finditer(rb"/(?:Info|ID)\s+(?:\d+\s+0\s+R|\[[^\]]*\])", trailer))
    start = len(data) + (0 if data.endswith(b"\n") else 1)
    obj = b"%d 0 obj\n%s\nendobj\n" % (n, new_body)
    xref_at = start + len(obj)
    update = (
        obj
        + b"xref\n%d 1\n%010d 00000 n \n" % (n, start)
        + b"trailer\n<</Size %s /Root %s 0 R%s /Prev %s>>\n" % (size.group(1), root.group(1), keep, prev.group(1))
        + b"startxref\n%d\n%%%%EOF\n" % xref_at
    )
    return data + (b"" if data.endswith(b"\n") else b"\n") + update
