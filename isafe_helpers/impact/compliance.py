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

The CACE is the instrumental-variable ratio, estimated by two-stage least
squares with random assignment as the instrument for compliance, on the
primary analysis sample, with the primary model's covariates (baseline score,
LA fixed effects) (:func:`isafe_helpers.stats.iv.tsls_cr2`). Its inference is
the reduced form's, never the 2SLS Wald test (which can call the CACE
significant when the ITT is not, and is unreliable with a weak first stage):
the p-value of zero is the primary (ITT) model's Kenward-Roger p, and the 95%
set is Anderson-Rubin's, the values ``b`` for which the primary model of
``y - b D`` has p >= .05 (:func:`isafe_helpers.stats.iv.anderson_rubin_set`,
test inversion on a grid refined by root finding). It may be unbounded, or
two rays, when assignment moves compliance too little; then the CI ends are
blank and the note writes the set out. No SE is reported for the CACE (the
set is not estimate +/- t SE). The exclusion restriction (no effect of
assignment without attendance) is doubtful: the system pathway reaches staff
who never attended (the table note says so). The effect size divides the
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
from isafe_helpers.impact.design import ARM_TERM, design, why_not_estimable
from isafe_helpers.impact.primary_model import (
    ArmEffect,
    PrimaryAnalysis,
    PrimaryResult,
    fit_primary,
    primary_covariates,
)
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import COMPLIANCE, label
from isafe_helpers.results.protocol import Result, ResultSet
from isafe_helpers.results.table import Col, Table, facts_of
from isafe_helpers.stats.inference import interval
from isafe_helpers.stats.iv import anderson_rubin_set, tsls_cr2
from isafe_helpers.stats.mixed import fit_random_intercept, formula_free_design

Compliance = Literal["both", "one"]

#: What each compliance definition means, and the analysis name of its rows.
COMPLIANCE_LABELS: dict[Compliance, str] = {
    "both": "attended both practice-pathway sessions (father engagement, motivational interviewing)",
    "one": "attended at least one of the two practice-pathway sessions",
}
ANALYSIS = {"both": "cace", "one": "sensitivity_cace_one_session"}
COMPLIANCE_LABEL = COMPLIANCE_LABELS["both"]
AR_UNBOUNDED = " (unbounded: assignment moves compliance too little to rule out any large effect)"


