"""Read and validate a data root of LA folders.

A data root holds one folder per LA (named by its LA code) with the files of
:func:`isafe_helpers.data.contract.file_specs`, as CSV or XLSX, plus an optional
``instrument.yml``, ``deflators.csv``, ``protocol.yml`` (read by
:mod:`isafe_helpers.data.protocol`) and, for synthetic data, the marker
``synthetic.yml``. :func:`load_root` checks every file against its pandera
schema and the links between files, and raises one
:class:`DataValidationError` listing every problem found (file, row, column,
value, rule). Nothing is fixed silently: a cell either meets its rule or is
reported.

Validation runs in two pandera passes per file: the first checks the raw
text of every cell (presence, blanks, vocabularies and that numbers, dates
and booleans parse); the second checks value rules (ranges, cross-column
rules, unique keys) on the typed values. Cross-file rules (links between
files, IDs unique across the root) are checked once every file has passed.
"""

from __future__ import annotations

import datetime
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml

from isafe_helpers.data import contract as C
from isafe_helpers.data.contract import Field, FileSpec, Instrument
from isafe_helpers.data.files import fingerprint_root
from isafe_helpers.data.protocol import Protocol, read_protocol
from isafe_helpers.data.scoring import score_scales

SUFFIXES = (".csv", ".xlsx")


ROOT_FILES = {"instrument.yml", "deflators.csv", C.PROTOCOL_FILE, C.SYNTHETIC_MARKER, "README.md", "README.txt"}


_INT_RE = r"^[+-]?\d+(\.0*)?$"


_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"


# --------------------------------------------------------------------------
# Problems and the error that carries them
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One violation of the data contract.

    ``row`` is the line number in the file as a spreadsheet shows it (the
    header is row 1), or ``None`` for a problem of the whole file or column.
    """

    file: str
    row: int | None
    column: str | None
    value: str | None
    rule: str

    def detail(self) -> str:
        """Where and what, without the file: ``row 2, column arm, value 'x': rule``."""
        where = f"row {self.row}" if self.row is not None else "file"
        col = f", column {self.column}" if self.column else ""
        val = f", value {self.value!r}" if self.value is not None else ""
        return f"{where}{col}{val}: {self.rule}"

    def __str__(self) -> str:
        return f"{self.file}: {self.detail()}"


class DataValidationError(Exception):
    """The data root breaks the contract. ``problems`` lists every violation."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.report())

    def report(self) -> str:
        """All problems, grouped by file, one line each."""
        lines = [f"The data root breaks the data contract ({len(self.problems)} problem(s)):"]
        by_file: dict[str, list[Problem]] = {}
        for p in self.problems:
            by_file.setdefault(p.file, []).append(p)
        for file in by_file:
            lines.append(f"  {file}")
            lines += [f"    {p.detail()}" for p in by_file[file]]
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------
def _excel_cell(v) -> str | None:
    """Text of a spreadsheet cell as a CSV export would write it.

    Date cells become ``YYYY-MM-DD`` (with the time only if it is not
    midnight, which then fails the date rule); whole-number cells lose the
    ``.0`` a float carries; text is kept as typed.
    """
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (pd.Timestamp, datetime.datetime)):
        ts = pd.Timestamp(v)
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat(sep=" ")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, BOM or not, any line ending) or XLSX (first sheet).

    Every cell comes back as stripped text, blanks as missing; fully blank
    rows (such as trailing ones) are dropped. The index is the row number
    as a spreadsheet shows it (header = row 1). Spreadsheet date and number
    cells become the text a CSV export would hold (see ``_excel_cell``).

    Raises
    ------
    pandas.errors.EmptyDataError
        The file holds nothing, not even a header.
    """
    if path.suffix.lower() == ".xlsx":
        df = pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
        df = df.astype(object).map(_excel_cell)
    else:
        df = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            skip_blank_lines=False,
        )
    df.columns = [str(c).strip() for c in df.columns]
    df = df.astype(object)
    for col in range(df.shape[1]):
        s = df.iloc[:, col].astype("string").str.strip()
        df.isetitem(col, s.where(s.notna() & (s != ""), None).astype(object))
    df.index = pd.RangeIndex(2, len(df) + 2)
    return df.dropna(how="all")


# --------------------------------------------------------------------------
# Schemas built from the contract
# --------------------------------------------------------------------------
def _text_checks(f: Field) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if f.dtype == "int":
        checks.append(pa.Check.str_matches(_INT_RE, error="must be a whole number"))
    elif f.dtype == "float":
        checks.append(
            pa.Check(
                lambda s: pd.to_numeric(s, errors="coerce").notna(),
                error="must be a number",
            )
        )
    elif f.dtype == "date":
        checks.append(
            pa.Check(
                lambda s: pd.to_datetime(s, format="%Y-%m-%d", errors="coerce").notna() & s.str.match(_DATE_RE),
                error="must be a date written YYYY-MM-DD",
            )
        )
    elif f.dtype == "bool":
        ok = C.TRUE_VALUES + C.FALSE_VALUES
        checks.append(
            pa.Check(
                lambda s: s.str.lower().isin(ok),
                error="must be true/false, 1/0 or yes/no",
            )
        )
    if f.allowed is not None:
        checks.append(pa.Check.isin(f.allowed, error="must be one of " + ", ".join(f.allowed)))
    return checks


def text_schema(spec: FileSpec) -> pa.DataFrameSchema:
    """First pass: every cell's text (presence, blanks, vocabulary, parsable)."""
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


