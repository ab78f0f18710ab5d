"""Command line: ``python -m isafe_helpers {run,book,synth,validate}``.

Exit codes: 0 success; 1 a notebook or the book failed; 2 the data root
breaks the data contract (nothing was run) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import contract as C
from .paths import BUILD, BUNDLED_DATA, DEFAULT_OUT


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m isafe_helpers", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="validate the data root, run the notebooks, build the book")
    run.add_argument("--data", type=Path, default=BUNDLED_DATA, help="data root (default: bundled synthetic trial)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results/)")
    run.add_argument("--scope", nargs="+", metavar="CODE", help="scopes to run: LA codes and/or 'trial' (default: all)")
    run.add_argument("--strand", nargs="+", choices=C.STRANDS, help="strands to run (default: all)")
    run.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    run.add_argument("--no-book", action="store_true", help="do not build the book afterwards")

    book = sub.add_parser("book", help="build the book from a results folder")
    book.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results/)")
    book.add_argument("--build", type=Path, default=BUILD, help="build folder (default: _build/)")

    synth = sub.add_parser("synth", help="write a synthetic ISAFE trial data root")
    synth.add_argument("--out", type=Path, required=True, help="new folder to write")
    synth.add_argument("--seed", type=int, default=20240601)
    synth.add_argument("--las", type=int, default=7)
    synth.add_argument("--teams-per-la", type=int, default=9)
    synth.add_argument("--staff-per-team", type=int, default=10)

    val = sub.add_parser("validate", help="check a data root against the data contract")
    val.add_argument("--data", type=Path, default=BUNDLED_DATA)
    return p


def _load(root: Path):
    from .loading import DataValidationError, load_root

    try:
        data = load_root(root)
    except DataValidationError as err:
        print(err.report(), file=sys.stderr)
        print("Nothing was run. Fix the problems above and run again.", file=sys.stderr)
        return None
    for w in data.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return data


def _cmd_run(args) -> int:
    from .book import BookError, build_book
    from .pipeline import run_all, summary_table

    data = _load(args.data)
    if data is None:
        return 2
    scopes = [C.TRIAL_SCOPE, *data.las]
    if args.scope:
        unknown = [s for s in args.scope if s not in scopes]
        if unknown:
            print(f"error: unknown scope(s) {', '.join(unknown)}; found: {', '.join(scopes)}", file=sys.stderr)
            return 2
        scopes = [s for s in scopes if s in args.scope]
    strands = [s for s in C.STRANDS if not args.strand or s in args.strand]
    outcomes = run_all(data, args.out.resolve(), scopes, strands, jobs=args.jobs)
    print(summary_table(outcomes))
    failed = any(o.status == "failed" for o in outcomes)
    if not args.no_book:
        try:
            index = build_book(args.out)
            print(f"book: {index}")
        except BookError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    print(f"results: {args.out.resolve()}")
    return 1 if failed else 0


def _cmd_book(args) -> int:
    from .book import BookError, build_book

    try:
        print(f"book: {build_book(args.out, args.build)}")
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _cmd_synth(args) -> int:
    from .synth import generate

    try:
        out = generate(args.out, seed=args.seed, las=args.las, teams_per_la=args.teams_per_la,
                       staff_per_team=args.staff_per_team)
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
    args = _parser().parse_args(argv)
    return {"run": _cmd_run, "book": _cmd_book, "synth": _cmd_synth, "validate": _cmd_validate}[args.command](args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: complete outputs of earlier runs are untouched", file=sys.stderr)
        sys.exit(130)