@dataclass
class CACEResult(ArmEffect, Result):
    """Complier average causal effect on one scale."""

    compliance_treatment_pct: float = np.nan
    compliance_control_pct: float = np.nan
    g: float = np.nan
    g_ci_low: float = np.nan
    g_ci_high: float = np.nan
    compliance: Compliance = "both"
    ar_set: str = ""  # the 95% Anderson-Rubin set written out
    ar_kind: str = ""  # bounded, ray, two rays, whole line, ...

    def rows(self) -> list[dict]:
        c = dict(n=self.n, n_clusters=self.n_clusters)
        a = ANALYSIS[self.compliance]
        what = (
            "sensitivity: " if self.compliance != "both" else ""
        ) + f"compliance: {COMPLIANCE_LABELS[self.compliance]}"
        note = self.note or (
            f"IV ratio (2SLS, assignment as instrument); test of zero = the ITT's (Kenward-Roger); "
            f"95% Anderson-Rubin set {self.ar_set}{AR_UNBOUNDED if self.ar_kind not in ('bounded', '') else ''}; {what}"
        )
        return [
            est_row(
                a,
                self.outcome,
                "treatment_effect",
                self.estimate,
                None,
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
    res.estimate = f["beta"]
    # the test of zero is the ITT's (the reduced form), its 95% set Anderson-Rubin (module docstring)
    res.p_value, res.df = primary.p_value, primary.df
    y, d_ = df["followup"].to_numpy(float), df["complied"].to_numpy(float)
    try:
        p_of = _Itt(df, outcome)
        ar = anderson_rubin_set(lambda b: p_of(y - b * d_), res.estimate, f["se"], _limit_p(df, d_, outcome))
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        res.estimate, res.p_value, res.df = np.nan, np.nan, np.nan
        res.note = f"not estimable: Anderson-Rubin set: {exc}"
        return res
    res.ci_low, res.ci_high, res.ar_set, res.ar_kind = ar["ci_low"], ar["ci_high"], ar["text"], ar["kind"]
    if primary.g is not None:
        sd = primary.g.sd
        res.g, res.g_ci_low, res.g_ci_high = res.estimate / sd, res.ci_low / sd, res.ci_high / sd
    return res


def _limit_p(df: pd.DataFrame, d: np.ndarray, outcome: str) -> float:
    """The ITT model's p for compliance itself (the Anderson-Rubin p as ``|b|`` grows); 0 when compliance is
    the arm exactly (everyone in one arm complied, no one in the other: a perfect first stage)."""
    if pd.Series(d).groupby(df["arm"].to_numpy()).nunique().max() == 1:
        return 0.0
    return _itt_p(df, d, outcome)


def _itt_p(df: pd.DataFrame, y: np.ndarray, outcome: str) -> float:
    """Kenward-Roger p of the arm in the primary (ITT) model with outcome ``y`` on the frame ``df``."""
    r = fit_primary(df.assign(followup=y), outcome, effect_sizes=False)
    if not np.isfinite(r.p_value):
        raise ValueError(r.note or "the ITT model has no p-value")
    return float(r.p_value)


class _Itt:
    """:func:`_itt_p` for many outcomes on one frame (the Anderson-Rubin search fits about 40): the same model
    and numbers, with the design built once.

    What :func:`fit_primary` checks of the frame is checked once; what it
    checks of the outcome (some variance within an arm), and every outcome
    whose missing rows differ or whose fit fails, goes through
    :func:`_itt_p` itself, so its notes and errors are the same.
    """

    def __init__(self, df: pd.DataFrame, outcome: str):
        self.df, self.outcome = df, outcome
        _, self.X, self.groups, names, self.keep = formula_free_design(
            df.rename(columns={"treated": ARM_TERM}), "followup", primary_covariates(df), "team_id"
        )
        self.k = names.index(ARM_TERM)
        self.names = names
        self.arms = [df["arm"].to_numpy() == a for a in pd.unique(df["arm"])]
        self.ok = not why_not_estimable(df) and len(self.arms) == 2

    def __call__(self, y: np.ndarray) -> float:
        fast = self.ok and np.array_equal(~np.isnan(y), self.keep)
        fast = fast and all(np.ptp(y[a][~np.isnan(y[a])]) > 0 for a in self.arms if (~np.isnan(y[a])).any())
        if fast:
            try:
                fit = fit_random_intercept(y[self.keep], self.X, self.groups, names=self.names)
                kr = fit.kenward_roger()
                p = interval(float(fit.beta[self.k]), float(kr.se_adj[self.k]), float(kr.df[self.k])).p_value
            except (ValueError, np.linalg.LinAlgError):
                p = np.nan
            if np.isfinite(p):
                return float(p)
        return _itt_p(self.df, y, self.outcome)


class CACEAnalysis(ResultSet):
    """The CACE of every scale, main definition then the sensitivity: one :class:`CACEResult` each."""

    def table(self) -> Table:
        """One row per scale and compliance definition: compliance in each arm, the CACE with its 95% CI and p,
        and its g."""
        ordered = sorted(self.results, key=lambda r: _order(self.results, r))
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
                    note=r.note
                    or (f"95% Anderson-Rubin set {r.ar_set}{AR_UNBOUNDED}" if r.ar_kind not in ("bounded", "") else ""),
                )
                for r in ordered
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
            facts=facts_of(
                "impact",
                [(ANALYSIS[r.compliance], r.outcome) for r in ordered],
                n=("treatment_effect", "n"),
                complied_treatment_pct=("compliance_treatment_pct", "estimate"),
                complied_control_pct=("compliance_control_pct", "estimate"),
                cace=("treatment_effect", "estimate"),
                ci_low=("treatment_effect", "ci_low"),
                ci_high=("treatment_effect", "ci_high"),
                p_value=("treatment_effect", "p_value"),
                hedges_g=("hedges_g_total", "estimate"),
                g_ci_low=("hedges_g_total", "ci_low"),
                g_ci_high=("hedges_g_total", "ci_high"),
            ),
            notes=[
                "CACE: the instrumental-variable ratio (two-stage least squares with random assignment as the "
                "instrument for compliance, adjusted for the baseline score and, pooled, LA). Its p is the main "
                "(intention-to-treat) model's: the CACE is zero exactly when assignment has no effect. Its 95% CI "
                "is the Anderson-Rubin set: every value b for which the main model of the score minus b times "
                "compliance shows no effect of assignment (p >= .05); it can be unbounded, or two rays, when "
                "assignment moves compliance too little, and the note then says so (blank CI ends). Hedges' g: "
                "the CACE and its CI over the SD of the unconditional model, as for the main effect.",
                "The CACE assumes the exclusion restriction: assignment changes scores only through attending the "
                "sessions. That is doubtful here: the system pathway (case-file audit, champions among middle "
                "managers, a webinar for senior leaders) reaches staff of intervention teams who never attended, so "
                "part of the main effect may "
                "arise without attendance, and the CACE then misattributes it to attending (overstating the effect "
                "of attending when both work in the same direction). Read it beside the main effect, not as a "
                "separate finding; its test is the main "
                "effect's.",
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
