"""Faults (issue 7, items 3-5; issue 16, item 2): a failing notebook is isolated, a killed run
loses nothing complete and leaves nothing running, and output folders are checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from isafe_helpers.data.synth import generate
from isafe_helpers.resources import NOTEBOOKS
from isafe_helpers.resources import SOURCES as REPO
from isafe_helpers.results.estimates import read_estimates
from isafe_helpers.run.cli import check_paths, main
from isafe_helpers.run.pipeline import exclusive

STRANDS = ("impact", "process", "cost")


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=REPO
    )


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("faults") / "root", seed=9, las=2, teams_per_la=4, staff_per_team=4)


def snapshot(out: Path) -> dict[str, bytes]:
    """Every complete output: executed notebooks and estimates."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("*/*")) if p.suffix in (".ipynb", ".csv")
    }


@pytest.mark.slow
def test_a_failing_notebook_is_isolated_and_reported(tiny_root, tmp_path):
    nbs = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nbs)
    nb = nbformat.read(nbs / "process.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(
        at, nbformat.v4.new_code_cell('if scope == "LA02":\n    raise RuntimeError("deliberate failure for LA02")')
    )
    nbformat.write(nb, nbs / "process.ipynb")
    out, build = tmp_path / "out", tmp_path / "build"
    res = cli("run", "--data", tiny_root, "--out", out, "--notebooks", nbs, "--no-book")
    assert res.returncode == 1
    table = res.stdout.splitlines()
    assert any(
        ln.split()[:3] == ["LA02", "process", "failed"] and "RuntimeError: deliberate failure for LA02" in ln
        for ln in table
    )
    assert sum("done" in ln for ln in table) == 8
    est = read_estimates(out / "LA02" / "estimates.csv")
    assert set(est["strand"]) == {"impact", "cost"}
    assert (out / "LA02" / "process.error.txt").read_text().startswith("RuntimeError: deliberate failure")
    run = json.loads((out / "run.json").read_text())
    failed = [t for t in run["tasks"] if t["status"] == "failed"]
    assert [(t["scope"], t["strand"]) for t in failed] == [("LA02", "process")]
    res = cli("book", "--out", out, "--build", build)
    assert res.returncode == 0, res.stderr
    page = next((build / "html").rglob("LA02/*process*.html")).read_text()
    assert "failed" in page and "deliberate failure for LA02" in page


@pytest.mark.slow
def test_killed_run_keeps_complete_outputs_and_rerun_matches_uninterrupted(tiny_root, tmp_path):
    out = tmp_path / "out"
    assert cli("run", "--data", tiny_root, "--out", out, "--no-book").returncode == 0
    reference = snapshot(out)
    assert len(reference) == 9 + 3  # 3 scopes x 3 notebooks, and 3 estimates files

    # A new data root (every task must run again), then kill the run halfway.
    p = tiny_root.parent / "root2"
    shutil.copytree(tiny_root, p)
    (p / "LA02" / "note.txt").write_text("changed\n")  # an extra file changes LA02's and trial's inputs
    out2 = tmp_path / "out2"
    shutil.copytree(out, out2)  # a previous complete run in place
    before = snapshot(out2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "isafe_helpers", "run", "--data", p, "--out", out2, "--no-book", "--force"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out2 / ".tmp").glob("*"))) < 1:
        time.sleep(0.2)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # every output is still a complete one: the old bytes or a finished new version
    after = snapshot(out2)
    assert set(after) == set(before)
    for rel, data in after.items():
        if rel.endswith(".ipynb"):
            nbformat.reads(data.decode(), as_version=4)  # parses: complete
        else:
            assert set(read_estimates(out2 / rel)["strand"]) == set(STRANDS)

    # Running again finishes the job; the outputs equal an uninterrupted run on the same data.
    assert cli("run", "--data", p, "--out", out2, "--no-book").returncode == 0
    out3 = tmp_path / "out3"
    assert cli("run", "--data", p, "--out", out3, "--no-book").returncode == 0
    assert snapshot(out2) == {k: v.replace(str(out3).encode(), str(out2).encode()) for k, v in snapshot(out3).items()}


def test_output_folders_that_overlap_are_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert "inside the data root" in check_paths(data, data / "results")
    assert "inside the data root" in check_paths(data, data)
    assert "own sources" in check_paths(data, REPO)
    (tmp_path / "file").write_text("x")
    assert "not a folder" in check_paths(data, tmp_path / "file")
    assert check_paths(data, tmp_path / "results", tmp_path / "build") is None


def test_run_refuses_an_output_folder_inside_the_data_root(tiny_root, capsys):
    code = main(["run", "--data", str(tiny_root), "--out", str(tiny_root / "LA01" / "out"), "--no-book"])
    assert code == 2
    assert "must not be inside the data root" in capsys.readouterr().err
    assert not (tiny_root / "LA01" / "out").exists()


def test_a_second_run_on_the_same_results_folder_is_refused(tiny_root, tmp_path, capsys):
    out = tmp_path / "out"
    with exclusive(out):
        code = main(["run", "--data", str(tiny_root), "--out", str(out), "--no-book"])
    assert code == 2
    assert "another run is using" in capsys.readouterr().err


def _kernels(procs) -> list:
    """The kernels among ``procs``: fresh ones, or ones forked from a preloader (whose parent runs the same command)."""
    import psutil

    out = []
    for p in procs:
        try:
            cmd = " ".join(p.cmdline())
            if "ipykernel_launcher" in cmd or (
                "isafe_helpers.run.kernels" in cmd and "isafe_helpers.run.kernels" in " ".join(p.parent().cmdline())
            ):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _running(procs) -> list:
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


#: As on macOS: fork and Unix sockets (the preloader), but no Linux prctl (watchdogs end the orphans).
NO_PRCTL = "import isafe_helpers.portable as p\np.has_pdeathsig = lambda: False\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode", ["preloaded", "fresh", "preloaded-watchdogs"], ids=["preloaded-kernels", "fresh-kernels", "no-prctl"]
)
def test_kill_9_of_the_run_alone_ends_its_workers_and_kernels_and_a_rerun_succeeds(tiny_root, tmp_path, mode):
    """Only the run's own process is killed (not its group): its workers, preloaders and kernels die with it."""
    import psutil

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("ISAFE_FRESH_KERNELS", "ISAFE_VALIDATED_DATA")}
    if mode == "fresh":
        env["ISAFE_FRESH_KERNELS"] = "1"
    if mode == "preloaded-watchdogs":  # every process of the run, kernels too, gets this sitecustomize
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(NO_PRCTL, encoding="utf-8")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "site"), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "isafe_helpers", "run", "--data", tiny_root, "--out", out, "--no-book"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    run = psutil.Process(proc.pid)
    deadline = time.time() + 300
    family: list = []
    while time.time() < deadline and proc.poll() is None:
        family = run.children(recursive=True)
        if len(_kernels(family)) >= 2:  # both workers are running a notebook
            break
        time.sleep(0.2)
    assert proc.poll() is None and _kernels(family), "no kernel was seen running before the run ended"
    if mode != "fresh":  # the kernels are the preloader's
        assert any(p.pid != proc.pid and "isafe_helpers.run.kernels" in " ".join(p.cmdline()) for p in _kernels(family))
    family = run.children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while (alive := _running(family)) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive, [p.pid for p in alive]

    res = cli("run", "--data", tiny_root, "--out", out, "--no-book")
    assert res.returncode == 0, res.stdout + res.stderr
    assert sum(ln.split()[2:3] in (["done"], ["unchanged"]) for ln in res.stdout.splitlines()) == 9
    assert len(snapshot(out)) == 9 + 3
    assert not (out / ".tmp").exists()


def test_results_that_contradict_each_other_are_a_book_error_not_a_traceback(tmp_path, monkeypatch):
    """Issue 26: notebooks that read different data (the root changed during a run) give the ledger one
    population with two sizes; ``book`` reports it in words and keeps the previous book."""
    from isafe_helpers.publish import build
    from isafe_helpers.publish.ledger import LedgerError

    def contradicting(*args, **kwargs):
        raise LedgerError("population 'LA01:staff' is 40 in LA01/impact but 41 in LA01/process")

    monkeypatch.setattr(build, "_build", contradicting)
    with pytest.raises(build.BookError, match="contradict each other.*data root changes during a run"):
        build.build_book(tmp_path / "out", tmp_path / "build")


def test_stop_workers_ends_a_busy_pool_at_once(monkeypatch):
    """A run that stops before its notebooks (bad data) ends its started workers without waiting for their tasks."""
    from isafe_helpers.run.workers import start_workers, stop_workers

    monkeypatch.setenv("ISAFE_FRESH_KERNELS", "1")  # no preloader: the pool alone
    pool = start_workers(1)
    pid = pool.submit(os.getpid).result()
    busy = pool.submit(time.sleep, 600)
    while not busy.running():
        time.sleep(0.05)
    stop_workers(pool)
    import psutil

    assert not psutil.pid_exists(pid)  # ended (and reaped), not left to sleep out its task
