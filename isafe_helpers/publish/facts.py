"""The facts the book publishes: each ``estimates.csv`` cell a results page shows, as that page shows it.

A results table declares, cell by cell, which ``estimates.csv`` cell it
shows (``Table.facts``: strand, analysis, outcome, quantity, field; the
scope is the page's). Once the book's disclosure ledger is solved,
:func:`collect` reads every such cell of every results page under the
book's plan: its text as printed, its published value at the book's
rounding, and its symbol (``[c]`` withheld, ``[x]`` not available). The
summary and each LA index page are views of these facts
(:mod:`isafe_helpers.publish.summary`): they print the page's text, never a
number of their own, and link to the table it comes from.

A fact shown by two tables is published with the text of the first in
page order (impact, process, cost; tables in their order); every
occurrence is kept (:attr:`Fact.seen`) for the book-wide check that one
fact has one value and one symbol everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from isafe_helpers.publish import tables
from isafe_helpers.publish.ledger import Plan
from isafe_helpers.results.table import Table

#: A fact's full key: (scope, strand, analysis, outcome, quantity, field), as in ``estimates.csv``.
Key = tuple[str, str, str, str, str, str]


@dataclass
class Fact:
    """One published ``estimates.csv`` cell."""

    key: Key
    text: str  # as printed: "0.17", "< 0.001", "[c]"
    raw: float  # the unrounded value of the table's data (NaN when withheld or missing): for verdicts only
    table: str  # the id of the table it is read from ("trial-impact-table-4"), the same in HTML, PDF and CSV
    page: tuple[str, str]  # (scope, strand) of that table's page
    row: str = ""  # the row label and column label of the cell there
    column: str = ""
    cell: str = ""  # the whole cell as printed (an estimate with its interval, when the cell holds one)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # every (table, text, symbol) it appears with

    @property
    def symbol(self) -> str:
        """``[c]``, ``[x]``, ``[z]`` or empty (published)."""
        return self.text if self.text in tables.SYMBOLS else ""

    @property
    def value(self) -> float:
        """The published number at the book's rounding; NaN for a symbol or a bound (``< 0.001``)."""
        return plain(self.text)

    @property
    def published(self) -> bool:
        return not self.symbol


def plain(text: str) -> float:
    """A printed number as a plain number: ``"£1,235"`` -> 1235.0, ``"-0.12"`` -> -0.12; NaN for anything else.

    >>> plain("£1,235"), plain("-0.12"), plain("[c]"), plain("< 0.001")
    (1235.0, -0.12, nan, nan)
    """
    t = text.replace(",", "").replace("£", "").strip()
    try:
        return float(Decimal(t))
    except (InvalidOperation, ValueError):
        return math.nan


def table_id(scope: str, strand: str, kind: str, number: int) -> str:
    """The id of a page's numbered table or figure, the same in the HTML, the PDF and the CSV.

    >>> table_id("trial", "impact", "table", 4)
    'trial-impact-table-4'
    """
    return f"{scope}-{strand}-{kind}-{number}"


#: The field of each part of a ``ci`` (or ``view``) cell: the estimate, then its interval's ends.
CI_FIELDS = ("estimate", "ci_low", "ci_high")


def cell_facts(table: Table, cells, scope: str, declared_only: bool = True):
    """(key, row, column label, text, raw value, whole cell) of each number of ``table``, field by field.

    ``cells`` are the table's protected cells (:func:`tables.protected`). A
    ``ci`` cell holds three numbers (the estimate and its interval's ends):
    each gets its own text at the column's rounding, or the cell's symbol. A
    ``view`` cell's parts are the texts its ``parts`` columns hold. ``key``
    is the declared fact (``Table.facts``, with ``scope`` unless the fact
    names its own: an LA's cell on the pooled page), or None; with
    ``declared_only`` the cells without one are left out.
    """
    declared = getattr(table, "facts", None) or {}  # a table pickled before tables declared facts has none
    if declared_only and not declared:
        return []
    data = table.data.reset_index(drop=True)
    out = []
    for c in table.columns:
        if c.kind == "text":
            continue
        shown = cells[c.key].tolist()
        split = c.kind in ("ci", "view") and c.parts is not None
        for j, col in enumerate((c.key, *(c.parts or ())) if split or c.kind == "ci" else (c.key,)):
            keys = declared.get(col) or [None] * len(shown)
            for i, k in enumerate(keys):
                if i >= len(shown) or (k is None and declared_only):
                    continue
                whole = shown[i]
                if c.kind == "view":
                    if whole in tables.SYMBOLS or not split:
                        text = whole
                    else:
                        text = whole.split(" (", 1)[0] if j == 0 else str(data.loc[i, col])
                    raw = plain(text)
                else:
                    v = data.loc[i, col]
                    try:
                        raw = float(v)
                    except (TypeError, ValueError):
                        raw = math.nan
                    if c.kind == "ci" and whole not in tables.SYMBOLS:
                        text = tables.number(raw, "number", c.digits)
                    else:
                        text = whole
                if text in (*tables.SYMBOLS, ""):
                    raw = math.nan
                    text = text or tables.NOT_AVAILABLE
                # a key of six names its scope: an LA's own cell shown on the pooled page (an LA breakdown)
                key = None if k is None else (tuple(k) if len(k) == 6 else (scope, *k))
                fld = (
                    k[-1]
                    if k is not None
                    else (CI_FIELDS[j] if c.kind in ("ci", "view") and len(c.parts or ()) else "")
                )
                out.append((key, i, c.label, text, raw, whole, fld))
    return out


