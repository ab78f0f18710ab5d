"""The executive summary and each LA's index page: the headline tables and the sentences built on them.

Everything here is read from a scope's ``estimates.csv`` (through
:class:`~isafe_helpers.results.estimates.Lookup`), so the summary never holds
a typed number. The tables are registered in the book's disclosure ledger
like every other table (:class:`~isafe_helpers.publish.assemble.BookDisclosure`)
and every sentence is written from their published views, so the summary
never states a number a table withholds.

- :func:`headline_table`: per outcome, primary or secondary, staff analysed
  per arm and teams, the effect size with its 95% CI, p (and Holm-adjusted p
  for secondary outcomes) and, on the pooled summary only, the finding read
  from the same model (LA pages describe: no verdicts).
- :func:`cost_table`: the rated unit cost and the Foundations cost rating.
- :func:`security_table`: the criteria a commissioner checks for the
  security of the finding (design, MDES achieved and planned, attrition,
  baseline balance, robustness, threats). The book shows the criteria; it
  does not award an evidence rating.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import CASEFILE_OUTCOME, SCALES, TRIAL_SCOPE
from isafe_helpers.data.protocol import NO_PRIMARY
from isafe_helpers.publish.escape import md
from isafe_helpers.publish.tables import NOT_AVAILABLE as X
from isafe_helpers.publish.tables import number
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import Lookup
from isafe_helpers.results.labels import label
from isafe_helpers.results.table import Col, Table

NOT_AVAILABLE = "not available"
#: The GSS symbol of a value that is not available.
NOT_AVAILABLE_SYMBOL = "[x]"
ARMS = ("treatment", "control")
#: Foundations' words for its cost ratings.
RATING_LABELS = {1: "low cost", 2: "medium-low cost", 3: "medium cost", 4: "medium-high cost", 5: "high cost"}
THREATS = (
    "Outcomes are self-reported by staff who knew their arm (the trial was not blinded); the case-file outcome "
    "is the one measure not reported by staff; follow-up after about two months only."
)


def outcomes(look: Lookup) -> list[str]:
    """The outcomes of the scope's primary rows, in report order (scales, then the case-file outcome)."""
    est = look.est
    found = list(dict.fromkeys(est.loc[(est["analysis"] == "primary"), "outcome"]))
    scales = [o for o in found if o != CASEFILE_OUTCOME] or list(SCALES)
    return [*scales, CASEFILE_OUTCOME]


def primary_outcome(look: Lookup) -> str | None:
    """The primary outcome the protocol names (its ``protocol`` row), or None when it names none.

    No row at all (an old run) is read as no primary outcome: nothing is
    called primary unless the protocol named it (methods.md).
    """
    est = look.est
    hit = est[(est["analysis"] == "protocol") & (est["quantity"] == "primary_outcome")]
    if hit.empty:
        return None
    o = str(hit["outcome"].iloc[0])
    return None if o in (NO_PRIMARY, "", "nan") else o


def reference_outcome(look: Lookup) -> str:
    """The outcome whose sample the single figures (attrition, MDES) describe: the primary, else the first."""
    return primary_outcome(look) or outcomes(look)[0]


def outcomes_sentence(look: Lookup) -> str:
    """One sentence: which outcome is primary and how p-values are adjusted, or that no primary was pre-specified."""
    primary = primary_outcome(look)
    if primary is None:
        return (
            "No primary outcome was pre-specified, so none is called primary: every outcome (the survey scales and "
            "the case-file outcome) is one family, its p-value adjusted for testing several (Holm), and each finding "
            "reads the adjusted p-value."
        )
    return (
        f"The primary outcome, named by the protocol, is {label(primary).lower()}; the other outcomes are secondary, "
        "with p-values adjusted for testing several (Holm)."
    )


