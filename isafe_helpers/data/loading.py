"""Read and validate a data root of LA folders.

A data root holds one folder per LA (named by its LA code) with the files of
:func:`isafe_helpers.data.contract.file_specs`, as CSV or XLSX files or as
the sheets of one ``returns.xlsx``, plus an optional ``instrument.yml``,
``deflators.csv`` and, for synthetic data, the marker ``synthetic.yml``.
:func:`load_root` checks every file against its pandera schema and the links
between files, and raises one :class:`DataValidationError` listing every
problem found (file, row, column, value, rule). Nothing is fixed silently: a
cell either meets its rule or is reported. How files are found and read
(encodings, delimiters, sheets, links, ignored files) is
:mod:`isafe_helpers.data.readers` and :mod:`isafe_helpers.data.files`; the
rules in words are the contract's ``READING_RULES``, ``VALUE_RULES`` and
``CROSS_FILE_RULES``.

:func:`isafe_helpers.data.contract.file_specs`, as CSV or XLSX, plus an optional
``instrument.yml``, ``deflators.csv``, ``protocol.yml`` (read by
:mod:`isafe_helpers.data.protocol`) and, for synthetic data, the marker
``synthetic.yml``. :func:`load_root` checks every file against its pandera
schema and the links between files, and raises one
:class:`DataValidationError` listing every problem found (file, row, column,
value, rule). Nothing is fixed silently: a cell either meets its rule or is
reported.

Validation runs in two pandera passes per file: the first checks the raw
text of every cell (presence, blanks, vocabularies, that numbers, dates and
booleans parse, and that numbers are finite and within their rule or
declared bound); the second checks the keys and cross-column rules on the
typed values. Cross-file rules (links between files, IDs unique across the
root, every component offered having its target) are checked once every
file has been read.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import yaml

from isafe_helpers.data import contract as C
from isafe_helpers.data.contract import Field, FileSpec, Instrument
from isafe_helpers.data.files import Scan, fingerprint_root, is_ignored, scan
from isafe_helpers.data.followup import followup_warnings
from isafe_helpers.data.la_info import FILENAME as LA_INFO
from isafe_helpers.data.la_info import read_la_yml
from isafe_helpers.data.protocol import Protocol, read_protocol
from isafe_helpers.data.readers import Problem, RawTable, Unreadable, Workbook, read_text
from isafe_helpers.data.report_pages import FOLDER as REPORT_FOLDER
from isafe_helpers.data.report_pages import check_report
from isafe_helpers.data.scoring import score_scales
from isafe_helpers.outputs import neutralise

__all__ = ["DataValidationError", "Problem", "TrialData", "load_root", "problems_csv", "validate_frame"]


#: File formats read, by suffix (case-insensitive).
SUFFIXES = (".csv", ".xlsx")


#: What to say of a file named like a table but in a format that is not read.
OTHER_FORMATS = {
    ".xls": "is the old Excel format (.xls), which is not read: save it as .xlsx (Excel Workbook) or CSV",
    ".xlsm": "is a macro workbook (.xlsm), which is not read: save it as .xlsx (Excel Workbook) or CSV",
}


ROOT_FILES = {"instrument.yml", "deflators.csv", C.PROTOCOL_FILE, C.SYNTHETIC_MARKER, "README.md", "README.txt"}


_INT_RE = r"[+-]?[0-9]+(\.0*)?"


_FLOAT_RE = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"


_DATE_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"


#: Numbers beyond this are masked before conversion (every column's bound is far below it).
_EXACT = 2.0**53


# --------------------------------------------------------------------------
# The error that carries every problem
# --------------------------------------------------------------------------
class DataValidationError(Exception):
    """The data root breaks the contract. ``problems`` lists every violation; ``notes`` say how files were read."""

    def __init__(self, problems: list[Problem], notes: list[str] | None = None):
        self.problems = list(problems)
        self.notes = list(notes or [])
        super().__init__(self.report())

    def report(self, limit: int = C.REPORT_LINES) -> str:
        """The problems grouped by file and rule, one line each, at most ``limit`` per file and rule."""
        lines = [f"The data root breaks the data contract ({len(self.problems):,} problem(s)):"]
        by_file: dict[str, dict[str, list[Problem]]] = {}
        for p in self.problems:
            by_file.setdefault(p.file, {}).setdefault(p.rule, []).append(p)
        cut = False
        for file, rules in by_file.items():
            lines.append(f"  {file}")
            for rule, ps in rules.items():
                lines += [f"    {p.detail()}" for p in ps[:limit]]
                if len(ps) > limit:
                    cut = True
                    lines.append(f"    ... and {len(ps) - limit:,} more row(s) breaking the same rule: {rule}")
        if cut:
            lines.append(
                "Every problem, one per row: python -m isafe_helpers validate --data ROOT --report problems.csv"
            )
        return "\n".join(lines)


REPORT_COLUMNS = ("file", "row", "column", "value", "rule")


def problems_csv(problems: list[Problem]) -> str:
    """Every problem as CSV (file, row, column, value, rule), text cells neutralised for spreadsheets."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for p in problems:
        rule = f"{p.rule}; {p.where}" if p.where else p.rule
        w.writerow(
            [
                neutralise(x) if isinstance(x, str) else ("" if x is None else x)
                for x in (p.file, p.row, p.column, p.value, rule)
            ]
        )
    return buf.getvalue()


