"""MDES (power): a hand-computed case, the large-df limit, a known-truth simulation of
power at the MDES, recovery of known R2 shares, and the rows on small roots."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import power as P


def test_mdes_by_hand_with_printed_t_table_values():
    # J=48, n=10, rho=0.1, R2_B=0.5, R2_W=0.3, P=0.5, one covariate -> df = 45.
    # Printed t tables: t(0.975; 45) = 2.0141, t(0.80; 45) = 0.8497 -> M = 2.8638.
    # var = 0.1*0.5/(0.25*48) + 0.9*0.7/(0.25*48*10) = 0.0041667 + 0.00525 = 0.0094167
    # MDES = 2.8638 * sqrt(0.0094167) = 2.8638 * 0.0970395 = 0.27790
    r = P.mdes(48, 10, 0.1, 0.5, 0.3, 0.5, covariates=1)
    assert r.df == 45
    assert r.multiplier == pytest.approx(2.8638, abs=2e-4)
    assert r.mdes == pytest.approx(0.27790, rel=1e-3)


def test_multiplier_tends_to_2_8_and_p_enters_as_p_times_1_minus_p():
    assert P.mdes(100000, 10, 0.1).multiplier == pytest.approx(1.959964 + 0.841621, abs=1e-4)
    a, b = P.mdes(40, 10, 0.1, p_treated=0.5), P.mdes(40, 10, 0.1, p_treated=0.25)
    assert b.mdes / a.mdes == pytest.approx(math.sqrt(0.25 / 0.1875), rel=1e-12)
    with pytest.raises(ValueError):
        P.mdes(3, 10, 0.1, covariates=1)
    with pytest.raises(ValueError):
        P.mdes(40, 10, 1.5)


def test_simulated_power_at_the_mdes_is_80_percent():
    """Known truth: balanced design, no covariates (df = J - 2), analysed by the t-test on team
    means (the exact test for this design). At the MDES, the exact (noncentral t) power and the
    simulated rejection rate are both 80% within the approximation and Monte Carlo error."""
    J, n, rho = 12, 5, 0.2
    m = P.mdes(J, n, rho, covariates=0)
    se = math.sqrt(4 * (rho + (1 - rho) / n) / J)  # SD of the difference of arm means of team means
    tc = stats.t.ppf(0.975, J - 2)
    exact = stats.nct.sf(tc, J - 2, m.mdes / se) + stats.nct.cdf(-tc, J - 2, m.mdes / se)
    assert exact == pytest.approx(0.80, abs=0.015)
    rng = np.random.default_rng(11)
    reps = 6000
    t = np.repeat([1.0, 0.0], J // 2)
    means = (
        m.mdes * t
        + rng.normal(0, math.sqrt(rho), (reps, J))
        + rng.normal(0, math.sqrt(1 - rho), (reps, J, n)).mean(axis=2)
    )
    d = means[:, t == 1].mean(1) - means[:, t == 0].mean(1)
    s2 = (means[:, t == 1].var(1, ddof=1) + means[:, t == 0].var(1, ddof=1)) / 2
    tstat = d / np.sqrt(s2 * 4 / J)
    power = np.mean(np.abs(tstat) > tc)
    assert abs(power - exact) < 3 * math.sqrt(exact * (1 - exact) / reps)


def test_variance_shares_recover_known_r2():
    """y = x + u + e with x = xb_team + xw: R2_B = var(xb)/(var(xb)+var(u)), R2_W = var(xw)/(var(xw)+var(e))."""
    rng = np.random.default_rng(5)
    J, n = 300, 15
    team = np.repeat(np.arange(J), n)
    xb, u = rng.normal(0, 1.0, J), rng.normal(0, 0.5, J)  # R2_B = 1 / 1.25 = 0.8
    xw, e = rng.normal(0, 1.0, J * n), rng.normal(0, 1.0, J * n)  # R2_W = 0.5
    x = xb[team] + xw
    df = pd.DataFrame({"team_id": team, "baseline": x, "followup": x + u[team] + e})
    v = P.variance_shares(df)
    assert v["r2_between"] == pytest.approx(0.8, abs=0.05)
    assert v["r2_within"] == pytest.approx(0.5, abs=0.03)
    assert v["icc"] == pytest.approx(1.25 / 3.25, abs=0.06)


@pytest.fixture(scope="module")
def trial(_small_root_template):
    return load_root(_small_root_template)


def test_rows_for_trial_and_la(trial):
    for scope in ("trial", "LA01"):
        data = trial.for_scope(scope)
        res = P.power_analysis(data)
        rows = pd.DataFrame(res.rows())
        assert set(rows["analysis"]) == {"power"}
        for q in P.STAGES:
            got = rows[rows["quantity"] == q].set_index("outcome")
            assert set(got.index) == set(trial.instrument.scale_names), q
            assert got["estimate"].notna().all() and (got["estimate"] > 0).all(), q
        mdes = rows[rows["quantity"] == "mdes_analysis"].set_index("outcome")
        t = res.frame.iloc[0]
        k = len(data.las)
        by_hand = P.mdes(
            t["teams"], t["team_size"], t["icc"], t["r2_between"], t["r2_within"], t["p_treated"], covariates=k - 1
        )
        assert t["df"] == t["teams"] - 2 - (k - 1)  # df = J - 2 - (LAs - 1), no team-level covariate
        assert mdes.loc[t["outcome"], "estimate"] == pytest.approx(by_hand.mdes, rel=1e-12)
        assert "R2_B capped" in mdes.loc[t["outcome"], "note"] and "observed ICC" in mdes.loc[t["outcome"], "note"]
        # the mean analysed team size: staff analysed / teams analysed (as published), so it adds nothing
        analysed = analysis_frame(data, t["outcome"])
        assert t["team_size"] == pytest.approx(len(analysed) / analysed["team_id"].nunique(), rel=1e-12)
        assert "mean team size" in mdes.loc[t["outcome"], "note"] and "harmonic" not in mdes.loc[t["outcome"], "note"]


def test_the_three_stages_against_the_formula_by_hand(small_root):
    """Known truth: the bundled synthetic protocol (J=48 in 8 LAs, n=10, P=0.5, ICC 0.08, R2_B 0.5, R2_W 0.6).

    df = 48 - 2 - 7 = 39; printed t tables: t(0.975; 39) = 2.0227, t(0.80; 39) = 0.8509 -> M = 2.8736.
    var = 0.08 * 0.5 / (0.25 * 48) + 0.92 * 0.4 / (0.25 * 48 * 10) = 0.0033333 + 0.0030667 = 0.0064 -> SE 0.08.
    MDES = 2.8736 * 0.08 = 0.2299.
    """
    data = load_root(small_root)  # generated roots ship the synthetic protocol.yml
    res = P.power_analysis(data)
    rows = pd.DataFrame(res.rows())
    proto = rows[rows["quantity"] == "mdes_protocol"]
    assert proto["estimate"].to_numpy() == pytest.approx([0.2299] * 5, abs=2e-4)
    assert proto["note"].str.contains("the protocol's ICC=0.080").all()
    # randomisation: the teams and staff randomised, the protocol's ICC and R2, df = J - 2 - (LAs - 1)
    teams = data.teams.drop_duplicates("team_id")
    sizes = data.participants.groupby("team_id").size().to_numpy(float)
    j, k, pt = len(teams), len(data.las), float((teams["arm"] == "treatment").mean())
    n_bar = sizes.sum() / len(sizes)  # staff / teams (power.TEAM_SIZE)
    m = stats.t.ppf(0.975, j - 2 - (k - 1)) + stats.t.ppf(0.8, j - 2 - (k - 1))
    pq = pt * (1 - pt)
    want = m * math.sqrt(0.08 * 0.5 / (pq * j) + 0.92 * 0.4 / (pq * j * n_bar))
    rand = rows[rows["quantity"] == "mdes_randomisation"]
    assert rand["estimate"].to_numpy() == pytest.approx([want] * 5, rel=1e-9)
    assert (rand["n_clusters"] == j).all()


def test_without_planning_icc_the_protocol_and_randomisation_stages_are_not_pre_specified(small_root):
    (small_root / "protocol.yml").write_text("primary_outcome: confidence\n", encoding="utf-8")
    res = P.power_analysis(load_root(small_root))
    rows = pd.DataFrame(res.rows())
    for q in ("mdes_protocol", "mdes_randomisation"):
        got = rows[rows["quantity"] == q]
        assert len(got) == 5 and got["estimate"].isna().all(), q
        assert got["note"].str.contains("not pre-specified").all(), q
    assert rows.loc[rows["quantity"] == "mdes_analysis", "estimate"].notna().all()  # observed ICC and R2


def test_r2_between_is_capped_below_1_and_the_cap_is_stated(trial, monkeypatch):
    real = P.variance_shares
    monkeypatch.setattr(P, "variance_shares", lambda df: {**real(df), "r2_between": 1.0})
    res = P.power_analysis(trial)
    assert (res.frame["r2_between"] == P.R2_B_CAP).all() and P.R2_B_CAP < 1
    rows = pd.DataFrame(res.rows())
    notes = rows.loc[rows["quantity"] == "mdes_analysis", "note"]
    assert notes.str.contains(f"R2_B capped at {P.R2_B_CAP:g} \\(estimated 1.000\\)").all()


def test_not_estimable_is_a_note(small_root):
    data = load_root(small_root).for_scope("LA01")
    data.tables["teams"] = data.teams.assign(arm="treatment")
    res = P.power_analysis(data)
    rows = pd.DataFrame(res.rows())
    an = rows[rows["quantity"] == "mdes_analysis"]
    assert an["estimate"].isna().all() and an["note"].str.startswith("not estimable").all()
    rand = rows[rows["quantity"] == "mdes_randomisation"]
    assert rand["estimate"].isna().all() and rand["note"].str.startswith("not estimable").all()
    with pytest.raises(ValueError):
        P.power_analysis(data, team_size="median")


def test_variance_models_that_did_not_converge_are_kept_in_the_rows_and_not_shown(trial, monkeypatch):
    real = P.fit_formula_free

    def unconverged(*a, **k):
        fit = real(*a, **k)
        object.__setattr__(fit, "converged", False)
        object.__setattr__(fit, "message", "NOT converged: test")
        return fit

    monkeypatch.setattr(P, "fit_formula_free", unconverged)
    res = P.power_analysis(trial)
    rows = pd.DataFrame(res.rows())
    mdes = rows[rows["quantity"] == "mdes_analysis"]
    assert mdes["estimate"].notna().all()
    assert mdes["note"].str.startswith("did not converge: unconditional model: NOT converged: test").all()
    shown = res.table().data
    assert shown["mdes_achieved"].isna().all() and shown["note"].str.startswith("not available").all()