def collect(pages, plan: Plan | None) -> dict[Key, Fact]:
    """Every fact the results pages' tables publish under ``plan``, by key (``pages``: the book's ``PageSpecs``)."""
    found: dict[Key, Fact] = {}
    for page in pages:
        for spec in page.specs:
            if spec.kind != "table" or not spec.number:
                continue
            ident = table_id(page.scope, page.strand, "table", spec.number)
            for t, keys in zip(spec.tables, page.keys[spec.id]):
                cells = tables.protected(t, plan, keys)
                label_col = t.columns[0].key if t.columns and t.columns[0].kind == "text" else None
                labels = cells[label_col].tolist() if label_col else [str(i + 1) for i in range(len(cells))]
                for key, i, column, text, raw, whole, _ in cell_facts(t, cells, page.scope):
                    fact = found.get(key)
                    if fact is None:
                        fact = found[key] = Fact(
                            key, text, raw, ident, (page.scope, page.strand), labels[i], column, whole
                        )
                    fact.seen.append((ident, text, _symbol(text)))
    return found


def _symbol(text: str) -> str:
    return text if text in tables.SYMBOLS else ""


#: The columns of ``<scope>-published-numbers.csv`` (the data contract's "What the book publishes, as data"),
#: and ``bound``: ``<`` where the book prints a bound (``< 0.001``) rather than the number.
CSV_COLUMNS = [
    "page",
    "table",
    "row",
    "column",
    "value",
    "symbol",
    "bound",
    "scope",
    "strand",
    "analysis",
    "outcome",
    "quantity",
    "field",
]


def csv_rows(page: str, ident: str, table: Table, cells, scope: str) -> list[dict]:
    """The published-numbers rows of one table: one per number (an interval's ends are numbers of their own).

    ``value`` is a plain number at the book's rounding (NaN, written blank,
    for a symbol); ``symbol`` is ``[c]`` or ``[x]``; ``bound`` is ``<`` for
    a p printed ``< 0.001`` (value 0.001). The ``estimates.csv`` key is the
    cell's declared fact, blank where the table declares none.
    """
    label_col = table.columns[0].key if table.columns and table.columns[0].kind == "text" else None
    labels = cells[label_col].tolist() if label_col else [str(i + 1) for i in range(len(cells))]
    rows = []
    for key, i, column, text, raw, _whole, fld in cell_facts(table, cells, scope, declared_only=False):
        bound = "<" if text.startswith("<") else ""
        value = plain(text.lstrip("<").strip()) if bound else plain(text)
        if text in ("infinite", "infinity", "minus infinity"):  # an unbounded interval's end: the plain number is +-inf
            value = raw
        k = key or ("", "", "", "", "", fld)
        rows.append(
            {
                "page": page,
                "table": ident,
                "row": labels[i],
                "column": column,
                "value": value,
                "symbol": _symbol(text),
                "bound": bound,
                **dict(zip(("scope", "strand", "analysis", "outcome", "quantity", "field"), k)),
            }
        )
    return rows


#: The columns of a published-numbers row that name its fact.
KEY_COLUMNS = ["scope", "strand", "analysis", "outcome", "quantity", "field"]


class FactConflict(ValueError):
    """One fact shown with two values or two symbols: the book is not built."""


def check(published, limit: int = 20) -> int:
    """The book-wide check: every fact that appears more than once appears with one value and one symbol.

    ``published`` holds the published-numbers rows of every scope (:data:`CSV_COLUMNS`). A fact's face
    is its plain value (at the rounding it is printed at), its symbol and its bound; two faces of one
    fact raise :class:`FactConflict` naming the fact and where each face appears (the first ``limit``
    facts, and how many in all). Returns the number of facts that appear more than once.
    """
    keyed = published[published["quantity"].astype(str) != ""]
    problems, repeated = [], 0
    for key, g in keyed.groupby(KEY_COLUMNS, sort=True):
        if len(g) < 2:
            continue
        repeated += 1
        faces: dict[tuple, list[str]] = {}
        for r in g.itertuples(index=False):
            v = float(r.value)
            face = ("" if math.isnan(v) else repr(v), r.symbol, r.bound)
            faces.setdefault(face, []).append(f"{r.page} {r.table}")
        if len(faces) > 1:
            shown = "; ".join(
                f"{(f[2] + f[0]) or f[1]} {'(symbol ' + f[1] + ') ' if f[0] and f[1] else ''}on {', '.join(where[:3])}"
                for f, where in faces.items()
            )
            problems.append(f"{'/'.join(map(str, key))}: {shown}")
    if problems:
        more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
        raise FactConflict(
            f"{len(problems)} fact(s) shown with more than one value or symbol{more}: " + " | ".join(problems[:limit])
        )
    return repeated
