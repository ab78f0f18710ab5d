"""Implementation and process strand: reach, dose, satisfaction and fidelity.

Definitions follow the data contract: pooled (``trial``) and ``all``
figures are ratios of sums, never means of ratios. The choices the contract
leaves open are made here, once, and documented in the book's methods page:

- **Pathway reach** (outcomes ``practice_pathway``, ``system_pathway``):
  the sum over the pathway's components of their distinct attendees over the
  sum of their ``intended_n`` (places filled over places intended, so a person
  attending both practice-pathway sessions fills two places). Components with
  no ``intended_n`` are left out of both sums.
- **Reached** (who was reached, dose, cost denominator): a participant of a
  treatment team who attended at least one practice-pathway session. Staff
  outside the participants table count in component reach but not here.
- **Dose**: the number of distinct practice-pathway sessions (0, 1, 2) a
  treatment-team participant attended.
- **Feedback response rate** (:func:`response_rate`): attendees (distinct
  person and component, attended true) who returned feedback on that
  component, over all such attendees. Feedback from people with no attended
  session of the component is counted apart, never in the rate.
- **Satisfaction CIs**: Wilson 95% within one LA; in a pooled scope with
  feedback from two or more LAs, a cluster-robust interval with the LA as
  the cluster (:func:`cluster_ci`), because LAs differ in delivery and
  feedback rows of one LA are not independent.
- **Fidelity threshold**: a session delivering under
  :data:`FIDELITY_THRESHOLD_PCT` percent of its planned elements is listed
  (by session ID only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from .contract import COMPONENTS, PRACTICE_PATHWAY, SYSTEM_PATHWAY
from .estimates import est_row
from .loading import TrialData

#: Pathways and their components (outcome names of the pathway reach rows).
PATHWAYS: dict[str, tuple[str, ...]] = {
    "practice_pathway": PRACTICE_PATHWAY,
    "system_pathway": SYSTEM_PATHWAY,
}
#: Sessions delivering fewer than this share of planned elements are listed.
FIDELITY_THRESHOLD_PCT = 80.0
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


@dataclass
class ProcessResult:
    """One process analysis: a display table, its estimates rows and extra frames.

    ``table`` is the scope-level table whose rows the estimates come from;
    ``frames`` holds further tables (per LA, distributions, lists).
    """

    analysis: str
    table: pd.DataFrame
    rows: list[dict]
    notes: list[str] = field(default_factory=list)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------
def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson 95% interval for k successes of n, in percent (NaN if n == 0).

    Values of k above n (reach over 100%) have no binomial interval: NaN.
    """
    if n <= 0 or k > n:
        return (np.nan, np.nan)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return (100 * lo, 100 * hi)


