"""Cost strand: ingredients costing, unit costs, the Foundations rating and sensitivity.

Definitions follow the data contract: every row costs quantity x unit cost,
converted to the report's price year (the latest price year in the costs of
the whole data root) through ``deflators.csv`` when rows carry several price
years; the financial cost is every costs row except ``staff_time`` (the
opportunity cost of staff attending training, reported beside it), all
bearers; the unit cost divides it by the participants reached (distinct
participants of treatment teams who attended at least one practice-pathway
session).

Choices the contract leaves open, made here once:

- **Intended participants**: per LA, the larger ``intended_n`` of the two
  practice-pathway components (both sessions are for the same social
  workers, so their sum would count each person twice), summed over LAs.
- **Per team**: per treatment team of the scope.
- **Sensitivity**: each of the :data:`N_LARGEST` largest financial cost
  items (rows grouped by item, category and phase over LAs) is moved by
  +/- :data:`SENSITIVITY_SHARE`; a scale-up scenario drops set-up costs; the
  alternative denominators are intended participants, all treatment-team
  participants and every distinct person who attended any session.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .contract import PRACTICE_PATHWAY
from .estimates import est_row
from .loading import TrialData

#: Foundations cost-rating bands: (rating, lower edge inclusive).
RATING_BANDS = ((1, 0.0), (2, 100.0), (3, 500.0), (4, 1000.0))
#: Upper edge of band 4, inclusive; above it the rating is 5.
TOP_EDGE = 2000.0
#: How many of the largest cost items the sensitivity analysis moves.
N_LARGEST = 5
#: The share by which each of the largest items is moved (plus and minus).
SENSITIVITY_SHARE = 0.20
NO_COSTS = "no cost rows for this scope: nothing is estimated"


def cost_rating(unit_cost: float) -> float:
    """Foundations cost rating of a unit cost in GBP.

    under 100 -> 1; 100 to under 500 -> 2; 500 to under 1,000 -> 3;
    1,000 to 2,000 (inclusive) -> 4; over 2,000 -> 5. NaN in, NaN out.

    >>> [cost_rating(x) for x in (99.99, 100, 499.99, 500, 1000, 2000, 2000.01)]
    [1, 2, 2, 3, 4, 4, 5]
    """
    if unit_cost is None or np.isnan(unit_cost):
        return np.nan
    if unit_cost > TOP_EDGE:
        return 5
    rating = 1
    for r, edge in RATING_BANDS:
        if unit_cost >= edge:
            rating = r
    return rating


NOT_RATED = "not rated"


def rating_labels(ratings) -> list:
    """Ratings for a table: whole numbers, or ``not rated`` where none is computed."""
    return [NOT_RATED if r is None or pd.isna(r) else int(r) for r in ratings]


def report_price_year(data: TrialData) -> int | None:
    """The report's price year: the latest price year in the costs."""
    years = data.costs["price_year"].dropna()
    return int(years.max()) if len(years) else None


def price_label(year: int | None) -> str:
    """Column label stating the price year, e.g. ``GBP (2023 prices)``."""
    return f"GBP ({year} prices)" if year is not None else "GBP"


def with_price_year(df: pd.DataFrame, year: int | None, columns: tuple[str, ...]) -> pd.DataFrame:
    """A display copy of ``df`` whose cost ``columns`` name the price year."""
    return df.rename(columns={c: f"{c.replace('_gbp', '').replace('_', ' ')}, {price_label(year)}" for c in columns})


def costed(data: TrialData, year: int | None = None) -> pd.DataFrame:
    """Costs rows with ``cost_gbp`` = quantity x unit cost in the report's price year.

    A row priced in year y is multiplied by index[report year] / index[y]
    from ``deflators.csv`` (the loader has already refused several price
    years without that file, naming them).
    """
    costs = data.costs.copy()
    year = report_price_year(data) if year is None else year
    factor = pd.Series(1.0, index=costs.index)
    if data.deflators is not None and len(costs) and (costs["price_year"].astype(int) != year).any():
        idx = dict(zip(data.deflators["year"].astype(int), data.deflators["index"].astype(float)))
        factor = costs["price_year"].astype(int).map(lambda y: idx[year] / idx[y]).astype(float)
    costs["cost_gbp"] = costs["quantity"].astype(float) * costs["unit_cost_gbp"].astype(float) * factor
    return costs


