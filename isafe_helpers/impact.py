"""Impact strand: the cluster-RCT analysis of the five survey scales, the
case-file outcome and attrition.

Primary model, for each scale: follow-up score on arm, baseline score and
LA fixed effects (the randomisation strata; dropped in a single-LA scope),
with a random intercept for team, fitted by exact REML
(:mod:`isafe_helpers.mixed`) on participants with both waves scored, as
randomised. The p-value and CI of the treatment effect use Satterthwaite
degrees of freedom (as lmerTest). Effect sizes are Hedges' g on the total
variance (:mod:`isafe_helpers.effect_size`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from .contract import CASEFILE_OUTCOME
from .effect_size import hedges_g_total
from .estimates import est_row
from .loading import TrialData
from .mixed import fit_formula_free

ARM_TERM = "treated"


def analysis_frame(data: TrialData, outcome: str) -> pd.DataFrame:
    """One row per participant with baseline and follow-up scores of ``outcome``.

    Columns: participant_id, team_id, la, arm, treated (0/1), baseline,
    followup, plus age_band and years_qualified. Only participants with both
    waves scored are kept (the analysed sample).
    """
    sv = data.survey.pivot_table(index="participant_id", columns="wave", values=outcome, aggfunc="first")
    sv = sv.reindex(columns=["baseline", "followup"])
    df = data.participants.merge(data.teams[["team_id", "arm"]], on="team_id").merge(
        sv, left_on="participant_id", right_index=True, how="left"
    )
    df = df.dropna(subset=["baseline", "followup"]).copy()
    df["treated"] = (df["arm"] == "treatment").astype(float)
    df["la"] = df["la"].astype(str)
    return df.reset_index(drop=True)


@dataclass
class PrimaryResult:
    """Primary analysis of one scale."""

    outcome: str
    n: int
    n_clusters: int
    estimate: float = np.nan
    se: float = np.nan
    df: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    p_value: float = np.nan
    g: object = None
    g_conditional: object = None
    icc: float = np.nan
    team_variance: float = np.nan
    residual_variance: float = np.nan
    converged: bool = False
    note: str = ""

    def rows(self) -> list[dict]:
        common = dict(n=self.n, n_clusters=self.n_clusters)
        g, gc = self.g, self.g_conditional
        return [
            est_row("primary", self.outcome, "treatment_effect", self.estimate, self.se,
                    self.ci_low, self.ci_high, self.p_value, note=self.note, **common),
            est_row("primary", self.outcome, "hedges_g_total", *(
                (g.estimate, g.se, g.ci_low, g.ci_high) if g else (None,) * 4), note=self.note, **common),
            est_row("primary", self.outcome, "hedges_g_total_conditional", *(
                (gc.estimate, gc.se, gc.ci_low, gc.ci_high) if gc else (None,) * 4), note=self.note, **common),
            est_row("primary", self.outcome, "icc", self.icc, note=self.note, **common),
            est_row("primary", self.outcome, "team_variance", self.team_variance, note=self.note, **common),
            est_row("primary", self.outcome, "residual_variance", self.residual_variance, note=self.note, **common),
        ]


def primary(data: TrialData, outcome: str) -> PrimaryResult:
    """Primary analysis of one scale (see the module docstring)."""
    df = analysis_frame(data, outcome)
    res = PrimaryResult(outcome, len(df), df["team_id"].nunique())
    arms = df.groupby("arm")["team_id"].nunique()
    if len(arms) < 2 or arms.min() < 2:
        res.note = "not estimable: needs at least two analysed teams in each arm"
        return res
    covs = [ARM_TERM, "baseline"] + (["la"] if df["la"].nunique() > 1 else [])
    df = df.rename(columns={"treated": ARM_TERM})
    cond = fit_formula_free(df, "followup", covs, "team_id")
    uncond = fit_formula_free(df, "followup", [], "team_id")
    notes = [f.message for f in (cond, uncond) if not f.converged]
    k = cond.names.index(ARM_TERM)
    res.estimate, res.se, res.df = float(cond.beta[k]), float(cond.se[k]), float(cond.df[k])
    tq = stats.t.ppf(0.975, res.df)
    res.ci_low, res.ci_high = res.estimate - tq * res.se, res.estimate + tq * res.se
    res.p_value = float(2 * stats.t.sf(abs(res.estimate / res.se), res.df))
    sizes = df.groupby(["arm", "team_id"]).size()
    st, sc = sizes.loc["treatment"].to_numpy(), sizes.loc["control"].to_numpy()
    res.g = hedges_g_total(res.estimate, uncond.team_variance, uncond.residual_variance, st, sc)
    res.g_conditional = hedges_g_total(res.estimate, cond.team_variance, cond.residual_variance, st, sc)
    res.icc = uncond.icc
    res.team_variance, res.residual_variance = cond.team_variance, cond.residual_variance
    res.converged = not notes
    res.note = "; ".join(f"did not converge: {m}" for m in notes)
    return res


@dataclass
class CasefileResult:
    """Clustered binomial analysis of fathers' contact details recorded."""

    n: int
    n_clusters: int
    odds_ratio: tuple = (np.nan, np.nan, np.nan, np.nan, np.nan)  # est, se(log), lo, hi, p
    risk_difference: tuple = (np.nan, np.nan, np.nan, np.nan, np.nan)
    note: str = ""

    def rows(self) -> list[dict]:
        c = dict(n=self.n, n_clusters=self.n_clusters, note=self.note)
        return [
            est_row("primary", CASEFILE_OUTCOME, "odds_ratio", *self.odds_ratio, **c),
            est_row("primary", CASEFILE_OUTCOME, "risk_difference", *self.risk_difference, **c),
        ]


