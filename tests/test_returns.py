"""Real LA returns (issue 15): every case of the issue, tried at the command line.

Where the input is valid, ``validate`` accepts it, says what it assumed, and
the data read are exactly the clean root's (the slow tests at the end run the
pipeline and compare the estimates with the bundled fixtures: text exactly, numbers to 1e-9).
Where it is not, ``run`` exits with code 2 before anything is written, naming
the file, row, column, value and rule, with no traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import read, write
from estimates_match import differences
from xlsx_kit import Error, Formula, SheetSpec, typed_rows, write_workbook

from isafe_helpers.data import contract as C
from isafe_helpers.data.loading import load_root
from isafe_helpers.resources import BUNDLED_DATA
from isafe_helpers.resources import SOURCES as REPO
from isafe_helpers.run.cli import main

SPECS = C.file_specs()
FIXTURES = Path(__file__).parent / "fixtures" / "estimates"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_same_data(a: Path, b: Path) -> None:
    """The two roots load to identical tables."""
    da, db = load_root(a), load_root(b)
    assert da.las == db.las
    for name in SPECS:
        pd.testing.assert_frame_equal(da.tables[name], db.tables[name], obj=name)


def to_workbook(root: Path, rel: str, sheets=None, **kw) -> Path:
    """Replace ``rel`` (a CSV) by a workbook as Excel writes it, typed as an analyst types it."""
    name = Path(rel).stem
    rows = typed_rows(read(root, rel), SPECS[name])
    (root / rel).unlink()
    return write_workbook(root / Path(rel).with_suffix(".xlsx"), sheets or [SheetSpec(name, rows)], **kw)


def swap_arms(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(arm=df["arm"].map({"treatment": "control", "control": "treatment"}))


# --------------------------------------------------------------------------
# Valid returns: read, said, and the same data as the clean root
# --------------------------------------------------------------------------
def hidden_first_sheet(root: Path) -> None:
    df = read(root, "LA01/teams.csv")
    (root / "LA01/teams.csv").unlink()
    write_workbook(
        root / "LA01/teams.xlsx",
        [
            SheetSpec("teams", typed_rows(swap_arms(df), SPECS["teams"]), state="hidden"),  # last quarter's
            SheetSpec("Sheet2", typed_rows(df, SPECS["teams"])),
        ],
    )


def formulas_with_results(root: Path) -> None:
    df = read(root, "LA01/costs.csv")
    rows = typed_rows(df, SPECS["costs"])
    col = rows[0].index("unit_cost_gbp")
    for r in rows[1:]:
        r[col] = Formula(f"{r[col]}*2/2", r[col])  # Excel stores each result
    (root / "LA01/costs.csv").unlink()
    write_workbook(root / "LA01/costs.xlsx", [SheetSpec("costs", rows)])


def pound_in_an_item(root: Path) -> None:
    df = read(root, "LA01/costs.csv")
    df.loc[0, "item"] = "Venue hire £120/day, Café"
    write(root, "LA01/costs.csv", df)


def cp1252_costs(root: Path) -> None:
    p = root / "LA01/costs.csv"
    p.write_bytes(p.read_text(encoding="utf-8").replace("\n", "\r\n").encode("cp1252"))


def semicolons(root: Path) -> None:
    df = read(root, "LA02/survey.csv")
    df.to_csv(root / "LA02/survey.csv", sep=";", index=False, lineterminator="\r\n")


def utf16_tabs(root: Path) -> None:
    df = read(root, "LA02/participants.csv")
    (root / "LA02/participants.csv").write_bytes(df.to_csv(sep="\t", index=False).encode("utf-16"))


def header_case(root: Path) -> None:
    df = read(root, "LA01/teams.csv").rename(columns={"team_id": "Team_ID", "arm": "ARM"})
    write(root, "LA01/teams.csv", df)


def capital_name(root: Path) -> None:
    (root / "LA02/teams.csv").rename(root / "LA02/teams.CSV")


def mac_and_lock_files(root: Path) -> None:
    (root / "__MACOSX" / "LA01").mkdir(parents=True)
    (root / "__MACOSX" / "LA01" / "._teams.csv").write_bytes(b"\x00\x05\x16\x07junk")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "LA01" / "~$costs.xlsx").write_bytes(b"\x0bOffice lock")
    (root / "LA02" / ".~lock.survey.csv#").write_text("x,y\n")


def linked_la(root: Path) -> None:
    """LA02 links to this quarter's return, kept in a hidden folder of the data root (links outside it are refused)."""
    elsewhere = root / ".returns" / "LA02"
    elsewhere.parent.mkdir()
    shutil.move(root / "LA02", elsewhere)
    os.symlink(elsewhere, root / "LA02")


