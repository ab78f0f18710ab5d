"""Every estimates.csv of the bundled data, byte for byte against the committed copy.

The copies in ``tests/fixtures/estimates/`` are the ``estimates.csv`` of each
scope from ``isafe run --data data/synthetic``. A change to any number, row
or note shows here; a change made on purpose updates the copies in the same
commit, whose message names the rows that changed and why. To update them::

    .venv/bin/python -m isafe_helpers run --no-book --out /tmp/est
    for f in /tmp/est/*/estimates.csv; do cp $f tests/fixtures/estimates/$(basename $(dirname $f)).csv; done
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "estimates"
SCOPES = sorted(p.stem for p in FIXTURES.glob("*.csv"))


def test_every_scope_has_a_committed_copy(bundled_run):
    assert sorted(p.name for p in bundled_run.iterdir() if (p / "estimates.csv").is_file()) == SCOPES


@pytest.mark.parametrize("scope", SCOPES)
def test_estimates_are_byte_identical_to_the_committed_copy(bundled_run, scope):
    got = (bundled_run / scope / "estimates.csv").read_text(encoding="utf-8").splitlines()
    want = (FIXTURES / f"{scope}.csv").read_text(encoding="utf-8").splitlines()
    changed = [(w, g) for w, g in zip(want, got) if w != g]
    assert len(got) == len(want) and not changed, (
        f"{scope}: {len(want)} rows committed, {len(got)} produced; first differences: {changed[:3]}"
    )
