"""Implementation and process strand: reach, who was reached, and dose.

Definitions follow the data contract and the methods reference; each figure
is named for what it counts:

- **Reach of a component**: its distinct attendees (attended true) over its
  ``intended_n``. It may exceed 100%; it is then flagged, never capped.
- **Practice-pathway reach, person level** (outcomes
  ``practice_pathway_one``, ``practice_pathway_both``): treatment-team
  participants who attended at least one / both practice-pathway sessions,
  over all treatment-team participants.
- **Places filled** (outcome ``all``, quantity ``places_filled_pct``):
  attendees summed over the five components over their ``intended_n``
  summed. A person counts once per component attended, so this is not a
  share of people and is never called reach. When a component has attendees
  but no ``intended_n`` its places are unknown and places filled is not
  computed.
- Pooled (``trial``) figures are ratios of sums. Intervals follow
  :mod:`isafe_helpers.process.shares`.
- **Reached** and **dose**: :mod:`isafe_helpers.data.frames` (at least one
  practice-pathway session; sessions attended, 0 to 2). Staff outside the
  participants table count in component reach but not here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import COMPONENTS
from isafe_helpers.data.frames import attendees, treatment_participants
from isafe_helpers.data.loading import TrialData
from isafe_helpers.process.result import Layout, ProcessResult
from isafe_helpers.process.shares import NO_INTERVAL, Share, interval_note, share
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.table import Col

#: The row key of places filled in the reach table (its estimates rows are outcome ``all``).
PLACES_FILLED = "places_filled"

REACH_COLUMNS = [
    Col("component", "Component", "text"),
    Col("attendees", "Attendees", "people"),
    Col("intended_n", "Intended audience (places)", "int"),
    Col("reach_pct", "Reach (%)", "pct", 1, reveals="attendees"),
    Col("ci_low", "95% CI low (%)", "pct", 1, reveals="attendees"),
    Col("ci_high", "95% CI high (%)", "pct", 1, reveals="attendees"),
    Col("interval", "Interval", "text"),
    Col("flag", "Note", "text"),
]

REACH_NOTES = (
    "Reach of a component: distinct people who attended it over its intended audience.",
    "Places filled (last row): attendees summed over the components over their intended audiences summed. "
    "A person counts once for each component attended, so it is not a share of people.",
)

#: Person-level practice-pathway reach: (outcome, dose rule, what it counts).
PATHWAY_MEASURES = (
    ("practice_pathway_one", "one", "attended at least one practice-pathway session"),
    ("practice_pathway_both", "both", "attended both practice-pathway sessions"),
)

PATHWAY_COLUMNS = [
    Col("la", "LA", "text"),
    Col("staff", "Intervention-team staff", "people"),
    Col("one", "At least one session (staff)", "people"),
    Col("one_pct", "At least one session (%)", "pct", 1, base="staff"),
    Col("one_ci_low", "95% CI low (%)", "pct", 1, base="staff"),
    Col("one_ci_high", "95% CI high (%)", "pct", 1, base="staff"),
    Col("both", "Both sessions (staff)", "people"),
    Col("both_pct", "Both sessions (%)", "pct", 1, base="staff"),
    Col("both_ci_low", "95% CI low (%)", "pct", 1, base="staff"),
    Col("both_ci_high", "95% CI high (%)", "pct", 1, base="staff"),
    Col("interval", "Interval", "text"),
]


#: Dose groups: practice-pathway sessions attended.
DOSE_LABELS = {0: "none", 1: "one", 2: "both"}


#: Experience bands (years qualified as a social worker): (label, lower, upper).
EXPERIENCE_BANDS = (
    ("under 5 years", 0.0, 5.0),
    ("5 to under 10 years", 5.0, 10.0),
    ("10 to under 20 years", 10.0, 20.0),
    ("20 years or more", 20.0, np.inf),
)


NOT_GIVEN = "not given"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _component_units(att: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Per LA and component: distinct attendees (``k``) and ``intended_n`` (``n``), zeros filled in."""
    las = sorted(set(att["la"]) | set(targets["la"]))
    idx = pd.MultiIndex.from_product([las, COMPONENTS], names=["la", "component"])
    k = att.groupby(["la", "component"]).size().reindex(idx, fill_value=0)
    n = targets.groupby(["la", "component"])["intended_n"].sum().reindex(idx, fill_value=0)
    return pd.DataFrame({"k": k.astype(float), "n": n.astype(float)}).reset_index()


