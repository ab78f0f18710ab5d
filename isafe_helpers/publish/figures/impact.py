"""Impact strand figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from isafe_helpers.impact.flow import ARMS, STAGES
from isafe_helpers.publish import disclosure
from isafe_helpers.publish.disclosure import is_small
from isafe_helpers.publish.figures import finish


def _finish_panels(fig: plt.Figure, axes, used: int, ylabel: str, title: str) -> plt.Figure:
    """Close a grid of small multiples: blank unused panels, label the left column, title the figure."""
    for ax in axes.flat[used:]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return finish(fig)


def effect_sizes(results) -> plt.Figure:
    """Forest plot of Hedges' g (total variance) with 95% CIs, one row per scale."""
    rows = [(r.outcome, r.g.estimate, r.g.ci_low, r.g.ci_high) for r in results if r.g is not None]
    fig, ax = plt.subplots(figsize=(7, 0.6 * max(len(rows), 1) + 1.2))
    for i, (_name, g, lo, hi) in enumerate(rows):
        ax.plot([lo, hi], [i, i], color="0.3")
        ax.plot(g, i, "o", color="C0")
    ax.axvline(0, color="0.5", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), [r[0].replace("_", " ") for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("Hedges' g (total variance), 95% CI")
    return finish(fig)


def staff_labels(flow) -> dict[tuple[str, str], str]:
    """Staff counts of a trial flow for the diagram's labels, under disclosure control.

    Keys ``(stage, arm)`` plus ``("allocated", "all")``. Counts under the
    threshold are ``c`` and, since allocated = followed up + lost and
    followed up = analysed + not analysed, further counts are suppressed wherever those sums would give a
    suppressed one back (:func:`isafe_helpers.publish.disclosure.suppress`).
    """
    wide = flow.frame.pivot(index="arm", columns="stage", values="staff").reindex(ARMS)[list(STAGES)]
    wide = wide.reset_index()
    sup = disclosure.suppress(
        wide,
        list(STAGES),
        sums={"allocated": ("followed_up", "lost_to_follow_up"), "followed_up": ("analysed", "excluded_from_analysis")},
    )
    out = {}
    for i, arm in enumerate(wide["arm"]):
        for st in STAGES:
            out[(st, arm)] = disclosure.SUPPRESSED if sup.mask.loc[i, st] else f"{int(wide.loc[i, st]):,}"
    total = int(wide["allocated"].sum())
    hidden = any(out[("allocated", a)] == disclosure.SUPPRESSED for a in ARMS)
    out[("allocated", "all")] = disclosure.safe_count(total) if not hidden else disclosure.SUPPRESSED
    return out


def consort(flow) -> plt.Figure:
    """CONSORT flow diagram of teams and staff, by arm, from :func:`isafe_helpers.impact.flow.trial_flow`.

    Staff counts come from :func:`staff_labels`
    (under the disclosure threshold shown as ``c``, with secondary suppression);
    team counts are not counts of people and are shown as they are.
    """
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(8.5, 7.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")

    def box(x, y, text, w=4.2, h=1.15, fc="white"):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=fc, ec="0.3", lw=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="0.3", lw=1))

    lab = staff_labels(flow)
    tot_t = sum(flow.count("allocated", a, "teams") for a in ("treatment", "control"))
    box(
        5,
        9.3,
        f"Randomised within {flow.n_las} LA(s)\n{tot_t} teams, {lab[('allocated', 'all')]} staff",
        w=5,
        fc="0.93",
    )
    stages = [
        ("allocated", "Allocated to {arm}"),
        ("followed_up", "Followed up (survey returned)"),
        ("analysed", f"Analysed ({flow.outcome.replace('_', ' ')}, both waves)"),
    ]
    ys = [7.5, 5.0, 2.0]
    for x, arm in ((2.4, "treatment"), (7.6, "control")):
        arrow(5, 8.7, x, ys[0] + 0.6)
        for (stage, label), y in zip(stages, ys):
            t = flow.count(stage, arm, "teams")
            box(x, y, f"{label.format(arm=arm)}\n{t} teams, {lab[(stage, arm)]} staff")
        arrow(x, ys[0] - 0.6, x, ys[1] + 0.6)
        arrow(x, ys[1] - 0.6, x, ys[2] + 0.6)
        lt, ls = flow.count("lost_to_follow_up", arm, "teams"), lab[("lost_to_follow_up", arm)]
        et, es = flow.count("excluded_from_analysis", arm, "teams"), lab[("excluded_from_analysis", arm)]
        ax.text(
            x,
            (ys[0] + ys[1]) / 2,
            f"Lost to follow-up: {lt} teams, {ls} staff",
            ha="center",
            va="center",
            fontsize=7.5,
            color="0.25",
            bbox=dict(fc="white", ec="none"),
        )
        ax.text(
            x,
            (ys[1] + ys[2]) / 2 - 0.2,
            f"Not analysed (score missing): {et} teams, {es} staff",
            ha="center",
            va="center",
            fontsize=7.5,
            color="0.25",
            bbox=dict(fc="white", ec="none"),
        )
    ax.set_title("Trial flow (CONSORT)", fontsize=11)
    return finish(fig)


