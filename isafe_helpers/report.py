"""What the notebooks show: the synthetic-data notice, tables fit to publish,
and the estimates they write.

Disclosure control lives in :mod:`isafe_helpers.disclosure`: in published
tables, counts of people under the threshold (``MIN_CELL``, 10 unless
``ISAFE_DISCLOSURE_THRESHOLD`` says otherwise) are shown as ``c``, with
secondary suppression wherever a total would give a suppressed count back,
and percentages or means resting on fewer people are withheld (``c``).
``estimates.csv`` keeps every number unrounded, since it stays with the analyst.
"""

from __future__ import annotations

import pandas as pd
from IPython.display import Markdown, display

from . import disclosure
from . import estimates as E
from .disclosure import fmt  # noqa: F401  (re-exported for notebooks)
from .loading import TrialData, load_root

SUPPRESSED = disclosure.SUPPRESSED


def __getattr__(name: str):
    # ``MIN_CELL``, the smallest count of people published, is read when asked
    # for, so that the one setting in :mod:`.disclosure` governs it.
    if name == "MIN_CELL":
        return disclosure.threshold()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def publishable(
    df: pd.DataFrame,
    counts: tuple[str, ...] = (),
    rates: dict[str, str] | None = None,
    digits: int = 2,
    sums: dict[str, tuple[str, ...]] | None = None,
) -> pd.DataFrame:
    """A display copy of ``df`` under disclosure control, numbers rounded.

    Parameters
    ----------
    df : DataFrame
    counts : columns holding counts of people; values under the threshold
        become ``c``, and more cells are suppressed wherever a total row or
        column would give one back (see :func:`isafe_helpers.disclosure.suppress`).
    rates : mapping of a column holding a percentage or mean to the column
        holding the number of people it rests on; withheld when that is under
        the threshold or when a count in the same row is suppressed.
    digits : decimals for the other numeric columns.
    sums : optional column totals, ``{"total": ("a", "b")}``; totals that the
        numbers satisfy are also found without being declared.

    Examples
    --------
    >>> t = pd.DataFrame({"component": ["a", "b", "all"], "n": [4, 30, 34]})
    >>> publishable(t, counts=("n",))["n"].tolist()
    ['c', 'c', '34']
    """
    return disclosure.protect(df, counts=counts, rates=rates, digits=digits, sums=sums)


def show(df: pd.DataFrame) -> None:
    """Display a table indexed by its first column."""
    display(df.set_index(df.columns[0]))


def write(rows: list[dict], scope: str, strand: str, output_dir: str) -> str:
    """Write the strand's rows to ``<output_dir>/estimates.csv``; return a short receipt."""
    df = E.frame(rows, scope, strand)
    E.write_estimates(df, output_dir)
    return f"{len(df)} {strand} rows written to estimates.csv for scope {scope}."