def _reach_records(att: pd.DataFrame, targets: pd.DataFrame) -> list[dict]:
    """Reach of each component, and places filled, for one set of attendees and targets."""
    units = _component_units(att, targets)
    untargeted = units[(units["k"] > 0) & (units["n"] == 0)]
    recs = []
    for comp in COMPONENTS:
        s = share(units[units["component"] == comp], bounded=False)
        missing = untargeted.loc[untargeted["component"] == comp, "la"].tolist()
        flag = ""
        if not s.n:
            flag = "no intended audience given"
        elif missing:
            flag = f"{', '.join(missing)}: attendees but no intended audience given (counted over the others')"
        elif s.pct > 100:
            flag = "over 100%: more attendees than the intended audience"
        recs.append(_record(comp, s, flag))
    no_target = list(dict.fromkeys(untargeted["component"]))
    s = share(units, person_level=False, bounded=False)
    flag = "" if s.n else "no intended audience given"
    if s.n and s.method == NO_INTERVAL:
        flag = "no interval within one LA: places are not people"
    if no_target:
        s = Share(s.k, s.n, np.nan, np.nan, np.nan, np.nan, NO_INTERVAL, s.n_clusters)
        flag = f"not computed: {', '.join(no_target)} had attendees but no intended audience"
    recs.append(_record(PLACES_FILLED, s, flag))
    return recs


def _record(key: str, s: Share, flag: str) -> dict:
    return {
        "component": key,
        "attendees": int(s.k),
        "intended_n": int(s.n),
        "reach_pct": s.pct,
        "se": s.se,
        "ci_low": s.ci_low,
        "ci_high": s.ci_high,
        "interval": s.method,
        "n_clusters": s.n_clusters,
        "flag": flag,
    }


def _pathway_records(tp: pd.DataFrame) -> dict:
    """Person-level practice-pathway reach of treatment-team participants ``tp`` (one row per person)."""
    units = pd.DataFrame(
        {"la": tp["la"], "one": (tp["dose"] >= 1).astype(float), "both": (tp["dose"] >= 2).astype(float), "n": 1.0}
    )
    rec: dict = {"staff": len(tp)}
    for _, dose, _ in PATHWAY_MEASURES:
        s = share(units, k=dose, n="n")
        rec.update(
            {
                dose: int(s.k),
                f"{dose}_pct": s.pct,
                f"{dose}_se": s.se,
                f"{dose}_ci_low": s.ci_low,
                f"{dose}_ci_high": s.ci_high,
            }
        )
        rec["interval"], rec["n_clusters"] = s.method, s.n_clusters
    return rec


def pathway_by_la(data: TrialData) -> pd.DataFrame:
    """Person-level practice-pathway reach of each LA, one row per LA.

    Columns: ``la``, ``staff`` (treatment-team participants), and for ``one``
    (at least one session) and ``both``: the count, ``_pct``, ``_se``,
    ``_ci_low``, ``_ci_high``; then ``interval`` and ``n_clusters``.
    """
    tp = treatment_participants(data)
    return pd.DataFrame([{"la": la, **_pathway_records(tp[tp["la"] == la])} for la in data.las])


def _tag(data: TrialData, la: str) -> list[str]:
    """The LAs a row counts: its own LA, or every LA of the scope for an ``all`` row."""
    return list(data.las) if la in ("all", None) else [la]


def _key_reach(frame: pd.DataFrame, data: TrialData) -> pd.DataFrame:
    """Ledger keys of a reach frame's attendees (rows by component, per LA or for the scope)."""
    las = frame["la"] if "la" in frame else ["all"] * len(frame)
    frame["_key_attendees"] = [
        K.key(_tag(data, la), "places", "filled") if c == PLACES_FILLED else K.attendees(_tag(data, la), c)
        for la, c in zip(las, frame["component"])
    ]
    return frame