def finding(lo: float, hi: float, p: float, holm: float | None, null: float, primary: bool) -> str:
    """A Foundations-style reading of one outcome from its model's interval (primary) or Holm p (secondary)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "not available"
    if primary or holm is None or not math.isfinite(holm):
        if lo > null:
            return "improved"
        if hi < null:
            return "worsened"
        return "no clear difference"
    if holm < 0.05:
        return "improved" if lo > null else "worsened"
    if math.isfinite(p) and p < 0.05:  # only then did the adjustment change the reading
        return "no clear difference after adjustment for several outcomes"
    return "no clear difference"


#: Notes that say a row's numbers are not to be shown (not estimable, or kept in the rows but withheld).
UNAVAILABLE = ("not estimable", "did not converge", "not available")


def unavailable(row: pd.Series | None) -> str:
    """Why a model row's numbers are not shown, in its note's words (``""`` when they are).

    A missing row (the notebook failed or wrote none), a note saying the
    model was not estimable or did not converge (a fit that did not converge
    keeps its numbers in the rows; the pages never show them, nor does the
    summary), or a missing estimate.
    """
    if row is None:
        return "not available: no estimate in this build"
    note = str(row.get("note", "") or "")
    if note.startswith(UNAVAILABLE):
        return note.split("; ")[0]
    try:
        ok = math.isfinite(float(row["estimate"]))
    except (TypeError, ValueError):
        ok = False
    return "" if ok else (note.split("; ")[0] if note else "not available: no estimate")


#: The headline's effect size of each kind of outcome: the quantity a results table shows it as, and its name.
EFFECT = {"scale": ("hedges_g_total", "g"), "casefile": ("odds_ratio", "odds ratio")}
#: The quantity whose test (p) and interval (the finding) the primary model gives.
MODEL = {"scale": "treatment_effect", "casefile": "odds_ratio"}
#: Shown, in the Finding column, for an outcome whose model estimate the book does not publish.
NO_VERDICT = {"[c]": "no verdict: the estimate is withheld", "[x]": "no verdict: not available"}


def _facts_of(facts: dict | None, scope: str, o: str):
    """The published facts of one outcome's headline row: effect (and its interval's ends), model interval, p, Holm p."""
    kind = "casefile" if o == CASEFILE_OUTCOME else "scale"
    effect, model = EFFECT[kind][0], MODEL[kind]

    def get(analysis: str, quantity: str, fld: str):
        return None if facts is None else facts.get((scope, "impact", analysis, o, quantity, fld))

    return {
        "effect": get("primary", effect, "estimate"),
        "effect_lo": get("primary", effect, "ci_low"),
        "effect_hi": get("primary", effect, "ci_high"),
        "lo": get("primary", model, "ci_low"),
        "hi": get("primary", model, "ci_high"),
        "p": get("primary", model, "p_value"),
        "p_holm": get("secondary", "p_holm", "estimate"),
        "teams": get("primary", model, "n_clusters"),
    }


def _text(f) -> str:
    """A fact's text as its page prints it; ``[x]`` when no page publishes it."""
    return NOT_AVAILABLE_SYMBOL if f is None else f.text


def _effect_cell(f: dict) -> str:
    """The effect with its interval, as the page prints it (one ``ci`` cell, or three cells joined)."""
    e = f["effect"]
    if e is None or not e.published:
        return _text(e)
    if e.cell != e.text:  # the page prints the estimate and its interval in one cell
        return e.cell
    lo, hi = f["effect_lo"], f["effect_hi"]
    if lo is None or hi is None or not (lo.published and hi.published):
        return e.text
    return f"{e.text} ({lo.text} to {hi.text})"


def _verdict(f: dict, null: float, primary: bool) -> str:
    """The finding from the published facts: none when the model's interval (or Holm p) is not published."""
    needed = [f["effect"], f["lo"], f["hi"]] + ([] if primary else [f["p_holm"]])
    for x in needed:
        if x is None or not x.published:
            return NO_VERDICT[_text(x)]
    holm = None if primary else f["p_holm"].raw
    return finding(f["lo"].raw, f["hi"].raw, f["p"].raw if f["p"] is not None else np.nan, holm, null, primary)


