"""Impact strand: exploratory moderator analyses.

For every scale, three models, one per moderator, each the primary model
(follow-up on arm, baseline, LA fixed effects, random intercept for team;
REML, Satterthwaite df) plus the moderator's main effect and its interaction
with arm:

- ``age``: age band (reference: the first band present in both arms);
- ``experience``: years qualified, centred at :data:`YEARS_CENTRE` years, linear;
- ``la``: LA (pooled trial scope only; LA's main effect is already in the model).

Participants with the moderator missing are left out of that model. A level
(age band, LA) is kept only when it has at least :data:`MIN_PER_ARM` analysed
participants in each arm; dropped levels are named in the note. The
interaction coefficients (difference of the arm effect from the reference
level, or per extra year qualified) form one family over all moderators and
scales of the scope, and their p-values are Holm-adjusted across it. Each
model is also refitted with arm nested in the moderator's levels, which gives
the arm effect within each level (same model, reparameterised). All of this is
exploratory: the trial was not powered for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from .contract import AGE_BANDS
from .disclosure import threshold
from .estimates import est_row
from .impact import analysis_frame, primary
from .impact_robust import design
from .loading import TrialData
from .mixed import fit_random_intercept

Moderator = Literal["age", "experience", "la"]
MODERATORS: tuple[Moderator, ...] = ("age", "experience", "la")
ANALYSIS = {"age": "subgroup_age", "experience": "subgroup_experience", "la": "subgroup_la"}
#: Years qualified at which the arm effect of the experience model is read (the centring value).
YEARS_CENTRE = 10.0
#: Analysed participants needed in each arm for a level to enter a moderator model.
MIN_PER_ARM = 2
EXPLORATORY = "exploratory"


def holm(p) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (NaN stays NaN).

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def joint_wald(fit, idx: list[int], df2: float) -> dict:
    """Joint Wald F test that the coefficients ``idx`` of a mixed fit are all zero.

    ``F = b' V^-1 b / q`` (``b`` the ``q`` coefficients, ``V`` their model-based
    covariance), referred to ``F(q, df2)``. For the arm-by-LA interaction the
    caller passes the between-team degrees of freedom ``df2 = J - 2K`` (``J``
    teams, ``K`` LAs: intercept, ``K - 1`` LA, arm and ``K - 1`` interaction
    coefficients are all team-level), as SAS's ``DDFM=BETWITHIN``. Returned
    with the keys of :func:`_tidy` (``estimate`` is F, ``df`` is ``df2``; no SE or CI).

    >>> from types import SimpleNamespace
    >>> f = SimpleNamespace(beta=np.array([0.0, 1.0, 2.0]), cov_beta=np.diag([1.0, 1.0, 4.0]))
    >>> round(joint_wald(f, [1, 2], 10)["estimate"], 6)  # (1/1 + 4/4) / 2
    1.0
    """
    b = np.asarray(fit.beta, float)[idx]
    V = np.asarray(fit.cov_beta, float)[np.ix_(idx, idx)]
    q = len(idx)
    F = float(b @ np.linalg.solve(V, b)) / q
    p = float(stats.f.sf(F, q, df2)) if df2 >= 1 else np.nan
    return dict(estimate=F, se=np.nan, df=float(df2), ci_low=np.nan, ci_high=np.nan, p_value=p)


def _tidy(fit, keep: list[int]) -> list[dict]:
    recs = []
    for k in keep:
        b, se, d = float(fit.beta[k]), float(fit.se[k]), float(fit.df[k])
        tq = stats.t.ppf(0.975, d)
        recs.append(dict(term=fit.names[k], estimate=b, se=se, df=d, ci_low=b - tq * se, ci_high=b + tq * se,
                         p_value=float(2 * stats.t.sf(abs(b / se), d))))
    return recs


@dataclass
class ModeratorResults:
    """Every moderator model of the scope. ``table``: one row per reported term."""

    table: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)  # arm effect by years qualified

    def rows(self) -> list[dict]:
        out = []
        for r in self.table.itertuples():
            p = r.p_holm if r.kind == "interaction" else r.p_value
            what = {"interaction": "p Holm-adjusted across the family",
                    "joint": f"joint Wald F test of every arm x LA term, denominator df {r.df:g} (between teams)",
                    }.get(r.kind, "unadjusted p")
            note = r.note if r.note.startswith("not estimable") else "; ".join(
                s for s in (EXPLORATORY, what, r.note) if s)
            out.append(est_row(ANALYSIS[r.moderator], r.outcome, r.quantity, r.estimate, r.se, r.ci_low, r.ci_high,
                               p, n=r.n, n_clusters=r.n_clusters, note=note))
        return out

    def display(self) -> pd.DataFrame:
        t = self.table
        return t[["outcome", "moderator", "quantity", "estimate", "ci_low", "ci_high", "p_value", "p_holm", "note"]]


def _levels(df: pd.DataFrame, col: str, order) -> tuple[list, list]:
    counts = df.groupby([col, "arm"]).size().unstack(fill_value=0).reindex(columns=["treatment", "control"],
                                                                            fill_value=0)
    present = [lev for lev in order if lev in counts.index]
    kept = [lev for lev in present if counts.loc[lev].min() >= MIN_PER_ARM]
    return kept, [lev for lev in present if lev not in kept]


def _one(df: pd.DataFrame, outcome: str, moderator: Moderator) -> tuple[list[dict], pd.DataFrame]:
    """Rows (interaction and within-level effects) of one moderator model for one scale."""
    notes = []
    if moderator == "experience":
        df = df[df["years_qualified"].notna()].copy()
        df["yq"] = df["years_qualified"].astype(float) - YEARS_CENTRE
        levels = []
    else:
        col = "age_band" if moderator == "age" else "la"
        df = df[df[col].notna()].copy()
        df[col] = df[col].astype(str)
        order = AGE_BANDS if moderator == "age" else sorted(df["la"].unique())
        levels, dropped = _levels(df, col, order)
        if dropped:
            notes.append(f"left out (fewer than {MIN_PER_ARM} per arm): {', '.join(dropped)}")
        df = df[df[col].isin(levels)]
    base = dict(outcome=outcome, moderator=moderator, n=len(df), n_clusters=df["team_id"].nunique())
    arms = df.groupby("arm")["team_id"].nunique()
    if len(arms) < 2 or arms.min() < 2 or (moderator != "experience" and len(levels) < 2):
        why = "not estimable: needs two levels each with both arms" if moderator != "experience" else \
            "not estimable: needs at least two analysed teams in each arm"
        return [dict(base, quantity="interaction", kind="interaction", estimate=np.nan, se=np.nan, df=np.nan,
                     ci_low=np.nan, ci_high=np.nan, p_value=np.nan, note="; ".join([why, *notes]))], pd.DataFrame()
    X, names = design(df)
    y, teams = df["followup"].to_numpy(float), df["team_id"].to_numpy()
    t = df["treated"].to_numpy(float)
    recs, curve = [], pd.DataFrame()
    note = "; ".join(notes)
    try:
        if moderator == "experience":
            yq = df["yq"].to_numpy(float)
            fit = fit_random_intercept(y, np.column_stack([X, yq, t * yq]), teams, names + ["yq", "treated:yq"])
            k_int, k_t = len(names) + 1, 1
            for r, q in zip(_tidy(fit, [k_int, k_t]), ("interaction_per_year", f"effect_at_{YEARS_CENTRE:g}_years")):
                recs.append(dict(base, **r, quantity=q, kind="interaction" if q.startswith("inter") else "effect",
                                 note=note))
            grid = np.linspace(0.0, float(np.nanpercentile(df["years_qualified"], 95)), 41)
            c = np.zeros((grid.size, len(fit.beta)))
            c[:, k_t], c[:, k_int] = 1.0, grid - YEARS_CENTRE
            est = c @ fit.beta
            se = np.sqrt(np.einsum("ij,jk,ik->i", c, fit.cov_beta, c))
            tq = stats.t.ppf(0.975, fit.df[k_t])
            curve = pd.DataFrame(dict(outcome=outcome, years=grid, effect=est, ci_low=est - tq * se,
                                      ci_high=est + tq * se))
        else:
            col = "age_band" if moderator == "age" else "la"
            v = df[col].to_numpy()
            D = np.column_stack([(v == lev).astype(float) for lev in levels])
            if moderator == "age":  # main effects of the band (LA's are already in X)
                Xm, nm = np.column_stack([X, D[:, 1:]]), names + [f"age[T.{lev}]" for lev in levels[1:]]
            else:
                Xm, nm = X, names
            p0 = Xm.shape[1]
            fit = fit_random_intercept(y, np.column_stack([Xm, t[:, None] * D[:, 1:]]), teams,
                                       nm + [f"treated:{lev}" for lev in levels[1:]])
            for lev, r in zip(levels[1:], _tidy(fit, list(range(p0, p0 + len(levels) - 1)))):
                recs.append(dict(base, **r, quantity=f"interaction_{lev}_vs_{levels[0]}", kind="interaction",
                                 note=note))
            if moderator == "la":
                recs.append(dict(base, **joint_wald(fit, list(range(p0, p0 + len(levels) - 1)),
                                                    df["team_id"].nunique() - 2 * len(levels)),
                                 quantity="wald_f_arm_x_la", kind="joint", note=note))
            # arm nested in levels: the arm effect within each level
            Xn = np.column_stack([np.delete(Xm, 1, axis=1), t[:, None] * D])
            fit2 = fit_random_intercept(y, Xn, teams)
            p1 = Xm.shape[1] - 1
            for lev, r in zip(levels, _tidy(fit2, list(range(p1, p1 + len(levels))))):
                nlev = int((v == lev).sum())
                recs.append({**base, **r, "quantity": f"effect_in_{lev}", "kind": "effect", "note": note,
                             "n": nlev, "n_clusters": int(df.loc[v == lev, "team_id"].nunique())})
    except (ValueError, np.linalg.LinAlgError) as exc:
        return [dict(base, quantity="interaction", kind="interaction", estimate=np.nan, se=np.nan, df=np.nan,
                     ci_low=np.nan, ci_high=np.nan, p_value=np.nan, note=f"not estimable: {exc}")], pd.DataFrame()
    return recs, curve


def moderators(data: TrialData) -> ModeratorResults:
    """All moderator models of the scope (``la`` only when the scope has several LAs), Holm-adjusted."""
    mods = [m for m in MODERATORS if m != "la" or len(data.las) > 1]
    recs, curves = [], []
    for scale in data.instrument.scale_names:
        df = analysis_frame(data, scale)
        for m in mods:
            r, c = _one(df, scale, m)
            recs += r
            curves.append(c)
    t = pd.DataFrame(recs)
    inter = (t["kind"] == "interaction").to_numpy()
    t["p_holm"] = np.nan
    t.loc[inter, "p_holm"] = holm(t.loc[inter, "p_value"].to_numpy())
    t["note"] = t["note"].fillna("")
    cv = pd.concat([c for c in curves if len(c)], ignore_index=True) if any(len(c) for c in curves) \
        else pd.DataFrame(columns=["outcome", "years", "effect", "ci_low", "ci_high"])
    return ModeratorResults(t, cv)


# ---------------------------------------------------------------------------
# per-LA effects and heterogeneity across LAs (pooled trial scope)
# ---------------------------------------------------------------------------


def cochran_q(estimates, ses) -> dict:
    """Cochran's Q, its chi-square p (k - 1 df) and I^2 (%) of independent estimates.

    Inverse-variance weights ``w = 1/se^2``; ``Q = sum w (b - b_FE)^2``;
    ``I2 = max(0, (Q - (k - 1)) / Q) * 100`` (Higgins and Thompson 2002).

    >>> r = cochran_q([0.0, 1.0], [1.0, 1.0])
    >>> r["q"], r["df"], round(r["i2"], 1)
    (0.5, 1, 0.0)
    """
    b = np.asarray(estimates, float)
    w = 1.0 / np.asarray(ses, float) ** 2
    k = b.size
    if k < 2:
        return dict(q=np.nan, df=max(k - 1, 0), p_value=np.nan, i2=np.nan, fixed=np.nan)
    fe = float(np.sum(w * b) / np.sum(w))
    q = float(np.sum(w * (b - fe) ** 2))
    return dict(q=q, df=k - 1, p_value=float(stats.chi2.sf(q, k - 1)),
                i2=float(max(0.0, (q - (k - 1)) / q) * 100) if q > 0 else 0.0, fixed=fe)


@dataclass
class LAHeterogeneity:
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
            out.append(est_row("per_la", r.outcome, f"treatment_effect_{r.la}", r.estimate, r.se, r.ci_low,
                               r.ci_high, r.p_value, n=r.n, n_clusters=r.n_clusters,
                               note=r.note or "primary model fitted within the LA (no LA term)"))
        for r in self.tests.itertuples():
            c = dict(n_clusters=r.n_las)
            out += [
                est_row("heterogeneity_la", r.outcome, "wald_f_arm_x_la", r.wald_f, p_value=r.p_wald,
                        note=f"F({r.wald_df1:g}, {r.wald_df2:g}); arm x LA interaction in the pooled model", **c),
                est_row("heterogeneity_la", r.outcome, "cochran_q", r.q, p_value=r.p_q,
                        note=f"chi-square on {r.q_df:g} df over the per-LA estimates", **c),
                est_row("heterogeneity_la", r.outcome, "i_squared_pct", r.i2, **c),
            ]
        return out

    def display(self) -> pd.DataFrame:
        return self.tests[["outcome", "n_las", "wald_f", "wald_df1", "wald_df2", "p_wald", "q", "q_df", "p_q", "i2"]]


def la_heterogeneity(data: TrialData, pooled: list, mods: ModeratorResults) -> LAHeterogeneity:
    """Per-LA arm effects, each LA's own primary model, beside ``pooled`` (the scope's primary results).

    Each LA's model is fitted here from the scope's data (``data.for_scope(la)``),
    so the pooled page does not depend on any other scope's results. The
    heterogeneity tests are the joint Wald F test of arm x LA from ``mods``
    (:func:`moderators`) and Cochran's Q / I^2 across the per-LA estimates
    (independent samples; inverse-variance weights from the per-LA SEs).
    """
    if len(data.las) < 2:
        return LAHeterogeneity(pd.DataFrame(), pd.DataFrame(), message=(
            "This page covers one LA, so there is no comparison across LAs here: the per-LA effects and the "
            "heterogeneity tests are on the pooled trial page."))
    thr = threshold()
    recs = []
    for la in data.las:
        sub = data.for_scope(la)
        for r in (primary(sub, s) for s in data.instrument.scale_names):
            withheld = r.n < thr
            ok = np.isfinite(r.estimate) and not withheld
            recs.append(dict(outcome=r.outcome, la=la, n=r.n, n_clusters=r.n_clusters,
                             estimate=r.estimate if ok else np.nan, se=r.se if ok else np.nan,
                             ci_low=r.ci_low if ok else np.nan, ci_high=r.ci_high if ok else np.nan,
                             p_value=r.p_value if ok else np.nan, withheld=withheld,
                             note=(f"withheld: fewer than {thr} analysed people" if withheld else r.note)))
    for r in pooled:
        recs.append(dict(outcome=r.outcome, la="pooled", n=r.n, n_clusters=r.n_clusters, estimate=r.estimate,
                         se=r.se, ci_low=r.ci_low, ci_high=r.ci_high, p_value=r.p_value, withheld=False,
                         note=r.note))
    per = pd.DataFrame(recs)
    mt = mods.table
    tests = []
    for scale in data.instrument.scale_names:
        w = mt[(mt["outcome"] == scale) & (mt["quantity"] == "wald_f_arm_x_la")]
        k = mt[(mt["outcome"] == scale) & (mt["moderator"] == "la") & (mt["kind"] == "interaction")]
        e = per[(per["outcome"] == scale) & (per["la"] != "pooled") & per["estimate"].notna()]
        cq = cochran_q(e["estimate"], e["se"])
        tests.append(dict(outcome=scale, n_las=len(e),
                          wald_f=float(w["estimate"].iloc[0]) if len(w) else np.nan,
                          wald_df1=float(len(k)) if len(w) else np.nan,
                          wald_df2=float(w["df"].iloc[0]) if len(w) else np.nan,
                          p_wald=float(w["p_value"].iloc[0]) if len(w) else np.nan,
                          q=cq["q"], q_df=cq["df"], p_q=cq["p_value"], i2=cq["i2"]))
    return LAHeterogeneity(per, pd.DataFrame(tests), message=(
        "Each LA's effect comes from the primary model fitted within that LA (no LA term); the pooled effect is "
        "the primary model's. Heterogeneity: the joint Wald F test of the arm-by-LA interaction in the pooled "
        "model (denominator df: teams minus team-level coefficients) and, descriptively, Cochran's Q and I\u00b2 "
        "over the per-LA estimates. Exploratory: the trial was not powered to compare LAs."))
