"""Impact strand: the primary analysis of the survey scales, and the primary and secondary outcomes.

Primary model, for each scale: follow-up score on arm, baseline score and
LA fixed effects (the randomisation strata; dropped in a single-LA scope),
with a random intercept for team, fitted by exact REML
(:mod:`isafe_helpers.stats.mixed`) on participants with both waves scored, as
randomised. The treatment effect's SE, CI and p-value are Kenward-Roger's
(adjusted SE, t on the KR df; as ``lmerTest::summary(ddf = "Kenward-Roger")``),
which stay valid with few teams and when the team variance is estimated at
zero. Satterthwaite's df with the conventional SE (lmerTest's default) are
reported beside it as a labelled sensitivity (``sensitivity_satterthwaite``).

Effect size (:mod:`isafe_helpers.stats.effect_size`): ``hedges_g_total`` =
beta over the total SD of the unconditional model (intercept and team random
intercept, REML, same analysed sample), its CI the model's KR CI over that SD;
``hedges_g_total_conditional`` divides by the primary model's own total SD.
The ``icc`` is the unconditional model's; ``team_variance`` and
``residual_variance`` are the primary model's.

Outcomes (:mod:`isafe_helpers.data.protocol`): one primary outcome, named by
``protocol.yml`` or the documented default; the other scales and the
case-file outcome are secondary, each with its unadjusted p and its
Holm-adjusted p across the secondary family (rows ``secondary`` /
``p_holm``). A fit that did not converge is kept in the rows with its note
and withheld from the display table (and from the Holm family).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import CASEFILE_OUTCOME
from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.data.protocol import NO_PRIMARY, Protocol, default_protocol, protocol_of
from isafe_helpers.impact.casefiles import CasefileResult, casefile
from isafe_helpers.impact.design import ARM_TERM, why_not_estimable
from isafe_helpers.results import keys as K
from isafe_helpers.results.escape import md
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import ROLES, label
from isafe_helpers.results.protocol import Result, ResultSet
from isafe_helpers.results.table import Col, Table, facts
from isafe_helpers.stats.effect_size import StandardisedEffect, standardised_effect
from isafe_helpers.stats.inference import holm, interval
from isafe_helpers.stats.mixed import fit_formula_free

#: What the ICC row's note says about its model and interval (methods page: "ICC and its interval").
ICC_NOTE = (
    "unconditional model; 95% CI by profile likelihood (REML criterion within chi-square(1) 3.84 of its "
    "minimum, s2_W and the intercept profiled out), so within [0, 1]"
)

#: Prefix of the note of an estimate whose fit did not converge (kept in estimates.csv, withheld from tables).
NOT_CONVERGED = "did not converge"


@dataclass
class ArmEffect:
    """What every estimate of the arm effect on one outcome carries.

    The analyses (primary model, multiple imputation, randomisation
    inference, CR2, CACE) extend it with their own fields; a quantity an
    analysis does not produce stays NaN.
    """

    outcome: str
    n: int
    n_clusters: int
    estimate: float = np.nan
    se: float = np.nan
    df: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    p_value: float = np.nan
    note: str = ""


@dataclass
class PrimaryResult(ArmEffect, Result):
    """Primary analysis of one scale.

    ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``, ``p_value``: the
    treatment effect with Kenward-Roger inference; ``sat_*``: the same
    coefficient with the conventional SE and Satterthwaite df (sensitivity).
    ``role`` is ``primary`` or ``secondary`` (empty when fitted outside
    :func:`primary_all` / :func:`primary`); ``note`` says what went wrong, if
    anything (``not estimable: ...`` or ``did not converge: ...``).
    """

    g: StandardisedEffect | None = None
    g_conditional: StandardisedEffect | None = None
    icc: float = np.nan  # unconditional model
    icc_ci_low: float = np.nan  # its 95% profile-likelihood interval (MixedFit.icc_interval)
    icc_ci_high: float = np.nan
    team_variance: float = np.nan  # primary (conditional) model
    residual_variance: float = np.nan
    team_variance_unconditional: float = np.nan
    residual_variance_unconditional: float = np.nan
    converged: bool = False
    sat_se: float = np.nan
    sat_df: float = np.nan
    sat_ci_low: float = np.nan
    sat_ci_high: float = np.nan
    sat_p_value: float = np.nan
    role: str = ""
    role_note: str = ""
    n_arm: dict = field(default_factory=dict)  # analysed staff per arm
    teams_arm: dict = field(default_factory=dict)  # analysed teams per arm

    @property
    def withheld(self) -> bool:
        """True when there is an estimate but its fit did not converge: kept in the rows, never displayed."""
        return self.note.startswith(NOT_CONVERGED)

    def _note(self, *parts: str) -> str:
        return "; ".join(p for p in (self.note, self.role_note, *parts) if p)

    def rows(self) -> list[dict]:
        c: dict[str, Any] = dict(n=self.n, n_clusters=self.n_clusters)
        g, gc = self.g, self.g_conditional
        fitted = np.isfinite(self.estimate)
        how = ""
        if fitted:
            how = (
                f"Kenward-Roger SE, t on {self.df:.2f} df"
                if np.isfinite(self.df)
                else "Kenward-Roger SE; normal approximation (the KR df are not finite)"
            )

        def g_row(q, e: StandardisedEffect | None, model: str):
            vals: tuple[Any, Any, Any, Any] = (e.estimate, e.se, e.ci_low, e.ci_high) if e else (None,) * 4
            what = (
                f"beta over the SD of the {model} ({e.sd:.4g}); CI = the Kenward-Roger CI of beta over that SD"
                if e
                else ""
            )
            return est_row("primary", self.outcome, q, *vals, note=self._note(what), **c)

        return [
            est_row(
                "primary",
                self.outcome,
                "treatment_effect",
                self.estimate,
                self.se,
                self.ci_low,
                self.ci_high,
                self.p_value,
                note=self._note(how),
                **c,
            ),
            g_row("hedges_g_total", g, "unconditional model"),
            g_row("hedges_g_total_conditional", gc, "primary model"),
            est_row(
                "primary",
                self.outcome,
                "icc",
                self.icc,
                ci_low=self.icc_ci_low,
                ci_high=self.icc_ci_high,
                note=self._note(ICC_NOTE if np.isfinite(self.icc_ci_low) else "unconditional model"),
                **c,
            ),
            est_row(
                "primary", self.outcome, "team_variance", self.team_variance, note=self._note("primary model"), **c
            ),
            est_row(
                "primary",
                self.outcome,
                "residual_variance",
                self.residual_variance,
                note=self._note("primary model"),
                **c,
            ),
            est_row(
                "primary",
                self.outcome,
                "team_variance_unconditional",
                self.team_variance_unconditional,
                note=self._note("unconditional model"),
                **c,
            ),
            est_row(
                "primary",
                self.outcome,
                "residual_variance_unconditional",
                self.residual_variance_unconditional,
                note=self._note("unconditional model"),
                **c,
            ),
        ]

    def arm_rows(self) -> list[dict]:
        """Staff and teams analysed in each arm (rows ``analysed_treatment``, ``analysed_control``)."""
        return [
            est_row(
                "primary",
                self.outcome,
                f"analysed_{a}",
                self.n_arm.get(a),
                n=self.n_arm.get(a),
                n_clusters=self.teams_arm.get(a),
                note="staff analysed in the arm (n_clusters: its teams)",
            )
            for a in ("treatment", "control")
            if a in self.n_arm
        ]

    def sensitivity_rows(self) -> list[dict]:
        """The ``sensitivity_satterthwaite`` row: the same coefficient, conventional SE, Satterthwaite df."""
        how = (
            f"sensitivity: primary model with the conventional SE and Satterthwaite df ({self.sat_df:.2f}), "
            "as lmerTest's default"
            if np.isfinite(self.sat_se)
            else ""
        )
        return [
            est_row(
                "sensitivity_satterthwaite",
                self.outcome,
                "treatment_effect",
                self.estimate,
                self.sat_se,
                self.sat_ci_low,
                self.sat_ci_high,
                self.sat_p_value,
                n=self.n,
                n_clusters=self.n_clusters,
                note="; ".join(p for p in (self.note, how) if p),
            )
        ]


def primary_covariates(df: pd.DataFrame) -> list[str]:
    """The primary model's covariates on an analysis frame: arm, baseline score, and LA when it holds several."""
    return [ARM_TERM, "baseline"] + (["la"] if df["la"].nunique() > 1 else [])


