"""Impact strand: minimum detectable effect size (MDES) of the achieved sample and of the protocol's plan.

The two-level cluster design of ``methods.md`` (teams randomised, staff in
teams)::

    MDES = M * sqrt( rho (1 - R2_B) / (P (1 - P) J) + (1 - rho)(1 - R2_W) / (P (1 - P) J n) )
    M    = t(1 - alpha/2; df) + t(power; df),   df = J - 2 - g

with ``J`` teams, ``n`` staff per team, ``P`` the share of teams treated,
``rho`` the ICC, ``R2_B`` and ``R2_W`` the shares of the between-team and
within-team variance explained by the covariates, and ``g`` the number of
covariates (as PowerUp!'s ``CRA2_2``, Dong and Maynard 2013). At 80% power
and 5% two-sided ``M`` tends to 2.80 as ``df`` grows.

What :func:`power_analysis` takes from the data, for each scale, on the primary
model's analysed sample (participants with both waves scored):

- ``J``: analysed teams; ``n``: the **harmonic mean** of the analysed team sizes
  (:data:`TEAM_SIZE`; with unequal teams it is the size that gives the same
  precision for the between-team term, and never exceeds the mean); ``P``: the
  share of analysed teams in the treatment arm.
- ``rho``: the ICC of the unconditional model (intercept and team random
  intercept, REML), the same ``icc`` as the ``primary`` rows and the
  standardiser of Hedges' g.
- ``R2_B = 1 - s2_B(conditional) / s2_B(unconditional)`` and
  ``R2_W = 1 - s2_W(conditional) / s2_W(unconditional)``, the conditional model
  adding the baseline score (the one covariate, ``g = 1``) to the unconditional
  one; neither model has the arm term, so the treatment effect is not counted
  as explained variance. A share below 0 (the covariate "explains" negative
  variance, which REML allows) is set to 0, and ``R2_B`` is 0 when the
  unconditional team variance is 0.
- LA fixed effects (the randomisation strata) are not counted among the
  covariates: the design formula has no blocking term. Counting them would
  remove ``K - 1`` degrees of freedom (``K`` LAs) and could raise ``R2_B``.

The protocol's plan comes from ``protocol.yml`` at the data root, or the
documented default (the ISAFE protocol: 48 teams in 8 LAs of about 10 staff
each, ``P = 0.5``), stated as an assumption (:mod:`isafe_helpers.data.protocol`).
Its MDES uses the plan's ``J``, ``n`` and ``P`` with the same ``rho``, ``R2_B``,
``R2_W`` and ``g`` as the achieved sample of the same scale. The row with
outcome ``protocol_plan`` uses the means of those parameters across the
scales; when the protocol states its own planned MDES, the row
``protocol_plan`` / ``mdes_planned`` carries it.
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
from isafe_helpers.results.table import Col, Table
from isafe_helpers.stats.mixed import fit_formula_free
from isafe_helpers.stats.power import MDES, harmonic_mean, mdes

TeamSize = Literal["harmonic", "mean"]


#: How the achieved team size ``n`` is summarised.
TEAM_SIZE: TeamSize = "harmonic"


#: Covariates counted in the degrees of freedom (the baseline score).
N_COVARIATES = 1


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
    """MDES of the achieved sample and of the protocol's plan, per scale (``frame``)."""

    frame: pd.DataFrame
    plan: MDES | None
    team_size: TeamSize
    protocol: Protocol | None = None

    @property
    def design(self) -> PlannedDesign:
        """The planned design the plan's MDES uses."""
        return protocol_of(None).design if self.protocol is None else self.protocol.design

    def _source(self) -> str:
        """Where the plan comes from: protocol.yml, or the documented assumption."""
        given = self.protocol is not None and not any(a.startswith("planned design") for a in self.protocol.assumptions)
        return "protocol.yml" if given else "assumed: the ISAFE protocol's plan, no protocol.yml"

    def _plan_note(self, what: str) -> str:
        p = self.design
        return (
            f"protocol plan ({self._source()}): J={p.teams} teams in {p.las} LAs, n={p.team_size:g}, "
            f"P={p.share_treated:g}; {what}; df={p.teams - 2 - N_COVARIATES}; 80% power, 5% two-sided"
        )

    def rows(self) -> list[dict]:
        out = []
        how = f"{self.team_size} mean team size"
        for r in self.frame.itertuples():
            if not np.isfinite(r.mdes_achieved):
                out.append(est_row("power", r.outcome, "mdes", None, n=r.n, n_clusters=r.teams, note=r.note))
                continue
            note = (
                f"achieved sample: J={r.teams}, n={r.team_size:.2f} ({how}), P={r.p_treated:.3f}, "
                f"ICC={r.icc:.3f}, R2_B={r.r2_between:.3f}, R2_W={r.r2_within:.3f}, df={r.df}; "
                "80% power, 5% two-sided"
            )
            out.append(
                est_row(
                    "power",
                    r.outcome,
                    "mdes",
                    r.mdes_achieved,
                    n=r.n,
                    n_clusters=r.teams,
                    note="; ".join(s for s in (r.note, note) if s),
                )
            )
            out.append(
                est_row(
                    "power",
                    r.outcome,
                    "mdes_protocol_plan",
                    r.mdes_protocol,
                    note=self._plan_note("same ICC and R2 as this scale"),
                )
            )
        if self.plan is not None:
            p = self.plan
            out.append(
                est_row(
                    "power",
                    "protocol_plan",
                    "mdes",
                    p.mdes,
                    note=self._plan_note(
                        f"ICC={p.icc:.3f}, R2_B={p.r2_between:.3f}, R2_W={p.r2_within:.3f} (means over the scales)"
                    ),
                )
            )
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

    def table(self) -> Table:
        """One row per scale: the design parameters and the MDES achieved beside the protocol's plan.

        A scale whose variance models did not converge keeps its rows and is
        not shown (not available, with the reason).
        """
        t = self.frame.assign(outcome=[label(o) for o in self.frame["outcome"]])
        hide = t["note"].str.startswith("did not converge").to_numpy()
        cols = ["icc", "r2_between", "r2_within", "mdes_achieved", "mdes_protocol"]
        t.loc[hide, cols] = np.nan
        t.loc[hide, "note"] = "not available: " + t.loc[hide, "note"]
        return Table(
            t[
                [
                    "outcome",
                    "teams",
                    "team_size",
                    "p_treated",
                    "icc",
                    "r2_between",
                    "r2_within",
                    "df",
                    "mdes_achieved",
                    "mdes_protocol",
                    "note",
                ]
            ],
            [
                Col("outcome", "Outcome", "text"),
                Col("teams", "Teams", "units"),
                Col("team_size", "Staff per team (harmonic mean)", "number", 1),
                Col("p_treated", "Share of teams treated", "number", 2),
                Col("icc", "ICC", "number", 3),
                Col("r2_between", "R-squared between teams", "number", 2),
                Col("r2_within", "R-squared within teams", "number", 2),
                Col("df", "Degrees of freedom", "int"),
                Col("mdes_achieved", "MDES achieved (SD)", "number", 2),
                Col("mdes_protocol", "MDES of the protocol's plan (SD)", "number", 2),
                Col("note", "Note", "text"),
            ],
            caption="Minimum detectable effect size: achieved and planned",
            notes=[
                "MDES: the smallest true effect (in SD units) the design detects with 80% power at 5% two-sided, "
                "t multiplier on teams minus 3 degrees of freedom; ICC and R-squared from the unconditional and "
                "baseline-adjusted REML models of each outcome's analysed sample.",
                f"Planned: {self.design.describe()} ({self._source()}), with each scale's ICC and R-squared.",
            ],
        )


