"""Baseline characteristics of the staff by arm (impact.baseline_characteristics): the counts, percentages,
means and SDs against a hand count of the participants file, and disclosure control of a small cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isafe_helpers import impact
from isafe_helpers.config import threshold
from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import load_root
from isafe_helpers.publish import tables
from isafe_helpers.publish.ledger import Ledger


@pytest.fixture(scope="module")
def trial(_small_root_template):
    return load_root(_small_root_template)


def _rows(res):
    t = res.tidy()
    return t.set_index(["outcome", "quantity"])["estimate"]


def test_counts_percentages_and_years_match_a_hand_count(trial):
    est = _rows(impact.baseline_characteristics(trial))
    parts = trial.participants.merge(trial.teams[["team_id", "arm"]], on="team_id")
    analysed_ids = set(analysis_frame(trial, "confidence")["participant_id"])  # the bundled-style protocol's primary
    for sample, p in (("randomised", parts), ("analysed", parts[parts["participant_id"].isin(analysed_ids)])):
        for arm in ("treatment", "control"):
            d = p[p["arm"] == arm]
            assert est[("all", f"n_{arm}_{sample}")] == len(d)
            for role in ("social_worker", "senior_practitioner", "team_manager", "other"):
                n = int((d["role"] == role).sum())
                assert est[("role", f"n_{role}_{arm}_{sample}")] == n
                assert est[("role", f"pct_{role}_{arm}_{sample}")] == pytest.approx(100 * n / len(d))
            blank = d["age_band"].isna() | (d["age_band"].astype(str) == "")
            assert est[("age_band", f"n_not_recorded_{arm}_{sample}")] == int(blank.sum())
            assert est[("age_band", f"n_30_39_{arm}_{sample}")] == int((d["age_band"] == "30_39").sum())
            yq = pd.to_numeric(d["years_qualified"], errors="coerce").dropna()
            assert est[("years_qualified", f"n_{arm}_{sample}")] == len(yq)
            assert est[("years_qualified", f"mean_{arm}_{sample}")] == pytest.approx(yq.mean())
            assert est[("years_qualified", f"sd_{arm}_{sample}")] == pytest.approx(yq.std(ddof=1))
            assert est[("years_qualified", f"n_not_recorded_{arm}_{sample}")] == len(d) - len(yq)


def _shown(res, las):
    tab = res.table()
    ledger = Ledger(threshold())
    keys = ledger.register(tab, "test/table/0", las)
    return tab, tables.protected(tab, ledger.solve(), keys)


def test_a_small_count_is_withheld_with_its_percentage_and_what_gives_it_back(trial):
    res = impact.baseline_characteristics(trial)
    tab, shown = _shown(res, list(trial.las))
    f = res.frame
    row = f[(f["arm"] == "treatment") & (f["sample"] == "randomised") & (f["characteristic"] == "role")]
    small = row[(row["n"] > 0) & (row["n"] < threshold())]
    assert len(small), "the small root has a role with fewer staff than the threshold"
    lev = small["level"].iloc[0]
    from isafe_helpers.results.labels import label

    i = int(np.flatnonzero((tab.data["characteristic"] == "Role") & (tab.data["level"] == label(lev)))[0])
    assert shown.loc[i, "n_treatment_randomised"] == tables.CONFIDENTIAL
    assert shown.loc[i, "v_treatment_randomised"] == tables.CONFIDENTIAL
    # the arm's total is published (the trial flow publishes it), so a second role count is withheld too:
    # no suppressed count is the total minus the published ones
    roles = tab.data.index[tab.data["characteristic"] == "Role"]
    hidden = [j for j in roles if shown.loc[j, "n_treatment_randomised"] == tables.CONFIDENTIAL]
    assert len(hidden) >= 2
    assert shown.loc[0, "n_treatment_randomised"] == str(int(row["total"].iloc[0]))


def test_facts_name_the_rows_the_cells_show(trial):
    tab = impact.baseline_characteristics(trial).table()
    assert tab.facts["n_control_analysed"][0] == (
        "impact",
        "baseline_characteristics",
        "all",
        "n_control_analysed",
        "estimate",
    )
    i = int(np.flatnonzero(tab.data["level"] == "Social worker")[0])
    assert tab.facts["v_treatment_randomised"][i] == (
        "impact",
        "baseline_characteristics",
        "role",
        "pct_social_worker_treatment_randomised",
        "estimate",
    )


def test_before_follow_up_only_the_randomised_sample_is_described(small_root):
    sv = pd.read_csv(small_root / "LA01" / "survey.csv", dtype=str, keep_default_na=False)
    sv[sv["wave"] == "baseline"].to_csv(small_root / "LA01" / "survey.csv", index=False)
    cf = pd.read_csv(small_root / "LA01" / "casefile_audit.csv", dtype=str, keep_default_na=False)
    cf[cf["wave"] == "baseline"].to_csv(small_root / "LA01" / "casefile_audit.csv", index=False)
    res = impact.baseline_characteristics(load_root(small_root).for_scope("LA01"))
    assert res.samples == ("randomised",) and res.outcome is None
    assert not res.tidy()["quantity"].str.endswith("_analysed").any()
    assert "No analysed sample yet" in res.table().notes[0]


def test_consort_plan_table_and_dates_come_from_the_protocol(trial):
    flow = impact.trial_flow(trial)
    tab = flow.plan_table()
    assert list(tab.data["planned"]) == [8, 48]  # the synthetic protocol.yml's plan
    assert list(tab.data["randomised"]) == [len(trial.las), trial.teams["team_id"].nunique()]
    assert list(tab.data["difference"]) == [len(trial.las) - 8, trial.teams["team_id"].nunique() - 48]
    assert tab.facts["planned"][1] == ("impact", "trial_flow", "planned", "teams", "estimate")
    rows = pd.DataFrame(flow.rows()).set_index(["outcome", "quantity"])["estimate"]
    assert rows[("planned", "teams")] == 48 and rows[("randomised", "las")] == len(trial.las)
    text = flow.dates_text()
    assert text.startswith("Dates from the protocol: baseline survey 2022") and "follow-up survey 2022" in text
    assert any(n.startswith("Reasons for loss") for n in flow.table().notes)
    # an LA's page compares no plan (the plan is the trial's)
    one = impact.trial_flow(trial.for_scope(trial.las[0]))
    assert one.planned is None and not any(r["outcome"] == "planned" for r in one.rows())
