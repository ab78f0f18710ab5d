"""Binary GEE for the case-file outcome: exchangeable working correlation,
Mancl-DeRouen bias-reduced sandwich, t on (clusters - parameters) df.

The model (the trial's methods reference): each audited case file is a binary
outcome; a binomial GEE with logit link and an exchangeable working
correlation among all files of a cluster (team); the working correlation
``alpha`` is the moment estimator on Pearson residuals without a
degrees-of-freedom correction, ``phi = sum r^2 / N``,
``alpha = sum_{pairs j<k in a cluster} r_j r_k / (phi * n_pairs)`` (as R's
geepack). Inference uses the Mancl-DeRouen (2001) bias-reduced sandwich:
with ``B = sum_i D_i' V_i^-1 D_i`` and ``H_ii = D_i B^-1 D_i' V_i^-1``, the
residuals of cluster ``i`` are replaced by ``(I - H_ii)^-1 r_i`` in the meat,
``V_MD = B^-1 [sum_i D_i' V_i^-1 (I - H_ii)^-1 r_i r_i' (I - H_ii)^-T V_i^-1 D_i] B^-1``;
CIs and p-values refer to Student's t on ``G - p`` df (``G`` clusters, ``p``
coefficients). The plain (Liang-Zeger) sandwich is returned alongside.

``corr="independence"`` fits the same model with an independence working
correlation (``alpha`` 0; the coefficients are the binomial GLM's) and the same
Mancl-DeRouen sandwich and t reference: the fallback a caller labels and uses
when the exchangeable fit does not converge (the sandwich keeps the inference
valid under clustering; only efficiency is lost).

Route: statsmodels, not a hand-written fit
-------------------------------------------
The project's rule is to use a pinned library where it does the job.
statsmodels 0.15.0 ``GEE(family=Binomial(), cov_struct=Exchangeable())``
fitted with ``ddof_scale=0`` uses exactly geepack's estimator of ``alpha``
(its ``Exchangeable.update`` divides by ``N - ddof_scale`` and
``n_pairs - ddof_scale``; the default ``ddof_scale = p`` would not match), and
``cov_type="bias_reduced"`` is the Mancl-DeRouen sandwich above. The files are
passed as binary rows (each unit's ``trials`` files expanded to ``events``
ones and ``trials - events`` zeros): statsmodels' GEE has no binomial-trials
response, and a participant-level row with a proportion and a case weight is a
different model (the working correlation then acts between participants'
proportions, not between files): on the fixture data it gives ``alpha``
0.101 against 0.0214 and coefficients differing at the second decimal. Starting values are the independence GLM,
fitted on the unit-level counts (the same estimates as the file-level GLM,
at a fraction of the cost).

Measurements (``tests/test_gee.py``, ``tests/fixtures/gee_iv``):

- against geepack 1.3.9 (``geeglm``, exchangeable, iterated to 1e-12) on
  ``data_files.csv`` (487 files, 30 teams): coefficients, ``alpha``, plain
  robust SEs, risk difference and its SE agree to about 1e-12 relative
  (largest seen 1.6e-12, coefficients); the tests use 1e-9;
- the bias-reduced SEs against the Mancl-DeRouen sandwich computed in R by
  explicit per-cluster matrix algebra at geepack's estimates: largest
  relative difference 2.4e-13 (tests: 1e-9);
- national scale (``tests/fixtures/gee_iv/bench_national.py``: ``synth
  --las 150 --teams-per-la 10 --staff-per-team 10``, frame as
  ``impact.casefile``: 11,493 participants, 86,662 files, 1,500 teams, 152
  coefficients with the LA dummies; converges in 12 iterations), on the
  project's 2-core machine while other jobs ran (load 2 to 6):

  - single-threaded BLAS (``OPENBLAS_NUM_THREADS=1``, which the pipeline sets
    for its notebook kernels): 9 to 14 s a call (median of 3: 12.2 s), about
    7 s of it in statsmodels' per-cluster loops;
  - the default two OpenBLAS threads: 30 to 145 s, the threads of the many
    small per-cluster 152 x 152 products fighting the other processes;
  - the previous hand-written fit (``impact.gee_logit_exchangeable``, from
    per-participant sums, plain sandwich only): 2.6 to 4 s single-threaded,
    16 to 29 s with two threads; the same coefficients to 5.5e-11 and plain
    SEs to 2.7e-13 relative.

  Decision: the pipeline's national run pays about 10 s once, for the
  library's fit and its bias-reduced sandwich instead of our own code, so the
  statsmodels route is taken and the hand-written fit can be deleted. Outside
  the pipeline, set ``OPENBLAS_NUM_THREADS=1`` before numpy is imported when
  fitting at national scale.

Convergence rule
----------------
A fit is reported ``converged`` only when all of these hold; otherwise
``converged`` is False, ``reason`` says which failed (several joined by
"; ") and the caller must withhold the estimates (they are still returned,
or NaN where not computable, for diagnosis):

1. statsmodels stopped on its criterion: the L2 norm of the estimating
   equations (summed over files, at the current ``alpha``) fell below ``ctol``
   (default 1e-8) after at least one ``alpha`` update, within ``maxiter``
   (default 200) iterations. At national scale the norm falls by a factor of
   about 13 per iteration and stalls at rounding level (about 1e-12), so 1e-8
   is reached in about 11 iterations with a safe margin; parameters are then
   stable to about 1e-12.
   When the iterations diverge (coefficients or ``alpha`` no longer finite,
   as geepack also does on LA06 of the bundled data: clusters of up to 84
   files, alpha drifting towards 0.5 and the coefficients to 1e15), the
   reason says so alone, without the symptoms that follow from it.
2. statsmodels raised no exception and issued no ``ConvergenceWarning``
   (singular matrix in an update or in the covariance) and the starting GLM
   no ``PerfectSeparationWarning``.
3. the coefficients, ``alpha`` and both covariance matrices are finite and
   the variances positive.
4. the working correlation is admissible: ``-1/(n_max - 1) < alpha < 1``
   with ``n_max`` the files in the largest cluster (else the working
   correlation matrix of that cluster is not positive definite).
5. no fitted probability is within 1e-6 of 0 or 1: that is (quasi-)complete
   separation, where coefficients drift towards infinity while the
   estimating equations vanish, so criterion 1 can be met by a meaningless
   fit. (Observed rates for this outcome are far from such values.)
6. the bias-reduced correction is defined: ``I - H_ii`` is non-singular for
   every cluster, i.e. the largest eigenvalue of any cluster's ``H_ii``
   (returned as ``max_leverage``; the eigenvalues lie in [0, 1]) is below ``1 - 1e-8``. A cluster
   that alone carries a coefficient (an LA with a single team, say) has
   leverage 1: its residuals are fitted exactly and the correction divides by zero.
   statsmodels then returns finite but meaningless numbers, so ``cov`` is set to NaN.

In the 12-team simulation of ``tests/test_gee.py`` about 0.1% of fits fail the
rule (a working correlation below its bound, or no solution); the plain
sandwich covered the true odds ratio 90.7% of the time and the bias-reduced
one 96.6% (4,000 trials, t on 9 df).
"""