def _value_checks(f: Field) -> list[pa.Check]:
    checks = []
    if f.ge is not None and f.le is not None:
        checks.append(pa.Check.in_range(f.ge, f.le, error=f"must be between {f.ge:g} and {f.le:g}"))
    elif f.ge is not None:
        checks.append(pa.Check.ge(f.ge, error=f"must be >= {f.ge:g}"))
    elif f.le is not None:
        checks.append(pa.Check.le(f.le, error=f"must be <= {f.le:g}"))
    if f.gt is not None:
        checks.append(pa.Check.gt(f.gt, error=f"must be > {f.gt:g}"))
    return checks


def value_schema(spec: FileSpec) -> pa.DataFrameSchema:
    """Second pass: value rules on typed columns, cross-column rules, keys."""
    checks = {f.name: _value_checks(f) for f in spec.fields}
    cols = {name: pa.Column(checks=c, nullable=True, required=False) for name, c in checks.items() if c}
    return pa.DataFrameSchema(
        cols,
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
            num = pd.to_numeric(s.where(s.astype(str).str.match(_INT_RE)), errors="coerce")
            out[f.name] = num.round().astype("Int64")
        elif f.dtype == "float":
            out[f.name] = pd.to_numeric(s, errors="coerce").astype("Float64")
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


def validate_frame(df: pd.DataFrame, spec: FileSpec, file: str) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    """Validate one file's text frame against its spec.

    Returns the typed frame (contract columns only), the problems and the
    warnings (unknown extra columns, which are dropped).
    """
    problems: list[Problem] = []
    notes: list[str] = []
    extra = [c for c in df.columns if c not in spec.columns]
    if extra:
        notes.append(f"{file}: unknown column(s) ignored: {', '.join(extra)}")
    dup_cols = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup_cols:
        return df, [Problem(file, 1, c, None, "column appears twice in the header") for c in dup_cols], notes
    if df.empty and spec.needs_rows:
        problems.append(Problem(file, None, None, None, "file has a header but no data rows"))
    elif df.empty:
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
                        file, int(idx), low, str(typed.at[idx, low]), f"must be at most {high} ({typed.at[idx, high]})"
                    )
                )
    return typed, problems, notes


# --------------------------------------------------------------------------
# The data root
# --------------------------------------------------------------------------
@dataclass
class TrialData:
    """Validated tables of a data root, each with an ``la`` column.

    The survey carries one score column per scale (see
    :func:`isafe_helpers.data.scoring.score_scales`).
    """

    root: Path
    las: list[str]
    instrument: Instrument
    tables: dict[str, pd.DataFrame]
    deflators: pd.DataFrame | None
    synthetic: dict | None
    fingerprint: str
    warnings: list[str] = field(default_factory=list)
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
            self.protocol,
        )


