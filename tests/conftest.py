"""Shared fixtures: small valid data roots made by the generator, and helpers
to corrupt one file at a time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from isafe_helpers.data.synth import generate


@pytest.fixture(scope="session")
def _small_root_template(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tpl") / "root", seed=7, las=2, teams_per_la=4, staff_per_team=5)


@pytest.fixture
def small_root(_small_root_template, tmp_path) -> Path:
    """A fresh, valid 2-LA data root the test may edit."""
    dst = tmp_path / "root"
    shutil.copytree(_small_root_template, dst)
    return dst


def read(root: Path, rel: str) -> pd.DataFrame:
    return pd.read_csv(root / rel, dtype=str, keep_default_na=False)


def write(root: Path, rel: str, df: pd.DataFrame) -> None:
    df.to_csv(root / rel, index=False, lineterminator="\n")


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory) -> Path:
    """Every notebook of every scope run once on the bundled data (no book): the results folder."""
    import subprocess
    import sys

    from isafe_helpers.resources import BUNDLED_DATA

    out = tmp_path_factory.mktemp("bundled") / "results"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "isafe_helpers",
            "run",
            "--data",
            BUNDLED_DATA,
            "--out",
            out,
            "--no-book",
            "--jobs",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def pytest_collection_modifyitems(config, items):
    """Tests marked ``faults`` (the fault matrix, about 6 minutes) run only with ``ISAFE_FAULT_TESTS=1`` (``make test``, ``make faults``)."""
    if os.environ.get("ISAFE_FAULT_TESTS") == "1":
        return
    skip = pytest.mark.skip(
        reason="the fault matrix runs with `make test` or `make faults` (ISAFE_FAULT_TESTS=1): a few minutes"
    )
    for item in items:
        if "faults" in item.keywords:
            item.add_marker(skip)