def fit_primary(df: pd.DataFrame, outcome: str, effect_sizes: bool = True) -> PrimaryResult:
    """The primary model (module docstring) on an analysis frame (:func:`~isafe_helpers.data.frames.analysis_frame`).

    The LA term enters when the frame holds more than one LA. With
    ``effect_sizes=False`` the unconditional model is not fitted, so ``g``,
    ``icc`` and the unconditional variances stay empty (the per-LA
    heterogeneity fits need only the treatment effect).
    """
    res = PrimaryResult(outcome, len(df), df["team_id"].nunique())
    res.n_arm = {a: int((df["arm"] == a).sum()) for a in ("treatment", "control")}
    res.teams_arm = {a: int(df.loc[df["arm"] == a, "team_id"].nunique()) for a in ("treatment", "control")}
    why = why_not_estimable(df)
    if why:
        res.note = why
        return res
    covs = primary_covariates(df)
    df = df.rename(columns={"treated": ARM_TERM})
    try:
        cond = fit_formula_free(df, "followup", covs, "team_id")
        uncond = fit_formula_free(df, "followup", [], "team_id") if effect_sizes else None
        kr = cond.kenward_roger()
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    k = cond.names.index(ARM_TERM)
    res.estimate = float(cond.beta[k])
    res.se, res.df = float(kr.se_adj[k]), float(kr.df[k])
    res.ci_low, res.ci_high, res.p_value = astuple(interval(res.estimate, res.se, res.df))
    res.sat_se, res.sat_df = float(cond.se[k]), float(cond.df[k])
    res.sat_ci_low, res.sat_ci_high, res.sat_p_value = astuple(interval(res.estimate, res.sat_se, res.sat_df))
    res.team_variance, res.residual_variance = cond.team_variance, cond.residual_variance
    res.g_conditional = standardised_effect(
        res.estimate, res.se, res.ci_low, res.ci_high, cond.team_variance, cond.residual_variance
    )
    if uncond is not None:
        res.g = standardised_effect(
            res.estimate, res.se, res.ci_low, res.ci_high, uncond.team_variance, uncond.residual_variance
        )
        res.icc = uncond.icc
        try:
            res.icc_ci_low, res.icc_ci_high = uncond.icc_interval()
        except (ValueError, RuntimeError, np.linalg.LinAlgError):  # the criterion cannot be profiled: no interval
            pass
        res.team_variance_unconditional = uncond.team_variance
        res.residual_variance_unconditional = uncond.residual_variance
    fits = (("primary", cond), ("unconditional", uncond))
    bad = [f"{name} model: {f.message}" for name, f in fits if f is not None and not f.converged]
    res.converged = not bad
    if bad:
        res.note = f"{NOT_CONVERGED}: " + "; ".join(bad)
    return res