# --------------------------------------------------------------------------
# Schemas built from the contract
# --------------------------------------------------------------------------
def _matches(s: pd.Series, pattern: str) -> pd.Series:
    """Which cells are text matching ``pattern`` whole (ASCII only: ``[0-9]`` is not ``\\d``)."""
    rx = re.compile(pattern)
    return pd.Series([isinstance(v, str) and rx.fullmatch(v) is not None for v in s], index=s.index, dtype=bool)


def _number(s: pd.Series, dtype: str) -> pd.Series:
    """The numbers of a text column (NaN where the text is not an ASCII number of this type)."""
    ok = _matches(s, _INT_RE if dtype == "int" else _FLOAT_RE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow of e.g. 1e400 to inf: reported by the finite rule
        return pd.to_numeric(s.where(ok), errors="coerce").astype(float)


def _range_checks(f: Field) -> list[pa.Check]:
    """Bounds on the number a cell's text holds (blank and unparsable cells are left to other checks)."""

    def within(test):
        return lambda s: (lambda x: x.isna() | test(x))(_number(s, f.dtype))

    w = C.number_words
    checks = []
    if f.ge is not None and f.le is not None:
        checks.append(
            pa.Check(within(lambda x: (x >= f.ge) & (x <= f.le)), error=f"must be between {w(f.ge)} and {w(f.le)}")
        )
    else:
        if f.ge is not None:
            checks.append(pa.Check(within(lambda x: x >= f.ge), error=f"must be >= {w(f.ge)}"))
        if f.le is not None:
            checks.append(pa.Check(within(lambda x: x <= f.le), error=f"must be <= {w(f.le)}"))
    if f.gt is not None:
        checks.append(pa.Check(within(lambda x: x > f.gt), error=f"must be > {w(f.gt)}"))
    if f.cap is not None and (f.le is None or f.cap < f.le):
        checks.append(
            pa.Check(
                within(lambda x: x <= f.cap),
                error=f"must be at most {w(f.cap)} (the column's declared bound: a larger number is taken for a typing error)",
            )
        )
    return checks


def _text_checks(f: Field) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if f.dtype == "int":
        checks.append(
            pa.Check(lambda s: _matches(s, _INT_RE), error="must be a whole number, written with the digits 0-9")
        )
    elif f.dtype == "float":
        checks.append(
            pa.Check(
                lambda s: _matches(s, _FLOAT_RE),
                error="must be a number, written with the digits 0-9 and a '.' for decimals",
            )
        )
        checks.append(
            pa.Check(
                lambda s: (lambda x: x.isna() | x.map(math.isfinite, na_action="ignore").astype(bool))(
                    _number(s, "float")
                ),
                error="must be a finite number",
            )
        )
    elif f.dtype == "date":
        checks.append(
            pa.Check(
                lambda s: pd.to_datetime(s, format="%Y-%m-%d", errors="coerce").notna() & _matches(s, _DATE_RE),
                error="must be a date written YYYY-MM-DD",
            )
        )
    elif f.dtype == "bool":
        ok = C.TRUE_VALUES + C.FALSE_VALUES
        checks.append(
            pa.Check(
                lambda s: s.astype("string").str.lower().isin(ok),
                error="must be true/false, 1/0 or yes/no",
            )
        )
    if f.dtype in ("int", "float"):
        checks += _range_checks(f)
    if f.allowed is not None:
        words = ", ".join(f.allowed) if f.allowed else "(the list is empty)"
        checks.append(pa.Check.isin(f.allowed, error="must be one of " + words))
    return checks


def text_schema(spec: FileSpec) -> pa.DataFrameSchema:
    """First pass: every cell's text (presence, blanks, vocabulary, parsable, finite, within bounds)."""
    cols = {
        f.name: pa.Column(
            object,
            checks=_text_checks(f),
            nullable=f.nullable,
            required=f.required,
            description=f.description,
            title=f.rule(),
        )
        for f in spec.fields
    }
    return pa.DataFrameSchema(cols, strict=False, name=spec.name)


def value_schema(spec: FileSpec) -> pa.DataFrameSchema:
    """Second pass: unique keys on the typed values (cross-column rules are checked beside it)."""
    return pa.DataFrameSchema(
        {},
        strict=False,
        name=spec.name,
        unique=list(spec.unique) if spec.unique else None,
        report_duplicates="all",
    )


def _convert(df: pd.DataFrame, spec: FileSpec) -> pd.DataFrame:
    """Turn checked text into typed columns (cells that failed become missing)."""
    out = df.copy()
    for f in spec.fields:
        if f.name not in out:
            continue
        s = out[f.name]
        if f.dtype == "int":
            num = _number(s, "int")
            out[f.name] = num.where(num.abs() <= _EXACT).round().astype("Int64")
        elif f.dtype == "float":
            num = _number(s, "float")
            out[f.name] = num.where(num.abs() <= _EXACT).astype("Float64")
        elif f.dtype == "bool":
            low = s.astype("string").str.lower()
            out[f.name] = (
                pd.Series(pd.NA, index=s.index, dtype="boolean")
                .mask(low.isin(C.TRUE_VALUES), True)
                .mask(low.isin(C.FALSE_VALUES), False)
            )
        elif f.dtype == "date":
            out[f.name] = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
        else:
            out[f.name] = s.astype("string")
    return out


def _problems_from(err: pa.errors.SchemaErrors, file: str) -> list[Problem]:
    fc = err.failure_cases
    problems = []
    for rec in fc.itertuples(index=False):
        check = str(rec.check)
        column = None if rec.column is None or pd.isna(rec.column) else str(rec.column)
        value = rec.failure_case
        row = None if rec.index is None or pd.isna(rec.index) else int(rec.index)
        if check == "column_in_dataframe":
            problems.append(Problem(file, None, str(value), None, "required column is missing"))
            continue
        if check == "not_nullable":
            problems.append(Problem(file, row, column, None, "must not be blank"))
            continue
        if check.startswith("field_uniqueness") or check.startswith("multiple_fields_uniqueness"):
            problems.append(
                Problem(
                    file,
                    row,
                    column,
                    None if value is None else str(value),
                    "duplicate key: must be unique within the file",
                )
            )
            continue
        if check.startswith("dtype("):
            continue  # the text pass reports unparsable cells
        problems.append(Problem(file, row, column, None if value is None or pd.isna(value) else str(value), check))
    # one line per (row, column, rule): pandera may repeat a failure per column
    seen, unique_problems = set(), []
    for p in problems:
        key = (p.row, p.column, p.rule, p.value)
        if key not in seen:
            seen.add(key)
            unique_problems.append(p)
    return sorted(unique_problems, key=lambda p: (p.row or 0, p.column or ""))


def match_headers(columns: list[str], spec: FileSpec) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Contract column -> header as found (matched without regard to case); and headers found more than once."""
    found: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    by_name = {c.lower(): c for c in spec.columns}
    for col in columns:
        key = col.strip().lower()
        seen.setdefault(key, []).append(col)
        if key in by_name and by_name[key] not in found:
            found[by_name[key]] = col
    return found, {k: v for k, v in seen.items() if len(v) > 1}


def validate_frame(
    df: pd.DataFrame, spec: FileSpec, file: str, header: list[str] | None = None
) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    """Validate one file's text frame against its spec.

    Headers are matched without regard to case and problems name the
    header as found. ``header`` is the file's whole header when the frame
    holds only some of its columns (the readers keep the contract's).

    Returns the typed frame (contract columns only, named as the contract
    names them), the problems and the warnings (headers matched by case,
    unknown extra columns, which are dropped).
    """
    problems: list[Problem] = []
    notes: list[str] = []
    columns = list(df.columns) if header is None else list(header)
    found, twice = match_headers(columns, spec)
    if twice:
        return (
            df,
            [
                Problem(file, 1, " and ".join(v), None, "column appears more than once in the header: keep one")
                for v in twice.values()
            ],
            notes,
        )
    recased = [f"{v!r} as {k}" for k, v in found.items() if v != k]
    if recased:
        notes.append(f"{file}: header(s) matched without regard to case: {', '.join(recased)}")
    df = df.rename(columns={v: k for k, v in found.items()})
    extra = [c for c in columns if c not in found.values()]
    if extra:
        notes.append(f"{file}: unknown column(s) ignored: {', '.join(extra)}")
    if df.empty and spec.needs_rows is True:
        problems.append(Problem(file, None, None, None, "file has a header but no data rows"))
    elif df.empty and spec.needs_rows is False:
        notes.append(f"{file}: no data rows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            text_schema(spec).validate(df, lazy=True)
        except pa.errors.SchemaErrors as err:
            problems += _problems_from(err, file)
        typed = _convert(df[[c for c in spec.columns if c in df.columns]], spec)
        try:
            value_schema(spec).validate(typed, lazy=True)
        except pa.errors.SchemaErrors as err:
            problems += _problems_from(err, file)
    for f in spec.fields:  # a column that may not exceed another of its row
        if f.at_most and {f.name, f.at_most} <= set(typed.columns):
            low, high = f.name, f.at_most
            bad = typed[low].notna() & typed[high].notna() & (typed[low] > typed[high])
            for idx in typed.index[bad.fillna(False).to_numpy(dtype=bool)]:
                problems.append(
                    Problem(
                        file,
                        int(idx),
                        low,
                        str(typed.at[idx, low]),
                        f"must be at most {high}",
                        where=f"{high} is {typed.at[idx, high]}",
                    )
                )
    if extra:  # say what the header holds where a required column is missing
        has = f" (the header has unknown column(s): {', '.join(extra)})"
        problems = [replace(p, rule=p.rule + has) if p.rule == "required column is missing" else p for p in problems]
    return typed, [_as_found(p, found) for p in problems], notes


def _as_found(p: Problem, found: dict[str, str]) -> Problem:
    """The problem with its column named as the file's header names it."""
    return replace(p, column=found[p.column]) if p.column in found and found[p.column] != p.column else p


# --------------------------------------------------------------------------
# The data root
# --------------------------------------------------------------------------
@dataclass
class TrialData:
    """Validated tables of a data root, each with an ``la`` column.

    The survey carries one score column per scale (see
    :func:`isafe_helpers.data.scoring.score_scales`). ``warnings`` are
    things to check (unknown columns, formulas read as their stored
    results, ignored files); ``notes`` say how the files were read (every
    file read another way than as UTF-8 CSV with commas), for the run
    record.
    """

    root: Path
    las: list[str]
    instrument: Instrument
    tables: dict[str, pd.DataFrame]
    deflators: pd.DataFrame | None
    synthetic: dict | None
    fingerprint: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: LA names from each LA folder's optional ``la.yml`` (:mod:`isafe_helpers.data.la_info`)
    la_names: dict[str, str] = field(default_factory=dict)
    protocol: Protocol | None = None  # protocol.yml at the data root, or the default (data.protocol)

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    @property
    def is_synthetic(self) -> bool:
        return bool(self.synthetic and self.synthetic.get("synthetic"))

    def for_scope(self, scope: str) -> TrialData:
        """The data of one scope: an LA code, or ``trial`` for all LAs."""
        if scope == C.TRIAL_SCOPE:
            return self
        if scope not in self.las:
            raise ValueError(f"scope {scope!r} is not an LA of {self.root} (found: {', '.join(self.las)})")
        tables = {k: v[v["la"] == scope].reset_index(drop=True) for k, v in self.tables.items()}
        return TrialData(
            self.root,
            [scope],
            self.instrument,
            tables,
            self.deflators,
            self.synthetic,
            self.fingerprint,
            self.warnings,
            self.notes,
            {k: v for k, v in self.la_names.items() if k == scope},
            self.protocol,
        )


def find_las(root: Path) -> list[str]:
    """LA folders of a data root (links followed; ignored names left out), sorted."""
    return sorted(
        p.name for p in Path(root).iterdir() if p.is_dir() and not is_ignored(p.name) and p.name != REPORT_FOLDER
    )


@dataclass(frozen=True)
class Source:
    """Where one table of an LA is read from: a file, or a sheet of the LA's returns workbook."""

    path: Path
    label: str
    sheet: str | None = None


def _la_sources(
    la: str, la_dir: Path, names: list[str], files: list[Path], refused: set[str]
) -> tuple[dict[str, Source], list[Problem], list[str], set[str]]:
    """Find each table's file or sheet in an LA folder.

    Returns the sources, problems (a table given twice, a format not read,
    an unreadable returns workbook), warnings (unknown files and sheets),
    and the tables whose absence must not be reported again (their file is
    there but refused, or the returns workbook could not be read).
    """
    problems: list[Problem] = []
    notes: list[str] = []
    excused: set[str] = set()
    own = sorted(p for p in files if p.parent == la_dir)
    for sub in sorted({p.relative_to(la_dir).parts[0] for p in files if p.parent != la_dir}):
        notes.append(f"{la}/{sub}/: folder in an LA folder ignored")
    sheets: dict[str, str] = {}
    workbooks = [p for p in own if p.name.lower() == C.RETURNS_WORKBOOK]
    if len(workbooks) > 1:
        problems.append(
            Problem(
                f"{la}/{C.RETURNS_WORKBOOK}",
                None,
                None,
                ", ".join(p.name for p in workbooks),
                "workbook given more than once: keep one",
            )
        )
        excused |= set(names)
    if len(workbooks) == 1:
        label = f"{la}/{workbooks[0].name}"
        try:
            with Workbook(workbooks[0]) as wb:
                for s in wb.visible:
                    key = s.name.strip().lower()
                    if key in sheets:
                        problems.append(
                            Problem(label, None, None, f"{sheets[key]}, {s.name}", "sheet given twice: keep one")
                        )
                        excused.add(key)
                    elif key in names:
                        sheets[key] = s.name
                    elif key not in C.TEMPLATE_SHEETS:
                        notes.append(f"{label}: sheet {s.name!r} is not a table of the contract: ignored")
                if wb.hidden:
                    hidden = ", ".join(repr(s.name) for s in wb.hidden)
                    notes.append(f"{label}: hidden sheet(s) {hidden} not read (hidden sheets never are)")
        except Unreadable as exc:
            problems += exc.problems(label)
            excused |= set(names)
        for key in excused & set(sheets):
            del sheets[key]
    sources: dict[str, Source] = {}
    used = set(workbooks)
    for name in names:
        mine = [p for p in own if p.stem.lower() == name and p not in workbooks]
        used |= set(mine)
        readable = [p for p in mine if p.suffix.lower() in SUFFIXES]
        given = [p.name for p in mine] + ([f"{workbooks[0].name} sheet {sheets[name]!r}"] if name in sheets else [])
        if any(Path(r).stem.lower() == name and Path(r).parent.name == la for r in refused):
            excused.add(name)
        if len(given) > 1:
            problems.append(
                Problem(f"{la}/{name}", None, None, ", ".join(given), "table given more than once: keep one")
            )
            excused.add(name)
        elif mine and not readable:
            suffix = mine[0].suffix.lower()
            rule = OTHER_FORMATS.get(
                suffix, f"is a {suffix or 'file without a suffix'}, which is not read: save it as .xlsx or CSV"
            )
            problems.append(Problem(f"{la}/{mine[0].name}", None, None, None, rule))
            excused.add(name)
        elif readable:
            sources[name] = Source(readable[0], f"{la}/{readable[0].name}")
        elif name in sheets:
            sources[name] = Source(workbooks[0], f"{la}/{workbooks[0].name} [sheet {sheets[name]}]", sheets[name])
    for p in own:
        if p not in used and p.name != LA_INFO:
            notes.append(f"{la}/{p.name}: unknown file ignored")
    return sources, problems, notes, excused


def _read(src: Source, name: str, spec: FileSpec) -> RawTable:
    """One table's cells as text (raises Unreadable)."""
    if src.path.suffix.lower() == ".csv":
        return read_text(src.path, spec.columns)
    notes: list[str] = []
    with Workbook(src.path) as wb:
        if src.sheet is not None:
            sheet = next(s for s in wb.visible if s.name == src.sheet)
        else:
            sheet, notes = wb.pick(name)
        table = wb.read(sheet, spec.columns)
    table.warnings = notes + table.warnings
    if src.sheet is None and sheet.name.strip().lower() != name:
        table.how += f" (the only visible sheet, read as {name})"
        table.default = False
    return table


@dataclass
class FileCache:
    """What reading and validating each LA file gave, for the next validation of the same root.

    ``old`` holds a previous validation's entries (given by the caller, who
    keeps them only for the same code); ``new`` receives this one's. An
    entry is keyed by the file's label, path, sheet and SHA-256 of its bytes
    and by the contract it was read under, so a file whose bytes or contract
    changed is read and validated again. Only the per-file steps are reused:
    the rules across files, the scale scores and the problems report always
    run on the whole root.
    """

    old: dict = field(default_factory=dict)
    new: dict = field(default_factory=dict)
    hits: int = 0


def _file_key(src: Source, name: str, spec) -> tuple:
    digest = hashlib.sha256(Path(src.path).read_bytes()).hexdigest()
    return (src.label, str(src.path), src.sheet, digest, name, repr(spec))


@dataclass
class _Findings:
    """What validating a root has found so far: problems, notes, how files were read, how many were read."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reading: list[str] = field(default_factory=list)
    files_read: int = 0


def load_root(root: str | Path, cache: FileCache | None = None) -> TrialData:
    """Read, validate and score a data root.

    The steps, in order: find the files (:func:`scan`); read the root's own
    files (instrument, protocol, synthetic marker); check the LA folders; read
    and validate each LA's tables, file by file (:func:`_la_tables`); check the
    rules across files (links, owners, price years against ``deflators.csv``);
    if nothing is wrong, build :class:`TrialData` with the scale scores.

    Parameters
    ----------
    root : path
        Folder with one subfolder per LA.
    cache : FileCache, optional
        Per-file results of an earlier validation by the same code, reused
        for files whose bytes are unchanged (the pipeline keeps them in its
        results folder); filled with this validation's.

    Returns
    -------
    TrialData
        Validated tables with an ``la`` column; the survey with scale scores.

    Raises
    ------
    DataValidationError
        Listing every problem of every file (file, row, column, value, rule).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataValidationError([Problem(str(root), None, None, None, "data root folder not found")])
    out = _Findings()

    found = scan(root)
    refused = {rel for rel, _ in found.refused}
    out.problems += [Problem(rel, None, None, None, reason) for rel, reason in found.refused]
    if found.ignored:
        out.notes.append(f"ignored (hidden, __MACOSX and Office lock files): {', '.join(found.ignored)}")
    instrument, protocol, synthetic = _root_files(root, out)
    specs = C.file_specs(instrument)
    las = _check_las(root, found, refused, out)

    tables, headers, read_in, la_names = _la_tables(root, found, refused, las, specs, cache, out)
    out.problems += [_as_found(p, headers.get(p.file, {})) for p in _link_problems(tables, read_in)]
    out.problems += [_as_found(p, headers.get(p.file, {})) for p in _owner_problems(tables, las)]
    deflators = _read_deflators(root, out)
    out.problems += _price_year_problems(tables["costs"], deflators)

    summary = f"{out.files_read} file(s) read; CSV files are UTF-8 with ',' as delimiter unless listed"
    if out.problems:
        raise DataValidationError(out.problems, [*out.notes, summary, *out.reading])

    for name in tables:
        tables[name] = tables[name].drop(columns=["src_file", "src_row"])
    tables["survey"] = score_scales(tables["survey"], instrument)
    out.notes += followup_warnings(tables, las)  # valid without follow-up: the baseline report (data.followup)
    return TrialData(
        root,
        las,
        instrument,
        tables,
        deflators,
        synthetic,
        fingerprint_root(root, found.files),
        out.notes,
        [summary, *out.reading],
        la_names,
        protocol,
    )


def _root_files(root: Path, out: _Findings) -> tuple[Instrument, Protocol, Any]:
    """The root's instrument (the default if none), protocol and synthetic marker (None if none)."""
    instrument = C.DEFAULT_INSTRUMENT
    if (root / "instrument.yml").is_file():
        try:
            instrument = Instrument.from_yaml(root / "instrument.yml")
        except (ValueError, yaml.YAMLError, AttributeError, TypeError) as exc:
            out.problems.append(Problem("instrument.yml", None, None, None, f"unreadable instrument: {exc}"))
    protocol, protocol_problems = read_protocol(root, instrument.scale_names)
    out.problems += protocol_problems
    synthetic = None
    if (root / C.SYNTHETIC_MARKER).is_file():
        synthetic = yaml.safe_load((root / C.SYNTHETIC_MARKER).read_text(encoding="utf-8"))
    return instrument, protocol, synthetic


def _check_las(root: Path, found: Scan, refused: set[str], out: _Findings) -> list[str]:
    """The LA folders (their names checked), and a note for each unknown file at the root."""
    las = [la for la in find_las(root) if la not in refused]
    if not las:
        out.problems.append(Problem(".", None, None, None, "no LA folders found in the data root"))
    for la in las:
        if not re.match(C.LA_CODE_PATTERN, la) or la == C.TRIAL_SCOPE:
            out.problems.append(
                Problem(la, None, None, la, "LA folder name must use letters, digits, _ and - only, and not be 'trial'")
            )
    out.problems += check_report(root, las)  # the evaluator's pages (data.report_pages)
    for p in found.files:
        if p.parent == root and p.name not in ROOT_FILES:
            out.notes.append(f"{p.name}: unknown file at the data root ignored")
    return las


def _la_tables(
    root: Path,
    found: Scan,
    refused: set[str],
    las: list[str],
    specs: dict[str, FileSpec],
    cache: FileCache | None,
    out: _Findings,
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, str]], dict[str, set[str]], dict[str, str]]:
    """Every LA's tables, read and validated file by file, stacked into one table per name.

    Returns the tables (with ``la``, ``src_file`` and ``src_row``; every optional column present), the headers
    as found (file label -> contract column -> header), the LAs whose table was read (name -> LAs), and the
    LAs' names from their ``la.yml``.
    """
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in specs}
    headers: dict[str, dict[str, str]] = {}  # file label -> contract column -> header as found
    read_in: dict[str, set[str]] = {name: set() for name in specs}  # LAs whose table was read
    la_names: dict[str, str] = {}
    for la in las:
        la_dir = root / la
        la_files = [p for p in found.files if la_dir in p.parents]
        sources, p_la, n_la, excused = _la_sources(la, la_dir, list(specs), la_files, refused)
        out.problems += p_la
        out.notes += n_la
        if (la_dir / LA_INFO).is_file():  # the LA's name for the book
            info = _la_info(la, la_dir, out)
            if "name" in info:
                la_names[la] = info["name"]
        has_treatment = None
        for name, spec in specs.items():
            src = sources.get(name)
            if src is None:
                need = spec.required == "always" or (spec.required == "treatment" and has_treatment)
                if need and name not in excused:
                    out.problems.append(
                        Problem(
                            f"{la}/{name}.csv",
                            None,
                            None,
                            None,
                            f"required file is missing (send {name}.csv, {name}.xlsx, or a sheet {name} "
                            f"in {C.RETURNS_WORKBOOK})",
                        )
                    )
                continue
            read = _la_table(la, name, spec, src, cache, bool(has_treatment), out)
            if read is None:
                continue
            typed, header = read
            headers[src.label] = header
            read_in[name].add(la)
            frames[name].append(typed)
            if name == "teams" and "arm" in typed:
                has_treatment = bool((typed["arm"] == "treatment").any())
    return _stack(frames, specs), headers, read_in, la_names


