"""Impact strand: the primary analysis of the survey scales.

Primary model, for each scale: follow-up score on arm, baseline score and
LA fixed effects (the randomisation strata; dropped in a single-LA scope),
with a random intercept for team, fitted by exact REML
(:mod:`isafe_helpers.stats.mixed`) on participants with both waves scored, as
randomised. The p-value and CI of the treatment effect use Satterthwaite
degrees of freedom (as lmerTest). Effect sizes are Hedges' g on the total
variance (:mod:`isafe_helpers.stats.effect_size`).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
import pandas as pd

from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.design import ARM_TERM, NOT_ESTIMABLE, estimable
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result, ResultSet
from isafe_helpers.results.table import Col, Table
from isafe_helpers.stats.effect_size import hedges_g_total
from isafe_helpers.stats.inference import interval
from isafe_helpers.stats.mixed import fit_formula_free


@dataclass
class ArmEffect:
    """What every estimate of the arm effect on one outcome carries.

    The analyses (primary model, multiple imputation, randomisation
    inference, CR2, CACE) extend it with their own fields; a quantity an
    analysis does not produce stays NaN.
    """

    outcome: str
    n: int
    n_clusters: int
    estimate: float = np.nan
    se: float = np.nan
    df: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    p_value: float = np.nan
    note: str = ""


@dataclass
class PrimaryResult(ArmEffect, Result):
    """Primary analysis of one scale."""

    g: object = None
    g_conditional: object = None
    icc: float = np.nan
    team_variance: float = np.nan
    residual_variance: float = np.nan
    converged: bool = False

    def rows(self) -> list[dict]:
        common = dict(n=self.n, n_clusters=self.n_clusters)
        g, gc = self.g, self.g_conditional
        return [
            est_row(
                "primary",
                self.outcome,
                "treatment_effect",
                self.estimate,
                self.se,
                self.ci_low,
                self.ci_high,
                self.p_value,
                note=self.note,
                **common,
            ),
            est_row(
                "primary",
                self.outcome,
                "hedges_g_total",
                *((g.estimate, g.se, g.ci_low, g.ci_high) if g else (None,) * 4),
                note=self.note,
                **common,
            ),
            est_row(
                "primary",
                self.outcome,
                "hedges_g_total_conditional",
                *((gc.estimate, gc.se, gc.ci_low, gc.ci_high) if gc else (None,) * 4),
                note=self.note,
                **common,
            ),
            est_row("primary", self.outcome, "icc", self.icc, note=self.note, **common),
            est_row("primary", self.outcome, "team_variance", self.team_variance, note=self.note, **common),
            est_row("primary", self.outcome, "residual_variance", self.residual_variance, note=self.note, **common),
        ]


def primary(data: TrialData, outcome: str) -> PrimaryResult:
    """Primary analysis of one scale (see the module docstring)."""
    df = analysis_frame(data, outcome)
    res = PrimaryResult(outcome, len(df), df["team_id"].nunique())
    if not estimable(df):
        res.note = NOT_ESTIMABLE
        return res
    covs = [ARM_TERM, "baseline"] + (["la"] if df["la"].nunique() > 1 else [])
    df = df.rename(columns={"treated": ARM_TERM})
    try:
        cond = fit_formula_free(df, "followup", covs, "team_id")
        uncond = fit_formula_free(df, "followup", [], "team_id")
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    notes = [f.message for f in (cond, uncond) if not f.converged]
    k = cond.names.index(ARM_TERM)
    res.estimate, res.se, res.df = float(cond.beta[k]), float(cond.se[k]), float(cond.df[k])
    res.ci_low, res.ci_high, res.p_value = astuple(interval(res.estimate, res.se, res.df))
    sizes = df.groupby(["arm", "team_id"]).size()
    st, sc = sizes.loc["treatment"].to_numpy(), sizes.loc["control"].to_numpy()
    res.g = hedges_g_total(res.estimate, uncond.team_variance, uncond.residual_variance, st, sc)
    res.g_conditional = hedges_g_total(res.estimate, cond.team_variance, cond.residual_variance, st, sc)
    res.icc = uncond.icc
    res.team_variance, res.residual_variance = cond.team_variance, cond.residual_variance
    res.converged = not notes
    res.note = "; ".join(f"did not converge: {m}" for m in notes)
    return res


def primary_all(data: TrialData) -> PrimaryAnalysis:
    """The primary analysis of every scale of the instrument."""
    return PrimaryAnalysis([primary(data, s) for s in data.instrument.scale_names])


def scope_caveat(data: TrialData) -> str:
    """What the page's scope means for the analysis (a plain caveat for a single LA)."""
    if len(data.las) > 1:
        return f"Pooled trial: {len(data.las)} LAs, LA fixed effects (the randomisation strata) in every model."
    arms = data.teams.drop_duplicates("team_id")["arm"].value_counts()
    nt, nc = int(arms.get("treatment", 0)), int(arms.get("control", 0))
    if min(nt, nc) < 2:
        return (
            f"**Single LA ({data.las[0]}): the arms cannot be compared here.** It has {nt} treatment and "
            f"{nc} control team(s); every comparison needs at least two teams in each arm, so the effect "
            "estimates below are reported as not estimable (descriptive tables still appear). The pooled "
            "trial and the other LAs are analysed as usual."
        )
    return (
        f"**Single LA ({data.las[0]}), {data.teams['team_id'].nunique()} teams: read with care.** "
        "The models have no LA term. With this few teams no test here uses the normal (z) approximation: "
        "the primary model's CIs and p-values use Student's t with Satterthwaite degrees of freedom, the "
        "robustness section adds randomisation inference (every possible allocation of this LA's teams "
        "enumerated when there are at most 5,000, so exact) and CR2 cluster-robust SEs with Satterthwaite df, and the case-file model "
        "uses t on teams minus coefficients. Even so, the estimates are imprecise (see the minimum "
        "detectable effect size below) and a team's idiosyncrasies weigh heavily. This is one LA of the "
        "trial, not the trial's result."
    )