def cluster_ci(k: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """Cluster-robust 95% interval for a pooled proportion, in percent.

    The pooled proportion is the ratio of sums p = sum(k) / sum(n). Its
    variance is the sandwich (linearisation) variance of a ratio estimator
    with clusters as the sampling units and the small-sample factor
    G / (G - 1): ``var = G / (G - 1) * sum((k_j - p n_j)^2) / (sum n)^2``.
    The interval is p +/- t(0.975, G - 1) * se, clipped to [0, 100].

    Parameters
    ----------
    k, n : arrays
        Successes and trials per cluster (clusters with n = 0 are dropped).

    Returns
    -------
    (se, ci_low, ci_high) in percent; NaN with fewer than two clusters.
    """
    k, n = np.asarray(k, float), np.asarray(n, float)
    keep = n > 0
    k, n = k[keep], n[keep]
    g = len(n)
    if g < 2:
        return (np.nan, np.nan, np.nan)
    p = k.sum() / n.sum()
    var = g / (g - 1) * np.sum((k - p * n) ** 2) / n.sum() ** 2
    se = float(np.sqrt(var))
    t = stats.t.ppf(0.975, g - 1)
    return (100 * se, max(0.0, 100 * (p - t * se)), min(100.0, 100 * (p + t * se)))


# --------------------------------------------------------------------------
# Reach
# --------------------------------------------------------------------------
def attendees(data: TrialData) -> pd.DataFrame:
    """Distinct (LA, person, component) with at least one attended session."""
    att = data.attendance
    att = att[att["attended"].fillna(False).astype(bool)]
    return att[["la", "person_id", "component"]].drop_duplicates()


def _reach_records(att: pd.DataFrame, targets: pd.DataFrame) -> list[dict]:
    """Reach of each component and pathway for one set of attendees and targets."""
    k_by = att.groupby("component").size()
    n_by = targets.groupby("component")["intended_n"].sum()
    recs = []
    for comp in (*COMPONENTS, *PATHWAYS):
        comps = PATHWAYS.get(comp, (comp,))
        with_target = [c for c in comps if int(n_by.get(c, 0)) > 0]
        k = int(sum(int(k_by.get(c, 0)) for c in with_target))
        n = int(sum(int(n_by.get(c, 0)) for c in with_target))
        pct = 100 * k / n if n else np.nan
        lo, hi = wilson(k, n)
        flag = ""
        if not n:
            flag = "no intended audience given"
        elif pct > 100:
            flag = "over 100%: more attendees than the intended audience"
        elif len(with_target) < len(comps):
            flag = "some components have no intended audience and are left out"
        recs.append({"component": comp, "attendees": k, "intended_n": n, "reach_pct": pct,
                     "ci_low": lo, "ci_high": hi, "flag": flag})
    return recs


def reach(data: TrialData) -> ProcessResult:
    """Reach per component and pathway: distinct attendees over the intended audience.

    Returns the scope's table (five components, then the two pathways) and,
    in ``frames["by_la"]``, the same per LA. Values over 100% are flagged in
    ``flag`` and the note, never capped; they have no Wilson interval.
    """
    att = attendees(data)
    recs = _reach_records(att, data.ipe_targets)
    rows = []
    for r in recs:
        rows += [
            est_row("reach", r["component"], "reach_pct", r["reach_pct"], ci_low=r["ci_low"],
                    ci_high=r["ci_high"], n=r["intended_n"], note=r["flag"]),
            est_row("reach", r["component"], "attendees", r["attendees"]),
            est_row("reach", r["component"], "intended_n", r["intended_n"]),
        ]
    by_la = []
    for la in data.las:
        for r in _reach_records(att[att["la"] == la], data.ipe_targets[data.ipe_targets["la"] == la]):
            by_la.append({"la": la, **r})
    return ProcessResult("reach", pd.DataFrame(recs), rows, frames={"by_la": pd.DataFrame(by_la)})


def treatment_participants(data: TrialData) -> pd.DataFrame:
    """Participants of treatment teams with their dose (practice-pathway sessions attended)."""
    parts = data.participants.merge(data.teams[["team_id", "arm"]], on="team_id")
    parts = parts[parts["arm"] == "treatment"].copy()
    att = attendees(data)
    att = att[att["component"].isin(PRACTICE_PATHWAY)]
    sessions = att.groupby("person_id")["component"].nunique()
    parts["dose"] = parts["participant_id"].map(sessions).fillna(0).astype(int)
    parts["reached"] = parts["dose"] > 0
    return parts.reset_index(drop=True)


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
    recs = [{"characteristic": "all", "group": "all", "reached": int(tp["reached"].sum()),
             "not_reached": int((~tp["reached"]).sum())}]
    for char, col, order in (
        ("role", "role_", None),
        ("age_band", "age_band_", None),
        ("experience", "experience_", [b[0] for b in EXPERIENCE_BANDS] + [NOT_GIVEN]),
    ):
        groups = order or sorted(tp[col].unique(), key=lambda g: (g == NOT_GIVEN, g))
        for g in groups:
            sub = tp[tp[col] == g]
            if len(sub) == 0:
                continue
            recs.append({"characteristic": char, "group": g, "reached": int(sub["reached"].sum()),
                         "not_reached": int((~sub["reached"]).sum())})
    t = pd.DataFrame(recs, columns=["characteristic", "group", "reached", "not_reached"])
    t["total"] = t["reached"] + t["not_reached"]
    t["reached_pct"] = np.where(t["total"] > 0, 100 * t["reached"] / t["total"].where(t["total"] > 0), np.nan)
    rows = []
    for r in t.itertuples(index=False):
        outcome = "all" if r.characteristic == "all" else f"{r.characteristic}:{r.group}"
        lo, hi = wilson(r.reached, r.total)
        rows += [
            est_row("reach_profile", outcome, "reached_pct", r.reached_pct, ci_low=lo, ci_high=hi, n=r.total,
                    note="treatment-team participants with at least one practice-pathway session"),
            est_row("reach_profile", outcome, "reached", r.reached),
            est_row("reach_profile", outcome, "not_reached", r.not_reached),
        ]
    return ProcessResult("reach_profile", t, rows)


def dose(data: TrialData) -> ProcessResult:
    """Practice-pathway sessions attended per treatment-team participant: none, one, both.

    The table has one row per LA and one for the scope (``all``), with counts
    and shares of each dose group.
    """
    tp = treatment_participants(data)
    recs = []
    for la in [*data.las, "all"]:
        sub = tp if la == "all" else tp[tp["la"] == la]
        rec = {"la": la, "participants": len(sub)}
        for d, label in DOSE_LABELS.items():
            rec[label] = int((sub["dose"] == d).sum())
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
    return ProcessResult("dose", t, rows)


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
    return {"n": n, "k": k, "pct": pct, "se": se, "ci_low": lo, "ci_high": hi, "ci_method": method,
            "n_clusters": int(ans["la"].nunique())}


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
            est_row("satisfaction", comp, "satisfied_pct", s["pct"], se=s["se"], ci_low=s["ci_low"],
                    ci_high=s["ci_high"], n=s["n"], n_clusters=s["n_clusters"] if n_las > 1 else None,
                    note=note),
            est_row("satisfaction", comp, "respondents", s["n"]),
        ]
        recs.append({"component": comp, "respondents": s["n"], "satisfied": s["k"], "satisfied_pct": s["pct"],
                     "ci_low": s["ci_low"], "ci_high": s["ci_high"], "ci_method": s["ci_method"]})
        counts = sub["satisfaction"].dropna().astype(int).value_counts()
        dist.append({"component": comp, **{str(v): int(counts.get(v, 0)) for v in range(1, 6)},
                     "respondents": s["n"]})
    return ProcessResult("satisfaction", pd.DataFrame(recs), rows, frames={"distribution": pd.DataFrame(dist)})


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
            est_row("usefulness", comp, "useful_pct", u["pct"], se=u["se"], ci_low=u["ci_low"],
                    ci_high=u["ci_high"], n=u["n"], note=none or ("" if u["n"] else "no usefulness answers")),
            est_row("usefulness", comp, "mean_usefulness", mean_u, n=u["n"]),
            est_row("would_recommend", comp, "recommend_pct", w["pct"], se=w["se"], ci_low=w["ci_low"],
                    ci_high=w["ci_high"], n=w["n"], note=none or ("" if w["n"] else "no would-recommend answers")),
        ]
        recs.append({"component": comp, "usefulness_answers": u["n"], "useful_pct": u["pct"],
                     "mean_usefulness": mean_u, "recommend_answers": w["n"], "recommend_pct": w["pct"]})
    return ProcessResult("usefulness", pd.DataFrame(recs), rows)


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
        recs.append({"component": comp, "attendees": n, "respondents": k, "response_rate_pct": pct,
                     "feedback_without_attendance": outside})
    t = pd.DataFrame(recs)
    outside = int(t.loc[t["component"] == "all", "feedback_without_attendance"].iloc[0])
    note = (f"{outside} feedback row(s) came from people with no attended session of that component; "
            "they are left out of the rate." if outside else "")
    return ProcessResult("feedback_response", t, rows, notes=[note] if note else [])


