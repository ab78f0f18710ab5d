"""What the notebooks show: the synthetic-data notice, tables fit to publish,
and the estimates they write.

Disclosure control (first version): in published tables, counts of people
under :data:`MIN_CELL` are shown as ``c`` and percentages resting on fewer
than :data:`MIN_CELL` people are withheld (``c``). ``estimates.csv`` keeps
every number unrounded, since it stays with the analyst.
"""

from __future__ import annotations

import math

import pandas as pd
from IPython.display import Markdown, display

from . import estimates as E
from .loading import TrialData, load_root

#: Smallest count of people published (methods: disclosure control).
MIN_CELL = 10
SUPPRESSED = "c"


def load_scope(data_root: str, scope: str) -> TrialData:
    """Load and validate the data root, then keep the scope's data."""
    return load_root(data_root).for_scope(scope)


def notice(data: TrialData, scope: str) -> None:
    """Show what the page is built from; say plainly when the data are synthetic."""
    what = "the pooled trial" if scope == "trial" else f"local authority {scope}"
    text = f"This page analyses {what}: {len(data.las)} LA(s), {len(data.teams)} teams."
    if data.is_synthetic:
        text = (
            "> **Synthetic data.** These results come from a synthetic trial with the ISAFE design, "
            "made by `isafe_helpers.synth`. The numbers are illustrative, not the ISAFE trial's.\n\n"
            + text
        )
    display(Markdown(text))


def fmt(x, digits: int = 2) -> str:
    """A number for display: fixed decimals, blank for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return ""
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def publishable(
    df: pd.DataFrame,
    counts: tuple[str, ...] = (),
    rates: dict[str, str] | None = None,
    digits: int = 2,
) -> pd.DataFrame:
    """A display copy of ``df`` with small counts suppressed and numbers rounded.

    Parameters
    ----------
    df : DataFrame
    counts : columns holding counts of people; values under MIN_CELL become ``c``.
    rates : mapping of a column holding a percentage or mean to the column
        holding the number of people it rests on; withheld when under MIN_CELL.
    digits : decimals for the other numeric columns.
    """
    out = df.copy().astype(object)
    rates = rates or {}
    for col, base in rates.items():
        small = pd.to_numeric(df[base], errors="coerce") < MIN_CELL
        out[col] = [SUPPRESSED if s else fmt(v, 1) for v, s in zip(df[col], small)]
    for col in counts:
        out[col] = [
            SUPPRESSED if pd.notna(v) and v < MIN_CELL else fmt(v, 0) for v in df[col]
        ]
    for col in df.columns:
        if col not in counts and col not in rates and pd.api.types.is_float_dtype(df[col]):
            out[col] = [fmt(v, digits) for v in df[col]]
    return out.reset_index(drop=True)


def show(df: pd.DataFrame) -> None:
    """Display a table indexed by its first column."""
    display(df.set_index(df.columns[0]))


def write(rows: list[dict], scope: str, strand: str, output_dir: str) -> str:
    """Write the strand's rows to ``<output_dir>/estimates.csv``; return a short receipt."""
    df = E.frame(rows, scope, strand)
    E.write_estimates(df, output_dir)
    return f"{len(df)} {strand} rows written to estimates.csv for scope {scope}."
