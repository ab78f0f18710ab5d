"""The return template: one workbook an LA fills in and sends as ``returns.xlsx``.

Generated from the contract, like the data dictionary page, so the two
cannot disagree:

- an ``instructions`` sheet: how to fill it in, the reading, value and
  cross-file rules, and every table's columns with their rules;
- one sheet per LA file of the contract, named like it, with the contract's
  columns as its header (frozen, bold). Every header cell carries an input
  message (the column's meaning and rule, shown when the cell is selected);
  every column's cells below it carry a validation: a dropdown for each
  vocabulary (arms, waves, roles, components, cost categories, themes ...)
  and for booleans, whole-number or decimal range checks for numbers (the
  contract's range, or its declared bound), a cross-column check where a
  number may not exceed another of its row, and a date check for dates.
  ID and text columns are formatted as text, so ``007`` stays ``007``;
  date columns show ``yyyy-mm-dd``.

The loader reads such a workbook placed in an LA folder as that LA's files
(:mod:`isafe_helpers.data.loading`); the ``instructions`` and ``lists``
sheets are never read. Excel limits a dropdown written in the validation
itself to 255 characters; a longer list is placed on a ``lists`` sheet and
referred to.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from isafe_helpers.data import contract as C
from isafe_helpers.data.contract import Field, Instrument
from isafe_helpers.outputs import atomic_write_bytes

#: Rows below the header that carry the validations (Excel's last row).
LAST_ROW = 1_048_576


#: How much of a table each instruction line describes.
NEED_WORDS = {"always": "required", "treatment": "required in an LA with a treatment team", "optional": "optional"}


def _plain(markdown: str) -> str:
    """Markdown rule text as plain text for a cell (backticks and emphasis dropped)."""
    return re.sub(r"[`*]", "", markdown)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def instructions(instrument: Instrument = C.DEFAULT_INSTRUMENT) -> list[tuple[str, tuple[str, ...]]]:
    """The instructions sheet's rows: (style, cells), style one of title, heading, text, columns."""
    rows: list[tuple[str, tuple[str, ...]]] = [
        ("title", ("ISAFE return template",)),
        ("heading", ("How to fill it in",)),
        (
            "text",
            ("- One sheet per table of the data contract. Keep each sheet's name and its header row as they are.",),
        ),
        ("text", ("- One row per record below the header; leave a cell blank when the value is missing.",)),
        (
            "text",
            (
                "- Select a header cell to see what its column holds and its rule; dropdowns and checks guard the cells.",
            ),
        ),
        ("text", ("- Type values, not formulas; do not hide rows, columns or sheets (hidden data is refused).",)),
        ("text", ("- Leave an optional table's sheet with its header only when you have nothing for it.",)),
        (
            "text",
            (
                f"- Save the workbook as {C.RETURNS_WORKBOOK} in your LA's folder of the data root "
                "(DATA_ROOT/<LA code>/returns.xlsx), then check it: python -m isafe_helpers validate --data DATA_ROOT",
            ),
        ),
    ]
    for title, rules in (
        ("How files are read", C.READING_RULES),
        ("Values", C.VALUE_RULES),
        ("Rules between tables", C.CROSS_FILE_RULES),
        ("Problems", C.REPORT_RULES),
    ):
        rows += [("heading", (title,)), *(("text", (f"- {_plain(r)}",)) for r in rules)]
    for spec in C.file_specs(instrument).values():
        rows.append(("heading", (f"Sheet {spec.name}",)))
        rows.append(("text", (f"{spec.description} ({NEED_WORDS[spec.required]}.)",)))
        if spec.unique:
            rows.append(("text", (f"Unique key within the sheet: {', '.join(spec.unique)}.",)))
        rows += [("text", (f"- {_plain(n)}",)) for n in spec.notes]
        rows.append(("columns", ("column", "type", "meaning", "rule")))
        rows += [("text", (f.name, f.dtype, f.description, _plain(f.rule()))) for f in spec.fields]
    rows.append(("heading", ("Feedback themes (the only values of the feedback sheet's theme column)",)))
    rows.append(("text", (", ".join(instrument.themes) or "(none: leave theme blank)",)))
    return rows


def _numbers(f: Field) -> tuple[str, str | None, str | None] | None:
    """(operator, formula1, formula2) of a number column's range check, or None without bounds."""
    lo = f.ge if f.ge is not None else None
    if f.gt is not None:
        lo = f.gt + 1 if f.dtype == "int" else f.gt
    hi = f.upper
    if lo is not None and hi is not None:
        return "between", f"{lo:g}", f"{hi:g}"
    if lo is not None:
        op = "greaterThan" if (f.gt is not None and f.dtype != "int") else "greaterThanOrEqual"
        return op, f"{lo:g}", None
    if hi is not None:
        return "lessThanOrEqual", f"{hi:g}", None
    return None


