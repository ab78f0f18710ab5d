"""Publication tables: a result's :class:`~isafe_helpers.results.table.Table` rendered for the book.

One function, :func:`render`, makes every table a reader sees: disclosure
control (:mod:`isafe_helpers.publish.disclosure`) on the columns that count
people and on the statistics resting on them, one number format per column
kind (:func:`number`), plain labels, a numbered caption, one header row,
and notes under the table (the symbols used, and the table's own notes).
Every cell is escaped: no data-derived text reaches the page as markup.
"""

from __future__ import annotations

import html
import math
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Context, Decimal

import numpy as np
import pandas as pd

from isafe_helpers.publish import disclosure
from isafe_helpers.publish.ledger import Ledger, Plan
from isafe_helpers.results.table import NOT_APPLICABLE, Col, Table

#: Shown for a value withheld by disclosure control (GSS symbols guidance).
CONFIDENTIAL = "[c]"
#: Shown for a value that is not available (not estimable, not computed).
NOT_AVAILABLE = "[x]"
#: The GSS symbols a cell may show instead of a number.
SYMBOLS = (CONFIDENTIAL, NOT_AVAILABLE, NOT_APPLICABLE)
SYMBOL_NOTES = {
    CONFIDENTIAL: "[c]: withheld to protect people's confidentiality (a count of fewer than {limit} people, "
    "a statistic resting on fewer, or a number from which one could be worked out).",
    NOT_AVAILABLE: "[x]: not available (not estimable or not computed; see the note column or the text).",
    NOT_APPLICABLE: "[z]: not applicable.",
}


