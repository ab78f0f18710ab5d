"""Command line: ``python -m isafe_helpers {run,book,synth,validate,template}``.

Exit codes (:data:`EXIT_CODES`): 0 success; 1 a notebook or the book
failed; 2 the data root breaks the data contract (nothing was run), the
command line is wrong, an output path is refused (see :func:`check_paths`),
or another command is using the results or build folder; 3 an output folder
could not be written (read-only, disk full, no permission: the message
names the folder and the system's reason); 4 the data root changed while
the run read it (its fingerprint at the end differs from the start: the
book is not built). Whatever the code, the complete outputs of earlier
runs are kept.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

# One BLAS thread in this process and its children, set before numpy is first imported (a user's own setting
# wins): the matrices here are small (the disclosure ledger's blocks, one LA's models), and a BLAS thread pool
# beside the notebook processes on two cores made the ledger's small SVDs 20 to 100 times slower.
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

from isafe_helpers.data import contract as C  # noqa: E402
from isafe_helpers.outputs import Busy, NotOurs, folder_lock, foreign, inside, replace_refused  # noqa: E402
from isafe_helpers.resources import BUILD, BUNDLED_DATA, DEFAULT_OUT, NOTEBOOKS, SOURCES  # noqa: E402

if TYPE_CHECKING:  # for annotations only: the validator is imported when a root must be validated
    from isafe_helpers.data.loading import TrialData
    from isafe_helpers.run.pipeline import ValidatedRoot

#: What each exit code means (also in the README's "Reliability" section).
EXIT_CODES = {
    0: "success",
    1: "a notebook or the book failed",
    2: "the data root breaks the data contract, the command line is wrong, an output folder is refused, "
    "or another command is using it",
    3: "an output folder could not be written (read-only, disk full, no permission)",
    4: "the data root changed while the run read it",
}
EXIT_OS_ERROR = 3
EXIT_DATA_CHANGED = 4

PDF_HELP = (
    "also print the book to PDF (the whole report and one per LA, into <build>/pdf) "
    "with Debian's Chromium; without Chromium the HTML book is still built and the message says how to get it"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="isafe", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="validate the data root, run the notebooks, build the book")
    run.add_argument("--data", type=Path, default=BUNDLED_DATA, help="data root (default: bundled synthetic trial)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results/)")
    run.add_argument("--scope", nargs="+", metavar="CODE", help="scopes to run: LA codes and/or 'trial' (default: all)")
    run.add_argument("--strand", nargs="+", choices=C.STRANDS, help="strands to run (default: all)")
    run.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    run.add_argument("--no-book", action="store_true", help="do not build the book afterwards")
    run.add_argument("--build", type=Path, default=BUILD, help="book build folder (default: _build/)")
    run.add_argument("--force", action="store_true", help="rerun every notebook even if its inputs are unchanged")
    run.add_argument("--pdf", action="store_true", help=PDF_HELP)
    run.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)

    book = sub.add_parser("book", help="build the book from a results folder")
    book.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results/)")
    book.add_argument("--build", type=Path, default=BUILD, help="build folder (default: _build/)")
    book.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    book.add_argument("--pdf", action="store_true", help=PDF_HELP)

    synth = sub.add_parser("synth", help="write a synthetic ISAFE trial data root")
    synth.add_argument("--out", type=Path, required=True, help="new folder to write")
    synth.add_argument("--seed", type=int, default=20240601)
    synth.add_argument("--las", type=int, default=7)
    synth.add_argument("--teams-per-la", type=int, default=9)
    synth.add_argument("--staff-per-team", type=int, default=10)

    val = sub.add_parser("validate", help="check a data root against the data contract")
    val.add_argument("--data", type=Path, default=BUNDLED_DATA)
    val.add_argument(
        "--report", type=Path, metavar="CSV", help="also write every problem (file, row, column, value, rule) to CSV"
    )

    tpl = sub.add_parser(
        "template",
        help=(
            f"write the return template, the workbook {C.RETURNS_WORKBOOK} an LA fills in, and beside it a "
            "starter report/ folder for the evaluator's own pages"
        ),
    )
    tpl.add_argument("--out", type=Path, required=True, help="new .xlsx file to write")
    tpl.add_argument(
        "--instrument", type=Path, help="instrument.yml whose items and themes it carries (default: the contract's)"
    )
    return p


def _load(root: Path, out: Path | None = None, report: Path | None = None):
    """The validated data root, or None after printing its problems (and writing them to ``report``).

    With ``out``, the results folder's saved validation is reused when the data
    root's bytes and the code are unchanged; warnings and notes are printed.

    The validator is imported only when a root must be validated (a rerun on
    unchanged data reuses the saved validation without it). A ``report`` is
    written whether the root passes or not, so its writer is imported for both.
    """
    if report is not None:
        from isafe_helpers.data.loading import problems_csv
    data: TrialData | ValidatedRoot
    try:
        if out is None:
            from isafe_helpers.data.loading import load_root

            data = load_root(root)
        else:
            from isafe_helpers.run.pipeline import load_validated

            data = load_validated(root, out)
    except Exception as err:
        from isafe_helpers.data.loading import DataValidationError

        if not isinstance(err, DataValidationError):
            raise
        for n in err.notes:
            print(f"note: {n}", file=sys.stderr)
        print(err.report(), file=sys.stderr)
        if report is not None:
            _write_report(report, problems_csv(err.problems))
            print(f"Every problem, one per row: {report}", file=sys.stderr)
        print("Nothing was run. Fix the problems above and run again.", file=sys.stderr)
        return None
    if report is not None:
        _write_report(report, problems_csv([]))
    for w in data.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for n in data.notes:
        print(f"note: {n}", file=sys.stderr)
    return data


def _write_report(path: Path, text: str) -> None:
    from isafe_helpers.outputs import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def check_report(path: Path, data: Path) -> str | None:
    """Refuse a ``--report`` file inside the data root, or over a file that is not an earlier report."""
    from isafe_helpers.data.loading import REPORT_COLUMNS

    path = path.resolve()
    if inside(path, data):
        return f"--report {path} is inside the data root {data.resolve()}: it would become part of the data"
    if not path.parent.is_dir():
        return f"--report {path}: folder {path.parent} not found"
    if path.exists():
        with open(path, "rb") as fh:
            first = fh.readline().decode("utf-8", "replace").strip()
        if not path.is_file() or first != ",".join(REPORT_COLUMNS):
            return f"--report {path} exists and is not an earlier problem report: it is never written over"
    return None


def in_sources(path: Path) -> bool:
    """True when ``path`` is the handbook's sources folder, holds it, or lies in it outside ``results/`` and ``_build/``."""
    if inside(SOURCES, path):
        return True
    return inside(path, SOURCES) and not (inside(path, DEFAULT_OUT) or inside(path, BUILD))


