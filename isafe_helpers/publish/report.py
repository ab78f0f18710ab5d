"""What the notebooks show: the synthetic-data notice, numbered tables and figures, and the estimates written.

A notebook calls these once per section; each shows one thing and returns
nothing, so no text representation is stored in the notebook. Tables and
figures are numbered in the order a page shows them (:func:`notice`
starts a page).
"""

from __future__ import annotations

import pandas as pd
from IPython.display import HTML, Markdown, display

from isafe_helpers.data.loading import TrialData, load_root
from isafe_helpers.data.validated import handed_over
from isafe_helpers.publish import tables
from isafe_helpers.results import estimates as E
from isafe_helpers.results.protocol import tidy_all
from isafe_helpers.results.table import Table

_COUNTER = {"table": 0}


def load_scope(data_root: str, scope: str) -> TrialData:
    """The scope's validated data: as the run validated it, else validated here.

    A run of the pipeline validates the data root once and hands the result
    to its notebooks (:mod:`isafe_helpers.data.validated`); a notebook run
    any other way, or whose data root changed since, validates the root itself.
    """
    data = handed_over(data_root)
    return (data if data is not None else load_root(data_root)).for_scope(scope)


def notice(data: TrialData, scope: str) -> None:
    """Start a page: say what it is built from, and plainly when the data are synthetic."""
    _COUNTER["table"] = 0
    what = "the pooled trial" if scope == "trial" else f"local authority {scope}"
    text = f"This page analyses {what}: {len(data.las)} LA(s), {len(data.teams)} teams."
    if data.is_synthetic:
        text = (
            "> **Synthetic data.** These results come from a synthetic trial with the ISAFE design, "
            "made by `isafe_helpers.data.synth`. The numbers are illustrative, not the ISAFE trial's.\n\n" + text
        )
    display(Markdown(text))


def show(item) -> None:
    """Show a result's table (or a :class:`Table`) under disclosure control, numbered."""
    table = item if isinstance(item, Table) else item.table()
    _COUNTER["table"] += 1
    display(HTML(tables.render(table, _COUNTER["table"])))


def write(results: list, scope: str, strand: str, output_dir: str) -> str:
    """Write the results' rows (their ``tidy()`` frames, in order) to ``<output_dir>/estimates.csv``."""
    rows = tidy_all(*results)
    df = E.frame(rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows, scope, strand)
    E.write_estimates(df, output_dir)
    return f"{len(df)} {strand} rows written to estimates.csv for scope {scope}."
