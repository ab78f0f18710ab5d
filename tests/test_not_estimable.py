"""Issue 23: degenerate but valid data give "not estimable" with a plain reason, never a traceback,
a verdict or a number from a fit that failed (analyses, the summary, and a whole book)."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import pytest
from test_book import LAS, pooled, solved

from isafe_helpers.data.contract import CASEFILE_OUTCOME, SCALES
from isafe_helpers.publish import summary as S
from isafe_helpers.results.estimates import Lookup
from isafe_helpers.stats.cluster_robust import cr2
from isafe_helpers.stats.mixed import fit_random_intercept


# the summary -----------------------------------------------------------------
def test_a_summary_with_no_impact_rows_still_builds_and_says_not_available():
    est = pooled()
    est = est[est["strand"] != "impact"]
    t = S.headline_table(Lookup(est), LAS, pooled=True)
    assert (t.data["finding"] == "[x]").all()
    assert any(n.startswith("[x]: not available.") for n in t.notes)
    b = solved(est)
    assert "Headline results" in b.render_table("summary/headline", 1)


def test_a_fit_that_did_not_converge_gives_no_number_and_no_verdict_in_the_summary():
    est = pooled()
    case = (est["outcome"] == CASEFILE_OUTCOME) & (est["quantity"] == "odds_ratio")
    est.loc[case, "note"] = "did not converge: fitted probabilities of 0 or 1 (separation); secondary outcome"
    t = S.headline_table(Lookup(est), LAS, pooled=True)
    row = t.data.iloc[-1]
    assert row["finding"] == "[x]" and math.isnan(row["effect"]) and math.isnan(row["p"])
    assert any("did not converge: fitted probabilities of 0 or 1 (separation)." in n for n in t.notes)
    glue = {k: html.unescape(v) for k, v in S.sentences(solved(est).view("summary/headline"), None, None,
                                                          Lookup(est), 10).items()}
    assert "not published ([x]: did not converge" in glue["s_secondary_sentence"]
    assert "improved" not in " ".join(glue.values())


def test_a_not_estimable_primary_says_why_in_the_summary_sentence():
    est = pooled()
    prim = (est["outcome"] == SCALES[0]) & est["quantity"].isin(["treatment_effect", "hedges_g_total"])
    est.loc[prim, ["estimate", "ci_low", "ci_high", "p_value"]] = np.nan
    est.loc[prim, "note"] = "not estimable: no variance in the outcome (every analysed follow-up score is the same)"
    b = solved(est)
    glue = S.sentences(b.view("summary/headline"), None, None, Lookup(est), 10)
    assert "no variance in the outcome" in html.unescape(glue["s_primary_sentence"])
    assert "[x]" in b.render_table("summary/headline", 1)


def test_a_finding_is_withheld_with_the_effect_it_reads():
    b = solved(pooled(n=8))  # 8 staff per arm, under the threshold of 10
    page = b.render_table("summary/headline", 1)
    for verdict in ("improved", "worsened", "no clear difference"):
        assert verdict not in page


# the statistics --------------------------------------------------------------
def test_a_constant_outcome_is_not_estimable_in_the_mixed_model():
    g = np.repeat(np.arange(6), 4)
    X = np.column_stack([np.ones(24), (g % 2).astype(float)])
    with pytest.raises(ValueError, match="no variance in the outcome"):
        fit_random_intercept(np.full(24, 3.0), X, g)


def test_an_outcome_the_model_reproduces_exactly_is_not_estimable():
    g = np.repeat(np.arange(6), 4)
    X = np.column_stack([np.ones(24), (g % 2).astype(float)])
    y = 3.0 + X[:, 1]  # constant within each arm: no residual
    with pytest.raises(ValueError, match="no residual variance"):
        fit_random_intercept(y, X, g)
    with pytest.raises(ValueError, match="no residual variance"):
        cr2(y, X, g)


def test_a_constant_covariate_is_named_in_plain_words():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 4)
    X = np.column_stack([np.ones(24), (g % 2).astype(float), np.full(24, 2.0)])
    with pytest.raises(ValueError, match="no variance in x2"):
        fit_random_intercept(rng.normal(size=24), X, g, names=["Intercept", "treated", "x2"])


def test_why_not_estimable_gives_each_reason():
    from isafe_helpers.impact.design import why_not_estimable

    df = pd.DataFrame(
        {
            "team_id": list("AABBCCDD"),
            "arm": ["treatment"] * 4 + ["control"] * 4,
            "la": "LA01",
            "baseline": [1, 2, 3, 4, 1, 2, 3, 4],
            "followup": [1, 2, 3, 3, 2, 2, 1, 4],
        }
    )
    assert why_not_estimable(df) == ""
    assert "one arm only" in why_not_estimable(df.assign(arm="control"))
    assert "two analysed teams" in why_not_estimable(df.assign(team_id=list("AAAACCDD")))
    assert "no variance in the outcome" in why_not_estimable(df.assign(followup=3))
    assert "separates the arms" in why_not_estimable(df.assign(followup=[4] * 4 + [2] * 4))
    assert "no variance in the baseline" in why_not_estimable(df.assign(baseline=3))
