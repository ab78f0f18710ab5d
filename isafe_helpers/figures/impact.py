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
