"""The files of a data root: which are read, and their fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path


def data_files(folder: Path) -> list[Path]:
    """Every file below ``folder``, hidden files and folders left out."""
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def hash_files(h, files: list[Path], base: Path) -> None:
    """Feed each file's path (relative to ``base``) and bytes to ``h``, in sorted order."""
    for p in sorted(files):
        h.update(p.relative_to(base).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")


def fingerprint_root(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order."""
    h = hashlib.sha256()
    hash_files(h, data_files(root), root)
    return h.hexdigest()