def caution(look: Lookup, outcome: str) -> str:
    """What a reader must know beside an outcome's result: baseline equivalence not satisfied, high attrition.

    Read from the impact strand's own judgements (their rows' notes): the
    WWC baseline-equivalence verdict of the outcome's baseline measure and
    the WWC cautious attrition boundary of its analysed staff or teams.
    Words only, never a number (nothing here can disclose a count).
    """
    est = look.est
    if "note" not in est.columns:
        return ""
    mine = est[(est["strand"] == "impact") & est["outcome"].astype(str).str.startswith(f"{outcome}:")]
    notes = mine["note"].fillna("").astype(str)
    out = []
    equivalence = mine["analysis"] == "baseline_equivalence"
    if (equivalence & notes.str.startswith("not satisfied")).any():
        out.append("baseline equivalence not satisfied")
    attrition = (mine["analysis"] == "attrition") & (mine["quantity"] == "wwc_cautious_boundary_pct")
    if (attrition & notes.str.contains("high attrition")).any():
        out.append("high attrition")
    text = "; ".join(out)
    return text[:1].upper() + text[1:]


def headline_table(
    look: Lookup,
    las: list[str],
    pooled: bool,
    facts: dict | None = None,
    scope: str = TRIAL_SCOPE,
    href=None,
) -> Table:
    """The headline table of a scope (module docstring): a view of the results pages' facts.

    The counts of staff analysed per arm are the table's own (registered in
    the book's ledger). Every other number is a ``view``: the cell of the
    results page's table that publishes the fact (``facts``, from
    :func:`isafe_helpers.publish.facts.collect`), as printed there, with a
    link to it (``href(fact)``, the table's address). Without ``facts`` (the
    ledger not yet solved) the views are empty; the finding is read from
    the published facts only: withheld or not available gives no verdict.
    """
    primary = primary_outcome(look)
    recs, links, shown = [], [], []
    for o in outcomes(look):
        case = o == CASEFILE_OUTCOME
        f = _facts_of(facts, scope, o)
        view = facts is not None
        rec: dict[str, Any] = {
            "outcome": label(o) + (PRIMARY_MARK if o == primary else ""),
            "role": "Primary" if o == primary else "Secondary" if primary is not None else "One family (no primary)",
            "n_treatment": look.value("impact", "primary", o, "analysed_treatment"),
            "n_control": look.value("impact", "primary", o, "analysed_control"),
            "teams": f["teams"].value if f["teams"] is not None else np.nan,
            "measure": EFFECT["casefile" if case else "scale"][1],
            "effect": _effect_cell(f) if view else "",
            "effect_lo": _text(f["effect_lo"]) if view else "",
            "effect_hi": _text(f["effect_hi"]) if view else "",
            "p": _text(f["p"]) if view else "",
            # the primary outcome's p is not adjusted: [x] as in the primary analysis table
            "p_holm": (_text(f["p_holm"]) if o != primary else NOT_AVAILABLE_SYMBOL) if view else "",
        }
        if pooled:
            rec["finding"] = _verdict(f, 1.0 if case else 0.0, o == primary) if view else ""
        # why an estimate is not available: the reason its model's row gives (text, never a number of ours)
        rec["reason"] = _why(look, o, symbol=False) if view and rec["effect"] == NOT_AVAILABLE_SYMBOL else ""
        rec["caution"] = caution(look, o)
        recs.append(rec)
        links.append({k: (href(f[k]) if href and f[k] is not None else None) for k in ("effect", "p", "p_holm")})
        shown.append(
            {k: (f[k].key[1:] if f[k] is not None else None) for k in ("effect", "effect_lo", "effect_hi", "p")}
        )
        shown[-1]["p_holm"] = f["p_holm"].key[1:] if f["p_holm"] is not None and o != primary else None
        for a in ARMS:  # the case-file result writes no per-arm counts: those cells show no row ([x])
            has = look.get("impact", "primary", o, f"analysed_{a}") is not None
            shown[-1][f"n_{a}"] = ("impact", "primary", o, f"analysed_{a}", "estimate") if has else None
    t = pd.DataFrame(recs)
    cols = [
        Col("outcome", "Outcome", "text"),
        Col("n_treatment", "Staff analysed: intervention", "people"),
        Col("n_control", "Staff analysed: control", "people"),
        Col("measure", "Effect size", "text"),
        Col("effect", "Estimate (95% CI)", "view", parts=("effect_lo", "effect_hi")),
        Col("p", "p", "view"),
        Col("p_holm", "Holm p", "view"),
    ]
    teams = sorted({f"{v:,.0f}" for v in t["teams"] if math.isfinite(v)}) if len(t) else []
    if pooled:
        # the finding reads published facts only (_verdict): a withheld or missing one gives no verdict
        cols.append(Col("finding", "Finding", "text"))
    cautious = bool(t["caution"].astype(bool).any())
    if cautious:  # in the result's own row: baseline not equivalent, high attrition
        cols.append(Col("caution", "Caution", "text"))
    notes = [
        "Effect sizes: g is Hedges' g (the adjusted difference over the outcome's total SD; above 0 favours ISAFE); "
        "for case files, the odds ratio (above 1 favours ISAFE); each with the primary model's own 95% CI.",
        "Holm p: a secondary outcome's p-value adjusted for testing several secondary outcomes (Holm)."
        if primary is not None
        else "No primary outcome was pre-specified: every outcome is one family, and Holm p is its p-value adjusted "
        "for testing all of them (Holm).",
        "Each estimate, p and Holm p is the cell of the results table it links to, as printed there (with its "
        "rounding and symbol).",
        *(
            [
                f"Teams analysed: {' or '.join(teams)} ("
                + "; ".join(f"{o}: {v:,.0f}" for o, v in zip(t["outcome"], t["teams"]) if math.isfinite(v))
                + ")."
                if len(teams) > 1
                else f"Teams analysed: {teams[0]} for every outcome."
            ]
            if teams
            else []
        ),
        *(
            [
                "Staff analysed per arm: the case-file analysis counts the staff whose files were analysed, not per "
                "arm ([x]); the case-file table gives their number."
            ]
            if any(not math.isfinite(v) for v in t["n_treatment"])
            else []
        ),
        *(
            f"{o}: {r}." if r.startswith("not available") else f"{o}: not available: {r}."
            for o, r in zip(t["outcome"], t["reason"])
            if r
        ),
        (
            "The finding of the primary outcome reads its model's 95% interval; a secondary outcome's reads its "
            "Holm-adjusted p-value across the secondary outcomes. An outcome whose estimate is withheld or not "
            "available has no verdict."
            if primary is not None
            else "Each finding reads the outcome's Holm-adjusted p-value across all outcomes (no primary outcome "
            "was pre-specified). An outcome whose estimate is withheld or not available has no verdict."
        )
        if pooled
        else "An LA's estimates describe that LA: they rest on few teams and carry no verdict.",
        *(
            [
                "Caution: baseline equivalence not satisfied means the arms' baseline scores differed by more than "
                "0.25 SD (WWC); high attrition means the staff lost from the analysis, overall and between the "
                "arms, exceed the WWC cautious boundary, so the analysed staff may not be like those randomised. "
                "Read such a result with care; the impact page's security table gives the numbers."
            ]
            if cautious
            else []
        ),
    ]
    keys = {f"n_{a}": [K.analysed(las, o, a) for o in outcomes(look)] for a in ARMS}
    return Table(
        t,
        cols,
        caption="Headline results: effect of ISAFE on each outcome",
        notes=notes,
        keys=keys,
        links={k: [r[k] for r in links] for k in ("effect", "p", "p_holm")},
        facts={k: [r[k] for r in shown] for k in shown[0]} if shown and facts is not None else {},
    )


