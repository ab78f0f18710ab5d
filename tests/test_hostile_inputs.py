"""Messy and hostile input files (issue 26): each is read as the contract promises or refused with the file,
the place and the rule (exit 2, no traceback), and none can take the validator past 60 s or 1 GB.

Each case builds its hostile file from the small valid root. The cases that once exhausted memory or time
run ``isafe validate`` in a subprocess under resource limits (address space 1 GB, 60 s of CPU time; 15 s
for the empty-cell workbook), so a regression fails here instead of exhausting the machine; no test asserts
a wall-clock duration.
"""

from __future__ import annotations

import codecs
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import read, write
from xlsx_kit import SheetSpec, data_offset, patch_directory, rewrite_part, typed_rows, write_workbook

from isafe_helpers.data import contract as C
from isafe_helpers.data.loading import load_root
from isafe_helpers.resources import SOURCES as REPO
from isafe_helpers.run.cli import main

SPECS = C.file_specs()
LIMIT_BYTES = 1024**3
LIMIT_CPU_SECONDS = 60


def validate(capsys, root: Path) -> tuple[int, str]:
    code = main(["validate", "--data", str(root)])
    return code, capsys.readouterr().err


def assert_refused(capsys, root, file, rule, row=None, column=None, value=None) -> str:
    """``validate`` exits 2 naming ``file`` and, on one line, the row, column, value and rule."""
    code, err = validate(capsys, root)
    assert code == 2, err
    assert "Traceback" not in err
    assert f"  {file}\n" in err, err
    lines = [ln for ln in err.splitlines() if rule in ln and (column is None or f"column {column}" in ln)]
    assert lines, err
    if row is not None:
        assert lines[0].strip().startswith(f"row {row},") or lines[0].strip().startswith(f"row {row}:"), lines[0]
    if value is not None:
        assert f"value {value!r}" in lines[0], lines[0]
    return err


def assert_same_data(a: Path, b: Path) -> None:
    da, db = load_root(a), load_root(b)
    for name in SPECS:
        pd.testing.assert_frame_equal(da.tables[name], db.tables[name], obj=name)


def validate_limited(root: Path, cpu_seconds: int = LIMIT_CPU_SECONDS) -> subprocess.CompletedProcess:
    """``isafe validate`` in a process limited to 1 GB of address space and ``cpu_seconds`` of CPU time."""

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))

    return subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "validate", "--data", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        preexec_fn=limited,
    )


def to_workbook(root: Path, rel: str, **kw) -> Path:
    name = Path(rel).stem
    rows = typed_rows(read(root, rel), SPECS[name])
    (root / rel).unlink()
    return write_workbook(root / Path(rel).with_suffix(".xlsx"), [SheetSpec(name, rows, **kw)])


