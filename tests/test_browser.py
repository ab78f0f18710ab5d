"""The built book in a real browser: headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``; ``make browser`` installs it
when missing and the user is root), never a browser downloaded by Playwright.
Another binary can be named with ``ISAFE_CHROMIUM``. When none is found the
tests are skipped with a reason that says so.

The book is built from the bundled synthetic data, pooled trial and LA01
only (the other LAs' sections then say nothing was run), into a temporary
folder. Screenshots of every page visited are saved beside the build, in
``<build>/screenshots``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")


def find_chromium() -> str | None:
    """The system Chromium: ``ISAFE_CHROMIUM``, Debian's paths, then PATH."""
    env = os.environ.get("ISAFE_CHROMIUM")
    for path in ([env] if env else []) + list(CANDIDATES) + [shutil.which("chromium") or ""]:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


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


@pytest.fixture(scope="module")
def book(tmp_path_factory, bundled_run):
    tmp = tmp_path_factory.mktemp("browserbook")
    out, build = bundled_run, tmp / "build"
    run = [sys.executable, "-m", "isafe_helpers"]
    res = subprocess.run([*run, "book", "--out", out, "--build", build], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    shots = build / "screenshots"
    shots.mkdir()
    return {"html": build / "html", "out": out, "shots": shots}


class Visit:
    """One page opened in a fresh tab, with everything it requested and logged."""

    def __init__(self, browser, url: str, shot: Path, lands_on: str | None = None):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed to load {r.url}"))
        self.goto(url)
        if lands_on:  # a redirect
            self.page.wait_for_url(f"**/{lands_on}", timeout=15000)
            self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(shot), full_page=True)

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def text(self) -> str:
        return " ".join(self.page.inner_text("main").split())

    def images(self) -> list[dict]:
        return self.page.evaluate(
            "Array.from(document.images).map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0}))"
        )

    def check_clean(self) -> None:
        remote = [u for u in self.requests if not u.startswith(("file://", "data:", "blob:", "about:"))]
        assert remote == [], f"the page fetched from the network: {remote}"
        assert self.errors == [], f"console errors: {self.errors}"
        broken = [i["src"] for i in self.images() if not i["ok"]]
        assert broken == [], f"images that did not load: {broken}"


def expected_summary_numbers(estimates: Path) -> list[str]:
    """The summary's numbers, formatted here from the pooled contract rows by plain arithmetic."""
    est = pd.read_csv(estimates)

    def row(analysis, outcome, quantity):
        hit = est[(est["analysis"] == analysis) & (est["outcome"] == outcome) & (est["quantity"] == quantity)]
        assert len(hit) == 1, (analysis, outcome, quantity)
        return hit.iloc[0]

    out = []
    for scale in ("confidence", "competence", "org_practice", "strategy_effectiveness", "strategy_frequency"):
        r = row("primary", scale, "hedges_g_total")
        out.append(f"{r.estimate:.2f} ({r.ci_low:.2f} to {r.ci_high:.2f})")
    r = row("primary", "father_contact_recorded", "odds_ratio")
    out.append(f"{r.estimate:.2f} ({r.ci_low:.2f} to {r.ci_high:.2f})")
    reach = est[(est["analysis"] == "reach") & est["quantity"].isin(["attendees", "intended_n"])]
    comps = ("father_engagement", "motivational_interviewing", "qa_audit", "champion", "leaders_webinar")
    reach = reach[reach["outcome"].isin(comps)]
    k = reach.loc[reach["quantity"] == "attendees", "estimate"].sum()
    n = reach.loc[reach["quantity"] == "intended_n", "estimate"].sum()
    out.append(f"reached {100 * k / n:.0f}% of its intended audience")
    r = row("satisfaction", "all", "satisfied_pct")
    out.append(f"{r.estimate:.0f}% ({r.ci_low:.0f}% to {r.ci_high:.0f}%) of respondents")
    r = row("unit_cost", "total", "cost_per_participant_gbp")
    out.append(f"£{r.estimate:,.0f} per participant")
    rating = row("unit_cost", "total", "cost_rating").estimate
    assert not math.isnan(rating)
    out.append(f"cost rating {rating:.0f} on its scale")
    return out


def test_summary_shows_the_pooled_numbers_and_its_chart(chromium, book):
    # the book's front door redirects to the summary
    v = Visit(chromium, (book["html"] / "index.html").as_uri(), book["shots"] / "summary.png", "book/index.html")
    v.check_clean()
    text = v.text()
    for number in expected_summary_numbers(book["out"] / "trial" / "estimates.csv"):
        assert number in text, f"{number!r} is not on the summary page"
    assert any(i["src"].endswith("headline.png") for i in v.images())
    assert "Synthetic data" in v.page.inner_text("body")


def test_pooled_page_shows_its_figures(chromium, book):
    v = Visit(chromium, (book["html"] / "results/trial/2_process.html").as_uri(), book["shots"] / "pooled_process.png")
    v.check_clean()
    assert len(v.images()) >= 1
    assert "Implementation and process: Pooled trial" in v.text()


def test_la_page_shows_its_figures(chromium, book):
    v = Visit(chromium, (book["html"] / "results/las/LA01/1_impact.html").as_uri(), book["shots"] / "la01_impact.png")
    v.check_clean()
    assert len(v.images()) >= 1
    assert "Impact: Local authority LA01" in v.text()


def test_maths_is_typeset_from_the_local_copy_of_mathjax(chromium, book):
    v = Visit(chromium, (book["html"] / "book/effect_size.html").as_uri(), book["shots"] / "effect_size.png")
    v.page.wait_for_selector("mjx-container", timeout=15000)
    v.check_clean()
    assert any("_static/mathjax/" in u for u in v.requests)


def test_navigation_moves_between_the_parts(chromium, book):
    v = Visit(chromium, (book["html"] / "book/index.html").as_uri(), book["shots"] / "nav_0_summary.png")
    nav = v.page.locator("nav.bd-docs-nav")
    for step, (link, lands_on, says) in enumerate(
        [
            ("About ISAFE and its evaluation", "book/about_isafe.html", "About ISAFE"),
            ("Impact: Pooled trial", "results/trial/1_impact.html", "Impact: Pooled trial"),
            ("Local authority LA01", "book/las/LA01.html", "far less precise"),
            ("Status of this build", "book/status.html", "fingerprint"),
        ],
        start=1,
    ):
        nav.get_by_role("link", name=link, exact=True).first.click()
        v.page.wait_for_load_state("load")
        assert v.page.url.endswith(lands_on), (link, v.page.url)
        assert says in v.text()
        v.page.screenshot(path=str(book["shots"] / f"nav_{step}.png"))
    v.goto((book["html"] / "book/las/LA01.html").as_uri())  # within a part: the LA's next page
    v.page.locator("a.right-next").click()
    v.page.wait_for_load_state("load")
    assert v.page.url.endswith("results/las/LA01/1_impact.html")
    v.check_clean()
