"""Impact strand: compliance and the complier average causal effect (CACE).

Compliance (:func:`isafe_helpers.data.frames.complied`): a participant
attended both practice-pathway sessions (father engagement and motivational
interviewing). The same rule applies in both arms, so a control participant
who attended both counts as treated (contamination); without an attendance
row a participant did not comply. A labelled sensitivity analysis
(``sensitivity_cace_one_session``) counts attending at least one of the two
sessions as compliance: about a fifth of treatment-team staff attended one,
and with the main definition their gain (if any) is attributed to the
exclusion restriction's "no effect without compliance".

The CACE is estimated by two-stage least squares with random assignment as
the instrument for compliance, on the primary analysis sample, with the
primary model's covariates (baseline score, LA fixed effects). Standard errors
are team-clustered CR2 (Bell-McCaffrey) with Satterthwaite degrees of freedom,
as ``clubSandwich::coef_test(vcov = "CR2")`` on an ``AER::ivreg`` fit
(:func:`isafe_helpers.stats.iv.tsls_cr2`). The effect size divides the
CACE and its CI by the same standardiser as the intention-to-treat
``hedges_g_total``: the total SD of the unconditional model on the analysed
sample (:mod:`isafe_helpers.stats.effect_size`), so the CACE's g and its
test agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from isafe_helpers.data.frames import analysis_frame, complied, practice_dose
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.design import design, why_not_estimable
from isafe_helpers.impact.primary_model import ArmEffect, PrimaryAnalysis, PrimaryResult
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import COMPLIANCE, label
from isafe_helpers.results.protocol import Result, ResultSet
from isafe_helpers.results.table import Col, Table
from isafe_helpers.stats.iv import tsls_cr2

Compliance = Literal["both", "one"]

#: What each compliance definition means, and the analysis name of its rows.
COMPLIANCE_LABELS: dict[Compliance, str] = {
    "both": "attended both practice-pathway sessions (father engagement, motivational interviewing)",
    "one": "attended at least one of the two practice-pathway sessions",
}
ANALYSIS = {"both": "cace", "one": "sensitivity_cace_one_session"}
COMPLIANCE_LABEL = COMPLIANCE_LABELS["both"]


@dataclass
class CACEResult(ArmEffect, Result):
    """Complier average causal effect on one scale."""

    compliance_treatment_pct: float = np.nan
    compliance_control_pct: float = np.nan
    g: float = np.nan
    g_ci_low: float = np.nan
    g_ci_high: float = np.nan
    compliance: Compliance = "both"

    def rows(self) -> list[dict]:
        c = dict(n=self.n, n_clusters=self.n_clusters)
        a = ANALYSIS[self.compliance]
        what = (
            "sensitivity: " if self.compliance != "both" else ""
        ) + f"compliance: {COMPLIANCE_LABELS[self.compliance]}"
        note = self.note or f"2SLS, assignment as instrument, CR2 SE, Satterthwaite df; {what}"
        return [
            est_row(
                a,
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
                a,
                self.outcome,
                "hedges_g_total",
                self.g,
                None,
                self.g_ci_low,
                self.g_ci_high,
                note=self.note or f"standardised as the ITT hedges_g_total (unconditional model's SD); {what}",
                **c,
            ),
            est_row(
                a, self.outcome, "compliance_treatment_pct", self.compliance_treatment_pct, note=self.note or what, **c
            ),
            est_row(
                a, self.outcome, "compliance_control_pct", self.compliance_control_pct, note=self.note or what, **c
            ),
        ]


def cace(data: TrialData, primary: PrimaryResult, compliance: Compliance = "both") -> CACEResult:
    """CACE of the scale of ``primary`` (see the module docstring).

    Parameters
    ----------
    data : the scope's data.
    primary : the scale's primary (ITT) result, whose ``hedges_g_total`` supplies the standardiser.
    compliance : ``"both"`` (the main definition: both practice-pathway
        sessions) or ``"one"`` (the sensitivity: at least one).
    """
    if compliance not in COMPLIANCE_LABELS:
        raise ValueError(f"compliance must be one of {', '.join(COMPLIANCE_LABELS)}, got {compliance!r}")
    outcome = primary.outcome
    df = analysis_frame(data, outcome)
    res = CACEResult(outcome, len(df), df["team_id"].nunique(), compliance=compliance)
    comp = complied(data) if compliance == "both" else (practice_dose(data) > 0).astype(float)
    df["complied"] = df["participant_id"].map(comp).fillna(0.0).to_numpy(float)
    pct = df.groupby("arm")["complied"].mean() * 100
    res.compliance_treatment_pct = float(pct.get("treatment", np.nan))
    res.compliance_control_pct = float(pct.get("control", np.nan))
    why = why_not_estimable(df)
    if why:
        res.note = why
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
    if primary.g is not None:
        sd = primary.g.sd
        res.g, res.g_ci_low, res.g_ci_high = res.estimate / sd, res.ci_low / sd, res.ci_high / sd
    return res


class CACEAnalysis(ResultSet):
    """The CACE of every scale, main definition then the sensitivity: one :class:`CACEResult` each."""

    def table(self) -> Table:
        """One row per scale and compliance definition: compliance in each arm, the CACE with its 95% CI and p,
        and its g."""
        out = pd.DataFrame(
            [
                dict(
                    outcome=label(r.outcome),
                    definition=DEFINITION_LABELS[r.compliance],
                    n=r.n,
                    complied_treatment_pct=r.compliance_treatment_pct,
                    complied_control_pct=r.compliance_control_pct,
                    cace=r.estimate,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    p_value=r.p_value,
                    hedges_g=r.g,
                    g_ci_low=r.g_ci_low,
                    g_ci_high=r.g_ci_high,
                    note=r.note,
                )
                for r in sorted(self.results, key=lambda r: _order(self.results, r))
            ]
        )
        return Table(
            out,
            [
                Col("outcome", "Outcome", "text"),
                Col("definition", "Compliance", "text"),
                Col("n", "Staff analysed", "people"),
                Col("complied_treatment_pct", "Complied, intervention (%)", "pct", 1, base="n"),
                Col("complied_control_pct", "Complied, control (%)", "pct", 1, base="n"),
                Col("cace", "CACE (scale points)", "number", 3),
                Col("ci_low", "95% CI low", "number", 3),
                Col("ci_high", "95% CI high", "number", 3),
                Col("p_value", "p", "p"),
                Col("hedges_g", "CACE as Hedges' g", "number", 2),
                Col("g_ci_low", "g 95% CI low", "number", 2),
                Col("g_ci_high", "g 95% CI high", "number", 2),
                Col("note", "Note", "text"),
            ],
            caption="Complier average causal effect of attending the practice-pathway sessions",
            notes=[
                "CACE: two-stage least squares with random assignment as the instrument for compliance, adjusted "
                "for the baseline score and (pooled trial) LA; CR2 cluster-robust standard errors with "
                "Satterthwaite degrees of freedom. Hedges' g: the CACE and its CI over the SD of the unconditional "
                "model, as for the main effect.",
                "Compliance, main analysis: attended both practice-pathway sessions. Sensitivity analysis: "
                "attended at least one of them.",
            ],
        )


#: The reader's name of each compliance definition.
DEFINITION_LABELS = COMPLIANCE


def _order(results: list, r: CACEResult) -> tuple[int, int]:
    """Each outcome's main analysis, then its sensitivity, in the outcomes' order."""
    outcomes = list(dict.fromkeys(x.outcome for x in results))
    return outcomes.index(r.outcome), list(COMPLIANCE_LABELS).index(r.compliance)


def cace_all(data: TrialData, primary: PrimaryAnalysis) -> CACEAnalysis:
    """The CACE of every scale of ``primary`` (the scope's primary analysis): the main compliance definition
    for every scale, then the sensitivity (at least one session)."""
    return CACEAnalysis([cace(data, r, c) for c in COMPLIANCE_LABELS for r in primary])