from __future__ import annotations

import warnings
from dataclasses import astuple, dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit
from statsmodels.genmod.cov_struct import Exchangeable, Independence
from statsmodels.genmod.families import Binomial
from statsmodels.genmod.generalized_estimating_equations import GEE
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from isafe_helpers.stats.inference import interval

__all__ = ["Effect", "GEEBinaryResult", "gee_binary"]

#: Default convergence tolerance on the L2 norm of the estimating equations.
CTOL = 1e-8
#: Default iteration limit.
MAXITER = 200
#: Fitted probabilities closer than this to 0 or 1 signal separation.
SEPARATION_EPS = 1e-6
#: A cluster leverage (eigenvalue of H_ii) above ``1 - LEVERAGE_EPS`` makes the correction undefined.
LEVERAGE_EPS = 1e-8


@dataclass(frozen=True)
class Effect:
    """An effect of the arm term with its inference (t on ``df``)."""

    estimate: float
    se: float  # for an odds ratio: the SE of the log odds ratio
    ci_low: float
    ci_high: float
    p_value: float

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """``(estimate, se, ci_low, ci_high, p_value)``, the order of ``estimates.est_row``."""
        return (self.estimate, self.se, self.ci_low, self.ci_high, self.p_value)


_NAN_EFFECT = Effect(np.nan, np.nan, np.nan, np.nan, np.nan)


