"""Run the strand notebooks for every scope through papermill.

Each (scope, strand) task runs in a worker process (papermill's working
directory is process-wide, so threads would collide), with one progress bar
for the run. Workers, and the kernels they start, die with the run
(:func:`isafe_helpers.portable.die_with_parent`: ``prctl(PR_SET_PDEATHSIG)`` on
Linux, a watchdog elsewhere), so a run killed with ``kill -9`` leaves nothing
running and the next run starts clean.

Validate once: the run validates the data root once (reusing the results
folder's saved validation when the data root's bytes and the code are
unchanged: :func:`load_validated`) and hands the validated data to every
notebook (:mod:`isafe_helpers.data.validated`); a notebook run by hand
validates what it reads.

A notebook's fixed cost is kept to its floor: kernels are forked from a
preloader where the platform can fork (fresh kernels elsewhere) that has already imported the libraries (identical outputs,
:mod:`isafe_helpers.run.kernels`), are shut down at once rather than
gracefully (their outputs are complete when the last cell returns), and
the executed notebook is saved once, not after every cell.

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
again. Its inputs are exactly what its notebook reads: the notebook, its
parameters, the validated tables and fields of its scope that its strand
reads (:data:`READS`; a change to one LA's costs touches that LA's cost
notebook and the pooled one, not its impact and process notebooks), what
it reads of the whole root whatever its scope (:data:`ROOT_READS`), the
estimates of another strand it reads (:data:`DEPENDS_ON`), the helper
package's code and the pinned requirements. Their SHA-256 is the task's
manifest (``<out>/<scope>/.<strand>.inputs``).

A failure is recorded (``<out>/<scope>/<strand>.error.txt`` and
``<out>/run.json``) and never stops the other tasks.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm import tqdm

from isafe_helpers import config
from isafe_helpers.data import contract as C
from isafe_helpers.data import followup, validated
from isafe_helpers.data.files import code_hash, fingerprint_root, hash_files
from isafe_helpers.outputs import LOCK, Busy, NotOurs, claim, folder_lock, make_working, remove_ours, remove_stale  # noqa: F401 (LOCK, Busy re-exported)
from isafe_helpers.publish import SPECS
from isafe_helpers.resources import NOTEBOOKS, SOURCES
from isafe_helpers.results.estimates import (
    FILENAME,
    RESULTS_ROOT_MARKER,
    atomic_write_text,
    read_estimates,
    write_estimates,
)
from isafe_helpers.run import kernels, workers

if TYPE_CHECKING:  # the validator (pandera) is imported only when a data root must be validated
    from isafe_helpers.data.loading import TrialData

TMP = ".tmp"


#: A strand whose notebook reads another strand's estimates (of its own
#: scope, or of every LA for ``trial``) runs after it, and those estimates
#: are among its inputs.
DEPENDS_ON: dict[str, str] = {"process": "impact"}


#: What each strand's notebook reads of its scope's validated data: tables,
#: and ``TrialData`` fields. ``tests/test_pipeline_inputs.py`` runs every
#: notebook on data that records what is read and checks this list covers it.
READS: dict[str, tuple[str, ...]] = {
    "impact": (
        "teams",
        "participants",
        "survey",
        "casefile_audit",
        "attendance",
        "instrument",
        "protocol",
        "las",
        "la_names",
        "synthetic",
    ),
    "process": (
        "teams",
        "participants",
        "survey",
        "casefile_audit",  # whether follow-up has arrived (data.followup): the outcome sections wait for it
        "attendance",
        "feedback",
        "fidelity",
        "ipe_targets",
        "instrument",
        "las",
        "la_names",
        "synthetic",
    ),
    "cost": (
        "teams",
        "participants",
        "attendance",
        "ipe_targets",
        "costs",
        "deflators",
        "las",
        "la_names",
        "synthetic",
    ),
}


def _report_price_year(data: TrialData) -> int | None:
    from isafe_helpers.cost.costing import report_price_year

    return report_price_year(data)


#: What a strand's notebook reads of the whole data root whatever its scope:
#: each LA's cost page states its costs in the root's price year (the latest).
ROOT_READS = {"cost": {"report_price_year": _report_price_year}}


#: The run's validated data root, in the results folder: reused by the next
#: run when the data root's bytes and the code are unchanged, and handed to
#: the notebooks (:mod:`isafe_helpers.data.validated`).
VALIDATED = ".validated.pickle"
#: Per-file validation results of the last run (:class:`isafe_helpers.data.loading.FileCache`), by code hash.
VALIDATED_FILES = ".validated-files.pickle"


@dataclass
class TaskOutcome:
    """What became of one (scope, strand) notebook."""

    scope: str
    strand: str
    status: str  # done | failed | unchanged
    message: str = ""
    seconds: float = 0.0


def _first_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


# --------------------------------------------------------------------------
# Inputs of a task
# --------------------------------------------------------------------------
@dataclass
class ValidatedRoot:
    """A validated data root as the run needs it, the tables left in the saved file.

    ``digests`` are :func:`data_digests`; ``saved`` is the file handed to the
    notebooks (:mod:`isafe_helpers.data.validated`).
    """

    root: Path
    las: list[str]
    fingerprint: str
    synthetic: dict | None
    warnings: list[str]
    digests: dict[str, dict[str, str]]
    saved: Path
    notes: list[str] = field(default_factory=list)
    la_names: dict[str, str] = field(default_factory=dict)
    #: ``baseline`` (no follow-up yet) or ``full``, for ``trial`` and each LA (:mod:`isafe_helpers.data.followup`)
    report_status: dict[str, str] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        return bool(self.synthetic and self.synthetic.get("synthetic"))


def _validated_root(payload: dict, saved: Path) -> ValidatedRoot:
    return ValidatedRoot(Path(payload["root"]), saved=saved, **payload["summary"])


def save_validated(data: TrialData, out: Path, sig: list | None = None, key: str = "") -> ValidatedRoot:
    """Save validated ``data`` as ``<out>/.validated.pickle`` for the notebooks (and the next run, by ``key``)."""
    sig = validated.signature(data.root) if sig is None else sig
    summary: dict[str, Any] = {
        "las": list(data.las),
        "fingerprint": data.fingerprint,
        "synthetic": data.synthetic,
        "warnings": list(data.warnings),
        "notes": list(getattr(data, "notes", [])),
        "la_names": dict(data.la_names),
        "digests": data_digests(data),
        "report_status": followup.statuses(data.tables, list(data.las)),
    }
    validated.save(data, out / VALIDATED, sig, key=key, summary=summary)
    return ValidatedRoot(Path(data.root), saved=out / VALIDATED, **summary)


def load_validated(root: Path, out: Path) -> ValidatedRoot:
    """Validate the data root, or reuse ``<out>/.validated.pickle`` when it holds the same bytes validated by the same code.

    Raises :class:`isafe_helpers.data.loading.DataValidationError` as
    :func:`~isafe_helpers.data.loading.load_root` does. The saved file is
    keyed by the data root's fingerprint and :func:`code_hash`, and carries
    the root's file signature for the notebooks' check. Reusing it reads
    neither the tables nor the validator.
    """
    root = Path(root).resolve()
    sig = validated.signature(root)  # before reading: a file changed meanwhile fails the notebooks' check
    code = code_hash()
    key = hashlib.sha256(f"{fingerprint_root(root)} {code}".encode()).hexdigest()
    saved = out / VALIDATED
    payload = validated.read(saved)
    if payload is not None and payload.get("key") == key and payload["root"] == str(root):
        if payload["signature"] != sig:  # same bytes, touched files: refresh the signature
            validated.save(validated.tables_of(payload), saved, sig, key=key, summary=payload["summary"])
        return _validated_root(payload, saved)
    from isafe_helpers.data.loading import FileCache, load_root

    cache = FileCache(old=_read_file_cache(out / VALIDATED_FILES, code))
    data = load_root(root, cache)
    claim(out)  # the results folder is the handbook's before anything is saved in it
    validated.write_saved(out / VALIDATED_FILES, {"code": code, "files": cache.new})
    return save_validated(data, out, sig, key)


def _read_file_cache(path: Path, code: str) -> dict:
    """The last run's per-file validation results, if that run used the same code (else none)."""
    saved = validated.load_saved(path)
    if not isinstance(saved, dict) or saved.get("code") != code or not isinstance(saved.get("files"), dict):
        return {}
    return saved["files"]