def cost_table(look: Lookup, las: list[str]) -> Table:
    """The rated unit cost and the Foundations cost rating of a scope."""
    unit = look.get("cost", "unit_cost", "total", "cost_per_participant_gbp")
    year = look.value("cost", "unit_cost", "total", "price_year")
    t = pd.DataFrame(
        [
            {
                "measure": "Cost per participant reached" + (f" ({year:.0f} prices)" if math.isfinite(year) else ""),
                "reached": look.value("cost", "unit_cost", "total", "participants_reached"),
                "cost": np.nan if unit is None else float(unit["estimate"]),
                "rating": look.value("cost", "unit_cost", "total", "cost_rating"),
            }
        ]
    )
    return Table(
        t,
        [
            Col("measure", "Measure", "text"),
            Col("reached", "Participants reached", "people"),
            Col(
                "cost", "Set-up and delivery cost per participant reached", "gbp", 0, base="reached", reveals="reached"
            ),
            Col("rating", "Foundations cost rating (1 to 5)", "int", base="reached", reveals="reached"),
        ],
        caption="Cost and the Foundations cost rating",
        keys={"reached": [K.reached(las)]},
        facts={
            col: [("cost", "unit_cost", "total", q, "estimate")]
            for col, q in (
                ("reached", "participants_reached"),
                ("cost", "cost_per_participant_gbp"),
                ("rating", "cost_rating"),
            )
        },
        notes=[
            "Foundations cost ratings: 1 low cost (under £100), 2 medium-low (£100 to £499), 3 medium (£500 to "
            "£999), 4 medium-high (£1,000 to £2,000), 5 high (over £2,000)."
        ],
    )


