"""Compliance and the CACE (hand-computed Wald ratio; the clustered 2SLS SE is
checked against AER/sandwich in test_impact_reference.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny import standard_root

from isafe_helpers import impact
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
    data = load_root(small_root)
    pr = impact.primary(data, "confidence")
    r = C.cace(data, pr)
    if r.note:
        pytest.skip(r.note)
    assert r.g / r.estimate == pytest.approx(pr.g.estimate / pr.estimate)
    assert r.compliance_control_pct == 0.0 or r.compliance_control_pct < r.compliance_treatment_pct
    rows = pd.DataFrame(r.rows())
    assert set(rows["quantity"]) >= {"treatment_effect", "hedges_g_total"}


def test_cace_not_estimable_without_a_first_stage(small_root):
    data = load_root(small_root)
    data.tables["attendance"] = data.attendance.iloc[0:0]
    r = C.cace(data, impact.primary(data, "confidence"))
    assert r.note.startswith("not estimable") and np.isnan(r.estimate)