def financial(costs: pd.DataFrame) -> pd.DataFrame:
    """The financial cost rows: everything except ``staff_time``."""
    return costs[costs["category"] != "staff_time"]


# --------------------------------------------------------------------------
# Denominators
# --------------------------------------------------------------------------
def _treatment_parts(data: TrialData) -> pd.DataFrame:
    parts = data.participants.merge(data.teams[["team_id", "arm"]], on="team_id")
    return parts[parts["arm"] == "treatment"]


def participants_reached(data: TrialData) -> int:
    """Distinct participants of treatment teams who attended a practice-pathway session."""
    treated = set(_treatment_parts(data)["participant_id"])
    att = data.attendance
    att = att[att["attended"].fillna(False).astype(bool) & att["component"].isin(PRACTICE_PATHWAY)]
    return len(set(att["person_id"]) & treated)


def intended_participants(data: TrialData) -> int:
    """Per LA the larger practice-pathway ``intended_n``, summed over LAs."""
    t = data.ipe_targets[data.ipe_targets["component"].isin(PRACTICE_PATHWAY)]
    return int(t.groupby("la")["intended_n"].max().sum()) if len(t) else 0


def denominators(data: TrialData) -> dict[str, int]:
    """Every denominator a unit cost uses, by name."""
    att = data.attendance[data.attendance["attended"].fillna(False).astype(bool)]
    return {
        "participants_reached": participants_reached(data),
        "intended_participants": intended_participants(data),
        "treatment_participants": int(_treatment_parts(data)["participant_id"].nunique()),
        "attendees_any_session": int(att[["la", "person_id"]].drop_duplicates().shape[0]),
        "treatment_teams": int((data.teams["arm"] == "treatment").sum()),
    }


def with_costs(data: TrialData) -> TrialData:
    """The data of the LAs that returned cost rows (all of ``data`` when every LA did).

    A pooled unit cost divides the cost of the LAs with cost rows by the
    participants of those same LAs, never by those of an LA whose cost is
    unknown.
    """
    las = [la for la in data.las if la in set(data.costs["la"])]
    if not las or len(las) == len(data.las):
        return data
    tables = {k: v[v["la"].isin(las)].reset_index(drop=True) for k, v in data.tables.items()}
    return dataclasses.replace(data, las=las, tables=tables)


def _per(total: float, n: int) -> float:
    return total / n if n else np.nan


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------
@dataclass
class CostResult:
    """Unit-cost analysis of one scope: tables and estimates rows.

    Every table's cost column is labelled with the price year.
    """

    price_year: int | None
    by_phase: pd.DataFrame
    by_category: pd.DataFrame
    rows: list[dict]
    notes: list[str] = field(default_factory=list)
    by_bearer: pd.DataFrame = field(default_factory=pd.DataFrame)
    unit_costs: pd.DataFrame = field(default_factory=pd.DataFrame)
    by_la: pd.DataFrame = field(default_factory=pd.DataFrame)
    category_by_la: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def empty(self) -> bool:
        return bool(self.notes) and self.notes[0] == NO_COSTS


