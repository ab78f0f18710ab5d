"""What the issue's "done when" asks of the impact rows, checked on the bundled data's estimates.

The committed copies ``tests/fixtures/estimates/<scope>.csv`` are every
scope's ``estimates.csv`` on ``data/synthetic`` (``test_bundled_estimates.py``
proves they are current), so these checks hold for what the book publishes:

- every g interval agrees in sign and significance with its model's test
  (primary and CACE, pooled and per LA);
- a secondary outcome's Holm-adjusted p is never below its unadjusted p;
- no impact note judges (improved / worsened);
- a non-converged estimate says so in its note.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isafe_helpers.results.estimates import read_estimates

FIXTURES = Path(__file__).parent / "fixtures" / "estimates"
SCOPES = sorted(p.stem for p in FIXTURES.glob("*.csv"))


@pytest.fixture(scope="module", params=SCOPES)
def est(request) -> pd.DataFrame:
    e = read_estimates(FIXTURES / f"{request.param}.csv")
    return e[e["strand"] == "impact"]


@pytest.mark.parametrize("analysis", ["primary", "cace", "sensitivity_cace_one_session"])
def test_every_g_interval_agrees_with_its_models_test(est, analysis):
    a = est[est["analysis"] == analysis]
    te = a[a["quantity"] == "treatment_effect"].set_index("outcome")
    g = a[a["quantity"] == "hedges_g_total"].set_index("outcome")
    assert len(te) == 5 and set(g.index) == set(te.index)
    for outcome in te.index:
        t, e = te.loc[outcome], g.loc[outcome]
        if np.isnan(t["estimate"]):
            assert np.isnan(e["estimate"]) and t["note"].startswith("not estimable")
            continue
        assert np.sign(e["estimate"]) == np.sign(t["estimate"])
        assert (e["ci_low"] > 0 or e["ci_high"] < 0) == (t["p_value"] < 0.05), (analysis, outcome)
        assert (e["ci_low"] > 0) == (t["ci_low"] > 0) and (e["ci_high"] < 0) == (t["ci_high"] < 0)


def test_holm_adjusted_p_is_at_least_the_unadjusted(est):
    holm = est[(est["analysis"] == "secondary") & (est["quantity"] == "p_holm")].set_index("outcome")
    prim = est[(est["analysis"] == "primary") & est["quantity"].isin(["treatment_effect", "odds_ratio"])]
    raw = prim.drop_duplicates("outcome").set_index("outcome")["p_value"]
    assert len(holm) == 5 and "confidence" not in holm.index  # named primary by the bundled protocol.yml
    for outcome, r in holm.iterrows():
        if np.isfinite(r["estimate"]):
            assert r["estimate"] >= raw[outcome] - 1e-15


def test_no_impact_note_judges(est):
    text = " ".join(est["note"].astype(str)).lower()
    for word in ("improved", "worsened", "significant"):
        assert word not in text


def test_a_non_converged_estimate_says_so(est):
    cf = est[(est["analysis"] == "primary") & (est["outcome"] == "father_contact_recorded")]
    bad = cf[cf["estimate"].isna() & ~cf["note"].str.startswith("not estimable")]
    assert bad["note"].str.startswith("did not converge").all()
