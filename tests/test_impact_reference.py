"""Impact analyses against independent R references (committed values; R not needed).

Fixture: tests/fixtures/impact_r (data made by make_impact_data.py, values by
make_fixtures.R with clubSandwich 0.5.8, geepack 1.3.9, AER 1.2-10,
sandwich 3.0-2 on R 4.2.2).

Tolerances:
- CR2 (clubSandwich ``coef_test(vcov = "CR2", test = "Satterthwaite")``):
  estimate, SE, df and p at rtol 1e-8 (same closed forms).
- 2SLS with CR1 team-clustered SE (AER ``ivreg`` + sandwich ``vcovCL(type = "HC1")``): rtol 1e-8.
- GEE (geepack ``geeglm``, exchangeable): coefficients, robust SEs, working
  correlation, risk difference and its delta-method SE at rtol 1e-5 (both
  iterate to a convergence tolerance, so agreement is to the optimiser's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isafe_helpers.stats.cluster_robust import cr2
from isafe_helpers.stats.gee import gee_binary
from isafe_helpers.stats.iv import tsls_clustered

FIX = Path(__file__).resolve().parent / "fixtures" / "impact_r"


def _ref(check: str) -> pd.DataFrame:
    r = pd.read_csv(FIX / "ref_values.csv")
    return r[r["check"] == check].set_index("term")


def _cont():
    d = pd.read_csv(FIX / "data_cont.csv", dtype={"team": str, "la": str})
    W = np.column_stack([np.ones(len(d)), d["baseline"], d["la"] == "LA2", d["la"] == "LA3"]).astype(float)
    return d, W


def test_cr2_matches_clubsandwich():
    d, W = _cont()
    X = np.column_stack([W[:, :1], d["arm"].to_numpy(float), W[:, 1:]])
    f = cr2(d["y"].to_numpy(float), X, d["team"])
    ref = _ref("cr2").loc[["(Intercept)", "arm", "baseline", "laLA2", "laLA3"]]
    np.testing.assert_allclose(f["beta"], ref["estimate"], rtol=1e-8)
    np.testing.assert_allclose(f["se"], ref["se"], rtol=1e-8)
    np.testing.assert_allclose(f["df"], ref["df"], rtol=1e-8)


def test_tsls_clustered_matches_aer_and_sandwich():
    d, W = _cont()
    f = tsls_clustered(d["y"].to_numpy(float), d["complied"].to_numpy(float), d["arm"].to_numpy(float), W, d["team"])
    ref = _ref("iv").loc["complied"]
    assert f["beta"] == pytest.approx(ref["estimate"], rel=1e-8)
    assert f["se"] == pytest.approx(ref["se"], rel=1e-8)
    assert f["G"] == d["team"].nunique()


def test_gee_matches_geepack():
    f = pd.read_csv(FIX / "data_files.csv", dtype={"team": str, "la": str}).sort_values("team", kind="stable")
    X = pd.DataFrame({"const": 1.0, "arm": f["arm"].astype(float), "base": f["base"],
                      "laLA2": (f["la"] == "LA2").astype(float), "laLA3": (f["la"] == "LA3").astype(float)})
    out = gee_binary(f["y"].to_numpy(float), np.ones(len(f)), X, f["team"].to_numpy(), "arm")
    ref = _ref("gee")
    names = ["(Intercept)", "arm", "base", "laLA2", "laLA3"]
    np.testing.assert_allclose(out["params"], ref.loc[names, "estimate"], rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(out["cov"])), ref.loc[names, "se"], rtol=1e-5)
    assert out["alpha"] == pytest.approx(ref.loc["alpha", "estimate"], rel=1e-5)
    assert out["odds_ratio"][0] == pytest.approx(np.exp(ref.loc["arm", "estimate"]), rel=1e-5)
    assert out["risk_difference"][0] == pytest.approx(ref.loc["risk_difference", "estimate"], rel=1e-5)
    assert out["risk_difference"][1] == pytest.approx(ref.loc["risk_difference", "se"], rel=1e-5)
    assert out["note"] == ""


def test_gee_on_unit_sums_equals_file_level_and_statsmodels():
    """Aggregating each participant's files (same covariates) gives the file-level GEE,
    which statsmodels (ddof_scale=0) also fits: rtol 1e-6."""
    import statsmodels.api as sm

    f = pd.read_csv(FIX / "data_files.csv", dtype={"team": str, "la": str}).sort_values("team", kind="stable")
    f["arm"] = f["arm"].astype(float)
    units = f.groupby(["pid", "team", "la", "arm", "base"], sort=False)["y"].agg(["sum", "size"]).reset_index()
    Xu = pd.DataFrame({"const": 1.0, "arm": units["arm"], "base": units["base"],
                       "laLA2": (units["la"] == "LA2").astype(float)})
    agg = gee_binary(units["sum"].to_numpy(float), units["size"].to_numpy(float), Xu, units["team"], "arm")
    Xf = pd.DataFrame({"const": 1.0, "arm": f["arm"], "base": f["base"], "laLA2": (f["la"] == "LA2").astype(float)})
    files = gee_binary(f["y"].to_numpy(float), np.ones(len(f)), Xf, f["team"], "arm")
    sm_fit = sm.GEE(f["y"].to_numpy(float), Xf, groups=pd.factorize(f["team"])[0], family=sm.families.Binomial(),
                    cov_struct=sm.cov_struct.Exchangeable()).fit(ddof_scale=0)
    np.testing.assert_allclose(agg["params"], files["params"], rtol=1e-8)
    np.testing.assert_allclose(agg["cov"], files["cov"], rtol=1e-8)
    assert agg["risk_difference"][0] == pytest.approx(files["risk_difference"][0], rel=1e-8)
    np.testing.assert_allclose(files["params"], sm_fit.params, rtol=1e-6)
    np.testing.assert_allclose(files["cov"], sm_fit.cov_params(), rtol=1e-5)
