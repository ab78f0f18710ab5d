"""Read one input file, or one sheet of a workbook, as text cells.

Every reader returns a :class:`RawTable`: the cells as stripped text (blank
is missing), the header as found in the file, the index the row number a
spreadsheet shows (the header's row is 1 in a CSV), a line saying how the
file was read, warnings, and problems found while reading (a cell the
reader will not guess at). A file that cannot be read at all raises
:class:`Unreadable`. Nothing is repaired silently.

Text files (CSV)
    The encoding is detected, not guessed per cell: a byte-order mark
    (UTF-8, UTF-16) decides; else NUL bytes in every other position mean
    UTF-16 without a mark; else the bytes must decode as UTF-8; else they
    are read as Windows-1252 (cp1252, what Excel's "CSV" writes on Windows),
    and as Latin-1 only when they hold a byte cp1252 leaves undefined.
    charset-normalizer is not used: on short cp1252 returns (a cost item
    with a pound sign, an accented name) its best guesses were cp932, cp1250
    and cp1125 (measured), where these rules are exact for the files Excel
    writes. The delimiter (``,``, ``;`` or tab) is the one that splits the
    header into the most of the file's expected column names. Both are
    named in how the file was read. Bytes that are not UTF-8 beside UTF-8
    sequences mean two encodings in one file (two exports pasted together):
    each cell holding them is a problem, never read as garbled text; so is
    a byte-order mark inside the file. Lines may end in ``\r\n``, ``\n``
    or a lone ``\r`` (old Mac Excel), mixed; rows are parsed one at a time
    by the standard library's ``csv`` module, counted as read (a short row
    is never padded to the header's width), and only the contract's
    columns are kept.

Spreadsheets (XLSX)
    The workbook is read by a streaming XML parser (the standard library's
    expat, which bounds entity expansion; a part declaring a DTD is
    refused) over the zip archive, with openpyxl's number-format rules for
    dates. openpyxl's own read-only reader was measured on the memory bomb
    (a 5 KB sheet with one stray cell at XFD1048576): it streams, but pads
    every row to the 16,384 columns that cell sets and then pandas holds
    them all (the 24 GB crash), and in read-only mode it exposes neither
    hidden rows and columns nor a formula's stored result beside the
    formula. This reader keeps only cells that hold a value, sparsely:

    - the header is the first row holding a value; a cell holding data in a
      column with no header is a problem (the stray cell of the bomb is
      refused this way, in well under a second);
    - a hidden row or column holding data is a problem, never read; a row
      under 1 point high or a column under half a character wide (zero
      height or width: hidden in all but name) counts as hidden, as do rows
      or columns the sheet hides by default (``zeroHeight``);
    - merged cells holding a value are a problem naming the sheet and
      range (only the first cell holds the value; the others would read as
      blank); a row or cell written twice in the XML is a problem (one would
      hide the other);
    - a damaged archive (a bad CRC, corrupt deflate data, sizes that lie) is
      refused naming the part, never a ``BadZipFile`` or ``zlib`` traceback;
    - runs of empty (styled) cells and rows are replaced, on the bytes and
      in C, by one element that moves the position as the run did, so six
      million empty cells cost about a second, not 24;
    - a formula is a problem unless the file stores its result, which is
      then read, with a warning; a workbook that asks to be recalculated on
      opening (``fullCalcOnLoad``, written by programs that do not compute
      formulas and store 0 or nothing) has no trustworthy results, so every
      formula in it is a problem;
    - an Excel error value (``#N/A``, ``#DIV/0!``) is a problem;
    - a part of the archive over the contract's ``MAX_PART_BYTES``
      uncompressed, more than ``MAX_CELLS`` cells holding values, or a
      header wider than ``MAX_COLUMNS`` columns is refused before it is read
      whole (a text file likewise, from its size and its count of lines).

    Date cells become ``YYYY-MM-DD`` (with the time if it is not midnight,
    which the date rule then rejects), whole numbers lose the ``.0`` a
    float carries, booleans become ``true``/``false``, and text is kept as
    typed, as a CSV export would hold them.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

import pandas as pd
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils.cell import column_index_from_string, get_column_letter
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

from isafe_helpers.data.contract import MAX_CELLS, MAX_COLUMNS, MAX_PART_BYTES

#: How a file read the default way is described (no line in the notes).
DEFAULT_TEXT = ("UTF-8", ",")


DELIMITERS = {",": "','", ";": "';'", "\t": "tab"}


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One violation of the data contract.

    ``row`` is the line number in the file as a spreadsheet shows it (the
    header is row 1), or ``None`` for a problem of the whole file or column.
    ``where`` adds detail that is not part of the rule (other places holding
    the same value), so that reports can group problems by their rule.
    """

    file: str
    row: int | None
    column: str | None
    value: str | None
    rule: str
    where: str | None = None

    def detail(self) -> str:
        """Where and what, without the file: ``row 2, column arm, value 'x': rule``."""
        where = f"row {self.row}" if self.row is not None else "file"
        col = f", column {self.column}" if self.column else ""
        val = f", value {self.value!r}" if self.value is not None else ""
        more = f"; {self.where}" if self.where else ""
        return f"{where}{col}{val}: {self.rule}{more}"

    def __str__(self) -> str:
        return f"{self.file}: {self.detail()}"


