"""Impact strand: trial flow (CONSORT), attrition and baseline equivalence.

- :func:`trial_flow`: teams and staff randomised, allocated, followed up and
  analysed, by arm, from the data (drawn by
  :func:`isafe_helpers.publish.figures.impact.consort`).
- :func:`attrition`: overall and differential attrition of teams and staff,
  judged against the What Works Clearinghouse boundary.
- :func:`baseline_equivalence`: standardised differences of the analysed arms
  at baseline (WWC), for every outcome and covariate, flagged at 0.05 and 0.25.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import AGE_BANDS, CASEFILE_OUTCOME
from isafe_helpers.data.frames import analysis_frame, casefile_frame, with_arm
from isafe_helpers.data.loading import TrialData
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table

#: Points of the What Works Clearinghouse cautious attrition boundary (methods.md):
#: overall attrition (%) -> largest differential attrition (percentage points)
#: still "low". Between the points the boundary is interpolated linearly; the
#: WWC handbook tabulates every whole percent, and that full table is not
#: reproduced here: this is the documented approximation. From 50% the boundary falls linearly to 0 at
#: :data:`WWC_MAX_OVERALL`, at and above which attrition is high whatever the
#: differential.
WWC_CAUTIOUS_POINTS = ((0.0, 5.7), (10.0, 6.3), (20.0, 5.4), (30.0, 4.1), (40.0, 2.6), (50.0, 1.0))


WWC_MAX_OVERALL = 58.0


def wwc_boundary(overall_pct: float) -> float:
    """Largest differential attrition (pp) that is "low" at ``overall_pct`` (cautious boundary).

    Linear interpolation between :data:`WWC_CAUTIOUS_POINTS`, then down to 0 at
    58%; ``-inf`` (nothing is low) at 58% and above.

    >>> wwc_boundary(10.0), wwc_boundary(15.0), wwc_boundary(60.0)
    (6.3, 5.85, -inf)
    """
    x = float(overall_pct)
    if not 0.0 <= x <= 100.0:
        raise ValueError(f"overall attrition must be a percentage in 0-100, got {overall_pct}")
    if x >= WWC_MAX_OVERALL:
        return -np.inf
    xs = [p[0] for p in WWC_CAUTIOUS_POINTS] + [WWC_MAX_OVERALL]
    ys = [p[1] for p in WWC_CAUTIOUS_POINTS] + [0.0]
    return round(float(np.interp(x, xs, ys)), 10)


def wwc_judgement(overall_pct: float, differential_pct: float) -> str:
    """``"low"`` or ``"high"`` attrition against the WWC cautious boundary (:func:`wwc_boundary`)."""
    if not (np.isfinite(overall_pct) and np.isfinite(differential_pct)):
        return "not assessable"
    return "low" if differential_pct <= wwc_boundary(overall_pct) else "high"


@dataclass
class AttritionResult(Result):
    """Overall and differential attrition of teams and participants, judged against the WWC."""

    frame: pd.DataFrame
    estimates: list[dict] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return self.estimates

    def table(self) -> Table:
        """One row per unit (teams, staff): randomised, analysed, attrition overall and by arm, the WWC verdict."""
        t = self.frame.assign(unit=[label(u) for u in self.frame["unit"]])
        return Table(
            t,
            [
                Col("unit", "Unit", "text"),
                Col("randomised", "Randomised", "people"),
                Col("analysed", "Analysed", "people"),
                Col("overall_attrition_pct", "Overall attrition (%)", "pct", 1, base="randomised"),
                Col("treatment_attrition_pct", "Intervention attrition (%)", "pct", 1, base="randomised"),
                Col("control_attrition_pct", "Control attrition (%)", "pct", 1, base="randomised"),
                Col(
                    "differential_attrition_pct",
                    "Differential attrition (percentage points)",
                    "pct",
                    1,
                    base="randomised",
                ),
                Col("wwc_boundary_pct", "WWC cautious boundary (percentage points)", "number", 1),
                Col("wwc_attrition", "WWC attrition", "text"),
            ],
            caption="Attrition from randomisation to the analysed sample",
        )


def attrition(data: TrialData, outcome: str = "confidence") -> AttritionResult:
    """Share of randomised teams and participants not in the analysed sample.

    The analysed sample is the primary model's for ``outcome`` (both waves
    scored). Differential attrition is the absolute difference between the
    arms' attrition rates, in percentage points. Each pair is judged against
    the WWC cautious boundary (:func:`wwc_judgement`): the row
    ``wwc_cautious_boundary_pct`` holds the boundary at the observed overall
    attrition and its note the judgement.
    """
    analysed = analysis_frame(data, outcome)
    parts = with_arm(data)
    recs, rows = [], []
    for unit, rand, kept in (
        ("teams", data.teams[["team_id", "arm"]].drop_duplicates(), set(analysed["team_id"])),
        ("participants", parts[["participant_id", "arm"]], set(analysed["participant_id"])),
    ):
        key = rand.columns[0]
        lost = ~rand[key].isin(kept)
        overall = 100 * lost.mean() if len(rand) else np.nan
        by_arm = lost.groupby(rand["arm"]).mean() * 100
        diff = abs(by_arm.get("treatment", np.nan) - by_arm.get("control", np.nan))
        note = f"analysed sample of the {outcome} model"
        verdict = wwc_judgement(overall, diff)
        bound = wwc_boundary(overall) if np.isfinite(overall) else np.nan
        rows += [
            est_row("attrition", unit, "overall_attrition_pct", overall, n=len(rand), note=note),
            est_row("attrition", unit, "differential_attrition_pct", diff, n=len(rand), note=note),
            est_row(
                "attrition",
                unit,
                "wwc_cautious_boundary_pct",
                bound if np.isfinite(bound) else 0.0,
                n=len(rand),
                note=f"WWC cautious boundary: {verdict} attrition",
            ),
        ]
        recs.append(
            {
                "unit": unit,
                "randomised": len(rand),
                "analysed": int((~lost).sum()),
                "overall_attrition_pct": overall,
                "treatment_attrition_pct": by_arm.get("treatment", np.nan),
                "control_attrition_pct": by_arm.get("control", np.nan),
                "differential_attrition_pct": diff,
                "wwc_boundary_pct": bound if np.isfinite(bound) else 0.0,
                "wwc_attrition": verdict,
            }
        )
    return AttritionResult(pd.DataFrame(recs), rows)


ARMS = ("treatment", "control")


@dataclass
class TrialFlow(Result):
    """Counts of the CONSORT diagram. ``frame``: one row per stage and arm, columns
    ``stage``, ``arm``, ``teams`` and ``staff``."""

    frame: pd.DataFrame
    n_las: int
    outcome: str

    def count(self, stage: str, arm: str, unit: str) -> int:
        t = self.frame
        return int(t.loc[(t["stage"] == stage) & (t["arm"] == arm), unit].iloc[0])

    def table(self) -> Table:
        """Every stage of the flow with its teams and staff in each arm."""
        wide = self.frame.pivot(index="stage", columns="arm", values=["teams", "staff"]).reindex(list(STAGES))
        t = pd.DataFrame(
            {
                "stage": [STAGE_LABELS[s] for s in STAGES],
                **{f"{u}_{a}": wide[(u, a)].to_numpy() for a in ARMS for u in ("teams", "staff")},
            }
        )
        cols = [Col("stage", "Stage", "text")]
        for a in ARMS:
            cols += [
                Col(f"teams_{a}", f"{label(a)}: teams", "units"),
                Col(f"staff_{a}", f"{label(a)}: staff", "people"),
            ]
        return Table(t, cols, caption="Trial flow: teams and staff at each stage, by arm", sums={})

    def rows(self) -> list[dict]:
        return [
            est_row("trial_flow", f"{r.stage}_{r.arm}", unit, getattr(r, unit), note="count")
            for r in self.frame.itertuples()
            for unit in ("teams", "staff")
        ]


STAGES = ("allocated", "followed_up", "lost_to_follow_up", "analysed", "excluded_from_analysis")
STAGE_LABELS = {
    "allocated": "Randomised and allocated",
    "followed_up": "Followed up (returned the follow-up survey)",
    "lost_to_follow_up": "Lost to follow-up",
    "analysed": "Analysed",
    "excluded_from_analysis": "Followed up, not analysed (a score missing)",
}


def trial_flow(data: TrialData, outcome: str = "confidence") -> TrialFlow:
    """Teams and staff at each stage of the trial, by arm.

    Stages: ``allocated`` (randomised teams and their staff at baseline);
    ``followed_up`` (staff with a follow-up survey return; teams with at least
    one); ``lost_to_follow_up`` (staff without one); ``analysed`` (staff with
    the ``outcome`` scored at both waves, and their teams, the primary
    analysis sample); ``excluded_from_analysis`` (followed up but not analysed:
    a score missing at either wave).
    """
    teams = data.teams[["team_id", "arm"]].drop_duplicates("team_id")
    parts = data.participants[["participant_id", "team_id"]].merge(teams, on="team_id")
    fu_ids = set(data.survey.loc[data.survey["wave"] == "followup", "participant_id"])
    an = analysis_frame(data, outcome)
    an_ids = set(an["participant_id"])
    recs = []
    for arm in ARMS:
        p = parts[parts["arm"] == arm]
        fu = p[p["participant_id"].isin(fu_ids)]
        a = p[p["participant_id"].isin(an_ids)]
        recs += [
            dict(stage="allocated", arm=arm, teams=int((teams["arm"] == arm).sum()), staff=len(p)),
            dict(stage="followed_up", arm=arm, teams=fu["team_id"].nunique(), staff=len(fu)),
            dict(
                stage="lost_to_follow_up",
                arm=arm,
                teams=int((teams["arm"] == arm).sum()) - fu["team_id"].nunique(),
                staff=len(p) - len(fu),
            ),
            dict(stage="analysed", arm=arm, teams=a["team_id"].nunique(), staff=len(a)),
            dict(
                stage="excluded_from_analysis",
                arm=arm,
                teams=fu["team_id"].nunique() - a["team_id"].nunique(),
                staff=len(fu) - len(a),
            ),
        ]
    return TrialFlow(pd.DataFrame(recs), len(data.las), outcome)


#: WWC thresholds of the absolute standardised baseline difference.
EQUIVALENT_MAX = 0.05


ADJUST_MAX = 0.25


def _hedges(xt: np.ndarray, xc: np.ndarray) -> float:
    """WWC's Hedges' g: mean difference over the pooled SD, times ``1 - 3/(4N - 9)``."""
    nt, nc = len(xt), len(xc)
    if nt < 2 or nc < 2:
        return np.nan
    sp = np.sqrt(((nt - 1) * xt.var(ddof=1) + (nc - 1) * xc.var(ddof=1)) / (nt + nc - 2))
    if sp == 0:
        return 0.0 if xt.mean() == xc.mean() else np.nan
    return (1 - 3 / (4 * (nt + nc) - 9)) * (xt.mean() - xc.mean()) / sp


def _cox(xt: np.ndarray, xc: np.ndarray) -> float:
    """WWC's Cox index for a binary variable: difference in log odds over 1.65."""
    if len(xt) < 2 or len(xc) < 2:
        return np.nan
    pt, pc = xt.mean(), xc.mean()
    if pt in (0, 1) or pc in (0, 1):
        return np.nan
    nt, nc = len(xt), len(xc)
    return (1 - 3 / (4 * (nt + nc) - 9)) * (np.log(pt / (1 - pt)) - np.log(pc / (1 - pc))) / 1.65


