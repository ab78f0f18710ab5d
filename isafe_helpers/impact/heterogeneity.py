"""Impact strand: per-LA arm effects and tests of heterogeneity across LAs (pooled scope)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from isafe_helpers.config import threshold
from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.design import design, why_not_estimable
from isafe_helpers.impact.primary_model import PrimaryResult, fit_primary
from isafe_helpers.impact.subgroups import ModeratorResults
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts_of
from isafe_helpers.stats.meta import cochran_q
from isafe_helpers.stats.random_slope import fit_team_and_slope

#: How the between-LA variance and the prediction interval are made (rows' note and the table's).
SPREAD_NOTE = (
    "REML fit of y ~ arm + baseline + LA + (1 | team) + (0 + arm | LA): tau2 is the variance of the arm effect "
    "across LAs; 95% prediction interval for the effect in a new LA = beta +/- t(k - 2) sqrt(tau2 + SE(beta)^2), "
    "k LAs, SE model-based (Higgins, Thompson & Spiegelhalter 2009; IntHout et al. 2016)"
)


def between_la_spread(frame: pd.DataFrame) -> dict:
    """tau2 of a random arm-by-LA effect and the 95% prediction interval, from one pooled analysis frame.

    Returns ``tau2, pi_estimate, pi_low, pi_high, k_las, spread_note`` (the note says why a number is
    missing: fewer than three LAs, not estimable, or a fit that did not converge, whose numbers are then
    not shown).
    """
    k = int(frame["la"].nunique())
    out = dict(tau2=np.nan, pi_estimate=np.nan, pi_low=np.nan, pi_high=np.nan, k_las=k, spread_note="")
    why = why_not_estimable(frame)
    if why:
        out["spread_note"] = why
        return out
    if k < 3:
        out["spread_note"] = "not estimable: a prediction interval needs at least three LAs (t on k - 2 df)"
        return out
    X, _ = design(frame)
    try:
        f = fit_team_and_slope(frame["followup"], X, frame["team_id"], frame["la"], frame["treated"])
    except (ValueError, np.linalg.LinAlgError) as exc:
        out["spread_note"] = f"not estimable: {exc}"
        return out
    if not f["converged"]:
        out["spread_note"] = f"did not converge: {f['message']}"
        return out
    beta, se2 = float(f["beta"][1]), float(f["cov_beta"][1, 1])
    half = float(stats.t.ppf(0.975, k - 2)) * np.sqrt(f["slope_variance"] + se2)
    out.update(tau2=float(f["slope_variance"]), pi_estimate=beta, pi_low=float(beta - half), pi_high=float(beta + half))
    return out


@dataclass
class LAHeterogeneity(Result):
    """Per-LA arm effects beside the pooled one, and the tests of heterogeneity across LAs.

    ``per_la``: one row per scale and LA (the primary model fitted within the
    LA, no LA term; Kenward-Roger SE, CI and p), plus ``la == "pooled"`` rows
    (the pooled primary model). ``tests``: one row per scale with the joint
    Kenward-Roger F test of the arm-by-LA interaction (from :func:`moderators`,
    the one place that model is fitted; columns ``wald_*``), Cochran's Q with
    its p and I^2 over the shown per-LA estimates. An LA estimate resting on
    fewer people than the disclosure threshold is withheld (``withheld`` True,
    numbers NaN, here and in the rows). An estimate whose fit did not converge
    is not shown (``converged`` False, numbers NaN) but its rows keep the
    fitted numbers (columns ``fit_*``) and the note.
    """

    per_la: pd.DataFrame
    tests: pd.DataFrame
    message: str = ""

    @property
    def estimable(self) -> bool:
        """True when there is a per-LA comparison to show (a scope of several LAs)."""
        return len(self.tests) > 0

    def rows(self) -> list[dict]:
        if not self.estimable:
            return []
        out = []
        for r in self.per_la[self.per_la["la"] != "pooled"].itertuples():
            out.append(
                est_row(
                    "per_la",
                    r.outcome,
                    f"treatment_effect_{r.la}",
                    r.fit_estimate,
                    r.fit_se,
                    r.fit_ci_low,
                    r.fit_ci_high,
                    r.fit_p_value,
                    n=r.n,
                    n_clusters=r.n_clusters,
                    note=r.note or "primary model fitted within the LA (no LA term); Kenward-Roger SE and df",
                )
            )
        for r in self.tests.itertuples():
            c = dict(n_clusters=r.n_las)
            out += [
                est_row(
                    "heterogeneity_la",
                    r.outcome,
                    "wald_f_arm_x_la",
                    r.wald_f,
                    p_value=r.p_wald,
                    note=f"Kenward-Roger F({r.wald_df1:g}, {r.wald_df2:.2f}); arm x LA interaction in the pooled model",
                    **c,
                ),
                est_row(
                    "heterogeneity_la",
                    r.outcome,
                    "cochran_q",
                    r.q,
                    p_value=r.p_q,
                    note=f"chi-square on {r.q_df:g} df over the per-LA estimates",
                    **c,
                ),
                # Q's degrees of freedom, which the heterogeneity table prints in a column of its own
                est_row("heterogeneity_la", r.outcome, "cochran_q_df", r.q_df, **c),
                est_row("heterogeneity_la", r.outcome, "i_squared_pct", r.i2, **c),
                est_row(
                    "heterogeneity_la",
                    r.outcome,
                    "tau2_arm_x_la",
                    r.tau2,
                    note=r.spread_note or SPREAD_NOTE,
                    n_clusters=r.k_las,
                ),
                est_row(
                    "heterogeneity_la",
                    r.outcome,
                    "prediction_interval",
                    r.pi_estimate,
                    None,
                    r.pi_low,
                    r.pi_high,
                    note=r.spread_note or SPREAD_NOTE,
                    n_clusters=r.k_las,
                ),
            ]
        return out

    def table(self) -> Table:
        """One row per scale: the joint F test of arm by LA, Cochran's Q and I-squared."""
        t = self.tests.assign(
            outcome=[label(o) for o in self.tests["outcome"]],
            wald_df=[f"{a:g}, {b:.1f}" for a, b in zip(self.tests["wald_df1"], self.tests["wald_df2"])],
        )
        return Table(
            t[
                [
                    "outcome",
                    "n_las",
                    "wald_f",
                    "wald_df",
                    "p_wald",
                    "q",
                    "q_df",
                    "p_q",
                    "i2",
                    "tau2",
                    "pi_low",
                    "pi_high",
                ]
            ],
            [
                Col("outcome", "Outcome", "text"),
                Col("n_las", "LAs with an estimate", "units"),
                Col("wald_f", "Kenward-Roger F (arm by LA)", "number", 2),
                Col("wald_df", "F degrees of freedom", "text"),
                Col("p_wald", "p (F test)", "p"),
                Col("q", "Cochran's Q", "number", 2),
                Col("q_df", "Q degrees of freedom", "int"),
                Col("p_q", "p (Q)", "p"),
                Col("i2", "I-squared (%)", "number", 0),
                Col("tau2", "Between-LA variance of the effect (tau-squared)", "number", 3),
                Col("pi_low", "95% prediction interval, low", "number", 3),
                Col("pi_high", "95% prediction interval, high", "number", 3),
            ],
            caption="Does the effect differ between LAs? Tests of heterogeneity",
            facts=facts_of(
                "impact",
                [("heterogeneity_la", o) for o in self.tests["outcome"]],
                n_las=("wald_f_arm_x_la", "n_clusters"),
                wald_f=("wald_f_arm_x_la", "estimate"),
                p_wald=("wald_f_arm_x_la", "p_value"),
                q=("cochran_q", "estimate"),
                q_df=("cochran_q_df", "estimate"),
                p_q=("cochran_q", "p_value"),
                i2=("i_squared_pct", "estimate"),
                tau2=("tau2_arm_x_la", "estimate"),
                pi_low=("prediction_interval", "ci_low"),
                pi_high=("prediction_interval", "ci_high"),
            ),
            notes=[
                "Exploratory: the trial was not powered to compare LAs; the tests describe and do not judge.",
                "F: Kenward-Roger F test that every arm-by-LA term of the pooled model is zero. Cochran's Q "
                "(chi-squared on the LAs with an estimate minus one) and I-squared over the per-LA estimates.",
                "Tau-squared: the variance of the effect across LAs, from the pooled model with a random arm effect "
                "per LA (and a random team intercept), REML. Prediction interval: where the effect in a new LA "
                "like these would lie, pooled estimate +/- t on (LAs - 2) df times the square root of "
                "tau-squared plus the squared SE of the pooled estimate; blank with fewer than three LAs.",
            ],
        )


