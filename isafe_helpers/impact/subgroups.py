"""Impact strand: exploratory moderator analyses.

For every scale, three models, one per moderator, each the primary model
(follow-up on arm, baseline, LA fixed effects, random intercept for team;
REML) plus the moderator's main effect and its interaction with arm:

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
the arm effect within each level (same model, reparameterised). Every term's
SE, CI and p-value are Kenward-Roger's (t on the KR df), as in the primary
model; each moderator's joint test (``wald_f_<moderator>``: the arm effect
is the same at every level) is the Kenward-Roger F test of all its arm-by-level
terms (``pbkrtest::KRmodcomp``; for years qualified the one arm-by-years term). All of
this is exploratory: the trial was not powered for it, and the results
describe; they do not judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import AGE_BANDS
from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.design import design
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts
from isafe_helpers.stats.inference import holm, interval
from isafe_helpers.stats.kenward_roger import kenward_roger_test
from isafe_helpers.stats.mixed import fit_random_intercept

Moderator = Literal["age", "experience", "la"]


MODERATORS: tuple[Moderator, ...] = ("age", "experience", "la")


ANALYSIS = {"age": "subgroup_age", "experience": "subgroup_experience", "la": "subgroup_la"}


#: Years qualified at which the arm effect of the experience model is read (the centring value).
YEARS_CENTRE = 10.0


#: Analysed participants needed in each arm for a level to enter a moderator model.
MIN_PER_ARM = 2


EXPLORATORY = "exploratory"


def _tidy(fit, keep: list[int]) -> list[dict]:
    """Estimate, Kenward-Roger SE and df, t-based CI and p of the coefficients ``keep``."""
    kr = fit.kenward_roger()
    recs = []
    for k in keep:
        b, se, d = float(fit.beta[k]), float(kr.se_adj[k]), float(kr.df[k])
        ci = interval(b, se, d)
        recs.append(
            dict(term=fit.names[k], estimate=b, se=se, df=d, ci_low=ci.ci_low, ci_high=ci.ci_high, p_value=ci.p_value)
        )
    return recs


@dataclass
class ModeratorResults(Result):
    """Every moderator model of the scope. ``frame``: one row per reported term."""

    frame: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)  # arm effect by years qualified

    def rows(self) -> list[dict]:
        out = []
        for r in self.frame.itertuples():
            p = r.p_holm if r.kind == "interaction" else r.p_value
            if r.kind == "interaction":
                what = "p Holm-adjusted across the family; Kenward-Roger SE and df"
            elif r.kind == "joint":
                terms = {"la": "every arm x LA term", "age": "every arm x age band term"}.get(
                    r.moderator, "the arm x years qualified term (one term: F = t squared)"
                )
                what = f"joint Kenward-Roger F test of {terms}, F({r.ndf:g}, {r.df:.2f})"
            else:
                what = "unadjusted p; Kenward-Roger SE and df"
            if r.kind != "joint" and np.isfinite(r.estimate) and not np.isfinite(r.df):
                what += "; normal approximation (the KR df are not finite)"
            parts = (
                (r.note, EXPLORATORY, what) if r.note.startswith("did not converge") else (EXPLORATORY, what, r.note)
            )
            note = r.note if r.note.startswith("not estimable") else "; ".join(s for s in parts if s)
            out.append(
                est_row(
                    ANALYSIS[r.moderator],
                    r.outcome,
                    r.quantity,
                    r.estimate,
                    r.se,
                    r.ci_low,
                    r.ci_high,
                    p,
                    n=r.n,
                    n_clusters=r.n_clusters,
                    note=note,
                )
            )
        return out + self.unadjusted_p_rows() + self.joint_df_rows() + self.curve_rows()

    def joint_df_rows(self) -> list[dict]:
        """A joint F test's numerator and denominator df (``<quantity>_ndf``, ``<quantity>_ddf``), which the
        joint table prints beside F; withheld or blank with F (a model that did not converge has no df)."""
        out = []
        for r in self.frame[self.frame["quantity"].str.startswith("wald_f")].itertuples():
            bad = str(r.note).startswith("did not converge")
            ndf = float(getattr(r, "ndf", np.nan))
            for q, v, what in (("ndf", ndf, "numerator"), ("ddf", np.nan if bad else r.df, "denominator")):
                out.append(
                    est_row(
                        ANALYSIS[r.moderator],
                        r.outcome,
                        f"{r.quantity}_{q}",
                        v,
                        n=r.n,
                        n_clusters=r.n_clusters,
                        note=(f"{r.note}; " if bad else "")
                        + f"{EXPLORATORY}; {what} df of {r.quantity} (Kenward-Roger)",
                    )
                )
        return out

    def unadjusted_p_rows(self) -> list[dict]:
        """An interaction's unadjusted p (``<quantity>_p_unadjusted``), which the moderator table prints beside
        its Holm-adjusted p (the interaction's own row holds the Holm-adjusted one)."""
        out = []
        for r in self.frame.itertuples():
            if r.kind == "interaction":
                out.append(
                    est_row(
                        ANALYSIS[r.moderator],
                        r.outcome,
                        f"{r.quantity}_p_unadjusted",
                        p_value=r.p_value,
                        n=r.n,
                        n_clusters=r.n_clusters,
                        note=f"{EXPLORATORY}; unadjusted p of {r.quantity} (its Holm-adjusted p is in its own row)",
                    )
                )
        return out

    def curve_rows(self) -> list[dict]:
        """The arm effect by years qualified that the book draws, point by point (``effect_curve_<k>``).

        Each of the curve's 41 points is a row of its own: ``years_curve_<k>``
        holds its years qualified (from 0 to the 95th percentile of staff's
        years, in equal steps), ``effect_curve_<k>`` the arm effect there with
        its Kenward-Roger SE and interval. The figure and its table read them
        (:func:`isafe_helpers.publish.figures.impact.curve_table`).
        """
        out = []
        note = "exploratory; the experience moderator model's arm effect at the point's years qualified"
        for r in self.curves.itertuples():
            k = f"{int(r.point):02d}"
            out.append(est_row("subgroup_experience", r.outcome, f"years_curve_{k}", r.years, note=note))
            out.append(
                est_row(
                    "subgroup_experience",
                    r.outcome,
                    f"effect_curve_{k}",
                    r.effect,
                    r.se,
                    r.ci_low,
                    r.ci_high,
                    n=r.n,
                    n_clusters=r.n_clusters,
                    note=note,
                )
            )
        return out

    def joint_table(self) -> Table:
        """The joint Kenward-Roger F test of each moderator (``wald_f_*``): staff in the model, F, its df and p.

        F and its df are not estimates: they have their own columns (never an Estimate column). A test
        resting on fewer staff than the disclosure threshold is withheld with them; one whose model did
        not converge is not shown (its note says why)."""
        f = self.frame[self.frame["quantity"].str.startswith("wald_f")].reset_index(drop=True)
        t = pd.DataFrame(
            {
                "outcome": [label(o) for o in f["outcome"]],
                "moderator": [MODERATOR_LABELS[m] for m in f["moderator"]],
                "f_stat": f["estimate"].to_numpy(float),
                "ndf": f["ndf"].to_numpy(float) if "ndf" in f else np.nan,
                "ddf": f["df"].to_numpy(float),
                "p_value": f["p_value"].to_numpy(float),
                "note": f["note"].fillna("").astype(str),
            }
        )
        hide = t["note"].str.startswith("did not converge").to_numpy()
        t.loc[hide, ["f_stat", "ddf", "p_value"]] = np.nan
        rows = list(zip([ANALYSIS[m] for m in f["moderator"]], f["outcome"], f["quantity"]))
        return Table(
            t,
            [
                Col("outcome", "Outcome", "text"),
                Col("moderator", "Moderator", "text"),
                Col("f_stat", "Kenward-Roger F", "number", 2),
                Col("ndf", "Numerator df", "int"),
                Col("ddf", "Denominator df", "number", 1),
                Col("p_value", "p (F test)", "p"),
                Col("note", "Note", "text"),
            ],
            caption="Does the effect differ between groups? Joint tests of each moderator (exploratory)",
            rests=model_staff(f["n"], ("f_stat", "ddf", "p_value")),
            facts=facts("impact", rows, f_stat="estimate", p_value="p_value")
            | facts("impact", [(a, o, f"{q}_ndf") for a, o, q in rows], ndf="estimate")
            | facts("impact", [(a, o, f"{q}_ddf") for a, o, q in rows], ddf="estimate"),
            notes=[
                f"{EXPLORATORY.capitalize()}. Kenward-Roger F test that every arm-by-level term of the moderator "
                "model is zero (age band: each band against under 30; LA: each LA against the first; years "
                "qualified: its one arm-by-years term, so F is the square of that term's t).",
                STAFF_NOTE,
            ],
        )

    def table(self) -> Table:
        """One row per reported term: estimate with 95% CI, unadjusted p and (interactions) Holm-adjusted p."""
        # the joint F test is a test statistic, not an estimate: the heterogeneity table shows it in its own column
        frame = self.frame[~self.frame["quantity"].str.startswith("wald_f")].reset_index(drop=True)
        t = frame.assign(
            outcome=[label(o) for o in frame["outcome"]],
            moderator=[MODERATOR_LABELS[m] for m in frame["moderator"]],
            term=[term_label(q, m) for q, m in zip(frame["quantity"], frame["moderator"])],
        )
        rows = list(zip([ANALYSIS[m] for m in frame["moderator"]], frame["outcome"], frame["quantity"]))
        inter = (frame["kind"] == "interaction").to_numpy()
        # an interaction's estimates.csv p is its Holm-adjusted one; its unadjusted p is a row of its own
        shows = facts("impact", rows, estimate="estimate", ci_low="ci_low", ci_high="ci_high")
        shows |= facts("impact", [None if i else r for r, i in zip(rows, inter)], p_value="p_value")
        shows |= facts("impact", [r if i else None for r, i in zip(rows, inter)], p_holm="p_value")
        unadjusted = [(a, o, f"{q}_p_unadjusted") if i else None for (a, o, q), i in zip(rows, inter)]
        shows["p_value"] = [
            k if k is not None else u
            for k, u in zip(shows["p_value"], facts("impact", unadjusted, p_value="p_value")["p_value"])
        ]
        hide = t["note"].str.startswith("did not converge").to_numpy()
        t.loc[hide, ["estimate", "ci_low", "ci_high", "p_value", "p_holm"]] = np.nan
        t.loc[hide, "note"] = "not available: " + t.loc[hide, "note"]
        return Table(
            t[["outcome", "moderator", "term", "estimate", "ci_low", "ci_high", "p_value", "p_holm", "note"]],
            [
                Col("outcome", "Outcome", "text"),
                Col("moderator", "Moderator", "text"),
                Col("term", "Term", "text"),
                Col("estimate", "Estimate", "number", 3),
                Col("ci_low", "95% CI low", "number", 3),
                Col("ci_high", "95% CI high", "number", 3),
                Col("p_value", "p", "p"),
                Col("p_holm", "p, Holm-adjusted", "p"),
                Col("note", "Note", "text"),
            ],
            caption="Moderators of the effect (exploratory)",
            rests=model_staff(frame["n"], ("estimate", "ci_low", "ci_high", "p_value", "p_holm")),
            facts=shows,
            notes=[
                "Exploratory: the trial was not powered to detect differences in the effect between groups; "
                "the estimates describe and do not judge.",
                "Estimates in scale points, 95% CIs and p-values with Kenward-Roger standard errors and degrees of "
                "freedom. Differences in effect (interactions) also carry p-values Holm-adjusted across every "
                "interaction of the page. Each moderator's joint test (a Kenward-Roger F test that the effect is the "
                "same at every level) is in the next table; the LA one is also shown with the heterogeneity across LAs.",
                STAFF_NOTE,
            ],
        )


MODERATOR_LABELS = {"age": "Age band", "experience": "Years qualified", "la": "Local authority"}


#: Why the moderator tables print no count of staff (issue 22).
STAFF_NOTE = (
    "Each model has the staff analysed with the moderator recorded (and, for a group, in the group). They are not "
    "printed: the staff analysed (the trial flow) minus them would count the staff left out, too few to publish "
    "in most LAs. An estimate resting on fewer staff than the disclosure threshold is withheld ([c])."
)


def model_staff(n, columns) -> dict[str, list[list[tuple[None, float]]]]:
    """``Table.rests`` for statistics resting on a model's staff ``n`` (one per row), a count the table does not
    print (:data:`STAFF_NOTE`): each is withheld when its ``n`` is under the threshold."""
    cells = [[(None, float(v))] for v in n]
    return {c: cells for c in columns}


def _lower_first(text: str) -> str:
    """``text`` with its first letter in lower case, unless it starts an acronym or code (``LA01`` stays)."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def term_label(quantity: str, moderator: str | None = None) -> str:
    """A reader's name for a moderator term (``interaction_40_49_vs_under_30`` -> ``40 to 49 vs under 30``).

    An effect within a group names the model it comes from (``moderator``): the effect in an LA
    of the model with an arm-by-LA term is not that LA's own primary model's effect, and the two
    must never share a label.

    >>> term_label("effect_in_LA01", "la")
    'Effect in LA01 (moderator model: arm by LA)'
    """
    if quantity == "interaction_per_year":
        return "Difference in effect per extra year qualified"
    if quantity.startswith("effect_at_"):
        return f"Effect at {quantity.removeprefix('effect_at_').replace('_', ' ')} qualified"
    if quantity == "wald_f_arm_x_la":
        return "Joint F test: effect differs between LAs"
    if quantity.startswith("interaction_") and "_vs_" in quantity:
        a, b = quantity.removeprefix("interaction_").split("_vs_")
        return f"Difference in effect: {label(a)} vs {_lower_first(label(b))}"
    if quantity.startswith("effect_in_"):
        # the moderator model's effect in the group: for an LA, not the LA's own primary model's effect
        model = {"la": "arm by LA", "age": "arm by age band"}.get(moderator or "")
        where = label(quantity.removeprefix("effect_in_"))
        return f"Effect in {where} (moderator model: {model})" if model else f"Effect in {where}"
    return label(quantity)


def _levels(df: pd.DataFrame, col: str, order) -> tuple[list, list]:
    counts = (
        df.groupby([col, "arm"]).size().unstack(fill_value=0).reindex(columns=["treatment", "control"], fill_value=0)
    )
    present = [lev for lev in order if lev in counts.index]
    kept = [lev for lev in present if counts.loc[lev].min() >= MIN_PER_ARM]
    return kept, [lev for lev in present if lev not in kept]


def _joint_row(base: dict, test, quantity: str, note: str) -> dict:
    """A moderator's joint Kenward-Roger F test as a row of the frame: F, its two df and p (no SE, no CI)."""
    return dict(
        base,
        estimate=test.f_stat,
        se=np.nan,
        df=test.ddf,
        ndf=float(test.ndf),
        ci_low=np.nan,
        ci_high=np.nan,
        p_value=test.p_value,
        quantity=quantity,
        kind="joint",
        note=note,
    )


def _one(df: pd.DataFrame, outcome: str, moderator: Moderator) -> tuple[list[dict], pd.DataFrame]:
    """Rows (interaction and within-level effects) of one moderator model for one scale."""
    notes = []
    if moderator == "experience":
        df = df[df["years_qualified"].notna()].copy()
        df["yq"] = df["years_qualified"].astype(float) - YEARS_CENTRE
        levels: list[str] = []
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
        why = (
            "not estimable: needs two levels each with both arms"
            if moderator != "experience"
            else "not estimable: needs at least two analysed teams in each arm"
        )
        return [
            dict(
                base,
                quantity="interaction",
                kind="interaction",
                estimate=np.nan,
                se=np.nan,
                df=np.nan,
                ci_low=np.nan,
                ci_high=np.nan,
                p_value=np.nan,
                note="; ".join([why, *notes]),
            )
        ], pd.DataFrame()
    X, names = design(df)
    y, teams = df["followup"].to_numpy(float), df["team_id"].to_numpy()
    t = df["treated"].to_numpy(float)
    recs, curve = [], pd.DataFrame()
    note = "; ".join(notes)
    try:
        if moderator == "experience":
            yq = df["yq"].to_numpy(float)
            fit = fit_random_intercept(y, np.column_stack([X, yq, t * yq]), teams, names + ["yq", "treated:yq"])
            fits = [fit]
            k_int, k_t = len(names) + 1, 1
            for r, q in zip(_tidy(fit, [k_int, k_t]), ("interaction_per_year", f"effect_at_{YEARS_CENTRE:g}_years")):
                recs.append(
                    dict(base, **r, quantity=q, kind="interaction" if q.startswith("inter") else "effect", note=note)
                )
            # the moderator's joint KR F test: one interaction term, so F(1, ddf) = t^2 of the interaction
            L1 = np.zeros((1, fit.beta.size))
            L1[0, k_int] = 1.0
            recs.append(_joint_row(base, kenward_roger_test(fit.kenward_roger(), L1), "wald_f_experience", note))
            grid = np.linspace(0.0, float(np.nanpercentile(df["years_qualified"], 95)), 41)
            c = np.zeros((grid.size, len(fit.beta)))
            c[:, k_t], c[:, k_int] = 1.0, grid - YEARS_CENTRE
            est = c @ fit.beta
            kr = fit.kenward_roger()
            se = np.sqrt(np.einsum("ij,jk,ik->i", c, kr.cov_beta_adj, c))
            dfs = np.array([kenward_roger_test(kr, ci).ddf for ci in c])
            band = interval(est, se, dfs)
            curve = pd.DataFrame(
                dict(
                    outcome=outcome,
                    point=np.arange(grid.size),
                    n=len(df),
                    n_clusters=len(set(teams)),
                    years=grid,
                    effect=est,
                    se=se,
                    ci_low=band.ci_low,
                    ci_high=band.ci_high,
                )
            )
        else:
            col = "age_band" if moderator == "age" else "la"
            v = df[col].to_numpy()
            D = np.column_stack([(v == lev).astype(float) for lev in levels])
            if moderator == "age":  # main effects of the band (LA's are already in X)
                Xm, nm = np.column_stack([X, D[:, 1:]]), names + [f"age[T.{lev}]" for lev in levels[1:]]
            else:
                Xm, nm = X, names
            p0 = Xm.shape[1]
            fit = fit_random_intercept(
                y, np.column_stack([Xm, t[:, None] * D[:, 1:]]), teams, nm + [f"treated:{lev}" for lev in levels[1:]]
            )
            for lev, r in zip(levels[1:], _tidy(fit, list(range(p0, p0 + len(levels) - 1)))):
                recs.append(
                    dict(base, **r, quantity=f"interaction_{lev}_vs_{levels[0]}", kind="interaction", note=note)
                )
            # the joint KR F test of every arm-by-level term (age band: 3 numerator df with 4 bands), in its own row
            L = np.zeros((len(levels) - 1, fit.beta.size))
            L[np.arange(len(levels) - 1), np.arange(p0, p0 + len(levels) - 1)] = 1.0
            quantity = "wald_f_arm_x_la" if moderator == "la" else f"wald_f_{moderator}"
            recs.append(_joint_row(base, kenward_roger_test(fit.kenward_roger(), L), quantity, note))
            # arm nested in levels: the arm effect within each level
            Xn = np.column_stack([np.delete(Xm, 1, axis=1), t[:, None] * D])
            fit2 = fit_random_intercept(y, Xn, teams)
            fits = [fit, fit2]
            p1 = Xm.shape[1] - 1
            for lev, r in zip(levels, _tidy(fit2, list(range(p1, p1 + len(levels))))):
                nlev = int((v == lev).sum())
                recs.append(
                    {
                        **base,
                        **r,
                        "quantity": f"effect_in_{lev}",
                        "kind": "effect",
                        "note": note,
                        "n": nlev,
                        "n_clusters": int(df.loc[v == lev, "team_id"].nunique()),
                    }
                )
        bad = [f.message for f in fits if not f.converged]
        if bad:  # kept in the rows with the reason, withheld from the table
            for rec in recs:
                rec["note"] = "; ".join(s for s in (f"did not converge: {bad[0]}", rec["note"]) if s)
            curve = pd.DataFrame()
    except (ValueError, np.linalg.LinAlgError) as exc:
        return [
            dict(
                base,
                quantity="interaction",
                kind="interaction",
                estimate=np.nan,
                se=np.nan,
                df=np.nan,
                ci_low=np.nan,
                ci_high=np.nan,
                p_value=np.nan,
                note=f"not estimable: {exc}",
            )
        ], pd.DataFrame()
    return recs, curve


#: The columns of :attr:`ModeratorResults.curves`.
CURVE_COLUMNS = ("outcome", "point", "n", "n_clusters", "years", "effect", "se", "ci_low", "ci_high")


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
    t["note"] = t["note"].fillna("")
    inter = ((t["kind"] == "interaction") & ~t["note"].str.startswith("did not converge")).to_numpy()
    t["p_holm"] = np.nan
    t.loc[inter, "p_holm"] = holm(t.loc[inter, "p_value"].to_numpy())
    cv = (
        pd.concat([c for c in curves if len(c)], ignore_index=True)
        if any(len(c) for c in curves)
        else pd.DataFrame(columns=list(CURVE_COLUMNS))
    )
    return ModeratorResults(t, cv)