def verdict(d: float, adjusted: bool) -> str:
    """WWC baseline equivalence of a standardised difference ``d`` (methods.md)."""
    if not np.isfinite(d):
        return "not assessable"
    a = abs(d)
    if a <= EQUIVALENT_MAX:
        return "satisfied"
    if a <= ADJUST_MAX:
        return "satisfied (adjusted in the model)" if adjusted else "needs adjustment (not adjusted)"
    return "not satisfied"


@dataclass
class BaselineEquivalence(Result):
    """Standardised baseline differences; ``frame`` one row per variable and sample."""

    frame: pd.DataFrame

    def rows(self) -> list[dict]:
        return [
            est_row(
                "baseline_equivalence",
                f"{r.sample}:{r.variable}",
                "standardised_difference",
                r.difference,
                n=r.n,
                note=r.verdict,
            )
            for r in self.frame.itertuples()
        ]

    def table(self) -> Table:
        """One row per analysed sample and variable: the standardised difference and the WWC verdict."""
        t = self.frame.assign(
            sample=[label(s) for s in self.frame["sample"]], variable=[label(v) for v in self.frame["variable"]]
        )
        return Table(
            t[["sample", "variable", "n", "difference", "verdict"]],
            [
                Col("sample", "Analysed sample", "text"),
                Col("variable", "Characteristic at baseline", "text"),
                Col("n", "Staff", "people"),
                Col("difference", "Standardised difference", "number", 3, base="n"),
                Col("verdict", "WWC baseline equivalence", "text"),
            ],
            caption="Baseline equivalence of the analysed arms",
        )


