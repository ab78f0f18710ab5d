"""Cost strand figures, and the tables they are drawn from. Every cost axis states the report's price year."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isafe_helpers.cost.costing import RATING_BANDS, TOP_EDGE, cost_rating, price_label
from isafe_helpers.data.contract import COST_CATEGORIES, PHASES
from isafe_helpers.publish.figures import BLUE, OKABE_ITO, ORANGE, VERMILION, WIDTH, finish, num, text, tick
from isafe_helpers.results import keys as K
from isafe_helpers.results.labels import label
from isafe_helpers.results.table import Col, Table


def category_table(category_by_la: pd.DataFrame, price_year: int | None) -> Table:
    """Financial cost by LA, phase and category (staff time left out: it is not a financial cost)."""
    t = category_by_la[category_by_la["category"] != "staff_time"].copy()
    # each LA's own cost of the phase and category (its estimates.csv, cost/cost_by_category)
    shows = {
        "cost_gbp": [
            (str(la), "cost", "cost_by_category", str(c), f"{p}_cost_gbp", "estimate")
            for la, p, c in zip(t["la"], t["phase"], t["category"])
        ]
    }
    t["phase"] = [label(p) for p in t["phase"]]
    t["category"] = [label(c) for c in t["category"]]
    return Table(
        t[["la", "phase", "category", "cost_gbp"]],
        [
            Col("la", "LA", "text"),
            Col("phase", "Phase", "text"),
            Col("category", "Category", "text"),
            Col("cost_gbp", f"Cost, {price_label(price_year)}", "gbp", 0),
        ],
        caption="Financial cost by LA, phase and category",
        facts=shows,
    )


def cost_by_la(views, price_year: int | None = None) -> tuple[plt.Figure, str]:
    """Financial cost per LA stacked by category, one panel per phase (shared axes)."""
    t = views[0]
    las = sorted(t["la"].unique())
    cats = [label(c) for c in COST_CATEGORIES if label(c) in set(t["category"])]
    fig, axes = plt.subplots(1, 2, sharey=True, sharex=True, figsize=(WIDTH, 0.45 * len(las) + 3.0))
    hatches = ["", "//", "..", "xx", "\\\\", "--", "oo", "++"]
    totals: list[tuple[str, int]] = []
    largest: list[str] = []
    for ax, phase in zip(axes, PHASES):
        m = t[t["phase"] == label(phase)].pivot_table(index="la", columns="category", values="cost_gbp", aggfunc="sum")
        m = m.reindex(index=las, columns=cats).fillna(0.0)
        left = np.zeros(len(las))
        for j, c in enumerate(cats):
            ax.barh(
                las, m[c], left=left, color=OKABE_ITO[j % 8], hatch=hatches[j % 8], edgecolor="white", label=text(c)
            )
            left += m[c].to_numpy()
        totals.append((label(phase), int((m.sum(axis=0) > 0).sum())))
        sums = m.sum(axis=0)
        if len(sums) and sums.max() > 0:
            largest.append(f"{text(sums.idxmax()).lower()} in {label(phase).lower()}")
        ax.set_title(label(phase), fontsize=12)
        ax.set_xlabel(f"Cost, {price_label(price_year)}")
    axes[0].invert_yaxis()
    axes[0].set_yticks(range(len(las)), [text(la) for la in las])
    handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=4, frameon=False, fontsize=12)  # finish() gives it a band
    finding = (
        f"Across {len(las)} LA(s), the largest financial cost category is {' and '.join(largest)}."
        if largest
        else "No financial cost is shown."
    )
    alt = (
        f"{finding} Stacked bar charts of the financial cost of each LA by category, set-up and delivery; "
        + "; ".join(f"{p}: {k} categories" for p, k in totals)
        + f" ({price_label(price_year)}); the totals by phase are in the page's table of financial cost by phase."
    )
    return finish(fig), alt


def unit_cost_bands(views, price_year: int | None = None) -> tuple[plt.Figure, str]:
    """Cost per participant reached per LA (and pooled) against the Foundations rating bands.

    Views: the LA table (``la``, ``cost_per_participant_gbp``) and, for a
    pooled page, the unit-cost table (its first row is the rated unit cost).
    """
    t = views[0]
    names = [text(x) for x in t["la"]]
    vals = list(t["cost_per_participant_gbp"].astype(float))
    if len(views) > 1 and len(views[1]):
        names.append("Pooled")
        vals.append(float(views[1]["cost"].iloc[0]))
    finite = [v for v in vals if np.isfinite(v)]
    top = max([4000.0, *[v * 1.2 for v in finite]])
    fig, ax = plt.subplots(figsize=(WIDTH, 0.4 * len(names) + 2.0))
    edges = [e for _, e in RATING_BANDS] + [TOP_EDGE, top]
    shades = ["#F7F7F7", "#E0E0E0", "#C8C8C8", "#AFAFAF", "#969696"]
    for k in range(5):
        ax.axvspan(edges[k], edges[k + 1], color=shades[k], lw=0, zorder=0)
        ax.text((edges[k] + edges[k + 1]) / 2, -0.9, f"Rating {k + 1}", ha="center", fontsize=12)
    parts = []
    for i, (n, v) in enumerate(zip(names, vals)):
        if np.isfinite(v):
            ax.barh(i, v, color="0.2" if n == "Pooled" else BLUE, height=0.6, zorder=2)
            parts.append(f"{n} £{num(v, 0)}")
        else:
            ax.text(110, i, "withheld or not computed", va="center", fontsize=12, color="0.35")
            parts.append(f"{n} withheld or not computed")
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -1.3)
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlim(0, top)
    ax.set_xticks([0, 100, 500, 1000, 2000], ["0", "100", "500", "1,000", "2,000"])
    ax.set_xlabel(f"Cost per participant reached, {price_label(price_year)}")
    ax.grid(False)
    rated = [(n, v) for n, v in zip(names, vals) if np.isfinite(v)]
    pooled = [(n, v) for n, v in rated if n == "Pooled"]
    if pooled:
        finding = (
            f"The pooled cost per participant reached, £{num(pooled[0][1], 0)}, is in the band of Foundations cost "
            f"rating {cost_rating(pooled[0][1])}."
        )
    elif rated:
        finding = (
            "; ".join(
                f"{n}'s cost per participant reached, £{num(v, 0)}, is in rating band {cost_rating(v)}"
                for n, v in rated[:3]
            )
            + "."
        )
    else:
        finding = "The cost per participant reached is withheld or not computed."
    alt = (
        f"{finding} Bar chart of the cost per participant reached against the Foundations cost-rating bands "
        f"({price_label(price_year)}): " + "; ".join(parts) + "."
    )
    return finish(fig), alt


def tornado_table(sens) -> Table:
    """The item scenarios of a :class:`~isafe_helpers.cost.scenarios.SensitivityResult` (each item down and up)."""
    price_year = sens.price_year
    t = sens.frame[sens.frame["kind"] == "item"].copy()
    t["direction"] = ["down" if str(q).startswith("minus") else "up" for q in t["quantity"]]
    return Table(
        t[["item", "direction", "denominator", "cost_per_participant_gbp"]],
        [
            Col("item", "Cost item", "text"),
            Col("direction", "Item cost moved", "text"),
            Col("denominator", "Participants reached", "people"),
            Col(
                "cost_per_participant_gbp",
                f"Unit cost, {price_label(price_year)}",
                "gbp",
                0,
                base="denominator",
                reveals="denominator",
            ),
        ],
        caption="Unit cost when each of the largest items moves",
        facts={
            col: [
                ("cost", "sensitivity", str(o), f"cost_per_participant_gbp_{q}", fld)
                for o, q in zip(t["outcome"], t["quantity"])
            ]
            for col, fld in (("denominator", "n"), ("cost_per_participant_gbp", "estimate"))
        },
        # an item scenario divides by the participants reached: withheld on a page where that count is
        keys={"denominator": [K.reached(sens.las)] * len(t)} if getattr(sens, "las", None) else {},
    )


def tornado(views, share: float, price_year: int | None = None) -> tuple[plt.Figure, str]:
    """Unit cost when each of the largest items moves down and up by ``share`` (a tornado chart).

    Views: :func:`tornado_table`'s, and the unit-cost table (its first row, the rated unit cost, is the base).
    """
    t = views[0]
    base = float(views[1]["cost"].iloc[0])
    names = list(dict.fromkeys(t["item"]))
    lo = [t[(t["item"] == n) & (t["direction"] == "down")]["cost_per_participant_gbp"].iloc[0] for n in names]
    hi = [t[(t["item"] == n) & (t["direction"] == "up")]["cost_per_participant_gbp"].iloc[0] for n in names]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.7 * len(names) + 1.8))
    y = np.arange(len(names))
    if np.isfinite(base):
        ax.barh(y, np.array(lo) - base, left=base, color=BLUE, label=f"Item cost down {share:.0%}")
        ax.barh(y, np.array(hi) - base, left=base, color=ORANGE, hatch="//", label=f"Item cost up {share:.0%}")
        ax.axvline(base, color="0.2", lw=1)
        for edge in [e for _, e in RATING_BANDS[1:]] + [TOP_EDGE]:
            if np.nanmin(lo + [base]) * 0.9 <= edge <= np.nanmax(hi + [base]) * 1.1:
                ax.axvline(edge, color=VERMILION, ls="--", lw=1)
    else:
        ax.text(0.5, 0.5, "withheld", transform=ax.transAxes, ha="center", color="0.35")
    ax.set_yticks(y, [tick(n) for n in names])
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(f"Cost per participant reached, {price_label(price_year)}")
    if np.isfinite(base):
        ax.legend(loc="lower right", fontsize=12)
    if np.isfinite(base):
        parts = [f"{text(n)} £{num(a, 0)} to £{num(b, 0)}" for n, a, b in zip(names, lo, hi)]
        spans = [abs(b - a) if np.isfinite(a) and np.isfinite(b) else -1.0 for a, b in zip(lo, hi)]
        k = int(np.argmax(spans)) if spans else 0
        finding = (
            f"The unit cost, £{num(base, 0)}, moves most with {text(names[k]).lower()}: "
            f"£{num(lo[k], 0)} to £{num(hi[k], 0)} when that item's cost moves by {share:.0%} either way."
            if spans and spans[k] >= 0
            else f"The unit cost is £{num(base, 0)}."
        )
        alt = (
            f"{finding} Tornado chart of the unit cost when each of the {len(names)} largest cost items moves by "
            f"{share:.0%} either way, around £{num(base, 0)}: " + "; ".join(parts) + "."
        )
    else:  # no range around a withheld value: with the published total it would give the withheld count back
        alt = (
            "The unit cost is withheld, so the chart shows no values. "
            f"Tornado chart of the unit cost when each of the {len(names)} largest cost items moves by {share:.0%} "
            "either way. Items: " + "; ".join(text(n) for n in names) + "."
        )
    return finish(fig), alt