def check_paths(
    data: Path | None, out: Path, build: Path = BUILD, book: bool = True, write_out: bool = True
) -> str | None:
    """Refuse output folders that would write into the data, the sources, each other, or someone's files.

    ``--out`` (when written) and ``--build`` (when the book is built) must not be a file,
    lie in the handbook's sources (outside the default ``results/`` and
    ``_build/``) or the data root, or hold them, and must be new, empty or
    marked as the handbook's (:mod:`isafe_helpers.outputs`). ``data`` is
    None when unknown. Returns the reason, or None when the paths are safe.
    """
    out, build = out.resolve(), build.resolve()
    flags = ([("--out", out)] if write_out else []) + ([("--build", build)] if book else [])
    for flag, path in flags:
        if path.exists() and not path.is_dir():
            return f"{flag} {path} exists and is not a folder"
        if in_sources(path):
            return (
                f"{flag} {path} would write into the handbook's own sources ({SOURCES}): choose a folder outside "
                "them (inside them, only results/ and _build/ are for outputs)"
            )
        if data is not None and (inside(path, data) or inside(data, path)):
            return (
                f"{flag} {path} must not be inside the data root {data.resolve()}, nor hold it: "
                "outputs are written apart from the data"
            )
    if inside(out, build) or inside(build, out):
        return f"the results folder and the book's build folder must be apart (--out {out}, --build {build})"
    for flag, path in flags:
        reason = foreign(path)
        if reason:
            return f"{flag} {reason}"
    if book:
        reason = replace_refused(build / "html")
        if reason:
            return f"--build {reason}"
    return None


#: What building the book imports (the figures and prose renderers included): a few seconds of a bundled run.
BOOK_MODULES = (
    "isafe_helpers.publish.build",
    "isafe_helpers.publish.figures",
    "isafe_helpers.publish.prose",
    "markdown_it",
)


