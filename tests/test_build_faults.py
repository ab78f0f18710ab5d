"""Builds as safe as results (issue 26): real processes killed with ``kill -9`` while staging the book and while
printing its PDFs, two ``book`` commands on one build folder, read-only and full output folders (a small tmpfs,
mounted as root; skipped with the reason elsewhere), data changed during a run, and a user's file in
``<build>/html``. Each says what a user sees: the exit code, a one-line message, no traceback, and the complete
outputs of earlier runs kept.

About 6 minutes on a shared 2-core machine (a run, then eight book builds and two PDF prints), so the
module runs with ``make faults`` (``ISAFE_FAULT_TESTS=1``), not in the default suite."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from isafe_helpers.data.synth import generate
from isafe_helpers.outputs import LOCK
from isafe_helpers.portable import file_lock
from isafe_helpers.resources import SOURCES as REPO

pytestmark = [pytest.mark.slow, pytest.mark.faults]  # run by `make faults` (ISAFE_FAULT_TESTS=1)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=REPO
    )


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its Sphinx process is killed with it
    )


def wait_for(check, proc: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll ``check`` until true; False if ``proc`` ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if check():
            return True
        time.sleep(0.02)
    return False


def locked(path: Path) -> bool:
    """Whether another process holds the lock on ``path`` (the handbook's folder lock)."""
    if not path.exists():
        return False
    try:
        with file_lock(path, blocking=False):
            return False
    except BlockingIOError:
        return True


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A 2-LA run and its book (built once; tests work on copies)."""
    tmp = tmp_path_factory.mktemp("buildfaults")
    root = generate(tmp / "root", seed=9, las=2, teams_per_la=4, staff_per_team=4)
    out, build = tmp / "out", tmp / "build"
    res = cli("run", "--data", root, "--out", out, "--build", build)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return {"root": root, "out": out, "build": build}


def copies(tiny: dict, where: Path) -> tuple[Path, Path]:
    """A copy of the results and of the built book, the results changed so that the book must be rebuilt."""
    out, build = where / "out", where / "build"
    shutil.copytree(tiny["out"], out, symlinks=True)
    shutil.copytree(tiny["build"], build, symlinks=True)
    run = json.loads((out / "run.json").read_text())
    run["finished"] = "2030-01-01 00:00 UTC"  # shown on the status page
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return out, build


def one_line_error(res: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_kill_9_while_staging_is_cleaned_up_by_the_next_build_and_a_second_book_command_is_refused(tiny, tmp_path):
    out, build = copies(tiny, tmp_path)
    before = (build / "html" / "index.html").read_bytes()
    proc = start("book", "--out", out, "--build", build)
    staging = build / ".source-new"
    assert wait_for(lambda: (staging / "book").is_dir(), proc), "staging was not seen before the build ended"
    kill(proc)
    assert staging.is_dir()  # killed while staging: its folder is left behind
    assert (build / "html" / "index.html").read_bytes() == before  # the previous book is whole

    again = start("book", "--out", out, "--build", build)
    # the killed build's staging is still there: wait for the next build to hold the build folder's lock
    assert wait_for(lambda: locked(build / LOCK), again), "the next build did not take the build folder's lock"
    os.killpg(again.pid, signal.SIGSTOP)  # paused holding it, so the second command surely meets it running
    try:
        second = cli("book", "--out", out, "--build", build)
    finally:
        os.killpg(again.pid, signal.SIGCONT)
    assert second.returncode == 2
    assert "another isafe command is building the book in" in one_line_error(second)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert not staging.exists()
    assert "2030-01-01" in (build / "html" / "book" / "status.html").read_text()


def test_a_file_someone_put_in_the_html_folder_is_never_deleted(tiny, tmp_path):
    out, build = copies(tiny, tmp_path)
    mine = build / "html" / "my-notes.txt"
    mine.write_text("mine\n")
    res = cli("book", "--out", out, "--build", build, "--force")
    assert res.returncode == 2
    line = one_line_error(res)
    assert "my-notes.txt" in line and "did not write" in line
    assert mine.read_text() == "mine\n" and (build / "html" / "index.html").is_file()
    mine.unlink()
    assert cli("book", "--out", out, "--build", build).returncode == 0


def test_pdfs_printed_before_an_interrupted_pdf_run_are_printed_again(tiny, tmp_path):
    from test_browser import find_chromium

    if find_chromium() is None:
        pytest.skip("no Chromium: install Debian's chromium (make browser as root)")
    out, build = copies(tiny, tmp_path)
    run = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**run, "finished": tiny_finished(tiny)}, indent=2) + "\n")
    first = cli("book", "--out", out, "--build", build, "--pdf")  # the book as it was, and its PDFs
    assert first.returncode == 0 and "pdf:" in first.stdout, first.stderr[-2000:]
    inputs = (build / "html" / ".inputs").read_text()

    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")  # changed results: new HTML
    proc = start("book", "--out", out, "--build", build, "--pdf")
    new_html = build / "html" / ".inputs"
    assert wait_for(lambda: new_html.is_file() and new_html.read_text() != inputs, proc), "killed too late"
    kill(proc)  # the new HTML is in place; its PDFs are being printed

    res = cli("book", "--out", out, "--build", build, "--pdf")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "pdf:" in res.stdout, res.stdout  # printed again from the new HTML, not "book: unchanged"
    assert "book: unchanged" in cli("book", "--out", out, "--build", build, "--pdf").stdout


def tiny_finished(tiny: dict) -> str:
    return json.loads((tiny["out"] / "run.json").read_text())["finished"]


@contextmanager
def small_filesystem(where: Path, size: str):
    """A tmpfs of ``size`` mounted at ``where`` (root only): skip with the reason where the machine does not allow it."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs (read-only and full-disk cases)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_read_only_output_folders_give_one_line_naming_the_folder_and_lose_nothing(tiny, tmp_path):
    with small_filesystem(tmp_path / "ro", "256m") as ro:
        out, build = copies(tiny, ro)
        before_out, before_build = files(out), files(build)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        res = cli("run", "--data", tiny["root"], "--out", out, "--build", build, "--force")
        assert res.returncode == 3
        line = one_line_error(res)
        assert f"--out folder {out.resolve()}" in line and "Read-only file system" in line
        res = cli("book", "--out", out, "--build", build)
        assert res.returncode == 3
        line = one_line_error(res)
        assert f"--build folder {build.resolve()}" in line and "Read-only file system" in line
        assert files(out) == before_out and files(build) == before_build


def test_a_full_disk_gives_one_line_naming_the_folder_and_keeps_the_previous_book(tiny, tmp_path):
    with small_filesystem(tmp_path / "full", "256m") as full:
        out, build = copies(tiny, tmp_path)
        shutil.rmtree(build)
        build = full / "build"
        shutil.copytree(tiny["build"], build, symlinks=True)
        before = files(build / "html")
        with open(full / "filler", "wb") as fh:  # fill the disk, leaving a little room
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        os.truncate(full / "filler", (full / "filler").stat().st_size - 200_000)
        res = cli("book", "--out", out, "--build", build)
        assert res.returncode == 3, res.stdout[-1000:] + res.stderr[-2000:]
        line = one_line_error(res)
        assert f"--build folder {build.resolve()}" in line and "No space left on device" in line
        assert files(build / "html") == before
        (full / "filler").unlink()
        res = cli("book", "--out", out, "--build", build)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "2030-01-01" in (build / "html" / "book" / "status.html").read_text()


def test_data_changed_during_a_run_is_reported_not_a_traceback(tiny, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tiny["root"], root)
    out = tmp_path / "out"
    proc = start("run", "--data", root, "--out", out, "--build", tmp_path / "build")
    assert wait_for(lambda: (out / ".tmp").is_dir(), proc), "no notebook was seen running"
    with open(root / "LA01" / "la.yml", "a", encoding="utf-8") as fh:
        fh.write("# edited during the run\n")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 4, stdout[-2000:] + stderr[-2000:]
    res = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert "changed while the run was reading it" in one_line_error(res)
    assert not (tmp_path / "build" / "html").exists()  # no book of mixed data
