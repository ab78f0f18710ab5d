"""Checks of what the book publishes, shared by the tests of the summary and of the built book.

- :func:`joins_estimates`: every row of a ``<scope>-published-numbers.csv``
  that names its ``estimates.csv`` cell is there, and its value is that
  cell at the rounding it is printed at.
- :func:`alt_numbers_absent`: the numbers of a page's alt text that its
  visible text does not show.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from bs4 import BeautifulSoup

from isafe_helpers.publish.facts import CSV_COLUMNS

#: A number as the book writes one: an optional minus, digits with thousands commas, decimals (an ordinal
#: such as the 10th percentile is a label, not a number).
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![A-Za-z\d])")


def _half_up(v: float, digits: int) -> float:
    return float(Decimal(repr(v)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def joins_estimates(published: pd.DataFrame, est: pd.DataFrame) -> int:
    """Check every published number that names its estimates.csv cell: it is there, equal at its rounding.

    A symbol has no value; a bound (``< 0.001``) is above the cell; any other value is the cell rounded
    half away from zero to the decimals it is printed at (0 to 3). A row without a key carries a number
    or a symbol, never text. Returns how many rows were checked against a cell.
    """
    assert list(published.columns) == CSV_COLUMNS
    cells = est.drop_duplicates(["scope", "strand", "analysis", "outcome", "quantity"]).set_index(
        ["scope", "strand", "analysis", "outcome", "quantity"]
    )
    checked = 0
    for r in published.itertuples():
        assert r.symbol in ("", "[c]", "[x]", "[z]"), r
        value = str(r.value)
        assert not value.startswith("'"), r  # a plain number, never neutralised text
        if not r.quantity:
            continue
        key = (r.scope, r.strand, r.analysis, r.outcome, r.quantity)
        assert key in cells.index, f"{key} is not a row of estimates.csv ({r})"
        raw = float(cells.loc[key, r.field])
        checked += 1
        if r.symbol:
            assert value in ("", "nan"), r
            continue
        v = float(value)
        if math.isinf(v):  # printed "infinite": an unbounded interval's end
            assert raw == v, (r, raw)
            continue
        if r.bound == "<":
            assert raw < v, r
            continue
        assert any(_half_up(raw, d) == v for d in range(4)), (r, raw)
    return checked


def _norm(n: str) -> str:
    return n.replace(",", "").lstrip("-")


def alt_numbers_absent(page_html: str) -> list[tuple[str, list[str]]]:
    """Each alt text of the page's main content with the numbers in it that the page's visible text lacks."""
    soup = BeautifulSoup(page_html, "html.parser")
    main = soup.find("main") or soup
    images = main.find_all("img")
    alts = [img.get("alt", "") for img in images]
    for img in images:
        img.decompose()
    shown = {_norm(n) for n in NUMBER.findall(main.get_text(" "))}
    out = []
    for alt in alts:
        missing = [n for n in NUMBER.findall(alt) if _norm(n) not in shown]
        if missing:
            out.append((alt, missing))
    return out


def _svgs(page_html: str) -> list[BeautifulSoup]:
    """The inline SVG charts of a page (``<img src="data:image/svg+xml;base64,...">``), parsed."""
    import base64

    soup = BeautifulSoup(page_html, "html.parser")
    out = []
    for img in soup.find_all("img"):
        src = img.get("src", "")
        if src.startswith("data:image/svg+xml;base64,"):
            svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8", "replace")
            out.append(BeautifulSoup(svg, "html.parser"))
    return out


def figure_numbers_unpublished(page_html: str, published: set[str]) -> list[str]:
    """Numbers a page's charts print (SVG text) that are neither an axis label nor a number the book publishes.

    An axis's tick labels (matplotlib's ``xtick_*`` / ``ytick_*`` groups) are labels: the scale, not data.
    Any other number drawn (a value printed in a heat-map cell, beside a bar) must be one of ``published``
    (the scope's published numbers, as text with their commas and signs removed) or the page's text.
    """
    soup = BeautifulSoup(page_html, "html.parser")
    main = soup.find("main") or soup
    shown = {_norm(n) for n in NUMBER.findall(main.get_text(" "))} | published
    out = []
    for svg in _svgs(page_html):
        for t in svg.find_all("text"):
            if t.find_parent("g", id=re.compile(r"^(x|y)tick_")) is not None:
                continue
            for n in NUMBER.findall(t.get_text(" ").replace("\u2212", "-")):
                if _norm(n) not in shown:
                    out.append(n)
    return out