def find_las(root: Path) -> list[str]:
    """LA folders of a data root, sorted."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _file_for(la_dir: Path, name: str) -> tuple[Path | None, list[Path]]:
    found = [la_dir / f"{name}{s}" for s in SUFFIXES if (la_dir / f"{name}{s}").is_file()]
    return (found[0] if len(found) == 1 else None), found


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def load_root(root: str | Path) -> TrialData:
    """Read, validate and score a data root.

    Parameters
    ----------
    root : path
        Folder with one subfolder per LA.

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
    problems: list[Problem] = []
    notes: list[str] = []

    instrument = C.DEFAULT_INSTRUMENT
    if (root / "instrument.yml").is_file():
        try:
            instrument = Instrument.from_yaml(root / "instrument.yml")
        except (ValueError, yaml.YAMLError, AttributeError, TypeError) as exc:
            problems.append(Problem("instrument.yml", None, None, None, f"unreadable instrument: {exc}"))
    protocol, protocol_problems = read_protocol(root, instrument.scale_names)
    problems += protocol_problems
    synthetic = None
    if (root / C.SYNTHETIC_MARKER).is_file():
        synthetic = yaml.safe_load((root / C.SYNTHETIC_MARKER).read_text(encoding="utf-8"))
    specs = C.file_specs(instrument)

    las = find_las(root)
    if not las:
        problems.append(Problem(".", None, None, None, "no LA folders found in the data root"))
    for la in las:
        if not re.match(C.LA_CODE_PATTERN, la) or la == C.TRIAL_SCOPE:
            problems.append(
                Problem(la, None, None, la, "LA folder name must use letters, digits, _ and - only, and not be 'trial'")
            )
    for p in sorted(root.iterdir()):
        if p.is_file() and p.name not in ROOT_FILES and not p.name.startswith("."):
            notes.append(f"{p.name}: unknown file at the data root ignored")

    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in specs}
    for la in las:
        la_dir = root / la
        known = {f"{n}{s}" for n in specs for s in SUFFIXES}
        for p in sorted(la_dir.iterdir()):
            if p.name not in known and not p.name.startswith("."):
                notes.append(f"{la}/{p.name}: unknown file ignored")
        has_treatment = None
        for name, spec in specs.items():
            path, found = _file_for(la_dir, name)
            if len(found) > 1:
                problems.append(Problem(f"{la}/{name}", None, None, None, "both .csv and .xlsx given: keep one"))
                continue
            if path is None:
                need = spec.required == "always" or (spec.required == "treatment" and has_treatment)
                if need:
                    problems.append(Problem(f"{la}/{name}.csv", None, None, None, "required file is missing"))
                continue
            label = _rel(root, path)
            try:
                raw = read_table(path)
            except pd.errors.EmptyDataError:
                problems.append(Problem(label, None, None, None, "file is empty"))
                continue
            except Exception as exc:  # unreadable spreadsheet: report, never traceback
                problems.append(Problem(label, None, None, None, f"cannot be read: {exc}"))
                continue
            typed, file_problems, file_notes = validate_frame(raw, spec, label)
            problems += file_problems
            notes += file_notes
            typed = typed.copy()
            typed["la"] = la
            typed["src_file"] = label
            typed["src_row"] = typed.index
            frames[name].append(typed.reset_index(drop=True))
            if name == "teams" and "arm" in typed:
                has_treatment = bool((typed["arm"] == "treatment").any())

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

    problems += _link_problems(tables)

    deflators = None
    if (root / "deflators.csv").is_file():
        try:
            raw = read_table(root / "deflators.csv")
            deflators, p, n = validate_frame(raw, C.DEFLATORS_SPEC, "deflators.csv")
            problems += p
            notes += n
        except pd.errors.EmptyDataError:
            problems.append(Problem("deflators.csv", None, None, None, "file is empty"))
    costs = tables["costs"]
    years = sorted(int(y) for y in costs["price_year"].dropna().unique())
    if len(years) > 1:
        if deflators is None:
            problems.append(
                Problem(
                    "costs",
                    None,
                    "price_year",
                    ", ".join(map(str, years)),
                    "costs carry several price years: deflators.csv (year, index) is needed at the data root",
                )
            )
        else:
            missing = sorted(set(years) - set(deflators["year"].dropna().astype(int)))
            if missing:
                problems.append(
                    Problem(
                        "deflators.csv",
                        None,
                        "year",
                        ", ".join(map(str, missing)),
                        "price year(s) used in costs have no index",
                    )
                )

    if problems:
        raise DataValidationError(problems)

    for name in tables:
        tables[name] = tables[name].drop(columns=["src_file", "src_row"])
    tables["survey"] = score_scales(tables["survey"], instrument)
    return TrialData(root, las, instrument, tables, deflators, synthetic, fingerprint_root(root), notes, protocol)


def _link_problems(tables: dict[str, pd.DataFrame]) -> list[Problem]:
    """Cross-file rules: unique IDs across the root and links within each LA.

    A link is checked only in LAs whose target column was read (a missing
    column is reported once, by its own file, not again on every linked row).
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
                problems.append(Problem(f, int(r), col, str(value), f"{rule}; also at {where}"))

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
    return problems
