"""Per-LA effects and heterogeneity (Wald F of arm x LA, Cochran's Q), change summaries,
and the case-file model's small-sample t reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from isafe_helpers import impact
from isafe_helpers.config import threshold
from isafe_helpers.data import frames
from isafe_helpers.data.loading import load_root
from isafe_helpers.impact import heterogeneity
from isafe_helpers.impact import subgroups as M
from isafe_helpers.publish import report
from isafe_helpers.publish.figures import impact as fig
from isafe_helpers.publish.ledger import Ledger
from isafe_helpers.stats import meta


def published(*tabs, las=None):
    """The tables' views as a page publishes them (:func:`report.views` under a fresh ledger)."""
    ledger = Ledger(threshold())
    keys = [ledger.register(t, f"test/figure/{j}", las) for j, t in enumerate(tabs)]
    return report.views(report.Spec("figure-1", "figure", 1, list(tabs)), ledger.solve(), keys)


def test_cochran_q_by_hand_and_against_statsmodels():
    b, se = [0.1, 0.3, 0.6], [0.1, 0.2, 0.3]
    # w = 100, 25, 11.111; b_FE = 24.1667 / 136.111 = 0.177551
    # Q = 100*0.077551^2 + 25*0.122449^2 + 11.111*0.422449^2 = 0.60142 + 0.37484 + 1.98290 = 2.95916
    r = meta.cochran_q(b, se)
    assert r["q"] == pytest.approx(2.95916, rel=1e-4)
    assert r["i2"] == pytest.approx(100 * (2.95916 - 2) / 2.95916, rel=1e-4)
    assert r["p_value"] == pytest.approx(stats.chi2.sf(2.95916, 2), rel=1e-4)
    from statsmodels.stats.meta_analysis import combine_effects

    ref = combine_effects(np.array(b), np.array(se) ** 2)
    assert r["q"] == pytest.approx(ref.q, rel=1e-10)
    assert r["i2"] / 100 == pytest.approx(ref.i2, rel=1e-10)


@pytest.fixture(scope="module")
def trial(_small_root_template):
    return load_root(_small_root_template)


@pytest.fixture(scope="module")
def het(trial):
    return heterogeneity.la_heterogeneity(trial, impact.primary_all(trial), M.moderators(trial))


def test_kr_f_with_one_interaction_is_its_kr_t_squared(trial, het):
    """Two LAs: one arm x LA term, so the KR F(1, m) is the square of its KR t and m its KR df."""
    t = M.moderators(trial).frame
    for scale in trial.instrument.scale_names:
        inter = t[(t["outcome"] == scale) & (t["moderator"] == "la") & (t["kind"] == "interaction")].iloc[0]
        row = het.tests.set_index("outcome").loc[scale]
        assert row["wald_df1"] == 1 and row["wald_df2"] == pytest.approx(inter["df"], rel=1e-9)
        assert row["wald_f"] == pytest.approx((inter["estimate"] / inter["se"]) ** 2, rel=1e-9)
        assert row["p_wald"] == pytest.approx(inter["p_value"], rel=1e-9)


def test_per_la_effects_are_each_las_own_primary_model_to_the_last_bit(trial, het):
    """One grouping pass gives exactly the fits of primary() on each LA's own data."""
    per = het.per_la.set_index(["outcome", "la"])
    for la in trial.las:
        for scale in trial.instrument.scale_names:
            r = impact.primary(trial.for_scope(la), scale)
            got = per.loc[(scale, la)]
            for a, b in (("fit_estimate", "estimate"), ("fit_se", "se"), ("fit_p_value", "p_value")):
                assert got[a] == getattr(r, b) or (np.isnan(got[a]) and np.isnan(getattr(r, b)))
    rows = pd.DataFrame(het.rows())
    assert {"per_la", "heterogeneity_la"} == set(rows["analysis"])
    assert {"wald_f_arm_x_la", "cochran_q", "i_squared_pct"} <= set(rows["quantity"])
    fig.la_forest(published(fig.per_la_table(het), las=trial.las))


def test_a_per_la_fit_that_did_not_converge_is_kept_in_the_rows_and_not_shown(trial, monkeypatch):
    from isafe_helpers.impact import primary_model

    real = primary_model.fit_formula_free

    def unconverged(*a, **k):
        fit = real(*a, **k)
        object.__setattr__(fit, "converged", False)
        object.__setattr__(fit, "message", "NOT converged: test")
        return fit

    pooled, mods = impact.primary_all(trial), M.moderators(trial)
    monkeypatch.setattr(primary_model, "fit_formula_free", unconverged)
    h = heterogeneity.la_heterogeneity(trial, pooled, mods)
    local = h.per_la[h.per_la["la"] != "pooled"]
    assert local["estimate"].isna().all() and local["fit_estimate"].notna().all()
    rows = pd.DataFrame(h.rows())
    per = rows[rows["analysis"] == "per_la"]
    assert per["estimate"].notna().all() and per["note"].str.startswith("did not converge").all()
    assert h.tests["n_las"].eq(0).all()  # nothing shown, nothing pooled into Cochran's Q


