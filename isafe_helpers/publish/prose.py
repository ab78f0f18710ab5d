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

#: Foundations' words for its cost ratings.
RATING_LABELS = {1: "low cost", 2: "medium-low cost", 3: "medium cost", 4: "medium-high cost", 5: "high cost"}


def _gbp(x) -> str:
    return number(x, "gbp", 0)


def robustness(sens) -> str:
    """How robust the cost rating is, from the published view of the sensitivity table (every scenario).

    Counts the scenarios that change the rating and says to what; scenarios
    whose unit cost is withheld are counted as withheld, never read.
    """
    base, rest = sens.iloc[0], sens.iloc[1:]
    if not math.isfinite(base["cost_rating"]) or rest.empty:
        return "No cost rating is published for this scope, so its robustness is not assessed."
    shown = rest[rest["cost_rating"].notna()]
    moved = shown[shown["cost_rating"] != base["cost_rating"]]
    text = f"Of the {len(rest)} sensitivity scenarios, "
    if moved.empty:
        text += f"none that can be published changes the cost rating ({base['cost_rating']:.0f})"
    else:
        which = "; ".join(f"{md(r.scenario.lower())} gives {r.cost_rating:.0f}" for r in moved.itertuples())
        verb = "changes" if len(moved) == 1 else "change"
        text += f"{len(moved)} {verb} the cost rating ({base['cost_rating']:.0f}): {which}"
    withheld = len(rest) - len(shown)
    verb = "is" if withheld == 1 else "are"
    return text + (f"; {withheld} {verb} withheld (too few people)." if withheld else ".")


def cost_text(views, price_year, empty: bool, notes: list[str]) -> str:
    """The cost page's opening: the financial cost, staff time beside it, the rated unit cost and its robustness.

    Views: the unit-cost table, the cost-by-phase table, the cost-by-category table of
    :class:`~isafe_helpers.cost.costing.CostResult` and the sensitivity table of
    :class:`~isafe_helpers.cost.scenarios.SensitivityResult`.
    """
    if empty:
        return (
            "**This scope has no cost rows.** No cost, unit cost or cost rating is estimated for it, and its cost "
            "rows in estimates.csv are blank with a note. Nothing is filled in or assumed."
        )
    unit, phase, cat, sens = views
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
            f"cost rating **{rated['rating']:.0f}**, {RATING_LABELS.get(int(rated['rating']), '')}."
        )
        if math.isfinite(with_staff["cost"]):
            text += f" Including staff time it would be {_gbp(with_staff['cost'])}."
        text += " " + robustness(sens)
    elif reached == 0:
        text += " No participant was reached, so no unit cost or rating is computed."
    else:
        text += (
            f" The unit cost and rating are withheld on this page: they rest on fewer than {threshold()} "
            "participants, or would give a withheld count back."
        )
    for n in notes:
        text += f"\n\n{md(n)}"
    return text


def missing_data_text(views) -> str:
    """The tipping-point sentences of the missing-data section, from the published view of its model table.

    View: :meth:`isafe_helpers.impact.missing_data.MissingData.model_table`
    (``outcome`` a label, ``tipping`` the signed delta in SD units, NaN where
    blank or withheld). A withheld tipping point is not read.
    """
    (tab,) = views
    tipped = tab[tab["tipping"].notna()]
    rest = tab[tab["tipping"].isna()]
    parts = []
    for r in tipped.itertuples():
        way = "lower" if r.tipping < 0 else "higher"
        parts.append(
            f"For {md(r.outcome.lower())}, the 95% CI first includes 0 when the intervention arm's non-responders "
            f"are assumed to score {number(abs(r.tipping), 'number', 2)} SD {way} at follow-up than missing at "
            f"random predicts (tipping point {number(r.tipping, 'number', 2)} SD)."
        )
    if len(rest):
        names = ", ".join(md(o.lower()) for o in rest["outcome"])
        parts.append(
            f"No tipping point is given for {names}: the interval already includes 0 under missing at random, "
            "the analysis is not estimable, or it is withheld (see the table's notes)."
        )
    if len(tipped):
        parts.append(
            "The smaller the tipping point in size, the more a conclusion rests on missing follow-up scores "
            "being missing at random."
        )
    return " ".join(parts)