def _la_info(la: str, la_dir: Path, out: _Findings) -> dict:
    """The LA's ``la.yml`` as read (its ``name`` is the LA's name for the book); its problems and notes into
    ``out``."""
    info, bad, odd = read_la_yml(la_dir / LA_INFO)
    out.problems += [Problem(f"{la}/{LA_INFO}", None, "code" if b.startswith("code") else "name", None, b) for b in bad]
    if info.get("code", la) != la:
        out.problems.append(
            Problem(
                f"{la}/{LA_INFO}",
                None,
                "code",
                info["code"],
                f"names LA {info['code']}, but the file is in the folder {la}: are two LA folders swapped "
                "or misnamed? Move the files to their LA's folder, or correct la.yml",
            )
        )
    out.notes += [f"{la}/{LA_INFO}: {w}" for w in odd]
    return info


def _la_table(
    la: str, name: str, spec: FileSpec, src: Source, cache: FileCache | None, has_treatment: bool, out: _Findings
) -> tuple[pd.DataFrame, dict[str, str]] | None:
    """One LA table read and validated (from ``cache`` when its bytes are unchanged): the typed rows with
    ``la``, ``src_file`` and ``src_row``, and its headers as found; None when it cannot be used."""
    fkey = _file_key(src, name, spec) if cache is not None else None
    if cache is not None and fkey in cache.old:
        entry = cache.old[fkey]
        cache.hits += 1
    else:
        try:
            raw = _read(src, name, spec)
        except Unreadable as exc:
            out.problems += exc.problems(src.label)
            return None
        typed, file_problems, file_notes = validate_frame(raw.frame, spec, src.label, raw.header)
        entry = (
            raw.default,
            raw.how,
            list(raw.warnings),
            list(raw.problems),
            raw.frame.empty,
            list(raw.header or []),
            typed,
            file_problems,
            file_notes,
        )
    if cache is not None and (fkey in cache.old or _file_key(src, name, spec) == fkey):
        cache.new[fkey] = entry  # not when the file changed while it was read: its bytes are not fkey's
    (
        raw_default,
        raw_how,
        raw_warnings,
        raw_problems,
        raw_empty,
        raw_columns,
        typed,
        file_problems,
        file_notes,
    ) = entry
    file_problems = list(file_problems)  # the entry is kept for the next run: never changed here
    out.files_read += 1
    if not raw_default:
        out.reading.append(f"{src.label}: read as {raw_how}")
    out.notes += [f"{src.label}: {w}" for w in raw_warnings]
    out.problems += [replace(p, file=src.label) for p in raw_problems]
    if spec.needs_rows == "treatment" and has_treatment and raw_empty:
        file_problems.append(
            Problem(
                src.label,
                None,
                None,
                None,
                "file has a header but no data rows, and the LA has treatment teams: give one row per "
                "person per session offered",
            )
        )
    out.problems += file_problems
    out.notes += file_notes
    if any(p.rule.startswith("column appears more than once") for p in file_problems):
        return None
    typed = typed.copy()
    typed["la"] = la
    typed["src_file"] = src.label
    typed["src_row"] = typed.index
    return typed.reset_index(drop=True), match_headers(list(raw_columns), spec)[0]


