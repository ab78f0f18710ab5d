"""The process strand's shares and their intervals: one rule, stated here once.

Every share (reach, satisfaction, practice-pathway attendance) is a ratio
of sums over *units*: ``k`` over ``n`` summed over rows of a units frame
(one row per LA, per person, per feedback response, ...). Its interval:

- **pooled over LAs** (the units come from two or more LAs with ``n`` > 0):
  cluster-robust with the LA as the cluster
  (:func:`isafe_helpers.stats.proportions.cluster_ci`), because delivery,
  attendance and feedback differ by LA;
- **within one LA**, a **person-level share** (every person counted once in
  ``n``): Wilson's;
- **within one LA**, a share that counts a person more than once (feedback
  responses: one per form): cluster-robust with the person as the cluster;
- **within one LA**, places filled (a person counts once per component and
  the intended places are not people one could list): no interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from isafe_helpers.stats.proportions import cluster_ci, wilson

#: How each interval is described in tables and ``estimates.csv`` notes.
WILSON = "Wilson"
BY_LA = "cluster-robust, LA as cluster"
BY_PERSON = "cluster-robust, person as cluster"
NO_INTERVAL = "none"


@dataclass(frozen=True)
class Share:
    """A ratio of sums in percent, with its 95% interval and how it was made."""

    k: float
    n: float
    pct: float
    se: float
    ci_low: float
    ci_high: float
    method: str
    n_clusters: int | None

    @property
    def note(self) -> str:
        """The interval's description for an ``estimates.csv`` note (:func:`interval_note`)."""
        return interval_note(self.method)


def interval_note(method: str) -> str:
    """How an interval was made, for an ``estimates.csv`` note: '' for Wilson's (the default) or none."""
    if method == BY_LA:
        return "95% CI cluster-robust with LA as the cluster"
    if method == BY_PERSON:
        return "95% CI cluster-robust with the person as the cluster"
    return ""


def share(
    units: pd.DataFrame,
    k: str = "k",
    n: str = "n",
    person_level: bool = True,
    within_la: str | None = None,
    bounded: bool = True,
) -> Share:
    """The share ``sum(units[k]) / sum(units[n])`` in percent, with its interval by the module's rule.

    Parameters
    ----------
    units : DataFrame
        One row per counting unit, with an ``la`` column and the columns ``k`` and ``n``.
    person_level : bool
        True when ``n`` counts each person once (Wilson within one LA).
    within_la : str, optional
        For a share that is not person-level: the column to cluster on within
        one LA (``person_id`` for feedback responses); None gives no interval there.
    bounded : bool
        False for a ratio that may exceed 100% (reach): the pooled interval is
        not clipped at 100, and within one LA a value over 100% has no interval.
    """
    kk = float(units[k].sum()) if len(units) else 0.0
    nn = float(units[n].sum()) if len(units) else 0.0
    pct = 100 * kk / nn if nn else np.nan
    per_la = units.groupby("la")[[k, n]].sum() if len(units) else pd.DataFrame(columns=[k, n])
    las = int((per_la[n] > 0).sum())
    se, lo, hi, method = np.nan, np.nan, np.nan, NO_INTERVAL
    if las >= 2:
        se, lo, hi = cluster_ci(per_la[k].to_numpy(), per_la[n].to_numpy(), bounded=bounded)
        method = BY_LA
    elif person_level and nn:
        lo, hi = wilson(kk, nn)
        method = WILSON if not np.isnan(lo) else NO_INTERVAL
    elif within_la is not None and nn:
        per = units.groupby(within_la)[[k, n]].sum()
        se, lo, hi = cluster_ci(per[k].to_numpy(), per[n].to_numpy(), bounded=bounded)
        method = BY_PERSON if not np.isnan(se) else NO_INTERVAL
    return Share(kk, nn, pct, se, lo, hi, method, las if las >= 2 else None)