def la_heterogeneity(data: TrialData, pooled: list, mods: ModeratorResults) -> LAHeterogeneity:
    """Per-LA arm effects, each LA's own primary model, beside ``pooled`` (the scope's primary results).

    Each LA's model is fitted here from the scope's data, so the pooled page
    does not depend on any other scope's results: one analysis frame per scale
    (:func:`~isafe_helpers.data.frames.analysis_frame`), split by LA in one
    grouping pass (each LA's rows in the order ``data.for_scope(la)`` gives
    them, so the fits are those of :func:`~isafe_helpers.impact.primary_model.primary`
    on the LA's own data, to the last bit). The heterogeneity tests are the
    joint Kenward-Roger F test of arm x LA from ``mods`` (:func:`moderators`)
    and Cochran's Q / I^2 across the per-LA estimates (independent samples;
    inverse-variance weights from the per-LA Kenward-Roger SEs).
    """
    if len(data.las) < 2:
        return LAHeterogeneity(
            pd.DataFrame(),
            pd.DataFrame(),
            message=(
                "This page covers one LA, so there is no comparison across LAs here: the per-LA effects and the "
                "heterogeneity tests are on the pooled trial page."
            ),
        )
    thr = threshold()
    fitted: dict[tuple[str, str], PrimaryResult] = {}
    spread: dict[str, dict] = {}
    for scale in data.instrument.scale_names:
        frame = analysis_frame(data, scale)
        spread[scale] = between_la_spread(frame)
        groups = {la: idx for la, idx in frame.groupby("la", sort=False).indices.items()}
        for la in data.las:
            sub = frame.iloc[groups.get(la, np.array([], dtype=int))].reset_index(drop=True)
            fitted[(la, scale)] = fit_primary(sub, scale, effect_sizes=False)
    recs = []
    for la in data.las:
        for r in (fitted[(la, s)] for s in data.instrument.scale_names):
            withheld = r.n < thr
            ok = np.isfinite(r.estimate) and not withheld and not r.withheld
            keep = not withheld
            recs.append(
                dict(
                    outcome=r.outcome,
                    la=la,
                    n=r.n,
                    n_clusters=r.n_clusters,
                    estimate=r.estimate if ok else np.nan,
                    se=r.se if ok else np.nan,
                    ci_low=r.ci_low if ok else np.nan,
                    ci_high=r.ci_high if ok else np.nan,
                    p_value=r.p_value if ok else np.nan,
                    withheld=withheld,
                    converged=r.converged,
                    fit_estimate=r.estimate if keep else np.nan,
                    fit_se=r.se if keep else np.nan,
                    fit_ci_low=r.ci_low if keep else np.nan,
                    fit_ci_high=r.ci_high if keep else np.nan,
                    fit_p_value=r.p_value if keep else np.nan,
                    note=(f"withheld: fewer than {thr} analysed people" if withheld else r.note),
                )
            )
    for r in pooled:
        show = not r.withheld
        recs.append(
            dict(
                outcome=r.outcome,
                la="pooled",
                n=r.n,
                n_clusters=r.n_clusters,
                estimate=r.estimate if show else np.nan,
                se=r.se if show else np.nan,
                ci_low=r.ci_low if show else np.nan,
                ci_high=r.ci_high if show else np.nan,
                p_value=r.p_value if show else np.nan,
                withheld=False,
                converged=r.converged,
                note=r.note,
            )
        )
    per = pd.DataFrame(recs)
    mt = mods.frame
    tests = []
    for scale in data.instrument.scale_names:
        w = mt[(mt["outcome"] == scale) & (mt["quantity"] == "wald_f_arm_x_la")]
        k = mt[(mt["outcome"] == scale) & (mt["moderator"] == "la") & (mt["kind"] == "interaction")]
        e = per[(per["outcome"] == scale) & (per["la"] != "pooled") & per["estimate"].notna()]
        cq = cochran_q(e["estimate"], e["se"])
        tests.append(
            dict(
                outcome=scale,
                n_las=len(e),
                wald_f=float(w["estimate"].iloc[0]) if len(w) else np.nan,
                wald_df1=float(len(k)) if len(w) else np.nan,
                wald_df2=float(w["df"].iloc[0]) if len(w) else np.nan,
                p_wald=float(w["p_value"].iloc[0]) if len(w) else np.nan,
                q=cq["q"],
                q_df=cq["df"],
                p_q=cq["p_value"],
                i2=cq["i2"],
                **spread[scale],
            )
        )
    return LAHeterogeneity(
        per,
        pd.DataFrame(tests),
        message=(
            "Each LA's effect comes from the primary model fitted within that LA (no LA term); the pooled effect is "
            "the primary model's; every interval uses Kenward-Roger standard errors and degrees of freedom. "
            "Heterogeneity: the joint Kenward-Roger F test of the arm-by-LA interaction in the pooled model and, "
            "descriptively, Cochran's Q and I\u00b2 over the per-LA estimates. Exploratory: the trial was not "
            "powered to compare LAs, and the per-LA estimates describe each LA; they do not judge it."
        ),
    )
