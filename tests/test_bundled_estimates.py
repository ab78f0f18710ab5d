"""Every estimates.csv of the bundled data against the committed copy: every row, note and text cell
exactly, every number to 1e-9 relative.

The copies in ``tests/fixtures/estimates/`` are the ``estimates.csv`` of each
scope from ``isafe run --data data/synthetic``. A change to any number, row
or note shows here; a change made on purpose updates the copies in the same
commit, whose message names the rows that changed and why.

Numbers are compared to 1e-9 relative (1e-12 absolute), not byte for byte:
the same code on another CPU can take other BLAS kernels (AVX-512 or not)
and move the last one or two of 17 significant digits (seen between two
machines of this project: the pooled treatment effect 0.15289529292376822
and 0.15289529292376824). Any change the code makes is many orders larger.
To update them::

    .venv/bin/python -m isafe_helpers run --no-book --out /tmp/est
    for f in /tmp/est/*/estimates.csv; do cp $f tests/fixtures/estimates/$(basename $(dirname $f)).csv; done
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "estimates"
SCOPES = sorted(p.stem for p in FIXTURES.glob("*.csv"))


def test_every_scope_has_a_committed_copy(bundled_run):
    assert sorted(p.name for p in bundled_run.iterdir() if (p / "estimates.csv").is_file()) == SCOPES


@pytest.mark.parametrize("scope", SCOPES)
def _same_cell(want: str, got: str) -> bool:
    if want == got:
        return True
    try:
        a, b = float(want), float(got)
    except ValueError:
        return False  # text differs
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_same_cell_tells_a_change_from_the_last_digits():
    assert _same_cell("0.15289529292376822", "0.15289529292376824")
    assert not _same_cell("0.1528952929", "0.1528952939")
    assert not _same_cell("0.15", "-0.15") and not _same_cell("primary", "secondary")
    assert _same_cell("", "") and not _same_cell("", "0")


@pytest.mark.parametrize("scope", SCOPES)
def test_estimates_match_the_committed_copy(bundled_run, scope):
    with open(bundled_run / scope / "estimates.csv", encoding="utf-8", newline="") as fh:
        got = list(csv.reader(fh))
    with open(FIXTURES / f"{scope}.csv", encoding="utf-8", newline="") as fh:
        want = list(csv.reader(fh))
    changed = [(w, g) for w, g in zip(want, got) if len(w) != len(g) or not all(_same_cell(a, b) for a, b in zip(w, g))]
    assert len(got) == len(want) and not changed, (
        f"{scope}: {len(want)} rows committed, {len(got)} produced; first differences: {changed[:3]}"
    )
