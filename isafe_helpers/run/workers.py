"""The run's worker processes and the one kernel preloader they share, started early.

A module of its own, light to import (no pandas, no papermill): ``isafe run``
starts the preloader and the workers before it imports the pipeline or
validates the data, and a new worker imports what it needs while the
preloader imports the notebooks' libraries (:mod:`isafe_helpers.run.kernels`).
"""

from __future__ import annotations

import importlib
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import active_children, get_context
from pathlib import Path

from isafe_helpers import portable
from isafe_helpers.resources import NOTEBOOKS, PACKAGE
from isafe_helpers.run import kernels


def worker_init(parent_pid: int, preloader: str | None, imports: tuple[str, ...] = ()) -> None:
    """Start a run's worker: die with the run, keep kernel chatter out of the terminal, join the preloader.

    Here, not beside the pipeline, so a new worker imports little; it imports
    papermill and ``imports`` (the modules of the tasks it will run: the
    pipeline names itself, so this module need not import it) while the
    preloader (``preloader``: its socket, or None for fresh kernels) imports
    the notebooks' libraries.
    """
    portable.die_with_parent(parent_pid)
    os.environ.update(kernel_environment())  # in the worker: the run's own process keeps its own
    # The kernels inherit this worker's stderr: keep their chatter (transport
    # notices and the like) out of the run's terminal output.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    kernels.use_preloader(preloader)
    _import_worker(imports)  # while the preloader imports the notebooks' libraries


def _import_worker(imports: tuple[str, ...]) -> None:
    """What a worker imports to run its first notebook (done while the preloader imports)."""
    for name in ("papermill", *imports):
        importlib.import_module(name)


def kernel_environment() -> dict[str, str]:
    """This process's environment as every kernel (and the preloader) gets it."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    # Kernels are started as `python`: make it this interpreter's.
    if env.get("PATH", "").split(os.pathsep)[0] != bindir:
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    # ... and make their `import isafe_helpers` this very package.
    package = str(PACKAGE.parent)
    if env.get("PYTHONPATH", "").split(os.pathsep)[0] != package:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package, env.get("PYTHONPATH")]))
    # One BLAS thread per kernel: the workers already use the cores, and
    # oversubscribed OpenBLAS threads slow the model fits down several-fold.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


class Workers(ProcessPoolExecutor):
    """The run's worker processes and the one preloader they share (ended with the pool)."""

    def __init__(self, jobs: int, notebooks: Path, imports: tuple[str, ...] = ()):
        self.preloader = kernels.serve(notebooks, kernel_environment())
        self.others = set(active_children())  # this process's children before the pool's: not the pool's
        super().__init__(
            max_workers=max(1, jobs),
            mp_context=get_context("spawn"),
            initializer=worker_init,
            initargs=(os.getpid(), self.preloader.path if self.preloader else None, tuple(imports)),
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait and self.preloader is not None:
            self.preloader.stop()
            self.preloader = None


def start_workers(jobs: int, notebooks: Path = NOTEBOOKS, warm: bool = False, imports: tuple[str, ...] = ()) -> Workers:
    """The worker processes that run the notebooks, for :func:`run_all`.

    The run's kernel preloader (:func:`isafe_helpers.run.kernels.serve`)
    starts now. With ``warm``, so do the workers, in the background, instead
    of when the first notebook is submitted: a run that
    knows it will execute notebooks (a first run into a results folder) starts
    them before validating the data, so the two overlap. Give the pool to
    :func:`run_all`, or end it with :func:`stop_workers`. Each worker
    imports ``imports`` (module names) as it starts.
    """
    pool = Workers(jobs, notebooks, imports)
    if warm:
        for _ in range(max(1, jobs)):
            pool.submit(os.getpid)  # one task per worker: each starts now
    return pool


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """End a pool that will run nothing more, at once, and its preloader (whose kernels die with it).

    The pool's processes are this process's children started since the pool
    was made (``multiprocessing.active_children()``: public API, not the
    pool's private list).
    """
    others: set = getattr(pool, "others", set())
    processes = [p for p in active_children() if p not in others]
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(10)  # reaped here: shutdown() after shutdown(wait=False) does not wait for them
    pool.shutdown(wait=True)
