"""Bad input (issue 7, item 1): for every violation of the data contract,
`run` exits with code 2 before any notebook starts and names the file, row,
column, offending value and rule, with no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from conftest import read, write

from isafe_helpers.run.cli import main


def run_cli(capsys, root: Path, out: Path) -> tuple[int, str]:
    code = main(["run", "--data", str(root), "--out", str(out), "--no-book"])
    captured = capsys.readouterr()
    return code, captured.err


def edit(root: Path, rel: str, fn) -> None:
    df = read(root, rel)
    df = fn(df)
    write(root, rel, df)


def first_pid(root: Path, la: str = "LA01") -> str:
    return read(root, f"{la}/participants.csv").loc[0, "participant_id"]


def set_cell(row: int, col: str, value: str):
    def fn(df):
        df.loc[row, col] = value
        return df

    return fn


# Each case: (description, corruption(root), file, row, column, value, rule fragment)
CASES = [
    (
        "missing required column",
        lambda r: edit(r, "LA01/participants.csv", lambda d: d.drop(columns=["role"])),
        "LA01/participants.csv",
        None,
        "role",
        None,
        "required column is missing",
    ),
    (
        "text in a number",
        lambda r: edit(r, "LA01/participants.csv", set_cell(0, "years_qualified", "five")),
        "LA01/participants.csv",
        2,
        "years_qualified",
        "five",
        "must be a number",
    ),
    (
        "bad date",
        lambda r: edit(r, "LA01/survey.csv", set_cell(1, "completed_on", "2023-02-30")),
        "LA01/survey.csv",
        3,
        "completed_on",
        "2023-02-30",
        "YYYY-MM-DD",
    ),
    (
        "out-of-range Likert",
        lambda r: edit(r, "LA02/survey.csv", set_cell(0, "org_2", "6")),
        "LA02/survey.csv",
        2,
        "org_2",
        "6",
        "between 1 and 5",
    ),
    (
        "non-integer Likert",
        lambda r: edit(r, "LA02/survey.csv", set_cell(2, "eff_1", "3.5")),
        "LA02/survey.csv",
        4,
        "eff_1",
        "3.5",
        "whole number",
    ),
    (
        "arm spelled wrongly",
        lambda r: edit(r, "LA01/teams.csv", set_cell(0, "arm", "treatmnt")),
        "LA01/teams.csv",
        2,
        "arm",
        "treatmnt",
        "one of treatment, control",
    ),
    (
        "invalid component",
        lambda r: edit(r, "LA01/attendance.csv", set_cell(0, "component", "webinar")),
        "LA01/attendance.csv",
        2,
        "component",
        "webinar",
        "must be one of",
    ),
    (
        "invalid boolean",
        lambda r: edit(r, "LA01/attendance.csv", set_cell(0, "attended", "maybe")),
        "LA01/attendance.csv",
        2,
        "attended",
        "maybe",
        "true/false",
    ),
    (
        "duplicate ID within a file",
        lambda r: edit(r, "LA01/participants.csv", lambda d: pd.concat([d, d.iloc[[0]]], ignore_index=True)),
        "LA01/participants.csv",
        2,
        "participant_id",
        None,
        "unique within the file",
    ),
    (
        "team with two arms",
        lambda r: edit(
            r,
            "LA01/teams.csv",
            lambda d: pd.concat(
                [d, d.iloc[[0]].assign(arm=lambda x: x["arm"].map({"treatment": "control", "control": "treatment"}))],
                ignore_index=True,
            ),
        ),
        "LA01/teams.csv",
        2,
        "team_id",
        None,
        "unique within the file",
    ),
    (
        "survey row for an unknown participant",
        lambda r: edit(r, "LA02/survey.csv", set_cell(3, "participant_id", "GHOST-1")),
        "LA02/survey.csv",
        5,
        "participant_id",
        "GHOST-1",
        "participant_id of the same LA",
    ),
    (
        "audit row for an unknown participant",
        lambda r: edit(r, "LA01/casefile_audit.csv", set_cell(0, "participant_id", "GHOST-2")),
        "LA01/casefile_audit.csv",
        2,
        "participant_id",
        "GHOST-2",
        "participant_id of the same LA",
    ),
    (
        "attendance row for another LA's participant",
        lambda r: edit(r, "LA01/attendance.csv", set_cell(0, "person_id", first_pid(r, "LA02"))),
        "LA01/attendance.csv",
        2,
        "person_id",
        "LA02-P",
        "participant of LA02",
    ),
    (
        "contacts recorded above cases audited",
        lambda r: edit(
            r,
            "LA02/casefile_audit.csv",
            lambda d: d.assign(
                cases_audited=d["cases_audited"].where(d.index != 0, "2"),
                father_contact_recorded=d["father_contact_recorded"].where(d.index != 0, "4"),
            ),
        ),
        "LA02/casefile_audit.csv",
        2,
        "father_contact_recorded",
        "4",
        "at most cases_audited",
    ),
    (
        "negative quantity",
        lambda r: edit(r, "LA01/costs.csv", set_cell(0, "quantity", "-1")),
        "LA01/costs.csv",
        2,
        "quantity",
        "-1",
        ">= 0",
    ),
    (
        "several price years without deflators",
        lambda r: edit(r, "LA02/costs.csv", set_cell(0, "price_year", "2020")),
        "costs",
        None,
        "price_year",
        "2020, 2023",
        "deflators.csv",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_violation_is_named_and_exits_2(case, small_root, tmp_path, capsys):
    _, corrupt, file, row, column, value, rule = case
    corrupt(small_root)
    code, err = run_cli(capsys, small_root, tmp_path / "out")
    assert code == 2
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing may run or be written"
    assert f"  {file}\n" in err
    line = next(ln for ln in err.splitlines() if f"column {column}" in ln and rule in ln)
    if row is not None:
        assert f"row {row}," in line
    if value is not None:
        assert f"value '{value}" in line


def test_missing_file_empty_file_and_bad_folder_all_reported_together(small_root, tmp_path, capsys):
    (small_root / "LA01" / "ipe_targets.csv").unlink()
    (small_root / "LA02" / "teams.csv").write_text("")
    shutil.copytree(small_root / "LA02", small_root / "LA 03")
    code, err = run_cli(capsys, small_root, tmp_path / "out")
    assert code == 2
    assert "LA01/ipe_targets.csv\n    file: required file is missing" in err
    assert "LA02/teams.csv\n    file: file is empty" in err
    assert "LA 03\n    file, value 'LA 03': LA folder name must use letters" in err


def test_duplicate_ids_across_las(small_root, tmp_path, capsys):
    dup = first_pid(small_root, "LA01")
    edit(small_root, "LA02/participants.csv", set_cell(0, "participant_id", dup))
    lost = first_pid(small_root, "LA02")
    for rel in ("LA02/survey.csv", "LA02/casefile_audit.csv"):
        edit(small_root, rel, lambda d: d[d["participant_id"] != lost])
    edit(small_root, "LA02/attendance.csv", lambda d: d[d["person_id"] != lost])
    edit(small_root, "LA02/feedback.csv", lambda d: d[d["person_id"] != lost])
    code, err = run_cli(capsys, small_root, tmp_path / "out")
    assert code == 2
    assert f"row 2, column participant_id, value '{dup}': participant_id must be unique across the data root" in err
    assert "LA01/participants.csv" in err and "LA02/participants.csv" in err


def test_unknown_extra_column_warns_and_never_reaches_outputs(small_root):
    from isafe_helpers.data.loading import load_root

    edit(small_root, "LA01/teams.csv", lambda d: d.assign(manager_name="Alice Example"))
    data = load_root(small_root)
    assert any("unknown column(s) ignored: manager_name" in w for w in data.warnings)
    assert "manager_name" not in data.teams.columns


def test_spreadsheet_quirks_are_read_not_rejected(small_root):
    """BOM, CRLF, trailing blank rows, Excel dates and numbers stored as text."""
    from isafe_helpers.data.loading import load_root

    p = small_root / "LA01" / "survey.csv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_text().replace("\n", "\r\n").encode() + b"\r\n\r\n,,,\r\n")
    survey = read(small_root, "LA02/survey.csv")
    (small_root / "LA02" / "survey.csv").unlink()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(survey.columns))
    for rec in survey.itertuples(index=False):
        row = []
        for col, v in zip(survey.columns, rec):
            if col == "completed_on" and v:
                row.append(pd.Timestamp(v).to_pydatetime())  # a real Excel date cell
            elif col.startswith("conf_") and v:
                row.append(str(v))  # a number stored as text
            elif v and col not in ("participant_id", "wave"):
                row.append(float(v))  # a number cell (float in the file)
            else:
                row.append(v or None)
        ws.append(row)
    wb.save(small_root / "LA02" / "survey.xlsx")
    data = load_root(small_root)
    s = data.survey.set_index(["participant_id", "wave"])
    orig = survey.set_index(["participant_id", "wave"])
    key = orig[(orig["conf_1"] != "") & (orig["eff_1"] != "") & (orig["completed_on"] != "")].index[0]
    assert s.loc[key, "completed_on"] == pd.Timestamp(orig.loc[key, "completed_on"])
    assert s.loc[key, "conf_1"] == int(orig.loc[key, "conf_1"])
    assert s.loc[key, "eff_1"] == int(orig.loc[key, "eff_1"])