def _set_role(res: PrimaryResult, protocol: Protocol) -> PrimaryResult:
    res.role = protocol.role(res.outcome)
    res.role_note = {"primary": protocol.primary_note(), "secondary": "secondary outcome"}.get(
        res.role, "outcome (no primary outcome pre-specified)"
    )
    return res


def primary(data: TrialData, outcome: str) -> PrimaryResult:
    """Primary analysis of one scale (see the module docstring), labelled primary or secondary by the protocol."""
    return _set_role(fit_primary(analysis_frame(data, outcome), outcome), protocol_of(data))


def primary_all(data: TrialData) -> PrimaryAnalysis:
    """The primary analysis of every scale of the instrument, with the outcomes' roles and the Holm family.

    The case-file outcome (:func:`~isafe_helpers.impact.casefiles.casefile`)
    is fitted here too: it is a secondary outcome (unless the protocol names
    it primary), so it belongs to the Holm family. The result keeps it as
    ``casefile``.
    """
    protocol = protocol_of(data)
    out = PrimaryAnalysis([primary(data, s) for s in data.instrument.scale_names], casefile(data), protocol)
    out.las = list(data.las)
    return out


def scope_caveat(data: TrialData) -> str:
    """What the page's scope means for the analysis (a plain caveat for a single LA)."""
    if len(data.las) > 1:
        return f"Pooled trial: {len(data.las)} LAs, LA fixed effects (the randomisation strata) in every model."
    arms = data.teams.drop_duplicates("team_id")["arm"].value_counts()
    nt, nc = int(arms.get("treatment", 0)), int(arms.get("control", 0))
    if min(nt, nc) < 2:
        return (
            f"**Single LA ({data.las[0]}): the arms cannot be compared here.** It has {nt} treatment and "
            f"{nc} control team(s); every comparison needs at least two teams in each arm, so the effect "
            "estimates below are reported as not estimable (descriptive tables still appear). The pooled "
            "trial and the other LAs are analysed as usual."
        )
    return (
        f"**Single LA ({data.las[0]}), {data.teams['team_id'].nunique()} teams: read with care.** "
        "The models have no LA term. With this few teams no test here uses the normal (z) approximation: "
        "the primary model's CIs and p-values use Kenward-Roger standard errors and degrees of freedom, the "
        "robustness section adds randomisation inference (every possible allocation of this LA's teams "
        "enumerated when there are at most 5,000, so exact) and CR2 cluster-robust SEs with Satterthwaite df, "
        "and the case-file model uses the bias-reduced sandwich with t on teams minus coefficients. Even so, "
        "the estimates are imprecise (see the minimum detectable effect size below) and a team's "
        "idiosyncrasies weigh heavily. The estimates describe this LA; they are one part of the trial, not "
        "the trial's result, and the page draws no conclusion from them."
    )


