"""Write XLSX workbooks part by part, as Excel writes them, for the reader's tests.

openpyxl writes text as inline strings, never stores a formula's result and
asks for recalculation on opening; Excel writes a shared-strings table,
stores every formula's result and does not. These helpers write either way,
so the tests exercise what analysts really send.

A cell is a Python value: ``str`` (a shared string), ``int``/``float`` (a
number), ``bool``, ``datetime.date`` (a number with a date format),
``Formula(text, result)`` (``result`` None: none stored), ``Error("#N/A")``,
or None (no cell).
"""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import pandas as pd
from openpyxl.utils import get_column_letter

from isafe_helpers.data.contract import FileSpec


@dataclass(frozen=True)
class Formula:
    text: str
    result: object = None


@dataclass(frozen=True)
class Error:
    value: str


@dataclass
class SheetSpec:
    name: str
    rows: list[list]
    state: str = "visible"
    hidden_rows: tuple[int, ...] = ()
    hidden_cols: tuple[int, ...] = ()
    first_row: int = 1
    extra_cells: list[tuple[str, object]] = field(default_factory=list)  # ("XFD1048576", "x")
    merged: tuple[str, ...] = ()  # ("B2:B3",)
    zero_height_rows: tuple[int, ...] = ()  # ht="0", not flagged hidden
    zero_width_cols: tuple[int, ...] = ()  # width="0", not flagged hidden


NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
RNS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _serial(d: dt.date, date1904: bool) -> float:
    epoch = dt.datetime(1904, 1, 1) if date1904 else dt.datetime(1899, 12, 30)
    if not isinstance(d, dt.datetime):
        d = dt.datetime(d.year, d.month, d.day)
    return (d - epoch).total_seconds() / 86400