def _key_pathway(frame: pd.DataFrame, data: TrialData) -> pd.DataFrame:
    """Ledger keys of the person-level practice-pathway frame: staff, at least one session, both."""
    frame["_key_staff"] = [K.staff(_tag(data, la), "treatment") for la in frame["la"]]
    frame["_key_one"] = [K.reached(_tag(data, la)) for la in frame["la"]]
    frame["_key_both"] = [K.dose(_tag(data, la), "both") for la in frame["la"]]
    return frame


def reach(data: TrialData) -> ProcessResult:
    """Reach per component, places filled, and person-level practice-pathway reach.

    ``frame`` (``table()``): the five components, then places filled (row
    ``places_filled``: the sum of the rows above, so it is the table's total).
    ``frames["by_la"]``: the components per LA (``table("by_la")``).
    ``frames["practice_pathway"]`` (``table("practice_pathway")``):
    treatment-team participants who attended at least one and both
    practice-pathway sessions, per LA when pooled, then the scope (``all``).
    Values over 100% are flagged, never capped; within one LA they have no
    interval.
    """
    att = attendees(data)
    recs = _reach_records(att, data.ipe_targets)
    rows = []
    for r in recs:
        if r["component"] == PLACES_FILLED:
            continue
        rows += [
            est_row(
                "reach",
                r["component"],
                "reach_pct",
                r["reach_pct"],
                se=r["se"],
                ci_low=r["ci_low"],
                ci_high=r["ci_high"],
                n=r["intended_n"],
                n_clusters=r["n_clusters"],
                note=_join(r["flag"], interval_note(r["interval"])),
            ),
            est_row("reach", r["component"], "attendees", r["attendees"]),
            est_row("reach", r["component"], "intended_n", r["intended_n"]),
        ]
    tp = treatment_participants(data)
    scope_pw = {"la": "all", **_pathway_records(tp)}
    for outcome, dose, what in PATHWAY_MEASURES:
        n = scope_pw["staff"]
        note = (
            f"person level: treatment-team participants who {what}, over all treatment-team participants"
            if n
            else "no treatment-team participants"
        )
        rows += [
            est_row(
                "reach",
                outcome,
                "reach_pct",
                scope_pw[f"{dose}_pct"],
                se=scope_pw[f"{dose}_se"],
                ci_low=scope_pw[f"{dose}_ci_low"],
                ci_high=scope_pw[f"{dose}_ci_high"],
                n=n,
                n_clusters=scope_pw["n_clusters"],
                note=_join(note, interval_note(scope_pw["interval"])),
            ),
            est_row("reach", outcome, "attendees", scope_pw[dose]),
            est_row("reach", outcome, "treatment_participants", n),
        ]
    places = recs[-1]
    rows += [
        est_row(
            "reach",
            "all",
            "places_filled_pct",
            places["reach_pct"],
            se=places["se"],
            ci_low=places["ci_low"],
            ci_high=places["ci_high"],
            n=places["intended_n"],
            n_clusters=places["n_clusters"],
            note=_join(
                "places filled: attendees summed over components over intended audiences summed; "
                "a person counts once per component attended, so this is not a share of people",
                places["flag"],
                interval_note(places["interval"]),
            ),
        ),
        est_row("reach", "all", "places_filled", places["attendees"]),
        est_row("reach", "all", "places_intended", places["intended_n"]),
    ]
    by_la = []
    for la in data.las:
        for r in _reach_records(att[att["la"] == la], data.ipe_targets[data.ipe_targets["la"] == la]):
            if r["component"] != PLACES_FILLED:
                by_la.append({"la": la, **r})
    pathway = pd.DataFrame([*(pathway_by_la(data).to_dict("records") if len(data.las) > 1 else []), scope_pw])
    notes = list(REACH_NOTES)
    if any(r["reach_pct"] > 100 or r["ci_high"] > 100 for r in recs):
        notes.append(
            "Reach can exceed 100% (more attendees than the intended audience), so it is never capped and "
            "its pooled interval is not clipped at 100%."
        )
    frame = pd.DataFrame(recs)
    # the estimates.csv quantity each cell shows: places filled has rows of its own names (outcome "all")
    whole = frame["component"] == PLACES_FILLED
    for col, mine, theirs in (
        ("_q_attendees", "attendees", "places_filled"),
        ("_q_intended", "intended_n", "places_intended"),
        ("_q_reach", "reach_pct", "places_filled_pct"),
    ):
        frame[col] = np.where(whole, theirs, mine)
    return ProcessResult(
        "reach",
        _key_reach(frame, data),
        rows,
        REACH_COLUMNS,
        "Reach of each component, and places filled",
        notes=notes,
        frames={"by_la": _key_reach(pd.DataFrame(by_la), data), "practice_pathway": _key_pathway(pathway, data)},
        quantities={
            "attendees": ("{_q_attendees}", "estimate"),
            "intended_n": ("{_q_intended}", "estimate"),
            "reach_pct": ("{_q_reach}", "estimate"),
            "ci_low": ("{_q_reach}", "ci_low"),
            "ci_high": ("{_q_reach}", "ci_high"),
        },
        outcomes={PLACES_FILLED: "all"},
        layouts={
            "practice_pathway": Layout(
                PATHWAY_COLUMNS,
                "Practice-pathway reach among intervention-team staff (people, each counted once)",
                (
                    "Share of intervention-team staff (participants of treatment teams) who attended at least "
                    "one, and both, of the two practice-pathway sessions.",
                ),
            )
        },
    )


