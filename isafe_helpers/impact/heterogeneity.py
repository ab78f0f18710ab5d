"""Impact strand: per-LA arm effects and tests of heterogeneity across LAs (pooled scope)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from isafe_helpers.config import threshold
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.primary_model import primary
from isafe_helpers.impact.subgroups import ModeratorResults
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table
from isafe_helpers.stats.meta import cochran_q


@dataclass
class LAHeterogeneity(Result):
    """Per-LA arm effects beside the pooled one, and the tests of heterogeneity across LAs.

    ``per_la``: one row per scale and LA (the primary model fitted within the
    LA, no LA term; Satterthwaite CI), plus ``la == "pooled"`` rows (the pooled
    primary model). ``tests``: one row per scale with the joint Wald F test of
    the arm-by-LA interaction (from :func:`moderators`, the one place that
    model is fitted), Cochran's Q with its p and I^2 over the estimable per-LA
    estimates. An LA estimate resting on fewer people than the disclosure
    threshold is withheld (``withheld`` True, numbers NaN).
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
                    r.estimate,
                    r.se,
                    r.ci_low,
                    r.ci_high,
                    r.p_value,
                    n=r.n,
                    n_clusters=r.n_clusters,
                    note=r.note or "primary model fitted within the LA (no LA term)",
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
                    note=f"F({r.wald_df1:g}, {r.wald_df2:g}); arm x LA interaction in the pooled model",
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
                est_row("heterogeneity_la", r.outcome, "i_squared_pct", r.i2, **c),
            ]
        return out

    def table(self) -> Table:
        """One row per scale: the joint F test of arm by LA, Cochran's Q and I-squared."""
        t = self.tests.assign(
            outcome=[label(o) for o in self.tests["outcome"]],
            wald_df=[f"{a:g}, {b:g}" for a, b in zip(self.tests["wald_df1"], self.tests["wald_df2"])],
        )
        return Table(
            t[["outcome", "n_las", "wald_f", "wald_df", "p_wald", "q", "q_df", "p_q", "i2"]],
            [
                Col("outcome", "Outcome", "text"),
                Col("n_las", "LAs with an estimate", "units"),
                Col("wald_f", "F (arm by LA)", "number", 2),
                Col("wald_df", "F degrees of freedom", "text"),
                Col("p_wald", "p (F test)", "p"),
                Col("q", "Cochran's Q", "number", 2),
                Col("q_df", "Q degrees of freedom", "int"),
                Col("p_q", "p (Q)", "p"),
                Col("i2", "I-squared (%)", "number", 0),
            ],
            caption="Does the effect differ between LAs? Tests of heterogeneity",
        )


def la_heterogeneity(data: TrialData, pooled: list, mods: ModeratorResults) -> LAHeterogeneity:
    """Per-LA arm effects, each LA's own primary model, beside ``pooled`` (the scope's primary results).

    Each LA's model is fitted here from the scope's data (``data.for_scope(la)``),
    so the pooled page does not depend on any other scope's results. The
    heterogeneity tests are the joint Wald F test of arm x LA from ``mods``
    (:func:`moderators`) and Cochran's Q / I^2 across the per-LA estimates
    (independent samples; inverse-variance weights from the per-LA SEs).
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
    recs = []
    for la in data.las:
        sub = data.for_scope(la)
        for r in (primary(sub, s) for s in data.instrument.scale_names):
            withheld = r.n < thr
            ok = np.isfinite(r.estimate) and not withheld
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
                    note=(f"withheld: fewer than {thr} analysed people" if withheld else r.note),
                )
            )
    for r in pooled:
        recs.append(
            dict(
                outcome=r.outcome,
                la="pooled",
                n=r.n,
                n_clusters=r.n_clusters,
                estimate=r.estimate,
                se=r.se,
                ci_low=r.ci_low,
                ci_high=r.ci_high,
                p_value=r.p_value,
                withheld=False,
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
            )
        )
    return LAHeterogeneity(
        per,
        pd.DataFrame(tests),
        message=(
            "Each LA's effect comes from the primary model fitted within that LA (no LA term); the pooled effect is "
            "the primary model's. Heterogeneity: the joint Wald F test of the arm-by-LA interaction in the pooled "
            "model (denominator df: teams minus team-level coefficients) and, descriptively, Cochran's Q and I\u00b2 "
            "over the per-LA estimates. Exploratory: the trial was not powered to compare LAs."
        ),
    )
