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
  ``people`` column it rests on, withheld when that count is under the
  threshold or withheld; with ``reveals`` naming a ``people`` column whose
  count a reader could work out from the statistic and other published
  numbers (a percentage and its base give the numerator; a cost per person
  and the total give the denominator), withheld when that count is;
- ``p``: a p-value (``< 0.001`` below 0.001);
- ``ci``: an estimate with its interval in one cell, ``0.17 (0.04 to 0.31)``:
  ``key`` holds the estimate and ``parts`` the columns of the interval's ends;
- ``gbp``: money, pounds with thousands separators.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Kind = Literal["text", "people", "units", "pct", "mean", "number", "p", "gbp", "int", "ci"]


@dataclass(frozen=True)
class Col:
    """One column: its key in ``Table.data``, its label, kind, decimals and base."""

    key: str
    label: str
    kind: Kind = "number"
    digits: int = 2
    base: str | None = None  # the people column a statistic rests on
    reveals: str | None = None  # a people column whose count the statistic gives back
    parts: tuple[str, str] | None = None  # for kind "ci": the columns of the interval's low and high ends


@dataclass
class Table:
    """A table to publish: unrounded ``data`` whose columns are described by ``columns``.

    ``sums`` declares column totals among the people columns
    (``{"total": ("a", "b")}``); totals the numbers satisfy are also found
    without being declared. ``notes`` are printed under the table.

    For the book-wide disclosure ledger, ``keys`` names the population each
    people cell counts (``{column: [key per row]}``, keys from
    :mod:`isafe_helpers.results.keys`; a cell without one is known only to
    its table), ``relations`` declares sums between keys
    (``(total_key, (part_keys...), kind)``, kind ``sum`` or ``breakdown``: a
    breakdown of people by a characteristic, whose zeros may disclose), and
    ``exempt`` lists keys published whatever their size (the trial-flow
    counts CONSORT requires).
    """

    data: pd.DataFrame
    columns: list[Col]
    caption: str
    notes: list[str] = field(default_factory=list)
    sums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    keys: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    relations: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)
    exempt: set[str] = field(default_factory=set)

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

    def cell_key(self, row: int, column: str) -> str | None:
        """The ledger key of a people cell, when the table names its population."""
        keys = self.keys.get(column)
        return None if keys is None else keys[row]