def _stack(frames: dict[str, list[pd.DataFrame]], specs: dict[str, FileSpec]) -> dict[str, pd.DataFrame]:
    """One table per name from the LAs' frames (an empty typed table when no LA gave one), every optional
    column present."""
    tables = {}
    for name, spec in specs.items():
        if frames[name]:
            tables[name] = pd.concat(frames[name], ignore_index=True)
        else:
            cols = spec.columns + ["la", "src_file", "src_row"]
            tables[name] = _convert(pd.DataFrame({c: pd.Series(dtype=object) for c in cols}), spec)
    for name, spec in specs.items():  # make optional columns always present
        for f in spec.fields:
            if f.name not in tables[name]:
                tables[name][f.name] = _convert(pd.DataFrame({f.name: [None] * len(tables[name])}), spec)[f.name]
    return tables


def _read_deflators(root: Path, out: _Findings) -> pd.DataFrame | None:
    """The root's ``deflators.csv`` validated (None if it has none)."""
    deflators = None
    if (root / "deflators.csv").is_file():
        try:
            raw = read_text(root / "deflators.csv", C.DEFLATORS_SPEC.columns)
            if not raw.default:
                out.reading.append(f"deflators.csv: read as {raw.how}")
            out.problems += [replace(p, file="deflators.csv") for p in raw.problems]
            deflators, deflator_problems, n = validate_frame(raw.frame, C.DEFLATORS_SPEC, "deflators.csv", raw.header)
            out.problems += deflator_problems
            out.notes += n
        except Unreadable as exc:
            out.problems += exc.problems("deflators.csv")
    return deflators


