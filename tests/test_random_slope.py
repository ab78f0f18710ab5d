"""REML with a team random intercept and an LA random arm slope (:mod:`isafe_helpers.stats.random_slope`)
against lme4 (committed values, tests/fixtures/random_slope; R not needed). Tolerances in the fixture README."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isafe_helpers.stats.random_slope import fit_team_and_slope

FIX = Path(__file__).resolve().parent / "fixtures" / "random_slope"


def _fit(name):
    d = pd.read_csv(FIX / "data.csv")
    g = d[d["dataset"] == name]
    las = sorted(g["la"].unique())
    X = np.column_stack([np.ones(len(g)), g["arm"], g["baseline"]] + [(g["la"] == la).astype(float) for la in las[1:]])
    ref = pd.read_csv(FIX / "ref.csv")
    ref = ref[ref["dataset"] == name].set_index("quantity")["value"]
    return fit_team_and_slope(g["y"], X, g["team"], g["la"], g["arm"]), ref


@pytest.mark.parametrize("name", ["spread", "flat", "boundary"])
def test_random_slope_reml_matches_lme4(name):
    r, ref = _fit(name)
    assert r["converged"]
    assert r["reml_criterion"] == pytest.approx(ref["reml_criterion"], rel=1e-9)
    assert r["beta"][1] == pytest.approx(ref["beta_arm"], rel=1e-5)
    assert r["beta"][2] == pytest.approx(ref["beta_baseline"], rel=1e-5)
    assert np.sqrt(r["cov_beta"][1, 1]) == pytest.approx(ref["se_arm"], rel=1e-5)
    assert np.sqrt(r["cov_beta"][2, 2]) == pytest.approx(ref["se_baseline"], rel=1e-5)
    for k in ("team_variance", "slope_variance", "residual_variance"):
        assert r[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-8), k


def test_random_slope_rejects_a_team_in_two_las():
    with pytest.raises(ValueError, match="one LA"):
        fit_team_and_slope(
            np.arange(6.0), np.ones((6, 1)), [1, 1, 1, 2, 2, 2], ["a", "a", "b", "b", "b", "b"], [1, 1, 1, 0, 0, 0]
        )
