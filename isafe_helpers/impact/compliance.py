"""Impact strand: compliance and the complier average causal effect (CACE).

Compliance (:func:`isafe_helpers.data.frames.complied`): a participant
attended both practice-pathway sessions (father engagement and motivational
interviewing). The same rule applies in both arms, so a control participant
who attended both counts as treated (contamination); without an attendance
row a participant did not comply.

The CACE is estimated by two-stage least squares with random assignment as
the instrument for compliance, on the primary analysis sample, with the
primary model's covariates (baseline score, LA fixed effects). Standard errors
are team-clustered CR2 (Bell-McCaffrey) with Satterthwaite degrees of freedom,
as ``clubSandwich::coef_test(vcov = "CR2")`` on an ``AER::ivreg`` fit
(:func:`isafe_helpers.stats.iv.tsls_cr2`). The effect
size divides the CACE by the same standardiser as the intention-to-treat
Hedges' g, i.e. ``g_CACE = CACE * g_ITT / beta_ITT``; its CI scales the
CACE's CI by the same factor (the standardiser's own uncertainty is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from isafe_helpers.data.frames import analysis_frame, complied
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.design import NOT_ESTIMABLE, design, estimable
from isafe_helpers.impact.primary_model import ArmEffect, PrimaryAnalysis, PrimaryResult
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result, ResultSet
from isafe_helpers.results.table import Col, Table
from isafe_helpers.stats.iv import tsls_cr2

COMPLIANCE_LABEL = "attended both practice-pathway sessions (father engagement, motivational interviewing)"


@dataclass
class CACEResult(ArmEffect, Result):
    """Complier average causal effect on one scale."""

    compliance_treatment_pct: float = np.nan
    compliance_control_pct: float = np.nan
    g: float = np.nan
    g_ci_low: float = np.nan
    g_ci_high: float = np.nan

    def rows(self) -> list[dict]:
        c = dict(n=self.n, n_clusters=self.n_clusters)
        note = self.note or f"2SLS, assignment as instrument, CR2 SE, Satterthwaite df; compliance: {COMPLIANCE_LABEL}"
        return [
            est_row(
                "cace",
                self.outcome,
                "treatment_effect",
                self.estimate,
                self.se,
                self.ci_low,
                self.ci_high,
                self.p_value,
                note=note,
                **c,
            ),
            est_row(
                "cace",
                self.outcome,
                "hedges_g_total",
                self.g,
                None,
                self.g_ci_low,
                self.g_ci_high,
                note=self.note or "standardised as the ITT hedges_g_total",
                **c,
            ),
            est_row(
                "cace", self.outcome, "compliance_treatment_pct", self.compliance_treatment_pct, note=self.note, **c
            ),
            est_row("cace", self.outcome, "compliance_control_pct", self.compliance_control_pct, note=self.note, **c),
        ]


def cace(data: TrialData, primary: PrimaryResult) -> CACEResult:
    """CACE of the scale of ``primary`` (see the module docstring).

    Parameters
    ----------
    data : the scope's data.
    primary : the scale's primary (ITT) result, whose Hedges' g supplies the standardiser.
    """
    outcome = primary.outcome
    df = analysis_frame(data, outcome)
    res = CACEResult(outcome, len(df), df["team_id"].nunique())
    comp = complied(data)
    df["complied"] = df["participant_id"].map(comp).fillna(0.0).to_numpy(float)
    pct = df.groupby("arm")["complied"].mean() * 100
    res.compliance_treatment_pct = float(pct.get("treatment", np.nan))
    res.compliance_control_pct = float(pct.get("control", np.nan))
    if not estimable(df):
        res.note = NOT_ESTIMABLE
        return res
    if abs(res.compliance_treatment_pct - res.compliance_control_pct) < 1e-9:
        res.note = "not estimable: compliance does not differ between the arms (no first stage)"
        return res
    X, _ = design(df)
    try:
        f = tsls_cr2(
            df["followup"].to_numpy(float),
            df["complied"].to_numpy(float),
            X[:, 1],
            np.delete(X, 1, axis=1),
            df["team_id"].to_numpy(),
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    res.estimate, res.se, res.df = f["beta"], f["se"], f["df"]
    (res.ci_low, res.ci_high), res.p_value = f["ci"], f["p"]
    if primary.g is not None and primary.estimate != 0:
        k = primary.g.estimate / primary.estimate
        res.g, res.g_ci_low, res.g_ci_high = res.estimate * k, res.ci_low * k, res.ci_high * k
        if k < 0:
            res.g_ci_low, res.g_ci_high = res.g_ci_high, res.g_ci_low
    return res


class CACEAnalysis(ResultSet):
    """The CACE of every scale: one :class:`CACEResult` each."""

    def table(self) -> Table:
        """One row per scale: compliance in each arm, the CACE with its 95% CI and p, and its g."""
        t = self.tidy()
        w = t.set_index(["outcome", "quantity"])["estimate"].unstack()
        e = t[t["quantity"] == "treatment_effect"].set_index("outcome")
        out = pd.DataFrame(
            {
                "outcome": [label(o) for o in e.index],
                "n": e["n"].to_numpy(),
                "complied_treatment_pct": w["compliance_treatment_pct"].reindex(e.index).to_numpy(),
                "complied_control_pct": w["compliance_control_pct"].reindex(e.index).to_numpy(),
                "cace": e["estimate"].to_numpy(),
                "ci_low": e["ci_low"].to_numpy(),
                "ci_high": e["ci_high"].to_numpy(),
                "p_value": e["p_value"].to_numpy(),
                "hedges_g": w["hedges_g_total"].reindex(e.index).to_numpy(),
            }
        )
        return Table(
            out,
            [
                Col("outcome", "Outcome", "text"),
                Col("n", "Staff analysed", "people"),
                Col("complied_treatment_pct", "Complied, intervention (%)", "pct", 1, base="n"),
                Col("complied_control_pct", "Complied, control (%)", "pct", 1, base="n"),
                Col("cace", "CACE (scale points)", "number", 3),
                Col("ci_low", "95% CI low", "number", 3),
                Col("ci_high", "95% CI high", "number", 3),
                Col("p_value", "p", "p"),
                Col("hedges_g", "CACE as Hedges' g", "number", 2),
            ],
            caption="Complier average causal effect of attending both practice-pathway sessions",
        )


def cace_all(data: TrialData, primary: PrimaryAnalysis) -> CACEAnalysis:
    """The CACE of every scale of ``primary`` (the scope's primary analysis)."""
    return CACEAnalysis([cace(data, r) for r in primary])
