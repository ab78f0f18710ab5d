"""Impact strand: the cluster-RCT analysis of the five survey scales, the
case-file outcome and attrition.

Primary model, for each scale: follow-up score on arm, baseline score and
LA fixed effects (the randomisation strata; dropped in a single-LA scope),
with a random intercept for team, fitted by exact REML
(:mod:`isafe_helpers.mixed`) on participants with both waves scored, as
randomised. The p-value and CI of the treatment effect use Satterthwaite
degrees of freedom (as lmerTest). Effect sizes are Hedges' g on the total
variance (:mod:`isafe_helpers.effect_size`).

The rest of the strand: trial flow and baseline equivalence in
:mod:`isafe_helpers.impact_flow`; multiple imputation, randomisation inference
and CR2 in :mod:`isafe_helpers.impact_robust`; the CACE in
:mod:`isafe_helpers.impact_cace`; moderators in
:mod:`isafe_helpers.impact_moderators`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
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
class PrimaryResult(ArmEffect):
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
    try:
        cond = fit_formula_free(df, "followup", covs, "team_id")
        uncond = fit_formula_free(df, "followup", [], "team_id")
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
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
    alpha: float = np.nan  # working exchangeable correlation
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
    control), with a delta-method SE from the robust covariance. CIs and
    p-values refer to Student's t on ``G - p`` degrees of freedom (``G`` teams,
    ``p`` coefficients), not the normal: the robust SE is unreliable with few
    teams (a single LA has about 9), and the t reference is the usual
    small-sample allowance for it (with 60 teams it barely differs from z).
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
    X = pd.DataFrame({"const": 1.0, "treated": (d["arm"] == "treatment").astype(float), "base": d["base"]})
    if d["la"].nunique() > 1:
        X = X.join(pd.get_dummies(d["la"].astype(str), prefix="la", drop_first=True, dtype=float))
    dfree = res.n_clusters - X.shape[1]
    if dfree < 1:
        res.note = "not estimable: fewer teams than coefficients"
        return res
    out = gee_binary(d["recorded"].to_numpy(float), d["audited"].to_numpy(float), X, d["team_id"].to_numpy(),
                     "treated", df=dfree)
    res.odds_ratio, res.risk_difference = out["odds_ratio"], out["risk_difference"]
    res.alpha = out["alpha"]
    res.note = "; ".join(s for s in (out["note"], f"robust SE, t on {dfree} df") if s)
    return res


def gee_logit_exchangeable(events, trials, X, cluster, tol: float = 1e-10, maxiter: int = 100) -> dict:
    """Binomial GEE (logit link, exchangeable working correlation within cluster), robust covariance.

    Each row is a unit of ``trials`` binary observations (files) sharing the
    covariates ``X``, of which ``events`` are 1; the model is the file-level
    GEE (every file of a cluster exchangeable with every other), computed from
    per-unit and per-cluster sums so that no file-level array is built.
    With ``R^-1 = (I - c2 11') / (1 - alpha)``, ``c2 = alpha / (1 - alpha + n alpha)``,
    the Fisher-scoring step and the sandwich use only cluster sums.
    ``alpha`` is the moment estimator on Pearson residuals without a
    degrees-of-freedom correction (as R's geepack and statsmodels with
    ``ddof_scale=0``): ``alpha = sum_pairs r_j r_k / (phi * n_pairs)``,
    ``phi = sum r^2 / n_files``. Iterates (alpha update, one scoring step,
    halved while it does not reduce the norm of the estimating equations)
    until the largest coefficient step is below ``tol``; starts with five
    independence (GLM) steps.

    Returns ``params``, ``cov`` (robust), ``alpha``, ``converged`` and ``iterations``.
    """
    ys = np.asarray(events, float)
    m = np.asarray(trials, float)
    X = np.asarray(X, float)
    codes, uniq = pd.factorize(pd.Series(cluster))
    G = len(uniq)

    def tsum(w):
        out = np.zeros((G,) + w.shape[1:])
        np.add.at(out, codes, w)
        return out

    n = np.bincount(codes, weights=m, minlength=G)
    npairs = float(np.sum(n * (n - 1) / 2))
    b = np.zeros(X.shape[1])
    p0 = np.clip(ys.sum() / m.sum(), 1e-6, 1 - 1e-6)
    b[0] = np.log(p0 / (1 - p0)) if np.allclose(X[:, 0], 1) else 0.0
    alpha, converged, it = 0.0, False, 0

    def pieces(b, alpha, update_alpha):
        mu = 1 / (1 + np.exp(-(X @ b)))
        v = mu * (1 - mu)
        sv = np.sqrt(v)
        rsum = (ys - m * mu) / sv
        rsq = (ys * (1 - mu) ** 2 + (m - ys) * mu**2) / v
        R1 = np.bincount(codes, weights=rsum, minlength=G)
        if update_alpha and npairs > 0:
            phi = rsq.sum() / m.sum()
            alpha = float(np.sum((R1**2 - np.bincount(codes, weights=rsq, minlength=G)) / 2) / (phi * npairs))
        c1 = 1 / (1 - alpha)
        c2 = alpha / (1 - alpha + n * alpha)
        S = tsum(X * (m * sv)[:, None])
        Bm = c1 * ((X * (m * v)[:, None]).T @ X - (S.T * c2) @ S)
        U = c1 * (tsum(X * (ys - m * mu)[:, None]) - (c2 * R1)[:, None] * S)
        return Bm, U, alpha

    # Fisher scoring, first with alpha = 0 (the independence GLM), then with
    # alpha updated every iteration; a step that does not reduce the norm of
    # the estimating equations (at the current alpha) is halved, so that small
    # samples do not oscillate. The solution is the same GEE fixed point.
    for it in range(1, maxiter + 1):
        Bm, U, alpha = pieces(b, alpha, update_alpha=it > 5)
        score = U.sum(0)
        step = np.linalg.solve(Bm, score)
        norm0 = np.linalg.norm(score)
        for _ in range(30):
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                new = np.linalg.norm(pieces(b + step, alpha, update_alpha=False)[1].sum(0))
            if np.isfinite(new) and new <= norm0 * (1 + 1e-8) or np.max(np.abs(step)) < tol:
                break
            step = step / 2
        b = b + step
        if np.max(np.abs(step)) < tol and it > 6:
            converged = True
            break
    Bm, U, alpha = pieces(b, alpha, update_alpha=True)
    Bi = np.linalg.inv(Bm)
    return dict(params=b, cov=Bi @ (U.T @ U) @ Bi, alpha=alpha, converged=converged, iterations=it)


def gee_binary(events, trials, X: pd.DataFrame, cluster, term: str, df: float | None = None) -> dict:
    """File-level binary GEE (:func:`gee_logit_exchangeable`) and the effects of ``term``.

    Returns ``odds_ratio`` and ``risk_difference`` tuples (estimate, SE, CI
    low, CI high, p; the SE of the odds ratio is on the log scale), the fitted
    coefficients ``params``, their robust covariance ``cov``, the working
    correlation ``alpha`` and ``note`` (says when the fit did not converge:
    never silent). The risk difference is marginally standardised over files:
    the mean predicted probability with ``term`` set to 1 for every file minus
    that with it set to 0; its SE is by the delta method from the robust covariance.
    CIs and p-values use the normal reference, or Student's t on ``df`` degrees
    of freedom when ``df`` is given (the small-sample reference for few clusters).
    """
    m = np.asarray(trials, float)
    fit = gee_logit_exchangeable(events, m, X.to_numpy(float), cluster)
    note = "" if fit["converged"] else f"did not converge: GEE stopped after {fit['iterations']} iterations"
    b, V = fit["params"], fit["cov"]
    k = list(X.columns).index(term)
    ref = stats.norm if df is None else stats.t(df)
    z = ref.ppf(0.975)
    se = float(np.sqrt(V[k, k]))
    odds = (float(np.exp(b[k])), se, float(np.exp(b[k] - z * se)), float(np.exp(b[k] + z * se)),
            float(2 * ref.sf(abs(b[k] / se))))
    X1, X0 = X.to_numpy(float).copy(), X.to_numpy(float).copy()
    X1[:, k], X0[:, k] = 1.0, 0.0
    p1, p0 = 1 / (1 + np.exp(-X1 @ b)), 1 / (1 + np.exp(-X0 @ b))
    w = m / m.sum()
    rd = float(w @ (p1 - p0))
    grad = w @ (X1 * (p1 * (1 - p1))[:, None]) - w @ (X0 * (p0 * (1 - p0))[:, None])
    rd_se = float(np.sqrt(grad @ V @ grad))
    return dict(odds_ratio=odds, params=b, cov=V, alpha=fit["alpha"], note=note,
                risk_difference=(rd, rd_se, rd - z * rd_se, rd + z * rd_se, float(2 * ref.sf(abs(rd / rd_se)))))


#: Points of the What Works Clearinghouse cautious attrition boundary (methods.md):
#: overall attrition (%) -> largest differential attrition (percentage points)
#: still "low". Between the points the boundary is interpolated linearly; the
#: WWC handbook tabulates every whole percent, and that full table is not
#: reproduced here: this is the documented approximation. From 50% the boundary falls linearly to 0 at
#: :data:`WWC_MAX_OVERALL`, at and above which attrition is high whatever the
#: differential.
WWC_CAUTIOUS_POINTS = ((0.0, 5.7), (10.0, 6.3), (20.0, 5.4), (30.0, 4.1), (40.0, 2.6), (50.0, 1.0))
WWC_MAX_OVERALL = 58.0


def wwc_boundary(overall_pct: float) -> float:
    """Largest differential attrition (pp) that is "low" at ``overall_pct`` (cautious boundary).

    Linear interpolation between :data:`WWC_CAUTIOUS_POINTS`, then down to 0 at
    58%; ``-inf`` (nothing is low) at 58% and above.

    >>> wwc_boundary(10.0), wwc_boundary(15.0), wwc_boundary(60.0)
    (6.3, 5.85, -inf)
    """
    x = float(overall_pct)
    if not 0.0 <= x <= 100.0:
        raise ValueError(f"overall attrition must be a percentage in 0-100, got {overall_pct}")
    if x >= WWC_MAX_OVERALL:
        return -np.inf
    xs = [p[0] for p in WWC_CAUTIOUS_POINTS] + [WWC_MAX_OVERALL]
    ys = [p[1] for p in WWC_CAUTIOUS_POINTS] + [0.0]
    return round(float(np.interp(x, xs, ys)), 10)


def wwc_judgement(overall_pct: float, differential_pct: float) -> str:
    """``"low"`` or ``"high"`` attrition against the WWC cautious boundary (:func:`wwc_boundary`)."""
    if not (np.isfinite(overall_pct) and np.isfinite(differential_pct)):
        return "not assessable"
    return "low" if differential_pct <= wwc_boundary(overall_pct) else "high"


@dataclass
class AttritionResult:
    """Overall and differential attrition of teams and participants, judged against the WWC."""

    table: pd.DataFrame
    rows: list[dict] = field(default_factory=list)


def attrition(data: TrialData, outcome: str = "confidence") -> AttritionResult:
    """Share of randomised teams and participants not in the analysed sample.

    The analysed sample is the primary model's for ``outcome`` (both waves
    scored). Differential attrition is the absolute difference between the
    arms' attrition rates, in percentage points. Each pair is judged against
    the WWC cautious boundary (:func:`wwc_judgement`): the row
    ``wwc_cautious_boundary_pct`` holds the boundary at the observed overall
    attrition and its note the judgement.
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
        verdict = wwc_judgement(overall, diff)
        bound = wwc_boundary(overall) if np.isfinite(overall) else np.nan
        rows += [
            est_row("attrition", unit, "overall_attrition_pct", overall, n=len(rand), note=note),
            est_row("attrition", unit, "differential_attrition_pct", diff, n=len(rand), note=note),
            est_row("attrition", unit, "wwc_cautious_boundary_pct", bound if np.isfinite(bound) else 0.0,
                    n=len(rand), note=f"WWC cautious boundary: {verdict} attrition"),
        ]
        recs.append({"unit": unit, "randomised": len(rand), "analysed": int((~lost).sum()),
                     "overall_attrition_pct": overall,
                     "treatment_attrition_pct": by_arm.get("treatment", np.nan),
                     "control_attrition_pct": by_arm.get("control", np.nan),
                     "differential_attrition_pct": diff,
                     "wwc_boundary_pct": bound if np.isfinite(bound) else 0.0,
                     "wwc_attrition": verdict})
    return AttritionResult(pd.DataFrame(recs), rows)


