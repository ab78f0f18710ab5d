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
    #: the ([analysis,] quantity, field) a column of ``frame`` shows (its own analysis by default), where the column is not named as the
    #: quantity (``planned`` shows ``elements_planned``; ``{dose}`` is the row's dose); by default a column
    #: shows the quantity of its name
    quantities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the ``estimates.csv`` outcome of a row whose component is named otherwise in ``frame`` (all_responses: all)
    outcomes: dict[str, str] = field(default_factory=dict)
    #: the facts of ``frame``'s table where they are declared rather than found (``Table.facts``)
    shows: dict[str, list] = field(default_factory=dict)

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
        if breakdown is None:
            shows = dict(self.shows) or self._facts(df, cols)
        elif breakdown not in self.layouts and "la" in df.columns:
            shows = self._la_facts(df, cols)
        else:
            shows = {}
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
            facts=shows,
        )

    def _la_facts(self, df: pd.DataFrame, cols: list[Col]) -> dict:
        """The facts of a breakdown by LA with ``frame``'s columns: each row shows its LA's own cell.

        A row (LA, component) shows, column by column, the cell of that LA's
        ``estimates.csv`` which the scope-level table's row of the same
        component shows in the scope's (the LA's scope runs the same
        analysis on its own data): ``(la, "process", analysis, component,
        quantity, field)``. The book-wide check and the published-numbers
        test hold each to the LA's own page.
        """
        name = next((c for c in LABELLED if c in df.columns and c in self.frame.columns), None)
        if name is None:
            return {}
        scope_facts = self._facts(self.frame, [c for c in cols if c.key in self.frame.columns])
        by_row: dict[tuple[str, str], tuple] = {}
        for col, keys in scope_facts.items():
            for o, k in zip(self.frame[name], keys):
                if k is not None:
                    by_row[(str(o), col)] = k
        out: dict[str, list] = {}
        for col in scope_facts:
            out[col] = [
                None if (str(o), col) not in by_row else (str(la), *by_row[(str(o), col)])
                for la, o in zip(df["la"], df[name])
            ]
        return out

    def _facts(self, df: pd.DataFrame, cols: list[Col]) -> dict:
        """The ``estimates.csv`` cell each number of the scope-level table shows (``Table.facts``).

        A cell is the row of its own analysis whose outcome is the row's
        (component, group ...) and whose quantity is the column's name, when
        that row holds the same number; an interval's end (``ci_low``,
        ``ci_high``) is the field of the row whose interval it is; a column
        in :attr:`quantities` shows the quantity and field named there. A
        cell with no such row names none.
        """
        est = pd.DataFrame(self.estimates)
        name = next((c for c in LABELLED if c in df.columns), None)
        if est.empty or name is None or "quantity" not in est:
            return {}
        out: dict[str, list] = {}
        for c in cols:
            if c.kind == "text" or c.key not in df.columns:
                continue
            keys: list = []
            for rec, o, v in zip(
                df.to_dict("records"), df[name], pd.to_numeric(df[c.key], errors="coerce"), strict=True
            ):
                o = self.outcomes.get(o, o)
                analysis = self.analysis
                if c.key in self.quantities:
                    *which, quantity, fld = self.quantities[c.key]
                    analysis = which[0] if which else analysis
                    mine = est[(est["analysis"] == analysis) & (est["outcome"] == o)]
                    hit = mine[mine["quantity"] == quantity.format(**rec)]
                else:
                    mine = est[(est["analysis"] == analysis) & (est["outcome"] == o)]
                    fld = c.key if c.key in ("ci_low", "ci_high") else "estimate"
                    hit = mine if fld != "estimate" else mine[mine["quantity"] == c.key]
                cell = pd.to_numeric(hit[fld], errors="coerce")
                # a number names the row holding it; a missing number ([x]) the one row missing it
                hit = hit[cell == v] if pd.notna(v) else (hit[cell.isna()] if c.key in self.quantities else hit[0:0])
                keys.append(("process", analysis, str(o), str(hit["quantity"].iloc[0]), fld) if len(hit) == 1 else None)
            if any(keys):
                out[c.key] = keys
        return out