def convergence_message(results) -> str:
    """One sentence for the page: every fit converged, or which did not and why."""
    bad = [f"{md(label(r.outcome))} ({md(r.note)})" for r in results if r.note]  # scale names are data
    if not bad:
        return "Every REML fit (primary and unconditional model, each scale) converged."
    return "Not every analysis could be reported as usual: " + "; ".join(bad) + "."


def _casefile_p(case: CasefileResult | None) -> float:
    """The case-file model's test of the arm (the odds ratio's p), NaN when not estimable or not converged."""
    if case is None or not case.converged:
        return np.nan
    return float(case.odds_ratio[4])


class PrimaryAnalysis(ResultSet):
    """The primary analysis of every scale (one :class:`PrimaryResult` each), the outcomes' roles and Holm family.

    ``casefile``: the case-file outcome's result (a member of the secondary
    family; its own rows are written by the case-file result, not here).
    ``family``: one row per outcome with ``role``, unadjusted ``p_value`` and,
    for the secondary outcomes, ``p_holm`` (Holm across the secondary
    outcomes with a p-value; an outcome without one is left out of the
    family and says why).
    """

    las: list[str]  # the scope's LAs, set by :func:`primary_all` (none: the tables carry no ledger keys)

    def __init__(self, results: list, casefile: CasefileResult | None = None, protocol: Protocol | None = None):
        super().__init__(results)
        self.las = []
        self.casefile = casefile
        self.protocol = protocol if protocol is not None else default_protocol()
        for r in self.results:
            if not r.role:
                _set_role(r, self.protocol)
        recs = [
            dict(outcome=r.outcome, p_value=r.p_value if not r.withheld else np.nan, n=r.n, n_clusters=r.n_clusters)
            for r in self.results
        ]
        if casefile is not None:
            recs.append(
                dict(
                    outcome=CASEFILE_OUTCOME,
                    p_value=_casefile_p(casefile),
                    n=casefile.n,
                    n_clusters=casefile.n_clusters,
                )
            )
        fam = pd.DataFrame(recs, columns=["outcome", "p_value", "n", "n_clusters"])
        fam["role"] = [self.protocol.role(o) for o in fam["outcome"]]
        sec = (fam["role"] != "primary").to_numpy()  # the Holm family: all but the primary (all when none)
        fam["p_holm"] = np.nan
        fam.loc[sec, "p_holm"] = holm(fam.loc[sec, "p_value"].to_numpy(float))
        self.family = fam
        if casefile is not None and casefile.role != "primary":  # its table shows its Holm p
            casefile.p_holm = float(fam.loc[fam["outcome"] == CASEFILE_OUTCOME, "p_holm"].iloc[0])

    @property
    def primary_outcome(self) -> str | None:
        return self.protocol.primary_outcome

    def _family_size(self) -> int:
        f = self.family
        return int(((f["role"] != "primary") & f["p_value"].notna()).sum())

    def _holm_header(self) -> str:
        return "Holm p (secondary)" if self.primary_outcome is not None else "Holm p (all outcomes)"

    def _family_words(self) -> str:
        k = self._family_size()
        return f"the {k} secondary outcomes" if self.primary_outcome is not None else f"all {k} outcomes"

    def rows(self) -> list[dict]:
        out = [row for r in self.results for row in r.rows()]
        out += self.protocol_rows()
        why = {r.outcome: r.note for r in self.results}
        if self.casefile is not None:
            why[CASEFILE_OUTCOME] = self.casefile.note if not self.casefile.converged else ""
        role = "secondary outcome" if self.primary_outcome is not None else "no primary outcome pre-specified"
        for r in self.family[self.family["role"] != "primary"].itertuples():
            if np.isfinite(r.p_value):
                note = f"{role}; Holm-adjusted across {self._family_words()}; unadjusted p {r.p_value:.4g}"
            else:
                note = f"{role}; no p-value to adjust ({why.get(r.outcome) or 'not estimable'})"
            out.append(
                est_row(
                    "secondary",
                    r.outcome,
                    "p_holm",
                    r.p_holm,
                    p_value=r.p_holm,
                    n=r.n,
                    n_clusters=r.n_clusters,
                    note=note,
                )
            )
        out += [row for r in self.results for row in r.sensitivity_rows()]
        out += [row for r in self.results for row in r.arm_rows()]
        return out

    def protocol_rows(self) -> list[dict]:
        """The ``protocol`` rows: which outcome is primary, and the planned design (with where each comes from)."""
        p = self.protocol
        design_src = (
            "assumed: the ISAFE protocol's plan (no design in protocol.yml)"
            if any(a.startswith("planned design") for a in p.assumptions)
            else "protocol.yml"
        )
        d = p.design
        out = [
            est_row(
                "protocol",
                self.primary_outcome,
                "primary_outcome",
                note=f"{p.primary_note()}; {p.family_note()}",
            )
            if self.primary_outcome is not None
            else est_row("protocol", NO_PRIMARY, "primary_outcome", note=p.family_note())
        ]
        for q, v in (
            ("planned_las", d.las),
            ("planned_teams", d.teams),
            ("planned_team_size", d.team_size),
            ("planned_share_treated", d.share_treated),
            ("planned_mdes", d.mdes),
        ):
            note = design_src if v is not None else "not stated by the protocol"
            out.append(est_row("protocol", "design", q, v, note=note))
        return out

    def _notes(self) -> list[str]:
        notes = [
            "Effect: difference between the arms in the follow-up score (scale points), adjusted for the baseline "
            "score and (pooled trial) LA; 95% CI and p-value with Kenward-Roger standard errors and degrees of "
            "freedom (Student's t).",
            "Hedges' g: the effect over the standard deviation of the unconditional model (no covariates, same "
            "staff); its 95% CI is the effect's CI over the same SD, so it agrees with the p-value.",
            "ICC: of the unconditional model. Team and residual variance: of the primary model, after adjustment.",
            (
                f"{label(self.primary_outcome)} is the primary outcome ({self.protocol.primary_source()}). The other "
                f"outcomes are secondary; their p-values are also shown Holm-adjusted across the {self._family_size()} "
                "secondary outcomes with a p-value, the case-file outcome included. The primary outcome's p is not "
                "adjusted: [x] in its Holm column."
                if self.primary_outcome is not None
                else "No primary outcome was pre-specified (the protocol names none), so none is called primary: "
                f"every outcome's p-value is also shown Holm-adjusted across all {self._family_size()} outcomes with "
                "a p-value, the case-file outcome included, and a finding reads the Holm-adjusted p."
            ),
        ]
        fam = self.family.set_index("outcome")
        if CASEFILE_OUTCOME in fam.index and fam.loc[CASEFILE_OUTCOME, "role"] != "primary":
            p = fam.loc[CASEFILE_OUTCOME, "p_holm"]
            which = " (secondary)" if fam.loc[CASEFILE_OUTCOME, "role"] == "secondary" else ""
            notes.append(
                f"{label(CASEFILE_OUTCOME)}{which}: Holm-adjusted p = {p:.3f}."
                if np.isfinite(p)
                else f"{label(CASEFILE_OUTCOME)}{which}: no p-value (see the case-file table)."
            )
        if any(r.withheld for r in self.results):
            notes.append(
                "[x] where a model did not converge: its estimate is not shown (the note on that outcome below says why)."
            )
        # the compact table has no note column, so each outcome that could not be reported says why here
        for r in self.results:
            if r.note:
                notes.append(f"{label(r.outcome)}: {'not available: ' if r.withheld else ''}{r.note}.")
        return notes

    def table(self) -> Table:
        """One row per scale: role, staff and teams, the effect (95% CI), p, Holm p, Hedges' g (95% CI), ICC.

        Estimates of a fit that did not converge are withheld (shown as not
        available, with the reason in a note). The variance components are in
        :meth:`variance_table`.
        """
        fam = self.family.set_index("outcome")
        recs = []
        for r in self.results:
            show = not r.withheld
            g = r.g if show else None

            def v(x, show=show):
                return x if show else np.nan

            recs.append(
                dict(
                    outcome=label(r.outcome),
                    role=ROLES.get(r.role, r.role),
                    participants=r.n,
                    teams=r.n_clusters,
                    effect=v(r.estimate),
                    ci_low=v(r.ci_low),
                    ci_high=v(r.ci_high),
                    p_value=v(r.p_value),
                    p_holm=fam.loc[r.outcome, "p_holm"] if r.outcome in fam.index else np.nan,
                    hedges_g=g.estimate if g else np.nan,
                    g_ci_low=g.ci_low if g else np.nan,
                    g_ci_high=g.ci_high if g else np.nan,
                    icc=v(r.icc),
                )
            )
        las = getattr(self, "las", None)
        keys = {"participants": [K.analysed(las, r.outcome) for r in self.results]} if las else {}
        stat: dict[str, Any] = dict(base="participants")
        return Table(
            pd.DataFrame(recs),
            [
                Col("outcome", "Outcome", "text"),
                Col("role", "Role", "text"),
                Col("participants", "Staff analysed", "people"),
                Col("teams", "Teams", "units"),
                # at the book's rounding of an effect in scale points (3 decimals, as the robustness table)
                Col("effect", "Effect, scale points (95% CI)", "ci", 3, parts=("ci_low", "ci_high"), **stat),
                Col("p_value", "p", "p", **stat),
                Col("p_holm", self._holm_header(), "p", **stat),
                Col("hedges_g", "Hedges' g (95% CI)", "ci", 2, parts=("g_ci_low", "g_ci_high"), **stat),
                Col("icc", "ICC (model without covariates)", "number", 3, **stat),  # as the variance table
            ],
            caption="Primary analysis of the survey outcomes",
            notes=self._notes(),
            keys=keys,
            facts=self._facts(),
        )

    def _facts(self) -> dict:
        """The ``estimates.csv`` cell each number of :meth:`table` shows (the primary outcome has no Holm p)."""
        rows = [("primary", r.outcome, "treatment_effect") for r in self.results]
        out = facts(
            "impact",
            rows,
            participants="n",
            teams="n_clusters",
            effect="estimate",
            ci_low="ci_low",
            ci_high="ci_high",
            p_value="p_value",
            hedges_g=("primary", "hedges_g_total", "estimate"),
            g_ci_low=("primary", "hedges_g_total", "ci_low"),
            g_ci_high=("primary", "hedges_g_total", "ci_high"),
            icc=("primary", "icc", "estimate"),
        )
        secondary = [r if res.role != "primary" else None for r, res in zip(rows, self.results)]
        out.update(facts("impact", secondary, p_holm=("secondary", "p_holm", "estimate")))
        return out

    def variance_table(self) -> Table:
        """The variance components of each scale's models: the primary model's and the model without covariates'."""
        recs = [
            dict(
                outcome=label(r.outcome),
                n=r.n,
                tv=r.team_variance,
                rv=r.residual_variance,
                tvu=r.team_variance_unconditional,
                rvu=r.residual_variance_unconditional,
                icc=r.icc,
                icc_low=r.icc_ci_low,
                icc_high=r.icc_ci_high,
            )
            for r in self.results
            if not r.withheld
        ]
        las = getattr(self, "las", None)
        stat: dict[str, Any] = dict(kind="number", digits=3, base="n")
        return Table(
            pd.DataFrame(recs, columns=["outcome", "n", "tv", "rv", "tvu", "rvu", "icc", "icc_low", "icc_high"]),
            [
                Col("outcome", "Outcome", "text"),
                Col("n", "Staff analysed", "people"),
                Col("tv", "Team variance, primary model", **stat),
                Col("rv", "Residual variance, primary model", **stat),
                Col("tvu", "Team variance, model without covariates", **stat),
                Col("rvu", "Residual variance, model without covariates", **stat),
                Col("icc", "ICC, model without covariates (95% CI)", "ci", 3, parts=("icc_low", "icc_high"), base="n"),
            ],
            caption="Variance components of the primary analysis",
            notes=[
                "The ICC is the team share of the variance of the model without covariates (intercept and team "
                "only, same sample); Hedges' g divides by that model's total standard deviation.",
                "The ICC's 95% CI is a profile-likelihood interval: the ICC values whose REML criterion (the "
                "residual variance and intercept profiled out) is within 3.84, chi-square with 1 df, of its "
                "minimum; it lies within 0 to 1, and at an ICC of 0 it is conservative.",
            ],
            keys={"n": [K.analysed(las, r.outcome) for r in self.results if not r.withheld]} if las else {},
            facts=facts(
                "impact",
                [("primary", r.outcome, "treatment_effect") for r in self.results if not r.withheld],
                n="n",
                tv=("primary", "team_variance", "estimate"),
                rv=("primary", "residual_variance", "estimate"),
                tvu=("primary", "team_variance_unconditional", "estimate"),
                rvu=("primary", "residual_variance_unconditional", "estimate"),
                icc=("primary", "icc", "estimate"),
                icc_low=("primary", "icc", "ci_low"),
                icc_high=("primary", "icc", "ci_high"),
            ),
        )

    def outcomes_table(self) -> Table:
        """Every outcome with its role: the effect (95% CI), p and, for secondary outcomes, the Holm-adjusted p.

        The survey scales' effect is in scale points, the case-file outcome's
        is its odds ratio. Withheld estimates (not converged) are not shown.
        """
        fam = self.family.set_index("outcome")
        recs = []
        for r in self.results:
            show = not r.withheld
            recs.append(
                dict(
                    outcome=label(r.outcome),
                    role=ROLES.get(r.role, r.role),
                    measure="Difference (scale points)",
                    n=r.n,
                    estimate=r.estimate if show else np.nan,
                    ci_low=r.ci_low if show else np.nan,
                    ci_high=r.ci_high if show else np.nan,
                    p_value=r.p_value if show else np.nan,
                    p_holm=fam.loc[r.outcome, "p_holm"],
                    note=(f"not available: {r.note}" if r.withheld else r.note),
                )
            )
        c = self.casefile
        if c is not None:
            est, _se, lo, hi, p = c.odds_ratio
            show = c.converged
            recs.append(
                dict(
                    outcome=label(CASEFILE_OUTCOME),
                    role=ROLES[self.protocol.role(CASEFILE_OUTCOME)],
                    measure="Odds ratio",
                    n=c.n,
                    estimate=est if show else np.nan,
                    ci_low=lo if show else np.nan,
                    ci_high=hi if show else np.nan,
                    p_value=p if show else np.nan,
                    p_holm=fam.loc[CASEFILE_OUTCOME, "p_holm"],
                    note=("" if show else f"not available: {c.note}"),
                )
            )
        return Table(
            pd.DataFrame(recs),
            [
                Col("outcome", "Outcome", "text"),
                Col("role", "Outcome role", "text"),
                Col("measure", "Measure", "text"),
                Col("n", "Staff analysed", "people"),
                Col("estimate", "Estimate (95% CI)", "ci", 2, base="n", parts=("ci_low", "ci_high")),
                Col("p_value", "p", "p", base="n"),
                Col("p_holm", self._holm_header(), "p", base="n"),
                Col("note", "Note", "text"),
            ],
            caption="Primary and secondary outcomes",
            notes=self._notes()[3:4],
        )
