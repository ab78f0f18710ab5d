"""A display table as data: values, what each column holds, caption and notes.

A result's ``table()`` returns a :class:`Table`; the publishing layer
(:mod:`isafe_helpers.publish.tables`) renders it: disclosure control on the
columns that count people and on the statistics resting on them, one
number format per kind, plain labels, a numbered caption and notes. The
analysis layer never formats or suppresses a number itself.

Column kinds:

- ``text``: labels (escaped when rendered);
- ``people``: a count of people (suppressed under the disclosure threshold,
  with secondary suppression);
- ``units``: a count of teams, sessions or LAs: not people, published as is;
- ``pct``, ``mean``, ``number``: a statistic; with ``base`` naming the
  ``people`` column it rests on, withheld when that is under the threshold;
- ``p``: a p-value (``< 0.001`` below 0.001);
- ``gbp``: money, pounds with thousands separators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Kind = Literal["text", "people", "units", "pct", "mean", "number", "p", "gbp", "int"]


@dataclass(frozen=True)
class Col:
    """One column: its key in ``Table.data``, its label, kind, decimals and base."""

    key: str
    label: str
    kind: Kind = "number"
    digits: int = 2
    base: str | None = None  # the people column a statistic rests on


@dataclass
class Table:
    """A table to publish: unrounded ``data`` whose columns are described by ``columns``.

    ``sums`` declares column totals among the people columns
    (``{"total": ("a", "b")}``); totals the numbers satisfy are also found
    without being declared. ``notes`` are printed under the table.
    """

    data: pd.DataFrame
    columns: list[Col]
    caption: str
    notes: list[str] = field(default_factory=list)
    sums: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def col(self, key: str) -> Col:
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(key)

    @property
    def people(self) -> list[str]:
        return [c.key for c in self.columns if c.kind == "people"]

    @property
    def bases(self) -> dict[str, str]:
        return {c.key: c.base for c in self.columns if c.base}