def _frame_digest(df: pd.DataFrame | None) -> str:
    if df is None:
        return "none"
    h = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def data_digests(data: TrialData) -> dict[str, dict[str, str]]:
    """SHA-256 of what a notebook can read of each scope: ``{scope: {table or field: digest}}``.

    Tables are hashed row by row (pandas' stable row hashes, in file order)
    with their columns and types; an LA's digest covers its rows only.
    """
    shared = {
        "instrument": hashlib.sha256(repr(data.instrument).encode()).hexdigest(),
        "protocol": hashlib.sha256(repr(getattr(data, "protocol", None)).encode()).hexdigest(),
        "synthetic": hashlib.sha256(json.dumps(data.synthetic, sort_keys=True, default=str).encode()).hexdigest(),
        "deflators": _frame_digest(data.deflators),
    }
    names = dict(getattr(data, "la_names", {}) or {})
    out: dict[str, dict[str, str]] = {
        s: {
            **shared,
            "las": json.dumps(data.las if s == C.TRIAL_SCOPE else [s]),
            # an LA's name appears on its pages and, for every LA, in the pooled pages' tables
            "la_names": json.dumps(names if s == C.TRIAL_SCOPE else {s: names.get(s)}, sort_keys=True),
        }
        for s in [C.TRIAL_SCOPE, *data.las]
    }
    for name, df in data.tables.items():
        head = json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode()
        rows = pd.util.hash_pandas_object(df, index=False).to_numpy()
        out[C.TRIAL_SCOPE][name] = hashlib.sha256(head + rows.tobytes()).hexdigest()
        where = df.groupby("la", sort=False).indices if len(df) else {}
        empty = hashlib.sha256(head).hexdigest()
        for la in data.las:
            idx = where.get(la)
            out[la][name] = empty if idx is None else hashlib.sha256(head + rows[idx].tobytes()).hexdigest()
    root_reads = {
        f"{strand}.{name}": json.dumps(fn(data), default=str)
        for strand, fns in ROOT_READS.items()
        for name, fn in fns.items()
    }
    for s in out:
        out[s].update(root_reads)
    return out


