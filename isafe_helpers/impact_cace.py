"""Impact strand: compliance and the complier average causal effect (CACE).

Compliance is defined in one place, :data:`COMPLIANCE_COMPONENTS`: a
participant complied when the attendance file shows them attending (at least
one session marked attended) of **every** listed component; by default both
practice-pathway sessions (father engagement and motivational interviewing).
The same rule applies in both arms, so a control participant who attended both
counts as treated (contamination); without an attendance row a participant did
not comply.

The CACE is estimated by two-stage least squares with random assignment as
the instrument for compliance, on the primary analysis sample, with the
primary model's covariates (baseline score, LA fixed effects). Standard errors
are team-clustered (CR1: the sandwich with the small-sample factor
``G/(G-1) * (N-1)/(N-k)``, as Stata and ``sandwich::vcovCL``) and CIs and
p-values use a t distribution with ``G - 1`` degrees of freedom. The effect
size divides the CACE by the same standardiser as the intention-to-treat
Hedges' g (total SD of the unconditional model with the Hedges 2007
clustering factor), i.e. ``g_CACE = CACE * g_ITT / beta_ITT``; its CI scales
the CACE's CI by the same factor (the standardiser's own uncertainty is
ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .estimates import est_row
from .impact import ArmEffect, PrimaryResult, analysis_frame
from .impact_robust import NOT_ESTIMABLE, design
from .loading import TrialData

#: The one definition of compliance: attended every one of these components.
COMPLIANCE_COMPONENTS: tuple[str, ...] = ("father_engagement", "motivational_interviewing")
COMPLIANCE_LABEL = "attended both practice-pathway sessions (father engagement, motivational interviewing)"


def complied(data: TrialData) -> pd.Series:
    """1.0 for participants who complied (:data:`COMPLIANCE_COMPONENTS`), else 0.0; indexed by participant_id."""
    att = data.attendance
    ids = data.participants["participant_id"]
    if att is None or att.empty:
        return pd.Series(0.0, index=pd.Index(ids, name="participant_id"))
    a = att[att["attended"].fillna(False).astype(bool) & att["component"].isin(COMPLIANCE_COMPONENTS)]
    n_comp = a.groupby("person_id")["component"].nunique()
    ok = set(n_comp.index[n_comp == len(COMPLIANCE_COMPONENTS)])
    return pd.Series([1.0 if p in ok else 0.0 for p in ids], index=pd.Index(ids, name="participant_id"))


def tsls_clustered(y, D, Z_excl, W, cluster) -> dict:
    """Just-identified 2SLS of ``y`` on ``[D, W]`` with instrument ``Z_excl`` for ``D``.

    ``W`` holds the exogenous columns (with the intercept). Returns the
    coefficient of ``D``, its CR1 team-clustered SE (factor
    ``G/(G-1) (N-1)/(N-k)``), ``G`` and the first-stage coefficient of the instrument.
    """
    y = np.asarray(y, float)
    X = np.column_stack([D, W])
    Z = np.column_stack([Z_excl, W])
    ZZi = np.linalg.inv(Z.T @ Z)
    Xh = Z @ (ZZi @ (Z.T @ X))
    A = np.linalg.inv(Xh.T @ X)
    b = A @ (Xh.T @ y)
    e = y - X @ b
    codes, uniq = pd.factorize(pd.Series(cluster))
    G, (N, k) = len(uniq), X.shape
    S = np.zeros((G, k))
    np.add.at(S, codes, Xh * e[:, None])
    V = A @ (S.T @ S) @ A.T * (G / (G - 1)) * ((N - 1) / (N - k))
    first = np.linalg.lstsq(Z, np.asarray(D, float), rcond=None)[0][0]
    return dict(beta=float(b[0]), se=float(np.sqrt(V[0, 0])), G=G, first_stage=float(first))


@dataclass
class CACEResult(ArmEffect):
    """Complier average causal effect on one scale."""

    compliance_treatment_pct: float = np.nan
    compliance_control_pct: float = np.nan
    g: float = np.nan
    g_ci_low: float = np.nan
    g_ci_high: float = np.nan

    def rows(self) -> list[dict]:
        c = dict(n=self.n, n_clusters=self.n_clusters)
        note = self.note or f"2SLS, assignment as instrument; compliance: {COMPLIANCE_LABEL}"
        return [
            est_row("cace", self.outcome, "treatment_effect", self.estimate, self.se, self.ci_low, self.ci_high,
                    self.p_value, note=note, **c),
            est_row("cace", self.outcome, "hedges_g_total", self.g, None, self.g_ci_low, self.g_ci_high,
                    note=self.note or "standardised as the ITT hedges_g_total", **c),
            est_row("cace", self.outcome, "compliance_treatment_pct", self.compliance_treatment_pct,
                    note=self.note, **c),
            est_row("cace", self.outcome, "compliance_control_pct", self.compliance_control_pct,
                    note=self.note, **c),
        ]


def cace(data: TrialData, primary: PrimaryResult) -> CACEResult:
    """CACE of the scale of ``primary`` (see the module docstring).

    Parameters
    ----------
    data : the scope's data.
    primary : the scale's primary (ITT) result, whose Hedges' g supplies the standardiser.
    """
    outcome = primary.outcome
    df = analysis_frame(data, outcome)
    res = CACEResult(outcome, len(df), df["team_id"].nunique())
    comp = complied(data)
    df["complied"] = df["participant_id"].map(comp).fillna(0.0).to_numpy(float)
    pct = df.groupby("arm")["complied"].mean() * 100
    res.compliance_treatment_pct = float(pct.get("treatment", np.nan))
    res.compliance_control_pct = float(pct.get("control", np.nan))
    arms = df.groupby("arm")["team_id"].nunique()
    if len(arms) < 2 or arms.min() < 2:
        res.note = NOT_ESTIMABLE
        return res
    if abs(res.compliance_treatment_pct - res.compliance_control_pct) < 1e-9:
        res.note = "not estimable: compliance does not differ between the arms (no first stage)"
        return res
    X, _ = design(df)
    f = tsls_clustered(df["followup"].to_numpy(float), df["complied"].to_numpy(float), X[:, 1],
                       np.delete(X, 1, axis=1), df["team_id"].to_numpy())
    dfree = f["G"] - 1
    tq = stats.t.ppf(0.975, dfree)
    res.estimate, res.se = f["beta"], f["se"]
    res.ci_low, res.ci_high = res.estimate - tq * res.se, res.estimate + tq * res.se
    res.p_value = float(2 * stats.t.sf(abs(res.estimate / res.se), dfree))
    if primary.g is not None and primary.estimate != 0:
        k = primary.g.estimate / primary.estimate
        res.g, res.g_ci_low, res.g_ci_high = res.estimate * k, res.ci_low * k, res.ci_high * k
        if k < 0:
            res.g_ci_low, res.g_ci_high = res.g_ci_high, res.g_ci_low
    return res


def cace_table(results: list[CACEResult]) -> pd.DataFrame:
    """One display row per scale."""
    return pd.DataFrame([dict(outcome=r.outcome, complied_treatment_pct=r.compliance_treatment_pct,
                              complied_control_pct=r.compliance_control_pct, cace=r.estimate, ci_low=r.ci_low,
                              ci_high=r.ci_high, p_value=r.p_value, hedges_g=r.g, note=r.note)
                         for r in results])