def security_table(look: Lookup, run: dict) -> Table:
    """The criteria of the security of the finding, each read from the pooled rows (text only)."""
    named = primary_outcome(look)
    primary = reference_outcome(look)
    est = look.est
    teams = look.value("impact", "protocol", "design", "planned_teams")
    planned_las = look.value("impact", "protocol", "design", "planned_las")
    ran_teams = look.value("impact", "attrition", f"{primary}:teams", "overall_attrition_pct", "n")
    mdes = look.value("impact", "power", primary, "mdes_analysis")
    plan = look.value("impact", "power", primary, "mdes_protocol")
    if not math.isfinite(plan):
        plan = look.value("impact", "protocol", "design", "planned_mdes")
    rows = [
        (
            "Design",
            f"Cluster randomised trial: teams randomised within {len(run.get('las', []))} local authorities"
            + (
                f" ({ran_teams:.0f} teams; the protocol planned {teams:.0f} in {planned_las:.0f})"
                if math.isfinite(ran_teams) and math.isfinite(teams)
                else ""
            ),
        ),
        (
            "Primary outcome",
            label(named) + " (named by the protocol)"
            if named is not None
            else "None pre-specified: every outcome is one Holm family; the figures below are for "
            + label(primary).lower(),
        ),
        (
            "Minimum detectable effect size",
            (f"{number(mdes, 'number', 2)} SD achieved" if math.isfinite(mdes) else "not available")
            + (f"; {number(plan, 'number', 2)} SD in the protocol's plan" if math.isfinite(plan) else ""),
        ),
    ]
    for unit, name in (("teams", "Attrition, teams"), ("participants", "Attrition, staff")):
        o = look.value("impact", "attrition", f"{primary}:{unit}", "overall_attrition_pct")
        d = look.value("impact", "attrition", f"{primary}:{unit}", "differential_attrition_pct")
        hit = est[
            (est["analysis"] == "attrition")
            & (est["outcome"] == f"{primary}:{unit}")
            & (est["quantity"].str.startswith("wwc_cautious"))
        ]
        verdict = str(hit["note"].iloc[0]).split(";")[0] if len(hit) else ""
        rows.append(
            (
                name,
                f"{number(o, 'pct', 0)}% overall, {number(d, 'number', 1)} percentage points "
                f"differential" + (f"; {verdict}" if verdict else "")
                if math.isfinite(o)
                else "not available",
            )
        )
    b = est[(est["analysis"] == "baseline_equivalence") & (est["outcome"].str.endswith(f"{primary}_baseline"))]
    if len(b):
        r = b.iloc[0]
        rows.append(
            (
                "Baseline balance",
                f"standardised difference {number(r['estimate'], 'number', 2)} on the baseline score: {r['note']}",
            )
        )
    checks = []
    for analysis, what in (
        ("sensitivity_mi", "multiple imputation"),
        ("sensitivity_ri", "randomisation inference"),
        ("sensitivity_cr2", "cluster-robust regression"),
    ):
        r = look.get("impact", analysis, primary, "treatment_effect")
        if r is not None and not unavailable(r) and math.isfinite(float(r["ci_low"])):
            checks.append(f"{what} {'excludes' if r['ci_low'] > 0 or r['ci_high'] < 0 else 'includes'} zero")
    rows.append(("Robustness of the primary effect", "; ".join(checks) or "not available"))
    rows.append(("Threats to validity", THREATS))
    t = pd.DataFrame(rows, columns=["criterion", "evidence"])
    return Table(
        t,
        [Col("criterion", "Criterion", "text"), Col("evidence", "What the trial shows", "text")],
        caption="Security of the finding: the criteria a commissioner checks",
        notes=["The handbook lays out the criteria; it does not award an evidence rating."],
    )


