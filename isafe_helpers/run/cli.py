"""Command line: ``python -m isafe_helpers {run,book,synth,validate}``.

Exit codes: 0 success; 1 a notebook or the book failed; 2 the data root
breaks the data contract (nothing was run) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from isafe_helpers.data import contract as C
from isafe_helpers.resources import BUILD, BUNDLED_DATA, DEFAULT_OUT, NOTEBOOKS, SOURCES


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
    run.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)

    book = sub.add_parser("book", help="build the book from a results folder")
    book.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results/)")
    book.add_argument("--build", type=Path, default=BUILD, help="build folder (default: _build/)")
    book.add_argument("--force", action="store_true", help="rebuild even if nothing changed")

    synth = sub.add_parser("synth", help="write a synthetic ISAFE trial data root")
    synth.add_argument("--out", type=Path, required=True, help="new folder to write")
    synth.add_argument("--seed", type=int, default=20240601)
    synth.add_argument("--las", type=int, default=7)
    synth.add_argument("--teams-per-la", type=int, default=9)
    synth.add_argument("--staff-per-team", type=int, default=10)

    val = sub.add_parser("validate", help="check a data root against the data contract")
    val.add_argument("--data", type=Path, default=BUNDLED_DATA)
    return p


def _load(root: Path, out: Path | None = None):
    """The validated data root, or None after printing its problems; with ``out``, reusing its saved validation.

    The validator is imported only when a root must be validated (a rerun on
    unchanged data reuses the saved validation without it).
    """
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
        print(err.report(), file=sys.stderr)
        print("Nothing was run. Fix the problems above and run again.", file=sys.stderr)
        return None
    for w in data.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return data


def check_paths(data: Path, out: Path, build: Path = BUILD) -> str | None:
    """Refuse output folders that would write into the data, the sources or each other.

    Returns the reason, or None when the paths are safe.
    """
    data, out, build = data.resolve(), out.resolve(), build.resolve()
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a folder"
    if out == SOURCES or out in SOURCES.parents:
        return f"--out {out} would write into the handbook's own sources: choose a folder of its own"
    for a, b, why in (
        (out, data, "the results folder must not be inside the data root, nor hold it"),
        (data, out, "the results folder must not be inside the data root, nor hold it"),
        (out, build, "the results folder and the book's build folder must be apart"),
        (build, out, "the results folder and the book's build folder must be apart"),
    ):
        if a == b or b in a.parents:
            return f"{why} (--out {out}, --data {data})"
    return None


def _build(out: Path, build: Path, force: bool) -> int:
    from isafe_helpers.run.pipeline import book_is_current, mark_book

    if not force and book_is_current(out, build):
        print(f"book: unchanged, {build / 'html' / 'index.html'}")
        return 0
    from isafe_helpers.publish.build import BookError, build_book

    try:
        index = build_book(out, build)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    mark_book(out, build)
    print(f"book: {index}")
    return 0


def _cmd_run(args) -> int:
    from isafe_helpers.config import threshold
    from isafe_helpers.run.pipeline import Busy, exclusive, run_all, summary_table

    problem = check_paths(args.data, args.out, args.build)
    try:
        threshold()
    except ValueError as err:
        problem = str(err)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    clock = time.perf_counter()
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
                data, out, scopes, strands, jobs=args.jobs, notebooks=args.notebooks.resolve(), force=args.force
            )
            times["notebooks"] = time.perf_counter() - clock
            print(summary_table(outcomes))
            failed = any(o.status == "failed" for o in outcomes)
            if failed:
                print(
                    "Some notebooks failed: their previous complete outputs, if any, are kept; "
                    "the book shows a page saying what failed.",
                    file=sys.stderr,
                )
            clock = time.perf_counter()
            book_status = 0 if args.no_book else _build(out, args.build.resolve(), args.force)
            times["book"] = time.perf_counter() - clock
    except Busy as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"results: {out}")
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    return 1 if failed or book_status else 0


def _cmd_book(args) -> int:
    return _build(args.out.resolve(), args.build.resolve(), args.force)


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
    data = _load(args.data)
    if data is None:
        return 2
    print(f"{data.root}: {len(data.las)} LAs, {len(data.teams)} teams, {len(data.participants)} participants: valid")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (the ``isafe`` console script and ``python -m isafe_helpers``)."""
    args = _parser().parse_args(argv)
    try:
        return {"run": _cmd_run, "book": _cmd_book, "synth": _cmd_synth, "validate": _cmd_validate}[args.command](args)
    except KeyboardInterrupt:
        print("interrupted: complete outputs of earlier runs are untouched", file=sys.stderr)
        return 130
