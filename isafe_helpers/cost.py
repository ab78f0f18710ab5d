"""Cost strand: ingredients costing, unit cost and the Foundations rating.

Definitions follow the data contract: the financial cost is every costs row
except ``staff_time`` (the opportunity cost of staff attending training,
reported beside it), all bearers, in the report's price year; the unit cost
divides it by the participants reached (distinct participants of treatment
teams who attended at least one practice-pathway session).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .contract import PRACTICE_PATHWAY
from .estimates import est_row
from .loading import TrialData

#: Foundations cost-rating bands: (rating, lower edge inclusive).
RATING_BANDS = ((1, 0.0), (2, 100.0), (3, 500.0), (4, 1000.0))


def cost_rating(unit_cost: float) -> float:
    """Foundations cost rating of a unit cost in GBP.

    under 100 -> 1; 100 to under 500 -> 2; 500 to under 1,000 -> 3;
    1,000 to 2,000 (inclusive) -> 4; over 2,000 -> 5. NaN in, NaN out.

    >>> [cost_rating(x) for x in (99.99, 100, 499.99, 500, 1000, 2000, 2000.01)]
    [1, 2, 2, 3, 4, 4, 5]
    """
    if unit_cost is None or np.isnan(unit_cost):
        return np.nan
    if unit_cost > 2000:
        return 5
    rating = 1
    for r, edge in RATING_BANDS:
        if unit_cost >= edge:
            rating = r
    return rating


def report_price_year(data: TrialData) -> int | None:
    """The report's price year: the latest price year in the costs."""
    years = data.costs["price_year"].dropna()
    return int(years.max()) if len(years) else None


def costed(data: TrialData) -> pd.DataFrame:
    """Costs rows with ``cost_gbp`` = quantity x unit cost in the report's price year."""
    costs = data.costs.copy()
    year = report_price_year(data)
    factor = pd.Series(1.0, index=costs.index)
    if data.deflators is not None and costs["price_year"].nunique() > 1:
        idx = dict(zip(data.deflators["year"].astype(int), data.deflators["index"].astype(float)))
        factor = costs["price_year"].astype(int).map(lambda y: idx[year] / idx[y])
    costs["cost_gbp"] = costs["quantity"].astype(float) * costs["unit_cost_gbp"].astype(float) * factor
    return costs


def participants_reached(data: TrialData) -> int:
    """Distinct participants of treatment teams who attended a practice-pathway session."""
    parts = data.participants.merge(data.teams[["team_id", "arm"]], on="team_id")
    treated = set(parts.loc[parts["arm"] == "treatment", "participant_id"])
    att = data.attendance
    att = att[att["attended"].fillna(False).astype(bool) & att["component"].isin(PRACTICE_PATHWAY)]
    return len(set(att["person_id"]) & treated)


@dataclass
class CostResult:
    """Unit-cost analysis: tables by phase and category, and estimates rows."""

    price_year: int | None
    by_phase: pd.DataFrame
    by_category: pd.DataFrame
    rows: list[dict]
    notes: list[str] = field(default_factory=list)


def unit_cost(data: TrialData) -> CostResult:
    """Total financial cost, cost per participant reached and cost rating."""
    costs = costed(data)
    year = report_price_year(data)
    if costs.empty:
        note = "no cost rows for this scope: nothing is estimated"
        rows = [est_row("unit_cost", o, "total_cost_gbp", note=note) for o in ("total", "setup", "delivery")]
        rows += [est_row("unit_cost", "total", q, note=note) for q in ("cost_per_participant_gbp", "cost_rating")]
        return CostResult(year, pd.DataFrame(), pd.DataFrame(), rows, [note])
    fin = costs[costs["category"] != "staff_time"]
    total = float(fin["cost_gbp"].sum())
    reached = participants_reached(data)
    per = total / reached if reached else np.nan
    staff = float(costs.loc[costs["category"] == "staff_time", "cost_gbp"].sum())
    note = f"price year {year}"
    rows = [
        est_row("unit_cost", "total", "total_cost_gbp", total, note=note),
        est_row("unit_cost", "total", "cost_per_participant_gbp", per, n=reached,
                note=note if reached else "no participants reached: unit cost not computed"),
        est_row("unit_cost", "total", "cost_rating", cost_rating(per), n=reached),
        est_row("unit_cost", "total", "participants_reached", reached),
        est_row("unit_cost", "staff_time", "total_cost_gbp", staff,
                note=f"opportunity cost of staff time, not in the financial cost; {note}"),
    ]
    for phase in ("setup", "delivery"):
        rows.append(est_row("unit_cost", phase, "total_cost_gbp",
                            float(fin.loc[fin["phase"] == phase, "cost_gbp"].sum()), note=note))
    by_phase = fin.pivot_table(index="phase", values="cost_gbp", aggfunc="sum").reindex(["setup", "delivery"]).fillna(0.0)
    by_category = costs.pivot_table(index="category", columns="phase", values="cost_gbp", aggfunc="sum", fill_value=0.0)
    return CostResult(year, by_phase, by_category, rows)
