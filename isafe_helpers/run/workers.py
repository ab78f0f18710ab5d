"""The run's worker processes: started early, each with its kernel preloader.

A module of its own, light to import (no pandas, no papermill): ``isafe run``
starts the workers before it imports the pipeline or validates the data, and
a new worker imports little before its preloader starts importing the
notebooks' libraries (:mod:`isafe_helpers.run.kernels`).
"""

from __future__ import annotations

import importlib
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from isafe_helpers.resources import NOTEBOOKS, PACKAGE
from isafe_helpers.run import kernels


def worker_init(parent_pid: int, notebooks: str) -> None:
    """Start a run's worker: die with the run, keep kernel chatter out of the terminal, start the preloader.

    Here, not beside the pipeline, so a new worker imports little before its
    preloader starts importing the notebooks' libraries.
    """
    kernels.die_with_parent(parent_pid)
    kernel_environment()  # here, in the worker: the run's own process keeps its environment (and BLAS threads)
    # The kernels inherit this worker's stderr: keep their chatter (transport
    # notices and the like) out of the run's terminal output.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    kernels.start_preloader(notebooks, meanwhile=_import_worker)


def _import_worker() -> None:
    """What a worker imports to run its first notebook (done while its preloader starts)."""
    importlib.import_module("papermill")
    importlib.import_module("isafe_helpers.run.pipeline")


def kernel_environment() -> None:
    """What every kernel inherits from its worker: set in each worker as it starts."""
    bindir = str(Path(sys.executable).parent)
    # Kernels are started as `python`: make it this interpreter's.
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    # ... and make their `import isafe_helpers` this very package.
    package = str(PACKAGE.parent)
    if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != package:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))
    # One BLAS thread per kernel: the workers already use the cores, and
    # oversubscribed OpenBLAS threads slow the model fits down several-fold.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def start_workers(jobs: int, notebooks: Path = NOTEBOOKS, warm: bool = False) -> ProcessPoolExecutor:
    """The worker processes that run the notebooks, for :func:`run_all`.

    With ``warm``, the workers and their kernel preloaders start now, in the
    background, instead of when the first notebook is submitted: a run that
    knows it will execute notebooks (a first run into a results folder) starts
    them before validating the data, so the two overlap. Give the pool to
    :func:`run_all`, or end it with :func:`stop_workers`.
    """
    pool = ProcessPoolExecutor(
        max_workers=max(1, jobs),
        mp_context=get_context("spawn"),
        initializer=worker_init,
        initargs=(os.getpid(), str(notebooks)),
    )
    if warm:
        for _ in range(max(1, jobs)):
            pool.submit(os.getpid)  # one task per worker: each starts (and starts its preloader)
    return pool


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """End a pool that will run nothing more, at once (its preloaders and kernels die with their workers)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=True)
