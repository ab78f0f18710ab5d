"""Prose built from numbers, for the strand pages: every number read from a published view, none typed.

A prose function takes the views of its tables (the values the book may
publish; withheld ones NaN: :func:`isafe_helpers.publish.report.views`) and
returns Markdown, so a sentence never states a number its tables withhold.
Data-derived text (item names, LA codes) goes through
:func:`isafe_helpers.publish.escape.md`.
"""

from __future__ import annotations

import math

from isafe_helpers.config import threshold
from isafe_helpers.publish.escape import md
from isafe_helpers.publish.tables import number
from isafe_helpers.results.labels import label


def _gbp(x) -> str:
    return number(x, "gbp", 0)


def cost_text(views, price_year, empty: bool, notes: list[str], robustness: str) -> str:
    """The cost page's opening: the financial cost, staff time beside it, the rated unit cost and its robustness.

    Views: the unit-cost table, the cost-by-phase table and the cost-by-category table of
    :class:`~isafe_helpers.cost.costing.CostResult`.
    """
    if empty:
        return (
            "**This scope has no cost rows.** No cost, unit cost or cost rating is estimated for it, and its cost "
            "rows in estimates.csv are blank with a note. Nothing is filled in or assumed."
        )
    unit, phase, cat = views
    by_phase = dict(zip(phase["phase"], phase["cost"]))
    staff = cat.loc[cat["category"] == label("staff_time"), "total"]
    text = (
        f"At {price_year} prices, the financial cost is {_gbp(by_phase.get(label('total')))} (set-up "
        f"{_gbp(by_phase.get(label('setup')))}, delivery {_gbp(by_phase.get(label('delivery')))})."
    )
    if len(staff):
        text += (
            f" Staff time in training, an opportunity cost shown beside the financial cost and never inside it, "
            f"comes to {_gbp(staff.iloc[0])}."
        )
    rated, with_staff = unit.iloc[0], unit.iloc[1]
    reached = rated["denominator"]
    if math.isfinite(rated["cost"]) and math.isfinite(reached):
        text += (
            f" Per participant reached ({number(reached, 'people')}) the cost is {_gbp(rated['cost'])}: Foundations "
            f"cost rating **{md(str(rated['rating']))}**."
        )
        if math.isfinite(with_staff["cost"]):
            text += f" Including staff time it would be {_gbp(with_staff['cost'])}."
        text += " " + md(robustness)
    elif str(rated["rating"]) == "not rated":
        text += " No participant was reached, so no unit cost or rating is computed."
    else:
        text += (
            f" The unit cost and rating are withheld on this page: they rest on fewer than {threshold()} "
            "participants, or would give a withheld count back."
        )
    for n in notes:
        text += f"\n\n{md(n)}"
    return text
