"""Run the strand notebooks for every scope through papermill.

Each (scope, strand) runs in its own worker process (papermill's working
directory is process-wide, so threads would collide), with one progress bar
for the run. A notebook is executed into a temporary file and moved to
``<out>/<scope>/<strand>.ipynb`` only when it completes, so a failed or
interrupted run leaves earlier complete notebooks in place. A failure is
recorded (``<out>/<scope>/<strand>.error.txt`` and ``<out>/run.json``)
and never stops the other notebooks.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from . import contract as C
from .estimates import atomic_write_text
from .loading import TrialData
from .paths import NOTEBOOKS


@dataclass
class TaskOutcome:
    """What became of one (scope, strand) notebook."""

    scope: str
    strand: str
    status: str  # done | failed | skipped
    message: str = ""
    seconds: float = 0.0


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def run_notebook(data_root: str, scope: str, strand: str, out: str) -> TaskOutcome:
    """Execute one strand notebook for one scope (runs in a worker process)."""
    import papermill as pm

    start = time.perf_counter()
    scope_dir = Path(out) / scope
    scope_dir.mkdir(parents=True, exist_ok=True)
    final = scope_dir / f"{strand}.ipynb"
    error_file = scope_dir / f"{strand}.error.txt"
    tmp = scope_dir / f".{strand}.{os.getpid()}.tmp.ipynb"
    # The kernel inherits this worker's stderr: keep its chatter out of the
    # run's terminal output (it is noise such as transport notices).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        pm.execute_notebook(
            str(NOTEBOOKS / f"{strand}.ipynb"),
            str(tmp),
            parameters={"data_root": data_root, "scope": scope, "output_dir": str(scope_dir)},
            kernel_name="python3",
            language="python",
            progress_bar=False,
            log_output=False,
            cwd=str(NOTEBOOKS),
        )
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, never raised
        evalue = getattr(exc, "evalue", None)
        ename = getattr(exc, "ename", type(exc).__name__)
        message = f"{ename}: {_first_line(evalue if evalue is not None else exc)}"
        atomic_write_text(error_file, message + "\n")
        tmp.unlink(missing_ok=True)
        return TaskOutcome(scope, strand, "failed", message, time.perf_counter() - start)
    os.replace(tmp, final)
    error_file.unlink(missing_ok=True)
    return TaskOutcome(scope, strand, "done", "", time.perf_counter() - start)


def run_all(
    data: TrialData,
    out: Path,
    scopes: list[str],
    strands: list[str],
    jobs: int = 2,
    progress: bool = True,
) -> list[TaskOutcome]:
    """Run every (scope, strand) notebook in ``jobs`` worker processes.

    Writes ``<out>/run.json`` (data root, fingerprint, LAs, task outcomes).
    """
    out.mkdir(parents=True, exist_ok=True)
    # Kernels are started as `python`: make it this interpreter's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # One BLAS thread per kernel: the workers already use the cores, and
    # oversubscribed OpenBLAS threads slow the model fits down several-fold.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    tasks = [(scope, strand) for scope in scopes for strand in strands]
    outcomes: list[TaskOutcome] = []
    bar = tqdm(total=len(tasks), desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(run_notebook, str(data.root), scope, strand, str(out)): (scope, strand)
            for scope, strand in tasks
        }
        for fut in as_completed(futures):
            res = fut.result()
            outcomes.append(res)
            bar.set_postfix_str(f"{res.scope}/{res.strand} {res.status}")
            bar.update()
    bar.close()
    order = {t: i for i, t in enumerate(tasks)}
    outcomes.sort(key=lambda o: order[(o.scope, o.strand)])
    write_run_record(data, out, outcomes)
    return outcomes


def write_run_record(data: TrialData, out: Path, outcomes: list[TaskOutcome]) -> None:
    """``<out>/run.json``: what the book needs to say where its numbers came from."""
    previous = {}
    if (out / "run.json").is_file():
        try:
            old = json.loads((out / "run.json").read_text(encoding="utf-8"))
            if old.get("fingerprint") == data.fingerprint:
                previous = {(t["scope"], t["strand"]): t for t in old.get("tasks", [])}
        except (json.JSONDecodeError, KeyError):
            previous = {}
    for o in outcomes:
        previous[(o.scope, o.strand)] = asdict(o)
    scopes = [C.TRIAL_SCOPE, *data.las]
    tasks = [previous[(s, st)] for s in scopes for st in C.STRANDS if (s, st) in previous]
    record = {
        "data_root": str(data.root),
        "fingerprint": data.fingerprint,
        "synthetic": data.synthetic if data.is_synthetic else None,
        "las": data.las,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "tasks": tasks,
    }
    atomic_write_text(out / "run.json", json.dumps(record, indent=2) + "\n")


def summary_table(outcomes: list[TaskOutcome]) -> str:
    """A plain-text table of every scope and strand."""
    w = max([len(o.scope) for o in outcomes] + [5])
    lines = [f"{'scope':<{w}}  {'strand':<8} {'status':<7} {'seconds':>7}  message"]
    for o in outcomes:
        lines.append(f"{o.scope:<{w}}  {o.strand:<8} {o.status:<7} {o.seconds:7.1f}  {o.message}")
    return "\n".join(lines)