def delivery_table(look: Lookup, las: list[str]) -> Table:
    """Reach (per person and places filled) and satisfaction (per person) of a scope."""
    one = look.get("process", "reach", "practice_pathway_one", "reach_pct")
    sat = look.get("process", "satisfaction", "all", "satisfied_people_pct")
    rows = [
        dict(
            measure="Reach: intervention-team staff attending at least one practice-pathway session",
            k=look.value("process", "reach", "practice_pathway_one", "attendees"),
            n=look.value("process", "reach", "practice_pathway_one", "treatment_participants"),
            pct=np.nan if one is None else float(one["estimate"]),
            lo=np.nan if one is None else float(one["ci_low"]),
            hi=np.nan if one is None else float(one["ci_high"]),
        ),
        dict(
            measure="Satisfaction: people whose every rating was fairly or very satisfied",
            k=look.value("process", "satisfaction", "all", "satisfied_people"),
            n=look.value("process", "satisfaction", "all", "respondents"),
            pct=np.nan if sat is None else float(sat["estimate"]),
            lo=np.nan if sat is None else float(sat["ci_low"]),
            hi=np.nan if sat is None else float(sat["ci_high"]),
        ),
    ]
    t = pd.DataFrame(rows)
    keys: dict[str, list[str | None]] = {
        "k": [K.reached(las), K.respondents(las, "all", answer="every rating 4 or 5")],
        "n": [K.staff(las, "treatment"), K.respondents(las, "all", answer="any")],
    }
    return Table(
        t,
        [
            Col("measure", "Measure", "text"),
            Col("k", "People (or places) counted", "people"),
            Col("n", "Out of (people)", "people"),
            Col("pct", "Share (%) (95% CI)", "ci", 1, base="n", reveals="k", parts=("lo", "hi")),
        ],
        caption="Delivery: reach and satisfaction",
        keys=keys,
        facts={
            "k": [
                ("process", "reach", "practice_pathway_one", "attendees", "estimate"),
                ("process", "satisfaction", "all", "satisfied_people", "estimate"),
            ],
            "n": [
                ("process", "reach", "practice_pathway_one", "treatment_participants", "estimate"),
                ("process", "satisfaction", "all", "respondents", "estimate"),
            ],
            **{
                col: [
                    ("process", "reach", "practice_pathway_one", "reach_pct", fld),
                    ("process", "satisfaction", "all", "satisfied_people_pct", fld),
                ]
                for col, fld in (("pct", "estimate"), ("lo", "ci_low"), ("hi", "ci_high"))
            },
        },
    )


# ---------------------------------------------------------------------------
# sentences, from the published views
# ---------------------------------------------------------------------------
#: Marks the primary outcome's row of the headline table (its own column would not fit the page).
PRIMARY_MARK = " (primary)"


def primary_rows(view: pd.DataFrame) -> pd.DataFrame:
    """The primary outcome's row of a headline table's view."""
    return view[view["outcome"].astype(str).str.endswith(PRIMARY_MARK)]


def effect_phrase(r) -> str:
    """``g 0.17 (95% CI 0.04 to 0.31)`` from a headline row as printed; ``not published`` for a symbol."""
    text = str(r["effect"])
    if text in ("[x]", "[c]", ""):
        return "not published"
    a, _, b = text.partition(" (")
    return f"{r['measure']} {a} (95% CI {b}" if b else f"{r['measure']} {a}"


def _p_cell(p: str, holm: str | None = None) -> str:
    """``p = 0.795; Holm p = 0.795`` from printed cells; nothing for a symbol."""
    if p in ("[x]", "[c]", ""):
        return ""
    out = f"p {p}" if p.startswith("<") else f"p = {p}"
    if holm and holm not in ("[x]", "[c]"):
        out += f"; Holm p {holm}" if holm.startswith("<") else f"; Holm p = {holm}"
    return out


