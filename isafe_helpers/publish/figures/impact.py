"""Impact strand figures, and the tables they are drawn from.

Each ``*_table`` builds the :class:`~isafe_helpers.results.table.Table` a
figure draws (registered in the disclosure ledger like any table); each
figure function takes the views of its tables and returns the figure and
its alt text.
"""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch

from isafe_helpers.impact.flow import STAGE_LABELS
from isafe_helpers.impact.subgroups import STAFF_NOTE, model_staff
from isafe_helpers.publish.figures import BLUE, VERMILION, WIDTH, count, finish, num, text, tick
from isafe_helpers.results import keys as K
from isafe_helpers.results.labels import label
from isafe_helpers.results.table import Col, Table, facts

#: The height of one line of a flow-diagram side label (12 pt, the body size) in the diagram's units.
LINE = 0.27


def _grid(n: int, ncol: int = 3, height: float = 2.8, sharey: bool = True, sharex: bool = False):
    ncol = min(max(n, 1), ncol)
    nrow = -(-max(n, 1) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(WIDTH, height * nrow + 0.6), squeeze=False, sharey=sharey, sharex=sharex
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def _ci(est, lo, hi, digits=2) -> str:
    if np.isnan(est):
        return "withheld or not available"
    return f"{num(est, digits)} (95% CI {num(lo, digits)} to {num(hi, digits)})"


# ---------------------------------------------------------------------------
def effect_sizes(views) -> tuple[plt.Figure, str]:
    """Forest plot of Hedges' g with its 95% CI, one row per outcome (the primary table's view)."""
    t = views[0]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.75 * max(len(t), 1) + 1.4))
    parts = []
    for i, r in enumerate(t.itertuples(index=False)):
        if np.isfinite(r.hedges_g):
            ax.plot([r.g_ci_low, r.g_ci_high], [i, i], color="0.3", lw=2)
            ax.plot(r.hedges_g, i, "o", color=BLUE, ms=8)
        else:
            ax.text(0, i, "not available", va="center", ha="center", color="0.35")
        parts.append(f"{r.outcome}: {_ci(r.hedges_g, r.g_ci_low, r.g_ci_high)}")
    ax.axvline(0, color="0.4", ls="--", lw=1)
    ax.set_yticks(range(len(t)), [tick(o) for o in t["outcome"]])
    ax.set_ylim(len(t) - 0.5, -0.5)
    ax.set_xlabel("Hedges' g (95% CI); right of the dashed line favours ISAFE")
    alt = (
        _g_finding(t)
        + f" Forest plot of Hedges' g with 95% confidence intervals for {len(t)} outcomes. "
        + "; ".join(parts)
        + "."
    )
    return finish(fig), alt


def _g_finding(t: pd.DataFrame) -> str:
    """The forest plot's finding in one sentence: the range of g and how many intervals exclude zero."""
    shown = t[np.isfinite(t["hedges_g"].astype(float))]
    if shown.empty:
        return "No effect size is shown: each is withheld or not available."
    lo, hi = shown.loc[shown["hedges_g"].idxmin()], shown.loc[shown["hedges_g"].idxmax()]
    clear = int(((shown["g_ci_low"] > 0) | (shown["g_ci_high"] < 0)).sum())
    span = (
        f"The effect size is g = {num(lo['hedges_g'])} ({lo['outcome']})"
        if len(shown) == 1
        else f"Effect sizes run from g = {num(lo['hedges_g'])} ({lo['outcome']}) to g = {num(hi['hedges_g'])} "
        f"({hi['outcome']})"
    )
    return f"{span}; the 95% interval excludes zero for {count(clear)} of {count(len(shown))} outcomes."