def fill_template(template: Path, la: Path) -> Path:
    """Type an LA folder's CSV files into the template's sheets and save it as the LA's returns.xlsx."""
    from openpyxl import load_workbook

    wb = load_workbook(template)
    for name, spec in SPECS.items():
        src = la / f"{name}.csv"
        if not src.exists():
            continue
        df = pd.read_csv(src, dtype=str, keep_default_na=False)
        ws = wb[name]
        header = [c.value for c in ws[1]]
        for row in typed_rows(df, spec)[1:]:
            values = dict(zip(df.columns, row))
            ws.append([values.get(h) for h in header])
        src.unlink()
    wb.save(la / C.RETURNS_WORKBOOK)
    return la / C.RETURNS_WORKBOOK


def returns_workbook(root: Path) -> None:
    from isafe_helpers.data.template import write_template

    fill_template(write_template(root.parent / "template.xlsx"), root / "LA02")


def excel_typed_survey(root: Path) -> None:
    to_workbook(root, "LA01/survey.csv")


VALID = [
    ("hidden first sheet holding last quarter's arms", None, hidden_first_sheet, "hidden sheet(s) 'teams' not read"),
    ("formulas with stored results", None, formulas_with_results, "formula cell(s) read as the result the file stores"),
    ("Excel's cp1252 CSV with a pound sign", pound_in_an_item, cp1252_costs, "encoding Windows-1252 (cp1252)"),
    ("semicolon-separated", None, semicolons, "LA02/survey.csv: read as CSV, encoding UTF-8, delimiter ';'"),
    ("UTF-16 tab-separated", None, utf16_tabs, "LA02/participants.csv: read as CSV, encoding UTF-16, delimiter tab"),
    ("headers in another case", None, header_case, "'Team_ID' as team_id, 'ARM' as arm"),
    ("file name in capitals", None, capital_name, "file(s) read"),
    ("__MACOSX, dot and lock files", None, mac_and_lock_files, "ignored (hidden, __MACOSX and Office lock files): "),
    ("symlinked LA folder", None, linked_la, "file(s) read"),
    ("returns.xlsx made by the template", None, returns_workbook, "file(s) read"),
    ("workbook typed as in Excel (shared strings, dates, numbers)", None, excel_typed_survey, "file(s) read"),
]


@pytest.mark.parametrize("case", VALID, ids=[c[0] for c in VALID])
def test_valid_returns_read_as_the_clean_root(case, small_root, tmp_path, capsys):
    _, content, fmt, said = case
    clean = tmp_path / "clean"
    shutil.copytree(small_root, clean)
    if content:
        content(small_root)
        content(clean)
    fmt(small_root)
    code, out, err = run_cli(capsys, "validate", "--data", small_root)
    assert code == 0, err
    assert "Traceback" not in err
    assert said in err
    assert_same_data(small_root, clean)


def test_ignored_files_take_one_line(small_root, capsys):
    mac_and_lock_files(small_root)
    code, _, err = run_cli(capsys, "validate", "--data", small_root)
    assert code == 0
    lines = [ln for ln in err.splitlines() if "__MACOSX" in ln or "~$" in ln or "DS_Store" in ln]
    assert lines == [
        "warning: ignored (hidden, __MACOSX and Office lock files): .DS_Store, LA01/~$costs.xlsx, "
        "LA02/.~lock.survey.csv#, __MACOSX/"
    ]


def test_a_linked_la_folder_is_fingerprinted(small_root):
    from isafe_helpers.run.pipeline import data_digests, task_inputs

    linked_la(small_root)
    before = load_root(small_root)
    args = ("trial", "cost", REPO / "notebooks", "code", small_root.parent / "out")
    inputs = task_inputs(*args, data_digests(before), small_root)
    la01 = ("LA01", *args[1:])
    la01_inputs = task_inputs(*la01, data_digests(before), small_root)
    # change one cost in the folder the link points to (task inputs follow the data read, not the bytes)
    costs = read(small_root / ".returns", "LA02/costs.csv")
    costs.loc[0, "unit_cost_gbp"] = str(float(costs.loc[0, "unit_cost_gbp"]) + 1)
    write(small_root / ".returns", "LA02/costs.csv", costs)
    after = load_root(small_root)
    assert after.fingerprint != before.fingerprint
    assert task_inputs(*args, data_digests(after), small_root) != inputs  # the pooled scope reruns
    assert task_inputs(*la01, data_digests(after), small_root) == la01_inputs  # LA01's pages do not


# --------------------------------------------------------------------------
# Invalid returns: exit 2, file, row, column, value and rule, nothing written
# --------------------------------------------------------------------------
def formula_without_result(root: Path) -> None:
    rows = typed_rows(read(root, "LA01/costs.csv"), SPECS["costs"])
    rows[1][rows[0].index("unit_cost_gbp")] = Formula("45*1")
    (root / "LA01/costs.csv").unlink()
    write_workbook(root / "LA01/costs.xlsx", [SheetSpec("costs", rows)])


def formula_result_from_a_program_that_does_not_compute(root: Path) -> None:
    rows = typed_rows(read(root, "LA01/costs.csv"), SPECS["costs"])
    rows[1][rows[0].index("unit_cost_gbp")] = Formula("45*1", 0)  # what XlsxWriter stores
    (root / "LA01/costs.csv").unlink()
    write_workbook(root / "LA01/costs.xlsx", [SheetSpec("costs", rows)], recalc=True)


