"""Run Jupyter Book's Sphinx build in a process of its own (:func:`isafe_helpers.publish.build.build_book` starts it).

``python -m isafe_helpers.publish.sphinx_build SOURCE WORK JOBS`` builds at
once; ``python -m isafe_helpers.publish.sphinx_build --wait`` imports Sphinx
and the book's extensions, then reads ``[SOURCE, WORK, JOBS]`` (JSON, one
line) from its input and builds, or ends doing nothing at end of input: the
book's build starts it before staging, so the imports overlap the staging.
A module apart from :mod:`~isafe_helpers.publish.build`, so the process
imports Sphinx and nothing of the handbook's staging.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

#: The heaviest of what a build imports (Jupyter Book's Sphinx entry point and the extensions it loads): imported while waiting.
EXTENSIONS = (
    "jupyter_book.sphinx",
    "myst_nb.sphinx_ext",
    "pydata_sphinx_theme",
    "sphinx_book_theme",
    "sphinx_design",
    "sphinx.builders.html",
    "sphinx.search.en",
)


def wait_and_run() -> int:
    """Import :data:`EXTENSIONS`, then build with the arguments read from standard input (none: do nothing)."""
    for name in EXTENSIONS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # the build reports what it cannot import
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    source, work, jobs = json.loads(line)
    return run(source, work, jobs)


def run(source: str, work: str, jobs: str) -> int:
    """Run Jupyter Book's Sphinx build as ``jupyter-book build --path-output work -W --keep-going`` would, with ``-j``."""
    from jupyter_book.sphinx import build_sphinx

    from isafe_helpers import portable

    if not portable.can_fork():
        jobs = "1"  # Sphinx's parallel build forks; it builds in one process elsewhere, or with ISAFE_PORTABLE=1
    src = Path(source)
    result = build_sphinx(
        src,
        Path(work) / "html",
        use_external_toc=True,
        noconfig=True,
        path_config=str(src / "_config.yml"),
        confoverrides={"external_toc_path": (src / "_toc.yml").as_posix(), "latex_individualpages": False},
        doctreedir=Path(work) / "doctrees",
        builder="html",
        warningiserror=True,
        keep_going=True,
        jobs=int(jobs),
    )
    return result if isinstance(result, int) else 1


if __name__ == "__main__":
    sys.exit(wait_and_run() if sys.argv[1:] == ["--wait"] else run(*sys.argv[1:4]))
