"""Impact strand, robustness of the primary analysis.

Three checks of the primary model of each scale (:func:`isafe_helpers.impact.primary_model.primary`):

- :func:`multiple_imputation` (``sensitivity_mi``): missing baseline and
  follow-up scores imputed by chained equations from two-level (team random
  intercept) normal models that carry arm, LA and team information; the
  primary model fitted to every completed data set and pooled by Rubin's rules
  (Kenward-Roger variances) with the Barnard-Rubin degrees of freedom on the
  Kenward-Roger complete-data df, so MI's df never exceed the primary model's.
- :func:`randomisation_inference` (``sensitivity_ri``): teams re-randomised
  within LA exactly as the trial did (the number of treatment teams of each LA
  kept), at least 5,000 seeded permutations, or every allocation when there
  are fewer. The statistic is described in :mod:`isafe_helpers.stats.randomisation`.
- :func:`cluster_robust` (``sensitivity_cr2``): OLS with team-clustered CR2
  (Bell-McCaffrey) standard errors and Satterthwaite degrees of freedom, as R's
  ``clubSandwich::coef_test(vcov = "CR2", test = "Satterthwaite")``.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import CASEFILE_OUTCOME
from isafe_helpers.data.frames import analysis_frame, casefile_frame, casefile_wide, mi_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.impact.design import NOT_ESTIMABLE, design, why_not_estimable
from isafe_helpers.impact.primary_model import ArmEffect, PrimaryAnalysis, fit_primary
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import ANALYSES as LABELS_OF
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts
from isafe_helpers.stats.cluster_robust import cr2
from isafe_helpers.stats.imputation import mi_arm_effect
from isafe_helpers.stats.inference import interval
from isafe_helpers.stats.mixed import fit_random_intercept
from isafe_helpers.stats.randomisation import allocations, randomisation_test

#: Seed of every random draw of this module (permutations, imputations).
SEED = 20240601


#: Permutations of the randomisation test (published results use at least this many).
N_PERMUTATIONS = 5000


#: Imputations and chained-equation cycles of the multiple imputation.
N_IMPUTATIONS = 20


N_CYCLES = 5
#: Follow-up scores that must be observed before missing ones are imputed (a model needs data to draw from).
MIN_OBSERVED = 10


def _rows_effect(
    analysis: str, outcome: str, est, se, lo, hi, p, n, g, note: str, quantity: str = "treatment_effect"
) -> list[dict]:
    return [est_row(analysis, outcome, quantity, est, se, lo, hi, p, n=n, n_clusters=g, note=note)]


#: Quantity of the case-file outcome's robustness rows: the difference in the teams' shares of files (0 to 1).
TEAM_SHARE = "team_share_difference"
TEAM_SHARE_NOTE = (
    "team-level analysis: each analysed team's share of follow-up files with the father's contact details on arm, "
    "the team's baseline share and LA (each team one observation)"
)


@dataclass
class MIResult(ArmEffect, Result):
    """Multiple-imputation estimate of the arm effect on one scale."""

    n_imputations: int = 0
    n_missing_followup: int = 0
    n_missing_baseline: int = 0
    fmi: float = np.nan  # fraction of missing information

    def rows(self) -> list[dict]:
        note = (
            self.note
            or f"{self.n_imputations} imputations, Rubin's rules; Barnard-Rubin df on Kenward-Roger complete-data df"
        )
        return _rows_effect(
            "sensitivity_mi",
            self.outcome,
            self.estimate,
            self.se,
            self.ci_low,
            self.ci_high,
            self.p_value,
            self.n,
            self.n_clusters,
            note,
        )


def multiple_imputation(
    data: TrialData, outcome: str, n_imputations: int = N_IMPUTATIONS, n_cycles: int = N_CYCLES, seed: int = SEED
) -> MIResult:
    """Arm effect on ``outcome`` with missing scores multiply imputed (chained equations).

    Every randomised participant is included (intention to treat). Missing
    follow-up and baseline scores are imputed in turn by
    :func:`isafe_helpers.stats.imputation.mi_arm_effect`: each wave from a
    two-level normal model on the other wave's score, arm and LA dummies with
    a random intercept for team whose variance components are drawn in every
    imputation (the team-to-residual variance ratio from its REML-based
    posterior with a half-Cauchy prior on the ratio of standard deviations),
    never held fixed. The primary model is fitted to each completed data set
    and the results pooled by Rubin's rules with Barnard-Rubin degrees of
    freedom. Within-imputation variances are each fit's Kenward-Roger
    adjusted variance and the complete-data df ``nu_com`` the mean of the
    fits' Kenward-Roger df (the primary model's inference, so "KR
    everywhere"); Barnard-Rubin's df never exceed ``nu_com``, and they are
    capped at the Kenward-Roger df of the complete-case primary model (the
    completed data sets have more rows, so their KR df can be a little above
    the primary model's; MI does not create information, and an LA's MI df
    are never larger than its primary KR df). Satterthwaite's
    df would jump to N - p wherever a fit's team variance is 0 (in an LA of 9
    teams, 40-50 df where KR gives 6-7).

    With no missing score there is nothing to impute: no imputation model is
    fitted and nothing is drawn, so every completed data set is the observed
    data and the result is the complete-case primary model: the primary
    estimate and its Kenward-Roger SE. The df is Barnard-Rubin's at zero
    between-imputation variance, ``(nu + 1) / (nu + 3) * nu`` with ``nu`` the
    primary model's Kenward-Roger df (slightly below it).
    """
    df = mi_frame(data, outcome)
    res = MIResult(outcome, len(df), df["team_id"].nunique(), n_imputations=n_imputations)
    miss_f, miss_b = df["followup"].isna().to_numpy(), df["baseline"].isna().to_numpy()
    res.n_missing_followup, res.n_missing_baseline = int(miss_f.sum()), int(miss_b.sum())
    why = why_not_estimable(df)
    if why or (~miss_f).sum() < MIN_OBSERVED:
        res.note = why or NOT_ESTIMABLE
        return res
    F, _ = design(df, covariates=())  # intercept, arm, LA dummies
    # the complete-case primary model's KR df cap MI's df (docstring)
    cc_df = fit_primary(analysis_frame(data, outcome), outcome, effect_sizes=False).df
    rng = np.random.default_rng(np.random.SeedSequence([seed, sum(map(ord, outcome))]))
    try:
        out = mi_arm_effect(
            df["followup"].to_numpy(float),
            df["baseline"].to_numpy(float),
            F,
            df["team_id"].to_numpy(),
            arm_col=1,
            n_imputations=n_imputations,
            n_cycles=n_cycles,
            rng=rng,
            df_max=cc_df if np.isfinite(cc_df) else None,
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    for k in ("estimate", "se", "df", "ci_low", "ci_high", "p_value", "fmi"):
        setattr(res, k, float(out[k]))
    return res


@dataclass
class RIResult(ArmEffect, Result):
    """Randomisation test of the arm effect on one scale (``estimate``: GLS at the null-model theta)."""

    n_permutations: int = 0
    exact: bool = False  # every possible allocation enumerated
    theta: float = np.nan
    permuted: np.ndarray | None = field(default=None, repr=False)  # the statistic under each allocation
    quantity: str = "treatment_effect"  # TEAM_SHARE for the case-file outcome

    def rows(self) -> list[dict]:
        how = ("all {} allocations" if self.exact else "{} seeded permutations").format(self.n_permutations)
        note = self.note or f"teams re-randomised within LA; {how}; CI by test inversion"
        if self.quantity == TEAM_SHARE and not self.note.startswith("not estimable"):
            note = f"{note}; {TEAM_SHARE_NOTE}"
        return _rows_effect(
            "sensitivity_ri",
            self.outcome,
            self.estimate,
            None,
            self.ci_low,
            self.ci_high,
            self.p_value,
            self.n,
            self.n_clusters,
            note,
            self.quantity,
        )


def randomisation_inference(data: TrialData, outcome: str, n_perm: int = N_PERMUTATIONS, seed: int = SEED) -> RIResult:
    """Randomisation test and test-inversion CI of the arm effect on ``outcome``.

    See the module docstring for the statistic. The two-sided p-value is the
    share of allocations whose statistic is at least as far from zero as the
    observed one: ``(1 + #{|b_perm| >= |b_obs|}) / (1 + n_perm)`` for seeded
    draws, ``#{|b_perm| >= |b_obs|} / n_alloc`` when every allocation is
    enumerated (the observed one among them).
    """
    df = analysis_frame(data, outcome)
    codes, uniq = pd.factorize(df["team_id"])
    res = RIResult(outcome, len(df), len(uniq))
    why = why_not_estimable(df)
    if why:
        res.note = why
        return res
    X, _names = design(df)
    y = df["followup"].to_numpy(float)
    Z = np.delete(X, 1, axis=1)
    try:
        null = fit_random_intercept(y, Z, codes)
    except ValueError as exc:
        res.note = f"not estimable: {exc}"
        return res
    theta = null.team_variance / null.residual_variance
    teams = data.teams[["team_id", "arm", "la"]].drop_duplicates("team_id").reset_index(drop=True)
    T_all, exact = allocations(teams["la"].to_numpy(), (teams["arm"] == "treatment").to_numpy(), n_perm, seed)
    T = T_all[:, pd.Index(teams["team_id"]).get_indexer(uniq)]
    tau_obs = np.asarray(df.groupby(codes)["treated"].first().to_numpy(float))
    test = randomisation_test(y, Z, codes, theta, tau_obs, T, exact, scale=float(null.se[0]))
    res.permuted = test["permuted"]
    res.estimate, res.theta, res.n_permutations, res.exact = test["estimate"], float(theta), len(T), exact
    res.p_value, res.ci_low, res.ci_high = test["p_value"], test["ci_low"], test["ci_high"]
    if not null.converged:  # theta comes from this fit: kept in the rows, withheld from the table
        res.note = f"did not converge: null model: {null.message}"
    elif exact and len(T) < 40:
        res.note = (
            f"teams re-randomised within LA; all {len(T)} allocations: too few to reach p < 0.05; CI by test inversion"
        )
    return res


@dataclass
class CR2Result(ArmEffect, Result):
    """Cluster-robust OLS estimate of the arm effect on one scale (or the case files' team shares)."""

    quantity: str = "treatment_effect"  # TEAM_SHARE for the case-file outcome

    def rows(self) -> list[dict]:
        note = self.note or "OLS, team-clustered CR2 SE, Satterthwaite df"
        if self.quantity == TEAM_SHARE and not self.note.startswith("not estimable"):
            note = f"{note}; {TEAM_SHARE_NOTE}"
        return _rows_effect(
            "sensitivity_cr2",
            self.outcome,
            self.estimate,
            self.se,
            self.ci_low,
            self.ci_high,
            self.p_value,
            self.n,
            self.n_clusters,
            note,
            self.quantity,
        )


def cluster_robust(data: TrialData, outcome: str) -> CR2Result:
    """OLS of follow-up on arm, baseline and LA with CR2 team-clustered inference (:func:`cr2`)."""
    df = analysis_frame(data, outcome)
    res = CR2Result(outcome, len(df), df["team_id"].nunique())
    why = why_not_estimable(df)
    if why:
        res.note = why
        return res
    X, _ = design(df)
    return _cr2_arm(res, df, X)


def team_shares(data: TrialData) -> pd.DataFrame | None:
    """The case-file outcome at team level: one row per analysed team (None without audits at both waves).

    Over the participants the case-file model analyses
    (:func:`~isafe_helpers.data.frames.casefile_frame`): ``followup`` is the
    team's share of follow-up files with the father's contact details (files
    summed over its staff), ``baseline`` the same share at baseline over the
    same staff, with ``team_id``, ``la``, ``arm``, ``treated``, ``staff`` and
    ``files``. Each team counts once, whatever its size: the unit that was
    randomised.
    """
    d = casefile_frame(data)
    wide = casefile_wide(data)
    if d is None or wide is None:
        return None
    pid = d["participant_id"]
    d = d.assign(
        base_recorded=pid.map(wide[("father_contact_recorded", "baseline")]).astype(float),
        base_audited=pid.map(wide[("cases_audited", "baseline")]).astype(float),
    )
    g = d.groupby("team_id", sort=True).agg(
        la=("la", "first"),
        arm=("arm", "first"),
        recorded=("recorded", "sum"),
        files=("audited", "sum"),
        base_recorded=("base_recorded", "sum"),
        base_audited=("base_audited", "sum"),
        staff=("participant_id", "size"),
    )
    g = g.reset_index()
    g["followup"] = g["recorded"] / g["files"]
    g["baseline"] = g["base_recorded"] / g["base_audited"]
    g["treated"] = (g["arm"] == "treatment").astype(float)
    return g


_Check = TypeVar("_Check", RIResult, CR2Result)


def _team_level(data: TrialData, kind: type[_Check]) -> tuple[_Check, pd.DataFrame | None, np.ndarray | None]:
    """A team-level check's start: its result, the teams' shares (:func:`team_shares`) and their design.

    The shares and design are None when the check cannot be made; the result's note then says why.
    """
    g = team_shares(data)
    if g is None:
        return (
            kind(CASEFILE_OUTCOME, 0, 0, note="not estimable: audits at both waves are needed", quantity=TEAM_SHARE),
            None,
            None,
        )
    res = kind(CASEFILE_OUTCOME, int(g["staff"].sum()), len(g), quantity=TEAM_SHARE)
    why = why_not_estimable(g)
    if why:
        res.note = why
        return res, None, None
    X, _ = design(g)
    if X.shape[0] <= X.shape[1] or np.linalg.matrix_rank(X) < X.shape[1]:
        res.note = "not estimable: too few teams for the team-level model"
        return res, None, None
    return res, g, X


def casefile_randomisation_inference(data: TrialData, n_perm: int = N_PERMUTATIONS, seed: int = SEED) -> RIResult:
    """Randomisation test of the case-file outcome on the teams' shares (:func:`team_shares`).

    Teams re-randomised within LA exactly as for the scales (the same
    allocations); the statistic is the OLS arm coefficient of the team share
    on arm, the team's baseline share and LA (each team one observation, so
    the GLS statistic of the scales at ``theta = 0``); p and the test-inversion
    CI as :func:`randomisation_inference`.
    """
    res, g, X = _team_level(data, RIResult)
    if g is None or X is None:
        return res
    y = g["followup"].to_numpy(float)
    Z = np.delete(X, 1, axis=1)
    codes = np.arange(len(g))
    teams = data.teams[["team_id", "arm", "la"]].drop_duplicates("team_id").reset_index(drop=True)
    T_all, exact = allocations(teams["la"].to_numpy(), (teams["arm"] == "treatment").to_numpy(), n_perm, seed)
    T = T_all[:, pd.Index(teams["team_id"]).get_indexer(g["team_id"])]
    tau_obs = g["treated"].to_numpy(float)
    resid = y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0]
    test = randomisation_test(y, Z, codes, 0.0, tau_obs, T, exact, scale=float(np.std(resid)) / np.sqrt(len(g)))
    res.permuted = test["permuted"]
    res.estimate, res.theta, res.n_permutations, res.exact = test["estimate"], 0.0, len(T), exact
    res.p_value, res.ci_low, res.ci_high = test["p_value"], test["ci_low"], test["ci_high"]
    if exact and len(T) < 40:
        res.note = (
            f"teams re-randomised within LA; all {len(T)} allocations: too few to reach p < 0.05; CI by test inversion"
        )
    return res


def casefile_cluster_robust(data: TrialData) -> CR2Result:
    """OLS of the teams' case-file shares on arm, baseline share and LA with CR2 standard errors (:func:`cr2`).

    One observation per team, so CR2 by team is HC2, with the Bell-McCaffrey
    Satterthwaite df, as ``clubSandwich::coef_test(vcov = "CR2")``.
    """
    res, g, X = _team_level(data, CR2Result)
    if g is None or X is None:
        return res
    return _cr2_arm(res, g, X)


def _cr2_arm(res: CR2Result, df: pd.DataFrame, X: np.ndarray) -> CR2Result:
    """``res`` with the arm coefficient (column 1 of ``X``) of OLS of ``followup`` on ``X``, CR2 by team."""
    try:
        f = cr2(df["followup"].to_numpy(float), X, df["team_id"].to_numpy(), df_for=[1])
    except (ValueError, np.linalg.LinAlgError) as exc:
        res.note = f"not estimable: {exc}"
        return res
    res.estimate, res.se, res.df = float(f["beta"][1]), float(f["se"][1]), float(f["df"][1])
    res.ci_low, res.ci_high, res.p_value = astuple(interval(res.estimate, res.se, res.df))
    return res


METHODS = {k: LABELS_OF[a] for a, k in (("sensitivity_mi", "mi"), ("sensitivity_ri", "ri"), ("sensitivity_cr2", "cr2"))}
#: The primary model's own rows shown first: Kenward-Roger (the primary analysis), then Satterthwaite (sensitivity).
PRIMARY_METHODS = {a: LABELS_OF[a] for a in ("primary", "sensitivity_satterthwaite")}
ANALYSES = {"sensitivity_mi": "mi", "sensitivity_ri": "ri", "sensitivity_cr2": "cr2"}


@dataclass
class Robustness(Result):
    """The three robustness checks of every scale, beside the primary results they check."""

    mi: list[MIResult]
    ri: list[RIResult]
    cr2: list[CR2Result]
    primary: PrimaryAnalysis | None = None
    #: the case-file outcome's checks on the teams' shares: randomisation inference and CR2 (``TEAM_SHARE`` rows)
    casefile: list[RIResult | CR2Result] = field(default_factory=list)

    def rows(self) -> list[dict]:
        parts: list[Result] = [*self.mi, *self.ri, *self.cr2, *self.casefile]
        return [r for res in parts for r in res.rows()]

    def table(self) -> Table:
        """One row per scale and method (the primary first): estimate, 95% CI, p."""
        t = self.tidy()
        t = t.assign(method=t["analysis"].map(lambda a: METHODS[ANALYSES[a]]))
        shares = (t["quantity"] == TEAM_SHARE).to_numpy()
        t.loc[shares, "method"] = t.loc[shares, "method"] + ", team shares"
        keep_note = t["note"].str.startswith(("not estimable", "did not converge")) | t["note"].str.contains("too few")
        t["note"] = t["note"].where(keep_note, "")
        t["note"] = [_unbounded(r.ci_low, r.ci_high, r.note) for r in t.itertuples()]
        if self.primary is not None:
            p = self.primary.tidy()
            p = p[(p["quantity"] == "treatment_effect") & p["analysis"].isin(list(PRIMARY_METHODS))]
            p = p.assign(method=p["analysis"].map(PRIMARY_METHODS))
            case = self.primary.casefile
            if self.casefile and case is not None:  # the case files' own model beside their team-level checks
                c = case.tidy()
                c = c[c["quantity"] == "risk_difference"].assign(method="Primary (GEE), risk difference")
                p = pd.concat([p, c], ignore_index=True)
            p["note"] = p["note"].where(p["note"].str.startswith(("not estimable", "did not converge")), "")
            t = pd.concat([p, t], ignore_index=True)
        withheld = t["note"].str.startswith("did not converge")  # kept in the rows, not shown
        t.loc[withheld, ["estimate", "ci_low", "ci_high", "p_value"]] = np.nan
        t.loc[withheld, "note"] = "not available: " + t.loc[withheld, "note"]
        order = {o: i for i, o in enumerate(dict.fromkeys(t["outcome"]))}
        t = t.sort_values("outcome", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
        shows = facts(
            "impact",
            list(zip(t["analysis"], t["outcome"], t["quantity"])),
            n="n",
            estimate="estimate",
            ci_low="ci_low",
            ci_high="ci_high",
            p_value="p_value",
        )
        # the primary and Satterthwaite rows rest on the primary model's analysed staff: the same population as
        # the primary table's, so the book's ledger withholds their statistics where it withholds the primary's
        las = self.primary.las if self.primary is not None else []
        same = t["analysis"].isin(["primary", "sensitivity_satterthwaite", "sensitivity_ri", "sensitivity_cr2"])
        # the case files' rows rest on the staff whose files were analysed (the case-file table's population)
        keys = {"n": [K.analysed(las, o) if own else None for o, own in zip(t["outcome"], same)]} if las else {}
        t["outcome"] = [label(o) for o in t["outcome"]]
        return Table(
            t[["outcome", "method", "n", "estimate", "ci_low", "ci_high", "p_value", "note"]],
            [
                Col("outcome", "Outcome", "text"),
                Col("method", "Method", "text"),
                Col("n", "Staff analysed", "people"),
                Col("estimate", "Effect", "number", 3, base="n"),
                Col("ci_low", "95% CI low", "number", 3, base="n"),
                Col("ci_high", "95% CI high", "number", 3, base="n"),
                Col("p_value", "p", "p", base="n"),
                Col("note", "Note", "text"),
            ],
            caption="Robustness of the primary analysis",
            keys=keys,
            facts=shows,
            notes=[
                "Primary: REML with Kenward-Roger standard errors and degrees of freedom. Satterthwaite: the same "
                "fit with the conventional standard error and Satterthwaite degrees of freedom. Multiple "
                "imputation: Rubin's rules on Kenward-Roger variances, Barnard-Rubin degrees of freedom on the "
                "Kenward-Roger complete-data degrees of freedom. Randomisation inference: teams "
                "re-randomised within LA, CI by test inversion. CR2: OLS with team-clustered CR2 standard errors "
                "and Satterthwaite degrees of freedom. Every interval uses Student's t or the randomisation "
                "distribution; none uses the normal approximation.",
                "Effects of the scales are in scale points. The case files' effects are differences in proportion "
                "points (0 to 1): the primary model's marginally standardised risk difference over files, and "
                "the two checks' difference in the teams' shares of files with the father's contact details "
                "(each analysed team one observation; adjusted for the team's baseline share and LA).",
            ],
        )


def _unbounded(lo: float, hi: float, note: str) -> str:
    """``note``, with what an unbounded 95% CI (a randomisation test's, by test inversion) means, if it is one."""
    if not (np.isinf(lo) or np.isinf(hi)):
        return note
    if np.isinf(lo) and np.isinf(hi):
        what = "95% CI unbounded: the randomisation test rejects no effect size at the 5% level"
    elif np.isinf(lo):
        what = "95% CI unbounded below: the randomisation test rejects no effect smaller than the upper end"
    else:
        what = "95% CI unbounded above: the randomisation test rejects no effect larger than the lower end"
    return "; ".join(x for x in (note, what) if x)


def robustness(
    data: TrialData,
    primary: PrimaryAnalysis | None = None,
    n_perm: int = N_PERMUTATIONS,
    n_imputations: int = N_IMPUTATIONS,
    seed: int = SEED,
) -> Robustness:
    """Run the three robustness checks for every scale, and the case files' two (``primary``: shown beside them)."""
    scales = data.instrument.scale_names
    return Robustness(
        primary=primary,
        mi=[multiple_imputation(data, s, n_imputations=n_imputations, seed=seed) for s in scales],
        ri=[randomisation_inference(data, s, n_perm=n_perm, seed=seed) for s in scales],
        cr2=[cluster_robust(data, s) for s in scales],
        casefile=[casefile_randomisation_inference(data, n_perm=n_perm, seed=seed), casefile_cluster_robust(data)],
    )
