"""The run where fork, Unix sockets, fcntl and prctl do not exist (issue 27): portable fallbacks, same estimates.

No Windows or macOS machine runs this suite, so those platforms are stood in
for on Linux in two ways: ``ISAFE_PORTABLE=1`` forces every fallback
(:mod:`isafe_helpers.portable`), and a ``sitecustomize`` module put on the
path of every process of a run (the run, its workers and their kernels)
takes ``os.fork`` and ``socket.AF_UNIX`` away and refuses ``fcntl`` to the
handbook's modules, so code that reached for them anyway would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from estimates_match import differences

from isafe_helpers import portable
from isafe_helpers.resources import BUNDLED_DATA
from isafe_helpers.resources import SOURCES as REPO

FIXTURES = Path(__file__).parent / "fixtures" / "estimates"

#: A Python without os.fork, Unix sockets or (for the handbook) fcntl.
NO_POSIX = '''
"""Test only: this Python has no os.fork, no Unix sockets and no fcntl for the handbook (as on Windows)."""
import os
import socket
import sys

import psutil  # its Linux backend needs AF_UNIX when imported (on Windows it has a backend of its own)

for _name in ("fork", "forkpty", "register_at_fork"):
    if hasattr(os, _name):
        delattr(os, _name)
del socket.AF_UNIX


def _socketpair(family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0):
    """A connected pair over loopback TCP, as Python makes one on Windows (Linux's needs AF_UNIX)."""
    with socket.socket(family, type, proto) as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        a = socket.socket(family, type, proto)
        a.connect(lsock.getsockname())
        b, _ = lsock.accept()
    return a, b


socket.socketpair = _socketpair


class _NoFcntlForTheHandbook:
    """Libraries keep their platform's fcntl; the handbook's own modules cannot import it."""

    def find_spec(self, name, path=None, target=None):
        if name != "fcntl":
            return None
        f = sys._getframe(1)
        while f is not None and f.f_globals.get("__name__", "").startswith(("importlib", "_frozen_importlib")):
            f = f.f_back
        if f is not None and f.f_globals.get("__name__", "").startswith("isafe_helpers"):
            raise ImportError("No module named 'fcntl' (hidden by the test)")
        return None


sys.meta_path.insert(0, _NoFcntlForTheHandbook())
sys.modules.pop("fcntl", None)
'''


def _no_posix_env(tmp_path: Path, forced: bool) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_POSIX, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in (portable.PORTABLE_ENV, "ISAFE_VALIDATED_DATA")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(REPO), env.get("PYTHONPATH")]))
    if forced:
        env[portable.PORTABLE_ENV] = "1"
    return env


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def test_every_module_imports_and_picks_the_fallbacks_without_fork_unix_sockets_or_fcntl(tmp_path):
    res = _python(
        """
        import importlib, os, pkgutil, socket
        assert not hasattr(os, "fork") and not hasattr(socket, "AF_UNIX")
        import isafe_helpers
        for m in pkgutil.walk_packages(isafe_helpers.__path__, "isafe_helpers."):
            importlib.import_module(m.name)
        from isafe_helpers import portable
        from isafe_helpers.run import kernels
        print(portable.can_fork(), portable.has_unix_sockets(), portable.has_flock(), kernels.serve(".", {}))
        """,
        _no_posix_env(tmp_path, forced=False),  # chosen by what the platform has, not by the switch
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False", "False", "None"]


def test_the_switch_forces_every_fallback(monkeypatch):
    from isafe_helpers.run import kernels

    monkeypatch.delenv(kernels.FRESH_ENV, raising=False)
    monkeypatch.setenv(portable.PORTABLE_ENV, "1")
    assert not (portable.can_fork() or portable.has_unix_sockets() or portable.has_flock() or portable.has_pdeathsig())
    assert kernels.serve(".", dict(os.environ)) is None  # fresh kernels


def test_the_pages_are_rendered_in_this_process_when_fallbacks_are_forced(monkeypatch):
    from test_assemble import LIMIT, _page, _table

    from isafe_helpers.publish import assemble
    from isafe_helpers.publish.assemble import BookDisclosure

    pages = [_page("LA01", "impact", _table("LA01", 4)), _page("LA01", "process", _table("LA01", 4, exempt=True))]
    book = BookDisclosure(pages, LIMIT)
    book.solve()
    expected = book._render([0, 1])

    def no_pool(*args, **kwargs):
        raise AssertionError("a process was forked")

    monkeypatch.setattr(assemble, "ProcessPoolExecutor", no_pool)
    monkeypatch.setenv(portable.PORTABLE_ENV, "1")
    assert book.render_pages(pages, jobs=2) == expected


HOLD = """
import sys
from isafe_helpers.portable import file_lock
try:
    with file_lock(sys.argv[1], blocking=False):
        print("got it")
except BlockingIOError as exc:
    print("busy")
"""


@pytest.mark.parametrize("forced", [False, True], ids=["fcntl", "filelock"])
def test_a_file_lock_held_by_one_process_keeps_another_out(tmp_path, monkeypatch, forced):
    if forced:
        monkeypatch.setenv(portable.PORTABLE_ENV, "1")
    else:
        monkeypatch.delenv(portable.PORTABLE_ENV, raising=False)
    lock = tmp_path / "x.lock"

    def other() -> str:
        res = subprocess.run([sys.executable, "-c", HOLD, str(lock)], capture_output=True, text=True, cwd=REPO)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    with portable.file_lock(lock):
        assert other() == "busy"
        with pytest.raises(BlockingIOError):  # this process too: a second holder is refused
            with portable.file_lock(lock, blocking=False):
                pass
    assert other() == "got it"
    assert lock.exists()  # left in place, as flock leaves it


ORPHAN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", (
    "import os, sys, time\\n"
    "from isafe_helpers.portable import die_with_parent\\n"
    "die_with_parent(os.getppid())\\n"
    "print(os.getpid(), flush=True)\\n"
    "time.sleep(120)\\n"
)])
time.sleep(120)
"""


def test_the_watchdog_ends_a_process_whose_parent_was_killed(tmp_path, monkeypatch):
    import psutil

    monkeypatch.setenv(portable.PORTABLE_ENV, "1")  # no prctl: the watchdog thread
    out = tmp_path / "child.pid"
    with open(out, "w") as fh:
        parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=fh, cwd=REPO)
    try:
        for _ in range(600):  # the child has started and set its watch
            if out.read_text().strip():
                break
            parent.poll()
            assert parent.returncode is None
            time.sleep(0.1)
        child = psutil.Process(int(out.read_text()))
        assert child.is_running()
    finally:
        parent.kill()
        parent.wait()
    try:
        child.wait(timeout=30)  # ended by its watchdog, not by this test
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("the child outlived its parent")


@pytest.mark.slow
def test_the_bundled_handbook_with_every_fallback_forced_gives_the_fast_paths_estimates(tmp_path):
    """Every scope's notebooks, fresh kernels, filelock, watchdogs, no fork: estimates equal the committed ones."""
    out = tmp_path / "results"
    res = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "run", "--data", BUNDLED_DATA, "--out", str(out), "--no-book"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_no_posix_env(tmp_path, forced=True),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    scopes = sorted(p.stem for p in FIXTURES.glob("*.csv"))
    assert sorted(p.name for p in out.iterdir() if (p / "estimates.csv").is_file()) == scopes
    for scope in scopes:
        changed = differences(out / scope / "estimates.csv", FIXTURES / f"{scope}.csv")
        assert not changed, f"{scope}: first differences: {changed[:3]}"
