"""The built book in a real browser, as a commissioner, an LA director and an accessibility auditor read it.

Headless Chromium driven by Playwright. Chromium is Debian's
(``/usr/bin/chromium``; ``make browser`` installs it when missing and the user
is root), never a browser downloaded by Playwright; another binary can be
named with ``ISAFE_CHROMIUM``. When none is found the tests are skipped with
a reason that says so.

Two books: the bundled synthetic trial (every scope) and a 3-LA synthetic
root. On the summary, the Local authorities page, every LA index page and
every results page of each, at 1400 and at 390 pixels wide: no visible code,
every figure with alt text and a numbered caption, every table with a
numbered caption, no table wider than its column at 1400 px, no page that
scrolls sideways at 390 px, no snake_case name in the visible text, nothing
fetched from the network, no console error; and in print media the
synthetic-data banner is visible. Screenshots are saved beside each build
(``<build>/screenshots``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")
#: A snake_case identifier: lower-case words joined by underscores.
SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]*[a-z0-9]\b")


def find_chromium() -> str | None:
    """The system Chromium: ``ISAFE_CHROMIUM``, Debian's paths, then PATH."""
    env = os.environ.get("ISAFE_CHROMIUM")
    for path in ([env] if env else []) + list(CANDIDATES) + [shutil.which("chromium") or ""]:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        pytest.skip(
            "browser test skipped: no Chromium found (looked at ISAFE_CHROMIUM, "
            f"{', '.join(CANDIDATES)} and PATH); install Debian's chromium, e.g. `make browser` as root"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser test skipped: Playwright for Python is not installed (pip install -r requirements.txt)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def _book(out: Path, build: Path) -> dict:
    res = cli("book", "--out", out, "--build", build)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    shots = build / "screenshots"
    shots.mkdir(exist_ok=True)
    return {"html": build / "html", "out": out, "shots": shots, "log": res.stdout + res.stderr}


@pytest.fixture(scope="module")
def bundled_book(tmp_path_factory, bundled_run):
    return _book(bundled_run, tmp_path_factory.mktemp("bundledbook") / "build")


@pytest.fixture(scope="module")
def three_la_book(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("threela")
    assert cli("synth", "--out", tmp / "root", "--las", 3, "--teams-per-la", 6, "--staff-per-team", 8).returncode == 0
    res = cli("run", "--data", tmp / "root", "--out", tmp / "out", "--no-book", "--jobs", 2)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return _book(tmp / "out", tmp / "build")


def reader_pages(html: Path) -> list[Path]:
    """The pages a commissioner reads: the summary, the LA list, every LA index page and every results page."""
    pages = [html / "book/index.html", html / "book/local_authorities.html", html / "book/conclusions.html"]
    pages += sorted((html / "book/las").glob("*.html")) + sorted((html / "results").rglob("*.html"))
    return [p for p in pages if p.is_file()]


class Visit:
    """One page opened in a fresh tab at a given width, with everything it requested and logged."""

    def __init__(self, browser, path: Path, width: int = 1400):
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed to load {r.url}"))
        self.page.goto(path.as_uri(), wait_until="load")

    def close(self) -> None:
        self.page.close()

    def main_text(self) -> str:
        return " ".join(self.page.inner_text("main").split())

    def check_clean(self) -> None:
        remote = [u for u in self.requests if not u.startswith(("file://", "data:", "blob:", "about:"))]
        assert remote == [], f"the page fetched from the network: {remote}"
        assert self.errors == [], f"console errors: {self.errors}"

    def facts(self) -> dict:
        return self.page.evaluate(
            """() => {
              const vis = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
              const main = document.querySelector('main');
              return {
                code: Array.from(main.querySelectorAll('.cell_input, .cell .highlight')).filter(vis).length,
                images: Array.from(main.querySelectorAll('img')).map(i => ({alt: i.getAttribute('alt') || '',
                          ok: i.complete && i.naturalWidth > 0,
                          caption: (i.closest('figure') && i.closest('figure').querySelector('figcaption'))
                                   ? i.closest('figure').querySelector('figcaption').innerText : ''})),
                tables: Array.from(main.querySelectorAll('table')).map(t => ({
                          caption: t.caption ? t.caption.innerText : '',
                          width: t.scrollWidth,
                          box: (t.closest('.isafe-table-scroll') || t.parentElement).clientWidth})),
                pageWidth: document.documentElement.scrollWidth,
                viewWidth: window.innerWidth,
              };
            }"""
        )


@pytest.fixture(params=["bundled", "three LAs"])
def built(request):
    return request.getfixturevalue("bundled_book" if request.param == "bundled" else "three_la_book")


def test_reader_pages_read_as_a_report_at_desktop_width(chromium, built):
    pages = reader_pages(built["html"])
    assert len(pages) >= 10
    for path in pages:
        v = Visit(chromium, path, 1400)
        name = str(path.relative_to(built["html"]))
        f = v.facts()
        assert f["code"] == 0, f"{name}: code is visible"
        for img in f["images"]:
            assert img["ok"], f"{name}: an image did not load"
            assert img["alt"] and not re.search(r"\.(png|svg|jpe?g)$", img["alt"]), f"{name}: alt text {img['alt']!r}"
            assert re.match(r"Figure \d+\. \S", img["caption"]), f"{name}: a figure without a numbered caption"
        for t in f["tables"]:
            assert re.match(r"Table \d+\. \S", t["caption"]), f"{name}: a table without a numbered caption"
            assert t["width"] <= t["box"] + 1, f"{name}: table {t['caption']!r} is {t['width']} px in {t['box']} px"
        words = sorted(set(SNAKE.findall(v.main_text())))
        assert words == [], f"{name}: raw names in the text: {words}"
        v.check_clean()
        v.close()


def test_no_reader_page_scrolls_sideways_on_a_phone(chromium, built):
    for path in reader_pages(built["html"]):
        v = Visit(chromium, path, 390)
        f = v.facts()
        assert f["pageWidth"] <= f["viewWidth"] + 1, f"{path.name}: the page is {f['pageWidth']} px wide at 390 px"
        v.close()


def test_the_synthetic_data_banner_prints(chromium, bundled_book):
    v = Visit(chromium, bundled_book["html"] / "book/index.html", 1400)
    v.page.emulate_media(media="print")
    box = v.page.locator(".bd-header-announcement").first.bounding_box()
    assert box and box["height"] > 0
    assert "Synthetic data" in v.page.locator(".bd-header-announcement").first.inner_text()
    v.close()


def test_summary_shows_the_headline_tables_and_its_sentences(chromium, bundled_book):
    v = Visit(chromium, bundled_book["html"] / "book/index.html", 1400)
    text = v.main_text()
    for caption in ("Headline results", "Cost and the Foundations cost rating", "Security of the finding"):
        assert caption in text
    assert "primary outcome" in text.lower() and "Confidence in engaging fathers" in text
    assert "{{" not in text and "[x]" not in text.split("Headline results")[0]
    v.page.screenshot(path=str(bundled_book["shots"] / "summary.png"), full_page=True)
    v.close()


def test_la_pages_carry_no_verdict_and_name_the_la(chromium, bundled_book):
    for path in sorted((bundled_book["html"] / "book/las").glob("*.html")):
        v = Visit(chromium, path, 1400)
        text = v.main_text().lower()
        assert "improved" not in text and "worsened" not in text, path.name
        assert "(la0" in text  # the LA's name from la.yml, with its code
        v.close()


def test_maths_is_typeset_from_the_local_copy_of_mathjax(chromium, bundled_book):
    v = Visit(chromium, bundled_book["html"] / "book/methods.html", 1400)
    v.page.wait_for_selector("mjx-container", timeout=30000)
    assert any("_static/mathjax/" in u for u in v.requests)
    v.check_clean()
    v.close()


def test_navigation_reaches_each_la_from_the_local_authorities_page(chromium, bundled_book):
    v = Visit(chromium, bundled_book["html"] / "book/local_authorities.html", 1400)
    links = v.page.locator("main a[href*='las/']")
    assert links.count() >= 7
    links.first.click()
    v.page.wait_for_load_state("load")
    assert "/book/las/LA01.html" in v.page.url
    v.check_clean()
    v.close()


#: The WCAG 2.2 A/AA rule set (axe-core's tags), and the impacts that fail the build.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE_FAIL = ("serious", "critical")
AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"


def all_pages(html: Path) -> list[Path]:
    """Every HTML page of the built book (search and index pages of the theme included), not the redirects."""
    return sorted(
        p
        for p in html.rglob("*.html")
        if "_static" not in p.parts and 'http-equiv="refresh"' not in p.read_text(encoding="utf-8").lower()
    )


def axe_violations(page) -> list[dict]:
    """axe-core run on the open page with the WCAG 2.2 A/AA tags: the serious and critical violations."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async (tags) => {
          const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5),
                                         count: v.nodes.length}));
        }""",
        AXE_TAGS,
    )
    return [v for v in found if v["impact"] in AXE_FAIL]


def test_every_page_passes_axe_at_desktop_and_phone_widths(chromium, bundled_book):
    """Zero serious or critical axe-core violations (WCAG 2.2 A/AA) on every page, at 1400 and 390 px.

    axe-core comes from the npm registry, pinned in package.json / package-lock.json and
    installed by ``make browser`` (``npm ci``) into node_modules/; without it the test is skipped.
    One browser context serves every page at both widths so the run stays short.
    """
    if not AXE.is_file():
        pytest.skip(
            "accessibility test skipped: axe-core is not installed (node_modules/axe-core/axe.min.js missing); "
            "run `make browser` (needs npm) or `npm ci` in the repository"
        )
    pages = all_pages(bundled_book["html"])
    assert len(pages) >= 10
    problems = []
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 1000})
        for path in pages:
            page.goto(path.as_uri(), wait_until="load")
            for v in axe_violations(page):
                name = path.relative_to(bundled_book["html"])
                problems.append(
                    f"{name} at {width} px: {v['impact']} {v['id']} ({v['help']}) x{v['count']}: {v['nodes']}"
                )
    page.close()
    assert problems == [], f"{len(problems)} serious/critical axe violations:\n" + "\n".join(problems[:60])


