"""Prose glued into the strand pages from results: every number read from a result, none typed."""

from __future__ import annotations

from isafe_helpers.config import threshold
from isafe_helpers.cost.costing import CostResult
from isafe_helpers.cost.scenarios import SensitivityResult


def cost_text(res: CostResult, sens: SensitivityResult) -> str:
    """Markdown summary of a cost page, glued from the results (never typed by hand).

    With no cost rows it says so and gives no number. A unit cost resting on
    fewer than :func:`~isafe_helpers.publish.disclosure.threshold` participants is withheld.
    """
    if res.empty:
        return (
            "**This scope has no cost rows.** No cost, unit cost or cost rating is estimated for it, and "
            "its cost rows in estimates.csv are blank with a note. Nothing is filled in or assumed."
        )
    r = {(x["outcome"], x["quantity"]): x for x in res.rows()}
    total = r[("total", "total_cost_gbp")]["estimate"]
    setup, delivery = r[("setup", "total_cost_gbp")]["estimate"], r[("delivery", "total_cost_gbp")]["estimate"]
    staff = r[("staff_time", "total_cost_gbp")]["estimate"]
    reached = r[("total", "participants_reached")]["estimate"]
    text = (
        f"At {res.price_year} prices, the financial cost is £{total:,.0f} (set-up £{setup:,.0f}, delivery "
        f"£{delivery:,.0f}). Staff time in training, an opportunity cost shown beside it and never inside it, "
        f"comes to £{staff:,.0f}."
    )
    limit = threshold()
    if reached >= limit:
        per = r[("total", "cost_per_participant_gbp")]["estimate"]
        per_econ = r[("total_with_staff_time", "cost_per_participant_gbp")]["estimate"]
        rating = r[("total", "cost_rating")]["estimate"]
        text += (
            f" Per participant reached ({reached:,.0f}) the cost is £{per:,.2f}: Foundations cost rating "
            f"**{rating:.0f}**. Including staff time it would be £{per_econ:,.2f}. " + sens.summary()
        )
    elif reached > 0:
        text += f" Fewer than {limit} participants were reached, so the unit cost and rating are withheld on this page."
    else:
        text += " No participant was reached, so no unit cost or rating is computed."
    for n in res.notes:
        text += f"\n\n{n}"
    return text
