"""Impact strand: the distribution of change from baseline in each arm, as summary statistics only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table

#: Percentiles drawn as the whiskers of the change box plots (never the extremes, which are one person's value).
CHANGE_WHISKERS = (10, 90)

#: The summary statistics of a row of :class:`ChangeSummary`, in the table's order, with their labels.
SUMMARY_LABELS = {
    "p_low": "10th percentile",
    "q1": "25th percentile",
    "median": "Median",
    "q3": "75th percentile",
    "p_high": "90th percentile",
    "mean": "Mean",
}


#: The ``estimates.csv`` quantity (before ``_<arm>``) of each summary statistic.
QUANTITY = {"p_low": "p10", "q1": "p25", "median": "median", "q3": "p75", "p_high": "p90", "mean": "mean"}


@dataclass
class ChangeSummary(Result):
    """The change-from-baseline summaries of :func:`change_summary`.

    ``summary``: one row per scale and arm (``outcome``, ``arm``, ``n``, ``mean``, ``p_low``, ``q1``,
    ``median``, ``q3``, ``p_high``); ``las``: the scope's LAs (the table's ledger keys). Its
    ``estimates.csv`` rows are what the figure draws (analysis ``change_distribution``, one row per
    scale, arm and statistic: ``mean_<arm>``, ``p10_<arm>``, ``p25_<arm>``, ``median_<arm>``,
    ``p75_<arm>``, ``p90_<arm>``, with the arm's staff as ``n``): descriptive, no individual's value.
    """

    summary: pd.DataFrame
    las: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        out = []
        for r in self.summary.itertuples(index=False):
            for col in SUMMARY_LABELS:
                out.append(
                    est_row(
                        "change_distribution",
                        r.outcome,
                        f"{QUANTITY[col]}_{r.arm}",
                        getattr(r, col),
                        n=r.n,
                        note="follow-up minus baseline over the analysed sample; descriptive",
                    )
                )
        return out

    def table(self) -> Table:
        """The summaries as a table (the figure's values and the published numbers)."""
        s = self.summary
        keys = {"n": [K.analysed(self.las, o, a) for o, a in zip(s["outcome"], s["arm"])]} if self.las else {}
        t = s.assign(outcome=[label(o) for o in s["outcome"]], arm=[label(a) for a in s["arm"]])
        stat: dict[str, Any] = dict(kind="number", digits=2, base="n")
        return Table(
            t,
            [
                Col("outcome", "Outcome", "text"),
                Col("arm", "Arm", "text"),
                Col("n", "Staff analysed", "people"),
                *[Col(key, name, **stat) for key, name in SUMMARY_LABELS.items()],
            ],
            caption="Change from baseline (follow-up minus baseline, scale points) by arm",
            keys=keys,
            facts={
                "n": [("impact", "change_distribution", o, f"mean_{a}", "n") for o, a in zip(s["outcome"], s["arm"])],
                **{
                    col: [
                        ("impact", "change_distribution", o, f"{QUANTITY[col]}_{a}", "estimate")
                        for o, a in zip(s["outcome"], s["arm"])
                    ]
                    for col in SUMMARY_LABELS
                },
            },
        )


def change_summary(data: TrialData) -> ChangeSummary:
    """Distribution of change (follow-up minus baseline) by scale and arm, as summary statistics only.

    One row per scale and arm of the analysed sample (both waves scored): ``n``,
    ``mean``, and the 10th, 25th, 50th, 75th and 90th percentiles (linear
    interpolation). No individual value is returned: the whiskers of the box
    plot are the 10th and 90th percentiles, not the extremes. Publishing
    withholds an arm resting on fewer people than the disclosure threshold.
    """
    lo, hi = CHANGE_WHISKERS
    recs = []
    for scale in data.instrument.scale_names:
        df = analysis_frame(data, scale)
        for arm in ("treatment", "control"):
            ch = (df.loc[df["arm"] == arm, "followup"] - df.loc[df["arm"] == arm, "baseline"]).to_numpy(float)
            q = np.percentile(ch, [lo, 25, 50, 75, hi]) if len(ch) else [np.nan] * 5
            recs.append(
                dict(
                    outcome=scale,
                    arm=arm,
                    n=len(ch),
                    mean=float(ch.mean()) if len(ch) else np.nan,
                    p_low=q[0],
                    q1=q[1],
                    median=q[2],
                    q3=q[3],
                    p_high=q[4],
                )
            )
    return ChangeSummary(pd.DataFrame(recs), list(data.las))
