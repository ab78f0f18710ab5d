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
- ``gbp``: money, pounds with thousands separators;
- ``view``: a cell another table already publishes, copied as it is printed
  there (text, never protected or formatted again): the summary's and LA
  index pages' headline cells are views of the results pages' cells.

``facts`` names, cell by cell, the ``estimates.csv`` cell a column shows:
``(strand, analysis, outcome, quantity, field)``, the scope being the page's
(:func:`facts`), or ``(scope, strand, ...)`` for another scope's cell (a
pooled page's breakdown by LA shows each LA's own numbers). The book reads every published fact through it
(:mod:`isafe_helpers.publish.facts`): the summary's views, the
published-numbers download and the book-wide check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Kind = Literal["text", "people", "units", "pct", "mean", "number", "p", "gbp", "int", "ci", "view"]

#: An ``estimates.csv`` cell within a scope: (strand, analysis, outcome, quantity, field); or, with a scope first,
#: another scope's cell (an LA's own number in a by-LA breakdown of the pooled page).
FactKey = tuple[str, ...]
#: A cell's value where a number would mean nothing (GSS "not applicable"), printed as it stands.
NOT_APPLICABLE = "[z]"

#: The fields of an ``estimates.csv`` row a table can show.
FIELDS = ("estimate", "se", "ci_low", "ci_high", "p_value", "n", "n_clusters")


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
    #: a number that counts no one and rests on no one (money counted): never withheld for its row's counts
    plain: bool = False
    #: for a percentage printed beside its "out of" count: that people column. "82.1% of 28" is two facts: the
    #: ledger sees the count the two give back (23) and the rest (5) as counts of their own, and the percentage
    #: is withheld when either is
    of: str | None = None


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
    #: per data column, per row, the ``estimates.csv`` cell shown (:func:`facts`); None where none
    facts: Mapping[str, Sequence[FactKey | None]] = field(default_factory=dict)
    #: per ``view`` column, per row, the address of the table the cell comes from (None: no link)
    links: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    #: per statistic column, per row, the counts it rests on that no column of the table shows, as
    #: ``(ledger key, count)`` pairs: registered in the ledger (with ``relations`` naming how they add up), and
    #: the statistic is withheld when any of them is under the threshold or suppressed (a pair keyed None is a
    #: value only: withheld when under the threshold). A Cox index rests on its four cells (a band's staff in
    #: each arm, and the rest of each arm): with the arm sizes, the indexes of a sample's age bands give back the
    #: whole band-by-arm table (issue 22)
    rests: Mapping[str, Sequence[Sequence[tuple[str | None, float]]]] = field(default_factory=dict)
    #: data columns of people counts the table holds but does not print (a coarsened table's finer counts):
    #: registered in the ledger under the keys a printed cell would have, withheld, with ``sums`` naming what
    #: the printed counts add up from, so that a scope printing the finer counts stays consistent with this one
    unpublished: Sequence[str] = ()

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


def facts(
    strand: str, rows: Sequence[tuple[str, str, str] | None], **columns: str | tuple[str, str, str]
) -> dict[str, list[FactKey | None]]:
    """The ``facts`` of a table: per data column, per row, the ``estimates.csv`` cell it shows.

    ``rows`` gives each row's (analysis, outcome, quantity), or None for a row
    that shows no estimates row; ``columns`` maps a data column to the field
    of that row it shows, or to (analysis, quantity, field) when it shows
    another row of the same outcome (a Holm-adjusted p beside the model's).

    >>> facts("impact", [("primary", "confidence", "treatment_effect"), None], effect="estimate")
    {'effect': [('impact', 'primary', 'confidence', 'treatment_effect', 'estimate'), None]}
    >>> facts("impact", [("primary", "x", "odds_ratio")], holm=("secondary", "p_holm", "estimate"))["holm"]
    [('impact', 'secondary', 'x', 'p_holm', 'estimate')]
    """
    out: dict[str, list[FactKey | None]] = {}
    for col, what in columns.items():
        keys: list[FactKey | None] = []
        for r in rows:
            if r is None:
                keys.append(None)
                continue
            analysis, outcome, quantity = r
            if isinstance(what, tuple):
                analysis, quantity, fld = what
            else:
                fld = what
            if fld not in FIELDS:
                raise ValueError(f"column {col!r}: {fld!r} is not a field of estimates.csv ({', '.join(FIELDS)})")
            keys.append((strand, analysis, outcome, quantity, fld))
        out[col] = keys
    return out


def facts_of(
    strand: str, rows: Sequence[tuple[str, str] | None], **columns: tuple[str, str]
) -> dict[str, list[FactKey | None]]:
    """The ``facts`` of a table whose rows are (analysis, outcome) and whose columns are (quantity, field).

    For a table that shows several quantities of one analysis and outcome
    per row (an estimate beside the percentages it rests on).

    >>> facts_of("impact", [("cace", "confidence"), None], pct=("compliance_treatment_pct", "estimate"))
    {'pct': [('impact', 'cace', 'confidence', 'compliance_treatment_pct', 'estimate'), None]}
    """
    out: dict[str, list[FactKey | None]] = {}
    for col, (quantity, fld) in columns.items():
        if fld not in FIELDS:
            raise ValueError(f"column {col!r}: {fld!r} is not a field of estimates.csv ({', '.join(FIELDS)})")
        out[col] = [None if r is None else (strand, r[0], r[1], quantity, fld) for r in rows]
    return out
