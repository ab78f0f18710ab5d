"""The folders the handbook makes, the only ones it ever deletes, and cells safe to open in a spreadsheet.

Every folder the handbook makes for its outputs (a results folder, a book
build folder, and the working folders inside them) holds a marker file,
:data:`MARKER`. The handbook writes into a folder only when it is new, empty
or marked (:func:`claim`), and deletes a folder only when it is marked
(:func:`remove_ours`), so no path given by mistake (a data root, a folder of
someone's files, the handbook's sources) can lose a file.

A working folder's marker also names the process that made it (its pid and
start time). :func:`make_working` and :func:`remove_stale` delete a leftover
working folder only once every process named in it has ended (a worker
wanting the folder waits for it), so a run started after a crash never
deletes a folder that a still-running process of the crashed run (an orphan
worker) is using, nor one it did not make.

:func:`neutralise` makes a text cell safe to open in a spreadsheet (OWASP's
rule against CSV formula injection); every CSV the handbook writes for
analysts (``estimates.csv``, ``validate --report``) passes its text cells
through it, and :func:`unneutralise` gives the value back exactly when the
handbook reads such a CSV itself (the book shows ``=Effectiveness``, not
``'=Effectiveness``).

:func:`folder_lock` is the one lock on an output folder (a results folder
for ``run``, a build folder for ``book``): a second command on the same
folder is refused at once with :class:`Busy`, never left to collide.

:func:`make_marked` makes a folder that is marked from the moment it
exists, so a process killed while filling it (``kill -9`` during staging)
leaves a folder the next run recognises as the handbook's and deletes.

:func:`write_manifest` and :func:`strangers` record which files the
handbook wrote in a folder it replaces whole (``<build>/html``), so a file
someone else put there is found before it could be lost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

from isafe_helpers.portable import file_lock

#: The file that marks a folder as made by the handbook.
MARKER = ".isafe-output"


class NotOurs(Exception):
    """A folder holds files the handbook did not make: nothing is written to it or deleted from it."""


class Busy(Exception):
    """Another command of the handbook is using an output folder."""


#: The lock file :func:`folder_lock` holds in an output folder.
LOCK = ".lock"


@contextmanager
def folder_lock(folder: Path, busy: str | None = None) -> Iterator[Path]:
    """Claim ``folder`` (:func:`claim`) and hold its lock while the block runs; yield the folder.

    The lock is the system's lock on ``<folder>/.lock``
    (:func:`isafe_helpers.portable.file_lock`: ``flock``, or the ``filelock``
    library where there is none), taken without waiting and released by the system when the process ends, however it
    ends (a ``kill -9`` leaves no stale lock). Its one implementation is
    here, so it can be swapped for another platform's lock in one place.

    Raises
    ------
    Busy
        Another process holds the lock: the message (``busy``, or a default)
        names the folder.
    NotOurs
        The folder holds files the handbook did not make.
    """
    folder = claim(Path(folder))
    with ExitStack() as held:
        try:
            held.enter_context(file_lock(folder / LOCK, blocking=False))  # fcntl, or filelock (isafe_helpers.portable)
        except BlockingIOError:
            raise Busy(busy or f"another isafe command is using {folder}; wait for it to finish") from None
        yield folder


def _process_id() -> dict:
    me = psutil.Process()
    return {"pid": me.pid, "started": me.create_time()}


def mark(folder: Path, owner: bool = False) -> None:
    """Write the marker into ``folder`` (which the handbook has just made).

    With ``owner`` the marker names this process, so that :func:`remove_stale`
    leaves the folder alone while the process lives.
    """
    info = {"made_by": "ISAFE analysis handbook: it deletes only folders holding this file"}
    if owner:
        info.update(_process_id())
    (Path(folder) / MARKER).write_text(json.dumps(info) + "\n", encoding="utf-8")


def is_ours(folder: Path) -> bool:
    """True when ``folder`` is a real folder (not a link) holding the marker."""
    folder = Path(folder)
    return folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()


def foreign(folder: Path) -> str | None:
    """Why the handbook may not write into ``folder``, or None when it may (new, empty or marked)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{folder} exists and is not a folder"
    if is_ours(folder) or not any(folder.iterdir()):
        return None
    return (
        f"{folder} holds files the handbook did not make (it has no {MARKER} marker), so nothing is written "
        "there: choose a new or empty folder (if an earlier version of the handbook made this one, delete it)"
    )


