"""Per-cluster sums as a sparse indicator matrix."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def team_indicator(codes: np.ndarray, G: int) -> sparse.csr_matrix:
    """Sparse team-by-row indicator: ``team_indicator(codes, G) @ x`` gives team sums of ``x``."""
    return sparse.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(G, codes.size))