def _validation(f: Field, col: dict[str, str], lists) -> DataValidation:
    """The check on a column's data cells (the input message alone for free text)."""
    title = _cut(f.name, 32)
    prompt = _cut(f"{f.description}. {_plain(f.rule())}", 255)
    common = dict(
        allow_blank=True,
        showInputMessage=True,
        promptTitle=title,
        prompt=prompt,
        showErrorMessage=True,
        errorTitle=_cut(f"{f.name}: not allowed", 32),
        error=_cut(f"{f.name} must be: {_plain(f.rule())}", 255),
    )
    choices = f.allowed if f.allowed is not None else (("true", "false") if f.dtype == "bool" else None)
    if choices is not None:
        return DataValidation(type="list", formula1=lists(f.name, choices), **common)
    if f.dtype in ("int", "float"):
        kind = "whole" if f.dtype == "int" else "decimal"
        if f.at_most and f.at_most in col:
            me, other = f"{col[f.name]}2", f"{col[f.at_most]}2"
            rng = _numbers(f)
            conds = [f"ISNUMBER({me})", f"{me}<={other}"]
            if f.dtype == "int":
                conds.append(f"{me}=INT({me})")
            if rng and rng[0] == "between":
                conds += [f"{me}>={rng[1]}", f"{me}<={rng[2]}"]
            return DataValidation(type="custom", formula1=f"AND({','.join(conds)})", **common)
        rng = _numbers(f)
        if rng is not None:
            op, f1, f2 = rng
            return DataValidation(type=kind, operator=op, formula1=f1, formula2=f2, **common)
    if f.dtype == "date":
        return DataValidation(
            type="date", operator="between", formula1="DATE(1900,1,1)", formula2="DATE(2100,12,31)", **common
        )
    return DataValidation(**common)  # free text: the input message alone


def write_template(path: str | Path, instrument: Instrument = C.DEFAULT_INSTRUMENT) -> Path:
    """Write the return template to ``path`` (an ``.xlsx``; written beside and renamed into place).

    Parameters
    ----------
    path : path
        The workbook to write.
    instrument : Instrument
        Whose survey items and feedback themes the template carries.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    wb = Workbook()
    guide = wb.active
    guide.title = "instructions"
    bold = Font(bold=True)
    styles = {"title": Font(bold=True, size=14), "heading": Font(bold=True, size=12), "columns": bold}
    r = 0
    for style, cells in instructions(instrument):
        r += 1 + (style == "heading")  # a blank row before each heading
        for c, value in enumerate(cells, start=1):
            cell = guide.cell(r, c, value)
            if style in styles:
                cell.font = styles[style]
    for letter, width in zip("ABCD", (28, 10, 50, 90)):
        guide.column_dimensions[letter].width = width

    long_lists: dict[str, tuple[str, ...]] = {}

    def lists(name: str, choices: tuple[str, ...]) -> str:
        """A dropdown's source: the list itself, or its column of the ``lists`` sheet when too long."""
        literal = '"' + ",".join(choices) + '"'
        if len(literal) <= 255 and choices:
            return literal
        long_lists.setdefault(name, choices)
        letter = get_column_letter(list(long_lists).index(name) + 1)
        return f"lists!${letter}$2:${letter}${len(choices) + 1}"

    head_fill = PatternFill("solid", fgColor="DDEBF7")
    for spec in C.file_specs(instrument).values():
        ws = wb.create_sheet(spec.name)
        col = {f.name: get_column_letter(i) for i, f in enumerate(spec.fields, start=1)}
        ws.append(spec.columns)
        ws.freeze_panes = "A2"
        for i, f in enumerate(spec.fields, start=1):
            letter = col[f.name]
            cell = ws.cell(1, i)
            cell.font = bold
            cell.fill = head_fill
            cell.alignment = Alignment(horizontal="center")
            dim = ws.column_dimensions[letter]
            dim.width = max(12, len(f.name) + 4)
            if f.dtype == "str":
                dim.number_format = "@"
            elif f.dtype == "date":
                dim.number_format = "yyyy-mm-dd"
            header = DataValidation(
                showInputMessage=True,
                promptTitle=_cut(f.name, 32),
                prompt=_cut(
                    f"{f.description}. {NEED_WORDS[spec.required].capitalize()} table. {_plain(f.rule())}", 255
                ),
            )
            header.add(f"{letter}1")
            ws.add_data_validation(header)
            dv = _validation(f, col, lists)
            dv.add(f"{letter}2:{letter}{LAST_ROW}")
            ws.add_data_validation(dv)
    if long_lists:
        sheet = wb.create_sheet("lists")
        for c, (name, choices) in enumerate(long_lists.items(), start=1):
            sheet.cell(1, c, name).font = bold
            for r, v in enumerate(choices, start=2):
                sheet.cell(r, c, v)
    wb.active = 0
    buf = io.BytesIO()
    wb.save(buf)
    atomic_write_bytes(path, buf.getvalue())
    return path
