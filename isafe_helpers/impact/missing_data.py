"""Impact strand, missing data: who responded at follow-up, what predicts it, and an MNAR sensitivity analysis.

Three parts (analysis ``missing_data`` of ``estimates.csv``):

- **Response at follow-up by arm and LA** (outcome ``followup_survey``): of
  the randomised staff of each arm, those with a follow-up survey scored on at
  least one scale (``randomised_<arm>``, ``responded_<arm>``,
  ``response_pct_<arm>``; on the pooled page also per LA, ``..._in_<LA>``).
- **A response model** per scale (``response_odds_ratio_arm``): a logistic
  model of whether the scale was scored at follow-up, on arm, the baseline
  score and LA dummies, over randomised staff with a baseline score of the
  scale (the baseline score is a covariate: staff without it are left out,
  and the note says how many). Fitted as an independence GEE (the logistic
  regression's estimate) with the Mancl-DeRouen bias-reduced sandwich by team
  and Student's t on ``teams - coefficients`` df
  (:func:`isafe_helpers.stats.gee.gee_binary`): response is correlated within
  team and the arm is a team-level variable, so the plain logistic SE would
  be too small. The odds ratio is intervention over control: above 1, staff
  of intervention teams responded more, given their baseline score and LA.
- **A delta-adjusted (MNAR) analysis** per scale
  (``delta_tipping_point``): the multiple imputation of the robustness
  checks (:func:`isafe_helpers.impact.sensitivity.multiple_imputation`, the
  same imputations: the same seed, so delta 0 reproduces the
  ``sensitivity_mi`` row exactly) with the imputed follow-up scores of the
  intervention arm moved by delta standard deviations, the primary model
  refitted and pooled (:func:`isafe_helpers.stats.imputation.mi_delta_tipping_point`).
  The SD is the effect sizes' SD (the unconditional model's total SD, the
  denominator of ``hedges_g_total``). The tipping point is the signed delta
  at which the 95% CI first includes 0: negative when the effect is positive
  (the non-responders of the intervention arm would have to score that many
  SDs lower than missing at random predicts). Blank, with a note, where the
  CI at delta 0 already includes 0, where no intervention-arm score is
  imputed, or where no delta up to ``DELTA_MAX`` SD reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from isafe_helpers.data.frames import analysis_frame, mi_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.design import NOT_ESTIMABLE, design, why_not_estimable
from isafe_helpers.impact.primary_model import PrimaryAnalysis, fit_primary
from isafe_helpers.impact.sensitivity import MIN_OBSERVED, N_CYCLES, N_IMPUTATIONS, SEED
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts
from isafe_helpers.stats.gee import gee_binary
from isafe_helpers.stats.imputation import mi_delta_tipping_point

ANALYSIS = "missing_data"
#: Outcome name of the response rows (a follow-up survey scored on at least one scale).
RESPONSE = "followup_survey"
ARMS = ("treatment", "control")


@dataclass
class ResponseModel:
    """The response model of one scale: odds ratio of responding, intervention over control."""

    outcome: str
    n: int = 0
    n_clusters: int = 0
    estimate: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    p_value: float = np.nan
    note: str = ""


@dataclass
class TippingPoint:
    """The delta-adjusted analysis of one scale."""

    outcome: str
    n: int = 0
    n_clusters: int = 0
    tipping_point: float = np.nan  # signed, SD units
    sd: float = np.nan  # the SD delta is in
    n_shifted: int = 0  # imputed intervention-arm follow-up scores moved
    estimate_at_zero: float = np.nan  # pooled MI estimate at delta 0 (missing at random)
    note: str = ""


@dataclass
class MissingData(Result):
    """Response at follow-up by arm and LA, the response model and the tipping point of each scale.

    ``response``: one row per LA (and ``all``) with ``randomised_<arm>``,
    ``responded_<arm>``, ``response_pct_<arm>``; ``models`` and ``tipping``:
    one :class:`ResponseModel` / :class:`TippingPoint` per scale.
    """

    response: pd.DataFrame
    models: list[ResponseModel] = field(default_factory=list)
    tipping: list[TippingPoint] = field(default_factory=list)

    def _suffix(self, la: str) -> str:
        return "" if la == "all" else f"_in_{la}"

    def rows(self) -> list[dict]:
        out = []
        for r in self.response.itertuples():
            sfx = self._suffix(r.la)
            for arm in ARMS:
                n = getattr(r, f"randomised_{arm}")
                for q in ("randomised", "responded", "response_pct"):
                    out.append(est_row(ANALYSIS, RESPONSE, f"{q}_{arm}{sfx}", getattr(r, f"{q}_{arm}"), n=n))
        for m in self.models:
            out.append(
                est_row(
                    ANALYSIS,
                    m.outcome,
                    "response_odds_ratio_arm",
                    m.estimate,
                    None,
                    m.ci_low,
                    m.ci_high,
                    m.p_value,
                    n=m.n,
                    n_clusters=m.n_clusters,
                    note=m.note,
                )
            )
        for t in self.tipping:
            out.append(
                est_row(
                    ANALYSIS,
                    t.outcome,
                    "delta_tipping_point",
                    t.tipping_point,
                    n=t.n,
                    n_clusters=t.n_clusters,
                    note=t.note,
                )
            )
        return out

    def table(self) -> Table:
        """Response at follow-up by LA and arm: randomised staff, staff who responded, and the share."""
        t = self.response.copy()
        rowkeys = [(ANALYSIS, RESPONSE, self._suffix(la)) for la in t["la"]]
        shows: dict = {}
        for arm in ARMS:
            for q in ("randomised", "responded", "response_pct"):
                col = f"{q}_{arm}"
                shows.update(facts("impact", [(a, o, f"{col}{s}") for a, o, s in rowkeys], **{col: "estimate"}))
        scope_las = [la for la in t["la_label"] if la != "All LAs"]
        row_las = [scope_las if la == "all" else [la] for la in t["la"]]
        # the ledger's populations: the randomised staff of an arm are the trial flow's; responders a stage of them
        keys: dict[str, list[str | None]] = {
            f"randomised_{arm}": [K.staff(las, arm) for las in row_las] for arm in ARMS
        }
        keys.update({f"responded_{arm}": [K.stage(las, "responded", arm) for las in row_las] for arm in ARMS})
        cols = [Col("la_label", "LA", "text")]
        for arm in ARMS:
            cols += [
                Col(f"randomised_{arm}", f"{label(arm)}: staff randomised", "people"),
                Col(f"responded_{arm}", f"{label(arm)}: responded", "people"),
                Col(f"response_pct_{arm}", f"{label(arm)}: response (%)", "pct", 1, base=f"randomised_{arm}"),
            ]
        return Table(
            t,
            cols,
            caption="Response at follow-up by arm and LA",
            keys=keys,
            facts=shows,
            notes=[
                "Responded: randomised staff with a follow-up survey scored on at least one scale. The response "
                "model and the analyses use each scale's own score, so their samples can be a little smaller."
            ],
        )

    def model_table(self) -> Table:
        """Per scale: the response model's odds ratio (intervention over control) and the tipping point."""
        tip = {t.outcome: t for t in self.tipping}
        recs = []
        for m in self.models:
            t = tip.get(m.outcome, TippingPoint(m.outcome))
            shown = m.note.startswith(("not estimable", "did not converge"))
            recs.append(
                dict(
                    outcome=m.outcome,
                    n=m.n,
                    estimate=np.nan if shown else m.estimate,
                    ci_low=np.nan if shown else m.ci_low,
                    ci_high=np.nan if shown else m.ci_high,
                    p_value=np.nan if shown else m.p_value,
                    tipping=t.tipping_point,
                    note="; ".join(
                        x
                        for x in (
                            ("Response model " + m.note) if shown else "",
                            ("Tipping point: " + t.note.split("; ")[0]) if not np.isfinite(t.tipping_point) else "",
                        )
                        if x
                    ),
                )
            )
        d = pd.DataFrame(recs, columns=["outcome", "n", "estimate", "ci_low", "ci_high", "p_value", "tipping", "note"])
        rows = [(ANALYSIS, o, "response_odds_ratio_arm") for o in d["outcome"]]
        shows = facts(
            "impact",
            rows,
            n="n",
            estimate="estimate",
            ci_low="ci_low",
            ci_high="ci_high",
            p_value="p_value",
            tipping=(ANALYSIS, "delta_tipping_point", "estimate"),
        )
        d["outcome"] = [label(o) for o in d["outcome"]]
        return Table(
            d,
            [
                Col("outcome", "Outcome", "text"),
                Col("n", "Staff in the response model", "people"),
                Col("estimate", "Odds ratio of responding", "number", 2, base="n"),
                Col("ci_low", "95% CI low", "number", 2, base="n"),
                Col("ci_high", "95% CI high", "number", 2, base="n"),
                Col("p_value", "p", "p", base="n"),
                Col("tipping", "Tipping point (SD)", "number", 2, base="n"),
                Col("note", "Note", "text"),
            ],
            caption="Who responded, and how far from missing at random the result would have to be",
            facts=shows,
            notes=[
                "Odds ratio of responding: intervention over control, from a logistic model of having the "
                "scale's follow-up score on arm, baseline score and LA (staff with a baseline score), "
                "Mancl-DeRouen team-clustered standard errors, Student's t on teams minus coefficients. Above 1: "
                "intervention staff responded more, at the same baseline score.",
                "Tipping point: the imputed follow-up scores of the intervention arm's non-responders are moved by "
                "delta standard deviations (the effect sizes' SD) and the primary model refitted to every imputed "
                "data set; the tipping point is the delta at which the 95% CI first includes 0 (negative: "
                "non-responders would have to score that much lower than missing at random predicts). Blank "
                "where the interval already includes 0 under missing at random.",
            ],
        )