# ---------------------------------------------------------------------------
def consort(views, n_las: int, outcome: str) -> tuple[plt.Figure, str]:
    """CONSORT flow diagram of teams and staff by arm, from the trial-flow table's view."""
    inverse = {v: k for k, v in STAGE_LABELS.items()}
    t = views[0].assign(stage_key=[inverse.get(s, s) for s in views[0]["stage"]]).set_index("stage_key")
    fig, ax = plt.subplots(figsize=(WIDTH, 7.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")

    def box(x, y, s, w=4.6, h=1.25, fc="white"):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=fc, ec="0.3", lw=1))
        ax.text(x, y, s, ha="center", va="center", fontsize=12)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="0.3", lw=1))

    def staff(stage, arm):
        v = t.loc[stage, f"staff_{arm}"] if stage in t.index else np.nan
        return "[c]" if np.isnan(v) else f"{v:,.0f}"

    def teams(stage, arm):
        v = t.loc[stage, f"teams_{arm}"] if stage in t.index else np.nan
        return "" if np.isnan(v) else f"{v:,.0f} teams, "

    total_teams = sum(t.loc["allocated", f"teams_{a}"] for a in ("treatment", "control"))
    box(5, 9.35, f"Randomised within {n_las} LA(s): {total_teams:,.0f} teams", w=6, fc="0.93")
    rows = [r for r in ("allocated", "followed_up", "analysed") if r in t.index]
    # with two boxes per arm the lower one sits lower, leaving room for the side labels stacked between them
    ys = dict(zip(rows, [7.7, 4.9, 2.0] if len(rows) > 2 else [7.7, 4.3]))
    side = [r for r in t.index if r not in rows]
    parts = []
    for x, arm in ((2.5, "treatment"), (7.5, "control")):
        arrow(5, 8.75, x, 8.5)
        prev = None
        for stage in rows:
            lab = t.loc[stage, "stage"]
            box(
                x,
                ys[stage],
                textwrap.fill(f"{label(arm)}: {lab}", 30) + f"\n{teams(stage, arm)}{staff(stage, arm)} staff",
                h=1.5,
            )
            if prev is not None:
                arrow(x, ys[prev] - 0.8, x, ys[stage] + 0.8)
            prev = stage
            parts.append(f"{label(arm)} {lab.lower()}: {teams(stage, arm)}{staff(stage, arm)} staff")
        # stages beside the flow: receiving the programme and loss to follow-up between allocation and
        # follow-up, the rest between follow-up and analysis; each label wrapped to stay within its arm
        upper = [s for s in side if s in ("received", "lost_to_follow_up")]
        lower = [s for s in side if s not in upper]
        cursor = 6.3
        for stages, top in ((upper, 6.65 if len(rows) > 2 else 6.3), (lower, 3.45)):
            # each label goes below the one before it, by as many lines as that one took
            # with two boxes per arm both groups share the one gap beside them: one stack, not two at the same height
            cursor = top if len(rows) > 2 or stages is upper else cursor
            step = 0.4 if len(rows) > 2 else 0.62
            for stage in stages:
                lab = t.loc[stage, "stage"]
                words = textwrap.fill(f"{lab}: {staff(stage, arm)} staff", 28)
                extra = LINE * words.count("\n")
                if stage == "received" and arm == "control":
                    # the control arm is not offered the programme: its space is left, so both arms align
                    cursor -= LINE * textwrap.fill(f"{lab}: {staff(stage, 'treatment')} staff", 28).count("\n") + step
                    continue
                ax.text(
                    x,
                    cursor - extra / 2,
                    words,
                    ha="center",
                    va="center",
                    fontsize=12,
                    color="0.2",
                    bbox=dict(fc="white", ec="none", pad=0.5),
                )
                parts.append(f"{label(arm)} {lab.lower()}: {staff(stage, arm)} staff")
                cursor -= extra + step
    last = rows[-1]
    analysed = sum(t.loc[last, f"teams_{a}"] for a in ("treatment", "control"))
    finding = (
        f"Of {total_teams:,.0f} teams randomised within {n_las} LA(s), {analysed:,.0f} reached the "
        f"{text(label(outcome)).lower()} analysis, with {staff(last, 'treatment')} staff in the intervention arm and "
        f"{staff(last, 'control')} in the control arm."
        if np.isfinite(analysed)
        else f"{total_teams:,.0f} teams were randomised within {n_las} LA(s)."
    )
    alt = f"{finding} Trial flow diagram for the {text(label(outcome)).lower()} analysis. " + "; ".join(parts) + "."
    return finish(fig), alt