def task_inputs(
    scope: str, strand: str, notebooks: Path, code: str, out: Path, digests: dict, root: Path | str = ""
) -> str:
    """SHA-256 of everything a task's outputs depend on (see the module's docstring)."""
    mine = digests[scope]
    reads = {name: mine[name] for name in READS[strand]}
    reads.update({k: v for k, v in mine.items() if k.startswith(f"{strand}.")})
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
                "reads": reads,
            },
            sort_keys=True,
        ).encode()
    )
    h.update((notebooks / f"{strand}.ipynb").read_bytes())
    dep = DEPENDS_ON.get(strand)
    if dep:  # the estimates it reads: its scope's, or every scope's for the trial
        for est in sorted(out.glob(f"*/{FILENAME}")) if scope == C.TRIAL_SCOPE else [out / scope / FILENAME]:
            if est.is_file():
                h.update(est.parent.name.encode() + b"\0" + json.dumps(strand_rows(est, dep)).encode())
    return h.hexdigest()


def strand_rows(path: Path, strand: str) -> list[list[str]]:
    """The rows of an ``estimates.csv`` whose strand (second column) is ``strand``, as written (text)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [row for row in csv.reader(fh) if row[1:2] == [strand]]


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
    return bool(strand_rows(out / scope / FILENAME, strand))


# --------------------------------------------------------------------------
# One task, in a worker process
# --------------------------------------------------------------------------
#: How many times a notebook is started when its kernel dies before it answers (nothing has run then).
KERNEL_STARTS = 3


def _never_started(exc: BaseException) -> bool:
    """True when the kernel died before answering its first request, so no cell ran.

    A fresh kernel on TCP (no preloader: where Unix sockets do not exist, or
    fallbacks are forced) listens on ports jupyter_client picks by binding
    and releasing them; another process may take one first, and the kernel
    dies on start (jupyter/jupyter_client#276; seen in the suite's forced-
    fallback run on a busy machine). A new start picks new ports.
    """
    return isinstance(exc, RuntimeError) and str(exc).startswith("Kernel died before replying to kernel_info")


def _execute(pm, *args, **kwargs) -> None:
    """``papermill.execute_notebook``, started again (up to :data:`KERNEL_STARTS` in all) when the kernel never started."""
    for attempt in range(1, KERNEL_STARTS + 1):
        try:
            pm.execute_notebook(*args, **kwargs)
            return
        except RuntimeError as exc:
            if attempt == KERNEL_STARTS or not _never_started(exc):
                raise


def run_notebook(
    data_root: str, scope: str, strand: str, out: str, notebooks: str, inputs: str, saved: str = ""
) -> TaskOutcome:
    """Execute one strand notebook for one scope and put its outputs in place.

    ``saved`` is the run's validated data (:mod:`isafe_helpers.data.validated`),
    handed to the kernel in its environment: the worker may have been started
    before the data were validated.
    """
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
    executed = work / f"{strand}.ipynb"
    if saved:
        os.environ[validated.ENV] = saved  # the kernel's environment is the worker's
    try:
        _execute(
            pm,
            str(Path(notebooks) / f"{strand}.ipynb"),
            str(executed),
            parameters={"data_root": data_root, "scope": scope, "output_dir": str(work)},
            kernel_name="python3",
            language="python",
            progress_bar=False,
            log_output=False,
            cwd=str(notebooks),
            request_save_on_cell_execute=False,  # saved once at the end (and on failure)
            shutdown_kernel="immediate",  # the outputs are complete when the last cell returns
            kernel_manager_class=kernels.kernel_manager_class(),
            # papermill raises when a cell's last output takes longer than nbclient's 4 s to arrive after the
            # cell returned; a busy machine (an analyst's laptop, or other work on two cores) can take that long
            iopub_timeout=120,
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
@contextmanager
def exclusive(out: Path):
    """Hold the results folder's lock for the run (:func:`isafe_helpers.outputs.folder_lock`): two runs never write one.

    Raises :class:`isafe_helpers.outputs.Busy` when another run holds it, and
    :class:`isafe_helpers.outputs.NotOurs` when ``out`` holds files the handbook did not make.
    """
    with folder_lock(out, f"another run is using {out}; wait for it to finish"):
        yield


def _priority(task: tuple[str, str]) -> tuple[int, bool]:
    """Which ready task a free worker takes first (smaller first).

    The strands others read first (impact), so what waits on them can start
    early; then the strands that wait (process); then the rest (cost, the
    shortest, which fill the cores at the end). Within each, the pooled
    notebook (the longest) first.
    """
    scope, strand = task
    rank = 0 if strand in DEPENDS_ON.values() else 1 if strand in DEPENDS_ON else 2
    return rank, scope != C.TRIAL_SCOPE


def _waits_for(task: tuple[str, str], tasks: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The tasks of this run whose estimates ``task`` reads: its scope's, or every scope's for the trial."""
    scope, strand = task
    dep = DEPENDS_ON.get(strand)
    if not dep:
        return set()
    return {t for t in tasks if t[1] == dep and (scope == C.TRIAL_SCOPE or t[0] == scope)}


