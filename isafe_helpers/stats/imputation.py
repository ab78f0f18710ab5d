"""Multiple imputation of a two-wave cluster randomised trial, on arrays.

Arrays in, results out: no trial-data frames here (the frame-level wrapper is
``multiple_imputation`` of the impact strand).

What it does
------------
:func:`mi_arm_effect` imputes missing follow-up and baseline scores by chained
equations (fully conditional specification, FCS; van Buuren 2018, *Flexible
Imputation of Missing Data*, 2nd ed., ch. 4 and 7), each wave from a
two-level normal model on the other wave's current score and the fixed
columns ``F`` (intercept, arm, LA dummies) with a random intercept for team
(:class:`TwoLevelImputer`). The analysis model (follow-up on ``F`` and
baseline, random team intercept, REML) is fitted to every completed data set
(:func:`fit_team_model`'s batch fit), its arm coefficient given the
Kenward-Roger adjusted variance and df (pbkrtest, as the primary model), and
the arm effects pooled by Rubin's rules with the Barnard-Rubin (1999) df
(:func:`rubin`) whose complete-data df ``nu_com`` are the mean KR df. The
Satterthwaite df of lmerTest are not used there: at a zero team variance they
jump to N - p, and MI would claim far more df than the primary model.

The imputation draw: variance components are drawn, never held fixed
--------------------------------------------------------------------
Each call of :meth:`TwoLevelImputer.draw` makes one exact, independent draw
from the posterior predictive distribution of the random-intercept model

    y = X b + u_team + e,   u ~ N(0, s2_B),   e ~ N(0, s2_W),   X = [F, z]

fitted to the rows where ``y`` is observed, under the priors ``p(b) ∝ 1``,
``p(s2_W) ∝ 1 / s2_W`` and a half-Cauchy(0, ``prior_scale``) prior on the
relative team standard deviation ``tau = s_B / s_W = sqrt(theta)``:

1. ``theta`` from its marginal posterior. Integrating ``b`` (flat) and
   ``s2_W`` (Jeffreys) out of the likelihood leaves exactly the restricted
   (REML) likelihood of ``theta`` (Harville 1974, *Biometrika* 61:383-385):
   ``p(theta | y) ∝ p(theta) exp(-f(theta) / 2)`` with ``f`` the profiled
   REML criterion of ``fit_random_intercept``. This 1-D density is evaluated
   on a grid in ``tau`` (a coarse log grid finds where the mass is; then a
   uniform grid over that region joined with a uniform grid over its bulk)
   and sampled by inverting its piecewise-linear CDF: the grid method of
   Gelman et al. (2013, *Bayesian Data Analysis*, 3rd ed., section 5.4) for
   the hierarchical normal model. The REML *estimate* of ``theta`` may be 0;
   the posterior is never a point mass there, and drawn values are positive.
2. ``s2_W | theta, y ~ Q(theta) / chi2(n - p)`` (``Q`` the generalised
   residual sum of squares).
3. ``b | theta, s2_W, y ~ N(b_GLS(theta), s2_W (X'V0^-1 X)^-1)``.
4. each team's ``u_j | b, theta, s2_W, y`` from its conditional normal
   (mean ``theta r_j / (1 + theta n_j)``, variance
   ``s2_W theta / (1 + theta n_j)``, with ``r_j`` the team's residual sum over
   its ``n_j`` observed rows; a team with no observed row draws from
   ``N(0, theta s2_W)``).
5. each missing ``y = x b + u_team + e`` with ``e ~ N(0, s2_W)``.

This is the same target as the Gibbs samplers of pan (Schafer & Yucel 2002,
*JCGS* 11:437-457), jomo and mice's ``2l.pan``, but needs no chain: with a
single random intercept the only non-conjugate parameter is the scalar
``theta``, which is drawn directly. It differs from the previous
implementation (``theta`` held at its REML value, so no team-level
uncertainty whenever the estimate was 0) and from mice's ``2l.lmer``
(Jolani 2018), whose draw of the team variance scales the sum of squared
BLUPs and so collapses to 0 whenever the REML estimate is 0.

The prior on ``tau``: half-Cauchy with scale 0.5 (Gelman 2006, *Bayesian
Analysis* 1:515-534, recommends the half-Cauchy for group-level standard
deviations when the groups are few, with a scale a little above the
plausible values). It is unit-free (``tau`` is a ratio of standard
deviations), has its largest density at 0 (it does not push the team
variance away from 0, unlike an inverse-gamma), and with scale 0.5 its
median ICC is 0.2 and it still gives ICC > 0.5 a prior probability of 0.30:
above the team ICCs usually seen in staff and organisational-climate surveys
(mostly below 0.2), so it restrains only implausible values, which matters
only when the teams are few (single-LA analyses). It also keeps the posterior proper however few the teams (a flat
prior on ``tau`` needs more teams than team-level columns plus one;
``prior_scale=np.inf`` gives it).

Per-team sufficient statistics
------------------------------
Both models are fitted by the package's one REML core
(:mod:`isafe_helpers.stats.reml`): per-team sufficient statistics, the LA
dummies of ``F`` absorbed (a Schur complement onto intercept, arm and ``z``),
teams pooled by size. The REML fit is the exact criterion of
``fit_random_intercept`` (same parameters, same optimum, same
Satterthwaite df; tested to agree: estimate and SE to 1e-8, df to 1e-6).

The imputations are independent chains, run side by side: every array
carries a leading imputation axis, so one chained-equation step is one set
of array operations for all imputations. At national scale (150 LAs, 1,500
teams, 15,040 staff) the five scales take about 2.5 s together, against
about 25 s for the previous implementation on the same machine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, stats

from isafe_helpers.stats.kenward_roger import kenward_roger_from_sums
from isafe_helpers.stats.reml import Layout, Model, optimise, satterthwaite, team_codes

__all__ = ["TwoLevelImputer", "fit_team_model", "mi_arm_effect", "rubin", "PRIOR_SCALE"]

#: Scale of the half-Cauchy prior on tau = s_B / s_W (module docstring).
PRIOR_SCALE = 0.5
# Posterior grid for tau: coarse log grid (plus 0); two fine uniform grids (region, bulk) of _TAU_FINE points;
# points required in the bulk; log-density cut-offs that build and that keep a region.
_TAU_COARSE = np.concatenate(([0.0], np.geomspace(1e-4, 1e3, 36)))
_TAU_FINE = 25
_TAU_BULK = 12
_LOG_CUT = 15.0
_LOG_OPEN = 12.0


# ---------------------------------------------------------------------------
# Rubin's rules
# ---------------------------------------------------------------------------


def rubin(estimates, variances, df_complete: float, df_max: float | None = None) -> dict:
    """Pool estimates by Rubin's rules with Barnard-Rubin (1999) degrees of freedom.

    ``T = W + (1 + 1/m) B``; ``lambda = (1 + 1/m) B / T``;
    ``nu_old = (m - 1) / lambda^2``; ``nu_obs = (nu_com + 1)/(nu_com + 3) nu_com (1 - lambda)``;
    ``nu = 1 / (1/nu_old + 1/nu_obs)`` (always below ``nu_com``). ``df_max``, when
    given, caps ``nu`` (the impact strand passes the complete-case model's
    Kenward-Roger df, so MI never claims more df than the primary model).

    >>> r = rubin([1.0, 1.2], [0.04, 0.04], 30.0)
    >>> round(float(r["estimate"]), 6), round(r["se"] ** 2, 6)
    (1.1, 0.07)
    """
    q = np.asarray(estimates, float)
    u = np.asarray(variances, float)
    m = q.size
    qbar, w = q.mean(), u.mean()
    b = q.var(ddof=1) if m > 1 else 0.0
    t = w + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t if t > 0 else 0.0
    nu_com = float(df_complete)
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
    nu = nu_obs if lam == 0 else 1 / ((lam**2) / (m - 1) + 1 / nu_obs)
    if df_max is not None and np.isfinite(df_max):
        nu = min(nu, float(df_max))
    se = math.sqrt(t)
    tq = stats.t.ppf(0.975, nu)
    return dict(
        estimate=qbar,
        se=se,
        df=nu,
        ci_low=qbar - tq * se,
        ci_high=qbar + tq * se,
        p_value=float(2 * stats.t.sf(abs(qbar / se), nu)),
        fmi=lam,
    )


# ---------------------------------------------------------------------------
# REML fit of the analysis model
# ---------------------------------------------------------------------------


def _coef_index(lay: Layout, coef: int) -> int:
    if coef in lay.dcols:
        raise ValueError("the coefficient of interest cannot be an absorbed indicator column")
    return lay.rcols.index(coef) if coef < lay.p else len(lay.rcols) + (coef - lay.p)


def _message(kind: str, converged: bool, theta: float) -> str:
    """How the REML optimiser ended (:func:`isafe_helpers.stats.reml.optimise`), in words."""
    text = {
        "bad": "REML criterion is not finite anywhere on the theta grid",
        "top": "theta reached the upper search limit: within-team variance is essentially 0",
        "interior": f"interior optimum theta = {theta:.6g}",
    }.get(kind, "optimum at the boundary: team variance = 0")
    return ("" if converged else "NOT converged: ") + text


def _fit(m: Model, k: int) -> list[dict]:
    """REML fit of every batch member; coefficient ``k`` of ``b_R``."""
    theta, how, d = optimise(m)
    s2w = d["Q"] / (m.N - m.p)
    out = []
    for j in range(m.M):
        var = s2w[j] * d["M"][j, k, k]
        out.append(
            dict(
                estimate=float(d["bR"][j, k] + m.b0R[j, k]),
                var=float(var),
                se=float(np.sqrt(var)),
                df=float(satterthwaite(m, d, s2w[j], j)[k]),
                theta=float(theta[j]),
                team_variance=float(theta[j] * s2w[j]),
                residual_variance=float(s2w[j]),
                reml_criterion=float(d["f"][j]),
                converged=bool(how["converged"][j]),
                message=_message(how["kind"][j], how["converged"][j], theta[j]),
            )
        )
    return out


def fit_team_model(y, F, Z, groups, coef: int = 1) -> dict:
    """REML fit of ``y = [F, Z] b + u_team + e`` for one coefficient, from per-team sums.

    The same model, criterion and Satterthwaite df as
    ``fit_random_intercept`` of the mixed-model module with design
    ``np.column_stack([F, Z])``, but ``F``'s columns must be constant within
    team, and 0/1 columns of ``F`` with disjoint supports (LA dummies) are
    absorbed (:mod:`isafe_helpers.stats.reml`), so the cost does not grow with their number.

    ``groups``: team labels (any values); ``coef``: column index into
    ``[F, Z]`` of the coefficient reported (the arm column of ``F`` by default). Returns a dict: ``estimate, var, se, df,
    theta, team_variance, residual_variance, reml_criterion, converged,
    message``.
    """
    y = np.asarray(y, float).reshape(-1)
    codes, G = team_codes(groups)
    Z = np.asarray(Z, float).reshape(y.size, -1)
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(Z))):
        raise ValueError("y and Z must be finite (drop missing values first)")
    lay = Layout(F, codes, G, keep=(coef,))
    m = Model(lay, codes, np.ones(y.size, bool), Z.shape[1])
    m.set_data(y[m.rows][None], Z[m.rows][None], check_rank=True)
    return _fit(m, _coef_index(lay, coef))[0]


# ---------------------------------------------------------------------------
# the imputer
# ---------------------------------------------------------------------------


def _sample_grid(x: np.ndarray, logd: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws, one per row, from densities linear between grid points ``x`` (values ``exp(logd)``)."""
    d = np.exp(logd - np.max(logd, axis=1, keepdims=True))
    h = np.diff(x, axis=1)
    mass = 0.5 * (d[:, :-1] + d[:, 1:]) * h
    cdf = np.concatenate((np.zeros((x.shape[0], 1)), np.cumsum(mass, axis=1)), axis=1)
    target = u * cdf[:, -1]
    i = np.clip(np.sum(cdf <= target[:, None], axis=1) - 1, 0, h.shape[1] - 1)
    rows = np.arange(x.shape[0])
    rem = target - cdf[rows, i]
    d0, d1, hi = d[rows, i], d[rows, i + 1], h[rows, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (d1 - d0) / hi
        lin = np.where(d0 > 0, rem / d0, 0.0)
        quad = (-d0 + np.sqrt(np.maximum(d0 * d0 + 2.0 * slope * rem, 0.0))) / slope  # d0 s + slope s^2/2 = rem
    s = np.where(np.abs(slope) * hi < 1e-10 * np.maximum(d0, d1), lin, quad)
    return x[rows, i] + np.clip(np.nan_to_num(s), 0.0, hi)


class TwoLevelImputer:
    """Posterior-predictive draws for one incomplete variable from a random-intercept normal model.

    ``y = [F, z] b + u_team + e`` fitted to the rows where ``y`` is observed
    (``miss`` False), with ``z`` the other wave's current score; every draw
    draws ``theta``, ``s2_W``, ``b`` and the team effects from their joint
    posterior (module docstring, steps 1-5), then the missing values.

    ``F`` (N, p): team-level fixed columns; ``groups`` (N,): team labels;
    ``miss`` (N,) bool; ``prior_scale``: scale of the half-Cauchy
    prior on ``tau = sqrt(theta)`` (``np.inf``: flat prior on ``tau``).
    ``keep``: columns of ``F`` not to absorb (no effect on the draws).
    ``draw_theta=False`` holds ``theta`` at its REML estimate on the current
    data instead of drawing it (the previous, improper scheme: no team-level
    uncertainty when the estimate is 0); for comparisons only.
    :meth:`draw` takes one data set (``y``, ``z`` of shape (N,)) or a batch
    (shape (M, N), one independent draw for each row).
    """

    def __init__(
        self,
        F,
        groups,
        miss,
        prior_scale: float = PRIOR_SCALE,
        keep=(),
        draw_theta: bool = True,
        layout: Layout | None = None,
    ):
        codes, G = team_codes(groups)
        self.codes, self.miss = codes, np.asarray(miss, bool)
        self.lay = layout if layout is not None else Layout(F, codes, G, keep=keep)
        self.model = Model(self.lay, codes, ~self.miss, 1)
        self.mrows = np.flatnonzero(self.miss)
        if not np.isfinite(prior_scale) and self.model.Gm - len(self.lay.rcols) - self.lay.L <= 1:
            raise ValueError("the flat prior on tau needs more teams than team-level columns plus one")
        self.prior_scale = float(prior_scale)
        self.draw_theta = bool(draw_theta)
        self._region: np.ndarray | None = None
        self._bulk: np.ndarray | None = None
        self.last: dict = {}

    def log_prior(self, tau: np.ndarray) -> np.ndarray:
        if not np.isfinite(self.prior_scale):
            return np.zeros_like(tau)
        return -np.log1p((tau / self.prior_scale) ** 2)

    def log_posterior_tau(self, tau: np.ndarray) -> np.ndarray:
        """Log marginal posterior density of ``tau`` (M, T), up to a constant, at the current data."""
        return -0.5 * self.model.crit_many(tau * tau) + self.log_prior(tau)

    @staticmethod
    def _spans(x: np.ndarray, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From sorted grids ``x`` (M, T) and log densities: the region where ``lp`` is within ``_LOG_CUT``
        of its maximum and the bulk where it is within 3, each widened by one grid point on both sides."""
        top = lp.max(axis=1, keepdims=True)
        rows = np.arange(x.shape[0])[:, None]
        out = []
        for cut in (_LOG_CUT, 3.0):
            keep = lp > top - cut
            first = np.argmax(keep, axis=1)
            last = keep.shape[1] - 1 - np.argmax(keep[:, ::-1], axis=1)
            idx = np.column_stack([np.maximum(first - 1, 0), np.minimum(last + 1, keep.shape[1] - 1)])
            out.append(x[rows, idx])
        return out[0], out[1]

    def _coarse_spans(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.broadcast_to(_TAU_COARSE, (self.model.M, _TAU_COARSE.size))
        lp = self.log_posterior_tau(x)
        if not np.isfinite(lp).any(axis=1).all():
            raise ValueError("posterior of the team variance is not finite anywhere on the grid")
        return self._spans(x, np.where(np.isfinite(lp), lp, -np.inf))

    def draw_tau(self, rng) -> np.ndarray:
        """One draw of ``tau`` per batch member from its marginal posterior, by the grid method.

        The grid is the union of two uniform grids of ``_TAU_FINE`` points: one
        over a region at whose ends the log density is more than ``_LOG_OPEN``
        below its maximum (built with ``_LOG_CUT``; the mass left out is
        negligible), one over the bulk (log density within 3 of its maximum),
        so that heavy-tailed posteriors (few teams) are resolved where the mass
        is; at least ``_TAU_BULK`` points must fall in the bulk. Region and bulk
        are found on a coarse log grid, then kept for the next draw of the same
        imputer (the posterior moves little between cycles) and re-found,
        widened or moved whenever they no longer meet those conditions.
        """
        M = self.model.M
        kept, kept_bulk = self._region, self._bulk
        fresh = kept is None or kept_bulk is None or kept.shape[0] != M
        region, bulk = (
            self._coarse_spans() if fresh or kept is None or kept_bulk is None else (kept.copy(), kept_bulk.copy())
        )
        refound = np.full(M, fresh)
        done = np.zeros(M, bool)
        u01 = np.linspace(0.0, 1.0, _TAU_FINE)
        xs, lps = np.empty((M, 2 * _TAU_FINE)), np.empty((M, 2 * _TAU_FINE))
        for _ in range(8):
            x = np.sort(
                np.concatenate(
                    [
                        region[:, :1] + (region[:, 1:] - region[:, :1]) * u01,
                        bulk[:, :1] + (bulk[:, 1:] - bulk[:, :1]) * u01,
                    ],
                    axis=1,
                ),
                axis=1,
            )
            lp = self.log_posterior_tau(x)
            lp = np.where(np.isfinite(lp), lp, -np.inf)
            top = lp.max(axis=1, keepdims=True)
            edge = lp[:, [0, -1]] > top - _LOG_OPEN  # (a margin below _LOG_CUT keeps the region for longer)
            open_lo = edge[:, 0] & (region[:, 0] > 0)
            open_hi = edge[:, 1] & (region[:, 1] < _TAU_COARSE[-1])
            enough = np.sum(lp > top - 3.0, axis=1) >= _TAU_BULK
            ok = ~done & ~open_lo & ~open_hi & enough
            xs[ok], lps[ok] = x[ok], lp[ok]
            done |= ok
            if done.all():
                break
            # mass beyond the region: re-find it on the coarse grid, or widen a region already re-found
            out = ~done & (open_lo | open_hi)
            if (out & ~refound).any():
                cr, cb = self._coarse_spans()
                sel = out & ~refound
                region[sel], bulk[sel] = cr[sel], cb[sel]
            wid = out & refound
            region[wid & open_lo, 0] /= 4.0
            region[wid & open_hi, 1] = np.minimum(4.0 * region[wid & open_hi, 1], _TAU_COARSE[-1])
            refound |= out
            # too few points in the bulk: move the bulk grid to where the bulk now is
            move = ~done & ~out
            bulk[move] = self._spans(x, lp)[1][move]
        xs[~done], lps[~done] = x[~done], lp[~done]
        self._region, self._bulk = region, self._spans(xs, lps)[1]
        return _sample_grid(xs, lps, rng.random(M))

    def draw(self, y: np.ndarray, z: np.ndarray, rng) -> np.ndarray:
        """A copy of ``y`` with its missing entries drawn; the parameters drawn are kept in ``self.last``."""
        single = np.ndim(y) == 1
        Y, Zf = np.atleast_2d(y), np.atleast_2d(z)
        M = Y.shape[0]
        m = self.model
        obs = m.rows
        # shift y and z to mean 0 when the constant is in the span of F (exactly equivariant:
        # only the intercept moves), so that no sufficient statistic carries a large mean
        yo, zo = Y[:, obs], Zf[:, obs]
        if self.lay.has_const:
            my, mz = yo.mean(axis=1, keepdims=True), zo.mean(axis=1, keepdims=True)
        else:
            my, mz = np.zeros((M, 1)), np.zeros((M, 1))
        m.set_data(yo - my, (zo - mz)[:, :, None], check_rank=not self.last, centre=not self.lay.has_const)
        if self.draw_theta:
            tau = self.draw_tau(rng)
        else:
            tau = np.sqrt(optimise(m)[0])
        theta = tau * tau
        d = m.solve(theta[:, None])
        dD, B, S, cD = (d[k][:, 0] for k in ("dD", "B", "S", "cD"))  # B: (M, L, r)
        bR_hat, bD_hat = d["bR"][:, 0], d["bD"][:, 0]
        den = 1.0 + theta[:, None] * m.n  # (M, Gm)
        # Q by the residual route at the GLS solution (no cancellation); s2_W | theta
        Q = m.rss(bR_hat, m.team_resid(bR_hat, bD_hat), 1.0 / (m.n * den))
        s2w = Q / rng.chisquare(m.N - m.p, M)
        # b_R ~ N(bhat_R, s2w S^-1); b_D | b_R ~ N((c_D - B b_R) / dD, s2w / dD)
        Ls = np.linalg.cholesky(S)
        z_r = np.linalg.solve(np.swapaxes(Ls, 1, 2), rng.standard_normal((M, m.r))[:, :, None])[:, :, 0]
        bR = bR_hat + np.sqrt(s2w)[:, None] * z_r
        bD = (cD - (B @ bR[:, :, None])[:, :, 0]) / dD + np.sqrt(s2w[:, None] / dD) * rng.standard_normal(dD.shape)
        # team effects given b; teams without observed rows from N(0, theta s2_W)
        res = m.team_resid(bR, bD)
        u = np.sqrt(theta * s2w)[:, None] * rng.standard_normal((M, self.lay.G))
        u[:, m.teams] = theta[:, None] * res / den + np.sqrt(s2w[:, None] * theta[:, None] / den) * rng.standard_normal(
            (M, m.Gm)
        )
        out = Y.copy()
        mr = self.mrows
        cm = self.codes[mr]
        fit = m.fitted(bD + m.b0D, bR + m.b0R, cm, (Zf[:, mr] - mz)[:, :, None]) + my
        out[:, mr] = fit + u[:, cm] + np.sqrt(s2w)[:, None] * rng.standard_normal((M, mr.size))
        self.last = dict(theta=theta, tau=tau, residual_variance=s2w, team_variance=theta * s2w)
        return out[0] if single else out


def _kenward_roger_fits(analysis: Model, fits: list[dict], coef: int) -> np.ndarray:
    """Kenward-Roger variance and df of coefficient ``coef`` of ``[F, z]`` for each completed data set.

    ``analysis``: the analysis model on the completed data (its team
    statistics, :meth:`isafe_helpers.stats.reml.Model.team_sums`); ``fits``:
    its REML fits of :func:`_fit` (their variance components).
    Returns (M, 2): KR-adjusted variance, KR df (pbkrtest; kenward_roger module).
    """
    out = np.empty((len(fits), 2))
    for j, f in enumerate(fits):
        res = kenward_roger_from_sums(analysis.team_sums(j), f["team_variance"], f["residual_variance"])
        out[j] = res.cov_beta_adj[coef, coef], res.df[coef]
    return out


# ---------------------------------------------------------------------------
# the whole multiple imputation
# ---------------------------------------------------------------------------


def mi_arm_effect(
    y_followup,
    y_baseline,
    F,
    groups,
    arm_col: int = 1,
    n_imputations: int = 20,
    n_cycles: int = 5,
    rng=None,
    prior_scale: float = PRIOR_SCALE,
    draw_theta: bool = True,
    df_max: float | None = None,
) -> dict:
    """Arm effect with missing follow-up and baseline scores multiply imputed (module docstring).

    Parameters
    ----------
    y_followup, y_baseline : (N,) scores, NaN where missing.
    F : (N, p) team-level fixed columns: intercept, arm, LA dummies (as the
        impact strand's ``design(df, covariates=())`` builds them).
    groups : (N,) team labels (any values, e.g. team ids or codes).
    arm_col : column of ``F`` holding the arm (0/1).
    n_imputations, n_cycles : imputations and chained-equation cycles (one cycle
        when only one wave has missing values).
    rng : ``numpy.random.Generator`` or seed (``None``: fresh entropy).
    prior_scale : scale of the half-Cauchy prior on ``tau = s_B / s_W``.
    draw_theta : False holds the imputation models' ``theta`` at its REML
        estimate (the previous scheme, for comparisons only).
    df_max : optional cap on the pooled df (:func:`rubin`).

    Each imputation starts from random draws of the observed values, then
    alternates follow-up given baseline and baseline given follow-up; the
    imputations are independent chains, run side by side as one batch. The
    analysis model (follow-up on ``F`` and baseline, random team intercept,
    REML) is fitted to every completed data set and the arm effects pooled by
    :func:`rubin` on the fits' Kenward-Roger variances with the complete-data df
    the mean of their Kenward-Roger df (so the pooled df never exceed it).

    Returns a dict: ``estimate, se, df, ci_low, ci_high, p_value, fmi`` (pooled),
    ``n_imputations, n_missing_followup, n_missing_baseline, df_complete``,
    per imputation ``estimates, variances, dfs`` (KR), ``theta_analysis`` (REML theta of
    the completed-data fit), and the drawn ``theta_followup`` /
    ``theta_baseline`` (imputations x cycles; no columns when that wave is
    complete). Raises ``ValueError`` when a model is not estimable.
    """
    c = _impute(y_followup, y_baseline, F, groups, arm_col, n_imputations, n_cycles, rng, prior_scale, draw_theta)
    out = _pool_completed(c, c["Yf"], df_max)
    out.update(
        n_imputations=c["M"],
        n_missing_followup=int(c["miss_f"].sum()),
        n_missing_baseline=int(c["miss_b"].sum()),
        theta_followup=c["draws"]["followup"],
        theta_baseline=c["draws"]["baseline"],
    )
    return out


def _impute(y_followup, y_baseline, F, groups, arm_col, n_imputations, n_cycles, rng, prior_scale, draw_theta) -> dict:
    """The completed data sets of :func:`mi_arm_effect`: ``Yf``, ``Yb`` (M, N) and what pooling them needs."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    yf0 = np.asarray(y_followup, float).reshape(-1)
    yb0 = np.asarray(y_baseline, float).reshape(-1)
    codes, G = team_codes(groups)
    F = np.asarray(F, float)
    N, M = yf0.size, int(n_imputations)
    if yb0.size != N or codes.size != N or F.shape[0] != N:
        raise ValueError("y_followup, y_baseline, F and groups need one row per participant")
    if M < 2:
        raise ValueError("need at least two imputations")
    lay = Layout(F, codes, G, keep=(arm_col,))
    k = _coef_index(lay, arm_col)
    miss_f, miss_b = np.isnan(yf0), np.isnan(yb0)
    if (~miss_f).sum() < 2 or (~miss_b).sum() < 2:
        raise ValueError("too few observed scores to impute")
    imputers = {
        key: TwoLevelImputer(F, codes, miss, prior_scale=prior_scale, draw_theta=draw_theta, layout=lay)
        for key, miss in (("followup", miss_f), ("baseline", miss_b))
        if miss.any()
    }
    cycles = n_cycles if len(imputers) == 2 else 1
    draws = {key: np.full((M, cycles if key in imputers else 0), np.nan) for key in ("followup", "baseline")}
    Yf, Yb = np.tile(yf0, (M, 1)), np.tile(yb0, (M, 1))
    Yf[:, miss_f] = rng.choice(yf0[~miss_f], (M, miss_f.sum()))
    Yb[:, miss_b] = rng.choice(yb0[~miss_b], (M, miss_b.sum()))
    for c in range(cycles):
        if "followup" in imputers:
            Yf = imputers["followup"].draw(Yf, Yb, rng)
            draws["followup"][:, c] = imputers["followup"].last["theta"]
        if "baseline" in imputers:
            Yb = imputers["baseline"].draw(Yb, Yf, rng)
            draws["baseline"][:, c] = imputers["baseline"].last["theta"]
    return dict(
        Yf=Yf,
        Yb=Yb,
        draws=draws,
        lay=lay,
        codes=codes,
        k=k,
        arm_col=arm_col,
        M=M,
        miss_f=miss_f,
        miss_b=miss_b,
    )


def _pool_completed(c: dict, Yf: np.ndarray, df_max: float | None) -> dict[str, Any]:
    """Fit the analysis model to each completed data set (follow-up ``Yf``, baseline ``c["Yb"]``) and pool."""
    lay, codes, Yb = c["lay"], c["codes"], c["Yb"]
    analysis = Model(lay, codes, np.ones(codes.size, bool), 1)
    analysis.set_data(Yf[:, analysis.rows], Yb[:, analysis.rows, None], check_rank=True)
    fits = _fit(analysis, c["k"])
    est = np.array([f["estimate"] for f in fits])
    kr = _kenward_roger_fits(analysis, fits, c["arm_col"])
    var = kr[:, 0]
    dfs = kr[:, 1]
    df_com = float(np.mean(dfs))
    out: dict[str, Any] = {key: float(v) for key, v in rubin(est, var, df_com, df_max).items()}
    out.update(
        df_complete=df_com,
        estimates=est,
        variances=var,
        dfs=dfs,
        theta_analysis=np.array([f["theta"] for f in fits]),
    )
    return out


# ---------------------------------------------------------------------------
# delta adjustment (MNAR sensitivity) and its tipping point
# ---------------------------------------------------------------------------

#: Largest |delta| (in SD units) the tipping-point search tries before it says "beyond".
DELTA_MAX = 8.0
#: First step of the outward search (SD units); steps double until the interval covers 0.
DELTA_STEP = 0.25


def mi_delta_tipping_point(
    y_followup,
    y_baseline,
    F,
    groups,
    shifted,
    sd: float,
    arm_col: int = 1,
    n_imputations: int = 20,
    n_cycles: int = 5,
    rng=None,
    prior_scale: float = PRIOR_SCALE,
    df_max: float | None = None,
    delta_max: float = DELTA_MAX,
    xtol: float = 1e-4,
) -> dict:
    """Delta-adjusted (MNAR) multiple imputation and the delta at which the 95% CI first includes 0.

    The data are imputed once, as :func:`mi_arm_effect` imputes them (missing
    at random given the imputation model); then the imputed follow-up scores
    of the rows ``shifted`` (the intervention arm) are moved by ``delta * sd``
    and the analysis model refitted and pooled (Rubin's rules, Barnard-Rubin
    df on Kenward-Roger complete-data df, ``df_max`` cap), for each delta
    tried. This is the "delta-adjustment after imputation" of the
    pattern-mixture approach (Carpenter & Kenward 2013, *Multiple Imputation
    and its Application*, ch. 10; Cro et al. 2020, *Stat Med* 39:2815): the
    same imputations at every delta, so the pooled interval moves smoothly
    with delta. Observed scores are never moved.

    The tipping point is signed: delta moves the intervention arm's imputed
    scores towards no effect (negative when the estimate at delta 0 is
    positive). From 0 the search steps outwards (``DELTA_STEP``, doubling)
    until the interval covers 0, then finds the crossing by Brent's method
    (to ``xtol`` SD): the delta at which the interval's end nearer 0 is 0.

    Returns a dict: ``tipping_point`` (NaN when there is none, with
    ``reason``), ``at_zero`` (the pooled result at delta 0, the MAR analysis),
    ``at_tipping`` (pooled at the tipping point), ``n_shifted`` (imputed
    scores shifted per data set), ``sd``, and ``evaluated`` (delta -> pooled
    result, every delta the search fitted).
    """
    c = _impute(y_followup, y_baseline, F, groups, arm_col, n_imputations, n_cycles, rng, prior_scale, True)
    rows = c["miss_f"] & np.asarray(shifted, bool).reshape(-1)
    evaluated: dict[float, dict] = {}

    def at(delta: float) -> dict:
        if delta not in evaluated:
            Yf = c["Yf"].copy()
            Yf[:, rows] += delta * sd
            evaluated[delta] = _pool_completed(c, Yf, df_max)
        return evaluated[delta]

    r0 = at(0.0)
    out: dict[str, Any] = dict(
        tipping_point=np.nan, reason="", at_zero=r0, at_tipping=None, n_shifted=int(rows.sum()), sd=float(sd)
    )
    if r0["ci_low"] <= 0 <= r0["ci_high"]:
        out["reason"] = "the 95% CI of the analysis at delta 0 (missing at random) already includes 0"
    elif not rows.any():
        out["reason"] = "no follow-up score of the intervention arm is imputed, so no delta moves the estimate"
    elif not (np.isfinite(sd) and sd > 0):
        out["reason"] = "the SD of the outcome is not positive"
    if out["reason"]:
        out["evaluated"] = evaluated
        return out
    sign = -1.0 if r0["estimate"] > 0 else 1.0
    end = "ci_low" if r0["estimate"] > 0 else "ci_high"

    def gap(d: float) -> float:  # > 0 while the interval excludes 0 (d the unsigned size of delta)
        return sign * -at(sign * d)[end]

    lo, hi = 0.0, DELTA_STEP
    while gap(hi) > 0:
        if hi >= delta_max:
            out["reason"] = f"the 95% CI excludes 0 for every delta up to {delta_max:g} SD"
            out["evaluated"] = evaluated
            return out
        lo, hi = hi, min(2 * hi, delta_max)
    d = float(optimize.brentq(gap, lo, hi, xtol=xtol))
    out.update(tipping_point=sign * d, at_tipping=at(sign * d), evaluated=evaluated)
    return out
