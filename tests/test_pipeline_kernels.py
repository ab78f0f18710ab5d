"""Preloaded kernels change no output byte (issue 16, item 2).

The same notebooks run on the same data with a fresh kernel each
(``ISAFE_FRESH_KERNELS=1``) and with kernels forked from the workers'
preloaders must write the same executed notebooks and estimates, byte for
byte. A last cell added to the notebooks (it shows nothing) records each
kernel's parent, so the test knows the preloaded run really forked its
kernels and the fresh one did not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from isafe_helpers.data.synth import generate
from isafe_helpers.resources import NOTEBOOKS
from isafe_helpers.resources import SOURCES as REPO
from isafe_helpers.run.kernels import FRESH_ENV

pytestmark = pytest.mark.slow

PARENT_CELL = """import os as _os, psutil as _psutil
with open(_os.path.join(_os.environ["ISAFE_TEST_KERNEL_LOG"], f"{scope}-{_os.getpid()}"), "w") as _fh:
    _fh.write(" ".join(_psutil.Process(_os.getppid()).cmdline()))"""


def _run(root: Path, nbs: Path, out: Path, log: Path, fresh: bool) -> subprocess.CompletedProcess:
    log.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (FRESH_ENV, "ISAFE_VALIDATED_DATA")}
    env.update({"ISAFE_TEST_KERNEL_LOG": str(log), **({FRESH_ENV: "1"} if fresh else {})})
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "run", "--data", str(root), "--out", str(out), "--no-book"]
        + ["--notebooks", str(nbs), "--scope", "trial", "LA01"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes().replace(str(out).encode(), b"<out>")
        for p in sorted(out.glob("*/*"))
        if p.suffix in (".ipynb", ".csv")
    }


def test_preloaded_and_fresh_kernels_write_the_same_bytes(tmp_path):
    root = generate(tmp_path / "root", seed=8, las=2, teams_per_la=4, staff_per_team=4)
    nbs = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nbs)
    for strand in ("impact", "process", "cost"):
        nb = nbformat.read(nbs / f"{strand}.ipynb", as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PARENT_CELL))
        nbformat.write(nb, nbs / f"{strand}.ipynb")

    runs = {}
    for mode in ("fresh", "preloaded"):
        res = _run(root, nbs, tmp_path / mode, tmp_path / f"log-{mode}", fresh=mode == "fresh")
        assert res.returncode == 0, res.stdout + res.stderr
        runs[mode] = _outputs(tmp_path / mode)
        parents = [p.read_text() for p in (tmp_path / f"log-{mode}").iterdir()]
        assert len(parents) == 6  # trial and LA01, three strands each
        forked = ["isafe_helpers.run.kernels" in p for p in parents]
        assert all(forked) if mode == "preloaded" else not any(forked), parents

    assert len(runs["fresh"]) == 6 + 2
    assert runs["preloaded"] == runs["fresh"]


def test_socket_folders_left_by_ended_processes_are_removed(monkeypatch):
    import tempfile

    from isafe_helpers.run.kernels import socket_folder

    short = Path(tempfile.mkdtemp(prefix="isafe-test-", dir="/tmp"))  # a socket's path must stay short
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(short))
        ended = int(
            subprocess.run(
                [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
            ).stdout
        )
        stale = short / f"isafe-kernels-{ended}-abc"  # left by a run killed with kill -9
        stale.mkdir()
        (stale / "k-1").write_text("")
        alive = short / f"isafe-kernels-{os.getpid()}-def"  # a process that still runs: another run's
        alive.mkdir()
        other = short / "isafe-kernels-notapid-x"  # not named as the handbook names them
        other.mkdir()
        made = Path(socket_folder("isafe-kernels"))
        assert not stale.exists() and alive.is_dir() and other.is_dir()
        assert made.parent == short and made.name.startswith(f"isafe-kernels-{os.getpid()}-")
    finally:
        shutil.rmtree(short, ignore_errors=True)


class _FlakyPapermill:
    """papermill whose kernels die on start ``dies`` times, then fail in a cell (or run, when ``then`` is None)."""

    def __init__(self, dies: int, then: Exception | None):
        self.dies, self.then, self.calls = dies, then, 0

    def execute_notebook(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.dies:
            raise RuntimeError("Kernel died before replying to kernel_info")
        if self.then is not None:
            raise self.then


@pytest.mark.parametrize(
    ("dies", "then", "calls", "raised"),
    [
        (1, None, 2, None),  # a kernel that died on start, started again: the run goes on
        (2, ValueError("a cell failed"), 3, ValueError),  # started again, then a real failure is reported
        (5, None, 3, RuntimeError),  # three starts, then the kernel's failure is reported as it is
        (0, RuntimeError("Kernel died while waiting for execute reply"), 1, RuntimeError),  # a cell ran: no rerun
    ],
)
def test_a_kernel_that_dies_before_it_starts_is_started_again_and_nothing_else_is(dies, then, calls, raised):
    from isafe_helpers.run import pipeline

    pm = _FlakyPapermill(dies, then)
    if raised is None:
        pipeline._execute(pm, "nb.ipynb", "out.ipynb")
    else:
        with pytest.raises(raised):
            pipeline._execute(pm, "nb.ipynb", "out.ipynb")
    assert pm.calls == calls
