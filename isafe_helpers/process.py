"""Implementation and process strand: reach, satisfaction and fidelity.

Definitions follow the data contract: pooled (``trial``) and ``all``
figures are ratios of sums, never means of ratios.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from .contract import COMPONENTS
from .estimates import est_row
from .loading import TrialData


@dataclass
class ProcessResult:
    """One process analysis: a display table and its estimates rows."""

    analysis: str
    table: pd.DataFrame
    rows: list[dict]
    notes: list[str] = field(default_factory=list)


def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson 95% interval for k successes of n, in percent (NaN if n == 0).

    Values of k above n (reach over 100%) have no binomial interval: NaN.
    """
    if n <= 0 or k > n:
        return (np.nan, np.nan)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return (100 * lo, 100 * hi)


def attendees(data: TrialData) -> pd.DataFrame:
    """Distinct (LA, person, component) with at least one attended session."""
    att = data.attendance
    att = att[att["attended"].fillna(False).astype(bool)]
    return att[["la", "person_id", "component"]].drop_duplicates()


def reach(data: TrialData) -> ProcessResult:
    """Reach per component: distinct attendees over the intended audience.

    Values over 100% are flagged in the note, not capped.
    """
    att = attendees(data).groupby("component").size()
    targets = data.ipe_targets.groupby("component")["intended_n"].sum()
    rows, recs = [], []
    for comp in COMPONENTS:
        k = int(att.get(comp, 0))
        n = int(targets.get(comp, 0))
        pct = 100 * k / n if n else np.nan
        lo, hi = wilson(k, n)
        note = ""
        if not n:
            note = "no intended audience given for this component"
        elif pct > 100:
            note = "over 100%: more attendees than the intended audience"
        rows += [
            est_row("reach", comp, "reach_pct", pct, ci_low=lo, ci_high=hi, n=n, note=note),
            est_row("reach", comp, "attendees", k),
            est_row("reach", comp, "intended_n", n),
        ]
        recs.append({"component": comp, "attendees": k, "intended_n": n, "reach_pct": pct,
                     "ci_low": lo, "ci_high": hi, "flag": note})
    return ProcessResult("reach", pd.DataFrame(recs), rows)


def satisfaction(data: TrialData) -> ProcessResult:
    """Share of feedback rows answering 4 or 5 (fairly or very satisfied)."""
    fb = data.feedback
    rows, recs = [], []
    note_none = "no feedback returned" if fb.empty else ""
    for comp in (*COMPONENTS, "all"):
        sub = fb if comp == "all" else fb[fb["component"] == comp]
        n = int(sub["satisfaction"].notna().sum())
        k = int((sub["satisfaction"] >= 4).sum())
        pct = 100 * k / n if n else np.nan
        lo, hi = wilson(k, n)
        note = note_none or ("" if n else "no feedback for this component")
        rows += [
            est_row("satisfaction", comp, "satisfied_pct", pct, ci_low=lo, ci_high=hi, n=n, note=note),
            est_row("satisfaction", comp, "respondents", n),
        ]
        recs.append({"component": comp, "respondents": n, "satisfied": k, "satisfied_pct": pct,
                     "ci_low": lo, "ci_high": hi})
    return ProcessResult("satisfaction", pd.DataFrame(recs), rows)


def fidelity(data: TrialData) -> ProcessResult:
    """Delivered over planned elements, summed over sessions."""
    fid = data.fidelity
    rows, recs = [], []
    for comp in (*COMPONENTS, "all"):
        sub = fid if comp == "all" else fid[fid["component"] == comp]
        planned = float(sub["planned_elements"].sum())
        delivered = float(sub["delivered_elements"].sum())
        pct = 100 * delivered / planned if planned else np.nan
        note = "" if planned else ("no fidelity log returned" if fid.empty else "no sessions logged")
        rows.append(est_row("fidelity", comp, "delivered_pct", pct, n=len(sub), note=note))
        recs.append({"component": comp, "sessions": len(sub), "planned": planned,
                     "delivered": delivered, "delivered_pct": pct})
    return ProcessResult("fidelity", pd.DataFrame(recs), rows)