def hidden_draft_cost(root: Path) -> None:
    rows = typed_rows(read(root, "LA01/costs.csv"), SPECS["costs"])
    rows.append(["DRAFT venue", "venue", "delivery", "local_authority", 1, "item", 50000, 2023])
    (root / "LA01/costs.csv").unlink()
    write_workbook(root / "LA01/costs.xlsx", [SheetSpec("costs", rows, hidden_rows=(len(rows),))])


def hidden_column(root: Path) -> None:
    df = read(root, "LA01/teams.csv").assign(old_arm=lambda d: swap_arms(d)["arm"])
    rows = typed_rows(df, SPECS["teams"])
    (root / "LA01/teams.csv").unlink()
    write_workbook(root / "LA01/teams.xlsx", [SheetSpec("teams", rows, hidden_cols=(len(rows[0]),))])


def set_cell(rel: str, row: int, col: str, value: str):
    def fn(root: Path) -> None:
        df = read(root, rel)
        df.loc[row, col] = value
        write(root, rel, df)

    return fn


def duplicate_header(root: Path) -> None:
    p = root / "LA01/teams.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join([lines[0] + ",arm"] + [ln + ",control" for ln in lines[1:]]) + "\n")


def drop_target(root: Path) -> None:
    df = read(root, "LA01/ipe_targets.csv")
    write(root, "LA01/ipe_targets.csv", df[df["component"] != "father_engagement"])


def header_only_attendance(root: Path) -> None:
    p = root / "LA01/attendance.csv"
    p.write_text(p.read_text().splitlines()[0] + "\n")


def old_excel(root: Path) -> None:
    (root / "LA01/teams.csv").rename(root / "LA01/teams.xls")


def two_visible_sheets(root: Path) -> None:
    df = read(root, "LA01/teams.csv")
    (root / "LA01/teams.csv").unlink()
    rows = typed_rows(df, SPECS["teams"])
    write_workbook(root / "LA01/teams.xlsx", [SheetSpec("Q1", rows), SheetSpec("Q2", rows)])


def free_text_theme(root: Path) -> None:
    df = read(root, "LA01/feedback.csv")
    df["theme"] = ""
    df.loc[0, "theme"] = "Great trainer!"
    write(root, "LA01/feedback.csv", df)


def error_value(root: Path) -> None:
    rows = typed_rows(read(root, "LA01/costs.csv"), SPECS["costs"])
    rows[2][rows[0].index("quantity")] = Error("#DIV/0!")
    (root / "LA01/costs.csv").unlink()
    write_workbook(root / "LA01/costs.xlsx", [SheetSpec("costs", rows)])


def bad_arm_in_capital_name(root: Path) -> None:
    set_cell("LA02/teams.csv", 0, "arm", "treatmnt")(root)
    capital_name(root)


def spaced_header(root: Path) -> None:
    write(root, "LA01/teams.csv", read(root, "LA01/teams.csv").rename(columns={"team_id": "Team ID"}))


def broken_link(root: Path) -> None:
    (root / "LA01/feedback.csv").unlink()
    os.symlink(root / "nowhere" / "feedback.csv", root / "LA01/feedback.csv")


def stray_cell(root: Path) -> None:
    rows = typed_rows(read(root, "LA01/teams.csv"), SPECS["teams"])
    (root / "LA01/teams.csv").unlink()
    write_workbook(root / "LA01/teams.xlsx", [SheetSpec("teams", rows, extra_cells=[("XFD1048576", "x")])])


def given_twice(root: Path) -> None:
    df = read(root, "LA01/teams.csv")
    write_workbook(root / "LA01/teams.xlsx", [SheetSpec("teams", typed_rows(df, SPECS["teams"]))])


def workbook_named_csv(root: Path) -> None:
    to_workbook(root, "LA01/costs.csv")
    (root / "LA01/costs.xlsx").rename(root / "LA01/costs.csv")


def row_longer_than_header(root: Path) -> None:
    p = root / "LA01/teams.csv"
    lines = p.read_text().splitlines()
    lines[2] += ",extra"
    p.write_text("\n".join(lines) + "\n")


def first(root: Path, rel: str, col: str, value: str) -> int:
    """The spreadsheet row of the first row whose ``col`` is ``value``."""
    df = read(root, rel)
    return int(df.index[df[col] == value][0]) + 2