def run_all(
    data: ValidatedRoot | TrialData,
    out: Path,
    scopes: list[str],
    strands: list[str],
    jobs: int = 2,
    progress: bool = True,
    notebooks: Path = NOTEBOOKS,
    force: bool = False,
    on_work=None,
    pool: ProcessPoolExecutor | None = None,
) -> list[TaskOutcome]:
    """Run every (scope, strand) notebook whose inputs changed, in ``jobs`` worker processes.

    ``on_work`` is called once, when the first notebook is about to run
    (never when every task is unchanged). ``pool`` is the workers from
    :func:`~isafe_helpers.run.workers.start_workers` (started here when a
    notebook is to run, if not given); the run ends it.

    A task that reads another strand's estimates (:data:`DEPENDS_ON`) starts
    once those tasks have finished (its inputs include their rows); tasks are
    started as workers free up, in the order of :func:`_priority`.

    ``data`` is the validated data root: from :func:`load_validated`, or a
    :class:`TrialData` (then saved for the notebooks first). The notebooks
    read the saved copy instead of validating again.
    Writes ``<out>/run.json`` (data root, fingerprint, LAs, task outcomes).
    """
    claim(out)
    remove_stale(out / TMP)  # leftovers of an interrupted run whose processes have all ended
    claim(out / TMP)  # here, before two workers start their first tasks at the same moment
    # The validated data, for the notebooks (each checks it is for its data root, unchanged).
    if not isinstance(data, ValidatedRoot):
        data = save_validated(data, out)
    os.environ[validated.ENV] = str(data.saved)
    code = code_hash()
    digests = data.digests
    tasks = [(scope, strand) for scope in scopes for strand in strands]
    outcomes: list[TaskOutcome] = []
    bar = tqdm(total=len(tasks), desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    waiting = {t: _waits_for(t, tasks) for t in tasks}
    ready: list[tuple[str, str]] = []  # inputs known, not current: to run
    running: dict[Future, tuple[str, str]] = {}
    inputs: dict[tuple[str, str], str] = {}

    def finished(outcome: TaskOutcome) -> None:
        """Record an outcome; the tasks that waited for it and now wait for nothing become ready."""
        outcomes.append(outcome)
        bar.set_postfix_str(f"{outcome.scope}/{outcome.strand} {outcome.status}")
        bar.update()
        done = (outcome.scope, outcome.strand)
        for t, deps in waiting.items():
            if done in deps:
                deps.discard(done)
                if not deps:
                    consider(t)

    def consider(t: tuple[str, str]) -> None:
        """A task whose inputs are final: unchanged, or ready to run (once: ``inputs`` records it)."""
        if t in inputs:
            return
        inputs[t] = task_inputs(*t, notebooks, code, out, digests, data.root)
        if force or not is_current(out, *t, inputs[t]):
            ready.append(t)
        else:
            finished(TaskOutcome(*t, "unchanged"))

    try:
        for t in [t for t in tasks if not waiting[t]]:  # those waiting for nothing to begin with
            consider(t)
        while ready or running:
            while ready and len(running) < max(1, jobs):
                ready.sort(key=_priority)
                scope, strand = t = ready.pop(0)
                if on_work is not None:
                    on_work()
                    on_work = None
                if pool is None:  # started when a notebook is to run: never on a rerun with nothing to do
                    pool = workers.start_workers(jobs, notebooks, imports=(__name__,))
                fut = pool.submit(
                    run_notebook, str(data.root), scope, strand, str(out), str(notebooks), inputs[t], str(data.saved)
                )
                running[fut] = t
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                running.pop(fut)
                finished(fut.result())
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    bar.close()
    remove_stale(out / TMP)
    order = {t: i for i, t in enumerate(tasks)}
    outcomes.sort(key=lambda o: order[(o.scope, o.strand)])
    write_run_record(data, out, outcomes)
    return outcomes


def write_run_record(data: ValidatedRoot, out: Path, outcomes: list[TaskOutcome]) -> None:
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
        "report_status": dict(data.report_status),
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