def write_workbook(path: Path, sheets: list[SheetSpec], date1904: bool = False, recalc: bool = False) -> Path:
    """A workbook as Excel writes it (``recalc``: flagged for recalculation on opening, as openpyxl writes it)."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def sst(s: str) -> int:
        if s not in index:
            index[s] = len(strings)
            strings.append(s)
        return index[s]

    def num(x) -> str:
        return repr(float(x)) if isinstance(x, float) and not float(x).is_integer() else str(int(x))

    def cell(ref: str, v) -> str:
        if v is None:
            return ""
        if isinstance(v, Formula):
            res = v.result
            f = f"<f>{escape(v.text)}</f>"
            if res is None:
                return f'<c r="{ref}">{f}</c>'
            if isinstance(res, str):
                return f'<c r="{ref}" t="str">{f}<v>{escape(res)}</v></c>'
            return f'<c r="{ref}">{f}<v>{num(res)}</v></c>'
        if isinstance(v, Error):
            return f'<c r="{ref}" t="e"><v>{escape(v.value)}</v></c>'
        if isinstance(v, bool):
            return f'<c r="{ref}" t="b"><v>{int(v)}</v></c>'
        if isinstance(v, (dt.date, dt.datetime)):
            return f'<c r="{ref}" s="1"><v>{num(_serial(v, date1904))}</v></c>'
        if isinstance(v, (int, float)):
            return f'<c r="{ref}"><v>{num(v)}</v></c>'
        return f'<c r="{ref}" t="s"><v>{sst(str(v))}</v></c>'

    parts: dict[str, str] = {}
    for k, sh in enumerate(sheets, start=1):
        rows_xml = []
        extra = {}
        for ref, v in sh.extra_cells:
            letters = "".join(ch for ch in ref if ch.isalpha())
            extra.setdefault(int(ref[len(letters) :]), []).append((ref, v))
        all_rows = {sh.first_row + i: r for i, r in enumerate(sh.rows)}
        for r in sorted(set(all_rows) | set(extra)):
            cells = [cell(f"{get_column_letter(c)}{r}", v) for c, v in enumerate(all_rows.get(r, []), start=1)]
            cells += [cell(ref, v) for ref, v in extra.get(r, [])]
            hidden = ' hidden="1"' if r in sh.hidden_rows else ""
            hidden += ' ht="0" customHeight="1"' if r in sh.zero_height_rows else ""
            rows_xml.append(f'<row r="{r}"{hidden}>{"".join(cells)}</row>')
        cols = "".join(f'<col min="{c}" max="{c}" width="0" hidden="1"/>' for c in sh.hidden_cols)
        cols += "".join(f'<col min="{c}" max="{c}" width="0" customWidth="1"/>' for c in sh.zero_width_cols)
        cols = f"<cols>{cols}</cols>" if cols else ""
        merged = "".join(f'<mergeCell ref="{ref}"/>' for ref in sh.merged)
        merged = f'<mergeCells count="{len(sh.merged)}">{merged}</mergeCells>' if merged else ""
        parts[f"xl/worksheets/sheet{k}.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {NS} {RNS}>'
            f"{cols}<sheetData>{''.join(rows_xml)}</sheetData>{merged}</worksheet>"
        )
    sheet_list = "".join(
        f'<sheet name="{escape(sh.name)}" sheetId="{k}"'
        + (f' state="{sh.state}"' if sh.state != "visible" else "")
        + f' r:id="rId{k}"/>'
        for k, sh in enumerate(sheets, start=1)
    )
    n = len(sheets)
    pr = ' date1904="1"' if date1904 else ""
    calc = ' fullCalcOnLoad="1"' if recalc else ""
    parts["xl/workbook.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook {NS} {RNS}>'
        f'<workbookPr{pr}/><sheets>{sheet_list}</sheets><calcPr calcId="191029"{calc}/></workbook>'
    )
    rels = "".join(
        f'<Relationship Id="rId{k}" Type="{REL}/worksheet" Target="worksheets/sheet{k}.xml"/>' for k in range(1, n + 1)
    )
    rels += f'<Relationship Id="rId{n + 1}" Type="{REL}/styles" Target="styles.xml"/>'
    rels += f'<Relationship Id="rId{n + 2}" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
    parts["xl/_rels/workbook.xml.rels"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>'
    )
    parts["xl/styles.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet {NS}>'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd"/></numFmts>'
        '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>'
    )
    sis = "".join(f'<si><t xml:space="preserve">{escape(s)}</t></si>' for s in strings)
    parts["xl/sharedStrings.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<sst {NS} count="{len(strings)}" uniqueCount="{len(strings)}">{sis}</sst>'
    )
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{k}.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for k in range(1, n + 1)
    )
    parts["[Content_Types].xml"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        f"{overrides}</Types>"
    )
    parts["_rels/.rels"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return path


def typed_rows(df: pd.DataFrame, spec: FileSpec) -> list[list]:
    """A CSV table's rows as an analyst types them in Excel: numbers as numbers, dates as dates, the rest as text.

    The header is the first row. Blank cells are None.
    """
    kinds = {f.name: f.dtype for f in spec.fields}
    out: list[list] = [list(df.columns)]
    for rec in df.itertuples(index=False):
        row = []
        for col, v in zip(df.columns, rec):
            kind = kinds.get(col, "str")
            if v is None or v == "" or (isinstance(v, float) and v != v):
                row.append(None)
            elif kind == "int":
                row.append(int(float(v)))
            elif kind == "float":
                row.append(float(v))
            elif kind == "date":
                row.append(dt.date.fromisoformat(v))
            elif kind == "bool":
                row.append(v.lower() in ("true", "1", "yes"))
            else:
                row.append(str(v))
        out.append(row)
    return out


def rewrite_part(path: Path, part: str, fn) -> Path:
    """Rewrite one part of a workbook in place: ``fn`` takes and returns its bytes (a hand-made or damaged file)."""
    with zipfile.ZipFile(path) as z:
        items = [(info, z.read(info.filename)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in items:
            z.writestr(info.filename, fn(data) if info.filename == part else data)
    return path


def patch_directory(path: Path, part: str, offset: int, value: bytes) -> Path:
    """Overwrite ``value`` at ``offset`` of ``part``'s central-directory entry (its CRC at 16, its sizes at 20 and 24)."""
    data = bytearray(path.read_bytes())
    name = part.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        n = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + n] == name:
            data[at + offset : at + offset + len(value)] = value
            path.write_bytes(bytes(data))
            return path
        at = data.find(b"PK\x01\x02", at + 46)
    raise KeyError(part)


def data_offset(path: Path, part: str) -> int:
    """Where ``part``'s compressed bytes start in the archive."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(part)
    data = path.read_bytes()
    at = info.header_offset
    n, extra = int.from_bytes(data[at + 26 : at + 28], "little"), int.from_bytes(data[at + 28 : at + 30], "little")
    return at + 30 + n + extra