@dataclass(frozen=True)
class GEEBinaryResult:
    """Result of :func:`gee_binary`.

    ``odds_ratio`` and ``risk_difference`` use the bias-reduced (Mancl-DeRouen)
    covariance ``cov``; the ``*_robust`` effects use the plain sandwich
    ``cov_robust`` (for comparison only). Publish only when ``converged``.
    """

    names: tuple[str, ...]
    term: str
    params: np.ndarray
    cov: np.ndarray  # Mancl-DeRouen bias-reduced sandwich
    cov_robust: np.ndarray  # plain (Liang-Zeger) sandwich
    alpha: float  # exchangeable working correlation
    df: float  # t reference df (G - p unless given)
    odds_ratio: Effect
    risk_difference: Effect
    odds_ratio_robust: Effect
    risk_difference_robust: Effect
    n_files: int
    n_units: int
    n_clusters: int
    iterations: int
    score_norm: float  # L2 norm of the estimating equations at the last iteration
    converged: bool
    reason: str = ""  # why not converged (empty when converged)
    max_leverage: float = np.nan  # largest eigenvalue of any cluster's H_ii (1: correction undefined; bound if < 0.5)
    messages: tuple[str, ...] = field(default=())  # every warning issued during the fit
    corr: str = "exchangeable"  # the working correlation fitted


def _effects(b: np.ndarray, V: np.ndarray, k: int, Xu: np.ndarray, w: np.ndarray, df: float) -> tuple[Effect, Effect]:
    """Odds ratio and marginally standardised risk difference of coefficient ``k`` under covariance ``V``."""
    # a non-finite fit, or a zero variance (both flagged by the caller), has no interval and no test
    if not (np.all(np.isfinite(V)) and np.all(np.isfinite(b)) and V[k, k] > 0):
        return _NAN_EFFECT, _NAN_EFFECT
    se = float(np.sqrt(V[k, k]))
    log_or = interval(float(b[k]), se, df)
    with np.errstate(over="ignore"):  # a diverged fit (flagged) may give an infinite odds ratio
        odds = Effect(
            float(np.exp(b[k])), se, float(np.exp(log_or.ci_low)), float(np.exp(log_or.ci_high)), log_or.p_value
        )
    X1, X0 = Xu.copy(), Xu.copy()
    X1[:, k], X0[:, k] = 1.0, 0.0
    p1, p0 = expit(X1 @ b), expit(X0 @ b)
    rd = float(w @ (p1 - p0))
    grad = w @ (X1 * (p1 * (1 - p1))[:, None]) - w @ (X0 * (p0 * (1 - p0))[:, None])
    rd_se = float(np.sqrt(grad @ V @ grad))
    if not rd_se > 0:
        return odds, _NAN_EFFECT
    return odds, Effect(rd, rd_se, *astuple(interval(rd, rd_se, df)))


def _max_leverage(model) -> float:
    """Largest leverage of a cluster: the largest eigenvalue of any ``H_ii = D_i B^-1 D_i' V_i^-1``.

    The eigenvalues of ``H_ii`` lie in [0, 1] and sum to its trace, so a
    cluster whose trace is below 0.5 cannot come near 1; eigenvalues are
    computed only for clusters whose trace reaches 0.5, the others count with
    their trace. The value is therefore exact when it is at least 0.5 and an
    upper bound below that.
    Uses statsmodels' own fitted means and working-covariance solves (the scale cancels).
    """
    D, VD = [], []
    for i in range(model.num_group):
        expval, lpr = model.cached_means[i]
        dmat = model.mean_deriv(model.exog_li[i], lpr)
        sdev = np.sqrt(model.family.variance(expval))
        D.append(dmat)
        VD.append(model.cov_struct.covariance_matrix_solve(expval, i, sdev, (dmat,))[0])
    Bi = np.linalg.inv(sum(d.T @ v for d, v in zip(D, VD)))
    traces = np.array([np.sum((d @ Bi) * v) for d, v in zip(D, VD)])  # tr(D Bi D' V^-1)
    top = float(traces[traces < 0.5].max(initial=0.0))
    for i in np.flatnonzero(traces >= 0.5).tolist():
        top = max(top, float(np.max(np.linalg.eigvals(Bi @ (D[i].T @ VD[i])).real)))
    return top