def claim(folder: Path) -> Path:
    """Make ``folder`` (or take an empty or marked one) as the handbook's; return it.

    Raises
    ------
    NotOurs
        The folder is a file, or holds files without the marker.
    """
    folder = Path(folder)
    reason = foreign(folder)
    if reason:
        raise NotOurs(reason)
    if not is_ours(folder):
        folder.mkdir(parents=True, exist_ok=True)
        mark(folder)
    return folder


def make_marked(path: Path) -> Path:
    """Make the new folder ``path`` already holding the marker (made beside it, marked, then renamed into place).

    No process ever sees ``path`` unmarked, so if this process is killed
    while filling it, the next run may delete it (:func:`remove_ours`).

    Raises
    ------
    FileExistsError
        ``path`` exists.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        mark(fresh)
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path} exists")
        os.rename(fresh, path)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    return path


#: In a folder the handbook replaces whole: the files it wrote there (:func:`write_manifest`).
MANIFEST = ".isafe-files"


def write_manifest(folder: Path, also: tuple[str, ...] = ()) -> None:
    """Record every file now in ``folder`` (and the names ``also``, written later) as the handbook's."""
    folder = Path(folder)
    names = sorted({p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} | set(also))
    (folder / MANIFEST).write_text("\n".join(names) + "\n", encoding="utf-8")


def strangers(folder: Path) -> list[str]:
    """Files in ``folder`` the handbook did not write there (by its :func:`write_manifest`), sorted.

    A folder without a manifest (absent, or made by an older version of the
    handbook) has none that can be told apart: the list is empty.
    """
    folder = Path(folder)
    listed = folder / MANIFEST
    if not listed.is_file():
        return []
    ours = set(listed.read_text(encoding="utf-8").splitlines()) | {MARKER, MANIFEST}
    return sorted(
        rel
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and (rel := p.relative_to(folder).as_posix()) not in ours
    )


def replace_refused(folder: Path) -> str | None:
    """Why ``folder``, which the handbook replaces whole, may not be replaced (it holds :func:`strangers`), or None."""
    folder = Path(folder)
    extra = strangers(folder) if is_ours(folder) else []
    if not extra:
        return None
    shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    return (
        f"{folder} holds {len(extra)} file(s) the handbook did not write there ({shown}); the build replaces "
        "that folder whole, so nothing was built: move them out of the build folder and build again"
    )


def make_working(parent: Path, name: str, timeout: float = 1800.0) -> Path:
    """The working folder ``parent/name`` (``parent`` claimed first), made for this process and marked with it.

    The name is fixed (a task's executed notebook records it), so two
    processes may want it: a folder of that name left by processes that have
    all ended is deleted first; while a process that made it still runs (an
    orphan worker of a killed run doing the same task), this waits for it to
    end, up to ``timeout`` seconds. The folder appears with its marker in one
    rename, so no process ever sees it unmarked.

    Raises
    ------
    NotOurs
        A folder of that name was not made by the handbook, or is still in use after ``timeout``.
    """
    claim(parent)
    path = Path(parent) / name
    deadline = time.monotonic() + timeout
    while True:
        if path.exists() or path.is_symlink():
            if not is_ours(path):
                raise NotOurs(f"{path} was not made by the handbook (no {MARKER} marker): it is left as it is")
            users = [o for o in _owners(path) if _alive(o) and not _is_me(o)]
            if users:
                if time.monotonic() > deadline:
                    raise NotOurs(f"{path} is still in use by process {users[0]['pid']}: try again when it has ended")
                time.sleep(0.5)
                continue
            shutil.rmtree(path, ignore_errors=True)
            continue
        fresh = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
        mark(fresh, owner=True)
        try:
            os.rename(fresh, path)
            return path
        except OSError:  # another process made it meanwhile: look again
            shutil.rmtree(fresh, ignore_errors=True)


