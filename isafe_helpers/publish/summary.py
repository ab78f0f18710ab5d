"""The executive summary: findings, glued numbers and the headline chart.

Everything here is read from the pooled trial's ``estimates.csv``, and only
from the rows every run writes (data contract, *Rows every run writes*), so
the summary never holds a typed number. :func:`pooled_summary` returns one
:class:`Summary` whose tidy frame is the single source of the findings
tables, the glued numbers in the summary's prose and the headline chart.

Disclosure control applies to glued numbers too: a statistic resting on
fewer people than the threshold is shown as ``c``. A number whose strand
failed, or whose row is missing, is shown as *not available* and the reason
is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from isafe_helpers.data.contract import COMPONENTS, SCALES, STRANDS
from isafe_helpers.publish import disclosure
from isafe_helpers.results.estimates import Lookup

matplotlib.use("Agg")


#: Reader-facing names of the outcomes, in report order.
OUTCOME_LABELS = {
    "confidence": "Confidence in engaging fathers",
    "competence": "Competence in engaging fathers",
    "org_practice": "Organisational practice on father engagement",
    "strategy_effectiveness": "Perceived effectiveness of father-engagement strategies",
    "strategy_frequency": "Frequency of use of father-engagement strategies",
    "father_contact_recorded": "Fathers' contact details recorded in case files",
}


NOT_AVAILABLE = "not available"


NOT_ESTIMABLE = "not estimable"


WITHHELD = disclosure.SUPPRESSED


@dataclass
class Summary:
    """The pooled findings.

    Attributes
    ----------
    table : DataFrame
        One row per headline quantity: ``key``, ``area`` (impact, delivery,
        cost), ``label``, ``measure``, ``estimate``, ``ci_low``, ``ci_high``,
        ``n``, ``status`` (``shown``, ``withheld`` or ``missing``) and
        ``display`` (the text the book shows).
    glue : dict of str
        The numbers glued into the summary's prose, by name.
    missing : list of str
        One sentence per strand whose pooled results are missing, and why.
    """

    table: pd.DataFrame
    glue: dict[str, str]
    missing: list[str] = field(default_factory=list)


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _fmt(x: float, digits: int, prefix: str = "", suffix: str = "") -> str:
    return f"{prefix}{x:,.{digits}f}{suffix}"


def _ci(lo: float, hi: float, digits: int, prefix: str = "", suffix: str = "") -> str:
    if math.isnan(lo) or math.isnan(hi):
        return ""
    return f" ({_fmt(lo, digits, prefix, suffix)} to {_fmt(hi, digits, prefix, suffix)})"


def _entry(key, area, label, measure, row, digits, limit, prefix="", suffix="", n=None, missing_why="", numerator=None):
    """One headline quantity from one estimates row, under disclosure control."""
    if row is None:
        return dict(
            key=key,
            area=area,
            label=label,
            measure=measure,
            estimate=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            n=math.nan,
            status="missing",
            display=NOT_AVAILABLE,
            why=missing_why,
        )
    est, lo, hi = _num(row["estimate"]), _num(row["ci_low"]), _num(row["ci_high"])
    n = _num(row["n"]) if n is None else n
    if math.isnan(est):
        note = str(row.get("note", "") or "")
        why = f"{label.lower()}: {note}" if note and note != "nan" else f"{label.lower()}: no estimate"
        return dict(
            key=key,
            area=area,
            label=label,
            measure=measure,
            estimate=est,
            ci_low=lo,
            ci_high=hi,
            n=n,
            status="missing",
            display=NOT_ESTIMABLE,
            why=why,
        )
    if disclosure.is_small(n, limit) or disclosure.is_small(numerator if numerator is not None else n, limit):
        status, display = "withheld", WITHHELD
    else:
        status, display = "shown", _fmt(est, digits, prefix, suffix) + _ci(lo, hi, digits, prefix, suffix)
    return dict(
        key=key,
        area=area,
        label=label,
        measure=measure,
        estimate=est,
        ci_low=lo,
        ci_high=hi,
        n=n,
        status=status,
        display=display,
        why=missing_why if status == "missing" else "",
    )


def _add_test(entry: dict, model_row) -> None:
    """Attach the primary model's own 95% interval and p-value to an impact entry.

    The finding is read from the model (the treatment effect's interval,
    Satterthwaite df; the odds ratio's robust interval), not from the
    interval of g: the methods.md g interval does not credit the baseline
    adjustment, so it is wider than the test the trial reports.
    """
    get = (lambda c: _num(model_row[c])) if model_row is not None else (lambda c: math.nan)
    entry.update(model_low=get("ci_low"), model_high=get("ci_high"), p_value=get("p_value"))


def _why(strand: str, failed: dict[str, str], scope: str) -> str:
    if strand in failed:
        return f"the {scope} {strand} notebook failed in this run ({failed[strand]})"
    return f"the {scope} {strand} results are missing (the notebook did not run or wrote no such row)"


def pooled_summary(
    est: pd.DataFrame, failed: dict[str, str] | None = None, limit: int | None = None, scope: str = "pooled"
) -> Summary:
    """The executive summary's numbers, from the pooled contract rows.

    Parameters
    ----------
    est : DataFrame
        The pooled trial's ``estimates.csv`` (:func:`read_pooled`).
    failed : mapping of strand to the error message, for notebooks that
        failed in the run; their rows (perhaps left from an earlier run) are
        not used.
    limit : disclosure threshold; default :func:`isafe_helpers.publish.disclosure.threshold`.
    scope : how the messages name the scope (``pooled``, or an LA code).

    Notes
    -----
    - Effect sizes are ``hedges_g_total`` (total variance of the unconditional
      model; methods page), one per scale; the case-file outcome is its odds ratio.
    - Reach is summed over the five components (ratio of sums: attendees over
      intended audience), as the contract pools every other ratio.
    - Satisfaction is the ``all`` row; cost is the ``total`` unit cost, its
      Foundations rating and its price year.
    """
    limit = disclosure.threshold() if limit is None else limit
    failed = dict(failed or {})
    # rows of a strand whose notebook failed may be left from an earlier run: never show them
    est = est[~est["strand"].isin(list(failed))]
    look = Lookup(est)

    def _row(strand, analysis, outcome, quantity):
        return look.get(strand, analysis, outcome, quantity)

    entries = []
    for scale in SCALES:
        entries.append(
            _entry(
                scale,
                "impact",
                OUTCOME_LABELS.get(scale, scale),
                "Hedges' g (95% CI)",
                _row("impact", "primary", scale, "hedges_g_total"),
                2,
                limit,
                missing_why=_why("impact", failed, scope),
            )
        )
        _add_test(entries[-1], _row("impact", "primary", scale, "treatment_effect"))
    odds = _row("impact", "primary", "father_contact_recorded", "odds_ratio")
    entries.append(
        _entry(
            "father_contact_recorded",
            "impact",
            OUTCOME_LABELS["father_contact_recorded"],
            "odds ratio (95% CI)",
            odds,
            2,
            limit,
            missing_why=_why("impact", failed, scope),
        )
    )
    _add_test(entries[-1], odds)
    # reach over all components: a ratio of sums of the contract's rows
    att = [_row("process", "reach", c, "attendees") for c in COMPONENTS]
    tgt = [_row("process", "reach", c, "intended_n") for c in COMPONENTS]
    reach_row, k = None, math.nan
    if all(r is not None for r in att + tgt):
        k, n = sum(_num(r["estimate"]) for r in att), sum(_num(r["estimate"]) for r in tgt)
        reach_row = pd.Series(
            {"estimate": 100 * k / n if n else math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": n}
        )
    # a rate is withheld when its numerator is a small count too: rate x base would give it back
    entries.append(
        _entry(
            "reach",
            "delivery",
            "Reach",
            "% of the intended audience, all components",
            reach_row,
            0,
            limit,
            suffix="%",
            missing_why=_why("process", failed, scope),
            numerator=k,
        )
    )
    sat = _row("process", "satisfaction", "all", "satisfied_pct")
    satisfied = _num(sat["estimate"]) * _num(sat["n"]) / 100 if sat is not None else math.nan
    entries.append(
        _entry(
            "satisfaction",
            "delivery",
            "Satisfaction",
            "% of respondents fairly or very satisfied (95% CI)",
            sat,
            0,
            limit,
            suffix="%",
            missing_why=_why("process", failed, scope),
            numerator=round(satisfied, 6),
        )
    )
    unit = _row("cost", "unit_cost", "total", "cost_per_participant_gbp")
    entries.append(
        _entry(
            "cost_per_participant",
            "cost",
            "Cost per participant",
            "set-up and delivery, £",
            unit,
            0,
            limit,
            prefix="£",
            missing_why=_why("cost", failed, scope),
        )
    )
    rating = _row("cost", "unit_cost", "total", "cost_rating")
    entries.append(
        _entry(
            "cost_rating",
            "cost",
            "Foundations cost rating",
            "1 (lowest) to 5",
            rating,
            0,
            limit,
            n=_num(unit["n"]) if unit is not None else math.nan,
            missing_why=_why("cost", failed, scope),
        )
    )
    table = pd.DataFrame(entries)

    py = look.value("cost", "unit_cost", "total", "price_year")
    year = "" if math.isnan(py) else f"{py:.0f}"
    glue = {f"s_{r.key}": r.display for r in table.itertuples()}
    glue["s_price_year"] = year or NOT_AVAILABLE
    glue["s_threshold"] = str(limit)
    glue["s_impact_sentence"] = _impact_sentence(table)
    e = {r.key: r for r in table.itertuples()}
    glue["s_reach_sentence"] = _sentence(
        e["reach"],
        "reach",
        limit,
        f"The training reached {e['reach'].display} of its intended audience (attendees over intended "
        "audience, all five components).",
    )
    glue["s_satisfaction_sentence"] = _sentence(
        e["satisfaction"],
        "satisfaction figure",
        limit,
        f"{e['satisfaction'].display} of respondents were fairly or very satisfied with the training.",
    )
    glue["s_cost_sentence"] = _sentence(
        e["cost_per_participant"],
        "cost per participant",
        limit,
        f"Set-up and delivery cost {e['cost_per_participant'].display} per participant reached "
        f"(prices of {year or 'an unstated year'}): Foundations cost rating {e['cost_rating'].display} on its "
        "scale of 1 (lowest) to 5.",
    )
    missing = sorted({r.why for r in table.itertuples() if r.status == "missing" and r.why})
    return Summary(table=table, glue=glue, missing=[m[0].upper() + m[1:] + "." for m in missing])


def _sentence(entry, what: str, limit: int, shown: str) -> str:
    """A headline sentence, or why its number is not shown."""
    if entry.status == "shown":
        return shown
    if entry.status == "withheld":
        return f"The {what} is withheld: it rests on fewer than {limit} people."
    why = entry.why or "no result"
    return f"The {what} is {entry.display}: {why}."


def _impact_sentence(table: pd.DataFrame) -> str:
    """What the primary models show, in words, derived from their intervals."""
    imp = table[(table["area"] == "impact") & (table["key"] != "father_contact_recorded")]
    shown = imp[(imp["status"] == "shown") & imp["model_low"].notna() & imp["model_high"].notna()]
    if shown.empty:
        return "The pooled impact estimates are not available in this build."
    up = [r.label.lower() for r in shown.itertuples() if r.model_low > 0]
    down = [r.label.lower() for r in shown.itertuples() if r.model_high < 0]
    flat = [r.label.lower() for r in shown.itertuples() if r.model_low <= 0 <= r.model_high]
    parts = []
    if up:
        parts.append("lies above zero (favouring ISAFE) for " + _and(up))
    if down:
        parts.append("lies below zero for " + _and(down))
    if flat:
        parts.append("includes zero (no clear difference between the arms) for " + _and(flat))
    return "The 95% interval of the primary model's treatment effect " + "; it ".join(parts) + "."


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def finding(row) -> str:
    """A Foundations-style reading of one impact row: the primary model's interval and p."""
    if row.status != "shown":
        return "withheld (too few people)" if row.status == "withheld" else row.display
    null = 1.0 if row.key == "father_contact_recorded" else 0.0
    lo, hi = getattr(row, "model_low", math.nan), getattr(row, "model_high", math.nan)
    if math.isnan(lo) or math.isnan(hi):
        return "no interval"
    p = getattr(row, "p_value", math.nan)
    p_text = "" if math.isnan(p) else (" (p < 0.001)" if p < 0.001 else f" (p = {p:.3f})")
    if lo > null:
        return "improved" + p_text
    if hi < null:
        return "worsened" + p_text
    return "no clear difference" + p_text


def findings_markdown(summary: Summary) -> str:
    """The two short findings tables of the summary, as MyST Markdown."""
    imp = summary.table[summary.table["area"] == "impact"]
    out = ["| Outcome | Measure | Estimate | Finding |", "|---|---|---|---|"]
    for r in imp.itertuples():
        out.append(f"| {r.label} | {r.measure} | {r.display} | {finding(r)} |")
    out += ["", "| Delivery and cost | Measure | Estimate |", "|---|---|---|"]
    for r in summary.table[summary.table["area"] != "impact"].itertuples():
        out.append(f"| {r.label} | {r.measure} | {r.display} |")
    if summary.missing:
        out += ["", "```{warning}", *summary.missing, "```"]
    return "\n".join(out) + "\n"


def headline_figure(summary: Summary) -> plt.Figure:
    """Forest plot of the pooled effect sizes (Hedges' g, 95% CI); withheld
    or missing outcomes are named with the reason instead of a point."""
    imp = summary.table[(summary.table["area"] == "impact") & (summary.table["key"] != "father_contact_recorded")]
    fig, ax = plt.subplots(figsize=(9, 0.55 * max(len(imp), 1) + 1.6))
    labels = []
    for i, r in enumerate(imp.itertuples()):
        if r.status == "shown":
            ax.plot([r.ci_low, r.ci_high], [i, i], color="0.3", lw=2)
            ax.plot(r.estimate, i, "o", color="C0", ms=8)
            labels.append(r.label)
        else:
            labels.append(f"{r.label} ({'withheld' if r.status == 'withheld' else NOT_AVAILABLE})")
    ax.axvline(0, color="0.5", ls="--", lw=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("Hedges' g (total variance) with 95% CI; above 0 favours ISAFE")
    ax.set_title("Pooled trial: effect of ISAFE on the survey outcomes", loc="left")
    fig.tight_layout()
    plt.close(fig)
    return fig


def failed_strands(run: dict) -> dict[str, str]:
    """Pooled strands whose notebook failed in the run, with the error message."""
    return {
        t["strand"]: t.get("message", "")
        for t in run.get("tasks", [])
        if t.get("scope") == "trial" and t.get("status") == "failed" and t.get("strand") in STRANDS
    }
