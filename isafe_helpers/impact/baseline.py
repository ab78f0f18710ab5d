"""Impact strand before follow-up: the baseline report.

When the scope's data have no follow-up wave yet
(:mod:`isafe_helpers.data.followup`), the impact page shows what a trial
publishes before its outcomes: the trial flow to date, the baseline
characteristics and balance of the randomised arms
(:func:`baseline_balance`), and the ICC of each scale at baseline with the
minimum detectable effect size of the design as randomised
(:func:`baseline_power`). The outcome analyses (primary model, case files,
robustness, CACE, moderators, heterogeneity, attrition, achieved MDES) wait
for follow-up: :func:`awaits_followup` gates them, and their reason is
:data:`~isafe_helpers.data.followup.NO_FOLLOWUP`.

Choices, written down:

- The balance sample is every randomised participant with the variable
  measured at baseline (the analysed sample is not known before follow-up).
  Standardised differences are WWC's (Hedges' g on the pooled SD; the Cox
  index for an age band) and are *described*: the WWC verdict is given on the
  analysed sample, in the full report.
- The ICC at baseline is the unconditional REML model's (intercept and team
  random intercept) on the baseline scores.
- Descriptives by arm and wave (:func:`descriptives`, full report): each
  scale's mean, SD (n - 1) and staff of each arm at each wave, over every
  randomised member of staff with that wave's score (not only the analysed
  sample, whose figures are the primary model's). Before follow-up the
  baseline wave's rows come with the balance table (:func:`baseline_balance`);
  both use :func:`_arm_stats`.
- The MDES at randomisation uses the teams and staff randomised (``J`` teams,
  the mean staff per team, the share of teams treated), the ICC
  at baseline, and no variance explained by covariates (``R2 = 0``: the
  baseline score's share is known only once follow-up arrives, so the figure
  is conservative), with the analysis's degrees of freedom (``J - 2 - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import AGE_BANDS
from isafe_helpers.data.followup import NO_FOLLOWUP, awaits_followup
from isafe_helpers.data.frames import with_arm
from isafe_helpers.data.loading import TrialData
from isafe_helpers.data.protocol import protocol_of
from isafe_helpers.impact.flow import _cox, _hedges, age_band_ledger
from isafe_helpers.impact.power import randomisation_sample, stage_mdes
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts
from isafe_helpers.stats.mixed import fit_formula_free

#: Case-file share at baseline: its label in the balance table.
CASEFILE_BASELINE = "father_contact_recorded_baseline_share"

#: What the impact page says in place of the outcome analyses before follow-up. Markdown.
AWAITING_TEXT = (
    "**This is a baseline report: follow-up has not been collected yet.** The page shows the trial flow to date, "
    "how alike the randomised arms were at baseline, how much scores cluster in teams at baseline, and the "
    "smallest effect the trial as randomised could detect. The outcome analysis (the effect of ISAFE on each "
    "outcome, its robustness, and for whom it differed) awaits the follow-up survey and case-file audit: no "
    "effect is estimated and no finding is drawn until then. When follow-up arrives, the same run gives the "
    "full report."
)


def _baseline_scores(data: TrialData) -> pd.DataFrame:
    """Randomised participants with their arm, team, characteristics and baseline scale scores."""
    parts = with_arm(data)
    base = data.survey.loc[data.survey["wave"] == "baseline", ["participant_id", *data.instrument.scale_names]]
    df = parts.merge(base.drop_duplicates("participant_id"), on="participant_id", how="left")
    cf = data.casefile_audit
    cf = cf[(cf["wave"] == "baseline") & (cf["cases_audited"].astype(float) > 0)]
    share = (cf["father_contact_recorded"].astype(float) / cf["cases_audited"].astype(float)).rename(CASEFILE_BASELINE)
    df = df.merge(
        pd.concat([cf["participant_id"], share], axis=1).drop_duplicates("participant_id"),
        on="participant_id",
        how="left",
    )
    return df


#: The two survey waves, in display order.
WAVES = ("baseline", "followup")
#: The two arms, in display order.
ARMS = ("treatment", "control")


def _arm_stats(x: np.ndarray, arm: np.ndarray, continuous: bool = True) -> dict:
    """``n_<arm>``, ``mean_<arm>`` and ``sd_<arm>`` (n - 1) of the finite values of ``x`` in each arm.

    The mean and SD are NaN for a binary variable (``continuous`` False: a
    share times staff would give back a small count) and the SD for fewer than
    two values.
    """
    ok = np.isfinite(x)
    rec: dict = {}
    for a in ARMS:
        v = x[(arm == a) & ok]
        rec[f"n_{a}"] = len(v)
        rec[f"mean_{a}"] = float(v.mean()) if len(v) and continuous else np.nan
        rec[f"sd_{a}"] = float(v.std(ddof=1)) if continuous and len(v) > 1 else np.nan
    return rec


def _wave_scores(data: TrialData, wave: str) -> pd.DataFrame:
    """Randomised participants with their arm and their scale scores at ``wave`` (NaN where not scored)."""
    parts = with_arm(data, ["participant_id", "team_id"])
    sv = data.survey.loc[data.survey["wave"] == wave, ["participant_id", *data.instrument.scale_names]]
    return parts.merge(sv.drop_duplicates("participant_id"), on="participant_id", how="left")


@dataclass
class Descriptives(Result):
    """Unadjusted mean, SD and staff of each scale by arm and wave; ``frame`` one row per scale and wave."""

    frame: pd.DataFrame

    def rows(self) -> list[dict]:
        out = []
        for r in self.frame.itertuples():
            for arm in ARMS:
                n = getattr(r, f"n_{arm}")
                for q in ("mean", "sd"):
                    out.append(est_row("descriptives", r.outcome, f"{q}_{r.wave}_{arm}", getattr(r, f"{q}_{arm}"), n=n))
                out.append(est_row("descriptives", r.outcome, f"n_{r.wave}_{arm}", n, n=n))
        return out

    def table(self) -> Table:
        """Per scale and wave: staff, mean and SD of each arm (means and SDs withheld with small counts)."""
        # the wave goes with the outcome, not in a column of its own: eight columns fit a page's width
        t = self.frame.assign(
            outcome=[f"{label(o)}: {label(w).lower()}" for o, w in zip(self.frame["outcome"], self.frame["wave"])],
            outcome_key=self.frame["outcome"],
        )
        cols = [Col("outcome", "Outcome and wave", "text")]
        for arm in ARMS:
            cols += [
                Col(f"n_{arm}", f"{label(arm)}: staff", "people"),
                # a mean or SD of a scale gives back no count: it goes only with its own arm's staff
                Col(f"mean_{arm}", f"{label(arm)}: mean", "mean", 2, base=f"n_{arm}", reveals=f"n_{arm}"),
                Col(f"sd_{arm}", f"{label(arm)}: SD", "mean", 2, base=f"n_{arm}", reveals=f"n_{arm}"),
            ]
        shows = {
            f"{q}_{arm}": [
                ("impact", "descriptives", o, f"{q}_{w}_{arm}", "estimate") for o, w in zip(t["outcome_key"], t["wave"])
            ]
            for arm in ARMS
            for q in ("n", "mean", "sd")
        }
        return Table(
            t.drop(columns="outcome_key"),
            cols,
            caption="Scale scores by arm and wave (unadjusted)",
            facts=shows,
            notes=[
                "Unadjusted means and standard deviations (n - 1) of each scale (1 to 5), over every randomised "
                "member of staff with a score at that wave, so the samples differ between waves and from the "
                "analysed sample (scored at both waves) of the primary analysis.",
            ],
        )


def descriptives(data: TrialData) -> Descriptives:
    """Mean, SD and staff of each survey scale by arm at baseline and follow-up (module docstring)."""
    recs = []
    for scale in data.instrument.scale_names:
        for wave in WAVES:
            df = _wave_scores(data, wave)
            arm = df["arm"].astype(object).to_numpy()
            recs.append(dict(outcome=scale, wave=wave, **_arm_stats(df[scale].astype(float).to_numpy(), arm)))
    cols = ["outcome", "wave", *(f"{q}_{a}" for a in ARMS for q in ("n", "mean", "sd"))]
    return Descriptives(pd.DataFrame(recs, columns=cols))


@dataclass
class BaselineBalance(Result):
    """Baseline characteristics by arm over the randomised staff; ``frame`` one row per variable."""

    frame: pd.DataFrame
    las: list[str] = field(default_factory=list)  # the scope's LAs (ledger keys)

    def rows(self) -> list[dict]:
        out = []
        for r in self.frame.itertuples():
            for arm in ("treatment", "control"):
                if r.kind == "continuous":
                    out += [
                        est_row("descriptives", r.variable, f"mean_baseline_{arm}", getattr(r, f"mean_{arm}")),
                        est_row("descriptives", r.variable, f"sd_baseline_{arm}", getattr(r, f"sd_{arm}")),
                    ]
                out.append(est_row("descriptives", r.variable, f"n_baseline_{arm}", getattr(r, f"n_{arm}")))
            out.append(
                est_row(
                    "baseline_balance",
                    r.variable,
                    "standardised_difference",
                    r.difference,
                    n=r.n_treatment + r.n_control,
                    note="randomised staff with the variable at baseline; described, no WWC verdict before follow-up",
                )
            )
        return out

    def table(self) -> Table:
        """Mean (or share), SD and staff of each arm, and the standardised difference, per characteristic."""
        t = self.frame.assign(
            variable=[
                label(v) if v != CASEFILE_BASELINE else "Share of case files with the father's contact details"
                for v in self.frame["variable"]
            ]
        )
        cols = [Col("variable", "Characteristic at baseline", "text")]
        for arm in ("treatment", "control"):
            cols += [
                Col(f"n_{arm}", f"{label(arm)}: staff", "people"),
                Col(f"mean_{arm}", f"{label(arm)}: mean or share", "mean", 2, base=f"n_{arm}"),
                Col(f"sd_{arm}", f"{label(arm)}: SD", "mean", 2, base=f"n_{arm}"),
            ]
        cols.append(Col("difference", "Standardised difference", "number", 3))  # withheld with its row's counts
        shows: dict = {
            f"{q}_{arm}": [
                None
                if q != "n" and k != "continuous"
                else ("impact", "descriptives", v, f"{q}_baseline_{arm}", "estimate")
                for v, k in zip(self.frame["variable"], self.frame["kind"])
            ]
            for arm in ("treatment", "control")
            for q in ("n", "mean", "sd")
        }
        shows["difference"] = [
            ("impact", "baseline_balance", v, "standardised_difference", "estimate") for v in self.frame["variable"]
        ]
        # an age band's Cox index rests on its cells: with the arms' staff it gives back the band-by-arm table
        las = getattr(self, "las", None)
        ledger: dict = {}
        if las and "band_t" in self.frame:
            rests, n_keys, relations, exempt = age_band_ledger(
                self.frame.assign(
                    sample="randomised", known_t=self.frame["n_treatment"], known_c=self.frame["n_control"]
                ),
                lambda _sample, arm, lev: K.key(las, "staff", arm=arm, age_band=lev),
                lambda _sample, arm: K.staff(las, arm),
            )
            ledger = dict(
                rests=rests,
                keys={f"n_{arm}": n_keys[arm] for arm in ("treatment", "control")},
                relations=relations,
                exempt=exempt,
            )
        return Table(
            t,
            cols,
            facts=shows,
            **ledger,
            caption="Baseline characteristics of the randomised arms",
            notes=[
                "Staff: randomised staff with the characteristic measured at baseline, in each arm. Scale scores "
                "run from 1 to 5; the case-file measure is each person's share of files (0 to 1). An age band's "
                "share of staff is not shown ([x]): with few staff it would give back a small count; its "
                "standardised difference describes the balance.",
                "Standardised difference: intervention minus control, Hedges' g on the pooled SD (continuous) or "
                "the Cox index (an age band). Described only: the WWC baseline equivalence verdict is judged on "
                "the analysed sample, which is known once follow-up arrives.",
            ],
        )


def baseline_balance(data: TrialData) -> BaselineBalance:
    """Baseline characteristics and standardised differences of the randomised arms (module docstring)."""
    df = _baseline_scores(data)
    arm = df["arm"].astype(object).to_numpy()
    t, c = arm == "treatment", arm == "control"
    recs = []

    def add(var: str, x: np.ndarray, kind: str) -> None:
        ok = np.isfinite(x)
        xt, xc = x[t & ok], x[c & ok]
        # an age band's share is not published: share times staff would give back a small count
        rec: dict = dict(variable=var, kind=kind, **_arm_stats(x, arm, kind == "continuous"))
        rec["difference"] = _hedges(xt, xc) if kind == "continuous" else _cox(xt, xc)
        # what an age band's Cox index rests on (the table's ledger): the band's staff in each arm
        rec["band_t"], rec["band_c"] = (float(xt.sum()), float(xc.sum())) if kind == "binary" else (np.nan, np.nan)
        recs.append(rec)

    for scale in data.instrument.scale_names:
        add(scale, df[scale].astype(float).to_numpy(), "continuous")
    add(CASEFILE_BASELINE, df[CASEFILE_BASELINE].astype(float).to_numpy(), "continuous")
    add("years_qualified", df["years_qualified"].astype(float).to_numpy(), "continuous")
    ab = df["age_band"].astype(object).fillna("").to_numpy()
    for band in AGE_BANDS:
        x = np.where(ab == "", np.nan, (ab == band).astype(float))
        add(f"age_{band}", x, "binary")
    return BaselineBalance(pd.DataFrame(recs), list(data.las))


@dataclass
class BaselinePower(Result):
    """ICC of each scale at baseline and the MDES of the design as randomised; ``frame`` one row per scale."""

    frame: pd.DataFrame

    def rows(self) -> list[dict]:
        out = []
        for r in self.frame.itertuples():
            how = "95% CI by profile likelihood (REML criterion within chi-square(1) 3.84 of its minimum)"
            out.append(
                est_row(
                    "baseline_icc",
                    r.outcome,
                    "icc",
                    r.icc,
                    ci_low=r.icc_low,
                    ci_high=r.icc_high,
                    n=r.n,
                    n_clusters=r.teams,
                    note=r.note or (how if np.isfinite(r.icc_low) else ""),
                )
            )
            out.append(
                est_row(
                    "power",
                    r.outcome,
                    "mdes_randomisation",
                    r.mdes,
                    n=r.n,
                    n_clusters=r.teams,
                    note=r.note or r.mdes_note,
                )
            )
        return out

    def table(self) -> Table:
        """Per scale: staff and teams at baseline, ICC at baseline and MDES at randomisation."""
        t = self.frame.assign(
            outcome=[label(o) for o in self.frame["outcome"]],
            note=[n or "" for n in self.frame["note"]],
        )
        return Table(
            t[["outcome", "n", "teams", "icc", "icc_low", "icc_high", "mdes", "note"]],
            [
                Col("outcome", "Outcome", "text"),
                Col("n", "Staff with a baseline score", "people"),
                Col("teams", "Teams", "units"),
                Col("icc", "ICC at baseline (95% CI)", "ci", 3, parts=("icc_low", "icc_high"), base="n"),
                Col("mdes", "MDES at randomisation (SD)", "number", 2),
                Col("note", "Note", "text"),
            ],
            caption="Clustering at baseline and the minimum detectable effect size at randomisation",
            facts=facts(
                "impact",
                [("baseline_icc", o, "icc") for o in self.frame["outcome"]],
                n="n",
                icc="estimate",
                icc_low="ci_low",
                icc_high="ci_high",
                mdes=("power", "mdes_randomisation", "estimate"),
            ),
            notes=[
                "ICC at baseline: the share of the variance of baseline scores between teams, from a model with "
                "teams as random intercepts (REML); its 95% CI is a profile-likelihood interval (the ICC values "
                "whose REML criterion is within 3.84, chi-square with 1 df, of its minimum), within 0 to 1.",
                "MDES: the smallest true effect (in SD units) the trial as randomised detects with 80% power at 5% "
                "two-sided, from the teams and staff randomised (mean staff per team) and the "
                "protocol's planning ICC and R-squared, as in the full report; when the protocol gives none, the "
                "ICC at baseline and no variance explained by the baseline score (conservative). t multiplier on "
                "J - 2 - (LAs - 1) degrees of freedom (the note of each row says which ICC it used).",
            ],
        )


def baseline_power(data: TrialData) -> BaselinePower:
    """ICC at baseline and MDES at randomisation of every scale (module docstring)."""
    df = _baseline_scores(data)
    # the same rule as the full report's mdes_randomisation (impact.power): teams and staff randomised,
    # df = J - 2 - (LAs - 1); the protocol's planning ICC and R2 when it gives them, else the ICC at baseline, R2 = 0
    j_r, n_r, p_treated = randomisation_sample(data)
    d = protocol_of(data).design
    planned = None if d.icc is None else (d.icc, d.r2_between or 0.0, d.r2_within or 0.0)
    recs = []
    for scale in data.instrument.scale_names:
        sub = df[["team_id", scale]].dropna().rename(columns={scale: "baseline"})
        rec = dict(
            outcome=scale,
            n=len(sub),
            teams=sub["team_id"].nunique(),
            icc=np.nan,
            icc_low=np.nan,
            icc_high=np.nan,
            mdes=np.nan,
            note="",
            mdes_note="",
        )
        try:
            fit = fit_formula_free(sub, "baseline", [], "team_id")
            if not fit.converged:
                rec["note"] = f"ICC not estimable: the model did not converge ({fit.message})"
            else:
                rec["icc"] = float(np.clip(fit.icc, 0.0, 1.0))
                try:
                    rec["icc_low"], rec["icc_high"] = fit.icc_interval()
                except (ValueError, RuntimeError):  # the criterion cannot be profiled: no interval
                    pass
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError, KeyError) as exc:
            rec["note"] = f"ICC not estimable: {exc}"
        shares = planned if planned is not None else (rec["icc"], 0.0, 0.0) if np.isfinite(rec["icc"]) else None
        if shares is not None:
            try:
                rec["mdes"] = stage_mdes(j_r, n_r, shares[0], shares[1], shares[2], p_treated, len(data.las)).mdes
                rec["mdes_note"] = (
                    f"teams and staff randomised; the protocol's planning ICC={shares[0]:.3f}, "
                    f"R2_B={shares[1]:.3f}, R2_W={shares[2]:.3f}"
                    if planned is not None
                    else "teams and staff randomised; ICC at baseline (the protocol gives none), R2 = 0 (conservative)"
                ) + "; df = J - 2 - (LAs - 1)"
            except ValueError as exc:
                rec["note"] = f"MDES not estimable: {exc}"
        recs.append(rec)
    cols = ["outcome", "n", "teams", "icc", "icc_low", "icc_high", "mdes", "note", "mdes_note"]
    return BaselinePower(pd.DataFrame(recs, columns=cols))


__all__ = [
    "AWAITING_TEXT",
    "NO_FOLLOWUP",
    "BaselineBalance",
    "BaselinePower",
    "Descriptives",
    "awaits_followup",
    "baseline_balance",
    "baseline_power",
    "descriptives",
]