def _response(data: TrialData) -> pd.DataFrame:
    """Randomised staff and those with a follow-up score on at least one scale, by LA and arm."""
    scales = data.instrument.scale_names
    parts = data.participants[["participant_id", "team_id", "la"]].merge(data.teams[["team_id", "arm"]], on="team_id")
    fu = data.survey.loc[data.survey["wave"] == "followup", ["participant_id", *scales]]
    scored = fu.set_index("participant_id")[list(scales)].astype(float).notna().any(axis=1)
    parts["responded"] = parts["participant_id"].map(scored[scored].groupby(level=0).any()).fillna(False).astype(bool)
    las = sorted(parts["la"].unique())
    recs = []
    for la in ["all"] if len(las) == 1 else [*las, "all"]:
        d = parts if la == "all" else parts[parts["la"] == la]
        rec: dict = {"la": la, "la_label": las[0] if len(las) == 1 else ("All LAs" if la == "all" else la)}
        for arm in ARMS:
            a = d[d["arm"] == arm]
            n, r = len(a), int(a["responded"].sum())
            rec[f"randomised_{arm}"], rec[f"responded_{arm}"] = n, r
            rec[f"response_pct_{arm}"] = 100 * r / n if n else np.nan
        recs.append(rec)
    return pd.DataFrame(recs)


