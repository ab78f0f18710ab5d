"""Cost strand: the sensitivity of the unit cost and its Foundations rating.

Every scenario is recomputed to a unit cost per participant and a rating:

- each of the :data:`N_LARGEST` largest financial cost items (rows grouped
  by item, category and phase over LAs) moved by +/- :data:`SENSITIVITY_SHARE`;
- staff time (the opportunity cost of staff attending training, left out of
  the rated financial cost) included in the unit cost, as recorded and moved
  by +/- :data:`SENSITIVITY_SHARE`; made only when staff time was recorded;
- scale-up: set-up costs dropped;
- the alternative denominators: intended participants, all treatment-team
  participants and every distinct person who attended any session.

The sentence on the rating's robustness
(:meth:`SensitivityResult.robustness_sentence`) is computed from all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from isafe_helpers.cost.costing import (
    RATING_BANDS,
    TOP_EDGE,
    _per,
    cost_rating,
    costed,
    denominators,
    financial,
    price_label,
    report_price_year,
    with_costs,
)
from isafe_helpers.data.loading import TrialData
from isafe_helpers.results import keys as K
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
    staff_time: float = np.nan
    base_total: float = np.nan
    base_denominator: float = np.nan
    las: list[str] = field(default_factory=list)  # the LAs whose costs and participants the unit costs use

    def rows(self) -> list[dict]:
        return self.estimates

    def table(self) -> Table:
        """The base case, then one row per scenario: cost counted, people divided by, unit cost, rating."""
        label = price_label(self.price_year)
        base = pd.DataFrame(
            [
                {
                    "scenario": "Base case: financial cost per participant reached (rated)",
                    "total_cost_gbp": self.base_total,
                    "denominator": self.base_denominator,
                    "cost_per_participant_gbp": self.base_cost,
                    "cost_rating": self.base_rating,
                    "changes_rating": False,
                }
            ]
        )
        t = pd.concat([base, self.frame], ignore_index=True) if len(self.frame) else self.frame.iloc[0:0]
        t = t.assign(
            scenario=[x[:1].upper() + x[1:] for x in t["scenario"]],
            changes=["" if i == 0 else ("yes" if c else "no") for i, c in enumerate(t["changes_rating"])],
            cost_rating=pd.to_numeric(t["cost_rating"], errors="coerce"),
        )
        t.loc[t.index == 0, "changes"] = "(base)"
        keys = [self.denominator_key(o) for o in ["base", *self.frame["outcome"]]][: len(t)]
        # each cell's estimates.csv row: the base case is the unit cost's own (cost/unit_cost/total)
        base_fact = {
            "total_cost_gbp": ("unit_cost", "total", "total_cost_gbp", "estimate"),
            "denominator": ("unit_cost", "total", "participants_reached", "estimate"),
            "cost_per_participant_gbp": ("unit_cost", "total", "cost_per_participant_gbp", "estimate"),
            "cost_rating": ("unit_cost", "total", "cost_rating", "estimate"),
        }
        suffixes = [f"_{q}" if q else "" for q in self.frame["quantity"]] if len(self.frame) else []
        scen = list(zip(self.frame["outcome"], suffixes)) if len(self.frame) else []
        shows = {
            col: [
                ("cost", *base_fact[col]),
                *(("cost", "sensitivity", o, f"{q}{x}", fld) for o, x in scen),
            ][: len(t)]
            for col, q, fld in (
                ("total_cost_gbp", "total_cost_gbp", "estimate"),
                ("denominator", "cost_per_participant_gbp", "n"),
                ("cost_per_participant_gbp", "cost_per_participant_gbp", "estimate"),
                ("cost_rating", "cost_rating", "estimate"),
            )
        }
        return Table(
            t[["scenario", "total_cost_gbp", "denominator", "cost_per_participant_gbp", "cost_rating", "changes"]],
            [
                Col("scenario", "Scenario", "text"),
                # the cost counted is the published total moved by a published item's cost: it gives back no
                # count (the unit cost beside it, which would give back the people divided by, is withheld)
                Col("total_cost_gbp", f"Cost counted, {label}", "gbp", 0, plain=True),
                Col("denominator", "Divided by (people)", "people"),
                Col(
                    "cost_per_participant_gbp",
                    f"Unit cost, {label}",
                    "gbp",
                    0,
                    base="denominator",
                    reveals="denominator",
                ),
                Col(
                    "cost_rating", "Foundations cost rating (1 to 5)", "int", base="denominator", reveals="denominator"
                ),
                Col("changes", "Changes the rating", "text"),
            ],
            caption="Sensitivity of the unit cost and its rating",
            keys={"denominator": keys},
            facts=shows,
            notes=[
                "Cost counted: the financial cost (staff time left out) unless the scenario includes staff time, "
                "the opportunity cost of staff attending training.",
            ],
        )

    def denominator_key(self, outcome: str) -> str:
        """The ledger key of the people a scenario divides by (:mod:`isafe_helpers.results.keys`)."""
        if outcome == "denominator_intended_participants":
            return K.key(self.las, "intended", "participants")
        if outcome == "denominator_treatment_participants":
            return K.staff(self.las, "treatment")
        if outcome == "denominator_attendees_any_session":
            return K.key(self.las, "attendees", "any")
        return K.reached(self.las)

    @property
    def changing(self) -> pd.DataFrame:
        """Scenarios whose rating differs from the base rating."""
        return self.frame[self.frame["changes_rating"]]

    def robustness_sentence(self) -> str:
        """How robust the cost rating is, in one or two sentences computed from every scenario.

        Says how many scenarios change the rating and to what, the range of
        unit costs of those that keep it, and which of those comes nearest
        to a band edge; and that no staff-time scenario was made when no
        staff time was recorded.
        """
        if np.isnan(self.base_rating) or self.frame.empty:
            return "No cost rating is computed for this scope, so its robustness is not assessed."
        base, n = int(self.base_rating), len(self.frame)
        ch = self.changing
        keep = self.frame[~self.frame["changes_rating"]]
        if ch.empty:
            text = (
                f"The cost rating ({base}) holds in all {n} sensitivity scenarios, whose unit costs range from "
                f"{_gbp(keep['cost_per_participant_gbp'].min())} to {_gbp(keep['cost_per_participant_gbp'].max())}"
            )
        else:
            what = "; ".join(
                f"{r.scenario} gives {_gbp(r.cost_per_participant_gbp)} (rating {int(r.cost_rating)})"
                for r in ch.itertuples(index=False)
            )
            text = f"The cost rating ({base}) changes in {len(ch)} of the {n} sensitivity scenarios: {what}"
            if len(keep):
                text += (
                    f". It holds in the other {len(keep)}, whose unit costs range from "
                    f"{_gbp(keep['cost_per_participant_gbp'].min())} to {_gbp(keep['cost_per_participant_gbp'].max())}"
                )
        near = _nearest_edge(keep)
        if near is not None:
            r, edge = near
            side = "below" if r.cost_per_participant_gbp < edge else "above"
            text += (
                f". Of these, {r.scenario} comes nearest to a band edge: {_gbp(r.cost_per_participant_gbp)}, "
                f"{_gbp(abs(edge - r.cost_per_participant_gbp))} {side} {_gbp(edge)}"
            )
        text += "."
        if not np.isnan(self.staff_time) and self.staff_time == 0:
            text += " No staff time was recorded, so no staff-time scenario is made."
        return text

    def summary(self) -> str:
        """The robustness sentence (:meth:`robustness_sentence`), under its earlier name."""
        return self.robustness_sentence()


#: The edges between Foundations rating bands, in GBP per participant.
BAND_EDGES = (*(edge for _, edge in RATING_BANDS[1:]), TOP_EDGE)


def _gbp(x: float) -> str:
    return f"£{x:,.0f}"


def _nearest_edge(t: pd.DataFrame):
    """The scenario of ``t`` whose unit cost is nearest to a band edge, and that edge (None if ``t`` is empty)."""
    best = None
    for r in t.itertuples(index=False):
        if np.isnan(r.cost_per_participant_gbp):
            continue
        for edge in BAND_EDGES:
            d = abs(edge - r.cost_per_participant_gbp)
            if best is None or d < best[0]:
                best = (d, r, edge)
    return None if best is None else (best[1], best[2])


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
    (1 - share) and (1 + share) of its cost; staff time included in the
    cost, at 1, (1 - share) and (1 + share) of its recorded cost (when any
    is recorded); scale-up without set-up costs (delivery costs only); and
    the alternative denominators (intended participants, all treatment-team
    participants, every person who attended any session).
    ``changes_rating`` marks a rating that differs from the base case's.
    """
    year = report_price_year(data) if price_year is None else price_year
    costs = costed(data, year)
    fin = financial(costs)
    total = float(fin["cost_gbp"].sum())
    staff = float(costs.loc[costs["category"] == "staff_time", "cost_gbp"].sum())
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
        if staff > 0:
            for factor, tag, name in (
                (1.0, "", "including staff time"),
                (1 - share, f"minus_{share * 100:g}pct", f"including staff time at -{share:.0%}"),
                (1 + share, f"plus_{share * 100:g}pct", f"including staff time at +{share:.0%}"),
            ):
                c = total + factor * staff
                recs.append(
                    {
                        "scenario": name,
                        "outcome": "staff_time_included",
                        "quantity": tag,
                        "kind": "staff_time",
                        "item": "staff time",
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
            # the cost the scenario counts, which the sensitivity table prints beside its unit cost
            est_row("sensitivity", r.outcome, f"total_cost_gbp{suffix}", r.total_cost_gbp, note=note),
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
    return SensitivityResult(
        base,
        base_rating,
        t,
        rows,
        year,
        staff if len(fin) else np.nan,
        total if len(fin) else np.nan,
        reached,
        las=list(with_costs(data).las),
    )