def _why(look: Lookup, outcome: str, symbol: bool = True) -> str:
    """Why an outcome's model gives no number (``[x]`` and its reason), or ``""`` (shown, or withheld as ``[c]``).

    ``outcome`` is an outcome's name or its label as the headline view shows it; ``symbol=False`` gives the
    reason alone.
    """
    names = {label(o): o for o in outcomes(look)}
    o = names.get(outcome.removesuffix(PRIMARY_MARK), outcome)
    model = look.get("impact", "primary", o, MODEL["casefile" if o == CASEFILE_OUTCOME else "scale"])
    reason = unavailable(model)
    if not reason:
        eff = look.get("impact", "primary", o, EFFECT["casefile" if o == CASEFILE_OUTCOME else "scale"][0])
        reason = unavailable(eff)
    if not reason:
        return ""
    return f"{X}: {reason}" if symbol else reason


def sentences(
    view: pd.DataFrame, cost: pd.DataFrame | None, delivery: pd.DataFrame | None, look: Lookup, limit: int
) -> dict[str, str]:
    """The summary's glued sentences, each from a published view (withheld values are never read).

    ``view`` is the headline table as printed (:meth:`~isafe_helpers.publish.assemble.BookDisclosure.cells`):
    the sentences quote its cells, so they say what the table says.
    """
    primary = primary_outcome(look)
    glue: dict[str, str] = {
        "s_primary_outcome": md(label(primary) if primary is not None else "none pre-specified"),
        "s_outcomes_sentence": md(outcomes_sentence(look)),
    }
    for key, row, what in (("s_reach_sentence", 0, "reach"), ("s_satisfaction_sentence", 1, "satisfaction")):
        r = None if delivery is None or len(delivery) <= row else delivery.iloc[row]
        if r is None or not math.isfinite(r["pct"]):
            glue[key] = md(f"The {what} figure is withheld or not available in this build.")
        elif what == "reach":
            glue[key] = md(
                f"{number(r['pct'], 'pct', 0)}% of intervention-team staff attended at least one of the "
                f"two practice-pathway sessions (95% CI {number(r['lo'], 'pct', 0)}% to "
                f"{number(r['hi'], 'pct', 0)}%)."
            )
        else:
            glue[key] = md(
                f"{number(r['pct'], 'pct', 0)}% of the people who gave feedback were fairly or very "
                f"satisfied with every component they rated (95% CI {number(r['lo'], 'pct', 0)}% to "
                f"{number(r['hi'], 'pct', 0)}%)."
            )
    p = primary_rows(view)
    if primary is None:  # methods.md: the summary says, in one sentence, that no primary outcome was pre-specified
        glue["s_primary_sentence"] = md(
            "No primary outcome was pre-specified, so none is called primary: each outcome below is read from its "
            "p-value adjusted for testing all of them (Holm)."
        )
    elif len(p) and effect_phrase(p.iloc[0]) != "not published":
        r = p.iloc[0]
        verdict = str(r.get("finding", "")) if "finding" in view else ""
        verdict = "" if verdict.startswith("no verdict") else verdict
        p_text = _p_cell(str(r["p"]))
        glue["s_primary_sentence"] = md(
            f"On the primary outcome, {label(primary).lower()}, "
            f"the trial found {verdict or 'an effect of'} {effect_phrase(r)}{', ' + p_text if p_text else ''}.".replace(
                "found improved", "found an improvement:"
            )
            .replace("found worsened", "found a worsening:")
            .replace("found no clear difference", "found no clear difference:")
        )
    else:
        why = _why(look, primary)
        glue["s_primary_sentence"] = md(
            f"The primary outcome, {label(primary).lower()}, has no published estimate" + (f" ({why})." if why else ".")
        )
    sec = view.drop(primary_rows(view).index)
    parts = []
    for _, r in sec.iterrows():
        if effect_phrase(r) == "not published":
            why = _why(look, str(r["outcome"]))
            parts.append(f"{str(r['outcome']).lower()}: not published" + (f" ({why})" if why else ""))
            continue
        p_text = _p_cell(str(r["p"]), str(r["p_holm"]))
        parts.append(
            f"{str(r['outcome']).lower()}: {effect_phrase(r)}"
            + (f", {p_text}" if p_text else "")
            + (f" ({r['finding']})" if "finding" in view and not str(r["finding"]).startswith("no verdict") else "")
        )
    which = "Secondary outcomes" if primary is not None else "Every outcome"
    glue["s_secondary_sentence"] = md(
        f"{which}, with p-values adjusted for testing several (Holm): " + "; ".join(parts) + "."
        if parts
        else f"No {'secondary ' if primary is not None else ''}outcome has a published estimate."
    )
    if cost is not None and len(cost):
        c = cost.iloc[0]
        if math.isfinite(c["cost"]) and math.isfinite(c["rating"]):
            glue["s_cost_sentence"] = md(
                f"Set-up and delivery cost {number(c['cost'], 'gbp', 0)} per participant reached "
                f"({c['measure'].split('(')[-1].rstrip(')') if '(' in c['measure'] else 'prices of the report'}): "
                f"Foundations cost rating {c['rating']:.0f}, {RATING_LABELS.get(int(c['rating']), '')}."
            )
        else:
            glue["s_cost_sentence"] = md(
                f"The cost per participant is withheld: it rests on fewer than {limit} "
                "participants or would give a withheld count back."
            )
    else:
        glue["s_cost_sentence"] = md("No cost per participant is available in this build.")
    return glue