# --------------------------------------------------------------------------
# Line endings and memory
# --------------------------------------------------------------------------
def test_a_cr_only_csv_as_old_mac_excel_writes_it_is_read(small_root, tmp_path, capsys):
    clean = tmp_path / "clean"
    shutil.copytree(small_root, clean)
    for rel in ("LA01/teams.csv", "LA01/survey.csv"):
        p = small_root / rel
        p.write_bytes(p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
    code, err = validate(capsys, small_root)
    assert code == 0, err
    assert_same_data(small_root, clean)


def test_mixed_line_endings_keep_every_row_number(small_root, capsys):
    p = small_root / "LA01/participants.csv"
    lines = p.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",fifty"  # spreadsheet row 5
    ends = ["\r", "\r\n", "\n"]
    p.write_bytes("".join(line + ends[i % 3] for i, line in enumerate(lines)).encode())
    assert_refused(capsys, small_root, "LA01/participants.csv", "must be a number", 5, "years_qualified", "fifty")


def test_carriage_returns_do_not_slip_past_the_size_bound(small_root):
    """A 46 KB teams.csv: a 1,000-column header ended by \\n, then 20,000 rows ended by \\r (took 1.07 GB)."""
    header = ["team_id", "arm", "team_type"] + [f"c{i}" for i in range(4, 1001)]
    p = small_root / "LA01/teams.csv"
    p.write_bytes((",".join(header) + "\n" + "x\r" * 20_000).encode())
    assert p.stat().st_size < 50_000
    res = validate_limited(small_root)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert "LA01/teams.csv\n    row 2, column arm: must not be blank" in res.stderr


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_wide_header_over_short_rows_is_not_padded(small_root, fmt):
    """A 1,000-column header over 20,000 rows of one value each (an 8.7 KB workbook took 1.2 GB): cells are
    counted as read, and only the contract's columns are kept."""
    teams = read(small_root, "LA01/teams.csv")
    header = list(teams.columns) + [f"note_{i}" for i in range(4, 1001)]
    rows = [list(r) for r in teams.itertuples(index=False)] + [[teams.loc[0, "team_id"]]] * 20_000
    (small_root / "LA01/teams.csv").unlink()
    if fmt == "csv":
        (small_root / "LA01/teams.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    else:
        write_workbook(small_root / "LA01/teams.xlsx", [SheetSpec("teams", [header, *rows])])
    assert (small_root / f"LA01/teams.{fmt}").stat().st_size < 200_000
    res = validate_limited(small_root)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert f"row {len(teams) + 2}, column arm: must not be blank" in res.stderr
    assert "unknown column(s) ignored: note_4, note_5" in res.stderr


# --------------------------------------------------------------------------
# Damaged and hand-made workbooks
# --------------------------------------------------------------------------
SHEET = "xl/worksheets/sheet1.xml"


def bad_crc(p: Path) -> None:
    patch_directory(p, SHEET, 16, b"\x00\x00\x00\x00")


def corrupt_deflate(p: Path) -> None:
    data = bytearray(p.read_bytes())
    at = data_offset(p, SHEET)
    data[at : at + 4] = b"\xff\xff\xff\xff"  # block type 3: reserved, never valid
    p.write_bytes(bytes(data))


def lying_size(p: Path) -> None:
    patch_directory(p, SHEET, 24, (40).to_bytes(4, "little"))  # 40 bytes uncompressed, it says


@pytest.mark.parametrize("damage", [bad_crc, corrupt_deflate, lying_size])
def test_a_damaged_workbook_is_refused_naming_the_part(damage, small_root, capsys):
    p = to_workbook(small_root, "LA01/teams.csv")
    damage(p)
    assert_refused(capsys, small_root, "LA01/teams.xlsx", f"is a damaged workbook: part {SHEET}")


def test_merged_cells_holding_a_value_are_refused_naming_the_sheet_and_range(small_root, capsys):
    parts = read(small_root, "LA01/participants.csv")
    parts.loc[0, "age_band"] = "30_39"
    parts.loc[1, "age_band"] = ""  # Excel keeps only the first cell of a merged range
    write(small_root, "LA01/participants.csv", parts)
    to_workbook(small_root, "LA01/participants.csv", merged=("D2:D3",))
    assert_refused(
        capsys,
        small_root,
        "LA01/participants.xlsx",
        "cells D2:D3 of sheet 'participants' are merged",
        2,
        "age_band",
        "30_39",
    )


def test_zero_height_rows_and_zero_width_columns_holding_data_are_hidden_data(small_root, capsys):
    to_workbook(small_root, "LA01/teams.csv", zero_height_rows=(3,), zero_width_cols=(3,))
    err = assert_refused(capsys, small_root, "LA01/teams.xlsx", "row is hidden and holds data", 3)
    assert "file, column team_type: column is hidden and holds data" in err


def test_a_row_written_twice_in_the_sheet_xml_is_refused(small_root, capsys):
    p = to_workbook(small_root, "LA01/teams.csv")

    def twice(xml: bytes) -> bytes:
        start = xml.index(b'<row r="3"')
        end = xml.index(b"</row>", start) + len(b"</row>")
        return xml[:end] + xml[start:end] + xml[end:]

    rewrite_part(p, SHEET, twice)
    assert_refused(capsys, small_root, "LA01/teams.xlsx", "row 3 is written twice in the sheet's XML", 3)


def test_six_million_empty_cells_are_read_quickly_in_little_memory(small_root):
    """A teams.xlsx whose sheet holds 6 million empty styled cells (took 24 s of CPU; now about 1 s).

    The process gets 15 s of CPU time: a resource limit, measured in CPU time so that a loaded machine does
    not fail it, with room for a slow one (the whole validation, interpreter start included, takes ~2 s)."""
    p = to_workbook(small_root, "LA01/teams.csv")
    empty_row = "".join(['<c s="1"/>'] * 16_384)

    def pad(xml: bytes) -> bytes:
        rows = "".join(f'<row r="{r}">{empty_row}</row>' for r in range(100, 100 + 367))
        return xml.replace(b"</sheetData>", rows.encode() + b"</sheetData>")

    rewrite_part(p, SHEET, pad)
    assert p.stat().st_size < 2_000_000
    res = validate_limited(small_root, cpu_seconds=15)
    assert res.returncode == 0, res.stderr[-2000:]


# --------------------------------------------------------------------------
# Links, encodings, and LA folders that are not what they say
# --------------------------------------------------------------------------
def test_a_link_to_a_folder_outside_the_data_root_is_refused_unread(small_root, tmp_path, capsys):
    outside = tmp_path / "outside"
    shutil.copytree(small_root / "LA02", outside)
    os.symlink(outside, small_root / "LA03")
    err = assert_refused(capsys, small_root, "LA03", "link to a folder outside the data root")
    assert str(outside.resolve()) in err
    assert "LA03/teams.csv" not in err  # not read


def test_a_link_to_a_system_folder_is_refused_in_little_time(small_root):
    os.symlink("/usr", small_root / "LA03")
    res = validate_limited(small_root)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "  LA03\n    file: link to a folder outside the data root (to /usr)" in res.stderr


def test_a_file_mixing_utf8_and_cp1252_is_refused_at_the_cp1252_row(small_root, capsys):
    costs = read(small_root, "LA01/costs.csv")
    costs.loc[0, "item"] = "Café hire"
    costs.loc[2, "item"] = "Café lunch"
    text = costs.to_csv(index=False, lineterminator="\n")
    head, rest = text.split("Café lunch")
    (small_root / "LA01/costs.csv").write_bytes(head.encode() + "Café lunch".encode("cp1252") + rest.encode())
    err = assert_refused(capsys, small_root, "LA01/costs.csv", "holds bytes that are not UTF-8", 4, "item")
    assert "Caf\\\\xe9 lunch" in err and "while row 2 ('Café hire') is UTF-8" in err


def test_a_byte_order_mark_inside_a_file_is_blamed_on_that_file(small_root, capsys):
    p = small_root / "LA01/teams.csv"
    lines = p.read_bytes().split(b"\n")
    lines[2] = codecs.BOM_UTF8 + lines[2]  # a second file pasted in from row 3
    p.write_bytes(b"\n".join(lines))
    err = assert_refused(capsys, small_root, "LA01/teams.csv", "byte-order mark (U+FEFF) inside the file", 3, "team_id")
    assert "participants.csv" not in err


def swap(root: Path) -> None:
    (root / "LA01").rename(root / "tmp")
    (root / "LA02").rename(root / "LA01")
    (root / "tmp").rename(root / "LA02")


def test_two_la_folders_swapped_are_refused(small_root, capsys):
    swap(small_root)
    team = read(small_root, "LA01/teams.csv").loc[0, "team_id"]
    assert team.startswith("LA02-")
    assert_refused(capsys, small_root, "LA01/teams.csv", "starts with the code of LA02, another LA", 2, "team_id", team)


def test_la_yml_naming_another_la_is_refused(small_root, capsys):
    (small_root / "LA01/la.yml").write_text(yaml.safe_dump({"name": "Northshire", "code": "LA02"}))
    (small_root / "LA02/la.yml").write_text(yaml.safe_dump({"name": "Southshire", "code": "LA02"}))
    assert_refused(
        capsys, small_root, "LA01/la.yml", "names LA LA02, but the file is in the folder LA01", None, "code", "LA02"
    )
    (small_root / "LA01/la.yml").write_text(yaml.safe_dump({"name": "Northshire", "code": "LA01"}))
    code, err = validate(capsys, small_root)
    assert code == 0, err


def test_runs_of_empty_cells_and_rows_keep_every_cell_in_its_place(tmp_path):
    from isafe_helpers.data.readers import Workbook

    def s(ref, text):
        r = f' r="{ref}"' if ref else ""
        return f'<c{r} t="inlineStr"><is><t>{text}</t></is></c>'

    rows = (
        f'<row r="1">{s("A1", "a")}{s("B1", "b")}{s("C1", "c")}</row>'
        '<row/><row s="1"></row>'  # rows 2 and 3, empty and without references
        '<row><c s="1"/><c s="1"/><c><v>5</v></c></row>'  # row 4: C4
        '<row r="7"><c r="A7" s="1"/><c s="1"/><c><v>6</v></c></row>'  # C7
        '<row><c r="B8" s="1"/><c><v>7</v></c><c/><c/><c r="X8" s="1"/></row>'  # C8
        '<row><c s="1"/><c s="1"/><c s="1"/></row><row r="10"><c r="A10"/></row>'
        '<row><c r="A11" s="1"/><c><v>8</v></c></row>'  # B11
    )
    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", [["x"]])])
    rewrite_part(p, SHEET, lambda xml: xml.replace(b'<row r="1"><c r="A1" t="s"><v>0</v></c></row>', rows.encode()))
    with Workbook(p) as wb:
        t = wb.read(wb.pick("w")[0])
    assert t.problems == []
    assert t.frame.to_dict("index") == {
        4: {"a": None, "b": None, "c": "5"},
        7: {"a": None, "b": None, "c": "6"},
        8: {"a": None, "b": None, "c": "7"},
        11: {"a": None, "b": "8", "c": None},
    }
