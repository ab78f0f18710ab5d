"""Build the book's HTML from a staged source folder (:func:`isafe_helpers.publish.book.stage`).

Jupyter Book 1.x runs with warnings as errors and notebook execution off
(papermill already executed them). The HTML is built in a temporary folder
and moved to ``<build>/html`` only when complete, so a failed build never
destroys the previous book.

The build folder is the handbook's (:mod:`isafe_helpers.outputs`): new,
empty, or marked by an earlier build. Its ``.source``, ``.html-tmp``,
``.html-old`` and ``html`` are marked when made, and only marked ones are
ever deleted or replaced.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from isafe_helpers.outputs import NotOurs, claim, is_ours, mark, remove_ours
from isafe_helpers.publish.book import BookError, stage  # noqa: F401 (BookError re-exported)
from isafe_helpers.resources import BUILD, DEFAULT_OUT

_JUPYTER_BOOK = "import sys; from jupyter_book.cli.main import main; sys.argv[0] = 'jupyter-book'; sys.exit(main())"


def build_book(results: str | Path = DEFAULT_OUT, build: str | Path = BUILD, verbose: bool = False) -> Path:
    """Build the HTML book from ``results``; return the path of ``index.html``.

    Raises
    ------
    BookError
        When there are no results, Jupyter Book is not installed (the ``docs``
        extra), it reports an error or warning, or the build folder holds files
        the handbook did not make. The previous ``<build>/html`` is left as it was.
    """
    if importlib.util.find_spec("jupyter_book") is None:
        raise BookError(
            "Jupyter Book is not installed in this environment: install the package with its docs extra "
            "(pip install 'isafe-helpers[docs]'), or run with --no-book"
        )
    try:
        return _build(Path(results).resolve(), Path(build).resolve(), verbose)
    except NotOurs as err:
        raise BookError(f"{err}; the book was not built") from None


def _build(results: Path, build: Path, verbose: bool) -> Path:
    claim(build)
    stage_dir = build / ".source"
    remove_ours(stage_dir)
    try:
        stage(results, stage_dir)
    finally:
        if stage_dir.is_dir():  # made by stage() just now
            mark(stage_dir)
    tmp_out = build / ".html-tmp"
    remove_ours(tmp_out)
    tmp_out.mkdir()
    mark(tmp_out)
    # Jupyter Book's command, run by this interpreter: found whatever the install layout (a --user install
    # puts the jupyter-book script elsewhere than sys.executable's folder).
    cmd = [sys.executable, "-c", _JUPYTER_BOOK, "build", str(stage_dir), "--path-output", str(tmp_out)]
    cmd += ["-W", "--keep-going", "--all"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=not verbose, text=True, env=env)
    html = tmp_out / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").is_file():
        log = (proc.stdout or "") + (proc.stderr or "")
        tail = "\n".join(log.strip().splitlines()[-30:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); the previous book is kept.\n{tail}")
    mark(html)
    final = build / "html"
    old = build / ".html-old"
    remove_ours(old)
    if final.exists() and not is_ours(final):
        raise NotOurs(f"{final} was not made by the handbook: it is left as it is")
    if final.exists():
        final.rename(old)
    html.rename(final)
    remove_ours(old)
    remove_ours(tmp_out)
    return final / "index.html"
