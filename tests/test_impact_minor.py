"""Issue 24's minor items: how an unbounded CI, an adjusted null finding, LA labels, a joint F test and a
single changed cost rating read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from isafe_helpers.impact import sensitivity, subgroups
from isafe_helpers.publish import prose
from isafe_helpers.publish.summary import finding
from isafe_helpers.publish.tables import number, protected


def test_an_unbounded_randomisation_ci_reads_as_such_not_infinite_infinite():
    ri = [
        sensitivity.RIResult("confidence", 40, 4, estimate=0.2, ci_low=-np.inf, ci_high=np.inf, p_value=0.6),
        sensitivity.RIResult("competence", 40, 4, estimate=0.2, ci_low=-np.inf, ci_high=0.9, p_value=0.4),
        sensitivity.RIResult("org_practice", 40, 4, estimate=0.2, ci_low=-0.1, ci_high=0.5, p_value=0.3),
    ]
    t = sensitivity.Robustness(mi=[], ri=ri, cr2=[]).table()
    cells = protected(t, limit=1).set_index("outcome")
    row = cells.loc["Confidence in engaging fathers"]
    assert (row["ci_low"], row["ci_high"]) == ("minus infinity", "infinity")
    assert row["note"].startswith("95% CI unbounded: the randomisation test rejects no effect size")
    assert cells.loc["Competence in engaging fathers", "note"].startswith("95% CI unbounded below")
    assert "unbounded" not in cells.loc["Organisational practice on father engagement", "note"]
    assert "infinite" not in " ".join(cells.to_numpy().ravel())


def test_after_adjustment_is_said_only_when_the_adjustment_changed_the_reading():
    # secondary outcome, interval above 0 but Holm p >= .05: "after adjustment" only if the unadjusted p < .05
    assert finding(0.01, 0.4, 0.03, 0.09, 0.0, primary=False) == (
        "no clear difference after adjustment for several outcomes"
    )
    assert finding(-0.1, 0.4, 0.2, 0.6, 0.0, primary=False) == "no clear difference"
    assert finding(0.01, 0.4, 0.03, 0.04, 0.0, primary=False) == "improved"


def test_la_codes_keep_their_case_in_a_difference_of_effect():
    assert subgroups.term_label("interaction_LA02_vs_LA01") == "Difference in effect: LA02 vs LA01"
    assert subgroups.term_label("interaction_40_49_vs_under_30") == "Difference in effect: 40 to 49 vs under 30"


def test_the_joint_f_test_is_not_shown_as_an_estimate_in_the_moderators_table():
    frame = pd.DataFrame(
        {
            "outcome": ["confidence"] * 2,
            "moderator": ["la", "la"],
            "quantity": ["interaction_LA02_vs_LA01", "wald_f_arm_x_la"],
            "kind": ["interaction", "joint"],
            "n": [60, 60],
            "estimate": [0.1, 3.2],
            "ci_low": [-0.2, np.nan],
            "ci_high": [0.4, np.nan],
            "p_value": [0.5, 0.08],
            "p_holm": [0.9, np.nan],
            "note": ["", ""],
        }
    )
    t = subgroups.ModeratorResults(frame).table()
    assert t.data["term"].tolist() == ["Difference in effect: LA02 vs LA01"]
    assert 3.2 not in t.data["estimate"].tolist()
    assert any("heterogeneity" in n for n in t.notes)


def test_one_scenario_changes_the_cost_rating_in_the_singular():
    sens = pd.DataFrame(
        {
            "scenario": ["Base case", "Trainer fees higher", "Licences higher", "Small group"],
            "cost_rating": [2, 3, 2, np.nan],
        }
    )
    text = prose.robustness(sens)
    assert "1 changes the cost rating (2): trainer fees higher gives 3" in text
    assert text.endswith("; 1 is withheld (too few people).")
    sens.loc[2, "cost_rating"] = 3
    assert "2 change the cost rating" in prose.robustness(sens)


def test_infinite_numbers_are_signed():
    assert (number(float("-inf")), number(float("inf"))) == ("minus infinity", "infinity")
