"""The numerical tests pass on every processor (issue 23).

OpenBLAS picks its kernels by processor, and some machines set
``OPENBLAS_CORETYPE=Haswell``; a degenerate fit may then take another
numerical path (an iteration limit instead of a zero variance). The
numerical test modules run once more here, in a subprocess with that
variable set, so ``make test`` checks both kernels on any machine. The
Monte Carlo coverage and simulation tests are left out of the second run
(they check statistical properties, not the kernel, and are costly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

#: The modules whose results depend on the BLAS kernel: the fits, their degenerate cases and R references.
NUMERICAL = (
    "test_gee.py",
    "test_mixed.py",
    "test_kenward_roger.py",
    "test_imputation.py",
    "test_iv.py",
    "test_effect_size.py",
    "test_not_estimable.py",
)
#: Left out of the second run: Monte Carlo checks of coverage and known-truth simulations.
COSTLY = "not coverage and not simulation and not covers and not national_scale and not posterior_predictive"


@pytest.mark.skipif(os.environ.get("OPENBLAS_CORETYPE") == "Haswell", reason="this run already uses the kernel")
def test_the_numerical_tests_pass_with_the_haswell_kernel():
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *(str(HERE / m) for m in NUMERICAL),
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "-q",
            "-m",
            "not slow",
            "-k",
            COSTLY,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE.parent,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout.splitlines()[-1]
