"""Cost strand: the sensitivity of the unit cost and its Foundations rating.

Each of the :data:`N_LARGEST` largest financial cost items (rows grouped by
item, category and phase over LAs) is moved by +/- :data:`SENSITIVITY_SHARE`;
a scale-up scenario drops set-up costs; the alternative denominators are
intended participants, all treatment-team participants and every distinct
person who attended any session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from isafe_helpers.cost.costing import (
    _per,
    cost_rating,
    costed,
    denominators,
    financial,
    price_label,
    rating_labels,
    report_price_year,
    with_costs,
)
from isafe_helpers.data.loading import TrialData
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table

#: How many of the largest cost items the sensitivity analysis moves.
N_LARGEST = 5


#: The share by which each of the largest items is moved (plus and minus).
SENSITIVITY_SHARE = 0.20


# --------------------------------------------------------------------------
# Sensitivity
# --------------------------------------------------------------------------
@dataclass
class SensitivityResult(Result):
    """Unit cost and rating under each scenario, against the base case."""

    base_cost: float
    base_rating: float
    frame: pd.DataFrame
    estimates: list[dict]
    price_year: int | None

    def rows(self) -> list[dict]:
        return self.estimates

    def table(self) -> Table:
        """One row per scenario: the cost, its denominator, the unit cost and rating, and whether it changes."""
        label = price_label(self.price_year)
        t = self.frame.assign(
            changes=["yes" if c else "no" for c in self.frame["changes_rating"]],
            cost_rating=rating_labels(self.frame["cost_rating"]),
        )
        return Table(
            t[["scenario", "total_cost_gbp", "denominator", "cost_per_participant_gbp", "cost_rating", "changes"]],
            [
                Col("scenario", "Scenario", "text"),
                Col("total_cost_gbp", f"Financial cost, {label}", "gbp", 0),
                Col("denominator", "Denominator", "people"),
                Col("cost_per_participant_gbp", f"Unit cost, {label}", "gbp", 0, base="denominator"),
                Col("cost_rating", "Rating", "text"),
                Col("changes", "Changes the rating", "text"),
            ],
            caption="Sensitivity of the unit cost and its rating",
        )

    @property
    def changing(self) -> pd.DataFrame:
        """Scenarios whose rating differs from the base rating."""
        return self.frame[self.frame["changes_rating"]]

    def summary(self) -> str:
        """One sentence: does any scenario change the rating?"""
        if np.isnan(self.base_rating):
            return "No cost rating is computed for this scope, so no sensitivity analysis is made."
        ch = self.changing
        if ch.empty:
            return f"None of the {len(self.frame)} scenarios changes the cost rating ({int(self.base_rating)})."
        what = "; ".join(f"{r.scenario} gives {int(r.cost_rating)}" for r in ch.itertuples(index=False))
        return f"{len(ch)} of the {len(self.frame)} scenarios change the cost rating ({int(self.base_rating)}): {what}."


def largest_items(data: TrialData, n: int = N_LARGEST, price_year: int | None = None) -> pd.DataFrame:
    """The ``n`` largest financial cost items (item, category, phase summed over LAs)."""
    fin = financial(costed(data, price_year))
    g = fin.groupby(["item", "category", "phase"], as_index=False)["cost_gbp"].sum()
    return g.sort_values(["cost_gbp", "item"], ascending=[False, True], kind="stable").head(n).reset_index(drop=True)


def sensitivity(
    data: TrialData, n_items: int = N_LARGEST, share: float = SENSITIVITY_SHARE, price_year: int | None = None
) -> SensitivityResult:
    """Unit cost per participant reached, and its rating, under each scenario.

    Scenarios: each of the ``n_items`` largest financial items at
    (1 - share) and (1 + share) of its cost; scale-up without set-up costs
    (delivery costs only); and the alternative denominators (intended
    participants, all treatment-team participants, every person who
    attended any session). ``changes_rating`` marks a rating that differs
    from the base case's.
    """
    year = report_price_year(data) if price_year is None else price_year
    fin = financial(costed(data, year))
    total = float(fin["cost_gbp"].sum())
    den = denominators(with_costs(data))
    reached = den["participants_reached"]
    base = _per(total, reached) if len(fin) else np.nan
    base_rating = cost_rating(base)
    recs = []
    if not np.isnan(base):
        for rank, it in enumerate(largest_items(data, n_items, year).itertuples(index=False), start=1):
            for sign, tag in ((-1, "minus"), (1, "plus")):
                c = total + sign * share * it.cost_gbp
                recs.append(
                    {
                        "scenario": f"{it.item} {'-' if sign < 0 else '+'}{share:.0%}",
                        "outcome": f"largest_item_{rank}",
                        "quantity": f"{tag}_{share * 100:g}pct",
                        "kind": "item",
                        "item": it.item,
                        "total_cost_gbp": c,
                        "denominator": reached,
                        "cost_per_participant_gbp": _per(c, reached),
                    }
                )
        setup = float(fin.loc[fin["phase"] == "setup", "cost_gbp"].sum())
        recs.append(
            {
                "scenario": "scale-up: no set-up costs",
                "outcome": "scale_up_no_setup",
                "quantity": "",
                "kind": "scale_up",
                "item": "",
                "total_cost_gbp": total - setup,
                "denominator": reached,
                "cost_per_participant_gbp": _per(total - setup, reached),
            }
        )
        for d, what in (
            ("intended_participants", "per intended participant"),
            ("treatment_participants", "per treatment-team participant"),
            ("attendees_any_session", "per person attending any session"),
        ):
            recs.append(
                {
                    "scenario": f"denominator: {what}",
                    "outcome": f"denominator_{d}",
                    "quantity": "",
                    "kind": "denominator",
                    "item": "",
                    "total_cost_gbp": total,
                    "denominator": den[d],
                    "cost_per_participant_gbp": _per(total, den[d]),
                }
            )
    t = pd.DataFrame(
        recs,
        columns=[
            "scenario",
            "outcome",
            "quantity",
            "kind",
            "item",
            "total_cost_gbp",
            "denominator",
            "cost_per_participant_gbp",
        ],
    )
    t["cost_rating"] = [cost_rating(x) for x in t["cost_per_participant_gbp"]]
    t["changes_rating"] = (t["cost_rating"] != base_rating) & t["cost_rating"].notna()
    rows = []
    for r in t.itertuples(index=False):
        suffix = f"_{r.quantity}" if r.quantity else ""
        note = f"{r.scenario}; price year {year}"
        rows += [
            est_row(
                "sensitivity",
                r.outcome,
                f"cost_per_participant_gbp{suffix}",
                r.cost_per_participant_gbp,
                n=r.denominator,
                note=note,
            ),
            est_row(
                "sensitivity",
                r.outcome,
                f"cost_rating{suffix}",
                r.cost_rating,
                n=r.denominator,
                note="changes the rating" if r.changes_rating else "same rating as the base case",
            ),
        ]
    if len(t):
        rows.append(
            est_row("sensitivity", "any", "scenarios_changing_rating", int(t["changes_rating"].sum()), n=len(t))
        )
    return SensitivityResult(base, base_rating, t, rows, year)
