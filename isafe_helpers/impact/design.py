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


#: Plain-word reasons an arm comparison cannot be estimated, each shown as ``[x]`` with the reason.
ONE_ARM = "not estimable: one arm only (every analysed team is in the same arm), so the arms cannot be compared"
NO_OUTCOME_VARIANCE = "not estimable: no variance in the outcome (every analysed follow-up score is the same)"
NO_BASELINE_VARIANCE = (
    "not estimable: no variance in the baseline score (every analysed baseline score is the same), "
    "so the model cannot adjust for it"
)
NO_VARIANCE_WITHIN_ARMS = (
    "not estimable: the outcome separates the arms (no variance in the follow-up scores within either arm)"
)


def estimable(df: pd.DataFrame) -> bool:
    """True when the frame has at least two teams in each arm (the arms can be compared)."""
    arms = df.groupby("arm")["team_id"].nunique()
    return len(arms) == 2 and arms.min() >= 2


def _constant(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return len(v) > 0 and bool(np.ptp(v.to_numpy(float)) == 0)


def why_not_estimable(df: pd.DataFrame, outcome: str = "followup", baseline: str | None = "baseline") -> str:
    """Why an arm comparison on the frame cannot be estimated, in plain words (``""`` when it can).

    The reasons, checked in this order: one arm only; fewer than two analysed
    teams in an arm; no variance in the outcome; no variance within either
    arm (the outcome separates the arms); no variance in the baseline score
    (the adjustment the primary model pre-specifies cannot be made: the
    handbook reports the comparison as not estimable rather than silently
    dropping a pre-specified covariate). Each reason starts with
    ``not estimable:``, so tables show ``[x]`` and the note says why.
    """
    if df["arm"].nunique() < 2:
        return ONE_ARM
    if not estimable(df):
        return NOT_ESTIMABLE
    if outcome in df and _constant(df[outcome]):
        return NO_OUTCOME_VARIANCE
    if outcome in df and all(_constant(g) for _, g in df.groupby("arm")[outcome]):
        return NO_VARIANCE_WITHIN_ARMS
    if baseline and baseline in df and _constant(df[baseline]):
        return NO_BASELINE_VARIANCE
    return ""
