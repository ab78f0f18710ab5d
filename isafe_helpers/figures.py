"""Figures for the strand pages (matplotlib/seaborn, no personal data).

Each function builds a figure, closes it (so no backend shows it on its own,
whatever the kernel's matplotlib settings) and returns it; notebooks show it
once with :func:`show`, which returns nothing, so no text repr is stored.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display

from .report import MIN_CELL

sns.set_theme(style="whitegrid", context="notebook")


def show(fig: plt.Figure) -> None:
    """Display a figure once in a notebook."""
    display(fig)


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
    fig.tight_layout()
    plt.close(fig)
    return fig


def reach(table: pd.DataFrame) -> plt.Figure:
    """Reach by component against the 100% line; bars resting on fewer than MIN_CELL people are withheld."""
    t = table[table["intended_n"] >= MIN_CELL]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    y = np.arange(len(t))
    ax.barh(y, t["reach_pct"], color="C0")
    ax.axvline(100, color="C3", ls="--", lw=1, label="intended audience (100%)")
    ax.set_yticks(y, [c.replace("_", " ") for c in t["component"]])
    ax.invert_yaxis()
    ax.set_xlabel("Reach (% of intended audience)")
    ax.set_xlim(0, max(110, float(t["reach_pct"].max() if len(t) else 0) + 10))
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    plt.close(fig)
    return fig


def cost_by_category(by_category: pd.DataFrame) -> plt.Figure:
    """Financial cost by category and phase (stacked bars); staff time excluded."""
    t = by_category.drop(index="staff_time", errors="ignore")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    left = np.zeros(len(t))
    for phase in [p for p in ("setup", "delivery") if p in t.columns]:
        ax.barh(t.index, t[phase], left=left, label=phase)
        left += t[phase].to_numpy()
    ax.set_xlabel("Cost (GBP)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    plt.close(fig)
    return fig