def _warm_book_imports() -> None:
    """Import the book's modules in a background thread while the notebooks run (this process only waits then).

    Only when some notebook runs: a rerun with nothing changed builds no book, and importing would slow it.

    Importing changes nothing the book computes; an import that fails here
    fails again, and is reported, when the book is built.
    """
    import importlib
    import threading

    def load() -> None:
        for name in BOOK_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - reported by the book build itself
                return

    threading.Thread(target=load, name="isafe-book-imports", daemon=True).start()


def _build(out: Path, build: Path, force: bool, pdf: bool = False) -> int:
    """Build the book into ``build`` (and its PDFs), holding the build folder's lock."""
    with folder_lock(build, f"another isafe command is building the book in {build}; wait for it to finish"):
        return _build_locked(out, build, force, pdf)


def _build_locked(out: Path, build: Path, force: bool, pdf: bool) -> int:
    from isafe_helpers.run.pipeline import book_is_current, mark_book

    html_current = not force and book_is_current(out, build)
    if html_current and not (pdf and not pdfs_current(build)):
        print(f"book: unchanged, {build / 'html' / 'index.html'}")
        return 0
    if not html_current:
        from isafe_helpers.publish.build import BookError, build_book

        try:
            index = build_book(out, build)
        except BookError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        mark_book(out, build)
        print(f"book: {index}")
    else:
        print(f"book: unchanged, {build / 'html' / 'index.html'}; its PDFs are not of this HTML: printing them")
    return _pdfs(out, build) if pdf else 0


PDF_DIR = "pdf"
#: In ``<build>/pdf``: the HTML book's inputs (``<build>/html/.inputs``) when its PDFs were all printed from it.
PDF_OF = ".html-inputs"


def pdfs_current(build: Path) -> bool:
    """True when every PDF in ``<build>/pdf`` was printed from the HTML now in ``<build>/html``.

    The PDFs carry the fingerprint of the HTML they were printed from
    (:data:`PDF_OF`), written only once all of them are printed; a print
    that is interrupted, or HTML built since, leaves them not current, and
    the next ``--pdf`` prints them again.
    """
    mine, html = build / PDF_DIR / PDF_OF, build / "html" / ".inputs"
    return mine.is_file() and html.is_file() and mine.read_text() == html.read_text()


def _pdfs(out: Path, build: Path) -> int:
    """Print the built book to PDF into ``<build>/pdf``; without Chromium, say how to get the PDFs (exit 0)."""
    from isafe_helpers.outputs import atomic_write_bytes, is_ours, make_marked

    try:
        from isafe_helpers.publish.pdf import ChromiumMissing, PdfError, build_pdfs
    except ImportError as err:  # the `pdf` extra is not installed
        print(f"PDF: not printed: {err.name} is not installed (pip install 'isafe-helpers[pdf]')", file=sys.stderr)
        return 0

    folder = build / PDF_DIR
    if folder.exists() and not is_ours(folder):
        print(f"error: {NotOurs.__name__}: {folder} was not made by the handbook: no PDF was printed", file=sys.stderr)
        return 1
    if not folder.exists():
        make_marked(folder)
    (folder / PDF_OF).unlink(missing_ok=True)  # not current until every PDF is printed from this HTML
    try:
        made = build_pdfs(build / "html", out, folder)
    except ChromiumMissing as err:
        print(f"PDF: not printed: {err}", file=sys.stderr)
        return 0
    except PdfError as err:
        print(f"error: PDF: {err}", file=sys.stderr)
        return 1
    atomic_write_bytes(folder / PDF_OF, (build / "html" / ".inputs").read_bytes())
    # a copy beside the HTML, where its pages link them (publish.book.PDF_FOLDER): the published folder is whole
    from isafe_helpers.publish.book import PDF_FOLDER

    beside = build / "html" / PDF_FOLDER
    beside.mkdir(exist_ok=True)
    for path, pages in made:
        shutil.copyfile(path, beside / path.name)
        print(f"pdf: {path} ({pages} pages)")
    return 0


