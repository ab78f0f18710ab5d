"""Cost strand figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import finish


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
    return finish(fig)
