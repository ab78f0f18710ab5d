"""Implementation and process strand: satisfaction, usefulness, the response rate and coded themes.

Pooled (``trial``) and ``all`` figures are ratios of sums. Satisfaction
intervals are Wilson's within one LA and, in a pooled scope with feedback
from two or more LAs, cluster-robust with the LA as the cluster
(:func:`isafe_helpers.stats.proportions.cluster_ci`), because LAs differ in
delivery and feedback rows of one LA are not independent.

The feedback response rate (:func:`response_rate`): attendees (distinct
person and component, attended true) who returned feedback on that
component, over all such attendees. Feedback from people with no attended
session of the component is counted apart, never in the rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import COMPONENTS
from isafe_helpers.data.frames import attendees
from isafe_helpers.data.loading import TrialData
from isafe_helpers.process.result import ProcessResult
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.table import Col
from isafe_helpers.stats.proportions import cluster_ci, wilson

THEME_COLUMNS = [
    Col("theme", "Theme", "text"),
    Col("component", "Component", "text"),
    Col("count", "Mentions", "people"),
]


# --------------------------------------------------------------------------
# Satisfaction, usefulness, would-recommend, response rate, themes
# --------------------------------------------------------------------------
def _share(sub: pd.DataFrame, col: str, hit, n_las: int) -> dict:
    """Share of non-blank ``col`` values meeting ``hit``, with Wilson or LA-cluster CI."""
    ans = sub[sub[col].notna()]
    n = len(ans)
    k = int(hit(ans[col]).sum())
    pct = 100 * k / n if n else np.nan
    se, method = np.nan, "wilson"
    lo, hi = wilson(k, n)
    if n_las > 1:
        per = ans.assign(hit=hit(ans[col]).astype(int)).groupby("la")["hit"].agg(["sum", "size"])
        if (per["size"] > 0).sum() >= 2:
            se, lo, hi = cluster_ci(per["sum"].to_numpy(), per["size"].to_numpy())
            method = "cluster_la"
    return {
        "n": n,
        "k": k,
        "pct": pct,
        "se": se,
        "ci_low": lo,
        "ci_high": hi,
        "ci_method": method,
        "n_clusters": int(ans["la"].nunique()),
    }


def satisfaction(data: TrialData) -> ProcessResult:
    """Share of feedback rows answering 4 or 5 (fairly or very satisfied), by component and ``all``.

    Within one LA the interval is Wilson's; in a pooled scope with feedback
    from two or more LAs it is cluster-robust with the LA as the cluster
    (:func:`cluster_ci`). ``frames["distribution"]`` counts each answer 1..5
    per component (for the diverging bars).
    """
    fb = data.feedback
    n_las = len(data.las)
    rows, recs, dist = [], [], []
    note_none = "no feedback returned" if fb.empty else ""
    for comp in (*COMPONENTS, "all"):
        sub = fb if comp == "all" else fb[fb["component"] == comp]
        s = _share(sub, "satisfaction", lambda x: x >= 4, n_las)
        note = note_none or ("" if s["n"] else "no feedback for this component")
        if s["ci_method"] == "cluster_la":
            note = (note + "; " if note else "") + "95% CI cluster-robust with LA as the cluster"
        rows += [
            est_row(
                "satisfaction",
                comp,
                "satisfied_pct",
                s["pct"],
                se=s["se"],
                ci_low=s["ci_low"],
                ci_high=s["ci_high"],
                n=s["n"],
                n_clusters=s["n_clusters"] if n_las > 1 else None,
                note=note,
            ),
            est_row("satisfaction", comp, "respondents", s["n"]),
        ]
        recs.append(
            {
                "component": comp,
                "respondents": s["n"],
                "satisfied": s["k"],
                "satisfied_pct": s["pct"],
                "ci_low": s["ci_low"],
                "ci_high": s["ci_high"],
                "ci_method": s["ci_method"],
            }
        )
        counts = sub["satisfaction"].dropna().astype(int).value_counts()
        dist.append({"component": comp, **{str(v): int(counts.get(v, 0)) for v in range(1, 6)}, "respondents": s["n"]})
    return ProcessResult(
        "satisfaction",
        pd.DataFrame(recs),
        rows,
        [
            Col("component", "Component", "text"),
            Col("respondents", "Respondents", "people"),
            Col("satisfied", "Fairly or very satisfied", "people"),
            Col("satisfied_pct", "Fairly or very satisfied (%)", "pct", 1, base="respondents"),
            Col("ci_low", "95% CI low (%)", "pct", 1, base="respondents"),
            Col("ci_high", "95% CI high (%)", "pct", 1, base="respondents"),
            Col("ci_method", "Interval", "text"),
        ],
        "Satisfaction with each component",
        frames={"distribution": pd.DataFrame(dist)},
    )


def usefulness(data: TrialData) -> ProcessResult:
    """Usefulness (share rating 4 or 5, and mean 1..5) and would-recommend (share yes).

    Blank answers are left out of each quantity's base; intervals as in
    :func:`satisfaction`.
    """
    fb = data.feedback
    n_las = len(data.las)
    rows, recs = [], []
    for comp in (*COMPONENTS, "all"):
        sub = fb if comp == "all" else fb[fb["component"] == comp]
        u = _share(sub, "usefulness", lambda x: x >= 4, n_las)
        w = _share(sub, "would_recommend", lambda x: x.astype(bool), n_las)
        mean_u = float(sub["usefulness"].dropna().astype(float).mean()) if u["n"] else np.nan
        none = "no feedback returned" if fb.empty else ""
        rows += [
            est_row(
                "usefulness",
                comp,
                "useful_pct",
                u["pct"],
                se=u["se"],
                ci_low=u["ci_low"],
                ci_high=u["ci_high"],
                n=u["n"],
                note=none or ("" if u["n"] else "no usefulness answers"),
            ),
            est_row("usefulness", comp, "mean_usefulness", mean_u, n=u["n"]),
            est_row(
                "would_recommend",
                comp,
                "recommend_pct",
                w["pct"],
                se=w["se"],
                ci_low=w["ci_low"],
                ci_high=w["ci_high"],
                n=w["n"],
                note=none or ("" if w["n"] else "no would-recommend answers"),
            ),
        ]
        recs.append(
            {
                "component": comp,
                "usefulness_answers": u["n"],
                "useful_pct": u["pct"],
                "mean_usefulness": mean_u,
                "recommend_answers": w["n"],
                "recommend_pct": w["pct"],
            }
        )
    return ProcessResult(
        "usefulness",
        pd.DataFrame(recs),
        rows,
        [
            Col("component", "Component", "text"),
            Col("usefulness_answers", "Answered usefulness", "people"),
            Col("useful_pct", "Found it useful, 4 or 5 (%)", "pct", 1, base="usefulness_answers"),
            Col("mean_usefulness", "Mean usefulness (1 to 5)", "mean", 2, base="usefulness_answers"),
            Col("recommend_answers", "Answered would-recommend", "people"),
            Col("recommend_pct", "Would recommend (%)", "pct", 1, base="recommend_answers"),
        ],
        "Usefulness and would-recommend",
    )


def response_rate(data: TrialData) -> ProcessResult:
    """Feedback response rate: the one definition used throughout the handbook.

    For each component, the attendees (distinct person, attended true) who
    returned at least one feedback row on that component, over all its
    attendees; ``all`` sums both over components (attendee-components).
    Feedback from a person with no attended session of that component is
    counted in ``feedback_without_attendance`` and never in the rate.
    Attendees of an LA that returned no feedback file are left out of the
    denominator (its rate is unknown, not zero).
    """
    fb = data.feedback[["la", "person_id", "component"]].drop_duplicates()
    att = attendees(data)
    att = att[att["la"].isin(set(fb["la"]))]  # LAs with no feedback file have no rate, not 0%
    merged = fb.merge(att.assign(att=True), on=["la", "person_id", "component"], how="left")
    merged["att"] = merged["att"].fillna(False).astype(bool)
    rows, recs = [], []
    for comp in (*COMPONENTS, "all"):
        a = att if comp == "all" else att[att["component"] == comp]
        m = merged if comp == "all" else merged[merged["component"] == comp]
        k, n, outside = int(m["att"].sum()), len(a), int((~m["att"]).sum())
        pct = 100 * k / n if n else np.nan
        lo, hi = wilson(k, n)
        note = "no feedback returned" if data.feedback.empty else ("" if n else "no attendees")
        rows += [
            est_row("feedback_response", comp, "response_rate_pct", pct, ci_low=lo, ci_high=hi, n=n, note=note),
            est_row("feedback_response", comp, "respondents", k),
            est_row("feedback_response", comp, "feedback_without_attendance", outside),
        ]
        recs.append(
            {
                "component": comp,
                "attendees": n,
                "respondents": k,
                "response_rate_pct": pct,
                "feedback_without_attendance": outside,
            }
        )
    t = pd.DataFrame(recs)
    outside = int(t.loc[t["component"] == "all", "feedback_without_attendance"].iloc[0])
    note = (
        f"{outside} feedback row(s) came from people with no attended session of that component; "
        "they are left out of the rate."
        if outside
        else ""
    )
    return ProcessResult(
        "feedback_response",
        t,
        rows,
        [
            Col("component", "Component", "text"),
            Col("attendees", "Attendees", "people"),
            Col("respondents", "Returned feedback", "people"),
            Col("response_rate_pct", "Response rate (%)", "pct", 1, base="attendees"),
        ],
        "Feedback response rate",
        notes=[note] if note else [],
    )


def has_themes(data: TrialData) -> bool:
    """True when the feedback carries coded themes (a ``theme`` column with values)."""
    fb = data.feedback
    return "theme" in fb.columns and bool(fb["theme"].notna().any())


def themes(data: TrialData) -> ProcessResult:
    """Counts of coded comment themes by component (never the free text).

    Empty when the feedback has no ``theme`` values.
    """
    if not has_themes(data):
        return ProcessResult(
            "themes",
            pd.DataFrame(columns=["theme", "component", "count"]),
            [],
            THEME_COLUMNS,
            "Coded comment themes",
            notes=["no coded themes in the feedback"],
        )
    fb = data.feedback[data.feedback["theme"].notna()]
    t = fb.groupby(["theme", "component"]).size().rename("count").reset_index()
    tot = fb.groupby("theme").size().rename("count").reset_index().assign(component="all")
    t = pd.concat([t, tot], ignore_index=True).sort_values(["theme", "component"], kind="stable")
    rows = [est_row("themes", f"{r.theme}:{r.component}", "mentions", r.count) for r in t.itertuples(index=False)]
    return ProcessResult("themes", t.reset_index(drop=True), rows, THEME_COLUMNS, "Coded comment themes")