# (description, corruption, file, row, column, value, rule fragment); row may be a function of the root
INVALID = [
    (
        "formula with no stored result",
        formula_without_result,
        "LA01/costs.xlsx",
        2,
        "unit_cost_gbp",
        "=45*1",
        "the file stores no result",
    ),
    (
        "formula result stored as 0 by a program that does not compute formulas",
        formula_result_from_a_program_that_does_not_compute,
        "LA01/costs.xlsx",
        2,
        "unit_cost_gbp",
        "=45*1",
        "does not compute formulas",
    ),
    ("hidden row holding a draft cost", hidden_draft_cost, "LA01/costs.xlsx", None, None, None, "row is hidden"),
    ("hidden column holding data", hidden_column, "LA01/teams.xlsx", None, "old_arm", None, "column is hidden"),
    (
        "Arabic-Indic digit",
        set_cell("LA01/survey.csv", 0, "conf_1", "٩"),
        "LA01/survey.csv",
        2,
        "conf_1",
        "٩",
        "whole number",
    ),
    (
        "fullwidth digit",
        set_cell("LA02/casefile_audit.csv", 1, "cases_audited", "９"),
        "LA02/casefile_audit.csv",
        3,
        "cases_audited",
        "９",
        "whole number",
    ),
    (
        "duplicated header column",
        duplicate_header,
        "LA01/teams.csv",
        1,
        "arm and arm",
        None,
        "more than once in the header",
    ),
    (
        "ipe_targets missing one component",
        drop_target,
        "LA01/attendance.csv",
        lambda r: first(r, "LA01/attendance.csv", "component", "father_engagement"),
        "component",
        "father_engagement",
        "no row in the LA's ipe_targets",
    ),
    (
        "header-only attendance in an LA with treatment teams",
        header_only_attendance,
        "LA01/attendance.csv",
        None,
        None,
        None,
        "the LA has treatment teams",
    ),
    (
        "overflowing count",
        set_cell("LA01/casefile_audit.csv", 0, "cases_audited", "99999999999999999999"),
        "LA01/casefile_audit.csv",
        2,
        "cases_audited",
        "99999999999999999999",
        "declared bound",
    ),
    (
        "inf in a cost",
        set_cell("LA02/costs.csv", 1, "unit_cost_gbp", "inf"),
        "LA02/costs.csv",
        3,
        "unit_cost_gbp",
        "inf",
        "must be a number",
    ),
    (
        "a cost that overflows to infinity",
        set_cell("LA02/costs.csv", 0, "quantity", "1e400"),
        "LA02/costs.csv",
        2,
        "quantity",
        "1e400",
        "must be a finite number",
    ),
    ("old Excel file", old_excel, "LA01/teams.xls", None, None, None, "save it as .xlsx"),
    (
        "several visible sheets",
        two_visible_sheets,
        "LA01/teams.xlsx",
        None,
        None,
        None,
        "several visible sheets ('Q1', 'Q2') and none is named 'teams'",
    ),
    (
        "theme outside the fixed list",
        free_text_theme,
        "LA01/feedback.csv",
        2,
        "theme",
        "Great trainer!",
        "must be one of practical",
    ),
    ("Excel error value", error_value, "LA01/costs.xlsx", 3, "quantity", "#DIV/0!", "Excel error value"),
    ("file named in capitals", bad_arm_in_capital_name, "LA02/teams.CSV", 2, "arm", "treatmnt", "one of treatment"),
    (
        "header that is not a column name",
        spaced_header,
        "LA01/teams.csv",
        None,
        "team_id",
        None,
        "required column is missing (the header has unknown column(s): Team ID)",
    ),
    ("broken link", broken_link, "LA01/feedback.csv", None, None, None, "broken link"),
    ("stray cell at XFD1048576", stray_cell, "LA01/teams.xlsx", 1048576, "(XFD)", "x", "column with no header"),
    ("table given twice", given_twice, "LA01/teams", None, None, "teams.csv, teams.xlsx", "given more than once"),
    ("workbook with a .csv name", workbook_named_csv, "LA01/costs.csv", None, None, None, "rename it to .xlsx"),
    ("row longer than the header", row_longer_than_header, "LA01/teams.csv", 3, None, None, "stray delimiter"),
]


@pytest.mark.parametrize("case", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_returns_exit_2_naming_file_row_column_and_rule(case, small_root, tmp_path, capsys):
    _, corrupt, file, row, column, value, rule = case
    if callable(row):
        row = row(small_root)
    corrupt(small_root)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "run", "--data", small_root, "--out", out, "--no-book")
    assert code == 2, err
    assert "Traceback" not in err
    assert not out.exists(), "nothing may run or be written"
    assert f"  {file}\n" in err, err
    lines = [ln for ln in err.splitlines() if rule in ln and (column is None or f"column {column}" in ln)]
    assert lines, err
    line = lines[0]
    if row is not None:
        assert line.strip().startswith(f"row {row}")
    if value is not None:
        assert f"value {value!r}" in line


def test_only_ascii_digits_are_numbers_never_missing(small_root):
    from isafe_helpers.data.loading import DataValidationError

    for value in ("٩", "９", "3", "3.0"):
        set_cell("LA01/survey.csv", 0, "conf_1", value)(small_root)
        if value in ("3", "3.0"):
            assert load_root(small_root).survey.loc[0, "conf_1"] == 3
            continue
        with pytest.raises(DataValidationError) as info:
            load_root(small_root)
        assert [(p.row, p.column, p.value) for p in info.value.problems] == [(2, "conf_1", value)]