def power_analysis(data: TrialData, team_size: TeamSize = TEAM_SIZE) -> PowerResult:
    """MDES of every scale's achieved sample beside the protocol's plan (module docstring)."""
    if team_size not in ("harmonic", "mean"):
        raise ValueError(f"team_size must be 'harmonic' or 'mean', got {team_size!r}")
    protocol = protocol_of(data)
    plan_design = protocol.design
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
            r2_within=np.nan,
            df=np.nan,
            multiplier=np.nan,
            mdes_achieved=np.nan,
            mdes_protocol=np.nan,
            note="",
        )
        if len(sizes) - 2 - N_COVARIATES < 1 or teams.nunique() < 2:
            rec["note"] = "not estimable: needs teams in both arms and at least 4 analysed teams"
            recs.append(rec)
            continue
        try:
            vs = variance_shares(df)
        except (ValueError, np.linalg.LinAlgError) as exc:
            rec["note"] = f"not estimable: {exc}"
            recs.append(rec)
            continue
        n_bar = harmonic_mean(sizes) if team_size == "harmonic" else float(sizes.mean())
        a = mdes(len(sizes), n_bar, vs["icc"], vs["r2_between"], vs["r2_within"], float(teams.mean()))
        la_plan = mdes(
            plan_design.teams,
            plan_design.team_size,
            vs["icc"],
            vs["r2_between"],
            vs["r2_within"],
            plan_design.share_treated,
        )
        rec.update(
            team_size=n_bar,
            p_treated=a.p_treated,
            icc=a.icc,
            r2_between=a.r2_between,
            r2_within=a.r2_within,
            df=a.df,
            multiplier=a.multiplier,
            mdes_achieved=a.mdes,
            mdes_protocol=la_plan.mdes,
            note="" if vs["converged"] else f"did not converge: {vs['message']}",
        )
        recs.append(rec)
    t = pd.DataFrame(recs)
    ok = t[np.isfinite(t["mdes_achieved"].astype(float))]
    plan = None
    if len(ok):
        plan = mdes(
            plan_design.teams,
            plan_design.team_size,
            float(ok["icc"].mean()),
            float(ok["r2_between"].mean()),
            float(ok["r2_within"].mean()),
            plan_design.share_treated,
        )
    return PowerResult(t, plan, team_size, protocol)
