"""Impact strand: fathers' contact details recorded in case files (the case-file outcome).

A fit that did not converge keeps its numbers (where there are any) and its
note in ``estimates.csv``; its table withholds them: shown as not available,
with the reason.

Choices, written down:

- The standardised effect size is WWC's Cox index, ``ln(OR) / 1.65``, its
  CI the odds ratio's CI transformed the same way and its p the odds ratio's
  (:data:`COX_DIVISOR`; WWC Procedures and Standards Handbook 5.0).
- When the exchangeable GEE does not converge, the same model is fitted with
  an independence working correlation (the binomial GLM's coefficients) and
  the same Mancl-DeRouen sandwich and t reference; if that fit converges it is
  reported, labelled in the note of every row and in the table's notes
  (``working`` is ``"independence"``). The bias-reduced sandwich keeps the
  inference valid under clustering; only efficiency is lost. If it does not
  converge either, the exchangeable fit's failure is reported as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import CASEFILE_OUTCOME
from isafe_helpers.data.frames import casefile_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.data.protocol import protocol_of
from isafe_helpers.impact.design import why_not_estimable
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts
from isafe_helpers.stats.gee import gee_binary

#: WWC's Cox index divides the log odds ratio by this.
COX_DIVISOR = 1.65
#: The note of a result fitted with the independence working correlation (the fallback).
INDEPENDENCE_NOTE = "independence working correlation (the exchangeable GEE did not converge: {reason})"


@dataclass
class CasefileResult(Result):
    """Clustered binomial analysis of fathers' contact details recorded."""

    n: int
    n_clusters: int
    odds_ratio: tuple = (np.nan, np.nan, np.nan, np.nan, np.nan)  # est, se(log), lo, hi, p
    risk_difference: tuple = (np.nan, np.nan, np.nan, np.nan, np.nan)
    alpha: float = np.nan  # working exchangeable correlation
    converged: bool = False
    note: str = ""
    working: str = "exchangeable"  # the working correlation of the reported fit (module docstring)
    role: str = "secondary"  # primary or secondary outcome (the protocol's)
    las: list[str] = field(default_factory=list)  # the scope's LAs (ledger keys)
    #: the odds ratio's p adjusted across the secondary outcomes (Holm); set by the primary analysis, which
    #: holds the family (:class:`~isafe_helpers.impact.primary_model.PrimaryAnalysis`); NaN when not set
    p_holm: float = np.nan

    @property
    def withheld(self) -> bool:
        """True when the fit did not converge: its numbers stay in the rows and are never displayed."""
        return self.note.startswith("did not converge")

    @property
    def cox_index(self) -> tuple:
        """WWC's Cox index ``ln(OR) / 1.65``: (estimate, SE, CI low, CI high, p), the odds ratio's CI and p."""
        est, se, lo, hi, p = self.odds_ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.asarray([est, lo, hi], float)) / COX_DIVISOR
        return (float(logs[0]), se / COX_DIVISOR, float(logs[1]), float(logs[2]), p)

    def rows(self) -> list[dict]:
        c: dict[str, Any] = dict(
            n=self.n,
            n_clusters=self.n_clusters,
            note="; ".join(
                p
                for p in (
                    self.note,
                    f"{self.role} outcome" if self.role != "outcome" else "no primary outcome pre-specified",
                )
                if p
            ),
        )
        return [
            est_row("primary", CASEFILE_OUTCOME, "odds_ratio", *self.odds_ratio, **c),
            est_row("primary", CASEFILE_OUTCOME, "risk_difference", *self.risk_difference, **c),
            est_row("primary", CASEFILE_OUTCOME, "cox_index", *self.cox_index, **c),
        ]

    def table(self) -> Table:
        """The odds ratio, risk difference and Cox index, each with its 95% CI and p (withheld when not converged)."""
        t = self.tidy()
        hide = self.withheld
        num = {
            k: (np.full(len(t), np.nan) if hide else t[k].to_numpy())
            for k in ("estimate", "ci_low", "ci_high", "p_value")
        }
        holm = [np.nan if hide else self.p_holm] + [np.nan] * (len(t) - 1)  # the family adjusts the odds ratio's test
        out = pd.DataFrame(
            {
                "measure": ["Odds ratio", "Risk difference", "Cox index (standardised effect size)"],
                **num,
                "p_holm": holm,
                "files_of": t["n"].to_numpy(),
                "teams": t["n_clusters"].to_numpy(),
                "note": [f"not available: {self.note}" if hide else self.note] * len(t),
            }
        )
        return Table(
            out,
            [
                Col("measure", "Measure", "text"),
                Col("estimate", "Estimate", "number", 3),
                Col("ci_low", "95% CI low", "number", 3),
                Col("ci_high", "95% CI high", "number", 3),
                Col("p_value", "p", "p"),
                *(
                    [Col("p_holm", "Holm p (secondary)" if self.role == "secondary" else "Holm p (all outcomes)", "p")]
                    if self.role != "primary"
                    else []
                ),
                Col("files_of", "Staff whose files were analysed", "people"),
                Col("teams", "Teams", "units"),
                Col("note", "Note", "text"),
            ],
            caption="Fathers' contact details recorded in case files",
            keys={"files_of": [K.analysed(self.las, CASEFILE_OUTCOME)] * len(out)} if self.las else {},
            facts={
                **facts(
                    "impact",
                    [("primary", CASEFILE_OUTCOME, q) for q in ("odds_ratio", "risk_difference", "cox_index")],
                    estimate="estimate",
                    ci_low="ci_low",
                    ci_high="ci_high",
                    p_value="p_value",
                    files_of="n",
                    teams="n_clusters",
                ),
                **facts(
                    "impact",
                    [("primary", CASEFILE_OUTCOME, "odds_ratio"), None, None],
                    p_holm=("secondary", "p_holm", "estimate"),
                ),
            },
            notes=[
                (
                    "Secondary outcome. "
                    if self.role == "secondary"
                    else "Primary outcome. "
                    if self.role == "primary"
                    else ""
                )
                + f"Binomial GEE (logit link, {self.working} correlation within team) "
                "on every audited file, adjusted for the baseline share recorded and (pooled trial) LA; "
                "Mancl-DeRouen bias-reduced standard errors, Student's t on teams minus coefficients. "
                "Risk difference: marginally standardised, in proportion points. Cox index: the log odds ratio "
                "divided by 1.65, WWC's effect size for a binary outcome, comparable with Hedges' g; its CI is the "
                "odds ratio's, transformed the same way."
                + (
                    " Holm p: the odds ratio's p adjusted across the secondary outcomes (Holm), as in the primary "
                    "analysis table."
                    if self.role == "secondary"
                    else " No primary outcome was pre-specified: Holm p is the odds ratio's p adjusted across all "
                    "outcomes (Holm), as in the primary analysis table."
                    if self.role == "outcome"
                    else ""
                ),
                *(
                    [
                        "The exchangeable working correlation did not converge for these files, so the model was "
                        "fitted with an independence working correlation (files within a team treated as "
                        "uncorrelated in the fit; the bias-reduced standard errors still allow for clustering)."
                    ]
                    if self.working == "independence"
                    else []
                ),
            ],
        )