@pytest.mark.parametrize(
    "yml, rule",
    [
        ("scales:\n  s:\n    items: [a]\n    max: 99999999999999999999\n", "whole min < max within -1000 .. 1000"),
        ("scales:\n  s:\n    items: [a]\nthemes: [ok, 'not <a> code']\n", "must be codes of letters"),
        ("scales:\n  s:\n    items: [a]\nthemes: practical\n", "must be a list of theme codes"),
    ],
)
def test_an_instrument_with_unbounded_scales_or_free_text_themes_is_refused(yml, rule, small_root, capsys):
    (small_root / "instrument.yml").write_text(yml)
    code, _, err = run_cli(capsys, "validate", "--data", small_root)
    assert code == 2 and "unreadable instrument" in err and rule in err


def test_every_numeric_column_is_bounded():
    """So no value can overflow: every number has the contract's upper bound or a declared one."""
    for spec in [*C.file_specs().values(), C.DEFLATORS_SPEC]:
        for f in spec.fields:
            if f.dtype in ("int", "float"):
                assert f.upper is not None, (spec.name, f.name)
                assert f.upper < 2**53


# --------------------------------------------------------------------------
# Reports an analyst can use
# --------------------------------------------------------------------------
def many_bad_rows(root: Path, n: int) -> None:
    df = read(root, "LA01/costs.csv")
    big = pd.concat([df.iloc[[0]]] * n, ignore_index=True).assign(quantity="-1")
    big.loc[: n // 2, "category"] = "venues"
    write(root, "LA01/costs.csv", big)


def test_at_most_20_lines_per_file_and_rule_with_a_count_of_the_rest(small_root, tmp_path, capsys):
    many_bad_rows(small_root, 5000)
    code, _, err = run_cli(capsys, "validate", "--data", small_root)
    assert code == 2
    quantity = [ln for ln in err.splitlines() if "column quantity" in ln]
    category = [ln for ln in err.splitlines() if "column category" in ln]
    assert len(quantity) == len(category) == 20
    assert "    ... and 4,980 more row(s) breaking the same rule: must be >= 0" in err
    assert "    ... and 2,481 more row(s) breaking the same rule: must be one of personnel" in err
    assert len(err.splitlines()) < 60
    assert "--report problems.csv" in err


def test_report_writes_every_problem_with_formulas_neutralised(small_root, tmp_path, capsys):
    many_bad_rows(small_root, 300)
    set_cell("LA01/teams.csv", 0, "arm", '=HYPERLINK("http://x","y")')(small_root)
    set_cell("LA02/teams.csv", 0, "arm", "@SUM(1)")(small_root)
    report = tmp_path / "problems.csv"
    code, _, err = run_cli(capsys, "validate", "--data", small_root, "--report", report)
    assert code == 2
    rows = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8"))))
    assert list(rows[0]) == ["file", "row", "column", "value", "rule"]
    assert sum(r["column"] == "quantity" for r in rows) == 300  # every one, not 20
    arms = {r["value"] for r in rows if r["column"] == "arm"}
    assert arms == {'\'=HYPERLINK("http://x","y")', "'@SUM(1)"}
    assert {r["value"] for r in rows if r["column"] == "quantity"} == {"-1"}  # a number stays a number
    assert all(r["row"].isdigit() for r in rows if r["row"])
    assert not any(r[k].startswith(("=", "+", "@")) for r in rows for k in r)


def test_report_of_a_valid_root_is_its_header(small_root, tmp_path, capsys):
    report = tmp_path / "problems.csv"
    code, _, _ = run_cli(capsys, "validate", "--data", small_root, "--report", report)
    assert code == 0
    assert report.read_text() == "file,row,column,value,rule\n"
    code, _, _ = run_cli(capsys, "validate", "--data", small_root, "--report", report)
    assert code == 0, "an earlier report may be written over"


@pytest.mark.parametrize("where", ["in the data root", "over another file"])
def test_report_is_never_written_over_data_or_a_foreign_file(where, small_root, tmp_path, capsys):
    report = small_root / "LA01" / "problems.csv" if where == "in the data root" else tmp_path / "notes.csv"
    if where == "over another file":
        report.write_text("my,notes\n")
    code, _, err = run_cli(capsys, "validate", "--data", small_root, "--report", report)
    assert code == 2
    assert "--report" in err
    assert where != "in the data root" or not report.exists()
    assert where != "over another file" or report.read_text() == "my,notes\n"


def test_a_file_over_the_cell_bound_is_refused_quickly(small_root, capsys):
    df = read(small_root, "LA01/survey.csv")
    n = C.MAX_CELLS // len(df.columns) + 1000
    line = ",".join(df.iloc[0]) + "\n"
    (small_root / "LA01/survey.csv").write_text(",".join(df.columns) + "\n" + line * n)
    start = time.perf_counter()
    code, _, err = run_cli(capsys, "validate", "--data", small_root)
    assert code == 2
    assert time.perf_counter() - start < 30
    (hit,) = [ln for ln in err.splitlines() if "cells the handbook reads" in ln]
    assert "LA01/survey.csv" in err and f"{n + 2:,} rows" in hit


MEASURE = textwrap.dedent(
    """
    import resource, subprocess, sys, time
    limit = 2 * 1024**3  # a regression fails here instead of exhausting the machine
    start = time.perf_counter()
    res = subprocess.run(
        sys.argv[1:], capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(res.returncode, round(seconds, 2), peak_kb)
    sys.stderr.write(res.stderr)
    """
)


def test_memory_bomb_xlsx_is_refused_in_seconds_and_little_memory(small_root, tmp_path):
    """A 5 KB teams.xlsx with one stray cell at XFD1048576 took the validator to 24 GB before."""
    from openpyxl import Workbook

    df = read(small_root, "LA01/teams.csv")
    (small_root / "LA01/teams.csv").unlink()
    wb = Workbook()
    ws = wb.active
    ws.title = "teams"
    for row in typed_rows(df, SPECS["teams"]):
        ws.append(row)
    ws["XFD1048576"] = "x"
    bomb = small_root / "LA01/teams.xlsx"
    wb.save(bomb)
    assert bomb.stat().st_size < 10_000
    res = subprocess.run(
        [sys.executable, "-c", MEASURE, sys.executable, "-m", "isafe_helpers", "validate", "--data", small_root],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    code, seconds, peak_kb = res.stdout.split()
    assert int(code) == 2, res.stderr
    assert "LA01/teams.xlsx\n    row 1048576, column (XFD), value 'x': cell XFD1048576 holds data" in res.stderr
    assert "Traceback" not in res.stderr
    assert float(seconds) < 30
    assert int(peak_kb) * 1024 < 1024**3, f"peak {int(peak_kb) / 1024:.0f} MB"
    print(f"memory bomb refused in {float(seconds):.1f} s, peak {int(peak_kb) / 1024:.0f} MB")


# --------------------------------------------------------------------------
# Outputs never clobber
# --------------------------------------------------------------------------
def test_out_holding_a_foreign_tmp_is_refused_and_kept(small_root, tmp_path, capsys):
    out = tmp_path / "out"
    (out / ".tmp").mkdir(parents=True)
    (out / ".tmp" / "mine.txt").write_text("keep")
    code, _, err = run_cli(capsys, "run", "--data", small_root, "--out", out, "--no-book")
    assert code == 2
    assert "holds files the handbook did not make" in err
    assert (out / ".tmp" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in out.rglob("*")) == [".tmp", "mine.txt"]


def test_build_holding_foreign_html_and_source_is_refused_and_kept(small_root, tmp_path, capsys):
    build = tmp_path / "build"
    for sub in ("html", ".source", ".html-tmp"):
        (build / sub).mkdir(parents=True)
        (build / sub / "mine.txt").write_text("keep")
    code, _, err = run_cli(capsys, "run", "--data", small_root, "--out", tmp_path / "out", "--build", build)
    assert code == 2
    assert f"--build {build} holds files the handbook did not make" in err
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, "book", "--out", tmp_path / "out", "--build", build)
    assert code == 2
    for sub in ("html", ".source", ".html-tmp"):
        assert (build / sub / "mine.txt").read_text() == "keep"


def test_build_inside_the_data_root_is_refused(small_root, tmp_path, capsys):
    before = sorted(p.relative_to(small_root) for p in small_root.rglob("*"))
    for build in (small_root, small_root / "LA01" / "book"):
        code, _, err = run_cli(capsys, "run", "--data", small_root, "--out", tmp_path / "out", "--build", build)
        assert code == 2
        assert "must not be inside the data root" in err
    assert sorted(p.relative_to(small_root) for p in small_root.rglob("*")) == before


@pytest.mark.parametrize("sub", ["book", "isafe_helpers", "notebooks", "data", ".", "book/new"])
@pytest.mark.parametrize("flag", ["--out", "--build"])
def test_out_or_build_in_the_sources_is_refused(sub, flag, small_root, tmp_path, capsys):
    target = (REPO / sub).resolve()
    before = sorted(os.listdir(target)) if target.exists() else None
    args = ["run", "--data", small_root, "--out", tmp_path / "out", "--build", tmp_path / "build"]
    args[args.index(flag) + 1] = target
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert "handbook's own sources" in err
    assert (sorted(os.listdir(target)) if target.exists() else None) == before


def test_a_marked_out_is_reused_and_a_new_one_marked(small_root, tmp_path):
    from isafe_helpers.outputs import MARKER, NotOurs, claim
    from isafe_helpers.run.cli import check_paths

    out = tmp_path / "out"
    assert check_paths(small_root, out, tmp_path / "build") is None
    claim(out)
    (out / "trial").mkdir()
    assert (out / MARKER).is_file()
    assert check_paths(small_root, out, tmp_path / "build") is None
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "x").write_text("x")
    with pytest.raises(NotOurs):
        claim(tmp_path / "theirs")


