"""2SLS with CR2 (:mod:`isafe_helpers.stats.iv`) against clubSandwich (committed values; R not needed).

Fixture: tests/fixtures/gee_iv (values by make_fixtures.R: AER 1.2-10
``ivreg(y ~ complied + baseline + la | arm + baseline + la)`` and clubSandwich
0.5.8 ``coef_test(vcov = "CR2", cluster = team, test = "Satterthwaite")`` on
R 4.2.2). Both sides are the same closed forms, so the tolerance is 1e-8 relative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from isafe_helpers.stats.iv import tsls_cr2

FIX = Path(__file__).resolve().parent / "fixtures" / "gee_iv"
RTOL = 1e-8


def _ref(check: str) -> pd.DataFrame:
    r = pd.read_csv(FIX / "ref_values.csv")
    return r[r["check"] == check].set_index("term")


def _cont():
    d = pd.read_csv(FIX / "data_cont.csv", dtype={"team": str, "la": str})
    W = np.column_stack([np.ones(len(d)), d["baseline"], d["la"] == "LA2", d["la"] == "LA3"]).astype(float)
    return d, W


def _fit(d, W):
    return tsls_cr2(
        d["y"].to_numpy(float), d["complied"].to_numpy(float), d["arm"].to_numpy(float), W, d["team"].to_numpy()
    )


def test_tsls_cr2_matches_clubsandwich():
    d, W = _cont()
    f = _fit(d, W)
    ref = _ref("iv_cr2").loc["complied"]
    assert f["beta"] == pytest.approx(ref["estimate"], rel=RTOL)
    assert f["se"] == pytest.approx(ref["se"], rel=RTOL)
    assert f["df"] == pytest.approx(ref["df"], rel=RTOL)
    assert f["p"] == pytest.approx(ref["p_value"], rel=RTOL)
    tq = stats.t.ppf(0.975, ref["df"])
    np.testing.assert_allclose(f["ci"], [ref["estimate"] - tq * ref["se"], ref["estimate"] + tq * ref["se"]], rtol=RTOL)
    assert f["first_stage"] == pytest.approx(_ref("iv_first_stage").loc["arm", "estimate"], rel=RTOL)
    assert (f["G"], f["N"]) == (d["team"].nunique(), len(d))


def test_all_coefficients_and_ses_match_clubsandwich():
    d, W = _cont()
    f = _fit(d, W)
    ref = _ref("iv_cr2").loc[["complied", "(Intercept)", "baseline", "laLA2", "laLA3"]]
    np.testing.assert_allclose(f["params"], ref["estimate"], rtol=RTOL)
    np.testing.assert_allclose(np.sqrt(np.diag(f["vcov"])), ref["se"], rtol=RTOL)


def test_invariant_to_row_order_and_cluster_labels():
    d, W = _cont()
    base = _fit(d, W)
    perm = np.random.default_rng(1).permutation(len(d))
    d2 = d.iloc[perm].reset_index(drop=True)
    d2["team"] = d2["team"].map({t: f"x{i}" for i, t in enumerate(d["team"].unique()[::-1])})
    f = _fit(d2, W[perm])
    for k in ("beta", "se", "df", "p"):
        assert f[k] == pytest.approx(base[k], rel=1e-10)


def test_an_instrument_collinear_with_the_covariates_is_refused():
    d, W = _cont()
    with pytest.raises(ValueError, match="rank deficient"):
        tsls_cr2(d["y"], d["complied"], W[:, 2], W, d["team"])


# ---------------------------------------------------------------------------
# Anderson-Rubin set by test inversion: hand-checkable (Fieller) cases
# ---------------------------------------------------------------------------


def _fieller(a, c, va, vc, vac):
    """Reduced form a (ITT on y), first stage c (ITT on D), normal test: the AR set solves a quadratic."""

    def p(b):
        return 2 * stats.norm.sf(abs(a - b * c) / np.sqrt(va - 2 * b * vac + b * b * vc))

    z2 = stats.norm.ppf(0.975) ** 2
    roots = np.roots([c * c - z2 * vc, -2 * (a * c - z2 * vac), a * a - z2 * va])
    return p, 2 * stats.norm.sf(abs(c) / np.sqrt(vc)), np.sort(roots.real) if np.isreal(roots).all() else None


def test_anderson_rubin_bounded_two_rays_and_whole_line_by_hand():
    """The three shapes of the AR set against the roots of (a - bc)^2 = z^2 (va - 2b vac + b^2 vc),
    to 1e-8: strong first stage -> an interval; weak -> two rays; weak and no effect -> the whole line."""
    from isafe_helpers.stats.iv import anderson_rubin_set

    p, pl, roots = _fieller(0.35, 0.7, 0.01, 0.004, 0.001)
    r = anderson_rubin_set(p, 0.5, 0.1, pl)
    assert r["kind"] == "bounded" and (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(roots), rel=1e-8)
    assert r["text"] == f"[{roots[0]:.3f}, {roots[1]:.3f}]"
    p, pl, roots = _fieller(0.35, 0.1, 0.01, 0.004, 0.001)
    r = anderson_rubin_set(p, 3.5, 0.3, pl)
    assert r["kind"] == "two rays" and np.isnan(r["ci_low"]) and np.isnan(r["ci_high"])
    (lo1, hi1), (lo2, hi2) = r["intervals"]
    assert lo1 == -np.inf and hi2 == np.inf
    assert (hi1, lo2) == pytest.approx(tuple(roots), rel=1e-8)
    assert r["text"].startswith("(-infinity, ") and r["text"].endswith(", infinity)")
    p, pl, roots = _fieller(0.05, 0.1, 0.01, 0.004, 0.001)
    assert roots is None
    r = anderson_rubin_set(p, 0.5, 0.3, pl)
    assert r["kind"] == "whole line" and r["text"] == "(-infinity, infinity)"