def has_themes(data: TrialData) -> bool:
    """True when the feedback carries coded themes (a ``theme`` column with values)."""
    fb = data.feedback
    return "theme" in fb.columns and bool(fb["theme"].notna().any())


def themes(data: TrialData) -> ProcessResult:
    """Counts of coded comment themes by component (never the free text).

    Empty when the feedback has no ``theme`` values.
    """
    if not has_themes(data):
        return ProcessResult("themes", pd.DataFrame(columns=["theme", "component", "count"]), [],
                             notes=["no coded themes in the feedback"])
    fb = data.feedback[data.feedback["theme"].notna()]
    t = fb.groupby(["theme", "component"]).size().rename("count").reset_index()
    tot = fb.groupby("theme").size().rename("count").reset_index().assign(component="all")
    t = pd.concat([t, tot], ignore_index=True).sort_values(["theme", "component"], kind="stable")
    rows = [est_row("themes", f"{r.theme}:{r.component}", "mentions", r.count) for r in t.itertuples(index=False)]
    return ProcessResult("themes", t.reset_index(drop=True), rows)


# --------------------------------------------------------------------------
# Fidelity
# --------------------------------------------------------------------------
def fidelity(data: TrialData) -> ProcessResult:
    """Delivered over planned elements summed over sessions, by component and ``all``.

    Also: mean quality rating (1..5, blank ratings left out), the number of
    sessions below :data:`FIDELITY_THRESHOLD_PCT`, and in ``frames``:
    ``by_la`` (LA x component delivered %), ``sessions`` (each session's
    delivered %) and ``below`` (the sessions under the threshold, by ID).
    """
    fid = data.fidelity.copy()
    fid["delivered_pct"] = 100 * fid["delivered_elements"].astype(float) / fid["planned_elements"].astype(float)
    fid["below"] = fid["delivered_pct"] < FIDELITY_THRESHOLD_PCT
    rows, recs = [], []
    for comp in (*COMPONENTS, "all"):
        sub = fid if comp == "all" else fid[fid["component"] == comp]
        planned = float(sub["planned_elements"].sum())
        delivered = float(sub["delivered_elements"].sum())
        pct = 100 * delivered / planned if planned else np.nan
        q = sub["quality"].dropna().astype(float)
        below = int(sub["below"].sum())
        note = "" if planned else ("no fidelity log returned" if fid.empty else "no sessions logged")
        rows += [
            est_row("fidelity", comp, "delivered_pct", pct, n=len(sub), note=note),
            est_row("fidelity", comp, "sessions", np.nan if fid.empty else len(sub), note=note),
            est_row("fidelity", comp, "quality_mean", q.mean() if len(q) else np.nan, n=len(q),
                    note=note or ("" if len(q) else "no quality ratings")),
            est_row("fidelity", comp, "sessions_below_threshold", below if planned else np.nan, n=len(sub),
                    note=note or f"delivered under {FIDELITY_THRESHOLD_PCT:g}% of planned elements"),
        ]
        recs.append({"component": comp, "sessions": len(sub), "planned": planned, "delivered": delivered,
                     "delivered_pct": pct, "quality_mean": q.mean() if len(q) else np.nan,
                     "quality_rated": len(q), "below_threshold": below})
    by_la = []
    for la in data.las:
        for comp in (*COMPONENTS, "all"):
            sub = fid[fid["la"] == la]
            sub = sub if comp == "all" else sub[sub["component"] == comp]
            planned = float(sub["planned_elements"].sum())
            by_la.append({"la": la, "component": comp, "sessions": len(sub),
                          "delivered_pct": 100 * float(sub["delivered_elements"].sum()) / planned
                          if planned else np.nan})
    below_tab = fid.loc[fid["below"], ["la", "session_id", "component", "delivered_pct"]]
    frames = {
        "by_la": pd.DataFrame(by_la, columns=["la", "component", "sessions", "delivered_pct"]),
        "sessions": fid[["la", "session_id", "component", "planned_elements", "delivered_elements",
                         "delivered_pct", "quality"]].reset_index(drop=True),
        "below": below_tab.sort_values(["la", "session_id"]).reset_index(drop=True),
    }
    return ProcessResult("fidelity", pd.DataFrame(recs), rows, frames=frames)
