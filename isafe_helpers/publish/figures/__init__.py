"""Figures for the strand pages (matplotlib/seaborn, no personal data).

One module per strand (:mod:`.impact`, :mod:`.process`, :mod:`.cost`); this
module holds what they share.

Each function builds a figure, closes it (so no backend shows it on its own,
whatever the kernel's matplotlib settings) and returns it; notebooks show it
once with :func:`show`, which returns nothing, so no text repr is stored.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import display

sns.set_theme(style="whitegrid", context="notebook")


def show(fig: plt.Figure) -> None:
    """Display a figure once in a notebook."""
    display(fig)


def finish(fig: plt.Figure) -> plt.Figure:
    """Lay out and close a built figure (it is shown later with :func:`show`)."""
    fig.tight_layout()
    plt.close(fig)
    return fig


from isafe_helpers.publish.figures import cost, impact, process  # noqa: E402, F401  (they use finish)