def response_model(data: TrialData, outcome: str) -> ResponseModel:
    """Logistic (independence GEE, Mancl-DeRouen) model of responding on arm, baseline score and LA (module docstring)."""
    df = mi_frame(data, outcome)
    no_base = int(df["baseline"].isna().sum())
    df = df[df["baseline"].notna()].reset_index(drop=True)
    res = ResponseModel(outcome, len(df), df["team_id"].nunique())
    responded = df["followup"].notna().to_numpy(float)
    why = why_not_estimable(df.assign(followup=responded), outcome="", baseline="baseline")
    if not why and responded.min() == responded.max():
        why = "not estimable: " + (
            "every member of staff with a baseline score responded" if responded.min() == 1 else "no one responded"
        )
    if why:
        res.note = why
        return res
    X, names = design(df)
    dfree = res.n_clusters - X.shape[1]
    if dfree < 1:
        res.note = "not estimable: fewer teams than coefficients"
        return res
    try:
        out = gee_binary(
            responded,
            np.ones_like(responded),
            X,
            df["team_id"].to_numpy(),
            1,
            df=dfree,
            names=names,
            corr="independence",
        )
    except ValueError as exc:
        res.note = f"not estimable: {exc}"
        return res
    how = f"logistic model (independence GEE), Mancl-DeRouen SE, t on {dfree} df"
    if no_base:
        how += f"; {no_base} randomised staff without a baseline score left out"
    if not out.converged:
        res.note = f"did not converge: {out.reason}; {how}"
        return res
    o = out.odds_ratio
    res.estimate, res.ci_low, res.ci_high, res.p_value = o.estimate, o.ci_low, o.ci_high, o.p_value
    res.note = how
    return res