def _cmd_run(args) -> int:
    from isafe_helpers.config import threshold
    from isafe_helpers.run.workers import start_workers, stop_workers

    problem = check_paths(args.data, args.out, args.build, book=not args.no_book)
    try:
        threshold()
    except ValueError as err:
        problem = str(err)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    clock = time.perf_counter()
    # A first run into a results folder runs every notebook: start the workers
    # (and the kernels' preloader) now, so they start while the data are validated.
    first = not (args.out / "run.json").is_file()
    pool = (
        start_workers(args.jobs, args.notebooks.resolve(), warm=True, imports=("isafe_helpers.run.pipeline",))
        if first or args.force
        else None
    )
    try:
        return _run(args, pool, clock)
    finally:
        if pool is not None:
            stop_workers(pool)  # already ended unless the run stopped before its notebooks


def _run(args, pool, clock: float) -> int:
    """``isafe run`` once its arguments are checked: validate, run the notebooks in ``pool``, build the book."""
    from isafe_helpers.data.files import fingerprint_root
    from isafe_helpers.run.pipeline import exclusive, run_all, summary_table

    data = _load(args.data, args.out.resolve())
    if data is None:
        return 2
    times = {"validation": time.perf_counter() - clock}
    scopes = [C.TRIAL_SCOPE, *data.las]
    if args.scope:
        unknown = [s for s in args.scope if s not in scopes]
        if unknown:
            print(f"error: unknown scope(s) {', '.join(unknown)}; found: {', '.join(scopes)}", file=sys.stderr)
            return 2
        scopes = [s for s in scopes if s in args.scope]
    strands = [s for s in C.STRANDS if not args.strand or s in args.strand]
    out = args.out.resolve()
    try:
        with exclusive(out):
            clock = time.perf_counter()
            outcomes = run_all(
                data,
                out,
                scopes,
                strands,
                jobs=args.jobs,
                notebooks=args.notebooks.resolve(),
                force=args.force,
                on_work=None if args.no_book else _warm_book_imports,  # not when nothing reruns
                pool=pool,
            )
            times["notebooks"] = time.perf_counter() - clock
            print(summary_table(outcomes))
            # a notebook that ran may have read data that changed meanwhile (none ran: nothing was read)
            ran = any(o.status != "unchanged" for o in outcomes)
            now = fingerprint_root(data.root) if ran else data.fingerprint
            if now != data.fingerprint:
                print(
                    f"error: the data root {data.root} changed while the run was reading it (its fingerprint was "
                    f"{data.fingerprint[:12]} at the start and is {now[:12]} now), so these results may mix the old "
                    "and the new data: the book was not built. Run again once the data root has stopped changing "
                    "(the notebooks whose inputs changed run again).",
                    file=sys.stderr,
                )
                return EXIT_DATA_CHANGED
            full = [o for o in outcomes if o.status == "failed" and _os_failure(o.message)]
            if full:  # the results folder could not be written: the book would only show the failures
                print(
                    f"error: --out folder {out}: {_os_failure(full[0].message)} (while {len(full)} notebook(s) "
                    f"wrote their results: {', '.join(f'{o.scope}/{o.strand}' for o in full[:5])}); free some space "
                    "or choose a writable folder. Complete outputs of earlier runs are kept "
                    f"(exit {EXIT_OS_ERROR})",
                    file=sys.stderr,
                )
                return EXIT_OS_ERROR
            failed = any(o.status == "failed" for o in outcomes)
            if failed:
                print(
                    "Some notebooks failed: their previous complete outputs, if any, are kept; "
                    "the book shows a page saying what failed.",
                    file=sys.stderr,
                )
            clock = time.perf_counter()
            book_status = 0 if args.no_book else _build(out, args.build.resolve(), args.force, args.pdf)
            times["book"] = time.perf_counter() - clock
    except (Busy, NotOurs) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"results: {out}")
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    return 1 if failed or book_status else 0


def _os_failure(message: str) -> str | None:
    """The system's reason when a notebook failed because its output could not be written (full, read-only), or None."""
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        if f"[Errno {code}]" in message:
            return f"{os.strerror(code)} [{errno.errorcode[code]}]"
    return None


