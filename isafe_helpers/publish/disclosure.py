"""Statistical disclosure control for everything the book publishes.

The rule (methods reference, *Disclosure control*):

1. **Primary suppression.** A count of people under the threshold
   (:func:`threshold`, set by ``ISAFE_DISCLOSURE_THRESHOLD``) is withheld.
2. **Secondary suppression.** Where published cells add up to a published
   total (a total row such as ``all``, or a column that is the sum of other
   columns), a suppressed cell could be recovered by subtraction. More cells
   are suppressed until no suppressed value is determined by the published
   ones: every additive relation then holds none or at least two suppressed
   cells, a linear-algebra check confirms that no suppressed cell is
   fixed by the relations taken together (a cell off every cycle of
   suppressed cells, for instance, would be), and linear programming
   confirms that non-negativity does not pin any to within one person
   (suppressed cells that must sum to 0, for instance).
3. **Rates.** A percentage, mean or interval resting on fewer people than
   the threshold is withheld (``c``); so is every rate in a row where a
   count was suppressed, since rate x base would give the count back.
4. **Derived numbers.** In a row with a suppressed count, a shown number from
   which the count follows by one product or quotient with another shown
   number (a cost per participant beside the total cost) is withheld too,
   declared as a rate or not.

The threshold is configured in one place: the environment variable
``ISAFE_DISCLOSURE_THRESHOLD`` (a whole number of at least 1), read by
:func:`threshold`; without it the threshold is :data:`DEFAULT_THRESHOLD`.
The notebooks (through :func:`isafe_helpers.publish.report.publishable`), the book's
summary and its methods page all read it from there.

``estimates.csv`` is not published: it keeps every number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import null_space
from scipy.optimize import linprog

from isafe_helpers.config import DEFAULT_THRESHOLD, THRESHOLD_ENV, threshold  # noqa: F401 (re-exported)

#: What a suppressed or withheld value is shown as.
SUPPRESSED = "c"


Cell = tuple[int, str]  # (row position, column name)


def is_small(n, limit: int | None = None) -> bool:
    """True when ``n`` people is under the threshold (missing counts as small).

    Examples
    --------
    >>> is_small(9, 10), is_small(10, 10), is_small(float("nan"), 10)
    (True, False, True)
    """
    limit = threshold() if limit is None else limit
    try:
        x = float(n)
    except (TypeError, ValueError):
        return True
    return math.isnan(x) or x < limit


@dataclass(frozen=True)
class Relation:
    """A published total and the published cells that add up to it."""

    total: Cell
    parts: tuple[Cell, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return (self.total, *self.parts)


@dataclass
class Suppression:
    """Which cells of a table are suppressed, and why.

    Attributes
    ----------
    primary, secondary : DataFrame of bool
        Same index and columns as the table's count columns.
    relations : list of Relation
        The additive relations found among the published counts.
    """

    primary: pd.DataFrame
    secondary: pd.DataFrame
    relations: list[Relation]

    @property
    def mask(self) -> pd.DataFrame:
        return self.primary | self.secondary


def _values(df: pd.DataFrame, counts: Sequence[str]) -> pd.DataFrame:
    vals = df[list(counts)].apply(pd.to_numeric, errors="coerce").astype(float)
    return vals.reset_index(drop=True)


def find_relations(
    df: pd.DataFrame, counts: Sequence[str], sums: Mapping[str, Sequence[str]] | None = None
) -> list[Relation]:
    """Additive relations among the count cells of a table.

    Found by value, so a total row needs no label: a cell equal to the sum of
    the other rows of its column (at least two of them) is a column total, and
    a count column equal, row by row, to the sum of at least two other count
    columns is a row total. ``sums`` declares more column totals
    (``{"total": ("a", "b")}``). Declared or found, a relation is used only if
    the published numbers satisfy it.
    """
    vals = _values(df, counts)
    rels: list[Relation] = []
    n = len(vals)
    for col in counts:
        v = vals[col]
        if n < 3 or v.isna().any():
            continue
        total = v.sum()
        for r in range(n):
            if np.isclose(v[r], total - v[r]):
                rels.append(Relation((r, col), tuple((o, col) for o in range(n) if o != r)))
    declared = {k: tuple(p) for k, p in (sums or {}).items()}
    for col in counts:
        others = [c for c in counts if c != col]
        if col not in declared and len(others) >= 2 and n:
            if np.allclose(vals[others].sum(axis=1), vals[col]) and not vals[[col, *others]].isna().any().any():
                declared[col] = tuple(others)
    for col, parts in declared.items():
        missing = [c for c in (col, *parts) if c not in counts]
        if missing:
            raise ValueError(f"sums names columns that are not count columns: {', '.join(missing)}")
        for r in range(n):
            if not vals.loc[r, [col, *parts]].isna().any() and np.isclose(
                vals.loc[r, list(parts)].sum(), vals.loc[r, col]
            ):
                rels.append(Relation((r, col), tuple((r, p) for p in parts)))
    return rels


def determined_cells(mask: pd.DataFrame, relations: Iterable[Relation]) -> list[Cell]:
    """Suppressed cells whose value follows from the published cells.

    Each relation is a linear equation in the suppressed cells (the published
    ones are constants). A suppressed cell is determined when every solution
    of the homogeneous system leaves it unchanged, i.e. when the null space of
    the system is zero in that coordinate.
    """
    unknown = [(r, c) for c in mask.columns for r in range(len(mask)) if mask.iloc[r][c]]
    index = {cell: i for i, cell in enumerate(unknown)}
    rows = []
    for rel in relations:
        coef = np.zeros(len(unknown))
        for cell, sign in [(rel.total, -1.0), *[(p, 1.0) for p in rel.parts]]:
            if cell in index:
                coef[index[cell]] += sign
        if coef.any():
            rows.append(coef)
    if not rows:
        return []
    basis = null_space(np.vstack(rows))
    return [cell for cell, i in index.items() if basis.shape[1] == 0 or np.allclose(basis[i], 0.0, atol=1e-9)]


def pinned_cells(values: pd.DataFrame, mask: pd.DataFrame, relations: Iterable[Relation]) -> list[Cell]:
    """Suppressed cells that the published cells fix to within one person,
    counting that no count is negative.

    The null-space check misses these: three suppressed row totals that the
    published grand total and rows leave summing to 0 are each 0. For each
    suppressed cell in a relation, linear programming finds its smallest and
    largest value over all non-negative tables that agree with what is
    published; a range under 1 pins it.
    """
    rels = list(relations)
    unknown = [(r, c) for c in mask.columns for r in range(len(mask)) if mask.iloc[r][c]]
    unknown = [u for u in unknown if any(u in rel.cells for rel in rels)]
    if not unknown:
        return []
    index = {cell: i for i, cell in enumerate(unknown)}
    a_eq, b_eq = [], []
    for rel in rels:
        coef, const = np.zeros(len(unknown)), 0.0
        for cell, sign in [(rel.total, -1.0), *[(p, 1.0) for p in rel.parts]]:
            if cell in index:
                coef[index[cell]] += sign
            else:
                const -= sign * float(values.loc[cell[0], cell[1]])
        if coef.any():
            a_eq.append(coef)
            b_eq.append(const)
    if not a_eq:
        return []
    pinned = []
    for cell, i in index.items():
        obj = np.zeros(len(unknown))
        obj[i] = 1.0
        lo = linprog(obj, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
        hi = linprog(-obj, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs")
        if lo.status == 0 and hi.status == 0 and (-hi.fun) - lo.fun < 1 - 1e-9:
            pinned.append(cell)
    return pinned


def suppress(
    df: pd.DataFrame,
    counts: Sequence[str],
    sums: Mapping[str, Sequence[str]] | None = None,
    limit: int | None = None,
) -> Suppression:
    """Primary and secondary suppression of the count columns of ``df``.

    Parameters
    ----------
    df : DataFrame
        The table as it would be published.
    counts : columns holding counts of people.
    sums : optional declared column totals (see :func:`find_relations`).
    limit : threshold; default :func:`threshold`.

    Returns
    -------
    Suppression
        No suppressed cell is determined by the published cells and totals.

    Examples
    --------
    >>> t = pd.DataFrame({"group": ["a", "b", "c", "all"], "n": [4, 20, 30, 54]})
    >>> s = suppress(t, ["n"], limit=10)
    >>> s.primary["n"].tolist(), s.secondary["n"].tolist()
    ([True, False, False, False], [False, True, False, False])
    """
    limit = threshold() if limit is None else limit
    counts = list(counts)
    vals = _values(df, counts)
    primary = vals.apply(lambda col: col.notna() & (col < limit))
    secondary = pd.DataFrame(False, index=vals.index, columns=counts)
    relations = find_relations(df, counts, sums)

    def mask() -> pd.DataFrame:
        return primary | secondary

    def suppress_one(candidates: Iterable[Cell]) -> bool:
        free = [c for c in candidates if not mask().loc[c[0], c[1]]]
        if not free:
            return False
        r, c = min(free, key=lambda cell: (vals.loc[cell[0], cell[1]], cell[0]))
        secondary.loc[r, c] = True
        return True

    for _ in range(vals.size + 1):
        changed = False
        for rel in relations:  # no relation may hold exactly one suppressed cell
            m = mask()
            if sum(bool(m.loc[r, c]) for r, c in rel.cells) == 1:
                changed |= suppress_one(rel.parts) or suppress_one([rel.total])
        if changed:
            continue
        exposed = determined_cells(mask(), relations) or pinned_cells(vals, mask(), relations)
        for cell in exposed:
            # a relation of the exposed cell first; when all of theirs are suppressed already, any relation
            # holding a suppressed cell (as the book's ledger does: the cell can be pinned from further off)
            m = mask()
            touched = [rel for rel in relations if any(bool(m.loc[r, c]) for r, c in rel.cells)]
            for rel in sorted(touched, key=lambda rel: cell not in rel.cells):
                if suppress_one(rel.parts) or suppress_one([rel.total]):
                    changed = True
                    break
            if changed:
                break
        if not changed:
            break
    return Suppression(primary, secondary, relations)


def fmt(x, digits: int = 2) -> str:
    """A number for display: fixed decimals with thousands separators, blank for missing."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def protect(
    df: pd.DataFrame,
    counts: Sequence[str] = (),
    rates: Mapping[str, str] | None = None,
    digits: int = 2,
    sums: Mapping[str, Sequence[str]] | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """A display copy of ``df`` under disclosure control, numbers rounded.

    Parameters
    ----------
    df : DataFrame
    counts : columns holding counts of people (primary and secondary suppression).
    rates : mapping of a column holding a percentage, mean or interval to the
        column holding the number of people it rests on; withheld when that is
        under the threshold, and in any row where a count was suppressed.
    digits : decimals for the other numeric columns (rates get one).
    sums : declared column totals, as in :func:`find_relations`.
    limit : threshold; default :func:`threshold`.

    Examples
    --------
    >>> t = pd.DataFrame({"k": ["a", "b"], "n": [5, 40], "pct": [20.0, 50.0]})
    >>> protect(t, counts=["n"], rates={"pct": "n"}, limit=10)["pct"].tolist()
    ['c', '50.0']
    """
    limit = threshold() if limit is None else limit
    rates = dict(rates or {})
    counts = list(counts)
    for col in [*counts, *rates, *rates.values()]:
        if col not in df.columns:
            raise ValueError(f"column {col!r} is not in the table (columns: {', '.join(map(str, df.columns))})")
    src = df.reset_index(drop=True)
    out = src.copy().astype(object)
    supp = suppress(src, counts, sums, limit) if counts else None
    row_hit = supp.mask.any(axis=1) if supp is not None else pd.Series(False, index=src.index)
    for col, base in rates.items():
        small = [is_small(b, limit) for b in src[base]]
        out[col] = [SUPPRESSED if s or h else fmt(v, 1) for v, s, h in zip(src[col], small, row_hit)]
    for col in counts:
        out[col] = [SUPPRESSED if supp.mask.loc[i, col] else fmt(v, 0) for i, v in enumerate(src[col])]
    for col in src.columns:
        if col not in counts and col not in rates and pd.api.types.is_float_dtype(src[col]):
            out[col] = [fmt(v, digits) for v in src[col]]
    if supp is not None:
        withhold_derived(src, out, counts, supp.mask)
    return out


