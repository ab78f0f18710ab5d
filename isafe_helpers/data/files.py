"""The files of a data root: which are read, which are ignored or refused, and their fingerprint.

Ignored at every level, and never fingerprinted: hidden files and folders
(a name starting with ``.``, such as ``.DS_Store``), macOS archive folders
``__MACOSX``, and Office lock files (``~$teams.xlsx``).

Links are followed: a linked LA folder or file is read, and fingerprinted
under its path in the data root with the bytes of its target, so a change
behind a link changes the fingerprint. A linked folder is followed only when
its target is inside the data root: a link to a folder elsewhere (a system
folder, a whole drive) is refused unread, since walking it could take
minutes and read what is not the trial's. A link that cannot be followed is
refused with a reason (a broken link, a folder linking to a folder that
holds it, a folder outside the data root), as is anything that is neither a
file nor a folder (a pipe or a device, which would hang the reader).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from isafe_helpers.resources import PACKAGE, SOURCES

#: Folder names ignored wherever they are (besides hidden names).
IGNORED_FOLDERS = ("__MACOSX",)


def is_ignored(name: str) -> bool:
    """True for names the loader never reads: hidden (``.x``), ``__MACOSX`` and Office lock files (``~$x``)."""
    return name.startswith((".", "~$")) or name in IGNORED_FOLDERS


@dataclass
class Scan:
    """What is below a folder: files to read, names ignored, entries refused (relative path, reason)."""

    files: list[Path] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def scan(folder: Path) -> Scan:
    """Walk ``folder``, following links; see the module docstring for what is ignored or refused.

    ``files`` are paths below ``folder`` as the data root names them (through
    any links), sorted.
    """
    folder = Path(folder)
    out = Scan()

    def walk(d: Path, rel: str, chain: frozenset[str]) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            out.refused.append((rel or ".", f"folder cannot be read: {exc.strerror}"))
            return
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            if is_ignored(e.name):
                out.ignored.append(r + ("/" if e.is_dir(follow_symlinks=False) else ""))
                continue
            try:
                st = os.stat(e.path)  # follows links
            except OSError:
                target = os.readlink(e.path) if e.is_symlink() else "?"
                out.refused.append((r, f"broken link (to {target}): remove it or restore its target"))
                continue
            if stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(e.path)
                if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
                    out.refused.append(
                        (
                            r,
                            f"link to a folder outside the data root (to {real}): only links to folders inside "
                            "the data root are followed; copy the folder into the data root instead",
                        )
                    )
                    continue
                if real in chain:
                    out.refused.append((r, "link to a folder that holds it (a loop): remove the link"))
                    continue
                walk(Path(e.path), r, chain | {real})
            elif stat.S_ISREG(st.st_mode):
                out.files.append(folder / r)
            else:
                out.refused.append((r, "neither a file nor a folder (a pipe, socket or device): remove it"))

    base = os.path.realpath(folder)
    walk(folder, "", frozenset({base}))
    out.files.sort()
    return out


def data_files(folder: Path) -> list[Path]:
    """Every file below ``folder`` the loader may read (links followed; ignored names left out)."""
    return scan(folder).files


def hash_files(h, files: list[Path], base: Path) -> None:
    """Feed each file's path (relative to ``base``) and bytes to ``h``, in sorted order."""
    for p in sorted(files):
        h.update(p.relative_to(base).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")


def code_hash() -> str:
    """SHA-256 of the helper package's code and the pinned requirements."""
    h = hashlib.sha256()
    hash_files(h, [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts], PACKAGE)
    req = SOURCES / "requirements.txt"
    if req.is_file():
        h.update(req.read_bytes())
    return h.hexdigest()


def fingerprint_root(root: Path, files: list[Path] | None = None) -> str:
    """SHA-256 over every data file's relative path and bytes, in sorted order (``files`` if already scanned)."""
    h = hashlib.sha256()
    hash_files(h, data_files(root) if files is None else files, root)
    return h.hexdigest()
