"""The tidy ``estimates.csv`` every run writes (data contract, section 2).

Each analysis returns an :class:`Estimates` frame with the contract's
columns; notebooks append their strand's rows with :func:`write_estimates`,
which replaces that strand's earlier rows for the scope, keeps a fixed order
(strand, then the order the rows were produced) and writes atomically, so
strands of one scope can run in parallel processes and a reader never sees
a half-written file.
"""

from __future__ import annotations
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
import pandas as pd
from isafe_helpers.data.contract import STRANDS
from isafe_helpers.outputs import neutralise_frame, unneutralise
from isafe_helpers.portable import file_lock

COLUMNS = [
    "scope",
    "strand",
    "analysis",
    "outcome",
    "quantity",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
    "n_clusters",
    "note",
]


#: The columns of one result's rows (the writer adds scope and strand).
ROW_COLUMNS = [c for c in COLUMNS if c not in ("scope", "strand")]
FILENAME = "estimates.csv"


def _num(x) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def est_row(
    analysis: str,
    outcome: str,
    quantity: str,
    estimate=None,
    se=None,
    ci_low=None,
    ci_high=None,
    p_value=None,
    n=None,
    n_clusters=None,
    note: str = "",
) -> dict:
    """One row of estimates (scope and strand are added when written)."""
    return {
        "analysis": analysis,
        "outcome": outcome,
        "quantity": quantity,
        "estimate": _num(estimate),
        "se": _num(se),
        "ci_low": _num(ci_low),
        "ci_high": _num(ci_high),
        "p_value": _num(p_value),
        "n": None if n is None else int(n),
        "n_clusters": None if n_clusters is None else int(n_clusters),
        "note": note or "",
    }


def frame(rows: list[dict], scope: str, strand: str) -> pd.DataFrame:
    """Rows as a frame with the contract's columns and types."""
    df = pd.DataFrame(rows, columns=ROW_COLUMNS)
    df.insert(0, "strand", strand)
    df.insert(0, "scope", scope)
    for c in ("estimate", "se", "ci_low", "ci_high", "p_value"):
        df[c] = df[c].astype(float)
    for c in ("n", "n_clusters"):
        df[c] = df[c].astype("Int64")
    df["note"] = df["note"].fillna("").astype(str)
    return df[COLUMNS]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")):  # fcntl, or filelock where there is none
        yield


def read_estimates(path: str | Path) -> pd.DataFrame:
    """Read an ``estimates.csv`` with the contract's types, its text cells as they were given.

    The file's text cells are formula-neutralised for spreadsheets
    (:func:`write_estimates`); this gives back the values
    (:func:`~isafe_helpers.outputs.unneutralise`), so an outcome named
    ``=Effectiveness`` is read as that name, never as ``'=Effectiveness``.
    """
    df = pd.read_csv(path, dtype={"scope": str, "note": str}, keep_default_na=False, na_values={
        c: [""] for c in ("estimate", "se", "ci_low", "ci_high", "p_value", "n", "n_clusters")
    })
    for c in ("n", "n_clusters"):
        df[c] = df[c].astype("Int64")
    for c in TEXT:
        if c in df.columns and (df[c].dtype == object or str(df[c].dtype) in ("string", "str")):
            df[c] = df[c].map(unneutralise, na_action="ignore")
    return df


#: The text columns of ``estimates.csv`` (formula-neutralised in the file).
TEXT = ("scope", "strand", "analysis", "outcome", "quantity", "note")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_estimates(df: pd.DataFrame, out_dir: str | Path) -> Path:
    """Merge one strand's rows into ``<out_dir>/estimates.csv``.

    Earlier rows of the same scope and strand are replaced; rows of other
    strands are kept. Rows are ordered by strand (impact, process, cost) and
    then as produced, so the file's bytes do not depend on which strand
    finished first. Text cells go through
    :func:`~isafe_helpers.outputs.neutralise` (a note or label from a return
    that starts like a spreadsheet formula is written as text).
    """
    path = Path(out_dir) / FILENAME
    strands = set(df["strand"])
    scopes = set(df["scope"])
    with _locked(path):
        if path.exists():
            old = read_estimates(path)
            old = old[~(old["strand"].isin(strands) & old["scope"].isin(scopes))]
            df = pd.concat([old[COLUMNS], df[COLUMNS]], ignore_index=True) if len(old) else df
        order = {s: i for i, s in enumerate(STRANDS)}
        df = df.assign(_o=df["strand"].map(order)).sort_values("_o", kind="stable").drop(columns="_o")
        atomic_write_text(path, neutralise_frame(df).to_csv(index=False, lineterminator="\n"))
    return path


#: Written by the pipeline into a task's working folder: where the run's
#: complete results live (``<out>``), so a notebook can read other scopes'
#: or strands' estimates.
RESULTS_ROOT_MARKER = ".results_root"


def results_root(output_dir: str | Path) -> Path:
    """The results folder (``<out>``) of a run, seen from a notebook's ``output_dir``.

    Under the pipeline a notebook writes into a private working folder that
    names the results folder in a marker file; run by hand (or by nbval) its
    ``output_dir`` is ``<out>/<scope>`` itself.
    """
    marker = Path(output_dir) / RESULTS_ROOT_MARKER
    if marker.is_file():
        return Path(marker.read_text(encoding="utf-8").strip())
    return Path(output_dir).resolve().parent


def read_scope(results: str | Path, scope: str) -> pd.DataFrame:
    """One scope's estimates from a results folder (an empty frame when there are none).

    The one reader of published results: summary pages, LA index pages and
    the process strand's reach-against-impact comparison all read through it.
    """
    path = Path(results) / scope / FILENAME
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=float if c in NUMERIC else object) for c in COLUMNS})
    return read_estimates(path)


NUMERIC = ("estimate", "se", "ci_low", "ci_high", "p_value", "n", "n_clusters")


class Lookup:
    """Rows of an estimates frame by (strand, analysis, outcome, quantity)."""

    def __init__(self, est: pd.DataFrame):
        self.est = est
        self._index: dict[tuple, int] = {}
        for i, r in enumerate(est[["strand", "analysis", "outcome", "quantity"]].itertuples(index=False)):
            self._index.setdefault(tuple(r), i)

    def get(self, strand: str, analysis: str, outcome: str, quantity: str) -> pd.Series | None:
        """The first row with these names, or None."""
        i = self._index.get((strand, analysis, outcome, quantity))
        return None if i is None else self.est.iloc[i]

    def value(self, strand: str, analysis: str, outcome: str, quantity: str, column: str = "estimate") -> float:
        """One number of a row (NaN when the row or the number is missing)."""
        row = self.get(strand, analysis, outcome, quantity)
        if row is None:
            return float("nan")
        try:
            return float(row[column])
        except (TypeError, ValueError):
            return float("nan")
