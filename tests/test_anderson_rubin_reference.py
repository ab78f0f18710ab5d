"""The CACE's Anderson-Rubin set against R: our own test inversion of lmerTest's Kenward-Roger p.

Reference: ``tests/fixtures/anderson_rubin`` (README). Two bundled frames (bounded sets, through
``impact.cace`` end to end) and a simulated weak first stage (an unbounded set, through
``stats.iv.anderson_rubin_set`` with the primary model's KR p). Tolerance: 1e-5 relative on
the set's ends, each a root of p(b) = 0.05 where the two REML optimisers (lme4's and ours)
stop at slightly different points; differences seen: 1e-7 (trial), 3e-6 (LA07's lower end),
3e-11 elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import cace, primary
from isafe_helpers.impact.primary_model import fit_primary
from isafe_helpers.resources import BUNDLED_DATA
from isafe_helpers.stats.iv import anderson_rubin_set

FIX = Path(__file__).parent / "fixtures" / "anderson_rubin"
RTOL = 1e-5


def _ref(dataset: str) -> pd.Series:
    return pd.read_csv(FIX / "ref.csv", skipinitialspace=True).set_index("dataset").loc[dataset]


@pytest.mark.parametrize("scope, outcome", [("trial", "confidence"), ("LA07", "strategy_effectiveness")])
def test_bounded_set_matches_r(scope, outcome):
    ref = _ref(f"{scope}_{outcome}")
    assert ref["kind"] == "bounded"
    data = load_root(BUNDLED_DATA).for_scope(scope)
    res = cace(data, primary(data, outcome))
    assert res.ar_kind == "bounded"
    assert (res.ci_low, res.ci_high) == pytest.approx((ref["end_1"], ref["end_2"]), rel=RTOL)
    assert res.n == ref["n"]


def test_unbounded_set_of_a_weak_first_stage_matches_r():
    ref = _ref("weak_first_stage")
    d = pd.read_csv(FIX / "data.csv", dtype={"team_id": str, "la": str})
    d = d[d["dataset"] == "weak_first_stage"].reset_index(drop=True)
    d["arm"] = np.where(d["treated"] == 1, "treatment", "control")
    y, comp = d["followup"].to_numpy(float), d["complied"].to_numpy(float)

    def p_of(b: float) -> float:
        return fit_primary(d.assign(followup=y - b * comp), "x", effect_sizes=False).p_value

    limit = p_of_outcome = fit_primary(d.assign(followup=comp), "x", effect_sizes=False).p_value
    assert p_of_outcome == pytest.approx(ref["p_limit"], rel=1e-5)
    ar = anderson_rubin_set(p_of, ref["centre"], 0.5, limit)
    assert ar["kind"] == ref["kind"] and ar["kind"] in ("two rays", "whole line")
    if ar["kind"] == "two rays":
        (lo_ray, hi_ray) = ar["intervals"]
        assert (lo_ray[1], hi_ray[0]) == pytest.approx((ref["end_1"], ref["end_2"]), rel=RTOL)
        assert np.isinf(lo_ray[0]) and np.isinf(hi_ray[1])
    assert np.isnan(ar["ci_low"]) and np.isnan(ar["ci_high"])
