"""The command line, run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from isafe_helpers.data.synth import generate
from isafe_helpers.resources import BUNDLED_DATA
from isafe_helpers.resources import SOURCES as REPO
from isafe_helpers.results.estimates import read_estimates


def cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_bundled_data_is_the_generator_output_byte_for_byte(tmp_path):
    generate(tmp_path / "root")  # the defaults the bundled data were made with
    made = sorted(p.relative_to(tmp_path / "root") for p in (tmp_path / "root").rglob("*") if p.is_file())
    bundled = sorted(p.relative_to(BUNDLED_DATA) for p in BUNDLED_DATA.rglob("*") if p.is_file())
    assert made == bundled
    for rel in made:
        assert (tmp_path / "root" / rel).read_bytes() == (BUNDLED_DATA / rel).read_bytes(), rel


def test_validate_accepts_bundled_data():
    res = cli("validate")
    assert res.returncode == 0, res.stderr
    assert "7 LAs, 63 teams" in res.stdout


def test_synth_refuses_to_overwrite(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    res = cli("synth", "--out", tmp_path / "x")
    assert res.returncode == 2 and "error:" in res.stderr
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_run_stops_before_any_notebook_on_a_broken_file(tmp_path):
    root = generate(tmp_path / "root", seed=3, las=2, teams_per_la=4, staff_per_team=4)
    teams = root / "LA02" / "teams.csv"
    teams.write_text(teams.read_text().replace("control", "contrl", 1))
    out = tmp_path / "out"
    res = cli("run", "--data", root, "--out", out, "--no-book")
    assert res.returncode == 2
    assert "LA02/teams.csv" in res.stderr and "column arm" in res.stderr and "'contrl'" in res.stderr
    assert "must be one of treatment, control" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_run_unknown_scope_is_a_usage_error(tmp_path):
    res = cli("run", "--scope", "LA99", "--out", tmp_path / "out", "--no-book")
    assert res.returncode == 2 and "unknown scope" in res.stderr


@pytest.mark.slow
def test_three_la_root_runs_and_books_with_no_edits(tmp_path):
    root = tmp_path / "root"
    assert cli("synth", "--out", root, "--las", 3, "--seed", 11).returncode == 0
    out, build = tmp_path / "out", tmp_path / "build"
    res = cli("run", "--data", root, "--out", out, "--no-book", "--jobs", 2)
    assert res.returncode == 0, res.stdout + res.stderr
    for scope in ("trial", "LA01", "LA02", "LA03"):
        est = read_estimates(out / scope / "estimates.csv")
        assert set(est["strand"]) == {"impact", "process", "cost"}
        assert (est["scope"] == scope).all()
        for strand in ("impact", "process", "cost"):
            assert (out / scope / f"{strand}.ipynb").is_file()
    res = cli("book", "--out", out, "--build", build)
    assert res.returncode == 0, res.stdout + res.stderr
    html = build / "html"
    pages = sorted(p.relative_to(html).as_posix() for p in (html / "results").rglob("*.html"))
    assert pages == sorted(
        [f"results/trial/{n}.html" for n in ("1_impact", "2_process", "3_cost")]
        + [f"results/las/LA0{i}/{n}.html" for i in (1, 2, 3) for n in ("1_impact", "2_process", "3_cost")]
    )
    index = (html / "book" / "index.html").read_text()
    assert "Synthetic data" in index
    assert "Synthetic data" in (html / "results/las/LA02/2_process.html").read_text()
    assert not list(Path(build).glob(".html-tmp"))
