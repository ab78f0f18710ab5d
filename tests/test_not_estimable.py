"""Issue 23: degenerate but valid data give "not estimable" with a plain reason, never a traceback,
a verdict or a number from a fit that failed (analyses, the summary, and a whole book)."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import pytest
from test_book import plain, pooled, solved

from isafe_helpers.data.contract import CASEFILE_OUTCOME, SCALES
from isafe_helpers.publish import summary as S
from isafe_helpers.results.estimates import Lookup
from isafe_helpers.stats.cluster_robust import cr2
from isafe_helpers.stats.mixed import fit_random_intercept


# the summary -----------------------------------------------------------------
# The summary's headline is a view of the results pages' facts (issue 21): these tests build a
# results page from the rows (test_book.solved) and read the headline as the book prints it.
def test_a_summary_with_no_impact_rows_still_builds_and_says_not_available():
    est = pooled()
    est = est[est["strand"] != "impact"]
    b = solved(est)
    d = b.cells("summary/headline")
    assert len(d) and (d["effect"] == "[x]").all()
    assert d["finding"].str.startswith("no verdict").all()
    page = html.unescape(b.render_table("summary/headline", 1))
    assert "Headline results" in page and "not available: no estimate in this build" in page


def _did_not_converge(est: pd.DataFrame) -> pd.DataFrame:
    """The case-file model did not converge: its page shows no number (the table withholds them)."""
    est = est.copy()
    case = (est["outcome"] == CASEFILE_OUTCOME) & (est["quantity"] == "odds_ratio")
    est.loc[case, ["estimate", "ci_low", "ci_high", "p_value"]] = np.nan
    est.loc[case, "note"] = "did not converge: fitted probabilities of 0 or 1 (separation); secondary outcome"
    return est


def test_a_fit_that_did_not_converge_gives_no_number_and_no_verdict_in_the_summary():
    est = _did_not_converge(pooled())
    b = solved(est)
    row = b.cells("summary/headline").iloc[-1]
    assert row["effect"] == "[x]" and row["p"] == "[x]" and row["finding"].startswith("no verdict")
    page = html.unescape(b.render_table("summary/headline", 1))
    assert "did not converge: fitted probabilities of 0 or 1 (separation)." in page
    glue = plain(S.sentences(b.cells("summary/headline"), None, None, Lookup(est), 10))
    assert "not published ([x]: did not converge" in glue["s_secondary_sentence"]
    assert "improved" not in " ".join(glue.values())


def test_a_not_estimable_primary_says_why_in_the_summary_sentence():
    est = pooled()
    prim = (est["outcome"] == SCALES[0]) & est["quantity"].isin(["treatment_effect", "hedges_g_total"])
    est.loc[prim, ["estimate", "ci_low", "ci_high", "p_value"]] = np.nan
    est.loc[prim, "note"] = "not estimable: no variance in the outcome (every analysed follow-up score is the same)"
    b = solved(est)
    glue = S.sentences(b.cells("summary/headline"), None, None, Lookup(est), 10)
    assert "no variance in the outcome" in html.unescape(glue["s_primary_sentence"])
    assert "[x]" in b.render_table("summary/headline", 1)


def test_a_finding_is_withheld_with_the_effect_it_reads():
    # 4 staff per arm: the results page withholds each estimate (8 analysed, under the threshold of 10), and
    # the headline, a view of that page, shows [c] with no verdict
    d = solved(pooled(n=4)).cells("summary/headline")
    withheld = d["effect"] == "[c]"
    assert withheld.any()
    assert d.loc[withheld, "finding"].str.startswith("no verdict").all()


# the statistics --------------------------------------------------------------
def test_a_constant_outcome_is_not_estimable_in_the_mixed_model():
    g = np.repeat(np.arange(6), 4)
    X = np.column_stack([np.ones(24), (g % 2).astype(float)])
    with pytest.raises(ValueError, match="no variance in the outcome"):
        fit_random_intercept(np.full(24, 3.0), X, g)


def test_an_outcome_the_model_reproduces_exactly_is_not_estimable():
    g = np.repeat(np.arange(6), 4)
    X = np.column_stack([np.ones(24), (g % 2).astype(float)])
    y = 3.0 + X[:, 1]  # constant within each arm: no residual
    with pytest.raises(ValueError, match="no residual variance"):
        fit_random_intercept(y, X, g)
    with pytest.raises(ValueError, match="no residual variance"):
        cr2(y, X, g)


def test_a_constant_covariate_is_named_in_plain_words():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 4)
    X = np.column_stack([np.ones(24), (g % 2).astype(float), np.full(24, 2.0)])
    with pytest.raises(ValueError, match="no variance in x2"):
        fit_random_intercept(rng.normal(size=24), X, g, names=["Intercept", "treated", "x2"])


def test_why_not_estimable_gives_each_reason():
    from isafe_helpers.impact.design import why_not_estimable

    df = pd.DataFrame(
        {
            "team_id": list("AABBCCDD"),
            "arm": ["treatment"] * 4 + ["control"] * 4,
            "la": "LA01",
            "baseline": [1, 2, 3, 4, 1, 2, 3, 4],
            "followup": [1, 2, 3, 3, 2, 2, 1, 4],
        }
    )
    assert why_not_estimable(df) == ""
    assert "one arm only" in why_not_estimable(df.assign(arm="control"))
    assert "two analysed teams" in why_not_estimable(df.assign(team_id=list("AAAACCDD")))
    assert "no variance in the outcome" in why_not_estimable(df.assign(followup=3))
    assert "separates the arms" in why_not_estimable(df.assign(followup=[4] * 4 + [2] * 4))
    assert "no variance in the baseline" in why_not_estimable(df.assign(baseline=3))


# the five roots of the issue ---------------------------------------------------
# Each is a small valid root (tests/degenerate.py), varied in memory from one loaded two-LA root.
@pytest.fixture(scope="module")
def two_las(tmp_path_factory):
    from degenerate import Spec, make_root

    from isafe_helpers.data.loading import load_root

    return load_root(make_root(tmp_path_factory.mktemp("five"), Spec(arms=["ttcc", "tcct"], staff=3)))


def _spec(**kw):
    from degenerate import Spec

    return Spec(arms=["ttcc", "tcct"], staff=3, seed=3, **kw)


def test_a_scale_constant_in_one_la_is_not_estimable_there_and_the_pooled_trial_goes_on(two_las):
    from degenerate import vary

    from isafe_helpers import impact

    data = vary(two_las, _spec(constant_scales=[("confidence", 0, None)]))
    la = data.for_scope("LA01")
    prim = impact.primary(la, "confidence")
    assert math.isnan(prim.estimate) and "no variance in the outcome" in prim.note
    power = impact.power_analysis(la).table().data.set_index("outcome")
    assert "no variance in the outcome" in power.iloc[0]["note"]
    pooled_fit = impact.primary(data, "confidence")
    assert math.isfinite(pooled_fit.estimate) and math.isfinite(pooled_fit.ci_low)


def test_a_scale_constant_everywhere_is_not_estimable_in_every_analysis(two_las):
    from degenerate import vary

    from isafe_helpers import impact
    from isafe_helpers.impact import sensitivity

    data = vary(two_las, _spec(constant_scales=[("confidence", None, None)]))
    prim = impact.primary_all(data)
    conf = next(r for r in prim.results if r.outcome == "confidence")
    rows = [
        conf,
        sensitivity.cluster_robust(data, "confidence"),
        sensitivity.multiple_imputation(data, "confidence", n_imputations=2, n_cycles=2),
        sensitivity.randomisation_inference(data, "confidence", n_perm=20),
        impact.cace(data, conf),
    ]
    for r in rows:
        assert math.isnan(r.estimate) and "no variance in the outcome" in r.note, (type(r).__name__, r.note)
    d = solved(_pooled_rows(prim)).cells("summary/headline")
    row = d[d["outcome"].str.startswith("Confidence")].iloc[0]
    assert row["effect"] == "[x]" and row["finding"].startswith("no verdict")


def _pooled_rows(prim) -> pd.DataFrame:
    from isafe_helpers.results.estimates import COLUMNS

    rows = [{"scope": "trial", "strand": "impact", **r} for r in [*prim.rows(), *prim.casefile.rows()]]
    rows = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return rows[rows["analysis"].isin(["primary", "secondary"])]  # the headline's rows (each once per outcome)


def test_a_scale_constant_at_follow_up_only_is_not_estimable_with_a_reason(two_las):
    from degenerate import vary

    from isafe_helpers import impact

    data = vary(two_las, _spec(constant_scales=[("competence", None, "followup")]))
    r = impact.primary(data, "competence")
    assert math.isnan(r.estimate) and "no variance in the outcome" in r.note


def test_a_separated_case_file_outcome_is_not_estimable_and_the_summary_gives_no_verdict(two_las):
    from degenerate import vary

    from isafe_helpers import impact

    data = vary(two_las, _spec(separation=True))
    case = impact.casefile(data)
    assert "separates the arms" in case.note and math.isnan(case.odds_ratio[0])
    b = solved(_pooled_rows(impact.primary_all(data)))
    d = b.cells("summary/headline")
    row = d[d["outcome"].str.startswith("Fathers")].iloc[0]
    assert row["effect"] == "[x]" and row["finding"].startswith("no verdict")
    assert "separates the arms" in html.unescape(b.render_table("summary/headline", 1))


@pytest.mark.parametrize("arms", [["tttt", "tcct"], ["tc", "ct"]])
def test_an_la_with_one_arm_or_one_team_per_arm_says_the_arms_cannot_be_compared(arms, tmp_path):
    from degenerate import Spec, make_root

    from isafe_helpers import impact
    from isafe_helpers.data.loading import load_root

    data = load_root(make_root(tmp_path, Spec(arms=arms, staff=3)))
    r = impact.primary(data.for_scope("LA01"), "confidence")
    assert math.isnan(r.estimate)
    assert "one arm only" in r.note or "two analysed teams in each arm" in r.note


# a whole book -----------------------------------------------------------------
@pytest.mark.slow
def test_a_degenerate_root_with_a_failed_notebook_of_each_strand_still_builds_a_whole_book(tmp_path):
    """The issue's degenerate features in one root (a scale constant in one LA, one constant everywhere,
    one constant at follow-up only, separated case files), and one notebook of each strand killed: the
    run reports exactly those failures, and the book builds with every page, no traceback, and says
    what is missing and why."""
    import json
    import shutil
    import subprocess
    import sys

    import nbformat
    from degenerate import Spec, make_root

    from isafe_helpers.resources import NOTEBOOKS
    from isafe_helpers.resources import SOURCES as REPO

    spec = Spec(
        arms=["ttcc", "tcct"],
        staff=3,
        seed=5,
        separation=True,
        constant_scales=[("confidence", 0, None), ("competence", None, None), ("org_practice", None, "followup")],
    )
    root = make_root(tmp_path, spec)
    nbs = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nbs)
    killed = {"impact": "LA01", "process": "LA02", "cost": "trial"}
    for strand, scope in killed.items():
        nb = nbformat.read(nbs / f"{strand}.ipynb", as_version=4)
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
        code = f'if scope == "{scope}":\n    raise RuntimeError("deliberate failure of {scope} {strand}")'
        nb.cells.insert(at, nbformat.v4.new_code_cell(code))
        nbformat.write(nb, nbs / f"{strand}.ipynb")
    out, build = tmp_path / "out", tmp_path / "build"

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=REPO
        )

    res = cli("run", "--data", root, "--out", out, "--notebooks", nbs, "--no-book", "--jobs", "2")
    assert res.returncode == 1, res.stdout + res.stderr  # the killed notebooks, and only those, failed
    run = json.loads((out / "run.json").read_text())
    failed = {(t["scope"], t["strand"]) for t in run["tasks"] if t["status"] == "failed"}
    assert failed == {(scope, strand) for strand, scope in killed.items()}, res.stdout
    res = cli("book", "--out", out, "--build", build)
    assert res.returncode == 0, res.stdout + res.stderr
    html = build / "html"
    pages = {p.relative_to(html).as_posix(): p.read_text(encoding="utf-8") for p in html.rglob("*.html")}
    assert "index.html" in pages and any("LA01" in p for p in pages) and any("LA02" in p for p in pages)
    for name, text in pages.items():
        assert "Traceback" not in text, name
    summary = pages["book/index.html"]
    assert ": not available: not estimable: no variance in the outcome" in summary  # the headline table's note
    assert "separates the arms" in summary
    assert "pooled cost notebook failed" in summary
    la01 = next(t for n, t in pages.items() if n.startswith("results/") and "LA01" in n and "impact" in n)
    assert "failed" in la01 and "deliberate failure of LA01 impact" in la01
