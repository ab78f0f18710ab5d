"""Property-based test (issue 7, item 6): whatever random corruption is
applied to a valid data root, the loader either accepts it or raises the
documented DataValidationError, never any other exception."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from isafe_helpers.data.loading import DataValidationError, Problem, TrialData, load_root
from isafe_helpers.data.synth import generate

FILES = [
    "teams",
    "participants",
    "survey",
    "casefile_audit",
    "attendance",
    "ipe_targets",
    "feedback",
    "fidelity",
    "costs",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "x",
            "-1",
            "0",
            "3.5",
            "99999",
            "1e9",
            "nan",
            "true",
            "2023-13-01",
            "LA02-P0001",
            "treatment",
            "control",
            "  ",
            "ünïcødé",
            '"',
            ",",
            "\t",
        ]
    ),
    st.text(max_size=6),
    st.integers(-10, 10).map(str),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("prop") / "root", seed=5, las=2, teams_per_la=2, staff_per_team=3)


def corrupt(path: Path, op: str, data) -> None:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    lines = text.splitlines()
    header = lines[0].split(",")
    if op == "drop_column":
        i = data.draw(st.integers(0, len(header) - 1))
        lines = [",".join(c for j, c in enumerate(ln.split(",")) if j != i) for ln in lines]
    elif op == "rename_column":
        i = data.draw(st.integers(0, len(header) - 1))
        header[i] = data.draw(st.sampled_from(["", "x", header[i].upper(), header[i] + " "]))
        lines[0] = ",".join(header)
    elif op == "change_cell" and len(lines) > 1:
        r = data.draw(st.integers(1, len(lines) - 1))
        cells = lines[r].split(",")
        c = data.draw(st.integers(0, len(cells) - 1))
        value = data.draw(VALUES).replace("\n", " ").replace("\r", " ")
        cells[c] = '"' + value.replace('"', '""') + '"' if ("," in value or '"' in value) else value
        lines[r] = ",".join(cells)
    elif op == "duplicate_row" and len(lines) > 1:
        r = data.draw(st.integers(1, len(lines) - 1))
        lines.insert(r, lines[r])
    elif op == "delete_row" and len(lines) > 1:
        del lines[data.draw(st.integers(1, len(lines) - 1))]
    elif op == "truncate":
        cut = data.draw(st.integers(0, len(text)))
        path.write_bytes(text.encode("utf-8", errors="surrogateescape")[:cut])
        return
    elif op == "bad_bytes":
        raw = text.encode("utf-8", errors="surrogateescape")
        path.write_bytes(raw[:20] + b"\xff\xfe\x00" + raw[20:])
        return
    elif op == "delete_file":
        path.unlink()
        return
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))


OPS = [
    "drop_column",
    "rename_column",
    "change_cell",
    "duplicate_row",
    "delete_row",
    "truncate",
    "bad_bytes",
    "delete_file",
]


# Shrinking is left out: a failure prints its draws, and CI stays bounded.
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_corruptions_give_the_documented_error_or_a_valid_root(template, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("case") / "root"
    shutil.copytree(template, root)
    for _ in range(data.draw(st.integers(1, 3))):
        la = data.draw(st.sampled_from(["LA01", "LA02"]))
        name = data.draw(st.sampled_from(FILES))
        path = root / la / f"{name}.csv"
        if path.exists():
            corrupt(path, data.draw(st.sampled_from(OPS)), data)
    try:
        result = load_root(root)
    except DataValidationError as err:
        assert err.problems and all(isinstance(p, Problem) for p in err.problems)
        assert all(p.file and p.rule for p in err.problems)
        assert "problem(s)" in err.report()
    else:
        assert isinstance(result, TrialData)