def remove_ours(folder: Path) -> bool:
    """Delete ``folder`` if the handbook made it; return whether it was there.

    Raises
    ------
    NotOurs
        The folder exists but is not marked (or is a link): it is left as it is.
    """
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return False
    if not is_ours(folder):
        raise NotOurs(f"{folder} was not made by the handbook (no {MARKER} marker): it is left as it is")
    shutil.rmtree(folder)
    return True


def _owners(folder: Path) -> list[dict]:
    """The processes named by the markers in ``folder`` and its marked subfolders."""
    found = []
    for marker in [folder / MARKER, *folder.glob(f"*/{MARKER}")]:
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and "pid" in info:
            found.append(info)
    return found


def _is_me(owner: dict) -> bool:
    return owner.get("pid") == os.getpid()


def _alive(owner: dict) -> bool:
    try:
        proc = psutil.Process(int(owner["pid"]))
        return abs(proc.create_time() - float(owner["started"])) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, TypeError, ValueError):
        return False


def remove_stale(parent: Path) -> list[Path]:
    """Delete the working folders in ``parent`` that the handbook made and no living process uses.

    A folder without the marker is never touched; nor is one whose marker
    names a process that still runs (an orphan worker of a killed run, or
    another run). ``parent`` itself is removed when it is marked and left
    empty. Returns the folders deleted.
    """
    parent = Path(parent)
    if not is_ours(parent):
        return []
    gone = []
    for child in sorted(parent.iterdir()):
        if is_ours(child) and not any(_alive(o) for o in _owners(child)):
            shutil.rmtree(child, ignore_errors=True)
            gone.append(child)
    if [p.name for p in parent.iterdir()] == [MARKER]:
        shutil.rmtree(parent, ignore_errors=True)
    return gone


def inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it (both resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


# --------------------------------------------------------------------------
# Cells safe to open in a spreadsheet
# --------------------------------------------------------------------------
#: A text cell starting with one of these is read as a formula by spreadsheet programs (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def neutralise(cell):
    """A cell as it may be written to a CSV that someone opens in a spreadsheet.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    gets a leading single quote, so the spreadsheet shows it as text instead
    of running it as a formula (OWASP, CSV injection); so does text that
    already starts with a quote, so that :func:`unneutralise` can tell the
    two apart and give back the value exactly. Numbers stay numbers:
    non-text cells, and text that is a plain number such as ``-1.5``, are
    returned as they are.

    >>> neutralise("=HYPERLINK(\\"http://x\\")"), neutralise("-1.5"), neutralise(-2.0), neutralise("a-b")
    ('\\'=HYPERLINK("http://x")', '-1.5', -2.0, 'a-b')
    """
    if isinstance(cell, str) and (
        (cell.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(cell)) or cell.startswith("'")
    ):
        return "'" + cell
    return cell


def unneutralise(cell):
    """The value :func:`neutralise` was given, from what it returned: one leading quote is dropped.

    The pair is exact for every text: :func:`neutralise` also quotes a text
    that already starts with a quote, so ``unneutralise(neutralise(x)) == x``.

    >>> [unneutralise(neutralise(x)) for x in ("=Effectiveness", "'=x", "'quoted", "-1.5", "a")]
    ['=Effectiveness', "'=x", "'quoted", '-1.5', 'a']
    """
    if isinstance(cell, str) and cell.startswith("'"):
        return cell[1:]
    return cell


def neutralise_frame(df):
    """A copy of a pandas frame whose text cells went through :func:`neutralise`; numeric columns are untouched."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(neutralise, na_action="ignore")
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path`` (with the usual permissions), then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