def experience_moderation(curves) -> plt.Figure:
    """Arm effect (scale points, 95% CI band) by years qualified, one panel per scale.

    ``curves`` is :attr:`isafe_helpers.impact.subgroups.ModeratorResults.curves`.
    """
    outcomes = list(dict.fromkeys(curves["outcome"]))
    n = max(len(outcomes), 1)
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 2.7 * nrow), squeeze=False, sharey=True)
    for ax, o in zip(axes.flat, outcomes):
        c = curves[curves["outcome"] == o]
        ax.fill_between(c["years"], c["ci_low"], c["ci_high"], color="C0", alpha=0.2, lw=0)
        ax.plot(c["years"], c["effect"], color="C0")
        ax.axhline(0, color="0.5", ls="--", lw=1)
        ax.set_title(o.replace("_", " "), fontsize=9)
        ax.set_xlabel("years qualified", fontsize=8)
    return _finish_panels(
        fig, axes, len(outcomes), "arm effect (points)", "Exploratory: arm effect by years qualified (95% CI)"
    )


def la_forest(het) -> plt.Figure:
    """Forest plot of the arm effect (scale points, 95% CI) in each LA beside the pooled one, per scale.

    ``het`` is :func:`isafe_helpers.impact.subgroups.la_heterogeneity`'s result;
    each panel's title carries the joint Wald F test of arm x LA and I^2.
    Withheld or not estimable LAs are labelled, not drawn.
    """
    per, tests = het.per_la, het.tests.set_index("outcome")
    outcomes = list(dict.fromkeys(per["outcome"]))
    ncol = min(len(outcomes), 3) or 1
    nrow = -(-max(len(outcomes), 1) // ncol)
    las = list(dict.fromkeys(per["la"]))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.6 * ncol, 0.32 * len(las) * nrow + 1.3 * nrow), squeeze=False, sharey=True
    )
    for ax, o in zip(axes.flat, outcomes):
        d = per[per["outcome"] == o].set_index("la").reindex(las)
        for i, la in enumerate(las):
            r = d.loc[la]
            pooled = la == "pooled"
            if np.isfinite(r["estimate"]):
                ax.plot([r["ci_low"], r["ci_high"]], [i, i], color="0.2" if pooled else "0.45", lw=2 if pooled else 1)
                ax.plot(r["estimate"], i, "D" if pooled else "o", color="C3" if pooled else "C0", ms=7 if pooled else 5)
            else:
                ax.text(
                    0,
                    i,
                    "withheld" if r["withheld"] else "not estimable",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="0.4",
                )
        ax.axvline(0, color="0.5", ls="--", lw=1)
        t = tests.loc[o]
        sub = (
            (
                f"F({t['wald_df1']:g},{t['wald_df2']:g}) = {t['wald_f']:.2f}, p = {t['p_wald']:.3f}; "
                f"I\u00b2 = {t['i2']:.0f}%"
            )
            if np.isfinite(t["wald_f"])
            else "heterogeneity not testable"
        )
        ax.set_title(f"{o.replace('_', ' ')}\n{sub}", fontsize=8)
        ax.set_xlabel("arm effect (points)", fontsize=8)
        ax.set_yticks(range(len(las)), las)
    axes[0, 0].invert_yaxis()
    for ax in axes.flat[len(outcomes) :]:
        ax.axis("off")
    fig.suptitle("Arm effect within each LA and pooled (95% CI)", fontsize=10)
    return finish(fig)


def change_distributions(summary) -> plt.Figure:
    """Box plots of change (follow-up minus baseline) by arm, one panel per scale, from summaries only.

    ``summary`` is :func:`isafe_helpers.impact.change_summary`: box = quartiles,
    line = median, diamond = mean, whiskers = 10th and 90th percentiles; no
    individual value is drawn. Arms resting on fewer people than the disclosure
    threshold are withheld: labelled and not drawn.
    """
    outcomes = list(dict.fromkeys(summary["outcome"]))
    ncol = min(len(outcomes), 3) or 1
    nrow = -(-max(len(outcomes), 1) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 2.8 * nrow), squeeze=False, sharey=True)
    for ax, o in zip(axes.flat, outcomes):
        d = summary[summary["outcome"] == o]
        stats_, pos, labels = [], [], []
        for i, r in enumerate(d.itertuples()):
            labels.append(r.arm)
            if is_small(r.n):
                ax.text(i + 1, 0, "withheld\n(too few people)", ha="center", va="center", fontsize=7, color="0.4")
                continue
            stats_.append(
                dict(
                    med=r.median, q1=r.q1, q3=r.q3, whislo=r.p_low, whishi=r.p_high, mean=r.mean, fliers=[], label=r.arm
                )
            )
            pos.append(i + 1)
        if stats_:
            ax.bxp(
                stats_,
                positions=pos,
                showmeans=True,
                showfliers=False,
                widths=0.5,
                meanprops=dict(marker="D", markerfacecolor="C3", markeredgecolor="C3", markersize=4),
            )
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.set_xlim(0.4, len(labels) + 0.6)
        ax.axhline(0, color="0.5", ls="--", lw=1)
        ax.set_title(o.replace("_", " "), fontsize=9)
    return _finish_panels(
        fig,
        axes,
        len(outcomes),
        "change (points)",
        "Change from baseline by arm (box: quartiles; whiskers: 10th-90th percentile)",
    )