#: Every text of an SVG as the quadrilateral its glyph box covers on screen (rotation included), and the
#: pairs whose quadrilaterals overlap by more than ``tol`` px (separating-axis test on the two convex boxes).
OVERLAPS_JS = """(tol) => {
  const quads = [];
  for (const t of document.querySelectorAll('text')) {
    const s = t.textContent.trim(), b = t.getBBox(), m = t.getScreenCTM();
    if (!s || !m || b.width <= 0) continue;
    const pts = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => new DOMPoint(x, y).matrixTransform(m));
    quads.push({s, pts});
  }
  const axes = q => q.pts.map((p, i) => { const r = q.pts[(i + 1) % 4];
    const dx = r.x - p.x, dy = r.y - p.y, n = Math.hypot(dx, dy) || 1; return [-dy / n, dx / n]; }).slice(0, 2);
  const depth = (a, b) => {
    let least = Infinity;
    for (const [ax, ay] of axes(a).concat(axes(b))) {
      const pa = a.pts.map(p => p.x * ax + p.y * ay), pb = b.pts.map(p => p.x * ax + p.y * ay);
      least = Math.min(least, Math.min(Math.max(...pa), Math.max(...pb)) - Math.max(Math.min(...pa), Math.min(...pb)));
    }
    return least;
  };
  const out = [];
  for (let i = 0; i < quads.length; i++) for (let j = i + 1; j < quads.length; j++) {
    const d = depth(quads[i], quads[j]);
    if (d > tol) out.push(`${JSON.stringify(quads[i].s)} and ${JSON.stringify(quads[j].s)} (${d.toFixed(1)} px)`);
  }
  return out;
}"""


