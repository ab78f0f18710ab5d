"""Linear mixed model with a single random intercept, fitted by exact profiled REML.

Model
-----
    y = X b + u_team + e,   u_team ~ N(0, s2_B),   e ~ N(0, s2_W)

fitted by the package's REML core (:mod:`isafe_helpers.stats.reml`, whose
docstring gives the maths): ``theta = s2_B / s2_W``, ``s2_W`` and ``b``
profiled out, the profiled REML criterion (-2 x REML log-likelihood, the
constant as in lme4's ``REMLcrit``) computed from per-team sums
(``O(N p^2)`` once, then ``O(K p^2 + p^3)`` per evaluation with ``K`` the
number of distinct team sizes, ``O(G p^2)`` for its derivatives) and minimised over ``theta >= 0`` by a grid
over ``log theta`` and a safeguarded Newton iteration with analytic
derivatives; the ``theta = 0`` boundary is taken when the one-sided
derivative there is non-negative (as lme4 does).

Standard errors are the conventional ones, ``cov(b) = s2_W (X'V0^{-1}X)^{-1}``
at the REML estimates (lme4, SAS, Stata).  Denominator degrees of freedom are
Satterthwaite's, computed exactly as lmerTest does it (variance parameters
``(tau, sigma)`` with ``tau = sqrt(theta)``, analytic derivatives; see the
core).  Kenward-Roger inference is :meth:`MixedFit.kenward_roger`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from isafe_helpers.stats.kenward_roger import KRResult, kenward_roger_from_sums
from isafe_helpers.stats.reml import Layout, Model, optimise, satterthwaite

__all__ = ["MixedFit", "fit_random_intercept", "fit_formula_free", "formula_free_design"]


@dataclass(frozen=True)
class MixedFit:
    """Result of :func:`fit_random_intercept` / :func:`fit_formula_free`."""

    names: list[str]
    beta: np.ndarray
    cov_beta: np.ndarray
    se: np.ndarray
    team_variance: float  # s2_B
    residual_variance: float  # s2_W
    icc: float
    reml_criterion: float  # -2 * REML log-likelihood (lme4's REMLcrit)
    n: int
    n_groups: int
    converged: bool
    message: str
    df: np.ndarray  # Satterthwaite denominator df for each coefficient (as lmerTest)
    # the REML core's model (Kenward-Roger takes its team sums of X from it), the profiled criterion
    # (icc_interval) and the cached Kenward-Roger result; not compared, not shown
    _kr: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def kenward_roger(self) -> KRResult:
        """Kenward-Roger adjusted covariance, SEs and df (as ``lmerTest`` with ddf = "Kenward-Roger"),
        evaluated at this fit's REML estimates; computed on first call, then cached.
        See :mod:`isafe_helpers.stats.kenward_roger`; ``.test(L)`` gives a KR F test."""
        if "result" not in self._kr:
            if "model" not in self._kr:
                raise ValueError("this MixedFit does not carry its design: refit with fit_random_intercept")
            sums = self._kr["model"].team_sums(0)
            self._kr["result"] = kenward_roger_from_sums(
                sums, self.team_variance, self.residual_variance, beta=self.beta, names=self.names
            )
        return self._kr["result"]

    def icc_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Profile-likelihood interval of the ICC, ``s2_B / (s2_B + s2_W)``.

        The ICC is a monotone function of ``theta = s2_B / s2_W`` alone, and
        the profiled REML criterion ``f(theta)`` (:mod:`isafe_helpers.stats.reml`) already
        maximises over ``s2_W`` and the fixed effects, so the profile
        likelihood interval is ``{theta : f(theta) - f(theta_hat) <=
        chi2_1(level)}``, mapped to ``theta / (1 + theta)``. Its ends are
        found by root finding on ``f``; an end that the set reaches (theta = 0,
        where the set includes it) is 0. The interval therefore lies in
        [0, 1]. At theta_hat = 0 the chi-square(1) cut-off is conservative
        (the boundary distribution is a 50:50 mixture). This is the interval
        lme4's REML deviance function gives when profiled on its relative SD
        (``sqrt(theta)``; R reference in tests/fixtures/icc_profile).
        """
        crit = self._kr.get("crit")
        if crit is None:
            raise ValueError("this MixedFit does not carry its design: refit with fit_random_intercept")
        theta_hat = self.team_variance / self.residual_variance
        f_hat = float(crit(theta_hat))
        cut = float(stats.chi2.ppf(level, 1))

        def g(th: float) -> float:
            return float(crit(th)) - f_hat - cut

        lo = 0.0
        if theta_hat > 0 and g(0.0) > 0:
            lo = optimize.brentq(g, 0.0, theta_hat, xtol=1e-14 * max(theta_hat, 1e-12), rtol=1e-13, maxiter=500)
        hi_b = max(theta_hat, 1e-6) * 2.0
        while g(hi_b) <= 0:
            hi_b *= 4.0
            if hi_b > 1e12:
                return lo / (1.0 + lo), 1.0
        hi = optimize.brentq(g, theta_hat, hi_b, xtol=1e-14 * hi_b, rtol=1e-13, maxiter=500)
        return float(lo / (1.0 + lo)), float(hi / (1.0 + hi))

    def tidy(self) -> pd.DataFrame:
        """One row per fixed effect: estimate, SE, Satterthwaite df, t, two-sided
        p-value and t-based 95% confidence interval (normal if df is not finite)."""
        beta = np.asarray(self.beta, dtype=float)
        se = np.asarray(self.se, dtype=float)
        df = np.asarray(self.df, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = beta / se
        finite = np.isfinite(df) & (df > 0)
        p = np.where(finite, 2.0 * stats.t.sf(np.abs(t), np.where(finite, df, 1.0)), 2.0 * stats.norm.sf(np.abs(t)))
        q = np.where(finite, stats.t.ppf(0.975, np.where(finite, df, 1.0)), stats.norm.ppf(0.975))
        return pd.DataFrame(
            {
                "term": list(self.names),
                "estimate": beta,
                "se": se,
                "df": df,
                "t": t,
                "p_value": p,
                "ci_low": beta - q * se,
                "ci_high": beta + q * se,
            }
        )


def _message(kind: str, converged: bool, theta: float, f1_0: float, grad: float, f2: float) -> str:
    """How the REML optimiser ended (:func:`isafe_helpers.stats.reml.optimise`), in words."""
    if kind == "bad":
        return "REML criterion is not finite anywhere on the theta grid"
    if kind == "top":
        return f"theta = s2_B/s2_W reached the upper search limit {theta:.0e}: within-team variance is essentially zero"
    if kind == "at0":
        return (
            "converged at the boundary: team variance = 0 "
            f"(one-sided derivative of REML criterion at 0 = {f1_0:.3g} >= 0)"
        )
    if kind == "zero":
        text = f"optimum at the boundary: team variance = 0 (one-sided derivative of REML criterion at 0 = {f1_0:.3g})"
    else:
        text = (
            f"converged: interior optimum theta = {theta:.6g}, d f / d log(theta) = {grad:.2e}, d2f/dtheta2 = {f2:.3g}"
        )
    return ("" if converged else "NOT converged: ") + text


def _model(y: np.ndarray, X: np.ndarray, codes: np.ndarray, n_groups: int) -> Model:
    """The REML core's model of one data set with every column of ``X`` row-level (nothing absorbed), not centred."""
    N, p = X.shape
    m = Model(Layout(np.empty((N, 0)), codes, n_groups), codes, np.ones(N, bool), p)
    m.set_data(y[m.rows][None], X[m.rows][None], centre=False)
    return m


def _check_rank(xtx: np.ndarray, X: np.ndarray, names: list[str]) -> None:
    """Raise, naming the columns, if ``X`` (with cross products ``xtx``) is rank deficient."""
    dg = np.sqrt(np.diag(xtx))
    if np.any(dg == 0):
        bad = [names[k] for k in np.flatnonzero(dg == 0)]
        raise ValueError(f"fixed-effect columns are all zero: {bad}")
    ev = np.linalg.eigvalsh(xtx / np.outer(dg, dg))
    if ev[0] <= 1e-10 * ev[-1]:
        _, _, piv = linalg.qr(X / np.sqrt((X * X).sum(axis=0)), mode="economic", pivoting=True)
        rank = np.linalg.matrix_rank(X / np.sqrt((X * X).sum(axis=0)), tol=None)
        bad = [names[k] for k in piv[rank:]]
        flat = [names[k] for k in range(1, X.shape[1]) if np.ptp(X[:, k]) == 0 and names[k] != "Intercept"]
        if flat:
            raise ValueError(f"no variance in {', '.join(flat)} (every analysed value is the same)")
        raise ValueError(
            f"fixed-effect design matrix is rank deficient (rank {rank} < {X.shape[1]}); aliased column(s): {bad}"
        )


def fit_random_intercept(y, X, groups, names=None) -> MixedFit:
    """Fit ``y = X b + u_group + e`` by exact profiled REML.

    Parameters
    ----------
    y : (N,) array of the outcome.
    X : (N, p) fixed-effect design matrix (include the intercept column yourself).
    groups : (N,) labels of the random-intercept groups (any hashable values).
    names : optional list of p column names.

    No missing values are allowed (use :func:`fit_formula_free` for data frames).
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] != y.size:
        raise ValueError("X must be a 2-D array with one row per element of y")
    N, p = X.shape
    if names is None:
        names = [f"x{k}" for k in range(p)]
    names = [str(s) for s in names]
    if len(names) != p:
        raise ValueError("names must have one entry per column of X")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
        raise ValueError("y and X must be finite (drop missing values first)")
    if not isinstance(groups, (pd.Series, pd.Index, pd.Categorical, np.ndarray)):
        groups = pd.Series(list(groups), dtype=object)
    codes, uniques = pd.factorize(groups, sort=False)
    codes = np.asarray(codes)
    if codes.size != N:
        raise ValueError("groups must have one label per observation")
    if np.any(codes < 0):
        raise ValueError("groups contains missing labels")
    G = len(uniques)
    if G < 2:
        raise ValueError("need at least two groups")
    if N - p < 1:
        raise ValueError("need more observations than fixed-effect columns")
    if G >= N:
        raise ValueError(
            "every group has a single observation: the team variance is not "
            "identifiable (number of groups must be < number of observations)"
        )

    if np.ptp(y) == 0:
        raise ValueError("no variance in the outcome (every analysed score is the same)")
    m = _model(y, X, codes, G)
    ols = m.solve(np.zeros((1, 1)))  # at theta = 0: X'X (nothing absorbed) and the OLS fit
    _check_rank(ols["S"][0, 0], X, names)
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    if not np.any(np.abs(resid) > 1e-10 * max(1.0, float(np.abs(y).max()))):
        raise ValueError("no residual variance: the model reproduces every score exactly")
    m.centre(ols)
    th, how, d = optimise(m)
    theta = float(th[0])
    sigma2 = float(d["Q"][0]) / (N - p)
    if not sigma2 > 1e-12 * float(np.var(y)):
        raise ValueError("no residual variance: the model reproduces every score exactly")
    s2b = theta * sigma2
    cov = sigma2 * d["M"][0]
    converged = bool(how["converged"][0])
    fit = MixedFit(
        names=list(names),
        beta=d["bR"][0] + m.b0R[0],
        cov_beta=cov,
        se=np.sqrt(np.diag(cov)),
        team_variance=float(s2b),
        residual_variance=float(sigma2),
        icc=float(s2b / (s2b + sigma2)),
        reml_criterion=float(d["f"][0]),
        n=int(N),
        n_groups=int(G),
        converged=converged,
        message=_message(str(how["kind"][0]), converged, theta, *(float(how[k][0]) for k in ("f1_0", "grad", "f2"))),
        df=satterthwaite(m, d, sigma2, 0),
    )
    fit._kr["model"] = m
    # the profiled REML criterion, for icc_interval()
    fit._kr["crit"] = m.crit
    return fit


def _levels(s: pd.Series) -> list:
    """Observed levels in reference-first order."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.unique())
        return [c for c in s.cat.categories if c in present]
    vals = list(pd.unique(s))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=lambda v: (type(v).__name__, str(v)))