def failed_strands(run: dict) -> dict[str, str]:
    """Pooled strands whose notebook failed in the run, with the error message."""
    return {
        t["strand"]: t.get("message", "")
        for t in run.get("tasks", [])
        if t.get("scope") == "trial" and t.get("status") == "failed"
    }


# --------------------------------------------------------------------------
# The front matter: who ran the trial, when, where it is registered, what it measured
# --------------------------------------------------------------------------
#: What the summary says of a detail the trial's protocol details do not give.
NOT_GIVEN = "not given"


def _given(value) -> str:
    text = "" if value is None else str(value).strip()
    return text or NOT_GIVEN


def front_matter(protocol) -> dict[str, str]:
    """The summary's front matter from the protocol (``protocol.yml``), escaped, each part or "not given".

    ``s_front_matter``: the registration (registry, id, date, address), the
    dates (randomised, baseline, follow-up), the evaluator, the developer
    and the funder; ``s_outcomes_scope``: that the outcomes are
    practitioners' and no child or family outcome was measured (Foundations'
    evidence ratings rest on child outcomes). Reads the protocol's
    ``registration``, ``dates``, ``evaluator``, ``developer`` and ``funder``
    where it has them (a protocol without them says "not given").

    >>> from types import SimpleNamespace as NS
    >>> p = NS(registration={"registry": "ISRCTN", "id": "12345678", "date": "2023-01-10"}, dates=None,
    ...        evaluator="A University", developer=None, funder="A Funder")
    >>> import html; print(html.unescape(front_matter(p)["s_front_matter"]))
    Registration: ISRCTN 12345678, registered 2023-01-10. Dates: not given. Evaluator: A University. Developer: not given. Funder: A Funder.
    """
    reg = getattr(protocol, "registration", None) or {}
    if isinstance(reg, dict) and any(reg.get(k) for k in ("registry", "id", "url")):
        registration = " ".join(str(reg[k]) for k in ("registry", "id") if reg.get(k))
        if reg.get("date"):
            registration += f", registered {reg['date']}"
        if reg.get("url"):
            registration += f" ({reg['url']})"
    else:
        registration = NOT_GIVEN
    dates = getattr(protocol, "dates", None) or {}
    when = [
        f"{what} {dates[k]}"
        for k, what in (("randomised", "randomised"), ("baseline", "baseline survey"), ("followup", "follow-up survey"))
        if isinstance(dates, dict) and dates.get(k)
    ]
    parts = [
        f"Registration: {registration}.",
        f"Dates: {', '.join(when) if when else NOT_GIVEN}.",
        f"Evaluator: {_given(getattr(protocol, 'evaluator', None))}.",
        f"Developer: {_given(getattr(protocol, 'developer', None))}.",
        f"Funder: {_given(getattr(protocol, 'funder', None))}.",
    ]
    return {
        "s_front_matter": md(" ".join(parts)),
        "s_outcomes_scope": md(
            "Every outcome is a practitioner's: staff's own ratings of their confidence, competence and practice, "
            "and whether case files record the father's contact details. No child or family outcome was "
            "measured, so these results alone cannot place ISAFE at a Foundations evidence level, which rests on "
            "outcomes for children."
        ),
    }