def experience_band(years: pd.Series) -> pd.Series:
    """Label years qualified with :data:`EXPERIENCE_BANDS` (blank: ``not given``)."""
    y = pd.to_numeric(years, errors="coerce").astype(float)
    out = pd.Series(NOT_GIVEN, index=years.index, dtype=object)
    for label, lo, hi in EXPERIENCE_BANDS:
        out[(y >= lo) & (y < hi)] = label
    return out


def reached_profile(data: TrialData) -> ProcessResult:
    """Who was reached among treatment-team participants, by role, age band and experience.

    Reached means at least one practice-pathway session attended. Each row of
    the table is one group: reached, not reached, total and the reached share.
    """
    tp = treatment_participants(data)
    tp["role_"] = tp["role"].astype(object)
    tp["age_band_"] = tp["age_band"].astype(object).where(tp["age_band"].notna(), NOT_GIVEN)
    tp["experience_"] = experience_band(tp["years_qualified"])
    groups_of = [("all", "all", tp)]
    for char, col, order in (
        ("role", "role_", None),
        ("age_band", "age_band_", None),
        ("experience", "experience_", [b[0] for b in EXPERIENCE_BANDS] + [NOT_GIVEN]),
    ):
        groups = order or sorted(tp[col].unique(), key=lambda g: (g == NOT_GIVEN, g))
        groups_of += [(char, g, tp[tp[col] == g]) for g in groups if (tp[col] == g).any()]
    recs, rows = [], []
    for char, g, sub in groups_of:
        s = share(pd.DataFrame({"la": sub["la"], "k": sub["reached"].astype(float), "n": 1.0}))
        recs.append({"characteristic": char, "group": g, "reached": int(s.k), "not_reached": int(s.n - s.k)})
        outcome = "all" if char == "all" else f"{char}:{g}"
        rows += [
            est_row(
                "reach_profile",
                outcome,
                "reached_pct",
                s.pct,
                se=s.se,
                ci_low=s.ci_low,
                ci_high=s.ci_high,
                n=s.n,
                n_clusters=s.n_clusters,
                note="; ".join(
                    p for p in ("treatment-team participants with at least one practice-pathway session", s.note) if p
                ),
            ),
            est_row("reach_profile", outcome, "reached", s.k),
            est_row("reach_profile", outcome, "not_reached", s.n - s.k),
        ]
    t = pd.DataFrame(recs, columns=["characteristic", "group", "reached", "not_reached"])
    t["total"] = t["reached"] + t["not_reached"]
    t["reached_pct"] = np.where(t["total"] > 0, 100 * t["reached"] / t["total"].where(t["total"] > 0), np.nan)
    las = list(data.las)
    whole = t["characteristic"] == "all"
    t["_key_total"] = [
        K.staff(las, "treatment") if w else K.key(las, "staff", arm="treatment", group=f"{c}:{g}")
        for w, c, g in zip(whole, t["characteristic"], t["group"])
    ]
    t["_key_reached"] = [K.reached(las) if w else f"{k}|reached=yes" for w, k in zip(whole, t["_key_total"])]
    t["_key_not_reached"] = [K.dose(las, "none") if w else f"{k}|reached=no" for w, k in zip(whole, t["_key_total"])]
    return ProcessResult(
        "reach_profile",
        t,
        rows,
        [
            Col("characteristic", "Characteristic", "text"),
            Col("group", "Group", "text"),
            Col("reached", "Reached", "people"),
            Col("not_reached", "Not reached", "people"),
            Col("total", "Intervention-team staff", "people"),
            Col("reached_pct", "Reached (%)", "pct", 1, base="total"),
        ],
        "Who was reached among intervention-team staff",
        sums={"total": ("reached", "not_reached")},
        relations={
            None: [
                (t.loc[i, "_key_total"], (t.loc[i, "_key_reached"], t.loc[i, "_key_not_reached"]), "breakdown")
                for i in range(len(t))
            ]
            # each characteristic's groups add up to every intervention-team member
            + [
                (t.loc[whole, col].iloc[0], tuple(t.loc[t["characteristic"] == c, col]), "sum")
                for c in t.loc[~whole, "characteristic"].unique()
                for col in ("_key_total", "_key_reached", "_key_not_reached")
            ]
        },
    )


