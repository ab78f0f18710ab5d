"""The baseline report (issue 23): a root with no follow-up yet validates with a warning and builds a book
of the trial as randomised; the same root with its follow-up rows builds the full report.

What counts as "no follow-up yet" is :mod:`isafe_helpers.data.followup`: no ``followup`` row in any LA's
survey or case-file audit. The slow test runs the handbook twice (baseline only, then with follow-up) on a
small generated root and reads the pages a reader sees.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import read, write

from isafe_helpers.data import followup
from isafe_helpers.data.loading import load_root
from isafe_helpers.data.synth import generate
from isafe_helpers.impact import baseline_balance, baseline_power, trial_flow
from isafe_helpers.resources import SOURCES as REPO
from isafe_helpers.stats.power import mdes

OUTCOME_TABLES = ("survey.csv", "casefile_audit.csv")


def cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ISAFE_VALIDATED_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=REPO, env=env
    )


def drop_followup(root: Path, las: list[str] | None = None) -> None:
    """Remove the follow-up rows of the survey and case-file audit (of ``las``, default every LA)."""
    for la in las or sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "report"):
        for name in OUTCOME_TABLES:
            df = read(root, f"{la}/{name}")
            write(root, f"{la}/{name}", df[df["wave"] != "followup"])


def text(page: Path) -> str:
    """A page's readable text: the main content, tags and scripts removed, spaces collapsed."""
    t = re.sub(r"<script.*?</script>|<style.*?</style>", "", page.read_text(encoding="utf-8"), flags=re.S)
    t = t[t.find("<main") :]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", t)))


