"""What this platform allows, and the portable way when it does not: fast where it can be, runs everywhere.

The run uses four POSIX-only speed-ups, each behind a check here with a
portable fallback chosen automatically:

=====================  =========================================  ==========================================
speed-up               needs                                      fallback
=====================  =========================================  ==========================================
kernel preloader       ``os.fork`` and Unix sockets               fresh kernels (:mod:`isafe_helpers.run.kernels`)
                       (:func:`can_fork`, :func:`has_unix_sockets`)
book pages in forked   ``os.fork`` (:func:`can_fork`)             every page rendered in the run's process;
processes; Sphinx -j                                              Sphinx with one process
file locks             ``fcntl.flock`` (:func:`has_flock`)        the ``filelock`` library (``msvcrt`` on
                                                                  Windows) (:func:`file_lock`)
dying with the parent  Linux ``prctl(PR_SET_PDEATHSIG)``          a watchdog thread that polls the parent
                       (:func:`has_pdeathsig`)                    process (:func:`die_with_parent`)
=====================  =========================================  ==========================================

Set ``ISAFE_PORTABLE=1`` (:data:`PORTABLE_ENV`) to force every fallback on
any platform: the run then does what it would do on Windows, where none of
the four exists. The test suite runs the bundled handbook that way and
checks its estimates equal the fast path's (``tests/test_portable.py``).
A fallback is slower, never different.

Nothing here imports ``fcntl``, ``ctypes`` or ``socket.AF_UNIX`` at module
level: importing any of the handbook's modules works on a platform that has
none of them.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Set to 1 to force every portable fallback (what the run does on Windows), on any platform.
PORTABLE_ENV = "ISAFE_PORTABLE"

#: How often the parent-death watchdog looks at the parent (seconds).
WATCH_INTERVAL = 0.5

_PR_SET_PDEATHSIG = 1


def forced() -> bool:
    """True when ``ISAFE_PORTABLE`` asks for every portable fallback."""
    return os.environ.get(PORTABLE_ENV, "") not in ("", "0")


def can_fork() -> bool:
    """True when processes can be forked (POSIX), unless fallbacks are forced."""
    if forced() or not hasattr(os, "fork"):
        return False
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def has_unix_sockets() -> bool:
    """True when Unix-domain sockets exist (``socket.AF_UNIX``), unless fallbacks are forced."""
    import socket

    return not forced() and hasattr(socket, "AF_UNIX")


def has_flock() -> bool:
    """True when ``fcntl.flock`` exists (POSIX), unless fallbacks are forced."""
    if forced():
        return False
    try:
        import fcntl
    except ImportError:
        return False
    return hasattr(fcntl, "flock")


def has_pdeathsig() -> bool:
    """True on Linux (``prctl(PR_SET_PDEATHSIG)``), unless fallbacks are forced."""
    return not forced() and sys.platform.startswith("linux")


# --------------------------------------------------------------------------
# File locks
# --------------------------------------------------------------------------
@contextmanager
def file_lock(path: str | Path, blocking: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made if missing) for the ``with`` block.

    With ``blocking=False``, raise :class:`BlockingIOError` at once when
    another process holds it. The lock is the operating system's, so it is
    let go when its process ends, however it ends: ``fcntl.flock`` where it
    exists, else the ``filelock`` library (``msvcrt`` locking on Windows).
    The lock file itself is left in place (as ``flock`` leaves it).
    """
    path = Path(path)
    if has_flock():
        import fcntl

        with open(path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))  # BlockingIOError when held
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    import filelock

    lock = filelock.FileLock(path, timeout=-1 if blocking else 0, thread_local=False, preserve_lock_file=True)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise BlockingIOError(f"{path} is locked by another process") from None
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------
# Dying with the parent
# --------------------------------------------------------------------------
def _parent_alive(parent_pid: int, started: float | None) -> bool:
    if hasattr(os, "getppid") and sys.platform != "win32" and os.getppid() != parent_pid:
        return False  # POSIX: an orphan is adopted by another process
    import psutil

    try:  # the same process, not a new one with its number
        return started is None or abs(psutil.Process(parent_pid).create_time() - started) < 0.01
    except psutil.Error:
        return False


def _parent_started(parent_pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(parent_pid).create_time()
    except psutil.Error:
        return None


def parent_watch(parent_pid: int):
    """A function that says whether ``parent_pid`` (this process's parent, the same process) still runs."""
    started = _parent_started(parent_pid)
    return lambda: started is not None and _parent_alive(parent_pid, started)


def die_with_parent(parent_pid: int, thread: bool = True) -> None:
    """Have this process end when its parent ``parent_pid`` ends; end it now if the parent already has.

    On Linux the kernel kills it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``).
    Elsewhere (or with ``ISAFE_PORTABLE=1``) a daemon thread polls the
    parent every :data:`WATCH_INTERVAL` seconds and ends this process when
    the parent has gone; ``thread=False`` starts no thread (for a process
    that will fork, and polls :func:`parent_watch` itself instead).
    """
    if has_pdeathsig():
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
        else:
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
            return
    alive = parent_watch(parent_pid)
    if not alive():
        os._exit(1)
    if not thread:
        return

    def watch() -> None:
        while alive():
            time.sleep(WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="isafe-parent-watchdog", daemon=True).start()
