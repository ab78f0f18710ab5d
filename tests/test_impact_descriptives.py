"""Descriptives by arm and wave (analysis ``descriptives``) against a hand computation with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tiny import COSTS_HEAD, TARGETS, make_root

from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import descriptives
from isafe_helpers.publish.tables import protected

ATT = "person_id,component,attended\nLA01-P1,father_engagement,true\n"
COSTS = COSTS_HEAD + "trainer,trainer_fees,delivery,developer,1,hours,50,2023\n"


def _root(tmp_path):
    # 12 staff, 6 per arm; confidence has no reverse-coded items, so its score is the value set
    scores = {f"LA01-P{i}": (1 + (i * 7) % 5, 1 + (i * 3) % 5) for i in range(1, 13)}
    root = make_root(tmp_path, "LA01", ATT, TARGETS, None, None, COSTS, n_people=12, n_treated=6, scores=scores)
    sv = pd.read_csv(root / "LA01" / "survey.csv", dtype=str)
    # P2 (treatment) has no follow-up, P9 (control) no baseline: each wave counts its own scorers
    sv = sv[~((sv["participant_id"] == "LA01-P2") & (sv["wave"] == "followup"))]
    sv = sv[~((sv["participant_id"] == "LA01-P9") & (sv["wave"] == "baseline"))]
    sv.to_csv(root / "LA01" / "survey.csv", index=False, lineterminator="\n")
    return root


def test_descriptives_match_pandas_by_arm_and_wave(tmp_path):
    root = _root(tmp_path)
    data = load_root(root)
    rows = pd.DataFrame(descriptives(data).rows())
    rows = rows[rows["outcome"] == "confidence"].set_index("quantity")["estimate"]
    sv = pd.read_csv(root / "LA01" / "survey.csv")
    parts = pd.read_csv(root / "LA01" / "participants.csv").merge(pd.read_csv(root / "LA01" / "teams.csv"))
    conf = [c for c in sv.columns if c.startswith("conf")]
    sv["score"] = sv[conf].mean(axis=1)
    df = sv.merge(parts, on="participant_id")
    assert len(rows) == 12
    for (wave, arm), g in df.groupby(["wave", "arm"]):
        assert rows[f"n_{wave}_{arm}"] == len(g)
        assert np.isclose(rows[f"mean_{wave}_{arm}"], g["score"].mean())
        assert np.isclose(rows[f"sd_{wave}_{arm}"], g["score"].std(ddof=1))
    assert rows["n_followup_treatment"] == 5 and rows["n_baseline_control"] == 5
    assert rows["n_baseline_treatment"] == 6 and rows["n_followup_control"] == 6
    # every scale gets its 12 rows
    all_rows = pd.DataFrame(descriptives(data).rows())
    assert len(all_rows) == 12 * len(data.instrument.scale_names)


def test_descriptives_table_shows_means_only_over_enough_staff(tmp_path):
    res = descriptives(load_root(_root(tmp_path)))
    cells = protected(res.table(), limit=6)  # 6 staff shown; 5 withheld, and the means and SDs over them
    conf = cells[cells.iloc[:, 0].str.startswith("Confidence in engaging fathers: ")].copy()
    conf.index = [o.rpartition(": ")[2].capitalize() for o in conf.iloc[:, 0]]  # the wave, as the row names it
    t_mean, c_mean = "mean_treatment", "mean_control"
    assert conf.loc["Baseline", t_mean] not in ("", "[c]") and conf.loc["Baseline", c_mean] == "[c]"
    assert conf.loc["Follow-up", t_mean] == "[c]" and conf.loc["Follow-up", c_mean] not in ("", "[c]")
    assert conf.loc["Baseline", "n_treatment"] == "6"
