"""Implementation and process figures, and the tables they are drawn from (see :mod:`isafe_helpers.publish.figures`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isafe_helpers.publish import disclosure, tables
from isafe_helpers.publish.figures import BLUE, OKABE_ITO, ORANGE, VERMILION, WIDTH, count, finish, num, text, tick
from isafe_helpers.results.labels import label
from isafe_helpers.results.table import Col, Table

LIKERT = ("1", "2", "3", "4", "5")
LIKERT_LABELS = {
    "1": "Very dissatisfied",
    "2": "Fairly dissatisfied",
    "3": "Neither",
    "4": "Fairly satisfied",
    "5": "Very satisfied",
}
#: Diverging colours from the Okabe-Ito palette: vermilion and orange, grey, sky blue and blue.
LIKERT_COLOURS = {"1": VERMILION, "2": ORANGE, "3": "#BBBBBB", "4": "#56B4E9", "5": BLUE}


def reach(views) -> tuple[plt.Figure, str]:
    """Reach of each component against the 100% line; per LA when the second view holds several LAs.

    Views: the scope's reach table, and (optionally) the same by LA. A
    withheld reach is labelled, not drawn; over 100% is drawn in orange.
    """
    scope = views[0]
    by_la = views[1] if len(views) > 1 else None
    las = [] if by_la is None else list(dict.fromkeys(by_la["la"]))
    comps = list(dict.fromkeys(scope["component"]))
    parts = []
    if len(las) > 1:
        frames = pd.concat([by_la, scope.assign(la="Pooled")], ignore_index=True)
        groups = [*las, "Pooled"]
        ncol = min(len(comps), 4)
        nrow = -(-len(comps) // ncol)
        fig, axes = plt.subplots(
            nrow, ncol, sharex=True, sharey=True, squeeze=False, figsize=(WIDTH, nrow * (0.3 * len(groups) + 1.0) + 0.6)
        )
        panels = list(zip(axes.flat, [[c] for c in comps]))
        for ax in axes.flat[len(comps) :]:
            ax.axis("off")
    else:
        frames, groups = scope.assign(la="scope"), ["scope"]
        fig, ax = plt.subplots(figsize=(WIDTH, 0.7 * len(comps) + 1.4))
        axes = np.array([[ax]])
        panels = [(ax, comps)]
    vals = frames["reach_pct"].to_numpy(float)
    shown: list[tuple[float, str]] = []
    top = max(110.0, float(np.nanmax(vals)) + 10 if np.isfinite(vals).any() else 110.0)
    for ax, cs in panels:
        keys = [(g, cs[0]) for g in groups] if len(groups) > 1 else [("scope", c) for c in cs]
        for i, (g, c) in enumerate(keys):
            r = frames[(frames["la"] == g) & (frames["component"] == c)]
            if r.empty:
                continue
            v = r["reach_pct"].iloc[0]
            if not np.isfinite(v):
                ax.text(2, i, "withheld", va="center", fontsize=12, color="0.35")
                if g in ("scope", "Pooled"):
                    parts.append(f"{c}: withheld")
                continue
            colour = ORANGE if v > 100 else ("0.35" if g == "Pooled" else BLUE)
            ax.barh(i, v, color=colour)
            if g in ("scope", "Pooled"):
                parts.append(f"{c}: {num(v, 1)}%")  # as the reach table prints it
                shown.append((float(v), str(c)))
        ax.axvline(100, color=VERMILION, ls="--", lw=1)
        ax.set_yticks(range(len(keys)), [text(g) for g, _ in keys] if len(groups) > 1 else [tick(c) for c in cs])
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.set_xlim(0, top)
        if len(groups) > 1:
            ax.set_title(text(cs[0]), fontsize=12)
    fig.supxlabel("Reach (% of the intended audience); dashed line: 100%", fontsize=12)
    # the components themselves, not the all-components rows (when there are components)
    shown = [x for x in shown if not x[1].startswith(label("all"))] or shown
    if shown:
        (lo, lo_c), (hi, hi_c) = min(shown), max(shown)
        full = sum(v >= 100 for v, _ in shown)
        finding = (
            f"Reach runs from {num(lo, 1)}% of the intended audience ({lo_c}) to {num(hi, 1)}% ({hi_c}); "
            f"{count(full)} of {count(len(shown))} components reached all of it."
        )
    else:
        finding = "Reach is withheld for every component."
    alt = f"{finding} Bar chart of reach as a share of each component's intended audience. " + "; ".join(parts) + "."
    return finish(fig), alt


#: The three bands a coarsened satisfaction table prints (:func:`distribution_table`), and the answers in each.
BANDS = {"12": ("1", "2"), "3": ("3",), "45": ("4", "5")}
BAND_LABELS = {"12": "Dissatisfied (1 or 2)", "3": "Neither (3)", "45": "Satisfied (4 or 5)"}
BAND_COLOURS = {"12": VERMILION, "3": "#BBBBBB", "45": BLUE}
#: A table coarsens when at least this share of its answer counts would be withheld (issue 22).
COARSEN_FROM = 0.5


def distribution_table(
    distribution: pd.DataFrame, keys_for=None, limit: int | None = None, coarsen: bool = True
) -> Table:
    """Satisfaction answers 1 to 5 per component (counts of people and shares), for the diverging bars.

    Coarsened to three bands (1 or 2, 3, 4 or 5) when at least half of the
    answer counts would be withheld (``[c]``) and the bands would print more
    counts than the answers: a wall of ``[c]`` says nothing, three bands say
    most of what five would (answers of 5, 6, 10, 6 and 7 are all withheld;
    bands of 11, 10 and 13 are not). Where the bands are small too (an LA of
    a few dozen respondents, or the bundled trial's smaller components), the
    five answers stay. The decision is the table's
    own (its counts against the threshold and the counts that would have to
    go with them, on their own), so it is the same on the page and in the
    book; the book's ledger may withhold more (``coarsen=False``: the five
    answers whatever). The five counts stay
    in the table unprinted (``Table.unpublished``), so the pooled page's five
    and an LA's three are held to the same people.
    """
    t = distribution.copy()
    t["component"] = [label(c) for c in t["component"]]
    n = t["respondents"].astype(float)

    def share(counts):
        return np.where(n > 0, 100 * counts.astype(float) / n.where(n > 0), np.nan)

    outcome = ["all" if c == "all_responses" else str(c) for c in distribution["component"]]
    fine = _distribution(t, LIKERT, LIKERT_LABELS, share, outcome, {k: k for k in LIKERT})
    limit = disclosure.threshold() if limit is None else limit

    def withheld(table: Table, cats) -> np.ndarray:  # which answer counts the table would withhold on its own
        return (tables.protected(table, limit=limit)[list(cats)] == tables.CONFIDENTIAL).to_numpy()

    if not coarsen or len(t) == 0 or (fine_withheld := withheld(fine, LIKERT)).mean() < COARSEN_FROM:
        return fine
    for band, parts in BANDS.items():
        if len(parts) > 1:
            t[band] = t[list(parts)].astype(float).sum(axis=1)
    coarse = _distribution(t, tuple(BANDS), BAND_LABELS, share, outcome, {"12": "1_2", "3": "3", "45": "4_5"})
    finer = [p for ps in BANDS.values() if len(ps) > 1 for p in ps]
    coarse.data = pd.concat([coarse.data, t[finer]], axis=1)
    coarse.unpublished = tuple(finer)
    coarse.sums = {**coarse.sums, **{b: ps for b, ps in BANDS.items() if len(ps) > 1}}
    if (~withheld(coarse, BANDS)).sum() <= (~fine_withheld).sum():  # the bands would print no more counts
        return fine
    coarse.notes = [
        "The five answers are grouped into three (1 or 2, 3, 4 or 5): with all five, at least half of this "
        f"table's counts would be withheld, as under {limit} or as giving one back."
    ]
    return coarse


def _distribution(t: pd.DataFrame, cats, labels, share, outcome, quantity) -> Table:
    """The distribution table over ``cats`` (answers, or bands of them), keyed to its estimates.csv rows."""
    for k in cats:
        t[f"share_{k}"] = share(t[k])
    cols = [Col("component", "Component", "text"), Col("respondents", "Respondents", "people")]
    cols += [Col(k, labels[k], "people") for k in cats]
    cols += [Col(f"share_{k}", f"{labels[k]} (%)", "pct", 0, base="respondents", reveals=k) for k in cats]
    # each cell's row of estimates.csv (process/satisfaction_distribution, written by the satisfaction analysis)
    shows = {"respondents": [("process", "satisfaction_distribution", o, "rating_1", "n") for o in outcome]}
    for k in cats:
        q = quantity[k]
        shows[k] = [("process", "satisfaction_distribution", o, f"rating_{q}", "estimate") for o in outcome]
        shows[f"share_{k}"] = [
            ("process", "satisfaction_distribution", o, f"rating_{q}_pct", "estimate") for o in outcome
        ]
    return Table(
        t[[c.key for c in cols]].copy(),
        cols,
        caption="Satisfaction answers by component",
        sums={"respondents": tuple(cats)},
        facts=shows,
    )


def satisfaction_diverging(views) -> tuple[plt.Figure, str]:
    """Diverging stacked bars of the satisfaction answers per component, centred on the neutral answer."""
    t = views[0]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.75 * len(t) + 2.2))
    parts = []
    satisfied: list[tuple[float, str]] = []
    # the five answers, or the three bands of a coarsened table (distribution_table)
    cats, labels, colours = (
        (BANDS, BAND_LABELS, BAND_COLOURS) if "share_12" in t else (LIKERT, LIKERT_LABELS, LIKERT_COLOURS)
    )
    against = [k for k in cats if set(k) <= set("12")]  # dissatisfied, drawn hatched to the left
    pleased = [k for k in cats if set(k) <= set("45")]
    for i, r in t.reset_index(drop=True).iterrows():
        share = {k: r[f"share_{k}"] for k in cats}
        if any(not np.isfinite(v) for v in share.values()):
            ax.text(0, i, "withheld", va="center", ha="center", fontsize=12, color="0.35")
            parts.append(f"{r['component']}: withheld")
            continue
        left = -(sum(share[k] for k in against) + share["3"] / 2)
        for k in cats:
            ax.barh(i, share[k], left=left, color=colours[k], edgecolor="white", hatch="//" if k in against else None)
            left += share[k]
        # at the satisfaction table's rounding (one decimal), so the alt text says what the table says
        happy = sum(share[k] for k in pleased)
        parts.append(f"{r['component']}: {num(happy, 1)}% fairly or very satisfied")
        satisfied.append((float(happy), str(r["component"])))
    ax.axvline(0, color="0.2", lw=0.8)
    ax.set_yticks(range(len(t)), [tick(c) for c in t["component"]])
    ax.set_ylim(len(t) - 0.5, -0.5)
    ax.set_xlim(-100, 100)
    ax.set_xlabel("% of respondents: dissatisfied (hatched) to the left, satisfied to the right")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k], hatch="//" if k in against else None) for k in cats]
    ax.legend(
        handles,
        [labels[k] for k in cats],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.22),
        ncol=3,
        frameon=False,
        fontsize=12,
    )
    satisfied = [x for x in satisfied if not x[1].startswith(label("all"))] or satisfied
    if satisfied:
        (lo, lo_c), (hi, hi_c) = min(satisfied), max(satisfied)
        finding = (
            f"The share of respondents fairly or very satisfied runs from {num(lo, 1)}% ({lo_c}) to {num(hi, 1)}% "
            f"({hi_c})."
            if len(satisfied) > 1
            else f"{num(hi, 1)}% of respondents were fairly or very satisfied with {hi_c}."
        )
    else:
        finding = "Satisfaction is withheld for every component."
    alt = f"{finding} Diverging bar chart of satisfaction answers by component. " + "; ".join(parts) + "."
    return finish(fig), alt


def fidelity_table(by_la: pd.DataFrame) -> Table:
    """Delivered share of planned elements by LA and component (sessions, not people)."""
    t = by_la.assign(component=[label(c) for c in by_la["component"]])
    return Table(
        t[["la", "component", "sessions", "delivered_pct"]],
        [
            Col("la", "LA", "text"),
            Col("component", "Component", "text"),
            Col("sessions", "Sessions logged", "units"),
            # at the fidelity table's rounding: one fact, one face
            Col("delivered_pct", "Delivered (% of planned elements)", "pct", 1),
        ],
        caption="Fidelity by LA and component",
        # each LA's own fidelity rows (its estimates.csv, strand process, analysis fidelity)
        facts={
            col: [
                (str(la), "process", "fidelity", str(c), col, "estimate")
                for la, c in zip(by_la["la"], by_la["component"])
            ]
            for col in ("sessions", "delivered_pct")
        },
    )


def fidelity_heatmap(views) -> tuple[plt.Figure, str]:
    """Delivered % of planned elements, LA by component, with the value printed in each cell."""
    t = views[0]
    cols = list(dict.fromkeys(t["component"]))
    m = t.pivot(index="la", columns="component", values="delivered_pct").reindex(columns=cols)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.5 * len(m) + 2.2))
    im = ax.imshow(m.to_numpy(dtype=float), cmap="viridis", vmin=50, vmax=100, aspect="auto")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m.iat[i, j]
            ax.text(
                j,
                i,
                "" if pd.isna(v) else num(v, 1),  # the book's rounding (half up), as the fidelity table
                ha="center",
                va="center",
                fontsize=12,
                color="black" if (not pd.isna(v) and v > 80) else "white",
            )
    ax.set_xticks(range(len(cols)), [text(c) for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(m)), [text(la) for la in m.index])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="Delivered (% of planned)")
    overall = t[t["component"] == label("all")]["delivered_pct"]
    # in words, no LA's share (the page prints the pooled share, not each LA's): the component delivered least
    means = m.drop(columns=[label("all")], errors="ignore").mean(axis=0, skipna=True).dropna()
    least = f"{text(means.idxmin())} had the lowest share delivered" if len(means) > 1 else ""
    if len(overall) == 1 and overall.notna().all():  # one LA: its overall share, as its fidelity table prints it
        finding = f"Overall {num(overall.iloc[0], 1)}% of planned session elements were delivered" + (
            f"; {least}." if least else "."
        )
    else:
        finding = (
            f"Of the components, {least}, averaged over the {count(len(m))} LAs."
            if least
            else "Delivery of the planned session elements is shown by LA and component."
        )
    alt = (
        f"{finding} Heat map of the share of planned session elements delivered, {len(m)} LA(s) by {len(cols)} "
        "components, each cell printed with its percentage."
    )
    return finish(fig), alt


def dose_outcome(views) -> tuple[plt.Figure, str]:
    """Mean change in each outcome by practice-pathway sessions attended (exploratory), with 95% bars (1.96 SE)."""
    t = views[0]
    outcomes = list(dict.fromkeys(t["outcome"]))
    doses = list(dict.fromkeys(t["dose"]))
    fig, ax = plt.subplots(figsize=(WIDTH, 0.8 * len(outcomes) + 2.0))
    markers = ["o", "s", "D"]
    parts = []
    for j, d in enumerate(doses):
        sub = t[t["dose"] == d].set_index("outcome").reindex(outcomes)
        y = np.arange(len(outcomes)) + (j - (len(doses) - 1) / 2) * 0.22
        ax.errorbar(
            sub["mean_change"],
            y,
            xerr=1.96 * sub["se"],
            fmt=markers[j % 3],
            color=OKABE_ITO[(j + 4) % 8],
            label=f"{text(d)} session(s)",
            capsize=2,
        )
        shown = sub["mean_change"].notna().sum()
        parts.append(f"{text(d)} sessions: {shown} of {len(outcomes)} outcomes shown")
    ax.axvline(0, color="0.4", ls="--", lw=1)
    ax.set_yticks(range(len(outcomes)), [tick(o) for o in outcomes])
    ax.set_ylim(len(outcomes) - 0.5, -0.5)
    ax.set_xlabel("Mean change, follow-up minus baseline (exploratory, not causal)")
    ax.legend(loc="lower right", fontsize=12)
    first = t[t["dose"] == doses[0]].set_index("outcome").reindex(outcomes)["mean_change"].astype(float)
    last = t[t["dose"] == doses[-1]].set_index("outcome").reindex(outcomes)["mean_change"].astype(float)
    both = first.notna() & last.notna()
    finding = (
        f"Among intervention-team staff, the mean change is larger with {text(doses[-1]).lower()} sessions attended "
        f"than with {text(doses[0]).lower()} for {count(int((last[both] > first[both]).sum()))} of {count(int(both.sum()))} outcomes "
        "(exploratory, not causal)."
        if len(doses) > 1 and both.any()
        else "Mean change by sessions attended is withheld or shown for one group only (exploratory)."
    )
    alt = (
        f"{finding} Dot plot of the mean change in each outcome by practice-pathway sessions attended, with 95% "
        "bars. " + "; ".join(parts) + "."
    )
    return finish(fig), alt


def reach_vs_impact(views) -> tuple[plt.Figure, str]:
    """Each LA's practice-pathway reach against its arm effect, one panel per outcome, shared axes."""
    t = views[0]
    outcomes = list(dict.fromkeys(t["outcome"]))
    ncol = min(len(outcomes), 3) or 1
    nrow = -(-max(len(outcomes), 1) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(WIDTH, 3.0 * nrow + 0.6), squeeze=False, sharex=True, sharey=True)
    for ax, o in zip(axes.flat, outcomes):
        sub = t[t["outcome"] == o]
        ax.errorbar(
            sub["reach_pct"],
            sub["treatment_effect"],
            yerr=[sub["treatment_effect"] - sub["ci_low"], sub["ci_high"] - sub["treatment_effect"]],
            fmt="o",
            color=BLUE,
            ecolor="0.7",
            capsize=2,
        )
        for r in sub.itertuples(index=False):
            if np.isfinite(r.reach_pct) and np.isfinite(r.treatment_effect):
                ax.annotate(
                    text(r.la),
                    (r.reach_pct, r.treatment_effect),
                    fontsize=12,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.axhline(0, color="0.4", ls="--", lw=1)
        ax.set_title(text(o), fontsize=12)
    for ax in axes.flat[len(outcomes) :]:
        ax.axis("off")
    fig.supylabel("Arm effect in the LA (95% CI)", fontsize=12)
    fig.supxlabel("Practice-pathway reach (%)", fontsize=12)
    rising, judged = 0, 0
    for o in outcomes:
        sub = t[t["outcome"] == o][["reach_pct", "treatment_effect"]].astype(float).dropna()
        if len(sub) > 2 and sub["reach_pct"].std() > 0 and sub["treatment_effect"].std() > 0:
            judged += 1
            rising += int(sub["reach_pct"].corr(sub["treatment_effect"]) > 0)
    finding = (
        f"LAs with higher practice-pathway reach have larger arm effects for {count(rising)} of {count(judged)} outcomes "
        "(exploratory and ecological: a pattern across a few LAs, not an effect of reach)."
        if judged
        else "No pattern between reach and the arm effect can be seen: too few LAs' effects are shown."
    )
    alt = (
        f"{finding} Scatter plots of each LA's practice-pathway reach against its arm effect for {len(outcomes)} "
        f"outcomes, {t['la'].nunique()} LAs."
    )
    return finish(fig), alt
