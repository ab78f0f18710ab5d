"""Implementation and process strand: fidelity and quality of delivery.

Delivered over planned elements summed over sessions (a ratio of sums). A
session delivering under :data:`FIDELITY_THRESHOLD_PCT` percent of its
planned elements is listed (by session ID only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import COMPONENTS
from isafe_helpers.data.loading import TrialData
from isafe_helpers.process.result import ProcessResult
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.table import Col

#: Sessions delivering fewer than this share of planned elements are listed.
FIDELITY_THRESHOLD_PCT = 80.0


# --------------------------------------------------------------------------
# Fidelity
# --------------------------------------------------------------------------
def fidelity(data: TrialData) -> ProcessResult:
    """Delivered over planned elements summed over sessions, by component and ``all``.

    Also: mean quality rating (1..5, blank ratings left out), the number of
    sessions below :data:`FIDELITY_THRESHOLD_PCT`, and in ``frames``:
    ``by_la`` (LA x component delivered %), ``sessions`` (each session's
    delivered %) and ``below`` (the sessions under the threshold, by ID).
    """
    fid = data.fidelity.copy()
    fid["delivered_pct"] = 100 * fid["delivered_elements"].astype(float) / fid["planned_elements"].astype(float)
    fid["below"] = fid["delivered_pct"] < FIDELITY_THRESHOLD_PCT
    rows, recs = [], []
    for comp in (*COMPONENTS, "all"):
        sub = fid if comp == "all" else fid[fid["component"] == comp]
        planned = float(sub["planned_elements"].sum())
        delivered = float(sub["delivered_elements"].sum())
        pct = 100 * delivered / planned if planned else np.nan
        q = sub["quality"].dropna().astype(float)
        below = int(sub["below"].sum())
        note = "" if planned else ("no fidelity log returned" if fid.empty else "no sessions logged")
        rows += [
            est_row("fidelity", comp, "delivered_pct", pct, n=len(sub), note=note),
            est_row("fidelity", comp, "sessions", np.nan if fid.empty else len(sub), note=note),
            # the elements planned and delivered, which the fidelity table prints beside the share delivered
            est_row("fidelity", comp, "elements_planned", planned if planned else np.nan, n=len(sub), note=note),
            est_row("fidelity", comp, "elements_delivered", delivered if planned else np.nan, n=len(sub), note=note),
            est_row(
                "fidelity",
                comp,
                "quality_mean",
                q.mean() if len(q) else np.nan,
                n=len(q),
                note=note or ("" if len(q) else "no quality ratings"),
            ),
            est_row(
                "fidelity",
                comp,
                "sessions_below_threshold",
                below if planned else np.nan,
                n=len(sub),
                note=note or f"delivered under {FIDELITY_THRESHOLD_PCT:g}% of planned elements",
            ),
        ]
        recs.append(
            {
                "component": comp,
                "sessions": len(sub),
                "planned": planned,
                "delivered": delivered,
                "delivered_pct": pct,
                "quality_mean": q.mean() if len(q) else np.nan,
                "quality_rated": len(q),
                "below_threshold": below,
            }
        )
    by_la = []
    for la in data.las:
        for comp in (*COMPONENTS, "all"):
            sub = fid[fid["la"] == la]
            sub = sub if comp == "all" else sub[sub["component"] == comp]
            planned = float(sub["planned_elements"].sum())
            by_la.append(
                {
                    "la": la,
                    "component": comp,
                    "sessions": len(sub),
                    "delivered_pct": 100 * float(sub["delivered_elements"].sum()) / planned if planned else np.nan,
                }
            )
    below_tab = fid.loc[fid["below"], ["la", "session_id", "component", "delivered_pct"]]
    frames = {
        "by_la": pd.DataFrame(by_la, columns=["la", "component", "sessions", "delivered_pct"]),
        "sessions": fid[
            ["la", "session_id", "component", "planned_elements", "delivered_elements", "delivered_pct", "quality"]
        ].reset_index(drop=True),
        "below": below_tab.sort_values(["la", "session_id"]).reset_index(drop=True),
    }
    return ProcessResult(
        "fidelity",
        pd.DataFrame(recs),
        rows,
        [
            Col("component", "Component", "text"),
            Col("sessions", "Sessions", "units"),
            Col("planned", "Elements planned", "int"),
            Col("delivered", "Elements delivered", "int"),
            Col("delivered_pct", "Delivered (%)", "pct", 1),
            Col("quality_mean", "Mean quality (1 to 5)", "mean", 2),
            Col("quality_rated", "Sessions rated", "units"),
            Col("below_threshold", "Sessions under the threshold", "units"),
        ],
        "Fidelity and quality of delivery",
        frames=frames,
        quantities={
            "planned": ("elements_planned", "estimate"),
            "delivered": ("elements_delivered", "estimate"),
            "quality_rated": ("quality_mean", "n"),
            "below_threshold": ("sessions_below_threshold", "estimate"),
        },
    )
