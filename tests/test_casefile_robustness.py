"""The case-file outcome's robustness checks on team-level shares: CR2 against R, randomisation test by hand.

CR2: ``tests/fixtures/casefile_team_shares`` (R clubSandwich on the same team
shares). Randomisation: LA07 of the bundled trial has 9 teams, so every
allocation is enumerated; here the team shares are recomputed from the raw
case-file audit with pandas and the OLS arm coefficient of every allocation
refitted with numpy, giving the exact p by counting.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import robustness
from isafe_helpers.impact.sensitivity import (
    TEAM_SHARE,
    casefile_cluster_robust,
    casefile_randomisation_inference,
    team_shares,
)
from isafe_helpers.resources import BUNDLED_DATA

FIX = Path(__file__).parent / "fixtures" / "casefile_team_shares"


@pytest.fixture(scope="module")
def bundled():
    return load_root(BUNDLED_DATA)


@pytest.mark.parametrize("scope", ["trial", "LA07"])
def test_cr2_on_team_shares_matches_clubsandwich(bundled, scope):
    ref = pd.read_csv(FIX / "ref.csv", skipinitialspace=True).set_index("scope").loc[scope]
    data = pd.read_csv(FIX / "data.csv", dtype={"team_id": str, "la": str})
    data = data[data["scope"] == scope].reset_index(drop=True)
    g = team_shares(bundled.for_scope(scope))
    # the committed frame is this code's frame: R was given the same teams and shares
    assert list(g["team_id"]) == list(data["team_id"])
    np.testing.assert_allclose(g["followup"], data["followup"], rtol=1e-15)
    r = casefile_cluster_robust(bundled.for_scope(scope))
    assert r.tidy()["quantity"].tolist() == [TEAM_SHARE]
    # 1e-8: OLS and CR2 are closed forms in both (R prints 17 significant digits)
    for k in ("estimate", "se", "df", "ci_low", "ci_high", "p_value"):
        assert getattr(r, k) == pytest.approx(ref[k], rel=1e-8), k
    assert r.n_clusters == ref["teams"]


def _hand_shares(root: Path, la: str) -> pd.DataFrame:
    cf = pd.read_csv(root / la / "casefile_audit.csv", dtype={"participant_id": str})
    w = cf.pivot_table(index="participant_id", columns="wave", values=["cases_audited", "father_contact_recorded"])
    w = w[(w[("cases_audited", "followup")] > 0) & (w[("cases_audited", "baseline")] > 0)]
    parts = pd.read_csv(root / la / "participants.csv", dtype=str).set_index("participant_id")
    teams = pd.read_csv(root / la / "teams.csv", dtype=str).set_index("team_id")
    df = pd.DataFrame(
        {
            "team_id": parts.loc[w.index, "team_id"].to_numpy(),
            "rec_f": w[("father_contact_recorded", "followup")].to_numpy(),
            "aud_f": w[("cases_audited", "followup")].to_numpy(),
            "rec_b": w[("father_contact_recorded", "baseline")].to_numpy(),
            "aud_b": w[("cases_audited", "baseline")].to_numpy(),
        }
    )
    s = df.groupby("team_id").sum()
    out = pd.DataFrame({"followup": s["rec_f"] / s["aud_f"], "baseline": s["rec_b"] / s["aud_b"]})
    out["treated"] = (teams.loc[out.index, "arm"] == "treatment").astype(float).to_numpy()
    return out


def test_randomisation_test_on_team_shares_by_hand(bundled):
    la = "LA07"
    hand = _hand_shares(Path(BUNDLED_DATA), la)
    y, base, t = hand["followup"].to_numpy(), hand["baseline"].to_numpy(), hand["treated"].to_numpy()

    def arm_coef(alloc: np.ndarray) -> float:
        X = np.column_stack([np.ones_like(y), alloc, base])
        return float(np.linalg.lstsq(X, y, rcond=None)[0][1])

    obs = arm_coef(t)
    stats = []
    for treated in itertools.combinations(range(len(y)), int(t.sum())):
        a = np.zeros_like(y)
        a[list(treated)] = 1.0
        stats.append(arm_coef(a))
    stats = np.array(stats)
    p_hand = float(np.mean(np.abs(stats) >= abs(obs) - 1e-12))
    r = casefile_randomisation_inference(bundled.for_scope(la))
    assert r.exact and r.n_permutations == len(stats)
    assert r.estimate == pytest.approx(obs, rel=1e-10)
    assert r.p_value == pytest.approx(p_hand, abs=1e-12)
    # the CI inverts the test: its ends are where the shifted statistic stops being rejected
    assert r.ci_low < obs < r.ci_high


def test_robustness_table_shows_the_case_files_checks(bundled):
    from isafe_helpers.impact import primary_all

    data = bundled.for_scope("LA07")
    rob = robustness(data, primary_all(data), n_perm=200, n_imputations=2)
    rows = rob.tidy()
    case = rows[rows["outcome"] == "father_contact_recorded"]
    assert set(case["analysis"]) == {"sensitivity_ri", "sensitivity_cr2"}
    assert (case["quantity"] == TEAM_SHARE).all()
    t = rob.table()
    shown = t.data[t.data["outcome"] == t.data["outcome"].iloc[-1]]
    assert list(shown["method"]) == [
        "Primary (GEE), risk difference",
        "Randomisation inference, team shares",
        "OLS, CR2 cluster-robust, team shares",
    ]
    # every case-file cell names the estimates.csv row it shows
    i = shown.index[1]
    assert t.facts["estimate"][i] == ("impact", "sensitivity_ri", "father_contact_recorded", TEAM_SHARE, "estimate")


@pytest.mark.parametrize("scope, working", [("trial", "exchangeable"), ("LA06", "independence")])
def test_cox_index_matches_r(bundled, scope, working):
    from isafe_helpers.impact import casefile

    ref = pd.read_csv(Path(__file__).parent / "fixtures" / "cox_index" / "ref.csv", skipinitialspace=True)
    ref = ref.set_index("dataset").loc[scope]
    c = casefile(bundled.for_scope(scope))
    assert c.working == working and c.converged
    est, _se, lo, hi, p = c.cox_index
    # 1e-8: geepack iterated to 1e-12, the handbook's GEE to a score norm of 1e-8 (README)
    assert (est, lo, hi) == pytest.approx((ref["cox_index"], ref["cox_ci_low"], ref["cox_ci_high"]), rel=1e-8)
    assert p == pytest.approx(ref["p_value"], rel=1e-7)
    assert c.odds_ratio[0] == pytest.approx(ref["odds_ratio"], rel=1e-8)
    assert c.n_clusters == ref["teams"]
