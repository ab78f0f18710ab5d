"""The process strand's interval rule (process.shares) and the intervals it uses (stats.proportions).

The cluster-robust interval is checked against an independent implementation
(statsmodels OLS of the 0/1 outcome on a constant with cluster-robust
standard errors) and by hand; the rule's choice of interval by hand-made units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from isafe_helpers.process import shares
from isafe_helpers.stats import proportions


def _individuals(k, n):
    """0/1 outcomes and cluster labels with ``k[j]`` ones of ``n[j]`` in cluster ``j``."""
    y, g = [], []
    for j, (kj, nj) in enumerate(zip(k, n)):
        y += [1.0] * kj + [0.0] * (nj - kj)
        g += [j] * nj
    return np.array(y), np.array(g)


@pytest.mark.parametrize(
    "k, n", [((3, 5, 2), (5, 10, 5)), ((7, 1, 12, 4), (9, 6, 15, 4)), ((30, 41, 22, 50, 9), (40, 44, 38, 51, 20))]
)
def test_cluster_ci_matches_statsmodels_cluster_robust_intercept(k, n):
    # For an intercept-only OLS, statsmodels' cluster-robust SE carries G/(G-1) and (N-1)/(N-K) = 1:
    # the ratio estimator's sandwich exactly. The interval is t on G - 1 df.
    y, g = _individuals(k, n)
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": g, "df_correction": True})
    se, lo, hi = proportions.cluster_ci(k, n, bounded=False)
    assert se == pytest.approx(100 * fit.bse[0], rel=1e-10)
    q = stats.t.ppf(0.975, len(k) - 1)
    p = sum(k) / sum(n)
    assert lo == pytest.approx(max(0.0, 100 * (p - q * fit.bse[0])), rel=1e-10)
    assert hi == pytest.approx(100 * (p + q * fit.bse[0]), rel=1e-10)


def test_cluster_ci_clips_a_proportion_but_not_a_ratio_over_100():
    # k = (9, 12), n = (10, 10): p = 1.05 (reach over 100%); residuals -1.5 and 1.5
    se, lo, hi = proportions.cluster_ci([9, 12], [10, 10], bounded=False)
    assert se == pytest.approx(100 * np.sqrt(2 * 4.5 / 400))
    assert hi > 100
    _, _, hi_bounded = proportions.cluster_ci([9, 10], [10, 10])
    assert hi_bounded == 100.0


def test_cluster_ci_needs_two_clusters():
    assert all(np.isnan(proportions.cluster_ci([3, 0], [5, 0])))


def test_wilson_has_no_interval_over_100_percent():
    assert all(np.isnan(proportions.wilson(5, 4)))


def _units(rows):
    return pd.DataFrame(rows, columns=["la", "person_id", "k", "n"])


def test_share_within_one_la_person_level_is_wilson():
    u = _units([("LA01", "a", 1, 1), ("LA01", "b", 0, 1), ("LA01", "c", 1, 1)])
    s = shares.share(u)
    assert (s.k, s.n, s.method, s.n_clusters) == (2, 3, shares.WILSON, None)
    assert (s.ci_low, s.ci_high) == pytest.approx(proportions.wilson(2, 3))
    assert s.note == ""


def test_share_pooled_over_las_is_clustered_by_la():
    u = _units([("LA01", "a", 1, 1), ("LA01", "b", 0, 1), ("LA02", "c", 1, 1), ("LA02", "d", 1, 1)])
    s = shares.share(u)
    assert s.method == shares.BY_LA and s.n_clusters == 2
    assert (s.se, s.ci_low, s.ci_high) == pytest.approx(proportions.cluster_ci([1, 2], [2, 2]))
    assert "LA as the cluster" in s.note


def test_share_of_responses_within_one_la_is_clustered_by_person():
    u = _units([("LA01", "a", 1, 1), ("LA01", "a", 0, 1), ("LA01", "b", 1, 1)])
    s = shares.share(u, person_level=False, within_la="person_id")
    assert s.method == shares.BY_PERSON
    assert (s.se, s.ci_low, s.ci_high) == pytest.approx(proportions.cluster_ci([1, 1], [2, 1]))


def test_share_counting_people_more_than_once_without_a_cluster_has_no_interval_in_one_la():
    u = _units([("LA01", "", 3, 4), ("LA01", "", 2, 2)])
    s = shares.share(u, person_level=False)
    assert s.pct == pytest.approx(500 / 6) and s.method == shares.NO_INTERVAL
    assert np.isnan(s.ci_low) and np.isnan(s.ci_high)


def test_share_of_nothing_is_blank():
    s = shares.share(_units([]))
    assert s.n == 0 and np.isnan(s.pct) and s.method == shares.NO_INTERVAL
