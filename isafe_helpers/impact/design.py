"""The primary model's design, shared by every analysis of the arm effect.

Follow-up score on an intercept, arm (``treated``, 0/1), the baseline score
and LA fixed effects (the randomisation strata; only when the frame holds
more than one LA), and the rule for when an arm comparison is estimable at
all: at least two analysed teams in each arm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Name of the arm coefficient in every model.
ARM_TERM = "treated"
NOT_ESTIMABLE = "not estimable: needs at least two analysed teams in each arm"


def design(df: pd.DataFrame, covariates: tuple[str, ...] = ("baseline",)) -> tuple[np.ndarray, list[str]]:
    """Fixed-effect design of the primary model: intercept, arm, covariates, LA dummies.

    LA dummies (treatment-coded against the first LA in sorted order) are added
    only when the frame holds more than one LA.
    """
    cols = [np.ones(len(df)), df["treated"].to_numpy(float)]
    names = ["Intercept", ARM_TERM]
    for c in covariates:
        cols.append(df[c].to_numpy(float))
        names.append(c)
    las = sorted(df["la"].unique())
    for la in las[1:]:
        cols.append((df["la"].to_numpy() == la).astype(float))
        names.append(f"la[T.{la}]")
    return np.column_stack(cols), names


def estimable(df: pd.DataFrame) -> bool:
    """True when the frame has at least two teams in each arm (the arms can be compared)."""
    arms = df.groupby("arm")["team_id"].nunique()
    return len(arms) == 2 and arms.min() >= 2
