"""Settings that every layer reads: the disclosure threshold.

The threshold is the smallest number of people a published count, or a
published statistic, may rest on. It is set for a run (and the book built
from it) by the environment variable ``ISAFE_DISCLOSURE_THRESHOLD``, and
recorded in ``run.json``; no page, notebook or docstring states it as a
literal. This module imports nothing else of the package.
"""

from __future__ import annotations

import os

#: The threshold when ``ISAFE_DISCLOSURE_THRESHOLD`` is not set.
DEFAULT_THRESHOLD = 10


#: Environment variable that overrides the threshold (for a run and its book).
THRESHOLD_ENV = "ISAFE_DISCLOSURE_THRESHOLD"


def threshold() -> int:
    """The smallest number of people a published count or rate may rest on.

    Raises
    ------
    ValueError
        When ``ISAFE_DISCLOSURE_THRESHOLD`` is set but is not a whole number >= 1.

    Examples
    --------
    >>> threshold() >= 1
    True
    """
    raw = os.environ.get(THRESHOLD_ENV, "").strip()
    if not raw:
        return DEFAULT_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{THRESHOLD_ENV} must be a whole number >= 1, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{THRESHOLD_ENV} must be a whole number >= 1, got {raw!r}")
    return value
