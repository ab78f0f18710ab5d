"""Compliance and the CACE (hand-computed Wald ratio; the clustered 2SLS SE is
checked against AER/sandwich in test_impact_reference.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny import standard_root

from isafe_helpers import impact
from isafe_helpers.data import frames
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import compliance as C
from isafe_helpers.stats.iv import tsls_cr2


def test_compliance_needs_every_practice_pathway_component(tmp_path):
    """standard_root: P1 attended father_engagement only (twice), P2 MI only, P3 MI only."""
    data = load_root(standard_root(tmp_path))
    c = C.complied(data)
    assert c.sum() == 0
    att = data.attendance
    extra = att.iloc[:1].copy()
    extra["person_id"], extra["component"], extra["attended"] = "LA01-P2", "father_engagement", True
    data.tables["attendance"] = pd.concat([att, extra], ignore_index=True)
    c = C.complied(data)
    assert c.to_dict() == {"LA01-P1": 0.0, "LA01-P2": 1.0, "LA01-P3": 0.0, "LA01-P4": 0.0}


def test_tsls_without_covariates_is_the_wald_ratio():
    rng = np.random.default_rng(1)
    z = np.repeat([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 5)
    d = z * (rng.random(30) < 0.7)
    y = 1 + 0.5 * d + rng.normal(size=30)
    f = tsls_cr2(y, d, z, np.ones((30, 1)), np.repeat(np.arange(6), 5))
    wald = (y[z == 1].mean() - y[z == 0].mean()) / (d[z == 1].mean() - d[z == 0].mean())
    assert f["beta"] == pytest.approx(wald, rel=1e-10)
    assert f["first_stage"] == pytest.approx(d[z == 1].mean() - d[z == 0].mean())


def test_cace_is_standardised_like_the_itt_g(small_root):
    """g_CACE = CACE / SD of the unconditional model, its CI the CACE's CI over the same SD."""
    data = load_root(small_root)
    pr = impact.primary(data, "confidence")
    r = C.cace(data, pr)
    assert r.note == ""
    sd = (pr.team_variance_unconditional + pr.residual_variance_unconditional) ** 0.5
    assert (r.g, r.g_ci_low, r.g_ci_high) == pytest.approx((r.estimate / sd, r.ci_low / sd, r.ci_high / sd), rel=1e-14)
    assert (r.g_ci_low > 0 or r.g_ci_high < 0) == (r.p_value < 0.05)  # AR set and ITT test agree at zero
    assert r.compliance_control_pct == 0.0 or r.compliance_control_pct < r.compliance_treatment_pct
    rows = pd.DataFrame(r.rows())
    assert set(rows["quantity"]) >= {"treatment_effect", "hedges_g_total"} and set(rows["analysis"]) == {"cace"}


def test_one_session_compliance_sensitivity_is_labelled_and_counted_by_hand(small_root):
    data = load_root(small_root)
    pr = impact.primary(data, "confidence")
    main, sens = C.cace(data, pr), C.cace(data, pr, "one")
    frame = frames.analysis_frame(data, "confidence")
    dose = frame["participant_id"].map(frames.practice_dose(data))
    treated = frame["arm"] == "treatment"
    assert sens.compliance_treatment_pct == pytest.approx(100 * (dose[treated] > 0).mean())
    assert main.compliance_treatment_pct == pytest.approx(100 * (dose[treated] == 2).mean())
    assert sens.compliance_treatment_pct >= main.compliance_treatment_pct
    rows = pd.DataFrame(sens.rows())
    assert set(rows["analysis"]) == {"sensitivity_cace_one_session"}
    assert rows["note"].str.contains("at least one of the two practice-pathway sessions").all()
    assert rows["note"].str.contains("sensitivity").all()
    both = C.cace_all(data, impact.primary_all(data))
    t = both.table().data
    assert t["definition"].tolist()[:2] == ["Both sessions (main)", "At least one session (sensitivity)"]
    assert len(t) == 2 * len(data.instrument.scale_names)
    with pytest.raises(ValueError, match="compliance must be one of"):
        C.cace(data, pr, "all")


def test_cace_not_estimable_without_a_first_stage(small_root):
    data = load_root(small_root)
    data.tables["attendance"] = data.attendance.iloc[0:0]
    r = C.cace(data, impact.primary(data, "confidence"))
    assert r.note.startswith("not estimable") and np.isnan(r.estimate)


def test_cace_test_is_the_itts_and_its_ci_the_anderson_rubin_set(small_root):
    """Issue 24: the CACE's p is the primary model's; its CI ends are where the primary (KR) model of
    y - b D has p = .05, and the estimate (the IV ratio) lies inside."""
    data = load_root(small_root)
    pr = impact.primary(data, "confidence")
    r = C.cace(data, pr)
    assert r.note == "" and r.ar_kind == "bounded"
    assert r.p_value == pr.p_value and r.df == pr.df
    frame = frames.analysis_frame(data, "confidence")
    d = frame["participant_id"].map(frames.complied(data)).fillna(0.0).to_numpy(float)
    y = frame["followup"].to_numpy(float)
    for b in (r.ci_low, r.ci_high):
        assert C._itt_p(frame, y - b * d, "confidence") == pytest.approx(0.05, abs=1e-6)
    assert r.ci_low < r.estimate < r.ci_high
    assert C._itt_p(frame, y - r.estimate * d, "confidence") > 0.5
    row = pd.DataFrame(r.rows()).query("quantity == 'treatment_effect'").iloc[0]
    assert "Anderson-Rubin" in row["note"] and "test of zero = the ITT's" in row["note"]
    assert pd.isna(row["se"])


def test_cace_is_the_itt_when_compliance_is_the_arm(small_root):
    """Hand-checkable: where everyone in intervention teams complied and no one in control (LA02, at least one
    session), y - b D = y - b arm, so the CACE is the ITT estimate and the AR set is exactly the primary KR CI."""
    data = load_root(small_root).for_scope("LA02")
    pr = impact.primary(data, "confidence")
    r = C.cace(data, pr, "one")
    assert (r.compliance_treatment_pct, r.compliance_control_pct) == (100.0, 0.0)
    assert r.estimate == pytest.approx(pr.estimate, rel=1e-8)
    assert (r.ci_low, r.ci_high) == pytest.approx((pr.ci_low, pr.ci_high), rel=1e-6)


def test_an_unbounded_anderson_rubin_set_is_said(small_root):
    """LA01 (4 teams): assignment moves compliance too little to bound the CACE; the set is the whole line, the CI
    ends are blank and the note and table say it is unbounded."""
    data = load_root(small_root).for_scope("LA01")
    r = C.cace(data, impact.primary(data, "confidence"))
    assert r.ar_kind == "whole line" and np.isnan(r.ci_low) and np.isnan(r.ci_high) and np.isnan(r.g_ci_low)
    row = pd.DataFrame(r.rows()).query("quantity == 'treatment_effect'").iloc[0]
    assert "(-infinity, infinity)" in row["note"] and "unbounded" in row["note"]
    t = C.CACEAnalysis([r]).table().data
    assert "unbounded" in t["note"].iloc[0]