def test_small_las_are_withheld_and_one_la_has_no_comparison(trial, monkeypatch):
    monkeypatch.setenv("ISAFE_DISCLOSURE_THRESHOLD", "100000")
    h = heterogeneity.la_heterogeneity(trial, impact.primary_all(trial), M.moderators(trial))
    local = h.per_la[h.per_la["la"] != "pooled"]
    assert local["withheld"].all() and local["estimate"].isna().all()
    fig.la_forest(published(fig.per_la_table(h), las=trial.las))
    one = heterogeneity.la_heterogeneity(trial.for_scope("LA01"), [], M.moderators(trial.for_scope("LA01")))
    assert not one.estimable and one.rows() == [] and "one LA" in one.message


def test_change_summary_is_summaries_only_and_its_figure_withholds_under_threshold(trial, monkeypatch):
    result = impact.change_summary(trial)
    s = result.summary
    df = frames.analysis_frame(trial, "confidence")
    ch = (df["followup"] - df["baseline"])[df["arm"] == "control"].to_numpy()
    r = s[(s["outcome"] == "confidence") & (s["arm"] == "control")].iloc[0]
    assert r["n"] == len(ch) and r["mean"] == pytest.approx(ch.mean())
    assert [r["p_low"], r["median"], r["p_high"]] == pytest.approx(list(np.percentile(ch, [10, 50, 90])))
    assert {"min", "max", "values"}.isdisjoint(s.columns)
    fig.change_distributions(published(result.table(), las=trial.las))
    monkeypatch.setenv("ISAFE_DISCLOSURE_THRESHOLD", str(len(ch) + 1000))
    f, alt = fig.change_distributions(published(result.table(), las=trial.las))
    assert "median" not in alt and "withheld" in alt
    texts = [t.get_text() for ax in f.axes for t in ax.texts]
    assert texts and all("withheld" in t for t in texts)
    assert not any(ax.patches or ax.lines[1:] for ax in f.axes if ax.get_visible() and ax.texts)


def test_casefile_uses_t_on_teams_minus_coefficients(trial):
    c = impact.casefile(trial)
    assert c.converged
    dfree = c.n_clusters - 4  # const, arm, baseline proportion, one LA dummy
    assert f"t on {dfree} df" in c.note
    est, se_log, lo, hi, p = c.odds_ratio
    q = stats.t.ppf(0.975, dfree)
    assert lo == pytest.approx(np.exp(np.log(est) - q * se_log), rel=1e-10)
    assert p == pytest.approx(2 * stats.t.sf(abs(np.log(est)) / se_log, dfree), rel=1e-10)


def test_la_caveat_says_plainly_when_the_arms_cannot_be_compared(small_root):
    data = load_root(small_root).for_scope("LA01")
    text = impact.scope_caveat(data)
    assert "Kenward-Roger" in text and "not the trial's result" in text
    assert not any(w in text.lower() for w in ("improved", "worsened"))
    data.tables["teams"] = data.teams.assign(arm="treatment")
    assert "cannot be compared" in impact.scope_caveat(data)


def _spread_frame(name):
    from pathlib import Path

    d = pd.read_csv(Path(__file__).parent / "fixtures" / "random_slope" / "data.csv")
    d = d[d["dataset"] == name].reset_index(drop=True)
    return d.rename(columns={"y": "followup", "team": "team_id"}).assign(
        treated=d["arm"].astype(float), arm=np.where(d["arm"] == 1, "treatment", "control")
    )


@pytest.mark.parametrize("name", ["spread", "boundary"])
def test_tau2_and_prediction_interval_against_lme4_and_by_hand(name):
    """tau2_arm_x_la is lme4's arm-slope variance (tests/fixtures/random_slope, 1e-4 relative); the prediction
    interval is beta +/- t(k - 2) sqrt(tau2 + SE^2) with lme4's beta and SE (1e-5 relative)."""
    from pathlib import Path

    ref = pd.read_csv(Path(__file__).parent / "fixtures" / "random_slope" / "ref.csv")
    ref = ref[ref["dataset"] == name].set_index("quantity")["value"]
    frame = _spread_frame(name)
    s = heterogeneity.between_la_spread(frame)
    k = frame["la"].nunique()
    assert s["spread_note"] == "" and s["k_las"] == k
    assert s["tau2"] == pytest.approx(ref["slope_variance"], rel=1e-4, abs=1e-8)
    half = stats.t.ppf(0.975, k - 2) * np.sqrt(ref["slope_variance"] + ref["se_arm"] ** 2)
    assert s["pi_estimate"] == pytest.approx(ref["beta_arm"], rel=1e-5)
    assert (s["pi_low"], s["pi_high"]) == pytest.approx((ref["beta_arm"] - half, ref["beta_arm"] + half), rel=1e-5)


def test_prediction_interval_needs_three_las(trial, het):
    """The two-LA trial: no prediction interval (t on k - 2 = 0 df), said in the rows; the rows exist."""
    rows = pd.DataFrame(het.rows())
    pi = rows[rows["quantity"] == "prediction_interval"]
    tau = rows[rows["quantity"] == "tau2_arm_x_la"]
    assert len(pi) == len(tau) == len(trial.instrument.scale_names)
    assert pi["estimate"].isna().all() and pi["note"].str.contains("at least three LAs").all()
