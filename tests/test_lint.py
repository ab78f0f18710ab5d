"""ruff, configured in pyproject.toml, over the package and the tests."""

import subprocess
import sys

from isafe_helpers.resources import SOURCES as REPO


def test_ruff_finds_nothing():
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "isafe_helpers", "tests"], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 0, res.stdout + res.stderr
