"""Implementation and process strand figures.

Disclosure control applies to figures as to tables: a bar or cell resting
on fewer than :func:`~isafe_helpers.publish.disclosure.threshold` people is withheld and
marked ``c``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isafe_helpers.data.contract import COMPONENTS
from isafe_helpers.publish.disclosure import SUPPRESSED, threshold
from isafe_helpers.publish.figures import finish

LIKERT_COLOURS = {"1": "#b2182b", "2": "#ef8a62", "3": "#bababa", "4": "#67a9cf", "5": "#2166ac"}
LIKERT_LABELS = {
    "1": "very dissatisfied",
    "2": "fairly dissatisfied",
    "3": "neither",
    "4": "fairly satisfied",
    "5": "very satisfied",
}


def _label(name: str) -> str:
    return name.replace("_", " ")


def reach(table: pd.DataFrame, by_la: pd.DataFrame | None = None) -> plt.Figure:
    """Reach against the 100% line: by component, and per LA when ``by_la`` holds several LAs.

    Bars resting on an intended audience under the threshold are withheld (``c``).
    """
    las = [] if by_la is None else list(dict.fromkeys(by_la["la"]))
    if len(las) > 1:
        frames = pd.concat([by_la, table.assign(la="pooled")], ignore_index=True)
        groups = [*las, "pooled"]
    else:
        frames, groups = table.assign(la="scope"), ["scope"]
    comps = list(dict.fromkeys(table["component"]))
    fig, axes = plt.subplots(
        1,
        len(comps) if len(groups) > 1 else 1,
        sharey=True,
        squeeze=False,
        figsize=(2.0 * len(comps), 0.32 * len(groups) + 1.8) if len(groups) > 1 else (7, 3.4),
    )
    panels = [(ax, [c]) for ax, c in zip(axes[0], comps)] if len(groups) > 1 else [(axes[0][0], comps)]
    top = max(110.0, float(frames.loc[frames["intended_n"] >= threshold(), "reach_pct"].max() or 0) + 10)
    for ax, cs in panels:
        sub = frames[frames["component"].isin(cs)]
        labels = groups if len(groups) > 1 else [_label(c) for c in cs]
        keys = [(g, cs[0]) for g in groups] if len(groups) > 1 else [("scope", c) for c in cs]
        y = np.arange(len(keys))
        for i, (g, c) in enumerate(keys):
            r = sub[(sub["la"] == g) & (sub["component"] == c)]
            if r.empty:
                continue
            r = r.iloc[0]
            if r["intended_n"] < threshold() or np.isnan(r["reach_pct"]):
                ax.text(2, i, SUPPRESSED, va="center", fontsize="small", color="0.4")
                continue
            colour = "C1" if r["reach_pct"] > 100 else ("0.35" if g == "pooled" else "C0")
            ax.barh(i, r["reach_pct"], color=colour)
        ax.axvline(100, color="C3", ls="--", lw=1)
        ax.set_yticks(y, labels)
        ax.set_xlim(0, top)
        if len(groups) > 1:
            ax.set_title(_label(cs[0]), fontsize="small")
    axes[0][0].invert_yaxis()
    fig.supxlabel("Reach (% of intended audience); dashed line: 100%", fontsize="small")
    return finish(fig)


def satisfaction_diverging(distribution: pd.DataFrame) -> plt.Figure:
    """Diverging stacked bars of satisfaction answers (1..5) per component, centred on the neutral answer.

    Components with fewer than threshold() respondents are withheld (``c``).
    """
    t = distribution.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(t) + 1.6))
    for i, r in t.iterrows():
        n = r["respondents"]
        if n < threshold():
            ax.text(0, i, SUPPRESSED, va="center", ha="center", fontsize="small", color="0.4")
            continue
        share = {k: 100 * r[k] / n for k in LIKERT_COLOURS}
        left = -(share["1"] + share["2"] + share["3"] / 2)
        for k in LIKERT_COLOURS:
            ax.barh(i, share[k], left=left, color=LIKERT_COLOURS[k], label=LIKERT_LABELS[k] if i == 0 else None)
            left += share[k]
    ax.axvline(0, color="0.2", lw=0.8)
    ax.set_yticks(range(len(t)), [_label(c) for c in t["component"]])
    ax.invert_yaxis()
    ax.set_xlim(-100, 100)
    ax.set_xlabel("% of respondents (dissatisfied to the left, satisfied to the right)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in LIKERT_COLOURS.values()]
    ax.legend(
        handles,
        LIKERT_LABELS.values(),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.3),
        ncol=3,
        fontsize="x-small",
        frameon=False,
    )
    return finish(fig)


def fidelity_heatmap(by_la: pd.DataFrame) -> plt.Figure:
    """Delivered % of planned elements, LA by component (blank where no session was logged)."""
    cols = [c for c in (*COMPONENTS, "all") if c in set(by_la["component"])]
    m = by_la.pivot(index="la", columns="component", values="delivered_pct").reindex(columns=cols)
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 2, 0.45 * len(m) + 1.6))
    im = ax.imshow(m.to_numpy(dtype=float), cmap="YlGnBu", vmin=50, vmax=100, aspect="auto")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m.iat[i, j]
            ax.text(
                j,
                i,
                "" if pd.isna(v) else f"{v:.0f}",
                ha="center",
                va="center",
                fontsize="small",
                color="white" if (not pd.isna(v) and v > 85) else "black",
            )
    ax.set_xticks(range(len(cols)), [_label(c) for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(m)), m.index)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="delivered % of planned elements")
    return finish(fig)


def dose_outcome(table: pd.DataFrame) -> plt.Figure:
    """Mean change in each scale by dose (exploratory), with +/- 1.96 SE; groups under threshold() withheld."""
    outcomes = list(dict.fromkeys(table["outcome"]))
    doses = list(dict.fromkeys(table["dose"]))
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(outcomes) * len(doses) / 2 + 1.5))
    for j, d in enumerate(doses):
        sub = table[table["dose"] == d].set_index("outcome").reindex(outcomes)
        y = np.arange(len(outcomes)) + (j - (len(doses) - 1) / 2) * 0.22
        ok = sub["n"].fillna(0).to_numpy() >= threshold()
        ax.errorbar(
            sub["mean_change"].where(ok),
            y,
            xerr=1.96 * sub["se"].where(ok),
            fmt="o",
            color=f"C{j}",
            label=f"{d} (practice-pathway sessions)",
            capsize=2,
        )
    ax.axvline(0, color="0.5", ls="--", lw=1)
    ax.set_yticks(range(len(outcomes)), [_label(o) for o in outcomes])
    ax.invert_yaxis()
    ax.set_xlabel("Mean change, follow-up minus baseline (exploratory, not causal)")
    ax.legend(fontsize="x-small", loc="lower right")
    return finish(fig)


def reach_vs_impact(table: pd.DataFrame) -> plt.Figure:
    """Each LA's practice-pathway reach against its treatment effect, one panel per scale."""
    outcomes = list(dict.fromkeys(table["outcome"]))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(2.6 * len(outcomes), 2.9), squeeze=False, sharex=True)
    for ax, o in zip(axes[0], outcomes):
        sub = table[table["outcome"] == o]
        ax.errorbar(
            sub["reach_pct"],
            sub["treatment_effect"],
            yerr=[sub["treatment_effect"] - sub["ci_low"], sub["ci_high"] - sub["treatment_effect"]],
            fmt="o",
            color="C0",
            ecolor="0.7",
            capsize=2,
        )
        for r in sub.itertuples(index=False):
            ax.annotate(
                r.la, (r.reach_pct, r.treatment_effect), fontsize="x-small", xytext=(3, 3), textcoords="offset points"
            )
        ax.axhline(0, color="0.5", ls="--", lw=1)
        ax.set_title(_label(o), fontsize="small")
    axes[0][0].set_ylabel("Treatment effect (95% CI)")
    fig.supxlabel("Practice-pathway reach (%)", fontsize="small")
    return finish(fig)