def _la_summary(data: TrialData, year: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per LA: financial total, reached, unit cost and rating; and cost by LA, phase, category."""
    costs = costed(data, year)
    fin = financial(costs)
    recs = []
    for la in data.las:
        sub = data.for_scope(la) if len(data.las) > 1 else data
        total = float(fin.loc[fin["la"] == la, "cost_gbp"].sum())
        has = bool((costs["la"] == la).any())
        reached = participants_reached(sub)
        per = _per(total, reached) if has else np.nan
        recs.append({"la": la, "cost_rows": int((costs["la"] == la).sum()),
                     "total_cost_gbp": total if has else np.nan, "participants_reached": reached,
                     "cost_per_participant_gbp": per, "cost_rating": cost_rating(per)})
    out = pd.DataFrame(recs)
    out["cost_rating"] = rating_labels(out["cost_rating"])
    cat = fin.groupby(["la", "phase", "category"])["cost_gbp"].sum().rename("cost_gbp").reset_index()
    return out, cat


def unit_cost(data: TrialData, price_year: int | None = None) -> CostResult:
    """Totals, unit costs and the cost rating of one scope.

    Rows: the contract's (``unit_cost``: ``total`` ``total_cost_gbp``,
    ``cost_per_participant_gbp``, ``cost_rating``; ``setup`` and
    ``delivery`` ``total_cost_gbp``), then the other denominators, staff
    time beside (``staff_time``) and the unit cost including it
    (``total_with_staff_time``), and totals by category and bearer. With no
    cost rows every row is blank with a note, never an invented number.

    ``price_year`` is the report's price year; by default the latest price
    year in ``data`` (pass the whole data root's, so that every scope of a
    run reports in the same prices).
    """
    year = report_price_year(data) if price_year is None else price_year
    costs = costed(data, year)
    if costs.empty:
        rows = [est_row("unit_cost", o, "total_cost_gbp", note=NO_COSTS) for o in ("total", "setup", "delivery")]
        rows += [est_row("unit_cost", "total", q, note=NO_COSTS) for q in ("cost_per_participant_gbp", "cost_rating")]
        return CostResult(year, pd.DataFrame(), pd.DataFrame(), rows, [NO_COSTS])
    label = price_label(year)
    yr = f"price year {year}"
    fin = financial(costs)
    total = float(fin["cost_gbp"].sum())
    staff = float(costs.loc[costs["category"] == "staff_time", "cost_gbp"].sum())
    den = denominators(with_costs(data))
    reached = den["participants_reached"]
    per = _per(total, reached)
    per_econ = _per(total + staff, reached)
    no_reach = "no participants reached: unit cost not computed"
    rows = [
        est_row("unit_cost", "total", "total_cost_gbp", total, note=yr),
        est_row("unit_cost", "total", "cost_per_participant_gbp", per, n=reached, note=yr if reached else no_reach),
        est_row("unit_cost", "total", "cost_rating", cost_rating(per), n=reached),
        est_row("unit_cost", "total", "participants_reached", reached),
    ]
    for phase in ("setup", "delivery"):
        rows.append(est_row("unit_cost", phase, "total_cost_gbp",
                            float(fin.loc[fin["phase"] == phase, "cost_gbp"].sum()), note=yr))
    other = (
        ("cost_per_intended_participant_gbp", "intended_participants",
         "per intended participant: larger practice-pathway intended_n per LA, summed"),
        ("cost_per_team_gbp", "treatment_teams", "per treatment team"),
    )
    for q, d, what in other:
        rows += [est_row("unit_cost", "total", q, _per(total, den[d]), n=den[d], note=f"{what}; {yr}"),
                 est_row("unit_cost", "total", d, den[d])]
    rows += [
        est_row("unit_cost", "staff_time", "total_cost_gbp", staff,
                note=f"opportunity cost of staff time, not in the financial cost; {yr}"),
        est_row("unit_cost", "total_with_staff_time", "total_cost_gbp", total + staff,
                note=f"financial cost plus staff time, shown beside the financial cost; {yr}"),
        est_row("unit_cost", "total_with_staff_time", "cost_per_participant_gbp", per_econ, n=reached,
                note=f"including staff time; {yr}"),
        est_row("unit_cost", "total_with_staff_time", "cost_rating", cost_rating(per_econ), n=reached,
                note="rating of the unit cost including staff time, for comparison only"),
    ]
    by_cat = costs.pivot_table(index="category", columns="phase", values="cost_gbp", aggfunc="sum", fill_value=0.0)
    by_cat = by_cat.reindex(columns=["setup", "delivery"], fill_value=0.0)
    by_cat["total"] = by_cat.sum(axis=1)
    for cat, r in by_cat.iterrows():
        for q in ("setup", "delivery", "total"):
            rows.append(est_row("cost_by_category", str(cat), f"{q}_cost_gbp", r[q],
                                note=yr + ("; staff time, not in the financial cost" if cat == "staff_time" else "")))
    by_bearer = fin.groupby("bearer")["cost_gbp"].sum()
    for b, v in by_bearer.items():
        rows.append(est_row("cost_by_bearer", str(b), "total_cost_gbp", v, note=yr))
    by_phase = fin.pivot_table(index="phase", values="cost_gbp", aggfunc="sum").reindex(["setup", "delivery"])
    by_phase = by_phase.fillna(0.0).rename(columns={"cost_gbp": label})
    by_phase.loc["total"] = total
    unit_tab = pd.DataFrame([
        {"unit cost": "per participant reached (rated)", "denominator": reached, label: per,
         "rating": cost_rating(per)},
        {"unit cost": "per participant reached, including staff time", "denominator": reached, label: per_econ,
         "rating": cost_rating(per_econ)},
        {"unit cost": "per intended participant", "denominator": den["intended_participants"],
         label: _per(total, den["intended_participants"]),
         "rating": cost_rating(_per(total, den["intended_participants"]))},
        {"unit cost": "per treatment team", "denominator": den["treatment_teams"],
         label: _per(total, den["treatment_teams"]), "rating": np.nan},
    ])
    unit_tab["rating"] = rating_labels(unit_tab["rating"])
    by_la, cat_la = _la_summary(data, year)
    notes = []
    if (by_la["cost_rows"] == 0).any():
        missing = ", ".join(by_la.loc[by_la["cost_rows"] == 0, "la"])
        notes.append(f"{missing}: no cost rows, so no cost is estimated there (not counted as zero), and "
                     "the pooled unit costs divide by the participants of the LAs with cost rows only.")
    return CostResult(
        year, by_phase, by_cat.rename_axis(None, axis=1), rows, notes,
        by_bearer=by_bearer.rename(label).rename_axis("bearer").reset_index(),
        unit_costs=unit_tab, by_la=by_la, category_by_la=cat_la,
    )


# --------------------------------------------------------------------------
# Sensitivity
# --------------------------------------------------------------------------
@dataclass
class SensitivityResult:
    """Unit cost and rating under each scenario, against the base case."""

    base_cost: float
    base_rating: float
    table: pd.DataFrame
    rows: list[dict]
    price_year: int | None

    @property
    def changing(self) -> pd.DataFrame:
        """Scenarios whose rating differs from the base rating."""
        return self.table[self.table["changes_rating"]]

    def summary(self) -> str:
        """One sentence: does any scenario change the rating?"""
        if np.isnan(self.base_rating):
            return "No cost rating is computed for this scope, so no sensitivity analysis is made."
        ch = self.changing
        if ch.empty:
            return (f"None of the {len(self.table)} scenarios changes the cost rating "
                    f"({int(self.base_rating)}).")
        what = "; ".join(f"{r.scenario} gives {int(r.cost_rating)}" for r in ch.itertuples(index=False))
        return (f"{len(ch)} of the {len(self.table)} scenarios change the cost rating "
                f"({int(self.base_rating)}): {what}.")


def largest_items(data: TrialData, n: int = N_LARGEST, price_year: int | None = None) -> pd.DataFrame:
    """The ``n`` largest financial cost items (item, category, phase summed over LAs)."""
    fin = financial(costed(data, price_year))
    g = fin.groupby(["item", "category", "phase"], as_index=False)["cost_gbp"].sum()
    return g.sort_values(["cost_gbp", "item"], ascending=[False, True], kind="stable").head(n).reset_index(drop=True)


def sensitivity(data: TrialData, n_items: int = N_LARGEST, share: float = SENSITIVITY_SHARE,
                price_year: int | None = None) -> SensitivityResult:
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
                recs.append({"scenario": f"{it.item} {'-' if sign < 0 else '+'}{share:.0%}",
                             "outcome": f"largest_item_{rank}", "quantity": f"{tag}_{share * 100:g}pct",
                             "kind": "item", "item": it.item, "total_cost_gbp": c, "denominator": reached,
                             "cost_per_participant_gbp": _per(c, reached)})
        setup = float(fin.loc[fin["phase"] == "setup", "cost_gbp"].sum())
        recs.append({"scenario": "scale-up: no set-up costs", "outcome": "scale_up_no_setup", "quantity": "",
                     "kind": "scale_up", "item": "", "total_cost_gbp": total - setup, "denominator": reached,
                     "cost_per_participant_gbp": _per(total - setup, reached)})
        for d, what in (("intended_participants", "per intended participant"),
                        ("treatment_participants", "per treatment-team participant"),
                        ("attendees_any_session", "per person attending any session")):
            recs.append({"scenario": f"denominator: {what}", "outcome": f"denominator_{d}", "quantity": "",
                         "kind": "denominator", "item": "", "total_cost_gbp": total, "denominator": den[d],
                         "cost_per_participant_gbp": _per(total, den[d])})
    t = pd.DataFrame(recs, columns=["scenario", "outcome", "quantity", "kind", "item", "total_cost_gbp",
                                    "denominator", "cost_per_participant_gbp"])
    t["cost_rating"] = [cost_rating(x) for x in t["cost_per_participant_gbp"]]
    t["changes_rating"] = (t["cost_rating"] != base_rating) & t["cost_rating"].notna()
    rows = []
    for r in t.itertuples(index=False):
        suffix = f"_{r.quantity}" if r.quantity else ""
        note = f"{r.scenario}; price year {year}"
        rows += [
            est_row("sensitivity", r.outcome, f"cost_per_participant_gbp{suffix}", r.cost_per_participant_gbp,
                    n=r.denominator, note=note),
            est_row("sensitivity", r.outcome, f"cost_rating{suffix}", r.cost_rating, n=r.denominator,
                    note="changes the rating" if r.changes_rating else "same rating as the base case"),
        ]
    if len(t):
        rows.append(est_row("sensitivity", "any", "scenarios_changing_rating", int(t["changes_rating"].sum()),
                            n=len(t)))
    return SensitivityResult(base, base_rating, t, rows, year)


def page_text(res: CostResult, sens: SensitivityResult) -> str:
    """Markdown summary of a cost page, glued from the results (never typed by hand).

    With no cost rows it says so and gives no number. A unit cost resting on
    fewer than :func:`~isafe_helpers.disclosure.threshold` participants is withheld.
    """
    from .disclosure import threshold

    if res.empty:
        return ("**This scope has no cost rows.** No cost, unit cost or cost rating is estimated for it, and "
                "its cost rows in estimates.csv are blank with a note. Nothing is filled in or assumed.")
    r = {(x["outcome"], x["quantity"]): x for x in res.rows}
    total = r[("total", "total_cost_gbp")]["estimate"]
    setup, delivery = r[("setup", "total_cost_gbp")]["estimate"], r[("delivery", "total_cost_gbp")]["estimate"]
    staff = r[("staff_time", "total_cost_gbp")]["estimate"]
    reached = r[("total", "participants_reached")]["estimate"]
    text = (f"At {res.price_year} prices, the financial cost is £{total:,.0f} (set-up £{setup:,.0f}, delivery "
            f"£{delivery:,.0f}). Staff time in training, an opportunity cost shown beside it and never inside it, "
            f"comes to £{staff:,.0f}.")
    if reached >= threshold():
        per = r[("total", "cost_per_participant_gbp")]["estimate"]
        per_econ = r[("total_with_staff_time", "cost_per_participant_gbp")]["estimate"]
        rating = r[("total", "cost_rating")]["estimate"]
        text += (f" Per participant reached ({reached:,.0f}) the cost is £{per:,.2f}: Foundations cost rating "
                 f"**{rating:.0f}**. Including staff time it would be £{per_econ:,.2f}. " + sens.summary())
    elif reached > 0:
        text += " Fewer than 10 participants were reached, so the unit cost and rating are withheld on this page."
    else:
        text += " No participant was reached, so no unit cost or rating is computed."
    for n in res.notes:
        text += f"\n\n{n}"
    return text