class Unreadable(Exception):
    """A file that cannot be read at all; ``problems`` say why (file-level, or the rows at fault)."""

    def __init__(self, rule: str, problems: list[tuple[int | None, str | None, str | None, str]] | None = None):
        self.rule = rule
        self.cells = problems or [(None, None, None, rule)]
        super().__init__(rule)

    def problems(self, label: str) -> list[Problem]:
        return [Problem(label, r, c, v, rule) for r, c, v, rule in self.cells]


@dataclass
class RawTable:
    """One file's cells as text, before any contract rule is applied."""

    frame: pd.DataFrame
    how: str
    default: bool = True
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Every named column of the header, as found (the frame may keep only the contract's columns).
    header: list[str] | None = None

    def __post_init__(self) -> None:
        if self.header is None:
            self.header = [str(c) for c in self.frame.columns]


# --------------------------------------------------------------------------
# Text files
# --------------------------------------------------------------------------
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def decode(data: bytes) -> tuple[str, str]:
    """Decode a text file's bytes; return the text and the encoding's name (see the module docstring)."""
    for bom, codec, name in (
        (codecs.BOM_UTF8, "utf-8", "UTF-8 with BOM"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
        (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec), name
            except UnicodeDecodeError as exc:
                raise Unreadable(f"starts with a {name} byte-order mark but byte {exc.start} is not {name}") from None
    sample = data[:65536]
    if len(sample) >= 4 and sample.count(0) * 3 >= len(sample):
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        codec = "utf-16-le" if odd > even else "utf-16-be"
        try:
            return data.decode(codec), f"{codec.upper()} (no BOM)"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252 (cp1252)"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1"


def _norm(name: str) -> str:
    return name.strip().lower()


def sniff_delimiter(header_line: str, expected: tuple[str, ...] | list[str]) -> str:
    """The delimiter (``,``, ``;`` or tab) that splits the header into the most expected column names.

    Ties go to the one giving more fields, then to the comma.

    >>> sniff_delimiter("team_id;arm;team_type", ["team_id", "arm"])
    ';'
    """
    want = {_norm(e) for e in expected}
    best, score = ",", (-1, -1)
    for delim in DELIMITERS:
        fields = next(csv.reader([header_line], delimiter=delim), [])
        s = (sum(_norm(f) in want for f in fields), len(fields))
        if s > score:
            best, score = delim, s
    return best


#: Valid UTF-8 sequences of two to four bytes: found in a file that is not UTF-8, they mean mixed encodings.
_UTF8_SEQ = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")

_BOM = "\ufeff"

#: One line with its ending, whatever it is (the csv module reads quoted line breaks across lines).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def count_lines(data: bytes) -> int:
    r"""The lines of a text file, whatever ends them: ``\r\n``, ``\n`` or a lone ``\r`` (old Mac Excel).

    >>> count_lines(b"a\r\nb\rc\nd"), count_lines(b"a\r\r\r")
    (4, 4)
    """
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n") + 1


def _shown(value: str) -> str:
    """A cell's text with any byte that is not UTF-8 shown as ``\\xe9``."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _too_many(lines: int, row: int) -> Unreadable:
    return Unreadable(
        f"about {lines:,} rows holding more than the {MAX_CELLS:,} cells the handbook reads from one file "
        f"(counted as read, up to row {row:,}): check it is the right file"
    )


def read_text(path: Path, expected: tuple[str, ...] | list[str] = ()) -> RawTable:
    """Read a CSV file (any encoding, delimiter and line ending of the module docstring) as text cells.

    Rows are parsed one at a time; only the columns named in ``expected``
    (all, when it is empty) are kept, and cells are counted as read: the
    fields each row holds, and the kept cells of each row holding a value,
    each at most the contract's ``MAX_CELLS``. A short row is never padded
    to the header's width, so memory follows what the file holds.

    Raises
    ------
    Unreadable
        Empty, too large, binary, a workbook with a ``.csv`` name, rows
        longer than the header, cells in two encodings, or a byte-order mark
        inside the file.
    """
    size = path.stat().st_size
    if size > MAX_PART_BYTES:
        raise Unreadable(
            f"file is {size / 2**20:,.0f} MB; the handbook reads files up to {MAX_PART_BYTES / 2**20:,.0f} MB "
            "(an LA's return is a few MB): check it is the right file"
        )
    data = path.read_bytes()
    if data.startswith(b"PK\x03\x04"):
        raise Unreadable("is a spreadsheet (XLSX) with a .csv name: rename it to .xlsx, or save it as CSV")
    if data.startswith(_OLE):
        raise Unreadable("is an old Excel (.xls) or a password-protected workbook: save it as .xlsx or CSV")
    lines = count_lines(data)
    if lines > MAX_CELLS:  # refused before it is decoded or parsed: a row holding a value is at least a cell
        raise _too_many(lines, lines)
    text, encoding = decode(data)
    mixed = encoding in ("Windows-1252 (cp1252)", "Latin-1") and _UTF8_SEQ.search(data) is not None
    if mixed:  # read as UTF-8, the bytes that are not shown where they are
        text = data.decode("utf-8", "surrogateescape")
    del data
    if not text.strip():
        raise Unreadable("file is empty")
    if "\x00" in text:
        raise Unreadable("holds NUL bytes: it is not a text file (save it as CSV or .xlsx)")
    first = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    delim = sniff_delimiter(first, expected)
    has_bom = _BOM in text
    # lines handed over one at a time: io.StringIO would copy the text at four bytes a character
    reader = csv.reader((m.group() for m in _LINE.finditer(text)), delimiter=delim, strict=False)
    bad: list[tuple[int | None, str | None, str | None, str]] = []
    odd: list[tuple[int | None, str | None, str | None, str]] = []  # bytes or marks that do not belong
    first_utf8: tuple[int, str] | None = None

    def check(row_no: int, row: list[str], names: list[str]) -> None:
        nonlocal first_utf8
        for i, v in enumerate(row):
            if has_bom and _BOM in v:
                odd.append(
                    (
                        row_no,
                        names[i] if i < len(names) and names[i] else f"({get_column_letter(i + 1)})",
                        v.replace(_BOM, "<U+FEFF>").strip(),
                        "holds a byte-order mark (U+FEFF) inside the file, where a file starts: were two files "
                        "pasted together? Delete the mark (and any second header) and save the file again",
                    )
                )
            if mixed:
                shown = _shown(v)
                if shown != v:
                    odd.append(
                        (
                            row_no,
                            names[i] if i < len(names) and names[i] else f"({get_column_letter(i + 1)})",
                            shown.strip(),
                            "MIXED",
                        )
                    )
                elif first_utf8 is None and not v.isascii():
                    first_utf8 = (row_no, v.strip())

    try:
        header = next(reader, None)
        if header is None:
            raise Unreadable("file is empty")
        n_fields = len(header)
        if n_fields > MAX_COLUMNS:
            raise Unreadable(f"the header has {n_fields:,} columns; the handbook reads at most {MAX_COLUMNS:,}")
        names = [h.strip() for h in header]
        check(1, header, names)
        want = {_norm(e) for e in expected}
        keep = [i for i, h in enumerate(names) if h and (not want or _norm(h) in want)]
        unnamed = [i for i, h in enumerate(names) if not h]
        stray: dict[int, tuple[int, str]] = {}  # blank-header column -> its first value
        body: list[list[str | None]] = []
        index: list[int] = []
        read = stored = n_fields
        for row_no, row in enumerate(reader, start=2):
            if not row:
                continue
            read += len(row)
            if len(row) > n_fields:
                bad.append(
                    (row_no, None, None, f"row has {len(row)} cells but the header has {n_fields}: a stray delimiter?")
                )
                continue
            if not any(v.strip() for v in row):
                continue
            stored += len(keep)
            if read > MAX_CELLS or stored > MAX_CELLS:
                raise _too_many(lines, row_no)
            if has_bom or mixed:
                check(row_no, row, names)
            for i in unnamed:
                if i < len(row) and i not in stray and row[i].strip():
                    stray[i] = (row_no, row[i].strip())
            body.append([(row[i].strip() or None) if i < len(row) else None for i in keep])
            index.append(row_no)
    except csv.Error as exc:
        raise Unreadable(f"cannot be read as CSV: {exc} (near line {reader.line_num:,})") from None
    if bad:
        raise Unreadable("rows longer than the header", bad)
    if odd:
        if mixed:
            where = f"row {first_utf8[0]} ({first_utf8[1]!r}) is UTF-8" if first_utf8 else "other cells are UTF-8"
            odd = [
                (
                    r,
                    c,
                    v,
                    f"holds bytes that are not UTF-8 (shown as \\x..), while {where}: the file mixes two "
                    "encodings (part saved as CSV UTF-8, part as Excel's Windows CSV), so some text would be "
                    "garbled; correct these cells and save the whole file again as CSV UTF-8"
                    if rule == "MIXED"
                    else rule,
                )
                for r, c, v, rule in odd
            ]
        raise Unreadable("holds text that cannot be read as it was typed", odd)
    frame = pd.DataFrame(body, index=pd.Index(index, dtype="int64"), columns=[names[i] for i in keep], dtype=object)
    problems = [
        Problem(
            "",
            r,
            f"({get_column_letter(i + 1)})",
            v,
            "a column with a blank header holds data: give it a header, or delete it",
        )
        for i, (r, v) in sorted(stray.items())
    ]
    how = f"CSV, encoding {encoding}, delimiter {DELIMITERS[delim]}"
    header_found = [h for h in names if h]
    return RawTable(frame, how, (encoding.split(" ")[0], delim) == DEFAULT_TEXT, [], problems, header_found)


# --------------------------------------------------------------------------
# Workbooks
# --------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(el: ET.Element, name: str) -> str | None:
    """An attribute by local name, whatever its namespace."""
    for k, v in el.attrib.items():
        if _local(k) == name:
            return v
    return None


def _text_of(el: ET.Element) -> str:
    """The text of a shared or inline string (rich-text runs joined; phonetic runs left out)."""
    parts = []
    for child in el:
        tag = _local(child.tag)
        if tag == "t":
            parts.append(child.text or "")
        elif tag == "r":
            parts += [t.text or "" for t in child if _local(t.tag) == "t"]
    return "".join(parts)


@dataclass(frozen=True)
class Sheet:
    name: str
    state: str  # visible | hidden | veryHidden
    part: str | None  # the worksheet's part in the archive (None for a chart sheet)

    @property
    def visible(self) -> bool:
        return self.state == "visible" and self.part is not None


_CELL_REF = re.compile(r"([A-Za-z]{1,3})(\d+)")

#: What reading a damaged archive raises: a bad CRC, corrupt deflate data, sizes that lie, an unknown method.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError)


def _damaged(part: str, exc: BaseException) -> Unreadable:
    return Unreadable(
        f"is a damaged workbook: part {part} cannot be unpacked ({type(exc).__name__}: {exc}): open it in Excel "
        "and save it again, or send it again"
    )


#: The most cells a row can hold (Excel's last column is XFD, the 16,384th).
_MAX_ROW_CELLS = 16_384


def _thin(size: str | None, least: float) -> bool:
    """A row height or column width too small to see (under ``least``)."""
    try:
        return size is not None and float(size) < least
    except ValueError:
        return False


def _hidden(flag: str | None, size: str | None, least: float, default: bool) -> bool:
    """A row or column is hidden when flagged so, when too thin to see, or by the sheet's default."""
    if flag is not None and flag.lower() in ("1", "true"):
        return True
    if size is not None:
        return _thin(size, least)
    return default


#: Attributes as spreadsheet programs write them (one space, double quotes); other spellings take the slow path.
_ATTRS = rb'(?: [\w:.-]+="[^"<>]*")*'
_EMPTY_CELL = rb"<c" + _ATTRS + rb"/>"
_EMPTY_ROW = rb"<row" + _ATTRS + rb"(?:/>|>(?:" + _EMPTY_CELL + rb")*</row>)"
#: A run of empty cells, or of rows holding only empty cells (unprefixed, as spreadsheets write them).
_EMPTY_RUN = re.compile(rb"(?:" + _EMPTY_CELL + rb")+|(?:" + _EMPTY_ROW + rb")+")
_REF_AT = re.compile(rb' r="([^"<>]*)"')


def _one_for_run(m: re.Match) -> bytes:
    """A run of empty rows or cells as one element that moves the position as the run did.

    ``<c r="C5" _skip="2"/>`` stands for cells up to E5; without ``r``, for
    ``_skip`` + 1 cells after the last one read. Rows likewise. (No ``<``
    is inside an attribute, so each ``<c`` or ``<row`` of a run starts one.)
    """
    run = m.group(0)
    tag = b"<row" if run.startswith(b"<row") else b"<c"
    if tag == b"<c":
        at = run.rfind(b' r="')
    else:  # the last row whose tag has a reference (its cells' references are not the row's)
        at, end = -1, len(run)
        while at < 0 and end > 0:
            start = run.rfind(b"<row", 0, end)
            at, end = run.find(b' r="', start, run.index(b">", start)), start
    if at < 0:
        return tag + b' _skip="%d"/>' % (run.count(tag) - 1)
    ref = _REF_AT.match(run, at)
    assert ref is not None  # an attribute of the run's pattern
    return tag + b' r="%s" _skip="%d"/>' % (ref.group(1), run.count(tag, ref.end()))


class _Sparse:
    """A worksheet part read with each run of empty cells or rows given as one element (see ``_one_for_run``).

    Styled empty cells cost the parser as much as full ones: six million of
    them (a 1.5 MB file) took 24 s one element at a time. The runs are found
    by a regular expression on the bytes, in C; a part holding CDATA (which
    no spreadsheet writes) is passed through unchanged from there on.
    """

    def __init__(self, fh):
        self._fh = fh
        self._carry = b""
        self._plain = False

    def read(self, n: int = 65536) -> bytes:
        while True:
            chunk = self._fh.read(max(n, 65536))
            data = self._carry + chunk
            if not chunk:
                self._carry = b""
                return data if self._plain else _EMPTY_RUN.sub(_one_for_run, data)
            if self._plain or b"<![CDATA[" in data:
                self._plain, self._carry = True, b""
                return data
            cut = data.rfind(b"<")  # an element cut off by the chunk is kept for the next
            if cut < 0 or data.find(b">", cut) >= 0:
                cut = len(data)
            elif len(data) - cut > 1 << 20:  # no spreadsheet writes a tag this long: read it as it comes
                self._plain, self._carry = True, b""
                return data
            self._carry = data[cut:]
            out = _EMPTY_RUN.sub(_one_for_run, data[:cut])
            if out:
                return out

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> _Sparse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Part:
    """One part of the archive, read as a stream; damage found while unpacking it is :class:`Unreadable`."""

    def __init__(self, zf: zipfile.ZipFile, part: str):
        self.part = part
        try:
            self._fh = zf.open(part)
        except _DAMAGE as exc:
            raise _damaged(part, exc) from None

    def read(self, n: int = -1) -> bytes:
        try:
            return self._fh.read(n)
        except _DAMAGE as exc:
            raise _damaged(self.part, exc) from None

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> _Part:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Workbook:
    """An XLSX workbook opened for streaming reads (see the module docstring).

    Raises
    ------
    Unreadable
        Not a workbook (an old ``.xls``, a password-protected file, a damaged
        archive), or a part over the bounds.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            head = fh.read(8)
        if head.startswith(_OLE):
            raise Unreadable(
                "is an old Excel (.xls) or a password-protected workbook: save it as .xlsx without a password"
            )
        try:
            self.zip = zipfile.ZipFile(self.path)
        except _DAMAGE as exc:
            raise Unreadable(f"is not an .xlsx workbook ({exc}): save it from Excel as .xlsx, or as CSV") from None
        self._strings: list[str] | None = None
        rels = self._rels("xl/workbook.xml")
        self.sheets: list[Sheet] = []
        self.date1904 = False
        self.recalc_on_open = False
        self._strings_part = self._styles_part = None
        for rel_type, target in rels.values():
            if rel_type == "sharedStrings":
                self._strings_part = target
            elif rel_type == "styles":
                self._styles_part = target
        for el in self._parse_small("xl/workbook.xml"):
            tag = _local(el.tag)
            if tag == "sheet":
                rel = rels.get(_attr(el, "id") or "")
                part = rel[1] if rel and rel[0] == "worksheet" else None
                self.sheets.append(Sheet(el.get("name", ""), el.get("state", "visible"), part))
            elif tag == "workbookPr":
                self.date1904 = el.get("date1904", "0").lower() in ("1", "true")
            elif tag == "calcPr":
                self.recalc_on_open = el.get("fullCalcOnLoad", "0").lower() in ("1", "true")
        self._date_styles = self._read_date_styles()

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parts of the archive ---------------------------------------------
    def _open(self, part: str):
        try:
            info = self.zip.getinfo(part)
        except KeyError:
            raise Unreadable(f"is a damaged workbook: part {part} is missing") from None
        if info.file_size > MAX_PART_BYTES:
            raise Unreadable(
                f"part {part} is {info.file_size / 2**20:,.0f} MB uncompressed; the handbook reads parts up to "
                f"{MAX_PART_BYTES / 2**20:,.0f} MB: check it is the right file"
            )
        with _Part(self.zip, part) as fh:
            if b"<!DOCTYPE" in fh.read(4096).upper():
                raise Unreadable(f"part {part} declares a DTD, which no workbook does: refused")
        return _Part(self.zip, part)

    def _parse_small(self, part: str) -> list[ET.Element]:
        with self._open(part) as fh:
            try:
                return list(ET.parse(fh).getroot().iter())
            except ET.ParseError as exc:
                raise Unreadable(f"is a damaged workbook: {part}: {exc}") from None

    def _rels(self, part: str) -> dict[str, tuple[str, str]]:
        """Relationship id -> (type's last word, target part) of ``part``."""
        p = PurePosixPath(part)
        rels_part = str(p.parent / "_rels" / f"{p.name}.rels")
        if rels_part not in self.zip.namelist():
            raise Unreadable("is not an .xlsx workbook (no workbook part): save it from Excel as .xlsx")
        out = {}
        for el in self._parse_small(rels_part):
            if _local(el.tag) == "Relationship":
                target = el.get("Target", "")
                if target.startswith("/"):
                    full = target.lstrip("/")
                else:
                    parts: list[str] = []
                    for seg in (p.parent / target).parts:
                        if seg == "..":
                            parts and parts.pop()
                        elif seg != ".":
                            parts.append(seg)
                    full = "/".join(parts)
                out[el.get("Id", "")] = (el.get("Type", "").rsplit("/", 1)[-1], full)
        return out

    def _read_date_styles(self) -> set[int]:
        """Indices of the cell formats that show a number as a date or time."""
        if not self._styles_part:
            return set()
        custom: dict[int, str] = {}
        xfs: list[int] = []
        in_cell_xfs = False
        with self._open(self._styles_part) as fh:
            try:
                for event, el in ET.iterparse(fh, events=("start", "end")):
                    tag = _local(el.tag)
                    if tag == "cellXfs":
                        in_cell_xfs = event == "start"
                    elif event == "end" and tag == "numFmt":
                        custom[int(el.get("numFmtId", "0"))] = el.get("formatCode", "")
                    elif event == "end" and tag == "xf" and in_cell_xfs:
                        xfs.append(int(el.get("numFmtId", "0")))
            except (ET.ParseError, ValueError) as exc:
                raise Unreadable(f"is a damaged workbook: styles: {exc}") from None

        def is_date(fmt_id: int) -> bool:
            code = custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id))
            if code is None:
                return 27 <= fmt_id <= 36 or 50 <= fmt_id <= 58  # East Asian built-in date formats
            return is_date_format(code)

        return {i for i, fmt_id in enumerate(xfs) if is_date(fmt_id)}

    def _shared_strings(self) -> list[str]:
        if self._strings is None:
            self._strings = []
            if self._strings_part:
                with self._open(self._strings_part) as fh:
                    try:
                        for _, el in ET.iterparse(fh, events=("end",)):
                            if _local(el.tag) == "si":
                                self._strings.append(_text_of(el))
                                el.clear()
                                if len(self._strings) > MAX_CELLS:
                                    raise Unreadable(f"holds more than {MAX_CELLS:,} distinct texts: refused")
                    except ET.ParseError as exc:
                        raise Unreadable(f"is a damaged workbook: shared strings: {exc}") from None
        return self._strings

    # -- sheets -------------------------------------------------------------
    @property
    def visible(self) -> list[Sheet]:
        return [s for s in self.sheets if s.visible]

    @property
    def hidden(self) -> list[Sheet]:
        return [s for s in self.sheets if s.state != "visible" and s.part is not None]

    def pick(self, name: str) -> tuple[Sheet, list[str]]:
        """The sheet to read for file ``name``: the visible one named like it, or the only visible sheet.

        Returns the sheet and warnings (hidden sheets left unread).

        Raises
        ------
        Unreadable
            No visible sheet, or several with none named ``name``.
        """
        notes = []
        if self.hidden:
            names = ", ".join(repr(s.name) for s in self.hidden)
            notes.append(f"hidden sheet(s) {names} not read (hidden sheets never are)")
        named = [s for s in self.visible if _norm(s.name) == name]
        if named:
            return named[0], notes
        if len(self.visible) == 1:
            return self.visible[0], notes
        if not self.visible:
            raise Unreadable("has no visible sheet (hidden sheets are never read)")
        names = ", ".join(repr(s.name) for s in self.visible)
        raise Unreadable(
            f"has several visible sheets ({names}) and none is named {name!r}: name the sheet to read "
            f"{name!r}, or delete the others"
        )

    def read(self, sheet: Sheet, expected: tuple[str, ...] | list[str] = ()) -> RawTable:
        """Read one sheet as text cells (see the module docstring); problems carry no file label yet.

        Only the columns named in ``expected`` (all, when it is empty) are
        kept in the frame; the whole header is the table's ``header``.
        """
        hidden_cols: list[tuple[int, int]] = []  # hidden, or too narrow to see
        shown_cols: list[tuple[int, int]] = []  # every <col> range wide enough to see
        rows: dict[int, dict[int, str]] = {}
        hidden_rows: set[int] = set()
        problems: list[tuple[int, int, str | None, str]] = []  # row, column number, value, rule
        formulas: list[tuple[str, str, str]] = []
        merged: list[str] = []
        n_cells = 0  # cells holding a value
        row_no = in_row = 0
        rows_hidden_by_default = False
        cols_hidden_by_default = False
        epoch = CALENDAR_MAC_1904 if self.date1904 else CALENDAR_WINDOWS_1900
        if sheet.part is None:
            raise Unreadable(f"sheet {sheet.name} is a chart sheet: it holds no cells")
        local: dict[str, str] = {}
        too_many = Unreadable(f"sheet {sheet.name!r} holds more than {MAX_CELLS:,} cells: check it is the right file")
        with _Sparse(self._open(sheet.part)) as fh:
            parser = ET.iterparse(fh, events=("start", "end"))
            sheet_data = None
            try:
                for event, el in parser:
                    tag = local.get(el.tag)
                    if tag is None:
                        tag = local[el.tag] = _local(el.tag)
                    if event == "start":
                        if tag == "c":  # a row's cells are held until its end: at most a row's width of them
                            in_row += 1
                            if in_row > _MAX_ROW_CELLS:
                                raise Unreadable(
                                    f"is a damaged workbook: sheet {sheet.name!r}: row {row_no + 1} holds more "
                                    f"than the {_MAX_ROW_CELLS:,} cells a row can hold: refused"
                                )
                        elif tag == "row":
                            in_row = 0
                        elif tag == "sheetData":
                            sheet_data = el
                        continue
                    if tag in ("c", "v", "f", "t", "is", "r"):
                        continue  # read with their row
                    if tag == "row":
                        row_no = int(el.get("r") or row_no + 1) + int(el.get("_skip", 0))
                        if _hidden(el.get("hidden"), el.get("ht"), 1.0, rows_hidden_by_default):
                            hidden_rows.add(row_no)
                        cells = self._row(el, row_no, local, epoch, problems, formulas)
                        n_cells += len(cells)
                        if n_cells > MAX_CELLS:
                            raise too_many
                        if cells:
                            if row_no in rows:
                                problems.append(
                                    (
                                        row_no,
                                        min(cells),
                                        None,
                                        f"row {row_no} is written twice in the sheet's XML, so one would hide the "
                                        "other: the file is damaged or was not written by a spreadsheet program; "
                                        "open it in Excel and save it again",
                                    )
                                )
                            else:
                                rows[row_no] = cells
                        el.clear()
                        if sheet_data is not None:
                            sheet_data.clear()
                    elif tag == "col":
                        lo, hi = int(el.get("min", "1")), int(el.get("max", el.get("min", "1")))
                        if _hidden(el.get("hidden"), el.get("width"), 0.5, False):
                            hidden_cols.append((lo, hi))
                        else:
                            shown_cols.append((lo, hi))
                    elif tag == "sheetFormatPr":
                        rows_hidden_by_default = el.get("zeroHeight", "0").lower() in ("1", "true") or _thin(
                            el.get("defaultRowHeight"), 1.0
                        )
                        cols_hidden_by_default = _thin(el.get("defaultColWidth"), 0.5)
                    elif tag == "mergeCell":
                        merged.append(el.get("ref", ""))
                        if len(merged) > MAX_CELLS:
                            raise too_many
            except (ET.ParseError, ValueError) as exc:
                raise Unreadable(f"is a damaged workbook: sheet {sheet.name!r}: {exc}") from None

        def col_hidden(col: int) -> bool:
            if any(lo <= col <= hi for lo, hi in hidden_cols):
                return True
            return cols_hidden_by_default and not any(lo <= col <= hi for lo, hi in shown_cols)

        return self._table(sheet, rows, hidden_rows, col_hidden, problems, formulas, merged, expected)

    def _row(self, el, row_no, local, epoch, problems, formulas) -> dict[int, str]:
        """The cells of one ``<row>`` holding a value, by column number (problems and formulas noted)."""
        col_no = 0
        last_ref, after = None, 0  # the last empty cell's reference and the empty cells since, parsed if needed
        cells: dict[int, str] = {}
        for c in el:
            ref = c.get("r")
            if len(c) == 0:  # an empty (styled) cell, or a run of them: nothing to read
                skip = int(c.get("_skip", 0))
                if ref is None:
                    after += 1 + skip
                else:
                    last_ref, after = ref, skip
                continue
            if local.get(c.tag, "c") != "c":
                continue
            m = _CELL_REF.fullmatch(ref) if ref else None
            if m:
                col_no = column_index_from_string(m.group(1).upper())
            else:
                if last_ref is not None:
                    lm = _CELL_REF.fullmatch(last_ref)
                    col_no = column_index_from_string(lm.group(1).upper()) if lm else 0
                col_no += after + 1
            last_ref, after = None, 0
            if col_no > _MAX_ROW_CELLS:
                raise Unreadable(f"is a damaged workbook: row {row_no} has a cell beyond the last column, XFD")
            text, formula, error = self._cell(c, epoch)
            if text is None and formula is None and error is None:
                continue
            where = f"{get_column_letter(col_no)}{row_no}"
            if col_no in cells:
                problems.append(
                    (
                        row_no,
                        col_no,
                        text,
                        "is written twice in the sheet's XML, so one value would hide the other: the file is "
                        "damaged or was not written by a spreadsheet program; open it in Excel and save it again",
                    )
                )
                continue
            if error is not None:
                problems.append((row_no, col_no, error, "is an Excel error value: correct the cell or empty it"))
                continue
            if formula is not None:
                if text is None or self.recalc_on_open:
                    why = (
                        "its workbook was written by a program that does not compute formulas"
                        if self.recalc_on_open and text is not None
                        else "the file stores no result for it"
                    )
                    problems.append(
                        (
                            row_no,
                            col_no,
                            formula,
                            f"is a formula and {why}: open and save the file in Excel, "
                            "or paste the values in place of the formulas",
                        )
                    )
                    continue
                formulas.append((where, formula, text))
            if text is None:  # not reached: a cell without a value was skipped above
                continue
            cells[col_no] = text
        return cells

    def _cell(self, c: ET.Element, epoch) -> tuple[str | None, str | None, str | None]:
        """A cell's (text, formula, error value); text None when it holds no value."""
        kind = c.get("t", "n")
        value = formula = None
        inline = None
        for child in c:
            tag = _local(child.tag)
            if tag == "v":
                value = child.text
            elif tag == "f":
                formula = "=" + (child.text or "") if child.text else "= (shared formula)"
            elif tag == "is":
                inline = child
        if kind == "inlineStr":
            return (_text_of(inline) if inline is not None else None), formula, None
        if value is None:
            return None, formula, None
        if kind == "s":
            try:
                return self._shared_strings()[int(value)], formula, None
            except (ValueError, IndexError):
                raise Unreadable(f"is a damaged workbook: cell {c.get('r')} names a missing text") from None
        if kind == "str":
            return value, formula, None
        if kind == "b":
            return ("true" if value.strip() in ("1", "true") else "false"), formula, None
        if kind == "e":
            return None, formula, value
        if kind == "d":
            return _date_text(value.replace("T", " ")), formula, None
        try:
            x = float(value)
        except ValueError:
            return value, formula, None
        if int(c.get("s") or 0) in self._date_styles and math.isfinite(x):
            try:
                return _date_text(from_excel(x, epoch)), formula, None
            except (OverflowError, ValueError):
                return None, formula, f"{value} (not a valid date)"
        if x.is_integer():
            return str(int(x)), formula, None
        return repr(x), formula, None

    def _table(self, sheet, rows, hidden_rows, col_hidden, problems, formulas, merged, expected) -> RawTable:
        found: list[tuple[int | None, str | None, str | None, str]] = []
        header_row = min(rows) if rows else None
        header: list[str] = []
        head: dict[int, str] = {}
        if header_row is not None:
            head = rows.pop(header_row)
            width = max(head)
            if width > MAX_COLUMNS:
                raise Unreadable(f"the header has {width:,} columns; the handbook reads at most {MAX_COLUMNS:,}")
            header = [head.get(i, "").strip() for i in range(1, width + 1)]
        width = len(header)
        letter = get_column_letter
        used = {col for cells in rows.values() for col in cells}
        for col in range(1, width + 1):
            if col_hidden(col) and (header[col - 1] or col in used):
                found.append(
                    (
                        None,
                        header[col - 1] or f"({letter(col)})",
                        None,
                        "column is hidden and holds data: unhide it (a column too narrow to see counts as "
                        "hidden), or delete it if it is not part of the return",
                    )
                )
        if header_row in hidden_rows:
            found.append((header_row, None, None, "the header row is hidden: unhide it"))
        want = {_norm(e) for e in expected}
        keep = [i for i, h in enumerate(header, start=1) if h and (not want or _norm(h) in want)]
        unnamed = {i for i, h in enumerate(header, start=1) if not h}
        stray: dict[int, tuple[int, str]] = {}
        body, index = [], []
        stored = 0
        for r in sorted(rows):
            cells = rows[r]
            for col in cells:
                if (col > width or col in unnamed) and col not in stray:
                    stray[col] = (r, cells[col])
            if not any(v.strip() for c, v in cells.items() if c <= width):
                continue  # a row holding only stray cells (reported above)
            if r in hidden_rows:
                found.append(
                    (
                        r,
                        None,
                        None,
                        "row is hidden and holds data: unhide it (a row too low to see counts as hidden), or "
                        "delete it if it is not part of the return",
                    )
                )
                continue
            stored += len(keep)
            if stored > MAX_CELLS:
                raise Unreadable(
                    f"sheet {sheet.name!r}: {len(rows):,} rows of {len(keep)} columns are more than the "
                    f"{MAX_CELLS:,} cells the handbook reads: check it is the right file"
                )
            body.append([(v.strip() or None) if (v := cells.get(i)) is not None else None for i in keep])
            index.append(r)
        for col, (r, value) in sorted(stray.items()):
            if col in unnamed:
                found.append(
                    (
                        r,
                        f"({letter(col)})",
                        value.strip(),
                        "a column with a blank header holds data: give it a header, or delete it",
                    )
                )
                continue
            found.append(
                (
                    r,
                    f"({letter(col)})",
                    value,
                    f"cell {letter(col)}{r} holds data in a column with no "
                    "header: delete it, or give its column a header",
                )
            )
        for ref in merged:
            m = re.fullmatch(r"([A-Za-z]{1,3})(\d+)(?::([A-Za-z]{1,3})(\d+))?", ref)
            if not m:
                continue
            col, r = column_index_from_string(m.group(1).upper()), int(m.group(2))
            held = (head if r == header_row else rows.get(r, {})).get(col)
            if held is None or not m.group(3) or ref.split(":")[0] == ref.split(":")[1]:
                continue  # an empty merged range, or a range of one cell, hides nothing
            name = header[col - 1] if col <= width and header[col - 1] else f"({letter(col)})"
            found.append(
                (
                    r,
                    name,
                    held.strip(),
                    f"cells {ref} of sheet {sheet.name!r} are merged: the value shows in every cell but only "
                    f"{m.group(1)}{r} holds it, so the others would read as blank: unmerge them and fill each cell",
                )
            )
        for r, col, value, rule in problems:
            name = header[col - 1] if col and col <= width and header[col - 1] else f"({letter(col)})"
            found.append((r, name, value, f"cell {letter(col)}{r} {rule}"))
        columns = [header[i - 1] for i in keep]
        frame = pd.DataFrame(body, index=pd.Index(index, dtype="int64"), columns=columns, dtype=object)
        warnings_ = []
        if formulas:
            where, formula, text = formulas[0]
            warnings_.append(
                f"{len(formulas)} formula cell(s) read as the result the file stores "
                f"(e.g. {where} {formula} -> {text!r}); check they are up to date"
            )
        if header_row not in (None, 1):
            warnings_.append(f"the header was read from row {header_row}, the first row holding a value")
        return RawTable(
            frame,
            f"XLSX, sheet {sheet.name!r}",
            True,
            warnings_,
            [Problem("", r, c, v, rule) for r, c, v, rule in found],
            [h for h in header if h],
        )


def _date_text(v) -> str:
    """A date or date-time as a CSV export would write it (the time only when not midnight)."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return v
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == time(0) else v.isoformat(sep=" ")
    if isinstance(v, (date, time, timedelta)):
        return v.isoformat() if not isinstance(v, timedelta) else str(v)
    return str(v)
