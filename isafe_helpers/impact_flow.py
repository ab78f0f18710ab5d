"""Impact strand: trial flow (CONSORT) and baseline equivalence.

- :func:`trial_flow`: teams and staff randomised, allocated, followed up and
  analysed, by arm, from the data; drawn by
  :func:`isafe_helpers.figures.impact.consort`.
- :func:`baseline_equivalence`: standardised differences of the analysed arms
  at baseline (WWC), for every outcome and covariate, flagged at 0.05 and 0.25.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .contract import AGE_BANDS, CASEFILE_OUTCOME
from .estimates import est_row
from .impact import analysis_frame
from .loading import TrialData

ARMS = ("treatment", "control")


@dataclass
class TrialFlow:
    """Counts of the CONSORT diagram. ``table``: one row per stage, columns
    ``stage``, ``arm`` and ``teams``, ``staff``."""

    table: pd.DataFrame
    n_las: int
    outcome: str

    def count(self, stage: str, arm: str, unit: str) -> int:
        t = self.table
        return int(t.loc[(t["stage"] == stage) & (t["arm"] == arm), unit].iloc[0])

    def staff_labels(self) -> dict[tuple[str, str], str]:
        """Staff counts for the diagram's labels under disclosure control.

        Keys ``(stage, arm)`` plus ``("allocated", "all")``. Counts under the
        threshold are ``c`` and, since allocated = followed up + lost and
        followed up = analysed + not analysed, further counts are suppressed wherever those sums would give a
        suppressed one back (:func:`isafe_helpers.disclosure.suppress`).
        """
        from . import disclosure

        wide = self.table.pivot(index="arm", columns="stage", values="staff").reindex(ARMS)[list(STAGES)]
        wide = wide.reset_index()
        sup = disclosure.suppress(wide, list(STAGES), sums={
            "allocated": ("followed_up", "lost_to_follow_up"),
            "followed_up": ("analysed", "excluded_from_analysis")})
        out = {}
        for i, arm in enumerate(wide["arm"]):
            for st in STAGES:
                out[(st, arm)] = disclosure.SUPPRESSED if sup.mask.loc[i, st] else f"{int(wide.loc[i, st]):,}"
        total = int(wide["allocated"].sum())
        hidden = any(out[("allocated", a)] == disclosure.SUPPRESSED for a in ARMS)
        out[("allocated", "all")] = disclosure.safe_count(total) if not hidden else disclosure.SUPPRESSED
        return out

    def rows(self) -> list[dict]:
        return [est_row("trial_flow", f"{r.stage}_{r.arm}", unit, getattr(r, unit), note="count")
                for r in self.table.itertuples() for unit in ("teams", "staff")]


STAGES = ("allocated", "followed_up", "lost_to_follow_up", "analysed", "excluded_from_analysis")


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
            dict(stage="lost_to_follow_up", arm=arm,
                 teams=int((teams["arm"] == arm).sum()) - fu["team_id"].nunique(), staff=len(p) - len(fu)),
            dict(stage="analysed", arm=arm, teams=a["team_id"].nunique(), staff=len(a)),
            dict(stage="excluded_from_analysis", arm=arm,
                 teams=fu["team_id"].nunique() - a["team_id"].nunique(), staff=len(fu) - len(a)),
        ]
    return TrialFlow(pd.DataFrame(recs), len(data.las), outcome)


# ---------------------------------------------------------------------------
# baseline equivalence
# ---------------------------------------------------------------------------

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
class BaselineEquivalence:
    """Standardised baseline differences; ``table`` one row per variable and sample."""

    table: pd.DataFrame

    def rows(self) -> list[dict]:
        return [est_row("baseline_equivalence", f"{r.sample}:{r.variable}", "standardised_difference",
                        r.difference, n=r.n, note=r.verdict) for r in self.table.itertuples()]


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
            recs.append(dict(sample=scale, variable=var, kind=kind, n=int(m.sum()), difference=d,
                             verdict=verdict(d, adjusted)))

        add(f"{scale}_baseline", df["baseline"].to_numpy(float), "continuous", True)
        yq = df["years_qualified"].astype(float).to_numpy()
        add("years_qualified", yq, "continuous", False, mask=np.isfinite(yq))
        ab = df["age_band"].astype(object).fillna("").to_numpy()
        known = ab != ""
        for band in AGE_BANDS:
            add(f"age_{band}", (ab == band).astype(float), "binary", False, mask=known)
    cf = casefile_baseline(data)
    if len(cf):
        t, c = (cf["arm"] == "treatment").to_numpy(), (cf["arm"] == "control").to_numpy()
        d = _hedges(cf["base"].to_numpy()[t], cf["base"].to_numpy()[c])
        recs.append(dict(sample=CASEFILE_OUTCOME, variable=f"{CASEFILE_OUTCOME}_baseline", kind="continuous",
                         n=len(cf), difference=d, verdict=verdict(d, True)))
    return BaselineEquivalence(pd.DataFrame(recs))


def casefile_baseline(data: TrialData) -> pd.DataFrame:
    """Participants audited at both waves with their baseline proportion recorded (``base``) and arm."""
    au = data.casefile_audit
    wide = au.pivot_table(index="participant_id", columns="wave",
                          values=["cases_audited", "father_contact_recorded"], aggfunc="first")
    waves = set(wide.columns.get_level_values(1))
    if not {"baseline", "followup"} <= waves:
        return pd.DataFrame(columns=["participant_id", "base", "arm"])
    d = pd.DataFrame({
        "base": wide[("father_contact_recorded", "baseline")] / wide[("cases_audited", "baseline")],
        "fu": wide[("cases_audited", "followup")],
    }).replace([np.inf, -np.inf], np.nan).dropna()
    d = d[d["fu"] > 0]
    d = d.merge(data.participants[["participant_id", "team_id"]], left_index=True, right_on="participant_id")
    return d.merge(data.teams[["team_id", "arm"]], on="team_id")[["participant_id", "base", "arm"]]