def tipping_point(
    data: TrialData,
    outcome: str,
    sd: float | None = None,
    n_imputations: int = N_IMPUTATIONS,
    n_cycles: int = N_CYCLES,
    seed: int = SEED,
) -> TippingPoint:
    """The delta-adjusted MI of ``outcome`` and its tipping point (module docstring).

    ``sd``: the SD delta is in (default: the unconditional model's total SD
    of the analysed sample, as ``hedges_g_total``). The imputations are those
    of :func:`~isafe_helpers.impact.sensitivity.multiple_imputation` with the
    same ``seed`` and ``n_imputations``.
    """
    df = mi_frame(data, outcome)
    res = TippingPoint(outcome, len(df), df["team_id"].nunique())
    miss_f = df["followup"].isna().to_numpy()
    why = why_not_estimable(df)
    if why or (~miss_f).sum() < MIN_OBSERVED:
        res.note = why or NOT_ESTIMABLE
        return res
    cc = fit_primary(analysis_frame(data, outcome), outcome, effect_sizes=sd is None)
    if sd is None:
        sd = float(np.sqrt(cc.team_variance_unconditional + cc.residual_variance_unconditional))
    res.sd = float(sd)
    F, _ = design(df, covariates=())
    rng = np.random.default_rng(np.random.SeedSequence([seed, sum(map(ord, outcome))]))
    try:
        out = mi_delta_tipping_point(
            df["followup"].to_numpy(float),
            df["baseline"].to_numpy(float),
            F,
            df["team_id"].to_numpy(),
            df["treated"].to_numpy(bool),
            res.sd,
            n_imputations=n_imputations,
            n_cycles=n_cycles,
            rng=rng,
            df_max=cc.df if np.isfinite(cc.df) else None,
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    res.tipping_point, res.n_shifted = float(out["tipping_point"]), out["n_shifted"]
    res.estimate_at_zero = float(out["at_zero"]["estimate"])
    how = (
        f"delta in SDs of the outcome (SD {res.sd:.3f}, the effect sizes' SD); {res.n_shifted} imputed follow-up "
        f"scores of the intervention arm shifted; {n_imputations} imputations (those of the multiple imputation)"
    )
    res.note = "; ".join(x for x in (out["reason"], how) if x)
    return res


def missing_data(
    data: TrialData,
    primary: PrimaryAnalysis | None = None,
    n_imputations: int = N_IMPUTATIONS,
    seed: int = SEED,
) -> MissingData:
    """Response by arm and LA, the response model and the delta-adjusted tipping point of every scale.

    ``primary``: the scope's primary analysis; its unconditional variances give
    the SD of delta (the effect sizes' SD), so the model is not fitted again.
    """
    sds: dict[str, float] = {}
    if primary is not None:
        for r in primary.results:
            s = float(np.sqrt(r.team_variance_unconditional + r.residual_variance_unconditional))
            if np.isfinite(s) and s > 0:
                sds[r.outcome] = s
    scales = data.instrument.scale_names
    return MissingData(
        response=_response(data),
        models=[response_model(data, s) for s in scales],
        tipping=[tipping_point(data, s, sds.get(s), n_imputations=n_imputations, seed=seed) for s in scales],
    )