# ---------------------------------------------------------------------------
def change_distributions(views) -> tuple[plt.Figure, str]:
    """Box plots of change by arm, one panel per outcome: box quartiles, line median, diamond mean,
    whiskers 10th and 90th percentiles; an arm whose statistics are withheld is labelled, not drawn."""
    t = views[0]
    outcomes = list(dict.fromkeys(t["outcome"]))
    fig, axes = _grid(len(outcomes), height=3.0)
    parts = []
    higher, compared, arms = 0, 0, ["", ""]
    for ax, o in zip(axes.flat, outcomes):
        d = t[t["outcome"] == o].reset_index(drop=True)
        med = d["median"].astype(float).to_numpy()
        if len(d) == 2 and np.isfinite(med).all():
            compared += 1
            higher += int(med[0] > med[1])
            arms = [str(a) for a in d["arm"]]
        stats_, pos = [], []
        for i, r in d.iterrows():
            if not np.isfinite(r["median"]):
                ax.text(i + 1, 0, "withheld", ha="center", va="center", color="0.35")
                parts.append(f"{o}, {r['arm']}: withheld")
                continue
            stats_.append(
                dict(
                    med=r["median"],
                    q1=r["q1"],
                    q3=r["q3"],
                    whislo=r["p_low"],
                    whishi=r["p_high"],
                    mean=r["mean"],
                    fliers=[],
                    label=r["arm"],
                )
            )
            pos.append(i + 1)
            # no quantile of individuals in words: the page does not print them (the chart draws them)
            parts.append(f"{o}, {r['arm']}: drawn")
        if stats_:
            ax.bxp(
                stats_,
                positions=pos,
                showmeans=True,
                showfliers=False,
                widths=0.5,
                meanprops=dict(marker="D", markerfacecolor=VERMILION, markeredgecolor=VERMILION, markersize=5),
            )
        ax.set_xticks(range(1, len(d) + 1), [text(a) for a in d["arm"]])
        ax.set_xlim(0.4, len(d) + 0.6)
        ax.axhline(0, color="0.4", ls="--", lw=1)
        ax.set_title(text(o), fontsize=12)
    for ax in axes[:, 0]:
        ax.set_ylabel("Change (points)")
    drawn = any(p.endswith(": drawn") for p in parts)
    key = " (box: middle half; line: median; diamond: mean; whiskers: 10th to 90th percentile)" if drawn else ""
    finding = (
        f"The median change from baseline to follow-up is higher in the {text(arms[0]).lower()} arm than in the "
        f"{text(arms[1]).lower()} arm for {count(higher)} of {count(compared)} outcomes."
        if compared
        else "The change from baseline to follow-up is withheld for at least one arm of every outcome."
    )
    alt = f"{finding} Box plots of the change in each arm{key}. " + "; ".join(parts) + "."
    return finish(fig), alt


# ---------------------------------------------------------------------------
def curve_table(curves: pd.DataFrame) -> Table:
    """The arm effect by years qualified (the experience moderator), as a table."""
    t = curves.assign(outcome=[label(o) for o in curves["outcome"]])
    point = curves["point"]  # each point is a row of estimates.csv (ModeratorResults.curve_rows)
    t = t[["outcome", "years", "effect", "ci_low", "ci_high"]]
    stat: dict[str, Any] = dict(kind="number", digits=3)
    return Table(
        t,
        [
            Col("outcome", "Outcome", "text"),
            Col("years", "Years qualified", "number", 1),
            Col("effect", "Arm effect (points)", **stat),
            Col("ci_low", "95% CI low", **stat),
            Col("ci_high", "95% CI high", **stat),
        ],
        caption="Arm effect by years qualified (exploratory)",
        rests=model_staff(curves["n"], ("effect", "ci_low", "ci_high")),
        notes=[STAFF_NOTE],
        facts={
            **facts(
                "impact",
                [("subgroup_experience", o, f"effect_curve_{int(k):02d}") for o, k in zip(curves["outcome"], point)],
                effect="estimate",
                ci_low="ci_low",
                ci_high="ci_high",
            ),
            **facts(
                "impact",
                [("subgroup_experience", o, f"years_curve_{int(k):02d}") for o, k in zip(curves["outcome"], point)],
                years="estimate",
            ),
        },
    )


def experience_moderation(views) -> tuple[plt.Figure, str]:
    """Arm effect (scale points, 95% CI band) by years qualified, one panel per outcome, shared axes."""
    t = views[0]
    outcomes = list(dict.fromkeys(t["outcome"]))
    fig, axes = _grid(len(outcomes), height=2.9, sharex=True)
    parts = []
    for ax, o in zip(axes.flat, outcomes):
        c = t[t["outcome"] == o]
        if c["effect"].notna().any():
            ax.fill_between(c["years"], c["ci_low"], c["ci_high"], color=BLUE, alpha=0.2, lw=0)
            ax.plot(c["years"], c["effect"], color=BLUE)
            # in words, no number: the curve's ends sit at the least and most experienced person's years
            first, last = c.iloc[0], c.iloc[-1]
            trend = (
                "rises"
                if last["effect"] > first["effect"]
                else "falls"
                if last["effect"] < first["effect"]
                else "is flat"
            )
            band = (
                "its 95% band includes zero throughout"
                if ((c["ci_low"] <= 0) & (c["ci_high"] >= 0)).all()
                else "its 95% band excludes zero over part of the range"
            )
            parts.append(f"{o}: the effect {trend} with years qualified; {band}")
        else:
            ax.text(0.5, 0.5, "withheld", transform=ax.transAxes, ha="center", color="0.35")
            parts.append(f"{o}: withheld")
        ax.axhline(0, color="0.4", ls="--", lw=1)
        ax.set_title(text(o), fontsize=12)
        ax.set_xlabel("Years qualified")
    for ax in axes[:, 0]:
        ax.set_ylabel("Arm effect (points)")
    rises = sum("effect rises" in p for p in parts)
    zero = sum("includes zero throughout" in p for p in parts)
    shown = sum(not p.endswith("withheld") for p in parts)
    finding = (
        f"The arm effect rises with years qualified for {count(rises)} of {count(shown)} outcomes, and its 95% band includes "
        f"zero throughout for {count(zero)} of them (exploratory)."
        if shown
        else "The arm effect by years qualified is withheld for every outcome."
    )
    alt = f"{finding} Line charts of the arm effect by years qualified with 95% bands. " + "; ".join(parts) + "."
    return finish(fig), alt


