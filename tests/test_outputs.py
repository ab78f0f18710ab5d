"""Folders the handbook makes are the only ones it deletes; cells are safe to open in a spreadsheet."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from isafe_helpers.outputs import (
    MARKER,
    NotOurs,
    claim,
    foreign,
    is_ours,
    make_working,
    mark,
    neutralise,
    neutralise_frame,
    remove_ours,
    remove_stale,
)


def test_claim_takes_new_empty_or_marked_folders_only(tmp_path):
    new = claim(tmp_path / "a" / "new")
    assert is_ours(new)
    (tmp_path / "empty").mkdir()
    assert is_ours(claim(tmp_path / "empty"))
    assert claim(new) == new  # again: still ours
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep")
    assert "did not make" in foreign(tmp_path / "theirs")
    with pytest.raises(NotOurs):
        claim(tmp_path / "theirs")
    assert not (tmp_path / "theirs" / MARKER).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotOurs, match="not a folder"):
        claim(tmp_path / "file")


def test_remove_ours_deletes_marked_folders_and_nothing_else(tmp_path):
    ours = claim(tmp_path / "ours")
    (ours / "x").write_text("x")
    assert remove_ours(ours) and not ours.exists()
    assert remove_ours(tmp_path / "absent") is False
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "x").write_text("keep")
    with pytest.raises(NotOurs):
        remove_ours(theirs)
    link = tmp_path / "link"
    link.symlink_to(claim(tmp_path / "target"))
    with pytest.raises(NotOurs):  # a link to a marked folder is not the folder
        remove_ours(link)
    assert (theirs / "x").read_text() == "keep" and (tmp_path / "target" / MARKER).is_file()


def test_remove_stale_spares_live_processes_and_foreign_folders(tmp_path):
    tmp = tmp_path / ".tmp"
    mine = make_working(tmp, "trial-impact")  # this process lives
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan = tmp / "LA01-cost-orphan"
        orphan.mkdir()
        (orphan / MARKER).write_text(
            f'{{"made_by": "x", "pid": {sleeper.pid}, "started": {__import__("psutil").Process(sleeper.pid).create_time()}}}'
        )
        dead = tmp / "LA02-cost-dead"
        dead.mkdir()
        (dead / MARKER).write_text('{"made_by": "x", "pid": 999999999, "started": 1.0}')
        reused = tmp / "LA03-cost-reused"  # the pid lives, but it is another process (other start time)
        reused.mkdir()
        (reused / MARKER).write_text(f'{{"made_by": "x", "pid": {sleeper.pid}, "started": 1.0}}')
        foreign_dir = tmp / "user-notes"
        foreign_dir.mkdir()
        (foreign_dir / "x").write_text("keep")
        gone = remove_stale(tmp)
        assert sorted(p.name for p in gone) == ["LA02-cost-dead", "LA03-cost-reused"]
        assert mine.is_dir() and orphan.is_dir() and (foreign_dir / "x").read_text() == "keep"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(p.name for p in remove_stale(tmp)) == ["LA01-cost-orphan"]
    remove_ours(mine)
    remove_stale(tmp)
    assert (foreign_dir / "x").exists()  # .tmp stays while it holds someone's folder


def test_a_working_folder_waits_for_a_living_user_and_replaces_a_dead_ones(tmp_path):
    import json

    import psutil

    tmp = tmp_path / ".tmp"
    work = make_working(tmp, "trial-cost")
    (work / "half.ipynb").write_text("left by this process")
    assert make_working(tmp, "trial-cost") == work and not (work / "half.ipynb").exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        info = {"pid": sleeper.pid, "started": psutil.Process(sleeper.pid).create_time()}
        (work / MARKER).write_text(json.dumps(info))  # an orphan worker of a killed run uses it
        (work / "orphan.txt").write_text("in use")
        with pytest.raises(NotOurs, match=f"still in use by process {sleeper.pid}"):
            make_working(tmp, "trial-cost", timeout=0.5)
        assert (work / "orphan.txt").read_text() == "in use"
        start = __import__("time").monotonic()
        assert make_working(tmp, "trial-cost", timeout=60) == work  # waits for it to end, then takes it
        assert __import__("time").monotonic() - start > 1 and sleeper.poll() is not None
        assert not (work / "orphan.txt").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp / "LA01-cost").mkdir()
    (tmp / "LA01-cost" / "x").write_text("keep")
    with pytest.raises(NotOurs):
        make_working(tmp, "LA01-cost")
    assert (tmp / "LA01-cost" / "x").read_text() == "keep"


def test_an_emptied_marked_parent_is_removed(tmp_path):
    tmp = tmp_path / ".tmp"
    work = make_working(tmp, "x")
    remove_ours(work)
    remove_stale(tmp)
    assert not tmp.exists()


def test_remove_stale_ignores_an_unmarked_parent(tmp_path):
    tmp = tmp_path / ".tmp"
    tmp.mkdir()
    d = tmp / "old"
    d.mkdir()
    mark(d)
    assert remove_stale(tmp) == [] and d.exists()


@pytest.mark.parametrize(
    "cell, safe",
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("-1.5", "-1.5"),
        ("+3", "+3"),
        ("-1e3", "-1e3"),
        ("Venue hire", "Venue hire"),
        ("a=b", "a=b"),
        ("", ""),
        (-1.5, -1.5),
        (3, 3),
        (None, None),
    ],
)
def test_neutralise_follows_owasp_and_keeps_numbers(cell, safe):
    assert neutralise(cell) == safe


def test_neutralise_frame_touches_text_cells_only():
    df = pd.DataFrame({"note": ["=cmd", "ok", None], "estimate": [-1.0, 2.0, float("nan")]})
    out = neutralise_frame(df)
    assert out["note"].tolist()[:2] == ["'=cmd", "ok"] and pd.isna(out["note"].iloc[2])
    pd.testing.assert_series_equal(out["estimate"], df["estimate"])
