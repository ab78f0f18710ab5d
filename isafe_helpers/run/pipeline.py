"""Run the strand notebooks for every scope through papermill.

Each (scope, strand) task runs in its own worker process (papermill's working
directory is process-wide, so threads would collide), with one progress bar
for the run.

Nothing complete is ever lost, and nothing the handbook did not make is
deleted (:mod:`isafe_helpers.outputs`). A task executes into a private
temporary folder ``<out>/.tmp/<scope>-<strand>/``, marked with the worker's
process (a worker finding it in use by a living process, such as an orphan
of a killed run, waits for it): the notebook writes its
``estimates.csv`` there. Only when the notebook has completed are its
outputs put in place: the executed notebook is moved to
``<out>/<scope>/<strand>.ipynb`` (one rename), its rows are merged into
``<out>/<scope>/estimates.csv`` (written beside and renamed), and last the
task's input manifest is written. A failed, interrupted or killed task
leaves the previous complete outputs untouched, and the next run redoes it.

Incremental reruns: a task whose inputs are unchanged is not executed
again. Its inputs are the notebook, the parameters, the data files the scope
reads (the LA's folder and the root's instrument, deflators and marker;
every file for ``trial``), the helper package's code and the pinned
requirements; their SHA-256 is the task's manifest
(``<out>/<scope>/.<strand>.inputs``).

A failure is recorded (``<out>/<scope>/<strand>.error.txt`` and
``<out>/run.json``) and never stops the other tasks.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from isafe_helpers import config
from isafe_helpers.data import contract as C
from isafe_helpers.data.files import data_files, hash_files
from isafe_helpers.data.loading import TrialData
from isafe_helpers.outputs import NotOurs, claim, make_working, remove_ours, remove_stale
from isafe_helpers.publish.report import SPECS
from isafe_helpers.resources import NOTEBOOKS, PACKAGE, SOURCES
from isafe_helpers.results.estimates import (
    FILENAME,
    RESULTS_ROOT_MARKER,
    atomic_write_text,
    read_estimates,
    write_estimates,
)

TMP = ".tmp"


#: A strand whose notebook reads another strand's estimates (of its own
#: scope, or of every LA for ``trial``) runs after it, and those estimates
#: are among its inputs.
DEPENDS_ON: dict[str, str] = {"process": "impact"}


LOCK = ".lock"


@dataclass
class TaskOutcome:
    """What became of one (scope, strand) notebook."""

    scope: str
    strand: str
    status: str  # done | failed | unchanged
    message: str = ""
    seconds: float = 0.0


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


# --------------------------------------------------------------------------
# Inputs of a task
# --------------------------------------------------------------------------
def code_hash() -> str:
    """SHA-256 of the helper package's code and the pinned requirements."""
    h = hashlib.sha256()
    hash_files(h, [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts], PACKAGE)
    req = SOURCES / "requirements.txt"
    if req.is_file():
        h.update(req.read_bytes())
    return h.hexdigest()


def scope_files(root: Path, scope: str) -> list[Path]:
    """The data files a scope reads."""
    if scope == C.TRIAL_SCOPE:
        return data_files(root)
    shared = [root / n for n in ("instrument.yml", "deflators.csv", C.SYNTHETIC_MARKER)]
    return [p for p in shared if p.is_file()] + data_files(root / scope)


def task_inputs(root: Path, scope: str, strand: str, notebooks: Path, code: str, out: Path) -> str:
    """SHA-256 of everything a task's outputs depend on."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "data_root": str(root),
                "out": str(out),
                "scope": scope,
                "strand": strand,
                "code": code,
                "disclosure_threshold": config.threshold(),
            }
        ).encode()
    )
    h.update((notebooks / f"{strand}.ipynb").read_bytes())
    hash_files(h, scope_files(root, scope), root)
    dep = DEPENDS_ON.get(strand)
    if dep:  # the estimates it reads: its scope's, or every scope's for the trial
        for est in sorted(out.glob(f"*/{FILENAME}")) if scope == C.TRIAL_SCOPE else [out / scope / FILENAME]:
            if est.is_file():
                rows = read_estimates(est)
                h.update(est.parent.name.encode() + rows[rows["strand"] == dep].to_csv(index=False).encode())
    return h.hexdigest()


def _manifest(out: Path, scope: str, strand: str) -> Path:
    return out / scope / f".{strand}.inputs"


def is_current(out: Path, scope: str, strand: str, inputs: str) -> bool:
    """True when the task's complete outputs exist for exactly these inputs."""
    man = _manifest(out, scope, strand)
    if not (man.is_file() and man.read_text().strip() == inputs):
        return False
    for name in (f"{strand}.ipynb", FILENAME, SPECS.format(strand=strand)):
        if not (out / scope / name).is_file():
            return False
    return strand in set(read_estimates(out / scope / FILENAME)["strand"])