def embedded_svgs(html: Path, into: Path) -> list[tuple[str, Path]]:
    """Every SVG the book's pages embed (as data: images), written to ``into``, with the page it is on."""
    import base64

    found = []
    for page in sorted(html.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        for i, data in enumerate(re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', text)):
            path = into / f"{len(found):03d}.svg"
            path.write_bytes(base64.b64decode(data))
            found.append((f"{page.relative_to(html)} figure {i + 1}", path))
    return found


def test_no_text_overlaps_other_text_in_any_figure(chromium, bundled_book, tmp_path):
    """Labels, titles and tick labels of every figure stay clear of each other (glyph boxes, 2 px slack)."""
    figures = embedded_svgs(bundled_book["html"], tmp_path)
    assert len(figures) >= 10
    page = chromium.new_page()
    problems = []
    for name, path in figures:
        page.goto(path.as_uri(), wait_until="load")
        problems += [f"{name}: {o}" for o in page.evaluate(OVERLAPS_JS, 2)]
    page.close()
    assert problems == [], f"{len(problems)} overlapping texts:\n" + "\n".join(problems[:40])


#: Words of the build, not of the report: file names, "notebook", "pipeline".
BUILD_WORDS = re.compile(r"\b[\w-]+\.(?:ya?ml|csv|ipynb|py|json|pkl)\b|\bnotebooks?\b|\bpipelines?\b", re.I)


def test_readers_pages_use_readers_words(bundled_book):
    """The summary, conclusions, limitations and every LA's index page name no files and no build machinery.

    Provenance (which file, which notebook) lives on the reviewer pages and
    in the footnote of each results page, not on the pages a commissioner or
    an LA's director reads.
    """
    from bs4 import BeautifulSoup

    html = bundled_book["html"] / "book"
    pages = [html / "index.html", html / "conclusions.html", html / "limitations.html"]
    pages += sorted((html / "las").glob("*.html"))
    assert len(pages) >= 5 and all(p.is_file() for p in pages)
    found = []
    for page in pages:
        main = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").select_one("main") or ""
        text = " ".join(main.get_text(" ").split()) if main else ""
        assert text, page
        words = sorted({m.group(0) for m in BUILD_WORDS.finditer(text)})
        if words:
            found.append(f"{page.relative_to(html)}: {words}")
    assert found == [], "build words on readers' pages:\n" + "\n".join(found)


def test_headline_table_fits_a_phone(chromium, bundled_book):
    """At 390 px the headline table shows each outcome with its effect and interval, with no sideways scroll."""
    v = Visit(chromium, bundled_book["html"] / "book/index.html", 390)
    table = v.page.locator("table", has=v.page.locator("caption", has_text="Headline results")).first
    f = table.evaluate(
        """t => { const box = t.closest('.isafe-table-scroll');
                  return {sw: box.scrollWidth, cw: box.clientWidth, text: t.innerText}; }"""
    )
    assert f["sw"] <= f["cw"] + 1, f"the headline table is {f['sw']} px wide in a {f['cw']} px box at 390 px"
    assert "Confidence in engaging fathers" in f["text"] and "Estimate (95% CI)" in f["text"]
    # the primary outcome's estimate and interval are on screen, not past the right edge
    cell = table.locator("td[data-label='Estimate (95% CI)']").first
    box = cell.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 391, f"the estimate cell is at {box} at 390 px"
    assert re.search(r"\d\.\d+.*to", cell.inner_text()), cell.inner_text()
    v.page.screenshot(path=str(bundled_book["shots"] / "summary-390.png"), full_page=True)
    v.close()


#: Each SVG figure of the page's main content: the smallest text it draws, in CSS pixels as shown (the text's
#: font size in the SVG's units times the image's shown width over its viewBox width), beside the body's size.
CHART_TEXT_JS = """async () => {
  const p = document.querySelector('main p');
  const body = parseFloat(getComputedStyle(p || document.body).fontSize);
  const out = [];
  for (const img of document.querySelectorAll('main img')) {
    if (!img.src.startsWith('data:image/svg+xml')) continue;
    const svg = new DOMParser().parseFromString(await (await fetch(img.src)).text(), 'image/svg+xml').documentElement;
    const box = (svg.getAttribute('viewBox') || '').split(/[ ,]+/).map(Number);
    const scale = img.getBoundingClientRect().width / box[2];
    let least = Infinity, which = '';
    for (const t of svg.querySelectorAll('text')) {
      const hit = (t.getAttribute('style') || '').match(/font(?:-size)?:\\s*([\\d.]+)px/);
      if (hit && t.textContent.trim() && parseFloat(hit[1]) < least) { least = parseFloat(hit[1]); which = t.textContent.trim(); }
    }
    if (least < Infinity) out.push({px: least * scale, text: which.slice(0, 40), alt: img.alt.slice(0, 50)});
  }
  return {body, figures: out};
}"""


def test_chart_text_is_at_least_the_body_size_at_desktop_and_phone_widths(chromium, bundled_book):
    """Every text of every figure shows at the body's size or larger, at 1400 and at 390 px.

    A figure is never shown below its natural width: on a phone it scrolls
    sideways in its own box (the page itself does not: see the test above).
    """
    pages = reader_pages(bundled_book["html"])
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    small, seen = [], 0
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 1000})
        for path in pages:
            page.goto(path.as_uri(), wait_until="load")
            found = page.evaluate(CHART_TEXT_JS)
            seen += len(found["figures"])
            small += [
                f"{path.relative_to(bundled_book['html'])} at {width} px: {f['px']:.1f} px "
                f"({f['text']!r}) < {found['body']} px, in {f['alt']!r}"
                for f in found["figures"]
                if f["px"] < found["body"] - 0.25
            ]
    page.close()
    assert seen >= 20
    assert small == [], f"{len(small)} figures with text below the body size:\n" + "\n".join(small[:30])