def casefile(data: TrialData) -> CasefileResult:
    """Fathers' contact details recorded out of files audited at follow-up.

    GEE (binomial, logit link, exchangeable correlation within team, robust
    SEs) on file-level outcomes, adjusted for the participant's baseline
    proportion and LA. The odds ratio is exp of the arm coefficient; the risk
    difference is the marginally standardised difference in predicted
    proportions (all analysed files set to treatment minus all set to
    control), with a delta-method SE from the robust covariance.
    """
    au = data.casefile_audit
    wide = au.pivot_table(index="participant_id", columns="wave",
                          values=["cases_audited", "father_contact_recorded"], aggfunc="first")
    if "followup" not in wide.columns.get_level_values(1) or "baseline" not in wide.columns.get_level_values(1):
        return CasefileResult(0, 0, note="not estimable: audits at both waves are needed")
    d = pd.DataFrame({
        "audited": wide[("cases_audited", "followup")],
        "recorded": wide[("father_contact_recorded", "followup")],
        "base": wide[("father_contact_recorded", "baseline")] / wide[("cases_audited", "baseline")],
    }).astype(float)
    d = d.replace([np.inf, -np.inf], np.nan).dropna()
    d = d[d["audited"] > 0]
    d = d.merge(data.participants[["participant_id", "team_id", "la"]], left_index=True, right_on="participant_id")
    d = d.merge(data.teams[["team_id", "arm"]], on="team_id")
    res = CasefileResult(len(d), d["team_id"].nunique())
    arms = d.groupby("arm")["team_id"].nunique()
    if len(arms) < 2 or arms.min() < 2:
        res.note = "not estimable: needs at least two analysed teams in each arm"
        return res
    # expand to one row per audited file
    reps = d["audited"].astype(int).to_numpy()
    long = d.loc[d.index.repeat(reps)].reset_index(drop=True)
    pos = np.concatenate([np.arange(r) for r in reps])
    long["y"] = (pos < np.repeat(d["recorded"].astype(int).to_numpy(), reps)).astype(float)
    X = pd.DataFrame({"const": 1.0, "treated": (long["arm"] == "treatment").astype(float), "base": long["base"]})
    if long["la"].nunique() > 1:
        X = X.join(pd.get_dummies(long["la"].astype(str), prefix="la", drop_first=True, dtype=float))
    groups = pd.factorize(long["team_id"])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.GEE(long["y"], X, groups=groups, family=sm.families.Binomial(),
                     cov_struct=sm.cov_struct.Exchangeable()).fit()
    b, V = fit.params.to_numpy(), fit.cov_params().to_numpy()
    k = list(X.columns).index("treated")
    z = stats.norm.ppf(0.975)
    se = float(np.sqrt(V[k, k]))
    res.odds_ratio = (float(np.exp(b[k])), se, float(np.exp(b[k] - z * se)), float(np.exp(b[k] + z * se)),
                      float(2 * stats.norm.sf(abs(b[k] / se))))
    X1, X0 = X.to_numpy().copy(), X.to_numpy().copy()
    X1[:, k], X0[:, k] = 1.0, 0.0
    p1, p0 = 1 / (1 + np.exp(-X1 @ b)), 1 / (1 + np.exp(-X0 @ b))
    rd = float(p1.mean() - p0.mean())
    grad = (X1 * (p1 * (1 - p1))[:, None]).mean(0) - (X0 * (p0 * (1 - p0))[:, None]).mean(0)
    rd_se = float(np.sqrt(grad @ V @ grad))
    res.risk_difference = (rd, rd_se, rd - z * rd_se, rd + z * rd_se, float(2 * stats.norm.sf(abs(rd / rd_se))))
    return res


