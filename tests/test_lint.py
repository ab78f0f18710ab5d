"""ruff (lint and format), configured in pyproject.toml, over the package, the tests and the benchmark."""

import subprocess
import sys

from isafe_helpers.resources import SOURCES as REPO


def test_ruff_finds_nothing():
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "isafe_helpers", "tests", "bench"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format_is_applied():
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "isafe_helpers", "tests", "bench"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout + res.stderr
