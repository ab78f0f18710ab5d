"""Whether follow-up has arrived: the baseline report and the full report.

A data root (or one scope of it) **has no follow-up yet** when no row of its
``survey`` or ``casefile_audit`` tables is of the ``followup`` wave. It is
valid: the handbook then publishes the baseline report (the trial flow to
date, baseline balance, the ICC at baseline, the MDES at randomisation,
delivery and costs so far) and no outcome analysis. A participant without a
follow-up row in a root that has some is attrition (data contract). Where
some LAs have follow-up and others have none, the pooled trial is the full
report (the staff of those LAs count as lost to follow-up), each of those
LAs' own pages is a baseline report, and validation warns naming them
(:data:`isafe_helpers.data.contract.FOLLOWUP_RULES`, on the data dictionary).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pandas as pd

#: The two kinds of report: before follow-up, and with it.
ReportStatus = Literal["baseline", "full"]

#: The reason every outcome analysis gives before follow-up (the not-estimable vocabulary).
NO_FOLLOWUP = "no follow-up yet"

#: The tables whose ``followup`` rows make the outcome data.
OUTCOME_TABLES = ("survey", "casefile_audit")


def _las_with_followup(tables: Mapping[str, pd.DataFrame]) -> set[str]:
    las: set[str] = set()
    for name in OUTCOME_TABLES:
        t = tables.get(name)
        if t is not None and len(t) and "wave" in t and "la" in t:
            las |= set(t.loc[t["wave"] == "followup", "la"].astype(str))
    return las


def has_followup(tables: Mapping[str, pd.DataFrame]) -> bool:
    """True when any ``survey`` or ``casefile_audit`` row is of the follow-up wave."""
    for name in OUTCOME_TABLES:
        t = tables.get(name)
        if t is not None and len(t) and "wave" in t and bool((t["wave"] == "followup").any()):
            return True
    return False


def awaits_followup(data) -> bool:
    """True when a :class:`~isafe_helpers.data.loading.TrialData` (or one scope of it) has no follow-up row yet."""
    return not has_followup(data.tables)


def report_status(tables: Mapping[str, pd.DataFrame]) -> ReportStatus:
    """``"full"`` once any follow-up row has arrived, else ``"baseline"``."""
    return "full" if has_followup(tables) else "baseline"


def followup_warnings(tables: Mapping[str, pd.DataFrame], las: list[str]) -> list[str]:
    """Validation warnings on missing follow-up: none in the root, or none in some LAs (module docstring)."""
    if not has_followup(tables):
        return [
            "no follow-up yet: no LA's survey or casefile_audit file has a 'followup' row, so the book is the "
            "baseline report (no outcome is analysed until follow-up rows arrive)"
        ]
    missing = [la for la in las if la not in _las_with_followup(tables)]
    if not missing:
        return []
    return [
        f"no follow-up yet in {len(missing)} LA(s): {', '.join(missing)} (no 'followup' row in their survey or "
        "casefile_audit file): their staff count as lost to follow-up in the pooled trial, and their own pages "
        "are a baseline report"
    ]


def statuses(tables: Mapping[str, pd.DataFrame], las: list[str]) -> dict[str, ReportStatus]:
    """The report of the pooled trial (``trial``) and of each LA: ``baseline`` or ``full``."""
    got = _las_with_followup(tables)
    out: dict[str, ReportStatus] = {"trial": "full" if got else "baseline"}
    out.update({la: ("full" if la in got else "baseline") for la in las})
    return out
