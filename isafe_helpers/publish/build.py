"""Build the book's HTML from a staged source folder (:func:`isafe_helpers.publish.book.stage`).

Jupyter Book 1.x's Sphinx build runs with warnings as errors and notebook
execution off (papermill already executed them), in parallel
(``sphinx-build -j``, one process per core) and incrementally:

- The sources are staged afresh into ``<build>/.source-new`` and copied
  into ``<build>/.source`` only where their bytes changed, so an unchanged
  page keeps its modification time and Sphinx does not read it again.
- Sphinx keeps its output and doctrees between builds in
  ``<build>/.sphinx``, so it writes only the pages that changed (and every
  page when a title or the table of contents changed:
  :mod:`isafe_helpers.publish.book_ext`). The summary's numbers are written
  into its pages at staging, so a changed number is a changed page.
  ``tests/test_pipeline_book.py`` checks an incremental build equals a
  clean one, file for file.
- A build that fails, or a source page that disappears, makes the next
  build a clean one (Sphinx would keep a warning it saw once only for that
  build, and the pages of a removed source).

The HTML is then copied to a temporary folder and moved to ``<build>/html``
only when complete, so a failed build never destroys the previous book.

The build folder is the handbook's (:mod:`isafe_helpers.outputs`): new,
empty, or marked by an earlier build. Its ``.source``, ``.source-new``,
``.sphinx``, ``.html-tmp``, ``.html-old`` and ``html`` are marked from the
moment they exist (:func:`~isafe_helpers.outputs.make_marked`), so a build
killed at any point (``kill -9`` while staging, during Sphinx, while the
HTML is moved) leaves only folders the next build recognises and cleans
up; only marked ones are ever deleted or replaced. A build killed between
moving the old ``html`` aside and the new one in has its old book put
back by the next build. ``html`` lists the files the build wrote there
(:func:`~isafe_helpers.outputs.write_manifest`); one that someone else put
there makes the next build stop before it replaces the folder, naming the
file (:class:`~isafe_helpers.outputs.NotOurs`), so it is never deleted.

Results that contradict each other (notebooks run on data that changed
during the run: the disclosure ledger finds one population with two
sizes) are reported as a :class:`BookError`, never a traceback. An output
folder that cannot be written (read-only, full disk, no permission) raises
:class:`OSError` naming it; the command line reports it in one line.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from isafe_helpers.outputs import NotOurs, claim, is_ours, make_marked, remove_ours, replace_refused, write_manifest
from isafe_helpers.publish.book import BookError, pdf_files, stage  # noqa: F401 (BookError re-exported)
from isafe_helpers.resources import BUILD, DEFAULT_OUT

#: Sphinx's output and doctrees, kept between builds.
WORK = ".sphinx"
#: Written into WORK when its last build succeeded.
CLEAN_MARK = ".complete"
#: Staged pages of the last build, reused where nothing they show changed (:func:`~isafe_helpers.publish.book.stage`).
STAGE_CACHE = ".stage-cache.pickle"


def sync_tree(src: Path, dst: Path) -> tuple[int, int]:
    """Make ``dst`` hold exactly ``src``'s files, copying only those whose bytes differ.

    Returns (files written, files removed). Unchanged files keep their
    modification time, which is how Sphinx knows they are unchanged.
    """
    written = removed = 0
    want = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    if dst.exists():
        for p in sorted(dst.rglob("*"), reverse=True):
            rel = p.relative_to(dst)
            if p.is_file() and rel not in want:
                p.unlink()
                removed += 1
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    for rel in sorted(want):
        a, b = src / rel, dst / rel
        if b.is_file() and b.stat().st_size == a.stat().st_size and b.read_bytes() == a.read_bytes():
            continue
        b.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a, b)
        written += 1
    return written, removed


def jobs_default() -> int:
    """Sphinx processes: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def build_book(
    results: str | Path = DEFAULT_OUT,
    build: str | Path = BUILD,
    verbose: bool = False,
    jobs: int | None = None,
    clean: bool = False,
) -> Path:
    """Build the HTML book from ``results``; return the path of ``index.html``.

    ``jobs`` Sphinx processes (default: one per core); ``clean`` forgets the
    previous build's state and builds every page.

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
    from isafe_helpers.publish.ledger import LedgerError

    try:
        return _build(Path(results).resolve(), Path(build).resolve(), verbose, jobs, clean)
    except NotOurs as err:
        raise BookError(f"{err}; the book was not built") from None
    except LedgerError as err:
        raise BookError(
            f"the results in {results} contradict each other ({err}): their notebooks read different data, as "
            "when the data root changes during a run. Run `isafe run` again on the data as they are now; the "
            "previous book is kept"
        ) from None


def _start_sphinx(verbose: bool) -> subprocess.Popen:
    """The Sphinx process, started before staging: it imports Sphinx and its extensions meanwhile, then waits.

    A module of its own (:mod:`~isafe_helpers.publish.sphinx_build`): it
    imports Sphinx, not the handbook's staging (pandas and all). It builds
    when it reads its arguments, and ends doing nothing at end of input.
    """
    cmd = [sys.executable, "-m", "isafe_helpers.publish.sphinx_build", "--wait"]
    out = None if verbose else subprocess.PIPE
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=out, text=True, env=env)


def _build(results: Path, build: Path, verbose: bool, jobs: int | None, clean: bool) -> Path:
    claim(build)
    final, old = build / "html", build / ".html-old"
    if not final.exists() and is_ours(old):  # killed between moving the old book aside and the new one in
        old.rename(final)
    reason = replace_refused(build / "html")
    if reason:
        raise NotOurs(reason)
    source, fresh = build / ".source", build / ".source-new"
    remove_ours(fresh)
    if clean:
        (build / STAGE_CACHE).unlink(missing_ok=True)
    sphinx = _start_sphinx(verbose)
    try:
        return _stage_and_build(results, build, source, fresh, sphinx, jobs, clean)
    finally:
        if sphinx.poll() is None:  # not given its arguments (staging failed): it ends without building
            sphinx.communicate("")


def _stage_and_build(
    results: Path, build: Path, source: Path, fresh: Path, sphinx: subprocess.Popen, jobs: int | None, clean: bool
) -> Path:
    make_marked(fresh)  # marked before anything is staged: a killed build's staging is deleted by the next
    run = stage(results, fresh, build / STAGE_CACHE, jobs or jobs_default())
    if source.exists() and not is_ours(source):
        raise NotOurs(f"{source} was not made by the handbook: it is left as it is")
    _, removed = sync_tree(fresh, source)  # the marker is among the staged files
    remove_ours(fresh)
    work = build / WORK
    if clean or removed or not (work / CLEAN_MARK).is_file():
        remove_ours(work)
    if not work.exists():
        make_marked(work)
    (work / CLEAN_MARK).unlink(missing_ok=True)
    stdout, stderr = sphinx.communicate(json.dumps([str(source), str(work), str(jobs or jobs_default())]) + "\n")
    html = work / "html"
    if sphinx.returncode != 0 or not (html / "index.html").is_file():
        remove_ours(work)  # the next build starts clean
        log = (stdout or "") + (stderr or "")
        for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
            if f"[Errno {code}]" in log or os.strerror(code) in log:  # Sphinx could not write: an OS error
                raise OSError(code, os.strerror(code), str(work))
        tail = "\n".join(log.strip().splitlines()[-30:])
        raise BookError(f"jupyter-book build failed (exit {sphinx.returncode}); the previous book is kept.\n{tail}")
    (work / CLEAN_MARK).write_text("")
    tmp_out, final, old = build / ".html-tmp", build / "html", build / ".html-old"
    remove_ours(tmp_out)
    make_marked(tmp_out)
    shutil.copytree(html, tmp_out, dirs_exist_ok=True)
    # .inputs and the PDFs' copies (pdf_links): written by the command line when the book is in place
    write_manifest(tmp_out, also=(".inputs", *pdf_files(run)))
    remove_ours(old)
    reason = replace_refused(build / "html")  # a file put there during the build
    if reason:
        raise NotOurs(reason)
    if final.exists() and not is_ours(final):
        raise NotOurs(f"{final} was not made by the handbook: it is left as it is")
    if final.exists():
        final.rename(old)
    tmp_out.rename(final)
    remove_ours(old)
    return final / "index.html"