def gee_binary(
    events,
    trials,
    X,
    cluster,
    term: str | int,
    df: float | None = None,
    names=None,
    ctol: float = CTOL,
    maxiter: int = MAXITER,
    corr: str = "exchangeable",
) -> GEEBinaryResult:
    """File-level binomial GEE (logit, exchangeable within cluster), bias-reduced sandwich, effects of ``term``.

    Parameters
    ----------
    events, trials : (n,) per unit (participant): files with the outcome, files audited.
        Integers, ``0 <= events <= trials``; units with no files are dropped. A
        unit stands for its ``trials`` files, which share its covariates; use
        ``trials = 1`` for file-level rows.
    X : (n, p) design, intercept included: a DataFrame (its columns name the
        coefficients) or an array with ``names``.
    cluster : (n,) cluster labels (team).
    term : the 0/1 arm column, by name or index.
    df : t reference df; default ``G - p``.
    names : coefficient names when ``X`` is an array (default ``x0, x1, ...``).
    ctol, maxiter : convergence tolerance and iteration limit (module docstring).
    corr : working correlation, ``"exchangeable"`` (default) or ``"independence"`` (``alpha`` is then 0).

    Returns
    -------
    GEEBinaryResult
        The odds ratio (exp of the coefficient; SE on the log scale) and the
        risk difference, marginally standardised over files (mean predicted
        probability with ``term`` set to 1 for every file minus with it set to
        0, delta-method SE), both with t-based CI and p on ``df``; coefficients,
        bias-reduced and plain covariances, ``alpha``, ``converged`` and
        ``reason`` (see the convergence rule in the module docstring).

    Raises
    ------
    ValueError
        Invalid counts, a rank-deficient design, or ``df < 1`` (fewer clusters than coefficients).
    """
    if isinstance(X, pd.DataFrame):
        names = tuple(str(c) for c in X.columns)
        Xa = X.to_numpy(float)
    else:
        Xa = np.asarray(X, float)
        Xa = Xa[:, None] if Xa.ndim == 1 else Xa
        names = tuple(names) if names is not None else tuple(f"x{j}" for j in range(Xa.shape[1]))
    if len(names) != Xa.shape[1]:
        raise ValueError("names must name every column of X")
    if corr not in ("exchangeable", "independence"):
        raise ValueError(f"corr must be 'exchangeable' or 'independence', not {corr!r}")
    k = names.index(term) if isinstance(term, str) else int(term)
    term_name = names[k]
    ev = np.asarray(events, float)
    m = np.asarray(trials, float)
    cl = pd.Series(cluster).to_numpy()
    if not (len(ev) == len(m) == len(cl) == len(Xa)):
        raise ValueError("events, trials, X and cluster must have the same length")
    if not (np.all(np.isfinite(ev)) and np.all(np.isfinite(m)) and np.all(np.isfinite(Xa))):
        raise ValueError("events, trials and X must be finite")
    if np.any(ev != np.round(ev)) or np.any(m != np.round(m)) or np.any(ev < 0) or np.any(ev > m):
        raise ValueError("events and trials must be integers with 0 <= events <= trials")
    keep = m > 0
    ev, m, Xa, cl = ev[keep].astype(np.int64), m[keep].astype(np.int64), Xa[keep], cl[keep]
    codes, uniq = pd.factorize(cl)
    G, p = len(uniq), Xa.shape[1]
    if np.linalg.matrix_rank(Xa) < p:
        raise ValueError("X is rank deficient")
    df = float(G - p) if df is None else float(df)
    if df < 1:
        raise ValueError(f"not estimable: {G} clusters for {p} coefficients")

    # file-level rows, clusters contiguous: each unit's events ones, then zeros
    order = np.argsort(codes, kind="stable")
    ev, m, Xa, codes = ev[order], m[order], Xa[order], codes[order]
    idx = np.repeat(np.arange(len(m)), m)
    pos = np.arange(len(idx)) - np.repeat(np.cumsum(m) - m, m)
    y = (pos < np.repeat(ev, m)).astype(float)
    groups = codes[idx]
    n_max = int(np.bincount(groups).max())

    reasons: list[str] = []
    b = np.full(p, np.nan)
    V = Vr = np.full((p, p), np.nan)
    alpha, iterations, score_norm, max_lev = np.nan, 0, np.nan, np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = GLM(np.column_stack([ev, m - ev]), Xa, family=Binomial()).fit()
            model = GEE(
                y,
                Xa[idx],
                groups=groups,
                family=Binomial(),
                cov_struct=Exchangeable() if corr == "exchangeable" else Independence(),
            )
            try:
                fit = model.fit(
                    maxiter=maxiter,
                    ctol=ctol,
                    start_params=np.asarray(start.params),
                    cov_type="bias_reduced",
                    ddof_scale=0,
                )
            except np.linalg.LinAlgError as exc:  # raised by the bias-reduced correction
                reasons.append(f"bias-reduced sandwich undefined (I - H_ii singular in a cluster: {exc})")
                fit = model.fit(
                    maxiter=maxiter, ctol=ctol, start_params=np.asarray(start.params), cov_type="robust", ddof_scale=0
                )
        except Exception as exc:  # noqa: BLE001 - any failure of the library is a failed fit, reported
            fit = None
            reasons.append(f"fit failed: {type(exc).__name__}: {exc}")
    if fit is None and not reasons:
        reasons.append("statsmodels returned no fit")
    msgs = tuple(f"{w.category.__name__}: {w.message}" for w in caught)
    for w in caught:
        if issubclass(w.category, PerfectSeparationWarning):
            reasons.append(f"separation in the starting GLM ({w.message})")
        elif issubclass(w.category, ConvergenceWarning):
            reasons.append(f"statsmodels: {w.message}")
    if fit is not None:
        b = np.asarray(fit.params, float)
        Vr = np.asarray(fit.cov_robust, float)
        if fit.cov_robust_bc is not None:
            V = np.asarray(fit.cov_robust_bc, float)
        alpha = float(fit.cov_struct.dep_params) if corr == "exchangeable" else 0.0
        iterations = len(fit.fit_history["params"])
        score_norm = float(fit.score_norm)
        if not fit.converged:
            reasons.append(
                f"estimating equations not solved: norm {score_norm:.3g} >= {ctol:g} after {iterations} iterations"
            )
        if not (np.all(np.isfinite(b)) and np.isfinite(alpha)):
            reasons.append("non-finite coefficients or working correlation")
        for label, C in (("robust", Vr), ("bias-reduced", V)):
            if not np.all(np.isfinite(C)):
                if label == "robust" or not any(r.startswith("bias-reduced") for r in reasons):
                    reasons.append(f"{label} covariance not finite")
            elif np.any(np.diag(C) <= 0):
                reasons.append(f"{label} covariance has a non-positive variance")
        if np.isfinite(alpha) and not (-1 / max(n_max - 1, 1) < alpha < 1):
            reasons.append(f"working correlation {alpha:.4g} outside (-1/(n_max - 1), 1) with n_max = {n_max}")
        if np.all(np.isfinite(b)):
            mu = expit(Xa @ b)
            if np.min(np.minimum(mu, 1 - mu)) < SEPARATION_EPS:
                reasons.append("fitted probabilities of 0 or 1 (separation): coefficients drift to infinity")
        try:
            max_lev = _max_leverage(model)
        except np.linalg.LinAlgError:
            max_lev = np.nan
        if not max_lev < 1 - LEVERAGE_EPS:
            V = np.full((p, p), np.nan)  # statsmodels returns finite but meaningless numbers here
            if not any(r.startswith("bias-reduced") for r in reasons):
                reasons.append(
                    f"bias-reduced sandwich undefined: a cluster has leverage {max_lev:.10g} (I - H_ii singular)"
                )
    reasons = list(dict.fromkeys(reasons))
    if fit is not None and not (np.all(np.isfinite(b)) and np.isfinite(alpha)):
        # the iterations diverged: every other symptom (covariances, norm) follows from that
        reasons = [
            f"the iterations diverged: coefficients or working correlation not finite after {iterations} iterations"
        ] + [r for r in reasons if r.startswith(("separation", "fit failed"))]

    w = m / m.sum()  # the risk difference is standardised over files
    orr, rd = _effects(b, V, k, Xa, w, df)
    orr_r, rd_r = _effects(b, Vr, k, Xa, w, df)
    return GEEBinaryResult(
        names=names,
        term=term_name,
        params=b,
        cov=V,
        cov_robust=Vr,
        alpha=alpha,
        df=df,
        odds_ratio=orr,
        risk_difference=rd,
        odds_ratio_robust=orr_r,
        risk_difference_robust=rd_r,
        n_files=int(m.sum()),
        n_units=len(m),
        n_clusters=G,
        iterations=iterations,
        score_norm=score_norm,
        converged=not reasons,
        reason="; ".join(reasons),
        max_leverage=max_lev,
        messages=msgs,
        corr=corr,
    )
