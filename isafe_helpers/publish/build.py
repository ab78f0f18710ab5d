"""Build the book's HTML from a staged source folder (:func:`isafe_helpers.publish.book.stage`).

Jupyter Book 1.x runs with warnings as errors and notebook execution off
(papermill already executed them). The HTML is built in a temporary folder
and moved to ``<build>/html`` only when complete, so a failed build never
destroys the previous book.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from isafe_helpers.publish.book import BookError, stage  # noqa: F401 (BookError re-exported)
from isafe_helpers.resources import BUILD, DEFAULT_OUT

#: The ``jupyter-book`` console script's body, run with ``python -c``.
_JUPYTER_BOOK = "import sys; from jupyter_book.cli.main import main; sys.argv[0] = 'jupyter-book'; sys.exit(main())"


def build_book(results: str | Path = DEFAULT_OUT, build: str | Path = BUILD, verbose: bool = False) -> Path:
    """Build the HTML book from ``results``; return the path of ``index.html``.

    Raises
    ------
    BookError
        When there are no results, Jupyter Book is not installed (the ``docs`` extra), or it reports an
        error or warning.
        The previous ``<build>/html`` is left as it was.
    """
    if importlib.util.find_spec("jupyter_book") is None:
        raise BookError(
            "Jupyter Book is not installed in this environment: install the package with its docs extra "
            "(pip install 'isafe-helpers[docs]'), or run with --no-book"
        )
    results, build = Path(results).resolve(), Path(build).resolve()
    stage_dir = build / ".source"
    stage(results, stage_dir)
    tmp_out = build / ".html-tmp"
    if tmp_out.exists():
        shutil.rmtree(tmp_out)
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
    final = build / "html"
    old = build / ".html-old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    html.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp_out, ignore_errors=True)
    return final / "index.html"
