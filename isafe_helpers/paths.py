"""Where things live in the repository (the book's root is the repository root)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
BUNDLED_DATA = REPO / "data" / "synthetic"
DEFAULT_OUT = REPO / "results"
BUILD = REPO / "_build"
BOOK_PAGES = REPO / "book"
