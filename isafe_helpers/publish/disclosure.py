"""The disclosure rules the book's tables share with the book-wide ledger.

The rule itself (methods reference, *Disclosure control*) is applied by the
ledger (:mod:`isafe_helpers.publish.ledger`: primary and secondary
suppression across every page) and by :func:`isafe_helpers.publish.tables.protected`
(rates and derived numbers). This module holds the pieces both use:

- :data:`SUPPRESSED`, the mark of a withheld cell while a table is protected;
- :func:`find_relations`, the additive relations among a table's counts
  (a total row or a total column, found by value or declared);
- :func:`withhold_derived`, which withholds a shown number from which a
  suppressed count of its row follows by one product or quotient;
- the threshold (:func:`threshold`, set by ``ISAFE_DISCLOSURE_THRESHOLD``,
  a whole number of at least 1; :data:`DEFAULT_THRESHOLD` without it),
  re-exported from :mod:`isafe_helpers.config`.

``estimates.csv`` is not published: it keeps every number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from isafe_helpers.config import DEFAULT_THRESHOLD, THRESHOLD_ENV, threshold  # noqa: F401 (re-exported)

#: What a suppressed or withheld value is shown as.
SUPPRESSED = "c"


Cell = tuple[int, str]  # (row position, column name)


@dataclass(frozen=True)
class Relation:
    """A published total and the published cells that add up to it."""

    total: Cell
    parts: tuple[Cell, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return (self.total, *self.parts)


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
