"""Cost strand figures. Every cost axis states the report's price year."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isafe_helpers.cost.costing import RATING_BANDS, TOP_EDGE, price_label
from isafe_helpers.data.contract import COST_CATEGORIES, PHASES
from isafe_helpers.publish.figures import finish


def cost_by_category(by_category: pd.DataFrame, price_year: int | None = None) -> plt.Figure:
    """Financial cost by category and phase (stacked bars); staff time excluded."""
    t = by_category.drop(index="staff_time", errors="ignore")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    left = np.zeros(len(t))
    for phase in [p for p in PHASES if p in t.columns]:
        ax.barh(t.index, t[phase], left=left, label=phase)
        left += t[phase].to_numpy()
    ax.set_xlabel(f"Cost, {price_label(price_year)}")
    ax.legend(loc="lower right", fontsize="small")
    return finish(fig)


def cost_by_la(category_by_la: pd.DataFrame, price_year: int | None = None) -> plt.Figure:
    """Financial cost per LA stacked by category, one panel per phase (set-up, delivery)."""
    t = category_by_la[category_by_la["category"] != "staff_time"]
    las = sorted(t["la"].unique())
    cats = [c for c in COST_CATEGORIES if c in set(t["category"])]
    fig, axes = plt.subplots(1, 2, sharey=True, figsize=(10, 0.4 * len(las) + 1.8))
    for ax, phase in zip(axes, PHASES):
        m = t[t["phase"] == phase].pivot_table(index="la", columns="category", values="cost_gbp", aggfunc="sum")
        m = m.reindex(index=las, columns=cats).fillna(0.0)
        left = np.zeros(len(las))
        for j, c in enumerate(cats):
            ax.barh(las, m[c], left=left, color=f"C{j}", label=c.replace("_", " "))
            left += m[c].to_numpy()
        ax.set_title("set-up" if phase == "setup" else phase, fontsize="small")
        ax.set_xlabel(f"Cost, {price_label(price_year)}")
    axes[0].invert_yaxis()
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="x-small", frameon=False)
    return finish(fig)


def unit_cost_bands(by_la: pd.DataFrame, pooled: float | None = None, price_year: int | None = None) -> plt.Figure:
    """Cost per participant reached per LA (and pooled) against the Foundations rating bands."""
    t = by_la.dropna(subset=["cost_per_participant_gbp"])
    names = list(t["la"]) + (["pooled"] if pooled is not None and not np.isnan(pooled) else [])
    vals = list(t["cost_per_participant_gbp"]) + ([pooled] if len(names) > len(t) else [])
    top = max([4000.0, *[v * 1.2 for v in vals]])
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(names) + 1.8))
    edges = [e for _, e in RATING_BANDS] + [TOP_EDGE, top]
    shades = ["#edf8e9", "#c7e9c0", "#fdd49e", "#fdbb84", "#fc8d59"]
    for k in range(5):
        ax.axvspan(edges[k], edges[k + 1], color=shades[k], alpha=0.6, lw=0)
        ax.text((edges[k] + edges[k + 1]) / 2, -0.9, f"rating {k + 1}", ha="center", fontsize="x-small")
    ax.barh(range(len(names)), vals, color=["0.35" if n == "pooled" else "C0" for n in names], height=0.6)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -1.3)
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlim(0, top)
    ax.set_xticks([0, 100, 500, 1000, 2000], ["0", "100", "500", "1,000", "2,000"])
    ax.set_xlabel(f"Cost per participant reached, {price_label(price_year)}")
    return finish(fig)


def tornado(table: pd.DataFrame, base: float, price_year: int | None = None) -> plt.Figure:
    """Unit cost when each of the largest items moves by -/+ the sensitivity share (tornado)."""
    items = table[table["kind"] == "item"]
    names = list(dict.fromkeys(items["item"]))
    lo = [
        items[(items["item"] == n) & items["quantity"].str.startswith("minus")]["cost_per_participant_gbp"].iloc[0]
        for n in names
    ]
    hi = [
        items[(items["item"] == n) & items["quantity"].str.startswith("plus")]["cost_per_participant_gbp"].iloc[0]
        for n in names
    ]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.5))
    y = np.arange(len(names))
    ax.barh(y, np.array(lo) - base, left=base, color="C0", label="item cost -20%")
    ax.barh(y, np.array(hi) - base, left=base, color="C1", label="item cost +20%")
    ax.axvline(base, color="0.2", lw=1)
    for edge in [e for _, e in RATING_BANDS[1:]] + [TOP_EDGE]:
        if min(lo + [base]) * 0.9 <= edge <= max(hi + [base]) * 1.1:
            ax.axvline(edge, color="C3", ls="--", lw=1)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel(f"Cost per participant reached, {price_label(price_year)}")
    ax.legend(fontsize="x-small", loc="lower right")
    return finish(fig)