# --------------------------------------------------------------------------
# The return template
# --------------------------------------------------------------------------
def test_template_command_writes_the_contract_as_a_workbook(tmp_path, capsys):
    from openpyxl import load_workbook

    out = tmp_path / "returns.xlsx"
    code, stdout, _ = run_cli(capsys, "template", "--out", out)
    assert code == 0 and str(out) in stdout
    wb = load_workbook(out)
    assert wb.sheetnames == ["instructions", *SPECS]
    for name, spec in SPECS.items():
        ws = wb[name]
        assert [c.value for c in ws[1]] == spec.columns
        dvs = ws.data_validations.dataValidation
        for i, f in enumerate(spec.fields, start=1):
            letter = ws.cell(1, i).column_letter
            head = [dv for dv in dvs if f"{letter}1" == str(dv.sqref)]
            assert len(head) == 1 and head[0].showInputMessage and f.description in head[0].prompt, (name, f.name)
            (body,) = [dv for dv in dvs if str(dv.sqref) == f"{letter}2:{letter}1048576"]
            if f.allowed is not None:
                assert body.type == "list" and body.formula1 == '"' + ",".join(f.allowed) + '"', (name, f.name)
            elif f.dtype == "bool":
                assert body.type == "list" and body.formula1 == '"true,false"'
            elif f.dtype in ("int", "float") and not f.at_most:
                assert body.type == ("whole" if f.dtype == "int" else "decimal"), (name, f.name)
                assert float(body.formula2 or body.formula1) == f.upper
            elif f.at_most:
                assert body.type == "custom" and "<=" in body.formula1
    guide = "\n".join(str(c.value) for row in wb["instructions"].iter_rows() for c in row if c.value)
    for rule in (*C.READING_RULES, *C.VALUE_RULES, *C.CROSS_FILE_RULES):
        assert rule.replace("`", "").replace("*", "") in guide
    for spec in SPECS.values():
        for f in spec.fields:
            assert f.rule().replace("`", "") in guide