def number(x, kind: str = "number", digits: int = 2) -> str:
    """One number as the book prints it.

    >>> number(-0.0001, "number", 2), number(0.0004, "p"), number(0.0213, "p"), number(1234.5, "gbp", 0)
    ('0.00', '< 0.001', '0.021', '£1,235')
    >>> number(12.345, "pct", 1), number(float("nan")), number(1500, "int")
    ('12.3', '[x]', '1,500')
    >>> number(float("-inf")), number(float("inf"))
    ('minus infinity', 'infinity')
    """
    if x is None or x is pd.NA or isinstance(x, str):
        return NOT_AVAILABLE if x in (None, "") or x is pd.NA else str(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return NOT_AVAILABLE
    if math.isinf(
        v
    ):  # an unbounded interval's end: signed, so a (-inf, inf) interval does not read "infinite infinite"
        return "infinity" if v > 0 else "minus infinity"
    if kind == "p":
        return "< 0.001" if v < 0.001 else f"{v:.3f}"
    if kind in ("people", "units", "int"):
        return f"{_half_up(v, 0):,.0f}"
    text = f"{_half_up(v, digits):,.{digits}f}"
    if text.lstrip("-").replace("0", "").replace(".", "").replace(",", "") == "":
        text = text.lstrip("-")  # never print -0.0
    if kind == "gbp":
        return ("-£" + text[1:]) if text.startswith("-") else "£" + text
    return text


def _half_up(v: float, digits: int) -> Decimal:
    """``v`` rounded half away from zero at ``digits`` decimals, as written (``2.675`` -> ``2.68``)."""
    # precision for every digit a float can have before the point (a fit on 1 df can give 4e184)
    return Decimal(repr(v)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP, context=_WIDE)


#: Enough precision to quantize any finite float (up to 309 digits before the point) at a few decimals.
_WIDE = Context(prec=400)


#: LA names to show beside LA codes in tables (``{"LA01": "Ashvale"}``), set for the page or book being rendered.
LA_NAMES: dict[str, str] = {}


#: Within :func:`remembered`: each (table, plan, keys) protected once (by identity; the objects kept alive here).
_MEMO: dict[tuple[int, int, int], tuple[Table, Plan, dict, pd.DataFrame]] | None = None


@contextmanager
def remembered():
    """Within the block, :func:`protected` works out each table's cells under a given plan once.

    The book stage asks for the same table's cells for its page output, its
    figure's values and the published-numbers download; a plan is not
    changed once solved, so the answer is the same each time.
    """
    global _MEMO
    outer, _MEMO = _MEMO, {} if _MEMO is None else _MEMO
    try:
        yield
    finally:
        _MEMO = outer


def protected(
    table: Table, plan: Plan | None = None, keys: dict | None = None, limit: int | None = None
) -> pd.DataFrame:
    """The table's cells as the book prints them: strings, with ``[c]`` where disclosure control withholds.

    ``plan`` and ``keys`` come from a :class:`~isafe_helpers.publish.ledger.Ledger` the table was
    registered in (the book's, or the page's); without them the table is protected on its own.
    A count is withheld when the plan suppresses it. A statistic is withheld when its ``base``
    count is under the threshold, suppressed or missing, or when the count it ``reveals`` is
    suppressed; one that does not declare what it reveals is withheld in any row with a suppressed
    count. Last, a
    shown number from which a suppressed count of its row follows by one product or quotient with
    another shown number is withheld too.
    """
    if plan is None:
        ledger = Ledger(disclosure.threshold() if limit is None else limit)
        keys = ledger.register(table, "table")
        plan = ledger.solve()
    elif _MEMO is not None and keys is not None:
        seen = _MEMO.get((id(table), id(plan), id(keys)))
        if seen is not None and seen[0] is table and seen[1] is plan and seen[2] is keys:
            return seen[3].copy()
        cells = _protected(table, plan, keys)
        _MEMO[(id(table), id(plan), id(keys))] = (table, plan, keys, cells)
        return cells.copy()
    return _protected(table, plan, keys or {})


def _protected(table: Table, plan: Plan, keys: dict) -> pd.DataFrame:
    src = table.data.reset_index(drop=True)
    pos = {c: j for j, c in enumerate(src.columns)}
    hid = np.zeros((len(src), len(pos)), dtype=bool)  # cell by cell in numpy: a national book has 70,000 counts
    for (i, col), k in keys.items():
        if col in pos:  # derived counts have no column: a percentage's (Col.of), a rate's (col#num, col#rest)
            hid[i, pos[col]] = plan.hidden(k)
    row_hit: np.ndarray = (
        np.asarray(hid[:, [pos[c] for c in table.people]].any(axis=1)) if table.people else np.zeros(len(src), bool)
    )
    for c in table.columns:
        if c.kind == "view" or (c.kind in ("text", "people", "units", "int") and not (c.base or c.reveals)):
            continue
        if c.plain and not (c.base or c.reveals):  # money counted: it gives back no count of its row
            continue
        for i in range(len(src)):
            if c.base or c.reveals:
                withheld = False
                if c.base:
                    bk = keys.get((i, c.base))
                    withheld = bk is None or plan.small(bk) or plan.hidden(bk)
                # a rate's numerator and the rest of its base (registered by the ledger): withheld with either
                withheld = withheld or any(plan.hidden(keys.get((i, f"{c.key}#{p}"))) for p in ("num", "rest"))
                if c.reveals:
                    withheld = withheld or plan.hidden(keys.get((i, c.reveals)))
                else:  # what it gives back is not declared: any suppressed count of its row may follow from it
                    withheld = withheld or bool(row_hit[i])
            else:
                withheld = bool(row_hit[i])
            if c.of:  # "82.1% of 28": withheld when the count it gives back, or the rest, is
                withheld = withheld or any(plan.hidden(keys.get((i, f"{c.key}|{part}"))) for part in ("share", "rest"))
            # the counts it rests on that no column shows (Table.rests): withheld when any is small or withheld
            rests = getattr(table, "rests", {}).get(c.key)
            if rests:
                for j, (rk, rv) in enumerate(rests[i]):
                    k = keys.get((i, f"{c.key}#rests{j}"))
                    # a count published whatever its size (the trial flow's, or a zero an [x] shows) withholds nothing
                    gone = rv < plan.limit if rk is None else (k is None or plan.small(k) or plan.hidden(k))
                    withheld = withheld or (gone and k not in plan.exempt)
            hid[i, pos[c.key]] = hid[i, pos[c.key]] or withheld
    hidden = pd.DataFrame(hid, index=src.index, columns=src.columns)
    out: dict[str, list] = {}
    for c in table.columns:
        vals = src[c.key].tolist()
        if c.kind in ("text", "view"):  # a view is a cell as another table prints it: already protected
            out[c.key] = [
                "" if (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))) else str(v) for v in vals
            ]
            if c.key == "la":  # an LA is shown by its name where its la.yml gives one
                out[c.key] = [f"{LA_NAMES[v]} ({v})" if v in LA_NAMES else v for v in out[c.key]]
        elif c.kind == "ci":
            if c.parts is None:
                raise ValueError(f"column {c.key!r} is of kind ci but names no parts (its interval's columns)")
            lo, hi = (src[k].tolist() for k in c.parts)
            out[c.key] = [estimate_ci(e, a, b, c.digits) for e, a, b in zip(vals, lo, hi)]
        else:
            out[c.key] = [number(v, c.kind, c.digits) for v in vals]
    numeric = [c.key for c in table.columns if c.kind not in ("text", "ci", "view")]
    marked = pd.DataFrame(
        {k: [disclosure.SUPPRESSED if hid[i, pos[k]] else v for i, v in enumerate(out[k])] for k in numeric},
        index=src.index,
        dtype=object,
    )
    # the derived-number check marks ``marked`` itself (a column selection would be a copy, and its marks lost)
    disclosure.withhold_derived(src[numeric], marked, table.people, hidden[table.people])
    for k in numeric:
        # a cell with no number is [x] (or [z]) however its row is protected: there is nothing to withhold, and
        # one fact keeps one symbol on every table that shows it (publish.facts.check)
        out[k] = [
            CONFIDENTIAL if m == disclosure.SUPPRESSED and v not in (NOT_AVAILABLE, NOT_APPLICABLE) else v
            for m, v in zip(marked[k].tolist(), out[k])
        ]
    for c in table.columns:
        # an interval, or a text that reads a statistic (a finding): withheld with the statistic it reads
        # ([x] stays [x]: where there is no number, nothing is withheld and the reader is told why)
        if c.kind == "ci" or (c.kind == "text" and (c.base or c.reveals)):
            out[c.key] = [
                CONFIDENTIAL if hid[i, pos[c.key]] and v not in (NOT_AVAILABLE, NOT_APPLICABLE) else v
                for i, v in enumerate(out[c.key])
            ]
    return pd.DataFrame(out, index=src.index)