# --------------------------------------------------------------------------
# One task, in a worker process
# --------------------------------------------------------------------------
def run_notebook(data_root: str, scope: str, strand: str, out: str, notebooks: str, inputs: str) -> TaskOutcome:
    """Execute one strand notebook for one scope and put its outputs in place."""
    import papermill as pm

    from isafe_helpers.run.tidy_notebooks import tidy

    start = time.perf_counter()
    out_p = Path(out)
    scope_dir = out_p / scope
    try:
        work = make_working(out_p / TMP, f"{scope}-{strand}")
    except NotOurs as exc:
        return TaskOutcome(scope, strand, "failed", f"NotOurs: {exc}", time.perf_counter() - start)
    (work / RESULTS_ROOT_MARKER).write_text(str(out_p), encoding="utf-8")
    error_file = scope_dir / f"{strand}.error.txt"
    # The kernel inherits this worker's stderr: keep its chatter (transport
    # notices and the like) out of the run's terminal output.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    executed = work / f"{strand}.ipynb"
    try:
        pm.execute_notebook(
            str(Path(notebooks) / f"{strand}.ipynb"),
            str(executed),
            parameters={"data_root": data_root, "scope": scope, "output_dir": str(work)},
            kernel_name="python3",
            language="python",
            progress_bar=False,
            log_output=False,
            cwd=str(notebooks),
        )
        rows = read_estimates(work / FILENAME)
        if set(rows["strand"]) != {strand} or set(rows["scope"]) != {scope}:
            raise RuntimeError(
                f"the notebook wrote rows for {sorted(set(rows['scope']))}/{sorted(set(rows['strand']))}"
            )
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, never raised
        evalue = getattr(exc, "evalue", None)
        ename = getattr(exc, "ename", type(exc).__name__)
        message = f"{ename}: {_first_line(evalue if evalue is not None else exc)}"
        atomic_write_text(error_file, message + "\n")
        _manifest(out_p, scope, strand).unlink(missing_ok=True)
        remove_ours(work)
        return TaskOutcome(scope, strand, "failed", message, time.perf_counter() - start)
    tidy(str(executed))
    scope_dir.mkdir(parents=True, exist_ok=True)
    _manifest(out_p, scope, strand).unlink(missing_ok=True)  # outputs change from here on
    os.replace(executed, scope_dir / f"{strand}.ipynb")
    specs = work / SPECS.format(strand=strand)  # what the page shows, for the book's disclosure ledger
    if specs.is_file():
        os.replace(specs, scope_dir / specs.name)
    write_estimates(rows, scope_dir)
    error_file.unlink(missing_ok=True)
    atomic_write_text(_manifest(out_p, scope, strand), inputs + "\n")
    remove_ours(work)
    return TaskOutcome(scope, strand, "done", "", time.perf_counter() - start)


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------
class Busy(Exception):
    """Another run is using the results folder."""