def test_template_is_never_written_over_a_file(tmp_path, capsys):
    out = tmp_path / "returns.xlsx"
    out.write_text("mine")
    code, _, err = run_cli(capsys, "template", "--out", out)
    assert code == 2 and "never written over" in err
    assert out.read_text() == "mine"
    code, _, err = run_cli(capsys, "template", "--out", tmp_path / "returns.csv")
    assert code == 2 and ".xlsx" in err


def test_template_carries_the_instruments_items_and_themes(tmp_path, capsys):
    from openpyxl import load_workbook

    inst = tmp_path / "instrument.yml"
    inst.write_text("scales:\n  s:\n    items: [a_1, a_2, a_3]\nthemes: [useful, boring]\n")
    out = tmp_path / "returns.xlsx"
    assert run_cli(capsys, "template", "--out", out, "--instrument", inst)[0] == 0
    wb = load_workbook(out)
    assert [c.value for c in wb["survey"][1]] == ["participant_id", "wave", "completed_on", "a_1", "a_2", "a_3"]
    fb = wb["feedback"]
    col = [c.value for c in fb[1]].index("theme") + 1
    letter = fb.cell(1, col).column_letter
    (dv,) = [d for d in fb.data_validations.dataValidation if str(d.sqref).startswith(f"{letter}2")]
    assert dv.formula1 == '"useful,boring"'


def test_data_dictionary_describes_every_rule():
    from isafe_helpers.publish.book import data_dictionary_markdown
    from isafe_helpers.publish.escape import html_text

    page = data_dictionary_markdown()
    for rule in (*C.READING_RULES, *C.VALUE_RULES, *C.CROSS_FILE_RULES, *C.REPORT_RULES):
        assert rule in page
    # each file's columns are an HTML table whose cells are escaped (so ">= 0" reads "&gt;= 0" in the source)
    for spec in SPECS.values():
        for f in spec.fields:
            assert html_text(f.rule()) in page
    assert ", ".join(f"`{t}`" for t in C.DEFAULT_THEMES) in page
    assert "template --out returns.xlsx" in page


