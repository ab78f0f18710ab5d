"""A validated data root saved once and read by every notebook of a run.

Validating a data root (:func:`isafe_helpers.data.loading.load_root`) costs
about 0.1 s per file, so some 15 s for 150 LAs; every notebook needs the
validated tables, and a run of 150 LAs has 453 notebooks. The run therefore
validates once and saves the result (:func:`save`, a pickle of the
:class:`TrialData`) with the root's path and a *signature* of its files
(path, size and modification time of each). It names that file in the
environment variable :data:`ENV`, which its notebook kernels inherit.

A notebook reads the saved data (:func:`handed_over`) only when the
variable names such a file, the file was saved for the very data root the
notebook was given, and no file of that root was added, removed or changed
since (same signature). Otherwise, and always when a notebook is run by
hand through papermill, the notebook validates the root itself.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from isafe_helpers.data.files import data_files

if TYPE_CHECKING:  # the validator (pandera) is imported only to validate, or to read the tables
    from isafe_helpers.data.loading import TrialData

#: Names the saved validated data handed to the notebooks of a run.
ENV = "ISAFE_VALIDATED_DATA"

#: Bumped when the saved layout changes.
VERSION = 2


def signature(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, modification time in ns) of every data file of ``root``, sorted."""
    root = Path(root)
    out = []
    for p in data_files(root):
        st = p.stat()
        out.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(out)


def save(data: TrialData, path: Path, sig: list[tuple[str, int, int]], **extra) -> None:
    """Write ``data`` with its root's signature (taken before it was validated) to ``path``, atomically.

    ``extra`` items are saved beside it and read back by :func:`read`
    without the tables (which are unpickled, with their classes, only by
    :func:`tables_of`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": VERSION,
        "root": str(data.root),
        "signature": sig,
        **extra,
        "data": pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL),
    }
    write_saved(path, payload)


def write_saved(path: Path, obj: object) -> None:
    """Pickle ``obj`` into ``path`` atomically (a reader sees the old file or the new, never half of one)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_saved(path: Path) -> object | None:
    """What the handbook pickled into ``path`` (a file of its own output folders), or None if it is missing or unreadable."""
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return None


def read(path: Path) -> dict | None:
    """The saved payload (``root``, ``signature``, the extra items and the pickled ``data``), or None."""
    payload = load_saved(path)
    if not isinstance(payload, dict) or payload.get("version") != VERSION:
        return None
    return payload


def tables_of(payload: dict) -> TrialData:
    """The :class:`TrialData` saved in ``payload``."""
    return pickle.loads(payload["data"])


def handed_over(data_root: str | Path) -> TrialData | None:
    """The validated data the run handed over for ``data_root``, or None (then validate).

    None unless :data:`ENV` names a saved file for this very root whose
    files are unchanged since it was validated.
    """
    path = os.environ.get(ENV)
    if not path:
        return None
    root = Path(data_root).resolve()
    payload = read(Path(path))
    if payload is None or payload["root"] != str(root):
        return None
    if payload["signature"] != signature(root):
        return None
    return tables_of(payload)
