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

from isafe_helpers.data.contract import PRACTICE_PATHWAY
from isafe_helpers.data.frames import attended, participants_reached, treatment_participants
from isafe_helpers.data.loading import TrialData
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label as lbl
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts

#: Foundations cost-rating bands: (rating, lower edge inclusive).
RATING_BANDS = ((1, 0.0), (2, 100.0), (3, 500.0), (4, 1000.0))


#: Upper edge of band 4, inclusive; above it the rating is 5.
TOP_EDGE = 2000.0


NO_COSTS = "no cost rows for this scope: nothing is estimated"


#: The unit-cost row that divides by treatment teams (not people).
PER_TEAM = "per treatment team"


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


def intended_participants(data: TrialData) -> int:
    """Per LA the larger practice-pathway ``intended_n``, summed over LAs."""
    t = data.ipe_targets[data.ipe_targets["component"].isin(PRACTICE_PATHWAY)]
    return int(t.groupby("la")["intended_n"].max().sum()) if len(t) else 0


def denominators(data: TrialData) -> dict[str, int]:
    """Every denominator a unit cost uses, by name."""
    att = attended(data.attendance)
    return {
        "participants_reached": participants_reached(data),
        "intended_participants": intended_participants(data),
        "treatment_participants": len(treatment_participants(data)),
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
class CostResult(Result):
    """Unit-cost analysis of one scope: estimates rows and display tables.

    Every table's cost column is labelled with the price year.
    """

    price_year: int | None
    by_phase: pd.DataFrame
    by_category: pd.DataFrame
    estimates: list[dict]
    notes: list[str] = field(default_factory=list)
    by_bearer: pd.DataFrame = field(default_factory=pd.DataFrame)
    unit_costs: pd.DataFrame = field(default_factory=pd.DataFrame)
    by_la: pd.DataFrame = field(default_factory=pd.DataFrame)
    category_by_la: pd.DataFrame = field(default_factory=pd.DataFrame)
    las: list[str] = field(default_factory=list)  # the LAs whose costs and participants the unit costs use

    @property
    def empty(self) -> bool:
        return bool(self.notes) and self.notes[0] == NO_COSTS

    def rows(self) -> list[dict]:
        return self.estimates

    def table(self) -> Table:
        """Unit costs per person: per participant reached (rated), with staff time, per intended participant.

        The cost per treatment team divides by teams, not people, so it is
        stated in a note under the table rather than in its people column.
        """
        label = price_label(self.price_year)
        t = self.unit_costs.rename(columns={label: "cost"})
        people = t[t["unit cost"] != PER_TEAM].reset_index(drop=True)
        people["unit cost"] = [u[:1].upper() + u[1:] for u in people["unit cost"]]
        prices = f" at {self.price_year} prices" if self.price_year is not None else ""
        notes = [
            f"Cost per treatment team ({r['denominator']:,.0f} team{'' if r['denominator'] == 1 else 's'}, "
            f"not people): £{r['cost']:,.0f}{prices}."
            for _, r in t[t["unit cost"] == PER_TEAM].iterrows()
            if not pd.isna(r["cost"])
        ]
        people["rating"] = pd.to_numeric(people["rating"], errors="coerce")
        intended = K.key(self.las, "intended", "participants")  # a planned number, shown like a count of people
        keys = [K.reached(self.las) if "reached" in u.lower() else intended for u in people["unit cost"]]
        return Table(
            people,
            [
                Col("unit cost", "Unit cost", "text"),
                Col("denominator", "Divided by (people)", "people"),
                Col("cost", f"Cost per person, {label}", "gbp", 0, base="denominator", reveals="denominator"),
                Col("rating", "Foundations cost rating (1 to 5)", "int", base="denominator", reveals="denominator"),
            ],
            caption="Unit costs and the Foundations cost rating",
            notes=notes,
            keys={"denominator": keys},
            facts=_unit_facts(list(people["unit cost"])),
        )

    def phase_table(self) -> Table:
        """The financial cost by phase and in total."""
        label = price_label(self.price_year)
        t = self.by_phase.reset_index().rename(columns={label: "cost"})
        shows = facts("cost", [("unit_cost", str(p), "total_cost_gbp") for p in t["phase"]], cost="estimate")
        t["phase"] = [lbl(p) for p in t["phase"]]
        return Table(
            t,
            [Col("phase", "Phase", "text"), Col("cost", f"Financial cost, {label}", "gbp", 0)],
            caption="Financial cost by phase",
            facts=shows,
        )

    def category_table(self) -> Table:
        """Cost by category and phase (staff time shown apart from the financial cost)."""
        label = price_label(self.price_year)
        t = self.by_category.reset_index().rename(columns={"index": "category"})
        shows = {
            ph: [("cost", "cost_by_category", str(c), f"{ph}_cost_gbp", "estimate") for c in t["category"]]
            for ph in ("setup", "delivery", "total")
        }
        t["category"] = [lbl(c) for c in t["category"]]
        return Table(
            t,
            [
                Col("category", "Category", "text"),
                *[Col(c, f"{lbl(c)}, {label}", "gbp", 0) for c in ("setup", "delivery", "total")],
            ],
            caption="Cost by category and phase",
            facts=shows,
        )

    def bearer_table(self) -> Table:
        """The financial cost by who bears it."""
        label = price_label(self.price_year)
        t = self.by_bearer.rename(columns={label: "cost"})
        shows = {"cost": [("cost", "cost_by_bearer", str(b), "total_cost_gbp", "estimate") for b in t["bearer"]]}
        t["bearer"] = [lbl(b) for b in t["bearer"]]
        return Table(
            t,
            [Col("bearer", "Borne by", "text"), Col("cost", f"Financial cost, {label}", "gbp", 0)],
            caption="Financial cost by who bears it",
            facts=shows,
        )

    def la_table(self) -> Table:
        """Each LA's financial cost, participants reached, unit cost and rating."""
        label = price_label(self.price_year)
        t = self.by_la.assign(cost_rating=pd.to_numeric(self.by_la["cost_rating"], errors="coerce"))
        return Table(
            t,
            [
                Col("la", "LA", "text"),
                # money counted: the LA's total is published on its own page; the unit cost gives back the people
                Col("total_cost_gbp", f"Financial cost, {label}", "gbp", 0, plain=True),
                Col("participants_reached", "Participants reached", "people"),
                Col(
                    "cost_per_participant_gbp",
                    f"Cost per participant reached, {label}",
                    "gbp",
                    0,
                    base="participants_reached",
                    reveals="participants_reached",
                ),
                Col(
                    "cost_rating",
                    "Foundations cost rating (1 to 5)",
                    "int",
                    base="participants_reached",
                    reveals="participants_reached",
                ),
            ],
            keys={"participants_reached": [K.reached([la]) for la in t["la"]]},
            caption="Unit cost in each LA",
            # each LA's own unit cost (its estimates.csv, cost/unit_cost/total)
            facts={
                col: [(str(la), "cost", "unit_cost", "total", col, "estimate") for la in t["la"]]
                for col in ("total_cost_gbp", "participants_reached", "cost_per_participant_gbp", "cost_rating")
            },
        )


#: The ``estimates.csv`` rows of the unit-cost table's rows (by their label): outcome, unit cost, denominator.
UNIT_ROWS = {
    "per participant reached (rated)": ("total", "cost_per_participant_gbp", "participants_reached"),
    # divided by the participants reached, as the rated unit cost is
    "per participant reached, including staff time": (
        "total_with_staff_time",
        "cost_per_participant_gbp",
        "participants_reached",
    ),
    "per intended participant": ("total", "cost_per_intended_participant_gbp", "intended_participants"),
}


def _unit_facts(labels: list[str]) -> dict:
    """The facts of the unit-cost table: each row's unit cost, rating and denominator (where a row holds it)."""
    rows = [UNIT_ROWS.get(u.lower()) for u in labels]
    out = facts("cost", [("unit_cost", r[0], r[1]) if r else None for r in rows], cost="estimate")
    out |= facts(
        "cost",
        [
            None
            if not r
            else ("unit_cost", r[0], "cost_rating")
            if r[1] == "cost_per_participant_gbp"
            else ("unit_cost", "total", "cost_rating_per_intended_participant")
            for r in rows
        ],
        rating="estimate",
    )
    out |= facts("cost", [("unit_cost", "total", r[2]) if r and r[2] else None for r in rows], denominator="estimate")
    return out


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
        recs.append(
            {
                "la": la,
                "cost_rows": int((costs["la"] == la).sum()),
                "total_cost_gbp": total if has else np.nan,
                "participants_reached": reached,
                "cost_per_participant_gbp": per,
                "cost_rating": cost_rating(per),
            }
        )
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
        rows.append(
            est_row(
                "unit_cost", phase, "total_cost_gbp", float(fin.loc[fin["phase"] == phase, "cost_gbp"].sum()), note=yr
            )
        )
    other = (
        (
            "cost_per_intended_participant_gbp",
            "intended_participants",
            "per intended participant: larger practice-pathway intended_n per LA, summed",
        ),
        ("cost_per_team_gbp", "treatment_teams", "per treatment team"),
    )
    for q, d, what in other:
        rows += [
            est_row("unit_cost", "total", q, _per(total, den[d]), n=den[d], note=f"{what}; {yr}"),
            est_row("unit_cost", "total", d, den[d]),
        ]
    # the rating the unit-cost table prints beside the cost per intended participant
    rows.append(
        est_row(
            "unit_cost",
            "total",
            "cost_rating_per_intended_participant",
            cost_rating(_per(total, den["intended_participants"])),
            n=den["intended_participants"],
            note="rating of the cost per intended participant, for comparison only",
        )
    )
    rows += [
        est_row(
            "unit_cost",
            "staff_time",
            "total_cost_gbp",
            staff,
            note=f"opportunity cost of staff time, not in the financial cost; {yr}",
        ),
        est_row(
            "unit_cost",
            "total_with_staff_time",
            "total_cost_gbp",
            total + staff,
            note=f"financial cost plus staff time, shown beside the financial cost; {yr}",
        ),
        est_row(
            "unit_cost",
            "total_with_staff_time",
            "cost_per_participant_gbp",
            per_econ,
            n=reached,
            note=f"including staff time; {yr}",
        ),
        est_row(
            "unit_cost",
            "total_with_staff_time",
            "cost_rating",
            cost_rating(per_econ),
            n=reached,
            note="rating of the unit cost including staff time, for comparison only",
        ),
    ]
    by_cat = costs.pivot_table(index="category", columns="phase", values="cost_gbp", aggfunc="sum", fill_value=0.0)
    by_cat = by_cat.reindex(columns=["setup", "delivery"], fill_value=0.0)
    by_cat["total"] = by_cat.sum(axis=1)
    for cat, r in by_cat.iterrows():
        for q in ("setup", "delivery", "total"):
            rows.append(
                est_row(
                    "cost_by_category",
                    str(cat),
                    f"{q}_cost_gbp",
                    r[q],
                    note=yr + ("; staff time, not in the financial cost" if cat == "staff_time" else ""),
                )
            )
    by_bearer = fin.groupby("bearer")["cost_gbp"].sum()
    for b, v in by_bearer.items():
        rows.append(est_row("cost_by_bearer", str(b), "total_cost_gbp", v, note=yr))
    # the price year as a number, so that no reader parses it out of a note
    rows.append(est_row("unit_cost", "total", "price_year", year, note="the report's price year"))
    by_phase = fin.pivot_table(index="phase", values="cost_gbp", aggfunc="sum").reindex(["setup", "delivery"])
    by_phase = by_phase.fillna(0.0).rename(columns={"cost_gbp": label})
    by_phase.loc["total"] = total
    unit_tab = pd.DataFrame(
        [
            {
                "unit cost": "per participant reached (rated)",
                "denominator": reached,
                label: per,
                "rating": cost_rating(per),
            },
            {
                "unit cost": "per participant reached, including staff time",
                "denominator": reached,
                label: per_econ,
                "rating": cost_rating(per_econ),
            },
            {
                "unit cost": "per intended participant",
                "denominator": den["intended_participants"],
                label: _per(total, den["intended_participants"]),
                "rating": cost_rating(_per(total, den["intended_participants"])),
            },
            {
                "unit cost": PER_TEAM,
                "denominator": den["treatment_teams"],
                label: _per(total, den["treatment_teams"]),
                "rating": np.nan,
            },
        ]
    )
    unit_tab["rating"] = rating_labels(unit_tab["rating"])
    by_la, cat_la = _la_summary(data, year)
    notes = []
    if (by_la["cost_rows"] == 0).any():
        missing = ", ".join(by_la.loc[by_la["cost_rows"] == 0, "la"])
        notes.append(
            f"{missing}: no cost rows, so no cost is estimated there (not counted as zero), and "
            "the pooled unit costs divide by the participants of the LAs with cost rows only."
        )
    return CostResult(
        year,
        by_phase,
        by_cat.rename_axis(None, axis=1),
        rows,
        notes,
        by_bearer=by_bearer.rename(label).rename_axis("bearer").reset_index(),
        unit_costs=unit_tab,
        by_la=by_la,
        las=list(with_costs(data).las),
        category_by_la=cat_la,
    )