def dose(data: TrialData) -> ProcessResult:
    """Practice-pathway sessions attended per treatment-team participant: none, one, both.

    The table has one row per LA and one for the scope (``all``), with counts
    and shares of each dose group.
    """
    tp = treatment_participants(data)
    recs = []
    for la in [*data.las, "all"]:
        sub = tp if la == "all" else tp[tp["la"] == la]
        rec: dict[str, Any] = {"la": la, "participants": len(sub)}
        for code, label in DOSE_LABELS.items():
            rec[label] = int((sub["dose"] == code).sum())
        for label in DOSE_LABELS.values():
            rec[f"{label}_pct"] = 100 * rec[label] / len(sub) if len(sub) else np.nan
        recs.append(rec)
    t = pd.DataFrame(recs)
    if len(data.las) == 1:
        t = t[t["la"] == "all"].reset_index(drop=True)
    scope_row = t[t["la"] == "all"].iloc[0]
    n = int(scope_row["participants"])
    note = "" if n else "no treatment-team participants"
    rows = []
    for label in DOSE_LABELS.values():
        rows += [
            est_row("dose", label, "participants", scope_row[label], n=n, note=note),
            est_row("dose", label, "share_pct", scope_row[f"{label}_pct"], n=n, note=note),
        ]
    t["_key_participants"] = [K.staff(_tag(data, la), "treatment") for la in t["la"]]
    for d in DOSE_LABELS.values():
        t[f"_key_{d}"] = [K.dose(_tag(data, la), d) for la in t["la"]]
    relations = []
    for la in t["la"]:
        tag = _tag(data, la)
        relations.append((K.staff(tag, "treatment"), tuple(K.dose(tag, d) for d in DOSE_LABELS.values()), "breakdown"))
        relations.append((K.reached(tag), (K.dose(tag, "one"), K.dose(tag, "both")), "sum"))
    return ProcessResult(
        "dose",
        t,
        rows,
        [
            Col("la", "LA", "text"),
            Col("participants", "Intervention-team staff", "people"),
            *[Col(d, f"{d.capitalize()} (staff)", "people") for d in DOSE_LABELS.values()],
            *[Col(f"{d}_pct", f"{d.capitalize()} (%)", "pct", 1, base="participants") for d in DOSE_LABELS.values()],
        ],
        "Practice-pathway sessions attended",
        sums={"participants": tuple(DOSE_LABELS.values())},
        # each row's cells: the scope's dose rows, or (pooled) each LA's own
        shows={
            col: [(*(() if la == "all" else (str(la),)), "process", "dose", d, q, fld) for la in t["la"]]
            for d in DOSE_LABELS.values()
            for col, q, fld in ((d, "participants", "estimate"), (f"{d}_pct", "share_pct", "estimate"))
        }
        | {
            "participants": [
                (*(() if la == "all" else (str(la),)), "process", "dose", "none", "participants", "n") for la in t["la"]
            ]
        },
        relations={None: relations},
    )
