"""Compare an estimates.csv with a committed copy: rows, text and notes exactly, numbers to 1e-9 relative.

Not byte for byte: the same code on another CPU can take other BLAS kernels
(AVX-512 or not) and move the last one or two of 17 significant digits (seen
between two machines of this project: the pooled treatment effect
0.15289529292376822 and 0.15289529292376824). Any change the code makes to a
number is many orders larger than 1e-9.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


def same_cell(want: str, got: str) -> bool:
    if want == got:
        return True
    try:
        a, b = float(want), float(got)
    except ValueError:
        return False  # text differs
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def differences(got: Path, want: Path) -> list:
    """Rows that differ (pairs), and a row-count mismatch as one more entry; empty when they match."""
    with open(got, encoding="utf-8", newline="") as fh:
        g = list(csv.reader(fh))
    with open(want, encoding="utf-8", newline="") as fh:
        w = list(csv.reader(fh))
    out: list = [(a, b) for a, b in zip(w, g) if len(a) != len(b) or not all(same_cell(x, y) for x, y in zip(a, b))]
    if len(g) != len(w):
        out.append(f"{len(w)} rows committed, {len(g)} produced")
    return out