def baseline_equivalence(data: TrialData) -> BaselineEquivalence:
    """Standardised differences (treatment minus control) at baseline in each analysed sample.

    For every scale's analysed sample (the primary model's): the scale's
    baseline score (adjusted for in the model), years qualified and each age
    band (not adjusted). For the case-file sample: the baseline proportion of
    files with the father's contact details (adjusted). Continuous variables:
    WWC Hedges' g on the pooled SD; binary (an age band): the Cox index.
    Verdicts: up to 0.05 satisfied; over 0.05 to 0.25 satisfied only if
    adjusted for; over 0.25 not satisfied.
    """
    recs = []
    for scale in data.instrument.scale_names:
        df = analysis_frame(data, scale)
        t, c = df["arm"] == "treatment", df["arm"] == "control"

        def add(var, x, kind, adjusted, mask=None, scale=scale, t=t, c=c):
            m = np.ones(len(x), bool) if mask is None else mask
            xt, xc = x[t.to_numpy() & m], x[c.to_numpy() & m]
            d = _hedges(xt, xc) if kind == "continuous" else _cox(xt, xc)
            recs.append(
                dict(sample=scale, variable=var, kind=kind, n=int(m.sum()), difference=d, verdict=verdict(d, adjusted))
            )

        add(f"{scale}_baseline", df["baseline"].to_numpy(float), "continuous", True)
        yq = df["years_qualified"].astype(float).to_numpy()
        add("years_qualified", yq, "continuous", False, mask=np.isfinite(yq))
        ab = df["age_band"].astype(object).fillna("").to_numpy()
        known = ab != ""
        for band in AGE_BANDS:
            add(f"age_{band}", (ab == band).astype(float), "binary", False, mask=known)
    cf = casefile_frame(data)
    if cf is not None and len(cf):
        t, c = (cf["arm"] == "treatment").to_numpy(), (cf["arm"] == "control").to_numpy()
        d = _hedges(cf["base"].to_numpy()[t], cf["base"].to_numpy()[c])
        recs.append(
            dict(
                sample=CASEFILE_OUTCOME,
                variable=f"{CASEFILE_OUTCOME}_baseline",
                kind="continuous",
                n=len(cf),
                difference=d,
                verdict=verdict(d, True),
            )
        )
    return BaselineEquivalence(pd.DataFrame(recs))