def casefile_not_estimable(d: pd.DataFrame) -> str:
    """Why the case-file comparison cannot be estimated, in plain words (``""`` when it can).

    One arm only or too few teams (:func:`~isafe_helpers.impact.design.why_not_estimable`);
    no variance in the outcome (no follow-up file, or every one, records the
    father's contact details); the outcome separates the arms (in an arm no
    file, or every file, records them: the odds ratio is infinite); no
    variance in the baseline share.
    """
    why = why_not_estimable(d, outcome="", baseline=None)
    if why:
        return why
    rec, aud = d.groupby("arm")["recorded"].sum(), d.groupby("arm")["audited"].sum()
    if rec.sum() == 0 or rec.sum() == aud.sum():
        return (
            "not estimable: no variance in the outcome (no follow-up file, or every one, records the contact details)"
        )
    if ((rec == 0) | (rec == aud)).any():
        return (
            "not estimable: the outcome separates the arms (in one arm no follow-up file, or every one, records "
            "the contact details), so the odds ratio is infinite"
        )
    base = pd.to_numeric(d["base"], errors="coerce").dropna()
    if len(base) and base.max() == base.min():
        return "not estimable: no variance in the baseline share recorded, so the model cannot adjust for it"
    return ""


def casefile(data: TrialData) -> CasefileResult:
    """Fathers' contact details recorded out of files audited at follow-up.

    GEE (binomial, logit link, exchangeable correlation within team) on
    file-level outcomes, adjusted for the participant's baseline proportion
    and LA (:func:`isafe_helpers.stats.gee.gee_binary`). The odds ratio is exp
    of the arm coefficient; the risk difference is the marginally standardised
    difference in predicted proportions (all analysed files set to treatment
    minus all set to control), with a delta-method SE. Both use the
    Mancl-DeRouen bias-reduced sandwich and Student's t on ``G - p`` degrees
    of freedom (``G`` teams, ``p`` coefficients): the plain robust SE is too
    small with few teams (a single LA has about 9). A fit that did not
    converge says so in its note and ``converged`` is False.
    """
    role = protocol_of(data).role(CASEFILE_OUTCOME)
    d = casefile_frame(data)
    if d is None:
        return CasefileResult(
            0, 0, note="not estimable: audits at both waves are needed", role=role, las=list(data.las)
        )
    res = CasefileResult(len(d), d["team_id"].nunique(), role=role, las=list(data.las))
    why = casefile_not_estimable(d)
    if why:
        res.note = why
        return res
    X = pd.DataFrame({"const": 1.0, "treated": (d["arm"] == "treatment").astype(float), "base": d["base"]})
    if d["la"].nunique() > 1:
        X = X.join(pd.get_dummies(d["la"].astype(str), prefix="la", drop_first=True, dtype=float))
    dfree = res.n_clusters - X.shape[1]
    if dfree < 1:
        res.note = "not estimable: fewer teams than coefficients"
        return res
    args = (d["recorded"].to_numpy(float), d["audited"].to_numpy(float), X, d["team_id"].to_numpy(), "treated")
    try:
        out = gee_binary(*args, df=dfree)
    except ValueError as exc:
        res.note = f"not estimable: {exc}"
        return res
    how = f"Mancl-DeRouen bias-reduced SE, t on {dfree} df"
    fallback = ""
    if not out.converged:
        indep = gee_binary(*args, df=dfree, corr="independence")
        if indep.converged:
            fallback = INDEPENDENCE_NOTE.format(reason=out.reason)
            out = indep
    res.odds_ratio, res.risk_difference = out.odds_ratio.as_tuple(), out.risk_difference.as_tuple()
    res.alpha, res.converged, res.working = out.alpha, out.converged, out.corr
    if not out.converged:
        res.note = f"did not converge: {out.reason}; {how}"
    else:
        res.note = "; ".join(p for p in (fallback, how) if p)
    return res