def exempt_cells(plan: Plan | None, keys: dict | None) -> list[tuple[int, str]]:
    """The table's cells (row, column) whose counts ``plan`` publishes whatever their size (the trial flow)."""
    if plan is None or not plan.exempt:
        return []
    return sorted(cell for cell, k in (keys or {}).items() if k in plan.exempt)


def estimate_ci(est, lo, hi, digits: int = 2) -> str:
    """An estimate with its 95% interval in one cell: ``0.17 (0.04 to 0.31)``; ``[x]`` when missing.

    >>> estimate_ci(0.1734, 0.0351, 0.3149), estimate_ci(-0.004, -0.2, 0.19)
    ('0.17 (0.04 to 0.31)', '0.00 (-0.20 to 0.19)')
    """
    e = number(est, "number", digits)
    if e == NOT_AVAILABLE:
        return NOT_AVAILABLE
    a, b = number(lo, "number", digits), number(hi, "number", digits)
    return e if NOT_AVAILABLE in (a, b) else f"{e} ({a} to {b})"


def render(
    table: Table,
    number_: int | None = None,
    plan: Plan | None = None,
    keys: dict | None = None,
    limit: int | None = None,
    anchor: str | None = None,
) -> str:
    """HTML of the table: numbered caption, one header row, escaped cells, notes below.

    Numeric columns are right-aligned; the table scrolls inside its own box
    when the screen is narrower than it. ``plan``/``keys`` as in :func:`protected`.
    ``anchor``: the table's id in the page (a link target). A ``view`` cell links
    to the table it comes from when ``table.links`` gives its address.
    """
    limit = (plan.limit if plan is not None else disclosure.threshold()) if limit is None else limit
    cells = protected(table, plan, keys, limit)
    exempt = set(exempt_cells(plan, keys))
    cols: list[Col] = [c for c in table.columns if not (c.kind == "text" and (cells[c.key] == "").all())]
    caption = html.escape(table.caption)
    if number_ is not None:
        caption = f"Table {number_}. {caption}"
    parts = _parts(cols)
    blocks = []
    values = {c.key: cells[c.key].tolist() for c in cols}
    links = {c.key: list(getattr(table, "links", {}).get(c.key) or []) for c in cols if c.kind == "view"}
    for n, part in enumerate(parts, 1):
        head = "".join(f'<th scope="col" class="{_align(c)}">{html.escape(c.label)}</th>' for c in part)
        body = []
        for i in range(len(cells)):
            tds = []
            for j, c in enumerate(part):
                v = html.escape(values[c.key][i])
                tag = "th" if j == 0 and c.kind == "text" else "td"
                scope = ' scope="row"' if tag == "th" else ""
                cls = _align(c)
                if c.kind == "ci" or (c.kind == "view" and " to " in v):  # the interval stays whole
                    cls += " ci"
                    v = v.replace(" to ", "\u00a0to\u00a0")
                if c.kind != "text" and v and not any(ch.isdigit() for ch in v) and " " in v:
                    cls += " words"  # "minus infinity": words, which may wrap, in a column of numbers
                if c.kind == "people" and (i, c.key) in exempt:
                    cls += " exempt"  # a trial-flow count, published whatever its size
                href = links[c.key][i] if c.key in links and i < len(links[c.key]) else None
                if href and v:  # a view links to the table it comes from (an address the build made)
                    v = f'<a href="{html.escape(href)}">{v}</a>'
                    cls += " view"
                # the column's name on the cell: a narrow screen shows each row as a card of "name: value"
                label_ = "" if tag == "th" else f' data-label="{html.escape(c.label)}"'
                tds.append(f'<{tag}{scope}{label_} class="{cls}">{v}</{tag}>')
            body.append("<tr>" + "".join(tds) + "</tr>")
        title = caption if len(parts) == 1 else f"{caption} (part {n} of {len(parts)})"
        blocks.append(
            f'<div class="isafe-table-scroll" tabindex="0" role="region" aria-label="{title}"><table class="isafe-cards">'
            f"<caption>{title}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )
    notes = list(table.notes)
    used = {s for c in cols for s in SYMBOLS if s in values[c.key]}
    notes += [SYMBOL_NOTES[s].format(limit=limit) for s in SYMBOLS if s in used]
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    return (
        f'<div class="isafe-table"{ident}>'
        + "".join(blocks)
        + (f'<div class="isafe-table-notes">{note_html}</div>' if note_html else "")
        + "</div>"
    )


#: The most value columns one printed table carries beside its label columns: more would not fit the
#: text column at 1400 px (nor an A4 page), so a wider table is shown in parts, each repeating its labels.
MAX_VALUE_COLUMNS = 7


def _interval_end(c: Col) -> bool:
    """Whether a column is the end of the interval of the column before it (it must stay beside it)."""
    return c.label.startswith("95% CI") or c.key in ("ci_low", "ci_high", "lo", "hi")


def _parts(cols: list[Col]) -> list[list[Col]]:
    """The table's columns in parts that fit the page: the leading text columns, then the values split evenly.

    An estimate and its interval's ends (columns ``95% CI low``/``high``) are never split apart.

    >>> cols = [Col("o", "Outcome", "text")] + [Col(f"v{i}", f"V{i}", "number") for i in range(10)]
    >>> [[c.key for c in p] for p in _parts(cols)]
    [['o', 'v0', 'v1', 'v2', 'v3', 'v4'], ['o', 'v5', 'v6', 'v7', 'v8', 'v9']]
    >>> len(_parts(cols[:8]))
    1
    >>> ci = [Col("e", "Estimate"), Col("ci_low", "95% CI low"), Col("ci_high", "95% CI high")]
    >>> cols = [Col("o", "Outcome", "text"), *[Col(f"v{i}", f"V{i}") for i in range(3)], *ci, Col("p", "p", "p")]
    >>> [[c.key for c in p] for p in _parts([*cols, Col("z", "Z")])]
    [['o', 'v0', 'v1', 'v2'], ['o', 'e', 'ci_low', 'ci_high', 'p', 'z']]
    """
    lead = 0
    while lead < len(cols) and cols[lead].kind == "text":
        lead += 1
    labels, values = cols[:lead], cols[lead:]
    budget = MAX_VALUE_COLUMNS - max(0, lead - 1)  # a second label column takes a value column's place
    if len(values) <= budget:
        return [cols]
    groups: list[list[Col]] = []
    for c in values:
        if groups and _interval_end(c):
            groups[-1].append(c)
        else:
            groups.append([c])
    # the fewest parts, as even as the groups allow, none wider than the budget
    for n in range(-(-len(values) // budget), len(values) + 1):
        for size in range(-(-len(values) // n), budget + 1):
            parts = _pack(groups, size)
            if len(parts) <= n:
                return [labels + p for p in parts]
    return [labels + p for p in _pack(groups, budget)]  # a group wider than the budget: alone in its part


def _pack(groups: list[list[Col]], size: int) -> list[list[Col]]:
    """Groups of columns in order, into parts of at most ``size`` columns (a wider group alone)."""
    parts: list[list[Col]] = []
    current: list[Col] = []
    for g in groups:
        if current and len(current) + len(g) > size:
            parts.append(current)
            current = []
        current += g
    parts.append(current)
    return parts


def _align(c: Col) -> str:
    """The cell's classes: alignment, and ``people`` for a count of people (tests and styles find them).

    :func:`render` adds ``exempt`` to a count the ledger publishes whatever its size (the trial flow).
    """
    return "text" if c.kind == "text" else ("num people" if c.kind == "people" else "num")
