"""Implementation and process strand: reach, who was reached, and dose.

Definitions follow the data contract: pooled (``trial``) and ``all``
figures are ratios of sums, never means of ratios. The choices the contract
leaves open are made here, once, and documented in the book's methods page:

- **Pathway reach** (outcomes ``practice_pathway``, ``system_pathway``):
  the sum over the pathway's components of their distinct attendees over the
  sum of their ``intended_n`` (places filled over places intended, so a person
  attending both practice-pathway sessions fills two places). Components with
  no ``intended_n`` are left out of both sums.
- **Reached** and **dose**: :mod:`isafe_helpers.data.frames` (at least one
  practice-pathway session; sessions attended, 0 to 2). Staff outside the
  participants table count in component reach but not here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import COMPONENTS, PRACTICE_PATHWAY, SYSTEM_PATHWAY
from isafe_helpers.data.frames import attendees, treatment_participants
from isafe_helpers.data.loading import TrialData
from isafe_helpers.process.result import ProcessResult
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.table import Col
from isafe_helpers.stats.proportions import wilson

REACH_COLUMNS = [
    Col("component", "Component", "text"),
    Col("attendees", "Attendees", "people"),
    Col("intended_n", "Intended audience", "people"),
    Col("reach_pct", "Reach (%)", "pct", 1, base="intended_n"),
    Col("ci_low", "95% CI low (%)", "pct", 1, base="intended_n"),
    Col("ci_high", "95% CI high (%)", "pct", 1, base="intended_n"),
    Col("flag", "Note", "text"),
]

#: Pathways and their components (outcome names of the pathway reach rows).
PATHWAYS: dict[str, tuple[str, ...]] = {
    "practice_pathway": PRACTICE_PATHWAY,
    "system_pathway": SYSTEM_PATHWAY,
}


#: Dose groups: practice-pathway sessions attended.
DOSE_LABELS = {0: "none", 1: "one", 2: "both"}


#: Experience bands (years qualified as a social worker): (label, lower, upper).
EXPERIENCE_BANDS = (
    ("under 5 years", 0.0, 5.0),
    ("5 to under 10 years", 5.0, 10.0),
    ("10 to under 20 years", 10.0, 20.0),
    ("20 years or more", 20.0, np.inf),
)


NOT_GIVEN = "not given"


def _reach_records(att: pd.DataFrame, targets: pd.DataFrame) -> list[dict]:
    """Reach of each component and pathway for one set of attendees and targets."""
    k_by = att.groupby("component").size()
    n_by = targets.groupby("component")["intended_n"].sum()
    recs = []
    for comp in (*COMPONENTS, *PATHWAYS):
        comps = PATHWAYS.get(comp, (comp,))
        with_target = [c for c in comps if int(n_by.get(c, 0)) > 0]
        k = int(sum(int(k_by.get(c, 0)) for c in with_target))
        n = int(sum(int(n_by.get(c, 0)) for c in with_target))
        pct = 100 * k / n if n else np.nan
        lo, hi = wilson(k, n)
        flag = ""
        if not n:
            flag = "no intended audience given"
        elif pct > 100:
            flag = "over 100%: more attendees than the intended audience"
        elif len(with_target) < len(comps):
            flag = "some components have no intended audience and are left out"
        recs.append(
            {
                "component": comp,
                "attendees": k,
                "intended_n": n,
                "reach_pct": pct,
                "ci_low": lo,
                "ci_high": hi,
                "flag": flag,
            }
        )
    return recs


def reach(data: TrialData) -> ProcessResult:
    """Reach per component and pathway: distinct attendees over the intended audience.

    Returns the scope's table (five components, then the two pathways) and,
    in ``frames["by_la"]``, the same per LA. Values over 100% are flagged in
    ``flag`` and the note, never capped; they have no Wilson interval.
    """
    att = attendees(data)
    recs = _reach_records(att, data.ipe_targets)
    rows = []
    for r in recs:
        rows += [
            est_row(
                "reach",
                r["component"],
                "reach_pct",
                r["reach_pct"],
                ci_low=r["ci_low"],
                ci_high=r["ci_high"],
                n=r["intended_n"],
                note=r["flag"],
            ),
            est_row("reach", r["component"], "attendees", r["attendees"]),
            est_row("reach", r["component"], "intended_n", r["intended_n"]),
        ]
    by_la = []
    for la in data.las:
        for r in _reach_records(att[att["la"] == la], data.ipe_targets[data.ipe_targets["la"] == la]):
            by_la.append({"la": la, **r})
    return ProcessResult(
        "reach",
        pd.DataFrame(recs),
        rows,
        REACH_COLUMNS,
        "Reach of each component and pathway",
        frames={"by_la": pd.DataFrame(by_la)},
    )


def experience_band(years: pd.Series) -> pd.Series:
    """Label years qualified with :data:`EXPERIENCE_BANDS` (blank: ``not given``)."""
    y = pd.to_numeric(years, errors="coerce").astype(float)
    out = pd.Series(NOT_GIVEN, index=years.index, dtype=object)
    for label, lo, hi in EXPERIENCE_BANDS:
        out[(y >= lo) & (y < hi)] = label
    return out


def reached_profile(data: TrialData) -> ProcessResult:
    """Who was reached among treatment-team participants, by role, age band and experience.

    Reached means at least one practice-pathway session attended. Each row of
    the table is one group: reached, not reached, total and the reached share.
    """
    tp = treatment_participants(data)
    tp["role_"] = tp["role"].astype(object)
    tp["age_band_"] = tp["age_band"].astype(object).where(tp["age_band"].notna(), NOT_GIVEN)
    tp["experience_"] = experience_band(tp["years_qualified"])
    recs = [
        {
            "characteristic": "all",
            "group": "all",
            "reached": int(tp["reached"].sum()),
            "not_reached": int((~tp["reached"]).sum()),
        }
    ]
    for char, col, order in (
        ("role", "role_", None),
        ("age_band", "age_band_", None),
        ("experience", "experience_", [b[0] for b in EXPERIENCE_BANDS] + [NOT_GIVEN]),
    ):
        groups = order or sorted(tp[col].unique(), key=lambda g: (g == NOT_GIVEN, g))
        for g in groups:
            sub = tp[tp[col] == g]
            if len(sub) == 0:
                continue
            recs.append(
                {
                    "characteristic": char,
                    "group": g,
                    "reached": int(sub["reached"].sum()),
                    "not_reached": int((~sub["reached"]).sum()),
                }
            )
    t = pd.DataFrame(recs, columns=["characteristic", "group", "reached", "not_reached"])
    t["total"] = t["reached"] + t["not_reached"]
    t["reached_pct"] = np.where(t["total"] > 0, 100 * t["reached"] / t["total"].where(t["total"] > 0), np.nan)
    rows = []
    for r in t.itertuples(index=False):
        outcome = "all" if r.characteristic == "all" else f"{r.characteristic}:{r.group}"
        lo, hi = wilson(r.reached, r.total)
        rows += [
            est_row(
                "reach_profile",
                outcome,
                "reached_pct",
                r.reached_pct,
                ci_low=lo,
                ci_high=hi,
                n=r.total,
                note="treatment-team participants with at least one practice-pathway session",
            ),
            est_row("reach_profile", outcome, "reached", r.reached),
            est_row("reach_profile", outcome, "not_reached", r.not_reached),
        ]
    return ProcessResult(
        "reach_profile",
        t,
        rows,
        [
            Col("characteristic", "Characteristic", "text"),
            Col("group", "Group", "text"),
            Col("reached", "Reached", "people"),
            Col("not_reached", "Not reached", "people"),
            Col("total", "Intervention-team staff", "people"),
            Col("reached_pct", "Reached (%)", "pct", 1, base="total"),
        ],
        "Who was reached among intervention-team staff",
        sums={"total": ("reached", "not_reached")},
    )


def dose(data: TrialData) -> ProcessResult:
    """Practice-pathway sessions attended per treatment-team participant: none, one, both.

    The table has one row per LA and one for the scope (``all``), with counts
    and shares of each dose group.
    """
    tp = treatment_participants(data)
    recs = []
    for la in [*data.las, "all"]:
        sub = tp if la == "all" else tp[tp["la"] == la]
        rec = {"la": la, "participants": len(sub)}
        for d, label in DOSE_LABELS.items():
            rec[label] = int((sub["dose"] == d).sum())
        for label in DOSE_LABELS.values():
            rec[f"{label}_pct"] = 100 * rec[label] / len(sub) if len(sub) else np.nan
        recs.append(rec)
    t = pd.DataFrame(recs)
    if len(data.las) == 1:
        t = t[t["la"] == "all"].reset_index(drop=True)
    scope_row = t[t["la"] == "all"].iloc[0]
    n = int(scope_row["participants"])
    note = "" if n else "no treatment-team participants"
    rows = []
    for label in DOSE_LABELS.values():
        rows += [
            est_row("dose", label, "participants", scope_row[label], n=n, note=note),
            est_row("dose", label, "share_pct", scope_row[f"{label}_pct"], n=n, note=note),
        ]
    return ProcessResult(
        "dose",
        t,
        rows,
        [
            Col("la", "LA", "text"),
            Col("participants", "Intervention-team staff", "people"),
            *[Col(d, f"{d.capitalize()} (staff)", "people") for d in DOSE_LABELS.values()],
            *[Col(f"{d}_pct", f"{d.capitalize()} (%)", "pct", 1, base="participants") for d in DOSE_LABELS.values()],
        ],
        "Practice-pathway sessions attended",
        sums={"participants": tuple(DOSE_LABELS.values())},
    )
