"""Impact strand: minimum detectable effect size (MDES) at the protocol, randomisation and analysis stages.

The two-level cluster design of ``methods.md`` (teams randomised, staff in
teams)::

    MDES = M * sqrt( rho (1 - R2_B) / (P (1 - P) J) + (1 - rho)(1 - R2_W) / (P (1 - P) J n) )
    M    = t(1 - alpha/2; df) + t(power; df),   df = J - 2 - (K - 1) - g

with ``J`` teams, ``n`` staff per team, ``P`` the share of teams treated,
``rho`` the ICC, ``R2_B`` and ``R2_W`` the shares of the between-team and
within-team variance explained by the covariates, ``K`` the LAs (the
randomisation strata, fixed effects: ``K - 1`` parameters beyond the
intercept, as the Kenward-Roger df of the primary model, about ``J - K - 1``)
and ``g`` the team-level covariates (none: the baseline score is a staff-level
covariate). As PowerUp!'s ``CRA2_2`` (Dong and Maynard 2013). At 80% power
and 5% two-sided ``M`` tends to 2.80 as ``df`` grows.

Three rows per scale (``power``; data contract):

- ``mdes_protocol``: the protocol's plan: its teams, LAs, team size and share
  treated, with the protocol's planning ICC and R2 (``protocol.yml``
  ``design.icc``, ``r2_between``, ``r2_within``). Without them the row is
  ``[x]``, "not pre-specified" (the observed ICC is never put in the plan).
- ``mdes_randomisation``: the teams randomised, the mean of their staff at
  baseline (the participants table: staff / teams, :data:`TEAM_SIZE`), the share of teams treated, and
  the protocol's planning ICC and R2 (``[x]`` "not pre-specified" without
  them). The baseline-only report (:mod:`isafe_helpers.impact.baseline`)
  writes the same row by the same rule; it falls back to the ICC at baseline
  with R2 = 0 when the protocol gives none, and says which it used.
- ``mdes_analysis``: the analysed sample (participants with both waves
  scored): analysed teams, the **mean** analysed team size (staff / teams,
  :data:`TEAM_SIZE`), the share of analysed teams treated, and the observed
  ICC and R2: ``rho`` of the unconditional model (intercept and team random
  intercept, REML), the same ``icc`` as the ``primary`` rows;
  ``R2_B = 1 - s2_B(conditional) / s2_B(unconditional)`` and
  ``R2_W = 1 - s2_W(conditional) / s2_W(unconditional)``, the conditional model
  adding the baseline score; neither model has the arm term. A share below 0
  is set to 0, ``R2_B`` is 0 when the unconditional team variance is 0, and
  ``R2_B`` is capped at :data:`R2_B_CAP` (an adjusted team variance of 0 would
  give 1, which no design can promise); the note states the cap and when it bit.

When the protocol states its own planned MDES, the row ``protocol_plan`` /
``mdes_planned`` carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from isafe_helpers.data.frames import analysis_frame
from isafe_helpers.data.loading import TrialData
from isafe_helpers.data.protocol import PlannedDesign, Protocol, protocol_of
from isafe_helpers.results.estimates import est_row
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table, facts_of
from isafe_helpers.stats.mixed import fit_formula_free
from isafe_helpers.stats.power import MDES, harmonic_mean, mdes

TeamSize = Literal["harmonic", "mean"]


#: How a stage's team size ``n`` is summarised: the arithmetic mean, staff / teams (methods.md: "harmonic or mean
#: size, stated"). Chosen for disclosure: staff and teams are published, so their ratio adds nothing, while a
#: harmonic mean with its teams and staff pins small teams by integer solving (issue 22). The harmonic mean
#: (``"harmonic"``, a slightly larger MDES when sizes vary) stays available to :func:`power_analysis`.
TEAM_SIZE: TeamSize = "mean"


#: Team-level covariates of the primary model (the baseline score is a staff-level covariate: none).
N_TEAM_COVARIATES = 0

#: The largest R2_B the analysis-stage MDES uses: with the adjusted team variance at 0 the estimate would be 1 (the
#: between-team term vanishes), which no design can promise; the cap keeps 5% of it and the note says when it bit.
R2_B_CAP = 0.95

#: The three stages of the MDES (methods.md, data-contract "power" rows).
STAGES = ("mdes_protocol", "mdes_randomisation", "mdes_analysis")

NOT_PRE_SPECIFIED = "not pre-specified: protocol.yml gives no planning ICC, R2_B and R2_W"


def strata_covariates(las: int) -> int:
    """Parameters the degrees of freedom lose to the strata and team covariates: ``(K - 1) + team covariates``.

    ``df = J - 2 - (K - 1) - g``: the LA fixed effects add ``K - 1``
    parameters at team level beyond the intercept (the Kenward-Roger df of
    the primary model is about ``J - K - 1``); ``g`` counts team-level
    covariates (none: the baseline score is a staff-level covariate).

    >>> strata_covariates(7), strata_covariates(1)
    (6, 0)
    """
    return max(int(las), 1) - 1 + N_TEAM_COVARIATES


def team_size_of(sizes: np.ndarray, how: TeamSize = TEAM_SIZE) -> float:
    """Staff per team as a stage's MDES uses it (:data:`TEAM_SIZE`); NaN with no team.

    >>> team_size_of(np.array([2.0, 4.0, 12.0])), round(team_size_of(np.array([2.0, 4.0, 12.0]), "harmonic"), 3)
    (6.0, 3.6)
    """
    if not len(sizes):
        return np.nan
    return harmonic_mean(sizes) if how == "harmonic" else float(np.mean(sizes))


#: How the MDES table's column names each summary of team size.
TEAM_SIZE_LABEL: dict[str, str] = {"harmonic": "harmonic mean", "mean": "mean"}


def team_size_words(how: TeamSize = TEAM_SIZE) -> str:
    """How a note names the team size: ``mean team size`` or ``harmonic mean team size``."""
    return f"{TEAM_SIZE_LABEL[how]} team size"


def randomisation_sample(data: TrialData) -> tuple[int, float, float]:
    """Teams randomised, their mean staff at baseline (participants; :data:`TEAM_SIZE`), share of teams treated."""
    teams = data.teams.drop_duplicates("team_id")
    staff = data.participants.groupby("team_id").size().reindex(teams["team_id"]).fillna(0).to_numpy(float)
    staff = staff[staff > 0]
    p = float((teams["arm"] == "treatment").mean()) if len(teams) else np.nan
    return len(teams), team_size_of(staff), p


def stage_mdes(
    teams: float, team_size: float, icc: float, r2_between: float, r2_within: float, p_treated: float, las: int
) -> MDES:
    """The MDES of one stage, with ``df = J - 2 - (K - 1) - g`` (:func:`strata_covariates`)."""
    return mdes(teams, team_size, icc, r2_between, r2_within, p_treated, covariates=strata_covariates(las))


def variance_shares(df: pd.DataFrame) -> dict:
    """ICC and R2 at each level from the unconditional and the baseline-only REML models.

    Returns ``icc``, ``r2_between``, ``r2_within`` and the four variance components
    (``s2b_u``, ``s2w_u``, ``s2b_c``, ``s2w_c``), ``converged`` and ``message`` (why not, if not).
    """
    u = fit_formula_free(df, "followup", [], "team_id")
    c = fit_formula_free(df, "followup", ["baseline"], "team_id")
    r2b = 0.0 if u.team_variance <= 0 else max(0.0, 1.0 - c.team_variance / u.team_variance)
    r2w = max(0.0, 1.0 - c.residual_variance / u.residual_variance)
    return dict(
        icc=float(u.icc),
        r2_between=float(min(r2b, 1.0)),
        r2_within=float(min(r2w, 1.0)),
        s2b_u=u.team_variance,
        s2w_u=u.residual_variance,
        s2b_c=c.team_variance,
        s2w_c=c.residual_variance,
        converged=u.converged and c.converged,
        message="; ".join(
            f"{name} model: {f.message}" for name, f in (("unconditional", u), ("baseline-only", c)) if not f.converged
        ),
    )


@dataclass
class PowerResult(Result):
    """MDES at the protocol, randomisation and analysis stages, per scale (``frame``; module docstring)."""

    frame: pd.DataFrame
    team_size: TeamSize
    protocol: Protocol | None = None
    las: int = 1

    @property
    def design(self) -> PlannedDesign:
        """The protocol's planned design."""
        return protocol_of(None).design if self.protocol is None else self.protocol.design

    def _source(self) -> str:
        """Where the plan comes from: protocol.yml, or the documented assumption."""
        given = self.protocol is not None and not any(a.startswith("planned design") for a in self.protocol.assumptions)
        return "protocol.yml" if given else "assumed: the ISAFE protocol's plan, no protocol.yml"

    def _planning(self) -> str:
        d = self.design
        if d.icc is None:
            return NOT_PRE_SPECIFIED
        return f"the protocol's ICC={d.icc:.3f}, R2_B={d.r2_between or 0:.3f}, R2_W={d.r2_within or 0:.3f}"

    def rows(self) -> list[dict]:
        out = []
        how = team_size_words(self.team_size)
        d = self.design
        for r in self.frame.itertuples():
            proto_note = (
                f"protocol's plan ({self._source()}): J={d.teams} teams in {d.las} LAs, n={d.team_size:g}, "
                f"P={d.share_treated:g}; " + self._planning()
            )
            if np.isfinite(r.mdes_protocol):
                proto_note += f"; df={r.df_protocol:.0f} (J - 2 - (LAs - 1)); 80% power, 5% two-sided"
            out.append(est_row("power", r.outcome, "mdes_protocol", r.mdes_protocol, note=proto_note))
            rand_note = r.note_randomisation or (
                f"teams and staff randomised: J={r.teams_randomised:.0f}, n={r.size_randomised:.2f} ({how} of "
                f"staff at baseline), P={r.p_randomised:.3f}; {self._planning()}; df={r.df_randomisation:.0f} "
                f"(J - 2 - (LAs - 1)); 80% power, 5% two-sided"
            )
            out.append(
                est_row(
                    "power",
                    r.outcome,
                    "mdes_randomisation",
                    r.mdes_randomisation,
                    n_clusters=r.teams_randomised,
                    note=rand_note,
                )
            )
            if not np.isfinite(r.mdes_achieved):
                out.append(est_row("power", r.outcome, "mdes_analysis", None, n=r.n, n_clusters=r.teams, note=r.note))
                out += self._inputs(r)
                continue
            cap = (
                f"; R2_B capped at {R2_B_CAP:g} (estimated {r.r2_between_raw:.3f})"
                if r.r2_between_raw > R2_B_CAP
                else f"; R2_B capped below 1 at {R2_B_CAP:g} (not reached)"
            )
            note = (
                f"analysed sample: J={r.teams}, n={r.team_size:.2f} ({how}), P={r.p_treated:.3f}, "
                f"observed ICC={r.icc:.3f}, R2_B={r.r2_between:.3f}, R2_W={r.r2_within:.3f}{cap}, "
                f"df={r.df:.0f} (J - 2 - (LAs - 1)); 80% power, 5% two-sided"
            )
            out.append(
                est_row(
                    "power",
                    r.outcome,
                    "mdes_analysis",
                    r.mdes_achieved,
                    n=r.n,
                    n_clusters=r.teams,
                    note="; ".join(s for s in (r.note, note) if s),
                )
            )
            out += self._inputs(r)
        if self.design.mdes is not None:
            out.append(
                est_row(
                    "power",
                    "protocol_plan",
                    "mdes_planned",
                    self.design.mdes,
                    note="planned MDES stated in protocol.yml",
                )
            )
        return out

    #: The MDES table's inputs of the analysis stage: (column of ``frame``, estimates.csv quantity).
    INPUTS = (
        ("team_size", "team_size_analysis"),
        ("icc", "icc_analysis"),
        ("r2_between", "r2_between_analysis"),
        ("r2_within", "r2_within_analysis"),
        ("df", "df_analysis"),
    )

    def _inputs(self, r) -> list[dict]:
        """What the MDES as analysed rests on, as the MDES table prints it (NaN where a model did not converge)."""
        bad = str(r.note).startswith("did not converge")
        return [
            est_row(
                "power",
                r.outcome,
                q,
                np.nan if bad and col != "team_size" and col != "df" else getattr(r, col),
                n=r.n,
                n_clusters=r.teams,
                note="input of the MDES as analysed" + (f"; {r.note}" if bad else ""),
            )
            for col, q in self.INPUTS
        ]

    def table(self) -> Table:
        """One row per scale: the MDES at the protocol, randomisation and analysis stages and what each rests on.

        A scale whose variance models did not converge keeps its rows and is
        not shown at the analysis stage (not available, with the reason).
        """
        t = self.frame.assign(outcome=[label(o) for o in self.frame["outcome"]])
        hide = t["note"].str.startswith("did not converge").to_numpy()
        cols = ["icc", "r2_between", "r2_within", "mdes_achieved"]
        t.loc[hide, cols] = np.nan
        t.loc[hide, "note"] = "not available: " + t.loc[hide, "note"]
        d = self.design
        return Table(
            t[
                [
                    "outcome",
                    "mdes_protocol",
                    "teams_randomised",
                    "mdes_randomisation",
                    "teams",
                    "team_size",
                    "icc",
                    "r2_between",
                    "r2_within",
                    "df",
                    "mdes_achieved",
                    "note",
                ]
            ],
            [
                Col("outcome", "Outcome", "text"),
                Col("mdes_protocol", "MDES, protocol's plan (SD)", "number", 2),
                Col("teams_randomised", "Teams randomised", "units"),
                Col("mdes_randomisation", "MDES as randomised (SD)", "number", 2),
                Col("teams", "Teams analysed", "units"),
                Col("team_size", f"Staff per analysed team ({TEAM_SIZE_LABEL[self.team_size]})", "number", 1),
                Col("icc", "Observed ICC", "number", 3),
                Col("r2_between", "R-squared between teams", "number", 2),
                Col("r2_within", "R-squared within teams", "number", 2),
                Col("df", "Degrees of freedom", "int"),
                Col("mdes_achieved", "MDES as analysed (SD)", "number", 2),
                Col("note", "Note", "text"),
            ],
            caption="Minimum detectable effect size: planned, as randomised and as analysed",
            facts=facts_of(
                "impact",
                [("power", o) for o in self.frame["outcome"]],
                mdes_protocol=("mdes_protocol", "estimate"),
                teams_randomised=("mdes_randomisation", "n_clusters"),
                mdes_randomisation=("mdes_randomisation", "estimate"),
                teams=("mdes_analysis", "n_clusters"),
                mdes_achieved=("mdes_analysis", "estimate"),
                **{col: (q, "estimate") for col, q in self.INPUTS},
            ),
            notes=[
                "MDES: the smallest true effect (in SD units) the design detects with 80% power at 5% two-sided, "
                "t multiplier on J - 2 - (LAs - 1) degrees of freedom (J teams; the LA strata cost LAs - 1; no "
                "team-level covariate).",
                f"Protocol's plan: {d.describe()} ({self._source()}), with {self._planning()}.",
                f"As randomised: the teams and staff randomised, with {self._planning()}.",
                "As analysed: the analysed teams and staff, with the ICC and R-squared observed in the unconditional "
                f"and baseline-adjusted REML models of each outcome's analysed sample; R-squared between teams capped "
                f"at {R2_B_CAP:g} (an adjusted team variance of 0 would give 1).",
            ],
        )


