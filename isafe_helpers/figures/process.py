"""Implementation and process strand figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..report import MIN_CELL
from . import finish


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
    return finish(fig)
