"""The moderators' joint F tests as the impact page shows them: F, df and p in their own columns, the facts
they show, and disclosure control of a test resting on few staff."""

from __future__ import annotations

import numpy as np
import pandas as pd

from isafe_helpers.config import threshold
from isafe_helpers.impact.subgroups import ModeratorResults
from isafe_helpers.publish import tables
from isafe_helpers.publish.ledger import Ledger


def _frame(n_small: int) -> pd.DataFrame:
    base = dict(outcome="confidence", se=np.nan, ci_low=np.nan, ci_high=np.nan, n_clusters=20, kind="joint", note="")
    return pd.DataFrame(
        [
            dict(base, moderator="age", quantity="wald_f_age", estimate=0.23, ndf=3.0, df=466.0, p_value=0.87, n=480),
            dict(
                base,
                moderator="experience",
                quantity="wald_f_experience",
                estimate=0.2,
                ndf=1.0,
                df=12.0,
                p_value=0.65,
                n=n_small,
            ),
            dict(
                base,
                moderator="age",
                quantity="interaction_30_39_vs_under_30",
                estimate=0.1,
                ndf=np.nan,
                df=40.0,
                p_value=0.5,
                n=480,
                kind="interaction",
            ),
        ]
    ).assign(p_holm=np.nan)


def _shown(table):
    ledger = Ledger(threshold())
    key = ledger.register(table, "test/table/0")
    return tables.protected(table, ledger.solve(), key)


def test_joint_table_shows_each_moderators_f_test_with_its_facts():
    tab = ModeratorResults(_frame(200)).joint_table()
    assert list(tab.data["moderator"]) == ["Age band", "Years qualified"]  # the interaction row is not a joint test
    labels = [c.label for c in tab.columns]
    assert "Estimate" not in labels and "Kenward-Roger F" in labels and "Numerator df" in labels
    assert tab.facts["f_stat"][1] == ("impact", "subgroup_experience", "confidence", "wald_f_experience", "estimate")
    assert tab.facts["p_value"][0] == ("impact", "subgroup_age", "confidence", "wald_f_age", "p_value")
    assert "Staff in the model" not in labels  # staff analysed minus it would count those left out (issue 22)
    shown = _shown(tab)
    assert shown["f_stat"].iloc[1] == "0.20" and shown["ndf"].iloc[0] == "3"


def test_a_joint_test_resting_on_few_staff_is_withheld():
    small = threshold() - 1
    shown = _shown(ModeratorResults(_frame(small)).joint_table())
    row = shown.iloc[1]
    assert row["f_stat"] == tables.CONFIDENTIAL and row["p_value"] == tables.CONFIDENTIAL
    assert row["ddf"] == tables.CONFIDENTIAL
    assert shown["f_stat"].iloc[0] == "0.23"  # the other test is still shown