@contextmanager
def exclusive(out: Path):
    """Hold ``<out>/.lock`` for the run: two runs never write one results folder.

    Raises :class:`isafe_helpers.outputs.NotOurs` when ``out`` holds files the handbook did not make.
    """
    claim(out)
    with open(out / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another run is using {out}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_all(
    data: TrialData,
    out: Path,
    scopes: list[str],
    strands: list[str],
    jobs: int = 2,
    progress: bool = True,
    notebooks: Path = NOTEBOOKS,
    force: bool = False,
) -> list[TaskOutcome]:
    """Run every (scope, strand) notebook whose inputs changed, in ``jobs`` worker processes.

    Writes ``<out>/run.json`` (data root, fingerprint, LAs, task outcomes).
    """
    claim(out)
    remove_stale(out / TMP)  # leftovers of an interrupted run whose processes have all ended
    # Kernels are started as `python`: make it this interpreter's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # ... and make their `import isafe_helpers` this very package.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE.parent), os.environ.get("PYTHONPATH")]))
    # One BLAS thread per kernel: the workers already use the cores, and
    # oversubscribed OpenBLAS threads slow the model fits down several-fold.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code = code_hash()
    tasks = [(scope, strand) for scope in scopes for strand in strands]
    outcomes: list[TaskOutcome] = []
    # Phases: strands nobody depends on or that depend on nothing first; a
    # dependent strand once what it reads is complete.
    phases = [[t for t in tasks if t[1] not in DEPENDS_ON], [t for t in tasks if t[1] in DEPENDS_ON]]
    bar = tqdm(total=len(tasks), desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=get_context("spawn")) as pool:
        for phase in phases:
            inputs = {t: task_inputs(data.root, *t, notebooks, code, out) for t in phase}
            todo = [t for t in phase if force or not is_current(out, *t, inputs[t])]
            for t in phase:
                if t not in todo:
                    outcomes.append(TaskOutcome(*t, "unchanged"))
                    bar.update()
            futures = [
                pool.submit(
                    run_notebook, str(data.root), scope, strand, str(out), str(notebooks), inputs[(scope, strand)]
                )
                for scope, strand in todo
            ]
            for fut in as_completed(futures):
                res = fut.result()
                outcomes.append(res)
                bar.set_postfix_str(f"{res.scope}/{res.strand} {res.status}")
                bar.update()
    bar.close()
    remove_stale(out / TMP)
    order = {t: i for i, t in enumerate(tasks)}
    outcomes.sort(key=lambda o: order[(o.scope, o.strand)])
    write_run_record(data, out, outcomes)
    return outcomes


def write_run_record(data: TrialData, out: Path, outcomes: list[TaskOutcome]) -> None:
    """``<out>/run.json``: what the book needs to say where its numbers came from.

    Each task keeps the record of its last execution; ``finished`` is the
    time of the last run that executed anything, so a rerun that changed
    nothing leaves the file (and so the book) as it was.
    """
    old: dict = {}
    if (out / "run.json").is_file():
        try:
            old = json.loads((out / "run.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
    previous = {}
    if old.get("data_root") == str(data.root):
        previous = {(t["scope"], t["strand"]): t for t in old.get("tasks", [])}
    executed = [o for o in outcomes if o.status != "unchanged"]
    for o in executed:
        previous[(o.scope, o.strand)] = {**asdict(o), "seconds": round(o.seconds, 1)}
    for o in outcomes:  # unchanged tasks with no record (a copied results folder)
        previous.setdefault((o.scope, o.strand), {**asdict(o), "status": "done"})
    scopes = [C.TRIAL_SCOPE, *data.las]
    tasks = [previous[(s, st)] for s in scopes for st in C.STRANDS if (s, st) in previous]
    record = {
        "data_root": str(data.root),
        "fingerprint": data.fingerprint,
        "synthetic": data.synthetic if data.is_synthetic else None,
        "las": data.las,
        "la_names": data.la_names,
        "disclosure_threshold": config.threshold(),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC") if executed or not old else old.get("finished"),
        "python": platform.python_version(),
        "data_notes": [*data.notes, *data.warnings],
        "tasks": tasks,
    }
    text = json.dumps(record, indent=2) + "\n"
    if not (out / "run.json").is_file() or (out / "run.json").read_text(encoding="utf-8") != text:
        atomic_write_text(out / "run.json", text)


def summary_table(outcomes: list[TaskOutcome]) -> str:
    """A plain-text table of every scope and strand."""
    w = max([len(o.scope) for o in outcomes] + [5])
    lines = [f"{'scope':<{w}}  {'strand':<8} {'status':<9} {'seconds':>7}  message"]
    for o in outcomes:
        lines.append(f"{o.scope:<{w}}  {o.strand:<8} {o.status:<9} {o.seconds:7.1f}  {o.message}")
    return "\n".join(lines)


def book_inputs(results: Path) -> str:
    """SHA-256 of what the book is built from: the run's outputs and the book's sources."""
    h = hashlib.sha256()
    files = [results / "run.json"] + sorted(results.glob("*/*.ipynb")) + sorted(results.glob("*/*.error.txt"))
    files += sorted(results.glob("*/*.specs.pkl"))
    files += sorted(results.glob(f"*/{FILENAME}"))
    hash_files(h, [p for p in files if p.is_file()], results)
    book_src = [SOURCES / "_config.yml", SOURCES / "_toc.yml", *sorted((SOURCES / "book").rglob("*"))]
    hash_files(h, [p for p in book_src if p.is_file()], SOURCES)
    h.update(code_hash().encode())
    return h.hexdigest()


def book_is_current(results: Path, build: Path) -> bool:
    """True when ``<build>/html`` was built from exactly these inputs."""
    marker = build / "html" / ".inputs"
    return marker.is_file() and marker.read_text().strip() == book_inputs(results)


def mark_book(results: Path, build: Path) -> None:
    atomic_write_text(build / "html" / ".inputs", book_inputs(results) + "\n")