def fit_formula_free(data: pd.DataFrame, outcome: str, covariates: list[str], group: str) -> MixedFit:
    """Fit ``outcome ~ 1 + covariates + (1 | group)`` by REML without a formula parser.

    The design has an intercept (``Intercept``), numeric covariates as they are,
    and categorical / string / bool covariates treatment-coded against the first
    level (sorted order; for a pandas Categorical the first category that occurs
    in the analysed rows), named ``col[T.level]``.  Rows with a missing value in
    the outcome, any covariate or the group are dropped first.
    """
    y, X, groups, names, _ = formula_free_design(data, outcome, covariates, group)
    return fit_random_intercept(y, X, groups, names=names)


def formula_free_design(
    data: pd.DataFrame, outcome: str, covariates: list[str], group: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
    """:func:`fit_formula_free`'s outcome, design, groups and coefficient names, and the rows kept (a mask of
    ``data``'s rows): for many fits of one design with different outcomes."""
    covariates = list(covariates)
    cols = list(dict.fromkeys([outcome, *covariates, group]))
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise KeyError(f"columns not in data: {missing}")
    sub = data[cols]
    keep = ~sub.isna().any(axis=1).to_numpy()
    sub = sub.loc[keep]
    if sub.empty:
        raise ValueError("no complete rows")
    yv = sub[outcome]
    if pd.api.types.is_bool_dtype(yv.dtype):
        yv = yv.astype(float)
    if not pd.api.types.is_numeric_dtype(yv.dtype):
        raise TypeError(f"outcome {outcome!r} must be numeric")
    blocks = [np.ones((len(sub), 1))]
    names = ["Intercept"]
    for col in covariates:
        s = sub[col]
        dt = s.dtype
        numeric = (
            pd.api.types.is_numeric_dtype(dt)
            and not pd.api.types.is_bool_dtype(dt)
            and not isinstance(dt, pd.CategoricalDtype)
        )
        if numeric:
            blocks.append(s.to_numpy(dtype=float)[:, None])
            names.append(col)
            continue
        levels = _levels(s)
        if len(levels) < 2:
            raise ValueError(f"covariate {col!r} has fewer than two levels in the analysed rows")
        vals = s.to_numpy(dtype=object)
        for lev in levels[1:]:
            blocks.append((vals == lev).astype(float)[:, None])
            names.append(f"{col}[T.{lev}]")
    X = np.hstack(blocks)
    return yv.to_numpy(dtype=float), X, sub[group].to_numpy(), names, keep
