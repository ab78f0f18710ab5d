"""Impact analyses against independent R references (committed values; R not needed).

Fixture: tests/fixtures/impact_r (data made by make_impact_data.py, values by
make_fixtures.R with clubSandwich 0.5.8, geepack 1.3.9, AER 1.2-10,
sandwich 3.0-2 on R 4.2.2).

Tolerances:
- CR2 (clubSandwich ``coef_test(vcov = "CR2", test = "Satterthwaite")``):
  estimate, SE, df and p at rtol 1e-8 (same closed forms).

The 2SLS with CR2 and the case-file GEE (geepack, and the Mancl-DeRouen
sandwich) are checked in ``test_iv.py`` and ``test_gee.py`` against
``tests/fixtures/gee_iv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from isafe_helpers.stats.cluster_robust import cr2

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