def convergence_message(results: list[PrimaryResult]) -> str:
    """One sentence for the page: every fit converged, or which did not and why."""
    bad = [f"{r.outcome} ({r.note})" for r in results if r.note]
    if not bad:
        return "Every REML fit (primary and unconditional model, each scale) converged."
    return "Not every analysis could be reported as usual: " + "; ".join(bad) + "."


class PrimaryAnalysis(ResultSet):
    """The primary analysis of every scale: one :class:`PrimaryResult` each."""

    def table(self) -> Table:
        """One row per scale: effect (scale points, 95% CI, p), Hedges' g (95% CI), ICC and variances."""
        t = self.tidy()
        wide = t.set_index(["outcome", "quantity"])["estimate"].unstack()
        eff = t[t["quantity"] == "treatment_effect"].set_index("outcome")
        g = t[t["quantity"] == "hedges_g_total"].set_index("outcome")
        out = pd.DataFrame(
            {
                "outcome": [label(o) for o in eff.index],
                "participants": eff["n"].to_numpy(),
                "teams": eff["n_clusters"].to_numpy(),
                "effect": eff["estimate"].to_numpy(),
                "ci_low": eff["ci_low"].to_numpy(),
                "ci_high": eff["ci_high"].to_numpy(),
                "p_value": eff["p_value"].to_numpy(),
                "hedges_g": g["estimate"].reindex(eff.index).to_numpy(),
                "g_ci_low": g["ci_low"].reindex(eff.index).to_numpy(),
                "g_ci_high": g["ci_high"].reindex(eff.index).to_numpy(),
                "icc": wide["icc"].reindex(eff.index).to_numpy(),
                "team_variance": wide["team_variance"].reindex(eff.index).to_numpy(),
                "residual_variance": wide["residual_variance"].reindex(eff.index).to_numpy(),
                "note": eff["note"].to_numpy(),
            }
        )
        return Table(
            out,
            [
                Col("outcome", "Outcome", "text"),
                Col("participants", "Staff analysed", "people"),
                Col("teams", "Teams", "units"),
                Col("effect", "Effect (scale points)", "number", 3),
                Col("ci_low", "95% CI low", "number", 3),
                Col("ci_high", "95% CI high", "number", 3),
                Col("p_value", "p", "p"),
                Col("hedges_g", "Hedges' g", "number", 2),
                Col("g_ci_low", "g 95% CI low", "number", 2),
                Col("g_ci_high", "g 95% CI high", "number", 2),
                Col("icc", "ICC", "number", 3),
                Col("team_variance", "Team variance", "number", 3),
                Col("residual_variance", "Residual variance", "number", 3),
                Col("note", "Note", "text"),
            ],
            caption="Primary analysis of the survey scales",
        )
