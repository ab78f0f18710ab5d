"""The readers: encodings, delimiters and workbooks as analysts' programs write them."""

from __future__ import annotations

import codecs
import datetime as dt
import zipfile
from pathlib import Path

import pytest
from xlsx_kit import Error, Formula, SheetSpec, write_workbook

from isafe_helpers.data.readers import Unreadable, Workbook, decode, read_text, sniff_delimiter

TEXT = "item,unit_cost_gbp\nVenue £120/day,120\nTrainer’s fee — “full day”,€50\n"


@pytest.mark.parametrize(
    "data, encoding",
    [
        (TEXT.encode("utf-8"), "UTF-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "UTF-8 with BOM"),
        (TEXT.encode("utf-16"), "UTF-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "UTF-16"),
        (TEXT.encode("utf-16-le"), "UTF-16-LE (no BOM)"),
        (TEXT.encode("utf-16-be"), "UTF-16-BE (no BOM)"),
        (TEXT.encode("cp1252"), "Windows-1252 (cp1252)"),
    ],
)
def test_encodings_are_detected_and_decoded_exactly(data, encoding):
    text, name = decode(data)
    assert (text, name) == (TEXT, encoding)


def test_bytes_windows_1252_leaves_undefined_are_read_as_latin_1():
    text, name = decode("Café".encode("latin-1") + b"\x81")
    assert (text, name) == ("Café\x81", "Latin-1")


def test_a_bad_byte_after_a_utf8_bom_is_refused():
    with pytest.raises(Unreadable, match="UTF-8 with BOM byte-order mark but byte 3"):
        decode(codecs.BOM_UTF8 + b"abc\xff")


@pytest.mark.parametrize(
    "header, delim",
    [
        ("team_id,arm", ","),
        ("team_id;arm", ";"),
        ("team_id\tarm", "\t"),
        ("Team_ID;ARM;team_type", ";"),
        ('"team_id";"arm, or not"', ";"),
        ("unknown", ","),
    ],
)
def test_the_delimiter_is_the_one_that_finds_the_columns(header, delim):
    assert sniff_delimiter(header, ["team_id", "arm", "team_type"]) == delim


def test_semicolons_with_decimal_commas_keep_the_comma_for_the_rule_to_reject(tmp_path):
    p = tmp_path / "costs.csv"
    p.write_text("item;quantity\nVenue;12,5\n")
    t = read_text(p, ["item", "quantity"])
    assert t.how == "CSV, encoding UTF-8, delimiter ';'" and not t.default
    assert t.frame.loc[2, "quantity"] == "12,5"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "file is empty"),
        (b"  \n\n", "file is empty"),
        (b"PK\x03\x04rest", "rename it to .xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "old Excel (.xls)"),
        (b"a,b\n1,\x002\n", "NUL bytes"),
    ],
)
def test_text_files_that_cannot_be_read_say_why(tmp_path, data, message):
    p = tmp_path / "teams.csv"
    p.write_bytes(data)
    with pytest.raises(Unreadable, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_text(p, ["a", "b"])


def test_a_row_longer_than_the_header_names_its_row(tmp_path):
    p = tmp_path / "teams.csv"
    p.write_text("team_id,arm\nT1,control\nT2,control,x\nT3,control\nT4,a,b,c\n")
    with pytest.raises(Unreadable) as info:
        read_text(p, ["team_id", "arm"])
    assert [(r, rule) for r, _, _, rule in info.value.cells] == [
        (3, "row has 3 cells but the header has 2: a stray delimiter?"),
        (5, "row has 4 cells but the header has 2: a stray delimiter?"),
    ]


def test_rows_keep_their_spreadsheet_numbers_when_blank_rows_are_dropped(tmp_path):
    p = tmp_path / "teams.csv"
    p.write_text("team_id,arm\n\nT1, control \n,\nT2,treatment\n")
    t = read_text(p, ["team_id", "arm"])
    assert t.frame.to_dict("index") == {
        3: {"team_id": "T1", "arm": "control"},
        5: {"team_id": "T2", "arm": "treatment"},
    }


# --------------------------------------------------------------------------
# Workbooks
# --------------------------------------------------------------------------
def test_a_workbook_as_excel_writes_it_reads_as_a_csv_export_would(tmp_path):
    rows = [
        ["id", "n", "x", "when", "flag", "f", "text_f", "blank"],
        ["007", 3, 2.5, dt.date(2023, 7, 6), True, Formula("1+2", 3), Formula('"a"&"b"', "ab"), None],
        ["008", 4.0, 0.1, dt.datetime(2023, 7, 6, 9, 30), False, None, None, None],
    ]
    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", rows)])
    with Workbook(p) as wb:
        sheet, notes = wb.pick("w")
        t = wb.read(sheet)
    assert notes == [] and t.problems == []
    assert list(t.frame.columns) == ["id", "n", "x", "when", "flag", "f", "text_f", "blank"]
    assert t.frame.loc[2].tolist() == ["007", "3", "2.5", "2023-07-06", "true", "3", "ab", None]
    assert t.frame.loc[3].tolist()[:5] == ["008", "4", "0.1", "2023-07-06 09:30:00", "false"]
    assert t.warnings == [
        "2 formula cell(s) read as the result the file stores (e.g. F2 =1+2 -> '3'); check they are up to date"
    ]


def test_1904_dates_are_read_in_their_calendar(tmp_path):
    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", [["when"], [dt.date(2023, 7, 6)]])], date1904=True)
    with Workbook(p) as wb:
        assert wb.read(wb.pick("w")[0]).frame.loc[2, "when"] == "2023-07-06"


def test_sheets_are_picked_by_name_then_as_the_only_visible_one(tmp_path):
    rows = [["a"], [1]]
    p = write_workbook(
        tmp_path / "w.xlsx",
        [
            SheetSpec("Old", rows, state="hidden"),
            SheetSpec("Secret", rows, state="veryHidden"),
            SheetSpec("Sheet1", rows),
        ],
    )
    with Workbook(p) as wb:
        sheet, notes = wb.pick("teams")
    assert sheet.name == "Sheet1"
    assert notes == ["hidden sheet(s) 'Old', 'Secret' not read (hidden sheets never are)"]
    p = write_workbook(tmp_path / "w2.xlsx", [SheetSpec("Notes", rows), SheetSpec(" Teams ", rows)])
    with Workbook(p) as wb:
        assert wb.pick("teams")[0].name == " Teams "
    p = write_workbook(tmp_path / "w3.xlsx", [SheetSpec("Only", rows, state="hidden")])
    with Workbook(p) as wb, pytest.raises(Unreadable, match="no visible sheet"):
        wb.pick("teams")


def test_the_header_is_the_first_row_holding_a_value(tmp_path):
    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", [["a", "b"], ["x", "y"]], first_row=3)])
    with Workbook(p) as wb:
        t = wb.read(wb.pick("w")[0])
    assert t.frame.to_dict("index") == {4: {"a": "x", "b": "y"}}
    assert t.warnings == ["the header was read from row 3, the first row holding a value"]


def test_hidden_data_formulas_without_results_and_errors_are_problems(tmp_path):
    rows = [["a", "b", "c"], [1, Formula("A2*2"), 3], [4, 5, Error("#N/A")], [7, 8, 9]]
    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", rows, hidden_rows=(4,), hidden_cols=(3,))])
    with Workbook(p) as wb:
        t = wb.read(wb.pick("w")[0])
    got = {(pr.row, pr.column, pr.value, pr.rule.split(":")[0]) for pr in t.problems}
    assert got == {
        (None, "c", None, "column is hidden and holds data"),
        (4, None, None, "row is hidden and holds data"),
        (2, "b", "=A2*2", "cell B2 is a formula and the file stores no result for it"),
        (3, "c", "#N/A", "cell C3 is an Excel error value"),
    }
    assert 4 not in t.frame.index


def test_empty_hidden_rows_and_styled_empty_cells_are_no_problem(tmp_path):
    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", [["a"], [1], [None], [2]], hidden_rows=(3, 9))])
    with Workbook(p) as wb:
        t = wb.read(wb.pick("w")[0])
    assert t.problems == [] and t.frame["a"].tolist() == ["1", "2"]


def test_files_that_are_not_workbooks_say_how_to_save_them(tmp_path):
    p = tmp_path / "teams.xlsx"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(Unreadable, match="password-protected"):
        Workbook(p)
    p.write_text("team_id,arm\n")
    with pytest.raises(Unreadable, match="not an .xlsx workbook"):
        Workbook(p)


def test_a_part_declaring_a_dtd_is_refused(tmp_path):
    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", [["a"], [1]])])
    q = tmp_path / "evil.xlsx"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(q, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"?>\n", b'?>\n<!DOCTYPE x [<!ENTITY a "aaaa">]>\n', 1)
            dst.writestr(item, data)
    with Workbook(q) as wb, pytest.raises(Unreadable, match="DTD"):
        wb.read(wb.pick("w")[0])


def test_a_part_over_the_size_bound_is_refused_unread(tmp_path, monkeypatch):
    import isafe_helpers.data.readers as R

    p = write_workbook(tmp_path / "w.xlsx", [SheetSpec("w", [["a"], *[[i] for i in range(2000)]])])
    monkeypatch.setattr(R, "MAX_PART_BYTES", 10_000)
    with Workbook(Path(p)) as wb, pytest.raises(Unreadable, match="uncompressed"):
        wb.read(wb.pick("w")[0])