#: The words an alt text would open with if it named the chart before its finding.
CHART_FIRST = re.compile(
    r"^(?:an? |the )?(?:chart|figure|graph|image|diagram|plot|forest plots?|bar charts?|box plots?|line charts?|"
    r"heat map|dot plot|scatter plots?|stacked bar charts?|tornado chart|diverging bar chart|trial flow diagram)\b",
    re.IGNORECASE,
)


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (a full stop, then a space and a capital: decimals do not end it)."""
    return re.split(r"(?<=[.!?])\s+(?=[A-Z£])", text.strip(), maxsplit=1)[0]


def test_alt_text_opens_with_the_finding_then_the_chart_and_its_data(bundled_book):
    """Each figure's alt text says first what the chart shows (its finding), then what kind of chart it is."""
    from bs4 import BeautifulSoup

    alts = []
    for path in reader_pages(bundled_book["html"]):
        main = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser").select_one("main")
        alts += [(path.name, img.get("alt", "")) for img in main.select("figure img")] if main else []
    assert len(alts) >= 20
    bad = [
        (name, first_sentence(alt)[:90])
        for name, alt in alts
        if CHART_FIRST.match(first_sentence(alt)) or first_sentence(alt) == alt.strip()
    ]
    assert bad == [], f"{len(bad)} alt texts that do not open with a finding: {bad[:12]}"