@dataclass
class AttritionResult:
    """Overall and differential attrition of teams and participants."""

    table: pd.DataFrame
    rows: list[dict] = field(default_factory=list)



def attrition(data: TrialData, outcome: str = "confidence") -> AttritionResult:
    """Share of randomised teams and participants not in the analysed sample.

    The analysed sample is the primary model's for ``outcome`` (both waves
    scored). Differential attrition is the absolute difference between the
    arms' attrition rates, in percentage points.
    """
    analysed = analysis_frame(data, outcome)
    parts = data.participants.merge(data.teams[["team_id", "arm"]], on="team_id")
    recs, rows = [], []
    for unit, rand, kept in (
        ("teams", data.teams[["team_id", "arm"]].drop_duplicates(), set(analysed["team_id"])),
        ("participants", parts[["participant_id", "arm"]], set(analysed["participant_id"])),
    ):
        key = rand.columns[0]
        lost = ~rand[key].isin(kept)
        overall = 100 * lost.mean() if len(rand) else np.nan
        by_arm = lost.groupby(rand["arm"]).mean() * 100
        diff = abs(by_arm.get("treatment", np.nan) - by_arm.get("control", np.nan))
        note = f"analysed sample of the {outcome} model"
        rows += [
            est_row("attrition", unit, "overall_attrition_pct", overall, n=len(rand), note=note),
            est_row("attrition", unit, "differential_attrition_pct", diff, n=len(rand), note=note),
        ]
        recs.append({"unit": unit, "randomised": len(rand), "analysed": int((~lost).sum()),
                     "overall_attrition_pct": overall,
                     "treatment_attrition_pct": by_arm.get("treatment", np.nan),
                     "control_attrition_pct": by_arm.get("control", np.nan),
                     "differential_attrition_pct": diff})
    return AttritionResult(pd.DataFrame(recs), rows)


def primary_all(data: TrialData) -> list[PrimaryResult]:
    """The primary analysis of every scale of the instrument."""
    return [primary(data, s) for s in data.instrument.scale_names]


def primary_table(results: list[PrimaryResult]) -> pd.DataFrame:
    """One display row per scale: effect, 95% CI, p, Hedges' g with CI, ICC."""
    recs = []
    for r in results:
        recs.append({
            "outcome": r.outcome,
            "participants": r.n,
            "teams": r.n_clusters,
            "effect": r.estimate,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "p_value": r.p_value,
            "hedges_g": r.g.estimate if r.g else np.nan,
            "g_ci_low": r.g.ci_low if r.g else np.nan,
            "g_ci_high": r.g.ci_high if r.g else np.nan,
            "icc": r.icc,
            "note": r.note,
        })
    return pd.DataFrame(recs)
