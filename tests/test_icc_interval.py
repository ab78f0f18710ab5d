"""The ICC's 95% profile-likelihood interval (:meth:`MixedFit.icc_interval`) against lme4's REML deviance
function profiled on its relative SD (committed values, tests/fixtures/icc_profile; R not needed), and as the
primary analysis publishes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isafe_helpers.stats.mixed import fit_formula_free

FIX = Path(__file__).resolve().parent / "fixtures" / "icc_profile"


@pytest.mark.parametrize("name", ["moderate", "high", "few", "zero"])
def test_icc_profile_interval_matches_lme4(name):
    d = pd.read_csv(FIX / "data.csv")
    ref = pd.read_csv(FIX / "ref.csv")
    ref = ref[ref["dataset"] == name].set_index("quantity")["value"]
    fit = fit_formula_free(d[d["dataset"] == name], "y", [], "team")
    lo, hi = fit.icc_interval()
    # both sides find the ends by root finding to ~1e-14 on the same criterion; 1e-7 absolute leaves
    # room for the optimisers' different stops at theta_hat (the criterion is flat there)
    assert fit.icc == pytest.approx(ref["icc"], abs=1e-7)
    assert lo == pytest.approx(ref["icc_low"], abs=1e-7)
    assert hi == pytest.approx(ref["icc_high"], abs=1e-7)
    assert 0.0 <= lo <= fit.icc <= hi <= 1.0


def test_icc_interval_is_clipped_and_brackets_the_estimate_by_hand():
    # a hand check independent of R: at each end, the REML criterion is chi2_1(.95) above its minimum
    from scipy import stats

    d = pd.read_csv(FIX / "data.csv")
    g = d[d["dataset"] == "high"]
    fit = fit_formula_free(g, "y", [], "team")
    lo, hi = fit.icc_interval()
    for icc_end in (lo, hi):
        th = icc_end / (1 - icc_end)  # s2_B / s2_W
        assert fit._kr["crit"](th) - fit.reml_criterion == pytest.approx(stats.chi2.ppf(0.95, 1), abs=1e-8)
    assert np.isfinite(lo) and np.isfinite(hi)


def _shown(table):
    from isafe_helpers.config import threshold
    from isafe_helpers.publish import tables
    from isafe_helpers.publish.ledger import Ledger

    ledger = Ledger(threshold())
    key = ledger.register(table, "test/table/0")
    return tables.protected(table, ledger.solve(), key)


def test_primary_rows_and_variance_table_carry_the_icc_interval(_small_root_template):
    from isafe_helpers import impact
    from isafe_helpers.data.loading import load_root

    prim = impact.primary_all(load_root(_small_root_template))
    rows = pd.DataFrame(prim.rows())
    icc = rows[(rows["analysis"] == "primary") & (rows["quantity"] == "icc")]
    assert len(icc) == 5
    assert (icc["ci_low"] <= icc["estimate"]).all() and (icc["estimate"] <= icc["ci_high"]).all()
    assert (icc["ci_low"] >= 0).all() and (icc["ci_high"] <= 1).all()
    assert icc["note"].str.contains("profile likelihood").all()
    tab = prim.variance_table()
    shown = _shown(tab)
    col = [c for c in tab.columns if c.key == "icc"][0]
    assert "95% CI" in col.label
    # the 40 staff analysed per scale are at the threshold or above: every ICC cell shows its interval
    r = icc.iloc[0]
    assert f"{r['ci_low']:.3f}" in shown["icc"].iloc[0] and f"{r['ci_high']:.3f}" in shown["icc"].iloc[0]
    assert tab.facts["icc_low"][0] == ("impact", "primary", r["outcome"], "icc", "ci_low")
    assert tab.facts["icc_high"][0] == ("impact", "primary", r["outcome"], "icc", "ci_high")
    assert any("profile-likelihood" in n for n in tab.notes)


def test_the_baseline_report_gives_the_icc_at_baseline_with_its_interval(_small_root_template):
    from isafe_helpers import impact
    from isafe_helpers.data.loading import load_root

    data = load_root(_small_root_template)
    res = impact.baseline_power(data)
    rows = pd.DataFrame(res.rows())
    icc = rows[rows["analysis"] == "baseline_icc"].set_index("outcome")
    # against the interval of the same model fitted here on the randomised staff's baseline scores
    from isafe_helpers.impact.baseline import _baseline_scores

    df = _baseline_scores(data)
    sub = df[["team_id", "confidence"]].dropna().rename(columns={"confidence": "baseline"})
    lo, hi = fit_formula_free(sub, "baseline", [], "team_id").icc_interval()
    assert icc.loc["confidence", "ci_low"] == pytest.approx(lo) and icc.loc["confidence", "ci_high"] == pytest.approx(
        hi
    )
    tab = res.table()
    assert tab.col("icc").kind == "ci" and tab.facts["icc_high"][0][3:] == ("icc", "ci_high")
