"""The result of a process analysis: its estimates rows and its display tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table

#: Columns that hold names a reader sees through the label registry.
LABELLED = ("component", "characteristic", "group", "outcome", "dose")


@dataclass(frozen=True)
class Layout:
    """How a breakdown whose columns differ from ``frame``'s is displayed."""

    columns: list[Col]
    caption: str
    notes: tuple[str, ...] = ()
    sums: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class ProcessResult(Result):
    """One process analysis.

    ``frame`` is the scope-level table the estimates rows come from;
    ``frames`` holds breakdowns (per LA, distributions). ``columns``
    describes how ``frame`` (and a breakdown with the same columns) is
    displayed; ``caption`` names it. ``layouts`` describes the breakdowns
    displayed with columns of their own (``table(name)``).
    """

    analysis: str
    frame: pd.DataFrame
    estimates: list[dict]
    columns: list[Col] = field(default_factory=list)
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    sums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    layouts: dict[str, Layout] = field(default_factory=dict)
    #: declared relations between ledger keys, by breakdown (None: ``frame``)
    relations: dict[str | None, list] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        return self.estimates

    def table(self, breakdown: str | None = None, caption: str | None = None) -> Table:
        """The display table of ``frame``, or of the breakdown ``frames[breakdown]`` (by LA: an LA column first).

        A breakdown named in ``layouts`` has its own columns, caption, notes and sums.
        """
        df = self.frame if breakdown is None else self.frames[breakdown]
        if breakdown in self.layouts:
            lay = self.layouts[breakdown]
            cols, caption = list(lay.columns), caption or lay.caption
            notes, sums = list(lay.notes), dict(lay.sums)
        else:
            cols, notes, sums = list(self.columns), list(self.notes), dict(self.sums)
        if "la" in df.columns and not any(c.key == "la" for c in cols):
            cols = [Col("la", "LA", "text"), *cols]
        df = df.copy()
        for c in LABELLED:
            if c in df.columns:
                df[c] = [label(v) for v in df[c]]
        # ledger keys travel with the frames as columns ``_key_<people column>`` (see results.keys)
        keys = {c.key: list(df[f"_key_{c.key}"]) for c in cols if c.kind == "people" and f"_key_{c.key}" in df}
        return Table(
            df[[c.key for c in cols]],
            cols,
            caption or self.caption,
            notes,
            sums,
            keys=keys,
            relations=list(self.relations.get(breakdown, [])),
        )
