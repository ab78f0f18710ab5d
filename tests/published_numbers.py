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