def _price_year_problems(costs: pd.DataFrame, deflators: pd.DataFrame | None) -> list[Problem]:
    """Costs in several price years need ``deflators.csv`` with an index for each."""
    years = sorted(int(y) for y in costs["price_year"].dropna().unique())
    if len(years) <= 1:
        return []
    if deflators is None:
        return [
            Problem(
                "costs",
                None,
                "price_year",
                ", ".join(map(str, years)),
                "costs carry several price years: deflators.csv (year, index) is needed at the data root",
            )
        ]
    if "year" in deflators:
        missing = sorted(set(years) - set(deflators["year"].dropna().astype(int)))
        if missing:
            return [
                Problem(
                    "deflators.csv",
                    None,
                    "year",
                    ", ".join(map(str, missing)),
                    "price year(s) used in costs have no index",
                )
            ]
    return []


def id_names_la(value: str, las: list[str]) -> str | None:
    """The LA an ID names: the longest LA code it starts with, followed by a character not a letter or digit.

    >>> id_names_la("LA02-T01", ["LA01", "LA02"]), id_names_la("LA021", ["LA02"]), id_names_la("T01", ["LA02"])
    ('LA02', None, None)
    """
    m = _la_prefix(tuple(las)).match(value)
    return m.group(1) if m else None


@functools.lru_cache(maxsize=8)
def _la_prefix(las: tuple[str, ...]) -> re.Pattern:
    """Any of the codes (longest first) followed by a character that is not a letter or digit."""
    codes = "|".join(re.escape(la) for la in sorted(las, key=len, reverse=True))
    return re.compile(rf"({codes})(?=[\W_])") if las else re.compile(r"(?!)")


