"""No input can script the book, and no text cell of estimates.csv is a spreadsheet formula.

A data root is laced with a list of payloads (HTML tags and event handlers,
Markdown links, MyST roles, directives and substitutions, backticks, maths,
spreadsheet formulas) in every route data-derived text takes to a page: cost
items, survey scale names (``instrument.yml``), team types, LA names
(``la.yml``) and the data root's own folder name. Feedback themes are codes
(letters, digits, ``_`` and ``-``) from a fixed list, so a payload there is
refused by validation (checked here too). The book built from it is opened page by page in
Debian's Chromium: no dialog fires, and no payload appears raw in any HTML
file. The search page (Sphinx's ``searchtools.js``, which wrote result
titles with ``innerHTML``: issue 26) is searched for a hostile LA name, a
section title holding it and a cost item: no script runs and the text is
shown as it is.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '"><svg onload=alert(3)>',
    "[click](javascript:alert(4))",
    "{raw}`<b onmouseover=alert(5)>x</b>`",
    "```{raw} html <script>alert(6)</script> ```",
    "{{ s_threshold }} `code` $x$ **bold**",
    '=HYPERLINK("http://x","y")',
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def laced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("laced")
    root = tmp / "root<img src=x onerror=alert(7)>"
    assert cli("synth", "--out", root, "--las", 2, "--teams-per-la", 2, "--staff-per-team", 6).returncode == 0
    inst = {"scales": {}}
    for name, prefix, k, rev in (
        ("confidence", "conf", 6, []),
        ("competence", "comp", 6, ["comp_6"]),
        ("org_practice", "org", 5, ["org_5"]),
        ("strategy_effectiveness", "eff", 5, []),
        ("strategy_frequency", "freq", 5, []),
    ):
        inst["scales"][name] = {"items": [f"{prefix}_{i}" for i in range(1, k + 1)], "reverse": rev}
    inst["scales"][PAYLOADS[0]] = inst["scales"].pop("strategy_frequency")
    (root / "instrument.yml").write_text(yaml.safe_dump(inst), encoding="utf-8")
    names = {"LA01": f"Northshire {PAYLOADS[0]}"}  # issue 26: the search page ran this name's script
    for la_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "report"):
        costs = pd.read_csv(la_dir / "costs.csv", dtype=str, keep_default_na=False)
        costs.loc[: len(PAYLOADS) - 1, "item"] = PAYLOADS[: len(costs)]
        costs.to_csv(la_dir / "costs.csv", index=False)
        teams = pd.read_csv(la_dir / "teams.csv", dtype=str, keep_default_na=False)
        teams["team_type"] = PAYLOADS[2]
        teams.to_csv(la_dir / "teams.csv", index=False)
        name = names.get(la_dir.name, f"Shire {PAYLOADS[1]}")
        (la_dir / "la.yml").write_text(yaml.safe_dump({"name": name}), encoding="utf-8")
    out, build = tmp / "out", tmp / "build"
    res = cli("run", "--data", root, "--out", out, "--build", build, "--jobs", 2)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return {"html": build / "html", "out": out}


def test_no_payload_appears_raw_in_any_html_file(laced):
    bad = []
    for page in sorted(laced["html"].rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        bad += [
            (page.name, p)
            # a Markdown link shown as text is inert; one that became a link would carry href="javascript:
            for p in ("<img src=x onerror", "<script>alert", "<svg onload", 'href="javascript:', "<b onmouseover")
            if p in text
        ]
    assert bad == []


def test_no_text_cell_of_estimates_starts_with_a_formula_character(laced):
    for f in sorted(laced["out"].glob("*/estimates.csv")):
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        for col in ("scope", "strand", "analysis", "outcome", "quantity", "note"):
            starts = df[col].str[:1]
            assert not starts.isin(FORMULA_START).any(), (f, col, df.loc[starts.isin(FORMULA_START), col].tolist())


def test_no_dialog_fires_on_any_page(laced):
    from test_browser import LAUNCH_ARGS, find_chromium

    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium: install Debian's chromium (make browser as root)")
    from playwright.sync_api import sync_playwright

    dialogs = []
    pages = sorted(laced["html"].rglob("*.html"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=LAUNCH_ARGS)
        for html in pages:  # a tab each: the root's redirect must not interrupt the next page
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(html.as_uri(), wait_until="load")
            page.mouse.move(10, 10)
            page.wait_for_timeout(50)
            page.close()
        browser.close()
    assert len(pages) > 10 and dialogs == []


def test_the_payload_route_text_is_shown_as_text(laced):
    cost = (laced["html"] / "results/trial/3_cost.html").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;" in cost or "&#60;img" in cost
    assert Path(laced["html"] / "book/status.html").is_file()


#: Searches: a word of a hostile LA name; the whole name and a whole section title holding it (Sphinx 7.4 matches
#: a section title when the query is at least half of it, and wrote it with innerHTML); the hostile cost item.
SEARCHES = [
    "Northshire",
    f"Northshire {PAYLOADS[0]}",
    f"Northshire {PAYLOADS[0]} (LA01)",
    PAYLOADS[0],
    f"Shire {PAYLOADS[1]}",
    "alert",
]


@pytest.mark.parametrize("query", SEARCHES)
def test_the_search_page_runs_no_data_derived_text_and_shows_it_as_text(laced, query):
    """Issue 26: result titles (section titles with an LA's name) and summaries are text, not HTML."""
    from test_browser import LAUNCH_ARGS, find_chromium

    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium: install Debian's chromium (make browser as root)")
    from playwright.sync_api import sync_playwright

    dialogs, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=LAUNCH_ARGS)
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        url = (laced["html"] / "search.html").as_uri() + "?" + urllib.parse.urlencode({"q": query})
        page.goto(url, wait_until="load")
        page.wait_for_function(
            "() => (document.querySelector('#search-results p.search-summary') || {}).textContent", timeout=30000
        )
        page.wait_for_timeout(1500)  # summaries of the results are fetched after the titles are shown
        titles = page.eval_on_selector_all("#search-results li > a", "els => els.map(e => e.textContent)")
        planted = page.eval_on_selector_all(
            "#search-results img, #search-results script, #search-results svg, #search-results b", "els => els.length"
        )
        browser.close()
    assert dialogs == [] and planted == 0, (dialogs, planted)
    assert titles, f"the search for {query!r} found nothing"
    if query.startswith("Northshire"):  # the LA's name is in its pages' titles: shown as the text it is
        assert any(f"Northshire {PAYLOADS[0]}" in t for t in titles), titles


def test_the_search_script_writes_results_as_text():
    """The shipped rewrite of Sphinx's search script (issue 26): no result is set with innerHTML."""
    import sphinx

    from isafe_helpers.publish.book_ext import safe_searchtools

    script = Path(sphinx.__file__).parent / "themes" / "basic" / "static" / "searchtools.js"
    safe = safe_searchtools(script.read_text(encoding="utf-8"))
    assert "innerHTML" not in safe and "linkEl.textContent = title;" in safe
    with pytest.raises(ValueError, match="not reviewed"):
        safe_searchtools("x.innerHTML = title;\n")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_theme_that_is_not_a_code_is_refused(tmp_path, payload):
    from isafe_helpers.data.contract import Instrument

    path = tmp_path / "instrument.yml"
    path.write_text(
        yaml.safe_dump({"scales": {"s": {"items": ["a", "b"]}}, "themes": ["practical", f"theme {payload}"]}),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="must be codes"):
        Instrument.from_yaml(path)