def _cmd_book(args) -> int:
    import json

    data = None
    try:
        data = Path(json.loads((args.out / "run.json").read_text(encoding="utf-8"))["data_root"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no run: build_book says so
    problem = check_paths(data, args.out, args.build, write_out=False)  # --out is only read
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return _build(args.out.resolve(), args.build.resolve(), args.force, args.pdf)
    except (Busy, NotOurs) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _cmd_synth(args) -> int:
    from isafe_helpers.data.synth import generate

    try:
        out = generate(
            args.out, seed=args.seed, las=args.las, teams_per_la=args.teams_per_la, staff_per_team=args.staff_per_team
        )
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"synthetic data root: {out}")
    return 0


def _cmd_validate(args) -> int:
    if args.report is not None:
        problem = check_report(args.report, args.data)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    data = _load(args.data, report=args.report)
    if data is None:
        return 2
    print(f"{data.root}: {len(data.las)} LAs, {len(data.teams)} teams, {len(data.participants)} participants: valid")
    return 0


def _cmd_template(args) -> int:
    from isafe_helpers.data.template import write_template

    out = args.out.resolve()
    if out.suffix.lower() != ".xlsx":
        problem = f"--out {out} must name an .xlsx file"
    elif out.exists():
        problem = f"--out {out} exists: the template is never written over a file"
    elif not out.parent.is_dir():
        problem = f"--out {out}: folder {out.parent} not found"
    elif in_sources(out):
        problem = f"--out {out} would write into the handbook's own sources ({SOURCES})"
    else:
        problem = None
    instrument = C.DEFAULT_INSTRUMENT
    if problem is None and args.instrument is not None:
        try:
            instrument = C.Instrument.from_yaml(args.instrument)
        except (OSError, ValueError, AttributeError, TypeError) as err:
            problem = f"--instrument {args.instrument}: {err}"
        except Exception as err:  # yaml errors: report, never traceback
            problem = f"--instrument {args.instrument}: unreadable: {err}"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    write_template(out, instrument)
    print(f"return template: {out}")
    # the evaluator's starter pages beside it (data.report_pages), never over a file already there
    from isafe_helpers.data.report_pages import FOLDER, STARTER, write_starter

    folder = out.parent / FOLDER
    written = write_starter(folder)
    kept = "" if len(written) == 1 + len(STARTER) else " (pages already there are kept as they were)"
    print(f"evaluator's pages: {folder}: one page per section of the report, to fill in{kept}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (the ``isafe`` console script and ``python -m isafe_helpers``)."""
    args = _parser().parse_args(argv)
    try:
        return {
            "run": _cmd_run,
            "book": _cmd_book,
            "synth": _cmd_synth,
            "validate": _cmd_validate,
            "template": _cmd_template,
        }[args.command](args)
    except KeyboardInterrupt:
        print("interrupted: complete outputs of earlier runs are untouched", file=sys.stderr)
        return 130
    except OSError as err:
        print(f"error: {os_error_message(err, args)}", file=sys.stderr)
        return EXIT_OS_ERROR


def os_error_message(err: OSError, args) -> str:
    """One line for an OS error: the output folder it hit, the system's reason, and that nothing earlier is lost."""
    path = Path(err.filename).resolve() if err.filename else None
    folders = [(f"--{k}", Path(v).resolve()) for k, v in vars(args).items() if k in ("out", "build", "report") and v]
    where = next(((flag, f) for flag, f in folders if path is not None and inside(path, f)), None)
    if where is not None:
        place = f"{where[0]} folder {where[1]}"
    elif path is not None:
        place = f"{path}"
    else:  # no file named (a write that ran out of space): the folders this command writes
        book = args.command == "book" or not getattr(args, "no_book", True)
        writes = [(f, p) for f, p in folders if (f == "--build" and book) or (f == "--out" and args.command == "run")]
        place = " or ".join(f"{f} folder {p}" for f, p in writes) or "an output folder"
    reason = err.strerror or str(err)
    name = errno.errorcode.get(err.errno or 0, "")
    detail = f" (writing {path})" if path is not None and where is not None and path != where[1] else ""
    hint = {
        errno.ENOSPC: "free some space or choose another folder",
        errno.EDQUOT: "free some space or choose another folder",
        errno.EROFS: "choose a writable folder",
        errno.EACCES: "choose a folder you may write to",
        errno.EPERM: "choose a folder you may write to",
    }.get(err.errno or 0, "check the folder")
    return (
        f"{place}: {reason}{f' [{name}]' if name else ''}{detail}; {hint}. "
        f"Complete outputs of earlier runs are kept (exit {EXIT_OS_ERROR})"
    )