def _owner_problems(tables: dict[str, pd.DataFrame], las: list[str]) -> list[Problem]:
    """IDs in one LA's folder that name another LA of the data root (two LA folders swapped or misnamed).

    An ID names an LA when it starts with the LA's code and a character that
    is not a letter or digit (``LA02-T01``, ``LA02_P017``); IDs that name no
    LA of the root are never questioned.
    """
    problems: list[Problem] = []
    for table, col in (("teams", "team_id"), ("participants", "participant_id")):
        df = tables[table].dropna(subset=[col])
        for value, la, f, r in zip(df[col], df["la"], df["src_file"], df["src_row"]):
            other = id_names_la(str(value), las)
            if other is not None and other != la:
                problems.append(
                    Problem(
                        f,
                        int(r),
                        col,
                        str(value),
                        f"starts with the code of {other}, another LA of the data root, but is in the folder {la}: "
                        "are two LA folders swapped or misnamed? Move the files to their LA's folder",
                    )
                )
    return problems


def _link_problems(tables: dict[str, pd.DataFrame], read_in: dict[str, set[str]]) -> list[Problem]:
    """Cross-file rules: unique IDs across the root, links within each LA, targets of components offered.

    A link is checked only in LAs whose target column was read (a missing
    column is reported once, by its own file, not again on every linked row).
    ``read_in`` names, per table, the LAs whose file was read.
    """
    problems: list[Problem] = []

    def dup_across(table: str, col: str, rule: str) -> None:
        df = tables[table][[col, "src_file", "src_row"]].dropna(subset=[col])
        files = df.groupby(col)["src_file"].nunique()
        shared = set(files[files > 1].index)  # duplicates within one file are the file's own problem
        dup = df[df[col].isin(shared)]
        for value, rows in dup.groupby(col, sort=True):
            for f, r in zip(rows["src_file"], rows["src_row"]):
                others = rows[rows["src_file"] != f]
                where = ", ".join(f"{of} row {orow}" for of, orow in zip(others["src_file"], others["src_row"]))
                problems.append(Problem(f, int(r), col, str(value), rule, where=f"also at {where}"))

    dup_across("teams", "team_id", "team_id must be unique across the data root (one arm and one LA per team)")
    dup_across("participants", "participant_id", "participant_id must be unique across the data root")

    def link(table: str, col: str, target: str, target_col: str, rule: str) -> None:
        df, tgt = tables[table], tables[target]
        read_las = set(tgt.loc[tgt[target_col].notna(), "la"])
        valid = pd.MultiIndex.from_arrays([tgt["la"], tgt[target_col]])
        keys = pd.MultiIndex.from_arrays([df["la"], df[col]])
        bad = df[df[col].notna().to_numpy() & df["la"].isin(read_las).to_numpy() & ~keys.isin(valid)]
        for f, r, v in zip(bad["src_file"], bad["src_row"], bad[col]):
            problems.append(Problem(f, int(r), col, str(v), rule))

    link("participants", "team_id", "teams", "team_id", "must be a team_id of the same LA's teams file")
    for table in ("survey", "casefile_audit"):
        link(
            table,
            "participant_id",
            "participants",
            "participant_id",
            "must be a participant_id of the same LA's participants file",
        )

    # attendance and feedback may name staff outside the participants table,
    # but never a participant of another LA
    parts = tables["participants"].dropna(subset=["participant_id"])
    home = dict(zip(parts["participant_id"], parts["la"]))
    for table in ("attendance", "feedback"):
        df = tables[table]
        other = df["person_id"].map(home)
        bad = df[other.notna() & (other != df["la"])]
        for f, r, v, la in zip(bad["src_file"], bad["src_row"], bad["person_id"], other[bad.index]):
            problems.append(Problem(f, int(r), "person_id", str(v), f"is a participant of {la}, not of this LA"))

    # every component offered in attendance has its intended audience
    att, tgt = tables["attendance"], tables["ipe_targets"]
    offered = att[att["component"].notna() & att["la"].isin(read_in["ipe_targets"])]
    tgt = tgt.dropna(subset=["component"])
    targets = set(zip(tgt["la"], tgt["component"]))
    for (la, comp), rows in offered.groupby(["la", "component"], sort=True):
        if (la, comp) not in targets:
            problems.append(
                Problem(
                    rows["src_file"].iloc[0],
                    int(rows["src_row"].min()),
                    "component",
                    str(comp),
                    "is offered in attendance but has no row in the LA's ipe_targets: give its intended_n",
                    where=f"{len(rows)} attendance row(s)",
                )
            )
    return problems