# ---------------------------------------------------------------------------
def per_la_table(het) -> Table:
    """Each LA's arm effect and the pooled one (:class:`~isafe_helpers.impact.heterogeneity.LAHeterogeneity`)."""
    p = het.per_la
    las = sorted(set(p["la"]) - {"pooled"})
    keys = {"n": [K.analysed(las if la == "pooled" else [la], o) for o, la in zip(p["outcome"], p["la"])]}
    t = p.assign(outcome=[label(o) for o in p["outcome"]], la=["Pooled" if la == "pooled" else la for la in p["la"]])
    stat: dict[str, Any] = dict(kind="number", digits=3, base="n")
    return Table(
        t[["outcome", "la", "n", "estimate", "ci_low", "ci_high"]],
        [
            Col("outcome", "Outcome", "text"),
            Col("la", "LA", "text"),
            Col("n", "Staff analysed", "people"),
            Col("estimate", "Arm effect (points): the LA's own primary model, or the pooled one", **stat),
            Col("ci_low", "95% CI low", **stat),
            Col("ci_high", "95% CI high", **stat),
        ],
        caption="Arm effect within each LA (each LA's own primary model) and pooled",
        keys=keys,
        facts=facts(
            "impact",
            [
                ("primary", o, "treatment_effect") if la == "pooled" else ("per_la", o, f"treatment_effect_{la}")
                for o, la in zip(p["outcome"], p["la"])
            ],
            n="n",
            estimate="estimate",
            ci_low="ci_low",
            ci_high="ci_high",
        ),
    )


def la_forest(views) -> tuple[plt.Figure, str]:
    """Forest plot of the arm effect in each LA beside the pooled one, one panel per outcome, shared x axis."""
    t = views[0]
    outcomes = list(dict.fromkeys(t["outcome"]))
    las = list(dict.fromkeys(t["la"]))
    fig, axes = _grid(len(outcomes), ncol=3, height=0.34 * len(las) + 1.2, sharex=True)
    parts = []
    for ax, o in zip(axes.flat, outcomes):
        d = t[t["outcome"] == o].set_index("la").reindex(las)
        for i, la in enumerate(las):
            r = d.loc[la]
            pooled = la == "Pooled"
            if np.isfinite(r["estimate"]):
                ax.plot([r["ci_low"], r["ci_high"]], [i, i], color="0.2" if pooled else "0.45", lw=2 if pooled else 1)
                ax.plot(
                    r["estimate"], i, "D" if pooled else "o", color=VERMILION if pooled else BLUE, ms=7 if pooled else 5
                )
            else:
                ax.text(0, i, "withheld", ha="center", va="center", fontsize=12, color="0.35")
        ax.axvline(0, color="0.4", ls="--", lw=1)
        ax.set_title(text(o), fontsize=12)
        ax.set_yticks(range(len(las)), [text(la) for la in las])
        ax.set_ylim(len(las) - 0.5, -0.5)
        pooled_row = d.loc["Pooled"] if "Pooled" in d.index else None
        if pooled_row is not None:
            # at the book's rounding of an effect in scale points, as the primary analysis table prints it
            pooled_ci = _ci(pooled_row["estimate"], pooled_row["ci_low"], pooled_row["ci_high"], 3)
            parts.append(f"{o}: pooled {pooled_ci}")
    for ax in axes[-1, :]:
        ax.set_xlabel("Arm effect (points)")
    pooled = t[t["la"] == "Pooled"].astype({"estimate": float, "ci_low": float, "ci_high": float})
    pooled = pooled[np.isfinite(pooled["estimate"])]
    above = int((pooled["estimate"] > 0).sum())
    clear = int(((pooled["ci_low"] > 0) | (pooled["ci_high"] < 0)).sum())
    finding = (
        f"The pooled arm effect is above zero for {count(above)} of {count(len(pooled))} outcomes, its 95% interval excluding zero "
        f"for {count(clear)}; each LA's own estimate, from a handful of teams, is far less precise."
        if len(pooled)
        else "The pooled arm effect is withheld or not available for every outcome."
    )
    alt = (
        f"{finding} Forest plots of the arm effect with 95% confidence intervals in each of {len(las) - 1} LAs "
        "(each LA's own primary model) and pooled, one panel per outcome. " + "; ".join(parts) + "."
    )
    return finish(fig), alt


__all__ = [
    "change_distributions",
    "consort",
    "curve_table",
    "effect_sizes",
    "experience_moderation",
    "la_forest",
    "per_la_table",
]