def withhold_derived(src: pd.DataFrame, out: pd.DataFrame, counts: Sequence[str], mask: pd.DataFrame) -> None:
    """Withhold shown numbers from which a suppressed count of the same row follows.

    A cost per participant beside the total cost gives the number of
    participants back (total / per participant), and a percentage beside its
    base gives its numerator back (percentage x base / 100), whether or not
    the table declared them as rates. In each row holding a suppressed count
    ``k > 0``, any two shown numbers ``a``, ``b`` with ``a / b``,
    ``100 a / b``, ``a b`` or ``a b / 100`` equal to ``k`` (to 1e-9,
    relative, on the unrounded values) lose the one that is not a count
    (the divisor, for a quotient, or the rate, for a product). Two counts
    are left alone: a ratio of two counts equal to a third is a coincidence a
    reader cannot know to use, and the totals are protected above.
    Repeated until nothing more follows.
    """
    numeric = [
        c for c in src.columns if pd.api.types.is_numeric_dtype(src[c]) and not pd.api.types.is_bool_dtype(src[c])
    ]
    masked = {c: mask[c].to_numpy(bool) for c in counts}
    values = {c: src[c].tolist() for c in set(numeric) | set(counts)}
    for r in range(len(src)):
        hidden = [float(values[c][r]) for c in counts if masked[c][r]]
        hidden = [k for k in hidden if not math.isnan(k) and k > 0]
        if not hidden:
            continue
        for _ in range(len(numeric) + 1):
            shown = [c for c in numeric if out.at[r, c] not in (SUPPRESSED, "")]
            vals = {c: float(values[c][r]) for c in shown}
            hit = None
            for a in shown:
                for b in shown:
                    x, y = vals[a], vals[b]
                    if a == b or not (math.isfinite(x) and math.isfinite(y)) or y == 0:
                        continue
                    for k in hidden:
                        if any(math.isclose(v, k, rel_tol=1e-9) for v in (x / y, 100 * x / y)):
                            hit = b if b not in counts else None
                        elif any(math.isclose(v, k, rel_tol=1e-9) for v in (x * y, x * y / 100)):
                            hit = a if a not in counts else None
                        if hit:
                            break
                    if hit:
                        break
                if hit:
                    break
            if hit is None:
                break
            out.at[r, hit] = SUPPRESSED


def safe_count(n, limit: int | None = None) -> str:
    """A count of people for prose or a figure label: ``c`` under the threshold.

    >>> safe_count(7, 10), safe_count(1234, 10)
    ('c', '1,234')
    """
    return SUPPRESSED if is_small(n, limit) else f"{float(n):,.0f}"
