"""Implementation and process strand: satisfaction, usefulness, the response rate and coded themes.

Each figure says what it counts ("fairly or very satisfied" = 4 or 5):

- **Satisfaction with a component** is per person: over its distinct
  respondents. A person with several feedback rows on one component (the
  contract expects at most one) counts as satisfied only when every one of
  those ratings is 4 or 5.
- **Satisfaction, all components** is given two ways: per response
  (``satisfied_pct`` of outcome ``all``: over all feedback rows, so a person
  who rated several components counts once per row; ``responses`` their
  number) and per person (``satisfied_people_pct``: the share of distinct
  respondents whose every rating is 4 or 5; ``respondents`` their number).
- **Usefulness** and **would-recommend** are over the answers given: per
  component (one answer per person), and per response for ``all``.

Pooled (``trial``) and ``all`` figures are ratios of sums; intervals follow
:mod:`isafe_helpers.process.shares` (Wilson for a person-level share within
one LA, the person as the cluster for responses within one LA, and the LA as
the cluster when pooled over LAs).

The feedback response rate (:func:`response_rate`): attendees (distinct
person and component, attended true) who returned feedback on that
component, over all such attendees. Feedback from people with no attended
session of the component is counted apart, never in the rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import COMPONENTS
from isafe_helpers.data.frames import attendees
from isafe_helpers.data.loading import TrialData
from isafe_helpers.process.result import Layout, ProcessResult
from isafe_helpers.process.shares import Share, share
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.table import Col

THEME_COLUMNS = [
    Col("theme", "Theme", "text"),
    Col("component", "Component", "text"),
    Col("count", "Mentions", "people"),
]

#: Row keys of the satisfaction table's last row, and of the per-person breakdown.
ALL_RESPONSES = "all_responses"
ALL_PEOPLE = "all_people"

PER_PERSON_COMPONENT = "per person: distinct respondents to this component"
PER_RESPONSE = "per response: all feedback rows; a person who rated several components counts once per component rated"
PER_PERSON_ALL = "per person: distinct respondents whose every rating is 4 or 5"

SATISFACTION_COLUMNS = [
    Col("component", "Component", "text"),
    Col("counted", "Counted per", "text"),
    Col("respondents", "Answered", "people"),
    Col("satisfied", "Fairly or very satisfied", "people"),
    Col("satisfied_pct", "Fairly or very satisfied (%)", "pct", 1, base="respondents", of="respondents"),
    Col("ci_low", "95% CI low (%)", "pct", 1, base="respondents"),
    Col("ci_high", "95% CI high (%)", "pct", 1, base="respondents"),
    Col("interval", "Interval", "text"),
]

SATISFACTION_NOTES = (
    "Fairly or very satisfied: a rating of 4 or 5 on a scale of 1 to 5.",
    "Each component: per person (each person who rated it counts once). All components, per response: every "
    "feedback form counts, so a person who rated several components counts once for each.",
)

PEOPLE_COLUMNS = [
    Col("la", "LA", "text"),
    Col("respondents", "People who gave feedback", "people"),
    Col("satisfied", "Satisfied with every component they rated", "people"),
    Col(
        "satisfied_pct",
        "Satisfied with every component they rated (%)",
        "pct",
        1,
        base="respondents",
        of="respondents",
    ),
    Col("ci_low", "95% CI low (%)", "pct", 1, base="respondents"),
    Col("ci_high", "95% CI high (%)", "pct", 1, base="respondents"),
    Col("interval", "Interval", "text"),
]


# --------------------------------------------------------------------------
# Satisfaction, usefulness, would-recommend, response rate, themes
# --------------------------------------------------------------------------
def _rated(fb: pd.DataFrame, col: str) -> pd.DataFrame:
    """Feedback rows with an answer in ``col``."""
    return fb[fb[col].notna()]


def _per_person(rows: pd.DataFrame, hit: pd.Series) -> pd.DataFrame:
    """One unit per distinct respondent (LA, person): ``k`` 1 when every one of their rows is a hit."""
    u = rows.assign(hit=hit.astype(float)).groupby(["la", "person_id"], as_index=False)["hit"].min()
    return u.rename(columns={"hit": "k"}).assign(n=1.0)


def _per_response(rows: pd.DataFrame, hit: pd.Series) -> pd.DataFrame:
    """One unit per feedback row: ``k`` 1 for a hit."""
    return pd.DataFrame({"la": rows["la"], "person_id": rows["person_id"], "k": hit.astype(float), "n": 1.0})


def _row(analysis: str, outcome: str, quantity: str, s: Share, note: str) -> dict:
    return est_row(
        analysis,
        outcome,
        quantity,
        s.pct,
        se=s.se,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        n=s.n,
        n_clusters=s.n_clusters,
        note="; ".join(p for p in (note, s.note) if p),
    )


def _record(key: str, counted: str, s: Share) -> dict:
    return {
        "component": key,
        "counted": counted,
        "respondents": int(s.n),
        "satisfied": int(s.k),
        "satisfied_pct": s.pct,
        "ci_low": s.ci_low,
        "ci_high": s.ci_high,
        "interval": s.method,
    }


def _people_share(fb: pd.DataFrame) -> Share:
    rated = _rated(fb, "satisfaction")
    return share(_per_person(rated, rated["satisfaction"] >= 4))


def satisfaction(data: TrialData) -> ProcessResult:
    """Share fairly or very satisfied (4 or 5): per person for each component; per response and per person overall.

    ``frame`` (``table()``): the five components (per person), then all
    components per response (row ``all_responses``; its counts are the sums
    of the rows above). ``frames["people"]`` (``table("people")``): the share
    of people whose every rating is 4 or 5, per LA when pooled, then the
    scope (``all``). ``frames["distribution"]`` counts each answer 1..5 for
    the diverging bars: per person for a component (a person's lowest
    rating, should they have several), per response for ``all_responses``;
    ``respondents`` is its denominator and ``counted`` says which.
    """
    fb = _rated(data.feedback, "satisfaction")
    rows, recs, dist = [], [], []
    note_none = "no feedback returned" if data.feedback.empty else ""
    for comp in COMPONENTS:
        sub = fb[fb["component"] == comp]
        units = _per_person(sub, sub["satisfaction"] >= 4)
        s = share(units)
        note = note_none or (PER_PERSON_COMPONENT if s.n else "no feedback for this component")
        rows += [
            _row("satisfaction", comp, "satisfied_pct", s, note),
            est_row("satisfaction", comp, "respondents", s.n),
            est_row("satisfaction", comp, "satisfied", s.k, n=s.n, note="people fairly or very satisfied"),
        ]
        recs.append(_record(comp, "person", s))
        lowest = sub.groupby(["la", "person_id"])["satisfaction"].min().astype(int).value_counts()
        dist.append(
            {
                "component": comp,
                **{str(v): int(lowest.get(v, 0)) for v in range(1, 6)},
                "respondents": int(s.n),
                "counted": "person",
            }
        )
    s_resp = share(_per_response(fb, fb["satisfaction"] >= 4), person_level=False, within_la="person_id")
    s_people = _people_share(fb)
    none = note_none or ("" if s_resp.n else "no feedback")
    rows += [
        _row("satisfaction", "all", "satisfied_pct", s_resp, none or PER_RESPONSE),
        est_row("satisfaction", "all", "responses", s_resp.n, note=none or "feedback rows with a satisfaction rating"),
        est_row("satisfaction", "all", "respondents", s_people.n, note=none or "distinct people who gave feedback"),
        _row("satisfaction", "all", "satisfied_people_pct", s_people, none or PER_PERSON_ALL),
        est_row(
            "satisfaction",
            "all",
            "satisfied_people",
            s_people.k,
            n=s_people.n,
            note=none or "distinct people whose every rating is 4 or 5",
        ),
        est_row("satisfaction", "all", "satisfied", s_resp.k, n=s_resp.n, note="responses fairly or very satisfied"),
    ]
    recs.append(_record(ALL_RESPONSES, "response", s_resp))
    counts = fb["satisfaction"].astype(int).value_counts()
    dist.append(
        {
            "component": ALL_RESPONSES,
            **{str(v): int(counts.get(v, 0)) for v in range(1, 6)},
            "respondents": int(s_resp.n),
            "counted": "response",
        }
    )
    for d in pd.DataFrame(dist).to_dict("records"):  # the answers the bars draw: a count and a share per rating
        o = "all" if d["component"] == ALL_RESPONSES else str(d["component"])
        n = d["respondents"]
        what = "people by their lowest rating" if d["counted"] == "person" else "responses"
        # each answer, then the bands a coarsened table prints (distribution_table): a count and a share of each
        for q, answers in [*((str(v), (v,)) for v in range(1, 6)), ("1_2", (1, 2)), ("4_5", (4, 5))]:
            k = sum(d[str(a)] for a in answers)
            rows += [
                est_row("satisfaction_distribution", o, f"rating_{q}", k, n=n, note=what),
                est_row(
                    "satisfaction_distribution", o, f"rating_{q}_pct", 100 * k / n if n else np.nan, n=n, note=what
                ),
            ]
    people = []
    if len(data.las) > 1:
        for la in data.las:
            people.append({"la": la, **_record(ALL_PEOPLE, "person", _people_share(fb[fb["la"] == la]))})
    people.append({"la": "all", **_record(ALL_PEOPLE, "person", s_people)})
    people = pd.DataFrame(people)
    tags = [list(data.las) if la == "all" else [la] for la in people["la"]]
    people["_key_respondents"] = [K.respondents(t, "all", answer="any") for t in tags]
    people["_key_satisfied"] = [K.respondents(t, "all", answer="every rating 4 or 5") for t in tags]
    return ProcessResult(
        "satisfaction",
        pd.DataFrame(recs),
        rows,
        SATISFACTION_COLUMNS,
        "Satisfaction with each component (per person) and with all components (per response)",
        notes=list(SATISFACTION_NOTES),
        frames={"distribution": pd.DataFrame(dist), "people": people},
        quantities={
            "respondents": ("satisfied_pct", "n"),
            "satisfied": ("satisfied", "estimate"),
            "satisfied_pct": ("satisfied_pct", "estimate"),
        },
        outcomes={ALL_RESPONSES: "all"},
        layouts={
            "people": Layout(
                PEOPLE_COLUMNS,
                "Satisfaction per person: people whose every rating was fairly or very satisfied (4 or 5)",
                (
                    "Each person who gave feedback counts once; they count as satisfied only when every "
                    "satisfaction rating they gave, on any component, was 4 or 5.",
                ),
            )
        },
    )


def usefulness(data: TrialData) -> ProcessResult:
    """Usefulness (share rating 4 or 5, and mean 1..5) and would-recommend (share yes).

    Over the answers given (blank answers left out): per component one per
    person, and per response for ``all``. Intervals as in
    :mod:`isafe_helpers.process.shares`.
    """
    fb = data.feedback
    rows, recs = [], []
    for comp in (*COMPONENTS, "all"):
        sub = fb if comp == "all" else fb[fb["component"] == comp]
        per: dict[str, Any] = {"person_level": False, "within_la": "person_id"} if comp == "all" else {}
        use, rec = _rated(sub, "usefulness"), _rated(sub, "would_recommend")
        u = share(_per_response(use, use["usefulness"] >= 4), **per)
        w = share(_per_response(rec, rec["would_recommend"].astype(bool)), **per)
        mean_u = float(use["usefulness"].astype(float).mean()) if u.n else np.nan
        none = "no feedback returned" if fb.empty else ""
        what = "per response: all feedback rows with an answer" if comp == "all" else ""
        rows += [
            _row("usefulness", comp, "useful_pct", u, none or (what if u.n else "no usefulness answers")),
            est_row("usefulness", comp, "mean_usefulness", mean_u, n=u.n),
            _row("would_recommend", comp, "recommend_pct", w, none or (what if w.n else "no would-recommend answers")),
        ]
        recs.append(
            {
                "component": ALL_RESPONSES if comp == "all" else comp,
                "usefulness_answers": int(u.n),
                "useful_pct": u.pct,
                "mean_usefulness": mean_u,
                "recommend_answers": int(w.n),
                "recommend_pct": w.pct,
            }
        )
    return ProcessResult(
        "usefulness",
        pd.DataFrame(recs),
        rows,
        [
            Col("component", "Component", "text"),
            Col("usefulness_answers", "Answered usefulness", "people"),
            Col(
                "useful_pct",
                "Found it useful, 4 or 5 (%)",
                "pct",
                1,
                base="usefulness_answers",
                of="usefulness_answers",
            ),
            Col("mean_usefulness", "Mean usefulness (1 to 5)", "mean", 2, base="usefulness_answers"),
            Col("recommend_answers", "Answered would-recommend", "people"),
            Col("recommend_pct", "Would recommend (%)", "pct", 1, base="recommend_answers", of="recommend_answers"),
        ],
        "Usefulness and would-recommend",
        quantities={
            "usefulness_answers": ("useful_pct", "n"),
            "mean_usefulness": ("mean_usefulness", "estimate"),
            "recommend_answers": ("would_recommend", "recommend_pct", "n"),
            "recommend_pct": ("would_recommend", "recommend_pct", "estimate"),
        },
        outcomes={ALL_RESPONSES: "all"},
        notes=[
            "Each component: one answer per person. All components, per response: a person who rated several "
            "components counts once for each."
        ],
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
    returned = att.merge(fb.assign(k=1.0), on=["la", "person_id", "component"], how="left")
    returned = returned.assign(k=returned["k"].fillna(0.0), n=1.0)
    rows, recs = [], []
    for comp in (*COMPONENTS, "all"):
        units = returned if comp == "all" else returned[returned["component"] == comp]
        m = merged if comp == "all" else merged[merged["component"] == comp]
        per: dict[str, Any] = {"person_level": False, "within_la": "person_id"} if comp == "all" else {}
        s = share(units, **per)
        outside = int((~m["att"]).sum())
        note = "no feedback returned" if data.feedback.empty else ("" if s.n else "no attendees")
        if comp == "all" and s.n:
            note = "per attendee and component: a person who attended several components counts once for each"
        rows += [
            _row("feedback_response", comp, "response_rate_pct", s, note),
            est_row("feedback_response", comp, "respondents", s.k),
            est_row("feedback_response", comp, "feedback_without_attendance", outside),
        ]
        recs.append(
            {
                "component": comp,
                "attendees": int(s.n),
                "respondents": int(s.k),
                "response_rate_pct": s.pct,
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
            Col("response_rate_pct", "Response rate (%)", "pct", 1, base="attendees", of="attendees"),
        ],
        "Feedback response rate",
        notes=[note] if note else [],
        quantities={"attendees": ("response_rate_pct", "n")},
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
