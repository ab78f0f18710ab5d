"""Impact strand figures."""

from __future__ import annotations

import matplotlib.pyplot as plt

from . import finish


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


def consort(flow) -> plt.Figure:
    """CONSORT flow diagram of teams and staff, by arm, from :func:`isafe_helpers.impact_flow.trial_flow`.

    Staff counts come from :meth:`~isafe_helpers.impact_flow.TrialFlow.staff_labels`
    (under the disclosure threshold shown as ``c``, with secondary suppression);
    team counts are not counts of people and are shown as they are.
    """
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(8.5, 7.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")

    def box(x, y, text, w=4.2, h=1.15, fc="white"):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    fc=fc, ec="0.3", lw=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="0.3", lw=1))

    lab = flow.staff_labels()
    tot_t = sum(flow.count("allocated", a, "teams") for a in ("treatment", "control"))
    box(5, 9.3, f"Randomised within {flow.n_las} LA(s)\n{tot_t} teams, {lab[('allocated', 'all')]} staff", w=5,
        fc="0.93")
    stages = [("allocated", "Allocated to {arm}"), ("followed_up", "Followed up (survey returned)"),
              ("analysed", f"Analysed ({flow.outcome.replace('_', ' ')}, both waves)")]
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
        ax.text(x, (ys[0] + ys[1]) / 2, f"Lost to follow-up: {lt} teams, {ls} staff",
                ha="center", va="center", fontsize=7.5, color="0.25", bbox=dict(fc="white", ec="none"))
        ax.text(x, (ys[1] + ys[2]) / 2 - 0.2, f"Not analysed (score missing): {et} teams, {es} staff",
                ha="center", va="center", fontsize=7.5, color="0.25", bbox=dict(fc="white", ec="none"))
    ax.set_title("Trial flow (CONSORT)", fontsize=11)
    return finish(fig)


def experience_moderation(curves) -> plt.Figure:
    """Arm effect (scale points, 95% CI band) by years qualified, one panel per scale.

    ``curves`` is :attr:`isafe_helpers.impact_moderators.ModeratorResults.curves`.
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
    for ax in axes.flat[len(outcomes):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("arm effect (points)", fontsize=8)
    fig.suptitle("Exploratory: arm effect by years qualified (95% CI)", fontsize=10)
    return finish(fig)
