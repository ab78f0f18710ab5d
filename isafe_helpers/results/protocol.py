"""The one shape every analysis result has.

Every analysis function returns a result object with two methods:

- ``tidy()``: one frame with the estimates.csv columns (less ``scope`` and
  ``strand``, which the writer adds): the single source of the rows an
  analysis writes;
- ``table()``: the display table (:class:`~isafe_helpers.results.table.Table`),
  built from ``tidy()``, which the publishing layer renders under disclosure
  control with plain labels, a numbered caption and notes.

:class:`Result` gives ``tidy()`` to results that list their rows in
``rows()``; a result may have further display tables (breakdowns by LA,
distributions) as methods of its own, each returning a ``Table``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from isafe_helpers.results.estimates import ROW_COLUMNS
from isafe_helpers.results.table import Table


@runtime_checkable
class Tidy(Protocol):
    def tidy(self) -> pd.DataFrame: ...


@runtime_checkable
class Displayable(Tidy, Protocol):
    def table(self) -> Table: ...


class Result:
    """Mix-in: ``tidy()`` from the result's ``rows()``."""

    def rows(self) -> list[dict]:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def tidy(self) -> pd.DataFrame:
        """The result's estimates rows (estimates.csv columns less scope and strand)."""
        return pd.DataFrame(self.rows(), columns=ROW_COLUMNS)


def tidy_all(*results) -> pd.DataFrame:
    """The rows of several results (or lists of results), in order, as one frame."""
    frames = []
    for r in results:
        for one in (r if isinstance(r, (list, tuple)) else [r]):
            frames.append(one.tidy())
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ROW_COLUMNS)


class ResultSet(Result):
    """A result made of one member result per outcome (or per scale): iterable, with the members' rows."""

    def __init__(self, results: list):
        self.results = list(results)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i):
        return self.results[i]

    def rows(self) -> list[dict]:
        return [row for r in self.results for row in r.rows()]