def primary_all(data: TrialData) -> list[PrimaryResult]:
    """The primary analysis of every scale of the instrument."""
    return [primary(data, s) for s in data.instrument.scale_names]


def scope_caveat(data: TrialData) -> str:
    """What the page's scope means for the analysis (a plain caveat for a single LA)."""
    if len(data.las) > 1:
        return (f"Pooled trial: {len(data.las)} LAs, LA fixed effects (the randomisation strata) in every model.")
    arms = data.teams.drop_duplicates("team_id")["arm"].value_counts()
    nt, nc = int(arms.get("treatment", 0)), int(arms.get("control", 0))
    if min(nt, nc) < 2:
        return (f"**Single LA ({data.las[0]}): the arms cannot be compared here.** It has {nt} treatment and "
                f"{nc} control team(s); every comparison needs at least two teams in each arm, so the effect "
                "estimates below are reported as not estimable (descriptive tables still appear). The pooled "
                "trial and the other LAs are analysed as usual.")
    return (f"**Single LA ({data.las[0]}), {data.teams['team_id'].nunique()} teams: read with care.** "
            "The models have no LA term. With this few teams no test here uses the normal (z) approximation: "
            "the primary model's CIs and p-values use Student's t with Satterthwaite degrees of freedom, the "
            "robustness section adds randomisation inference (every possible allocation of this LA's teams "
            "enumerated when there are at most 5,000, so exact) and CR2 cluster-robust SEs with Satterthwaite df, and the case-file model "
            "uses t on teams minus coefficients. Even so, the estimates are imprecise (see the minimum "
            "detectable effect size below) and a team's idiosyncrasies weigh heavily. This is one LA of the "
            "trial, not the trial's result.")


