"""Impact strand: the distribution of change from baseline in each arm, as summary statistics only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import TrialData

#: Percentiles drawn as the whiskers of the change box plots (never the extremes, which are one person's value).
CHANGE_WHISKERS = (10, 90)


def change_summary(data: TrialData) -> pd.DataFrame:
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
    out = pd.DataFrame(recs)
    out.attrs["las"] = list(data.las)  # the scope's LAs: the table's ledger keys
    return out