# --------------------------------------------------------------------------
# Validation and the analyses of the baseline report (fast)
# --------------------------------------------------------------------------
def test_a_root_without_follow_up_validates_with_a_warning_naming_what_is_missing(small_root):
    drop_followup(small_root)
    res = cli("validate", "--data", small_root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "warning: no follow-up yet" in res.stderr
    assert "survey or casefile_audit" in res.stderr and "baseline report" in res.stderr


def test_a_root_where_one_la_has_no_follow_up_warns_naming_that_la(small_root):
    drop_followup(small_root, ["LA02"])
    data = load_root(small_root)
    assert [w for w in data.warnings if "no follow-up yet" in w] == [
        w for w in data.warnings if "LA02" in w and "lost to follow-up" in w
    ]
    assert any("LA02" in w for w in data.warnings)
    assert followup.statuses(data.tables, data.las) == {"trial": "full", "LA01": "full", "LA02": "baseline"}


def test_a_root_with_follow_up_has_no_follow_up_warning(small_root):
    data = load_root(small_root)
    assert not [w for w in data.warnings if "follow-up" in w]
    assert followup.statuses(data.tables, data.las)["trial"] == "full"


def test_the_flow_to_date_stops_at_randomisation_and_delivery(small_root):
    drop_followup(small_root)
    flow = trial_flow(load_root(small_root))
    stages = list(flow.table().data["stage"])
    assert stages == ["Randomised and allocated", "Received the programme"]
    # the rows are the table's: randomisation, and (issue 21: every published number is a row) delivery; the
    # plan-against-randomised rows are the design's, not stages
    stages_written = {
        r["outcome"].rsplit("_", 1)[0]
        for r in flow.rows()
        if r["outcome"] not in ("planned", "randomised", "randomised_minus_planned")
    }
    assert stages_written == {"allocated", "received"}


def test_baseline_balance_counts_every_randomised_member_of_staff_with_a_baseline_score(small_root):
    drop_followup(small_root)
    data = load_root(small_root)
    bal = baseline_balance(data).frame.set_index("variable")
    base = data.survey[data.survey["wave"] == "baseline"].merge(data.participants, on="participant_id")
    arms = base.merge(data.teams[["team_id", "arm"]], on="team_id")
    for arm in ("treatment", "control"):
        x = arms.loc[arms["arm"] == arm, "confidence"].dropna()
        assert bal.loc["confidence", f"n_{arm}"] == len(x)
        assert bal.loc["confidence", f"mean_{arm}"] == pytest.approx(x.mean(), rel=1e-12)
        assert bal.loc["confidence", f"sd_{arm}"] == pytest.approx(x.std(ddof=1), rel=1e-12)
    # an age band's share would give back a small count: not published
    assert bal.loc["age_30_39", ["mean_treatment", "mean_control"]].isna().all()


def test_the_mdes_at_randomisation_uses_the_teams_and_staff_randomised_and_the_icc_at_baseline(small_root):
    drop_followup(small_root)
    (small_root / "protocol.yml").unlink()  # no planning ICC: the ICC at baseline, R2 = 0
    data = load_root(small_root)
    p = baseline_power(data).frame.set_index("outcome")
    assert ((p["icc"] >= 0) & (p["icc"] <= 1)).all()
    sizes = data.participants.groupby("team_id").size().to_numpy(float)
    share = float((data.teams["arm"] == "treatment").mean())
    icc = float(p.loc["confidence", "icc"])
    k = len(data.las)
    want = mdes(len(sizes), sizes.mean(), icc, 0.0, 0.0, share, covariates=k - 1).mdes  # df J - 2 - (K - 1)
    assert p.loc["confidence", "mdes"] == pytest.approx(want, rel=1e-12)
    assert "ICC at baseline (the protocol gives none)" in p.loc["confidence", "mdes_note"]


def test_the_baseline_and_full_reports_agree_on_the_mdes_at_randomisation(small_root):
    """With the protocol's planning ICC and R2, both reports write the same mdes_randomisation."""
    from isafe_helpers.impact.power import power_analysis

    full = pd.DataFrame(power_analysis(load_root(small_root)).rows())
    full = full[full["quantity"] == "mdes_randomisation"].set_index("outcome")["estimate"]
    drop_followup(small_root)
    base = baseline_power(load_root(small_root))
    rows = pd.DataFrame(base.rows())
    rows = rows[rows["quantity"] == "mdes_randomisation"].set_index("outcome")
    assert rows["estimate"].to_numpy() == pytest.approx(full.loc[rows.index].to_numpy(), rel=1e-12)
    assert rows["note"].str.contains("the protocol's planning ICC=0.080").all()


# --------------------------------------------------------------------------
# The book, before and after follow-up (slow: two runs with the book)
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    root = generate(tmp / "root", seed=23, las=2, teams_per_la=4, staff_per_team=6)
    full_copy = tmp / "with_followup"
    shutil.copytree(root, full_copy)
    drop_followup(root)
    out, build = tmp / "out", tmp / "build"
    seen = {}
    for name in ("baseline", "full"):
        if name == "full":  # follow-up arrives: the same files, now with their follow-up rows
            for la in ("LA01", "LA02"):
                for f in OUTCOME_TABLES:
                    shutil.copy(full_copy / la / f, root / la / f)
        res = cli("run", "--data", root, "--out", out, "--build", build)
        assert res.returncode == 0, res.stdout + res.stderr
        html_dir = build / "html"
        seen[name] = {
            "stderr": res.stderr,
            "run": json.loads((out / "run.json").read_text(encoding="utf-8")),
            "front": text(html_dir / "book" / "index.html"),
            "impact": text(html_dir / "results" / "trial" / "1_impact.html"),
            "process": text(html_dir / "results" / "trial" / "2_process.html"),
            "la_index": text(html_dir / "book" / "las" / "LA01.html"),
            "la_impact": text(html_dir / "results" / "las" / "LA01" / "1_impact.html"),
            "estimates": pd.read_csv(out / "trial" / "estimates.csv", dtype={"outcome": str}, keep_default_na=False),
            "pages": {p: p.read_text(encoding="utf-8") for p in html_dir.rglob("*.html")},
        }
    return seen


#: Words a page that estimates no effect must not hold.
VERDICTS = ("improved", "worsened", "no clear difference", "Hedges' g with its 95%")


@pytest.mark.slow
def test_the_baseline_run_warns_and_records_the_warning_and_the_status(reports):
    b = reports["baseline"]
    assert "no follow-up yet" in b["stderr"]
    assert any("no follow-up yet" in n for n in b["run"]["data_notes"])
    assert b["run"]["report_status"] == {"trial": "baseline", "LA01": "baseline", "LA02": "baseline"}


@pytest.mark.slow
def test_the_baseline_front_page_says_what_it_is_and_what_is_still_to_come(reports):
    front = reports["baseline"]["front"]
    assert "This is the baseline report: follow-up has not been collected yet." in front
    assert "Still to come" in front and "the effect of ISAFE on each outcome" in front
    assert "awaits follow-up" in front
    assert "Headline results: effect of ISAFE" not in front and "Security of the finding" not in front
    assert not any(v in front for v in VERDICTS)


@pytest.mark.slow
def test_the_baseline_impact_page_shows_the_trial_as_randomised_and_no_outcome_analysis(reports):
    page = reports["baseline"]["impact"]
    for shown in (
        "This is a baseline report",
        "Trial flow",
        "Baseline characteristics of the randomised arms",
        "ICC at baseline",
        "MDES at randomisation",
    ):
        assert shown in page, shown
    for hidden in (
        "Primary analysis",
        "Effect sizes",
        "Robustness",
        "Missing data",
        "Moderators",
        "Attrition",
        "Lost to follow-up",
    ):
        assert hidden not in page, hidden
    assert not any(v in page for v in VERDICTS)
    assert "Outcome change by sessions attended" not in reports["baseline"]["process"]
    assert "Baseline report" in reports["baseline"]["la_index"]
    assert "This is a baseline report" in reports["baseline"]["la_impact"]


@pytest.mark.slow
def test_the_baseline_report_writes_no_outcome_estimate(reports):
    est = reports["baseline"]["estimates"]
    impact = set(est.loc[est["strand"] == "impact", "analysis"])
    # baseline characteristics by arm describe the randomised staff: no outcome estimate
    assert impact == {
        "trial_flow",
        "descriptives",
        "baseline_balance",
        "baseline_characteristics",
        "baseline_icc",
        "power",
    }
    assert set(est.loc[est["analysis"] == "power", "quantity"]) == {"mdes_randomisation"}
    assert "dose_outcome" not in set(est["analysis"])
    mdes_ = est.loc[est["quantity"] == "mdes_randomisation", "estimate"].astype(float)
    assert np.isfinite(mdes_).all()


@pytest.mark.slow
def test_no_page_of_either_report_holds_a_traceback(reports):
    for name in ("baseline", "full"):
        for path, page in reports[name]["pages"].items():
            assert "Traceback" not in page, path


@pytest.mark.slow
def test_the_same_command_gives_the_full_report_once_follow_up_arrives(reports):
    f = reports["full"]
    assert "no follow-up yet" not in f["stderr"]
    assert f["run"]["report_status"] == {"trial": "full", "LA01": "full", "LA02": "full"}
    assert "This is the full report" in f["front"] and "baseline report" not in f["front"]
    assert "Headline results: effect of ISAFE" in f["front"]
    assert "Primary analysis" in f["impact"] and "Attrition" in f["impact"]
    assert "This is a baseline report" not in f["impact"]
    assert "Baseline characteristics of the randomised arms" not in f["impact"]
    assert "Full report" in f["la_index"]
    est = f["estimates"]
    primary = est[(est["analysis"] == "primary") & (est["quantity"] == "treatment_effect")]
    assert len(primary) and np.isfinite(primary["estimate"].astype(float)).any()


def test_the_front_page_of_a_partial_trial_names_the_las_still_without_follow_up():
    from isafe_helpers.publish import baseline as B

    run = {"report_status": {"trial": "full", "LA01": "full", "LA02": "baseline"}}
    text_ = B.front_page_status(run)
    assert text_.startswith("This is the full report") and "LA02" in text_ and "LA01" not in text_
    assert "Baseline report" in B.la_status("LA02", run) and "Full report" in B.la_status("LA01", run)


def test_the_data_dictionary_says_what_counts_as_no_follow_up_yet():
    from isafe_helpers.publish.book import data_dictionary_markdown

    page = data_dictionary_markdown()
    assert "## Before follow-up: the baseline report" in page
    assert "no `followup` row in any LA's `survey` or `casefile_audit` file" in page