def convergence_message(results: list[PrimaryResult]) -> str:
    """One sentence for the page: every fit converged, or which did not and why."""
    bad = [f"{r.outcome} ({r.note})" for r in results if r.note]
    if not bad:
        return "Every REML fit (primary and unconditional model, each scale) converged."
    return "Not every analysis could be reported as usual: " + "; ".join(bad) + "."


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
            "g_conditional": r.g_conditional.estimate if r.g_conditional else np.nan,
            "icc": r.icc,
            "team_variance": r.team_variance,
            "residual_variance": r.residual_variance,
            "converged": ("yes" if r.converged else "no") if np.isfinite(r.estimate) else "not fitted",
            "note": r.note,
        })
    return pd.DataFrame(recs)


#: Percentiles drawn as the whiskers of the change box plots (never the extremes, which are one person's value).
CHANGE_WHISKERS = (10, 90)


def change_summary(data: TrialData) -> pd.DataFrame:
    """Distribution of change (follow-up minus baseline) by scale and arm, as summary statistics only.

    One row per scale and arm of the analysed sample (both waves scored): ``n``,
    ``mean``, and the 10th, 25th, 50th, 75th and 90th percentiles (linear
    interpolation). No individual value is returned: the whiskers of the box
    plot are the 10th and 90th percentiles, not the extremes. An arm with fewer
    analysed people than the disclosure threshold
    (:func:`isafe_helpers.disclosure.threshold`) is withheld: ``withheld`` is
    True and its statistics are NaN.
    """
    from .disclosure import threshold

    thr = threshold()
    lo, hi = CHANGE_WHISKERS
    recs = []
    for scale in data.instrument.scale_names:
        df = analysis_frame(data, scale)
        for arm in ("treatment", "control"):
            ch = (df.loc[df["arm"] == arm, "followup"] - df.loc[df["arm"] == arm, "baseline"]).to_numpy(float)
            rec = dict(outcome=scale, arm=arm, n=len(ch), withheld=len(ch) < thr)
            q = np.percentile(ch, [lo, 25, 50, 75, hi]) if len(ch) and not rec["withheld"] else [np.nan] * 5
            rec.update(mean=float(ch.mean()) if len(ch) and not rec["withheld"] else np.nan,
                       p_low=q[0], q1=q[1], median=q[2], q3=q[3], p_high=q[4])
            recs.append(rec)
    return pd.DataFrame(recs)