# --------------------------------------------------------------------------
# End to end: the same estimates as the bundled data (tests/estimates_match.py)
# --------------------------------------------------------------------------
def run_and_compare(root: Path, out: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "run", "--data", root, "--out", out, "--no-book", "--jobs", "2"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    for fixture in sorted(FIXTURES.glob("*.csv")):
        changed = differences(out / fixture.stem / "estimates.csv", fixture)
        assert not changed, f"{fixture.stem}: estimates differ from the bundled fixture: {changed[:3]}"


@pytest.mark.slow
def test_messy_real_world_root_gives_the_bundled_estimates(tmp_path):
    """Every valid case of the issue at once, on the bundled data."""
    root = tmp_path / "root"
    shutil.copytree(BUNDLED_DATA, root)
    hidden_first_sheet(root)  # LA01 teams.xlsx
    formulas_with_results(root)  # LA01 costs.xlsx
    semicolons(root)  # LA02 survey
    utf16_tabs(root)  # LA02 participants
    df = read(root, "LA03/feedback.csv")  # Excel's Windows CSV, with a pound sign where no estimate shows it
    df.loc[df["comment"] != "", "comment"] += " (venue £120, ‘too cold’)"
    (root / "LA03/feedback.csv").write_bytes(df.to_csv(index=False, lineterminator="\r\n").encode("cp1252"))
    write(root, "LA04/teams.csv", read(root, "LA04/teams.csv").rename(columns={"team_id": "Team_ID", "arm": "ARM"}))
    (root / "LA04/participants.csv").rename(root / "LA04/participants.CSV")
    mac_and_lock_files(root)
    elsewhere = root / ".returns" / "LA05"  # links to folders outside the data root are refused (issue 26)
    elsewhere.parent.mkdir()
    shutil.move(root / "LA05", elsewhere)
    os.symlink(elsewhere, root / "LA05")
    to_workbook(root, "LA06/survey.csv")
    to_workbook(root, "LA07/attendance.csv")
    run_and_compare(root, tmp_path / "out")
    notes = json.loads((tmp_path / "out" / "run.json").read_text())["data_notes"]
    for said in (
        "LA01/teams.xlsx: hidden sheet(s) 'teams' not read (hidden sheets never are)",
        "LA02/survey.csv: read as CSV, encoding UTF-8, delimiter ';'",
        "LA02/participants.csv: read as CSV, encoding UTF-16, delimiter tab",
        "LA03/feedback.csv: read as CSV, encoding Windows-1252 (cp1252), delimiter ','",
        "LA04/teams.csv: header(s) matched without regard to case: 'Team_ID' as team_id, 'ARM' as arm",
    ):
        assert said in notes


@pytest.mark.slow
def test_bundled_data_round_trips_through_the_template_to_identical_estimates(tmp_path):
    from isafe_helpers.data.la_info import FILENAME as LA_INFO
    from isafe_helpers.data.template import write_template

    root = tmp_path / "root"
    shutil.copytree(BUNDLED_DATA, root)
    tpl = write_template(tmp_path / "template.xlsx")
    for la in sorted(p for p in root.iterdir() if p.is_dir()):
        named = (la / LA_INFO).is_file()  # the LA's name: a file beside the returns, not one of its tables
        fill_template(tpl, la)
        assert sorted(p.name for p in la.iterdir()) == sorted([C.RETURNS_WORKBOOK, *([LA_INFO] if named else [])])
    run_and_compare(root, tmp_path / "out")


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", *map(str, args)], capture_output=True, text=True, cwd=REPO, **kw
    )


@pytest.mark.slow
def test_changes_behind_a_linked_la_folder_rerun_the_pooled_scope(small_root, tmp_path):
    linked_la(small_root)
    out = tmp_path / "out"
    args = ("run", "--data", small_root, "--out", out, "--no-book", "--scope", "trial", "--strand", "cost")
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert cli(*args).stdout.count("unchanged") == 1
    target = small_root / ".returns" / "LA02" / "costs.csv"  # where linked_la keeps LA02's files
    df = read(target.parent.parent, "LA02/costs.csv")
    df.loc[0, "quantity"] = str(float(df.loc[0, "quantity"]) + 10)
    write(target.parent.parent, "LA02/costs.csv", df)
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "unchanged" not in again.stdout and "done" in again.stdout


@pytest.mark.slow
def test_a_rerun_after_kill_9_of_the_parent_succeeds_and_deletes_no_other_folder(small_root, tmp_path):
    import signal

    def snapshot(out: Path) -> dict[str, bytes]:
        return {
            p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.glob("*/*"))
            if p.suffix in (".ipynb", ".csv")
        }

    ref, out = tmp_path / "ref", tmp_path / "out"
    args = ["run", "--data", small_root, "--no-book", "--strand", "cost"]
    assert cli(*args, "--out", ref).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "isafe_helpers", *map(str, args), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not [p for p in (out / ".tmp").glob("*") if p.is_dir()]:
            time.sleep(0.1)
        working = [p for p in (out / ".tmp").glob("*") if p.is_dir()]
        assert working, "no worker started"
        os.kill(proc.pid, signal.SIGKILL)  # the parent only: its workers live on as orphans
        proc.wait()
        notes = out / ".tmp" / "user-notes"
        notes.mkdir()
        (notes / "keep.txt").write_text("keep")
        rerun = cli(*args, "--out", out, timeout=900)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert (notes / "keep.txt").read_text() == "keep"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphans this test made, and their kernels
        except ProcessLookupError:
            pass
    time.sleep(1)
    want = {k: v.replace(str(ref).encode(), str(out).encode()) for k, v in snapshot(ref).items()}
    assert snapshot(out) == want
