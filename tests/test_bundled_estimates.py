"""Every estimates.csv of the bundled data against the committed copy: every row, note and text cell
exactly, every number to 1e-9 relative.

The copies in ``tests/fixtures/estimates/`` are the ``estimates.csv`` of each
scope from ``isafe run --data data/synthetic``. A change to any number, row
or note shows here; a change made on purpose updates the copies in the same
commit, whose message names the rows that changed and why.

Numbers are compared to 1e-9 relative, not byte for byte (why:
``tests/estimates_match.py``).
To update them::

    .venv/bin/python -m isafe_helpers run --no-book --out /tmp/est
    for f in /tmp/est/*/estimates.csv; do cp $f tests/fixtures/estimates/$(basename $(dirname $f)).csv; done
"""

from __future__ import annotations

from pathlib import Path

import pytest
from estimates_match import differences, same_cell

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "estimates"
SCOPES = sorted(p.stem for p in FIXTURES.glob("*.csv"))


def test_every_scope_has_a_committed_copy(bundled_run):
    assert sorted(p.name for p in bundled_run.iterdir() if (p / "estimates.csv").is_file()) == SCOPES


def test_same_cell_tells_a_change_from_the_last_digits():
    assert same_cell("0.15289529292376822", "0.15289529292376824")
    assert not same_cell("0.1528952929", "0.1528952939")
    assert not same_cell("0.15", "-0.15") and not same_cell("primary", "secondary")
    assert same_cell("", "") and not same_cell("", "0")


@pytest.mark.parametrize("scope", SCOPES)
def test_estimates_match_the_committed_copy(bundled_run, scope):
    changed = differences(bundled_run / scope / "estimates.csv", FIXTURES / f"{scope}.csv")
    assert not changed, f"{scope}: first differences: {changed[:3]}"