def power_analysis(data: TrialData, team_size: TeamSize = TEAM_SIZE) -> PowerResult:
    """MDES of every scale at the protocol, randomisation and analysis stages (module docstring)."""
    if team_size not in ("harmonic", "mean"):
        raise ValueError(f"team_size must be 'harmonic' or 'mean', got {team_size!r}")
    protocol = protocol_of(data)
    d = protocol.design
    las = len(data.las)
    planning: tuple[float, float, float] | None = (
        None if d.icc is None else (d.icc, d.r2_between or 0.0, d.r2_within or 0.0)
    )
    j_r, n_r, p_r = randomisation_sample(data)
    proto = rand = None
    note_r = NOT_PRE_SPECIFIED if planning is None else ""
    if planning is not None:
        proto = stage_mdes(d.teams, d.team_size, *planning, d.share_treated, d.las)
        try:
            rand = stage_mdes(j_r, n_r, *planning, p_r, las)
        except ValueError as exc:
            note_r = f"not estimable: {exc}"
    recs = []
    for scale in data.instrument.scale_names:
        df = analysis_frame(data, scale)
        sizes = df.groupby("team_id").size().to_numpy(float)
        teams = df.groupby("team_id")["treated"].first()
        rec = dict(
            outcome=scale,
            n=len(df),
            teams=len(sizes),
            team_size=np.nan,
            p_treated=np.nan,
            icc=np.nan,
            r2_between=np.nan,
            r2_between_raw=np.nan,
            r2_within=np.nan,
            df=np.nan,
            multiplier=np.nan,
            mdes_achieved=np.nan,
            mdes_protocol=proto.mdes if proto is not None else np.nan,
            df_protocol=proto.df if proto is not None else np.nan,
            teams_randomised=j_r,
            size_randomised=n_r,
            p_randomised=p_r,
            mdes_randomisation=rand.mdes if rand is not None else np.nan,
            df_randomisation=rand.df if rand is not None else np.nan,
            note_randomisation=note_r,
            note="",
        )
        recs.append(rec)
        if len(sizes) - 2 - strata_covariates(las) < 1 or teams.nunique() < 2:
            rec["note"] = "not estimable: needs teams in both arms and at least 1 degree of freedom (J - 2 - (LAs - 1))"
            continue
        try:
            vs = variance_shares(df)
        except (ValueError, np.linalg.LinAlgError) as exc:
            rec["note"] = f"not estimable: {exc}"
            continue
        n_bar = team_size_of(sizes, team_size)
        r2b = min(vs["r2_between"], R2_B_CAP)
        a = stage_mdes(len(sizes), n_bar, vs["icc"], r2b, vs["r2_within"], float(teams.mean()), las)
        rec.update(
            team_size=n_bar,
            p_treated=a.p_treated,
            icc=a.icc,
            r2_between=a.r2_between,
            r2_between_raw=vs["r2_between"],
            r2_within=a.r2_within,
            df=a.df,
            multiplier=a.multiplier,
            mdes_achieved=a.mdes,
            note="" if vs["converged"] else f"did not converge: {vs['message']}",
        )
    return PowerResult(pd.DataFrame(recs), team_size, protocol, las)
