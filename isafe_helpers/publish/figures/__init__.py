"""Figures for the strand pages: drawn from published values only, accessible, SVG.

Every figure function takes the *views* of its tables (the tables' data with
every value disclosure control withholds set to NaN: see
:func:`isafe_helpers.publish.report.views`) and returns the figure and its
alt text, written from the same values. So a figure never shows a number
its tables withhold, and its alt text says what it shows.

House style (the Analysis Function's chart checklist): the Okabe-Ito
colour-blind-safe palette with labels or marker shapes as well as colour;
every text at 12 pt (none smaller) on a figure 8 inches wide, which is
768 px at 96 px per inch: the book's text column at desktop widths, so
chart text is 16 px there, the body's size. A figure is never shown
smaller than that (its image has that minimum width): on a narrower screen
(a phone) it scrolls sideways in its own focusable box, rather than
shrinking its text to a few pixels. Printed, it fits the column (10.5 pt
text beside 10 pt body). Shared axes where panels are compared; SVG with
text kept as text.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.rcsetup import cycler  # noqa: E402  (matplotlib.cycler, as typed)

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
BLUE, ORANGE, GREEN, VERMILION, SKY, PURPLE, YELLOW = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#56B4E9",
    "#CC79A7",
    "#F0E442",
)
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*"]
#: Figure width in inches: the book's text column at desktop widths (768 px at 96 px per inch).
WIDTH = 8.0
WITHHELD = "withheld"

plt.rcParams.update(
    {
        "font.size": 12,
        "axes.titlesize": 12,
        "axes.labelsize": 12,
        "xtick.labelsize": 12,
        "ytick.labelsize": 12,
        "legend.fontsize": 12,
        "figure.titlesize": 12,
        "axes.prop_cycle": cycler(color=OKABE_ITO),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "0.88",
        "svg.fonttype": "none",
        "svg.hashsalt": "isafe",
        "font.family": "DejaVu Sans",
    }
)


def text(s) -> str:
    """A data-derived string made safe for a figure label: no mathtext from ``$`` signs."""
    return str(s).replace("$", r"\$")


def num(x: float, digits: int = 2) -> str:
    """A number as figures and alt text print it (no -0.00), rounded half up as the tables round it.

    >>> num(81.25, 1), num(-0.004)
    ('81.3', '0.00')
    """
    from isafe_helpers.publish.tables import _half_up  # one rounding for tables, figures and alt text

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return WITHHELD
    s = f"{x:,.{digits}f}" if math.isinf(float(x)) else f"{_half_up(float(x), digits):,.{digits}f}"
    return s.lstrip("-") if float(s.replace(",", "")) == 0 else s


def tick(s, width: int = 24) -> str:
    """A long axis label (an outcome's or a component's name) wrapped onto lines of ``width`` characters,
    so the figure keeps its width at 12 pt text instead of pushing its axes off the canvas."""
    return textwrap.fill(text(s), width)


def count(n: int) -> str:
    """A count of outcomes, components or cells in an alt text's finding, in words up to ten.

    In words, so a finding's "three of five" adds no number the page does not print.

    >>> count(0), count(3), count(12)
    ('none', 'three', '12')
    """
    words = ("none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if 0 <= n <= 10 else f"{n:,}"


def _wrap_titles(fig: plt.Figure) -> None:
    """Wrap each panel's title to its panel's width, so side-by-side titles never run into each other.

    The width in characters is the panel's width in points over 0.6 em per
    character (DejaVu Sans averages about 0.55 em); a title already wrapped
    is re-wrapped from its words.
    """
    fig_w = fig.get_figwidth() * 72
    for ax in fig.axes:
        title = ax.title.get_text()
        if not title:
            continue
        width = ax.get_position().width * fig_w
        chars = max(12, int(width / (0.6 * float(ax.title.get_fontsize()))))
        ax.title.set_text(textwrap.fill(" ".join(title.split()), chars))


def finish(fig: plt.Figure) -> plt.Figure:
    """Lay out and close a built figure.

    Panel titles are wrapped to their panel; a figure-level legend (placed at
    the lower centre) gets its own band at the foot, below the axes labels,
    which ``tight_layout`` alone would draw over.
    """
    _wrap_titles(fig)
    fig.tight_layout()
    if fig.legends:
        height = max(lg.get_window_extent().height for lg in fig.legends) / fig.bbox.height
        for lg in fig.legends:
            lg.set_bbox_to_anchor((0.5, 0.0), transform=fig.transFigure)
            lg.set_loc("lower center")
        fig.tight_layout(rect=(0, min(0.5, height + 0.01), 1, 1))
    _declutter(fig)
    plt.close(fig)
    return fig


def _declutter(fig: plt.Figure) -> None:
    """Move point labels (annotations set off in points) that would overlap one another.

    Each label, in the order drawn, steps up by its own height until it
    clears every label already placed in its panel (at most ten steps), so
    neighbouring LAs' codes on a scatter stay readable.
    """
    for ax in fig.axes:
        placed: list = []
        for t in [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation)]:
            if t.get_anncoords() != "offset points":
                continue
            x, y = t.xyann
            for _ in range(10):
                box = t.get_window_extent()
                if not any(box.padded(4).overlaps(b) for b in placed):  # 4 px clear: the browser's glyphs differ
                    break
                y += box.height * 72 / fig.dpi + 1
                t.xyann = (x, y)
            placed.append(t.get_window_extent())


def svg(fig: plt.Figure) -> str:
    """The figure as SVG text (deterministic: fixed ids, no date).

    The canvas is kept at the figure's own size (``WIDTH`` wide), so its text
    shows at 16 px in the book's column; only a figure with something drawn
    outside its canvas is cropped to what it draws (``bbox_inches="tight"``).
    """
    buf = io.StringIO()
    drawn = fig.get_tightbbox()
    inside = drawn is not None and drawn.x0 >= -0.5 / 72 and drawn.y0 >= -0.5 / 72
    inside = inside and drawn.x1 <= fig.get_figwidth() + 0.5 / 72 and drawn.y1 <= fig.get_figheight() + 0.5 / 72
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches=None if inside else "tight")
    return buf.getvalue()


def natural_width_px(svg_text: str) -> float:
    """An SVG's width in CSS pixels (matplotlib writes it in points), the width its 12 pt text is 16 px at.

    >>> natural_width_px('<svg width="576pt" height="100pt" viewBox="0 0 576 100">')
    768.0
    """
    hit = re.search(r'<svg[^>]*\swidth="([\d.]+)(pt|px)?"', svg_text)
    if hit is None:
        return WIDTH * 96
    return float(hit.group(1)) * (4 / 3 if hit.group(2) in (None, "pt") else 1.0)


def figure_html(fig: plt.Figure, alt: str, number: int, caption: str, notes: Sequence[str] = ()) -> str:
    """A numbered, captioned figure with alt text, as HTML (the SVG inline as an image).

    The image is never narrower than its natural width (its text would fall
    below the body's size): where the column is narrower, its box scrolls
    sideways, and is focusable and named so a keyboard can scroll it.
    ``notes`` are printed under the image (a coarsened table's, saying what
    was grouped and why).
    """
    text_ = svg(fig)
    data = base64.b64encode(text_.encode("utf-8")).decode("ascii")
    cap = html.escape(f"Figure {number}. {caption}")
    said = "".join(f'<p class="isafe-figure-note">{html.escape(n)}</p>' for n in notes)
    return (
        f'<figure class="isafe-figure"><div class="isafe-figure-scroll" tabindex="0" role="region" '
        f'aria-label="{cap}"><img src="data:image/svg+xml;base64,{data}" alt="{html.escape(alt)}" '
        f'style="min-width:{natural_width_px(text_):.0f}px;height:auto"/></div>{said}<figcaption>{cap}</figcaption>'
        "</figure>"
    )


def show(fig: plt.Figure) -> None:
    """Display a figure once in a notebook (for analysts' own exploration; the book uses figure specs)."""
    from IPython.display import display

    display(fig)


from isafe_helpers.publish.figures import cost, impact, process  # noqa: E402, F401  (they use the helpers above)
