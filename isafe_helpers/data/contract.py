"""The ISAFE data contract as code.

This module is the single place where the input files an LA sends, their
columns, types and rules, the default survey instrument and the fixed
vocabularies (arms, waves, components, strands ...) are written down. The
validator (:mod:`isafe_helpers.data.loading`) builds pandera schemas from these
specifications and the book's data dictionary page is generated from them,
so the three can never disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import yaml

# --------------------------------------------------------------------------
# Fixed vocabularies
# --------------------------------------------------------------------------
Strand = Literal["impact", "process", "cost"]


STRANDS: tuple[str, ...] = get_args(Strand)


Arm = Literal["treatment", "control"]


ARMS: tuple[str, ...] = get_args(Arm)


Wave = Literal["baseline", "followup"]


WAVES: tuple[str, ...] = get_args(Wave)


ROLES = ("social_worker", "senior_practitioner", "team_manager", "other")


AGE_BANDS = ("under_30", "30_39", "40_49", "50_plus")


Component = Literal[
    "father_engagement",
    "motivational_interviewing",
    "qa_audit",
    "champion",
    "leaders_webinar",
]


COMPONENTS: tuple[str, ...] = get_args(Component)


#: The practice pathway: the two training sessions for social workers.
PRACTICE_PATHWAY: tuple[str, ...] = ("father_engagement", "motivational_interviewing")


#: The system pathway: audit training, champions, senior leaders' webinar.
SYSTEM_PATHWAY: tuple[str, ...] = ("qa_audit", "champion", "leaders_webinar")


COST_CATEGORIES = (
    "personnel",
    "trainer_fees",
    "materials",
    "venue",
    "travel",
    "licences",
    "overheads",
    "staff_time",
    "other",
)


PHASES = ("setup", "delivery")


BEARERS = ("developer", "local_authority", "funder")


#: Spellings accepted for a boolean cell (case-insensitive); blank is missing.
TRUE_VALUES = ("true", "1", "yes")


FALSE_VALUES = ("false", "0", "no")


#: Scope name of the pooled trial; every other scope is an LA code.
TRIAL_SCOPE = "trial"


#: LA folder names: letters, digits, ``_`` and ``-`` only.
LA_CODE_PATTERN = r"^[A-Za-z0-9_-]+$"


#: Marker file written by the synthetic generator at the data root.
SYNTHETIC_MARKER = "synthetic.yml"


#: A workbook in an LA folder holding one sheet per file (as the template makes it).
RETURNS_WORKBOOK = "returns.xlsx"


#: Sheets of the template that hold no data (never read, never reported as unknown).
TEMPLATE_SHEETS = ("instructions", "lists")


#: Feedback themes when ``instrument.yml`` lists none: the codes an evaluator
#: gives free-text comments. Only counts of them are published.
DEFAULT_THEMES = (
    "practical",
    "relevant",
    "too_long",
    "too_short",
    "pace",
    "trainer",
    "materials",
    "venue_or_online",
    "time_to_attend",
    "other",
)


#: A theme is a code: letters, digits, ``_`` and ``-``, at most 40 characters.
THEME_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"


# --------------------------------------------------------------------------
# Bounds on what one file may hold (checked before it is read whole)
# --------------------------------------------------------------------------
#: Cells holding a value in one file or sheet (about 60,000 survey rows).
MAX_CELLS = 2_000_000


#: Columns of a header.
MAX_COLUMNS = 1_000


#: Bytes of a text file, or of one uncompressed part of a workbook.
MAX_PART_BYTES = 256 * 1024 * 1024


#: Problems shown per file and rule in a report (every one goes to ``validate --report``).
REPORT_LINES = 20

#: Optional file at the data root: the primary outcome and the planned design
#: (read and checked by :mod:`isafe_helpers.data.protocol`).
PROTOCOL_FILE = "protocol.yml"

#: Optional folder at the data root: the evaluator's own pages, listed in
#: ``report/report.yml`` (``pages:``), MyST Markdown citing numbers with
#: ``{fact}`SCOPE/STRAND/ANALYSIS/OUTCOME/QUANTITY[:FIELD]``` (read and checked
#: by :mod:`isafe_helpers.data.report_pages`; staged by
#: :mod:`isafe_helpers.publish.authored`). Never an LA folder.
REPORT_FOLDER = "report"


# --------------------------------------------------------------------------
# The survey instrument
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """One survey scale: its items, which are reverse-coded, and their range."""

    name: str
    items: tuple[str, ...]
    reverse: tuple[str, ...] = ()
    min: int = 1
    max: int = 5

    @property
    def min_answered(self) -> int:
        """Items needed for a score: ceil(2k/3) of the k items."""
        return math.ceil(2 * len(self.items) / 3)


@dataclass(frozen=True)
class Instrument:
    """The survey instrument: an ordered set of scales, and the fixed list of feedback themes."""

    scales: tuple[Scale, ...]
    themes: tuple[str, ...] = DEFAULT_THEMES

    @property
    def items(self) -> list[str]:
        return [item for s in self.scales for item in s.items]

    @property
    def scale_names(self) -> list[str]:
        return [s.name for s in self.scales]

    def scale(self, name: str) -> Scale:
        for s in self.scales:
            if s.name == name:
                return s
        raise KeyError(name)

    @classmethod
    def from_yaml(cls, path: Path) -> Instrument:
        """Read ``instrument.yml``.

        The file has the default instrument's shape, with an optional fixed
        list of feedback themes (default :data:`DEFAULT_THEMES`; each a code
        matching :data:`THEME_PATTERN`)::

            scales:
              confidence:
                items: [conf_1, conf_2, conf_3, conf_4, conf_5, conf_6]
                reverse: []
                min: 1
                max: 5
            themes: [practical, too_long, other]
        """
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig")) or {}
        scales = raw.get("scales")
        if not isinstance(scales, dict) or not scales:
            raise ValueError(f"{path}: needs a 'scales' mapping of scale name to items")
        out = []
        for name, spec in scales.items():
            items = tuple(str(i) for i in spec.get("items", []))
            reverse = tuple(str(i) for i in spec.get("reverse", []) or [])
            if not items or not set(reverse) <= set(items):
                raise ValueError(f"{path}: scale {name!r} needs items, and reverse items among them")
            lo, hi = spec.get("min", 1), spec.get("max", 5)
            if not all(isinstance(x, int) and abs(x) <= 1_000 for x in (lo, hi)) or lo >= hi:
                raise ValueError(f"{path}: scale {name!r} needs whole min < max within -1000 .. 1000")
            out.append(Scale(str(name), items, reverse, lo, hi))
        themes = raw.get("themes", list(DEFAULT_THEMES))
        if not isinstance(themes, list) or not all(isinstance(t, str) for t in themes):
            raise ValueError(f"{path}: 'themes' must be a list of theme codes")
        bad = [t for t in themes if not re.match(THEME_PATTERN, t)]
        if bad:
            raise ValueError(f"{path}: theme(s) {', '.join(map(repr, bad))} must be codes of letters, digits, _ and -")
        return cls(tuple(out), tuple(themes))


def number_words(x: float) -> str:
    """A bound as the rules say it: ``5``, ``0.5``, ``10,000,000``."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _items(prefix: str, k: int) -> tuple[str, ...]:
    return tuple(f"{prefix}_{i}" for i in range(1, k + 1))


DEFAULT_INSTRUMENT = Instrument(
    (
        Scale("confidence", _items("conf", 6)),
        Scale("competence", _items("comp", 6), reverse=("comp_6",)),
        Scale("org_practice", _items("org", 5), reverse=("org_5",)),
        Scale("strategy_effectiveness", _items("eff", 5)),
        Scale("strategy_frequency", _items("freq", 5)),
    )
)


#: The five primary scales of the default instrument.
SCALES: tuple[str, ...] = tuple(DEFAULT_INSTRUMENT.scale_names)


#: The case-file outcome.
CASEFILE_OUTCOME = "father_contact_recorded"


# --------------------------------------------------------------------------
# Input files
# --------------------------------------------------------------------------
DType = Literal["str", "int", "float", "bool", "date"]


@dataclass(frozen=True)
class Field:
    """One column of an input file.

    ``required`` means the column must be present; ``nullable`` that its
    cells may be blank. ``allowed``, ``ge``/``le``/``gt`` and ``link`` are
    the rules; ``link`` names a cross-file rule that the loader checks.
    ``cap`` is a declared upper bound where the contract sets none: a larger
    number is taken for a typing error (and can never overflow).
    """

    name: str
    dtype: DType
    description: str
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    integer: bool = False
    link: str | None = None
    at_most: str | None = None  # another column of the row this one may not exceed
    cap: float | None = None

    @property
    def upper(self) -> float | None:
        """The largest number allowed (the rule's or the declared bound), or None."""
        bounds = [b for b in (self.le, self.cap) if b is not None]
        return min(bounds) if bounds else None

    def rule(self) -> str:
        """The rule in words, as the data dictionary and error messages say it."""
        parts = []
        if self.allowed is not None:
            parts.append("one of " + ", ".join(f"`{a}`" for a in self.allowed))
        if self.dtype == "bool":
            parts.append("`true`/`false`, `1`/`0` or `yes`/`no`")
        if self.dtype == "date":
            parts.append("ISO date YYYY-MM-DD")
        if self.dtype == "int":
            parts.append("whole number")
        if self.dtype == "float":
            parts.append("number")
        bounds = []
        if self.gt is not None:
            bounds.append(f"> {number_words(self.gt)}")
        if self.ge is not None:
            bounds.append(f">= {number_words(self.ge)}")
        if self.le is not None:
            bounds.append(f"<= {number_words(self.le)}")
        if bounds:
            parts.append(" and ".join(bounds))
        if self.cap is not None:
            parts.append(f"at most {number_words(self.cap)} (declared bound)")
        if self.at_most:
            parts.append(f"at most {self.at_most}")
        if self.link:
            parts.append(self.link)
        parts.append("blank allowed" if self.nullable else "never blank")
        if not self.required:
            parts.append("column optional")
        return "; ".join(parts)


@dataclass(frozen=True)
class FileSpec:
    """One input file of an LA folder."""

    name: str
    description: str
    fields: tuple[Field, ...]
    required: Literal["always", "treatment", "optional"] = "always"
    unique: tuple[str, ...] | None = None  # key unique within the file
    notes: tuple[str, ...] = field(default=())
    needs_rows: bool | Literal["treatment"] = (
        False  # a header with no data rows is an error (in an LA with treatment teams)
    )

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]


COMPONENT_FIELD = Field("component", "str", "Programme component", allowed=COMPONENTS)


WAVE_FIELD = Field("wave", "str", "Survey wave", allowed=WAVES)


LINK_PARTICIPANT = "a participant_id of the same LA's participants file"


def _likert(name: str, description: str, nullable: bool) -> Field:
    return Field(name, "int", description, nullable=nullable, ge=1, le=5)


def file_specs(instrument: Instrument = DEFAULT_INSTRUMENT) -> dict[str, FileSpec]:
    """The input files of an LA folder, in the contract's order.

    The survey's item columns come from ``instrument``.
    """
    items = tuple(
        Field(
            item,
            "int",
            f"Item of the {s.name} scale" + (" (reverse-coded)" if item in s.reverse else ""),
            nullable=True,
            ge=s.min,
            le=s.max,
        )
        for s in instrument.scales
        for item in s.items
    )
    specs = [
        FileSpec(
            "teams",
            "Randomised teams and their allocated arm.",
            (
                Field("team_id", "str", "Team identifier", link="unique across the data root"),
                Field("arm", "str", "Allocated arm", allowed=ARMS),
                Field("team_type", "str", "Kind of team, free text", required=False, nullable=True),
            ),
            unique=("team_id",),
            needs_rows=True,
        ),
        FileSpec(
            "participants",
            "Staff in randomised teams at baseline.",
            (
                Field(
                    "participant_id",
                    "str",
                    "Participant identifier",
                    link="unique across the data root",
                ),
                Field("team_id", "str", "The participant's team", link="a team of the same LA"),
                Field("role", "str", "Job role", allowed=ROLES),
                Field("age_band", "str", "Age band", nullable=True, allowed=AGE_BANDS),
                Field(
                    "years_qualified",
                    "float",
                    "Years of experience as a social worker",
                    nullable=True,
                    ge=0,
                    le=50,
                ),
            ),
            unique=("participant_id",),
            needs_rows=True,
        ),
        FileSpec(
            "survey",
            "Survey answers: one row per participant per wave.",
            (
                Field("participant_id", "str", "Participant", link=LINK_PARTICIPANT),
                WAVE_FIELD,
                Field("completed_on", "date", "Date answered", required=False, nullable=True),
                *items,
            ),
            unique=("participant_id", "wave"),
            notes=("At most one row per participant and wave.",),
            needs_rows=True,
        ),
        FileSpec(
            "casefile_audit",
            "Case files audited per participant per wave.",
            (
                Field("participant_id", "str", "Participant", link=LINK_PARTICIPANT),
                WAVE_FIELD,
                Field("cases_audited", "int", "Case files audited", ge=0, cap=1_000),
                Field(
                    "father_contact_recorded",
                    "int",
                    "Files holding the father's contact details",
                    ge=0,
                    at_most="cases_audited",
                    cap=1_000,
                ),
            ),
            unique=("participant_id", "wave"),
            notes=("At most one row per participant and wave.",),
        ),
        FileSpec(
            "attendance",
            "One row per person per session offered.",
            (
                Field("person_id", "str", "A participant_id, or another staff ID"),
                COMPONENT_FIELD,
                Field("session_date", "date", "Session date", required=False, nullable=True),
                Field("attended", "bool", "Whether the person attended"),
            ),
            required="treatment",
            notes=(
                "Required, with at least one data row, in an LA that has at least one treatment team.",
                "Every component offered here needs its row in `ipe_targets`.",
            ),
            needs_rows="treatment",
        ),
        FileSpec(
            "ipe_targets",
            "The intended audience of each component in the LA.",
            (COMPONENT_FIELD, Field("intended_n", "int", "Intended audience", gt=0, cap=100_000)),
            unique=("component",),
            notes=("One row per component.",),
        ),
        FileSpec(
            "feedback",
            "Post-training feedback.",
            (
                Field("person_id", "str", "As in attendance"),
                COMPONENT_FIELD,
                _likert("satisfaction", "1 very dissatisfied .. 5 very satisfied", False),
                _likert("usefulness", "1 .. 5", True),
                Field("would_recommend", "bool", "Would recommend the training", nullable=True),
                Field(
                    "comment",
                    "str",
                    "Free text: never published",
                    required=False,
                    nullable=True,
                ),
                Field(
                    "theme",
                    "str",
                    "Coded theme of the comment: only counts are published",
                    required=False,
                    nullable=True,
                    allowed=instrument.themes,
                    link="the fixed list of themes in `instrument.yml` (or the default list)",
                ),
            ),
            required="optional",
        ),
        FileSpec(
            "fidelity",
            "One row per observed or logged session.",
            (
                Field("session_id", "str", "Session identifier", link="unique within the LA"),
                COMPONENT_FIELD,
                Field("planned_elements", "int", "Elements planned", gt=0, cap=1_000),
                Field(
                    "delivered_elements",
                    "int",
                    "Elements delivered",
                    ge=0,
                    at_most="planned_elements",
                    cap=1_000,
                ),
                _likert("quality", "Quality rating 1 .. 5", True),
            ),
            required="optional",
            unique=("session_id",),
        ),
        FileSpec(
            "costs",
            "Ingredients: one row per resource.",
            (
                Field("item", "str", "What the resource is"),
                Field("category", "str", "Cost category", allowed=COST_CATEGORIES),
                Field("phase", "str", "Phase", allowed=PHASES),
                Field("bearer", "str", "Who bears the cost", allowed=BEARERS),
                Field("quantity", "float", "Quantity", ge=0, cap=10_000_000),
                Field("unit", "str", "Unit of quantity, e.g. hours, days, item"),
                Field("unit_cost_gbp", "float", "Cost per unit in GBP", ge=0, cap=10_000_000),
                Field("price_year", "int", "Year whose prices unit_cost_gbp is in", ge=1900, cap=2100),
            ),
            notes=(
                "`staff_time` rows are the opportunity cost of staff attending training; "
                "they are reported beside, not inside, the financial cost.",
                "Several price years need `deflators.csv` at the data root.",
            ),
        ),
    ]
    return {s.name: s for s in specs}


DEFLATORS_SPEC = FileSpec(
    "deflators",
    "Price index by year, at the data root; converts costs to the report's price year.",
    (
        Field("year", "int", "Price year", ge=1900, cap=2100),
        Field("index", "float", "Price index for the year", gt=0, cap=1_000_000),
    ),
    required="optional",
    unique=("year",),
)


# --------------------------------------------------------------------------
# The rules in words (the data dictionary page and the template's
# instructions are generated from these)
# --------------------------------------------------------------------------
#: How files are found and read. Markdown; one rule per entry.
READING_RULES: tuple[str, ...] = (
    "Each LA folder holds one file per table below, named like the table (`teams.csv` or `teams.xlsx`; "
    "the name's case does not matter, so `teams.CSV` is read and named as it is). Instead, or as well, an "
    f"LA may send one workbook `{RETURNS_WORKBOOK}` with one sheet per table, named like the table, as "
    "`python -m isafe_helpers template` makes it; a table given twice (two files, or a file and a sheet) is "
    "an error. Other formats (`.xls`, `.ods`, `.txt`) are errors that say how to save the file.",
    "Hidden files and folders (`.DS_Store`), `__MACOSX` folders and Office lock files (`~$teams.xlsx`) "
    "are ignored at every level, with one line saying so.",
    "Links inside the data root are followed: a linked LA folder is read and its files are part of the "
    "data root's fingerprint, so changing them reruns every scope that reads them. A link to a folder "
    "outside the data root (a system folder, another drive) is an error and is never walked: copy the "
    "folder into the data root, or keep it in a hidden folder there (`.returns/LA02`) and link to that. A "
    "broken link, a link to a folder that holds it, and anything that is neither a file nor a folder are "
    "errors.",
    "An LA folder's optional `la.yml` gives the LA's `name` for the book and may give its `code`, which "
    "must then be the folder's name; an `la.yml` naming another LA is an error (two LA folders swapped or "
    "misnamed).",
    "CSV files: the encoding is detected (UTF-8 with or without a byte-order mark; UTF-16; else "
    'Windows-1252, the encoding of Excel\'s "CSV" on Windows, or Latin-1 when the bytes are not '
    "Windows-1252), and so is the delimiter (`,`, `;` or tab: the one that splits the header into the "
    "most column names). Lines may end in `\\r\\n` (Windows), `\\n` or `\\r` alone (old Mac Excel), even "
    "mixed in one file. The run record (`run.json`) and `validate` name every file read another way than "
    "UTF-8 with commas, and how.",
    "A CSV file mixing two encodings (some rows UTF-8, others Windows-1252, as when two exports are pasted "
    "together) is an error naming each cell whose bytes are not UTF-8, never read as garbled text "
    "(`CafÃ©`); so is a byte-order mark inside a file (where a second file was pasted in), named at its "
    "row and column.",
    "Headers are matched without regard to case (`Team_ID` is read as `team_id`, and reported as found). "
    "A column named twice is an error; unknown columns are reported and never used; a column with a blank "
    "header that holds data is an error.",
    "Workbooks (`.xlsx`): the sheet named like the table is read, else the only visible sheet; several "
    "visible sheets with none named like the table is an error naming them. Hidden sheets are never read. "
    "The header is the first row holding a value. A hidden row or column holding data is an error (a row "
    "under 1 point high or a column under half a character wide counts as hidden), as is a cell holding "
    "data beside the header (in a column with no header). Merged cells holding a value are an error naming "
    "the sheet and range: only the first cell of a merged range holds the value, so the others would read "
    "as blank. A damaged archive (a bad checksum, corrupt compressed data, sizes that do not match) is an "
    "error naming the part, and so is a row or cell written twice in the sheet's XML.",
    "A formula cell is read as the result the workbook stores, with a warning; a formula with no stored "
    "result is an error, and so is every formula of a workbook that asks to be recalculated when opened "
    "(written by a program that does not compute formulas, so its stored results cannot be trusted). An "
    "Excel error value (`#N/A`, `#DIV/0!`) is an error. Date cells are read as `YYYY-MM-DD`.",
    f"Bounds: a file or sheet may hold at most {MAX_CELLS:,} cells with values and {MAX_COLUMNS:,} columns, "
    f"and a CSV file (or a part of a workbook, uncompressed) at most {MAX_PART_BYTES // 2**20} MB; a larger "
    "one is refused before it is read whole, so no file can exhaust the machine's memory. Cells are counted "
    "as they are read, never padded to the header's width: a short row costs what it holds, only the "
    "contract's columns are kept (unknown columns are named, not held), and empty cells cost next to "
    "nothing. Each of these bounds holds a file to well under a minute and 1 GB on a 2-core machine.",
)


#: Rules every cell value meets. Markdown.
VALUE_RULES: tuple[str, ...] = (
    "Numbers are written with the ASCII digits 0-9, an optional sign, a `.` for decimals and an optional "
    "exponent (`1e3`); other digits (`٩`, `９`), thousands separators, decimal commas, `inf` and `nan` "
    "are errors, never read as missing. Whole numbers may be written `3` or `3.0` but never `3.5`.",
    "Every number is finite and within its column's rule, or within its declared bound where the contract "
    "sets none (shown as *declared bound* below), so no value can overflow: a value beyond it is an error "
    "naming the file, row, column and value.",
    "Feedback themes come only from the fixed list in `instrument.yml` (`themes:`), or the default list "
    "below; any other theme is an error, so free text never reaches a published count.",
)


#: Rules between files. Markdown.
CROSS_FILE_RULES: tuple[str, ...] = (
    "`team_id` and `participant_id` are unique across the whole data root.",
    "An ID that starts with another LA's code and a character that is not a letter or digit (`LA02-T01`, "
    "`LA02_P017` in the folder `LA01`) is an error: two LA folders swapped or misnamed. IDs that start with "
    "no LA code of the data root are never questioned.",
    "Participants belong to a team of the same LA; survey and case-file rows to a participant of the "
    "same LA; attendance and feedback never name a participant of another LA.",
    "Every component offered in `attendance` (attended or not) has its row in the LA's `ipe_targets`.",
    "An LA with at least one treatment team has an `attendance` file with at least one data row.",
    "Costs carrying more than one `price_year` need `deflators.csv` at the data root, with every year.",
)


#: Before follow-up: what a data root without follow-up rows gives. Markdown.
FOLLOWUP_RULES: tuple[str, ...] = (
    "A data root with no `followup` row in any LA's `survey` or `casefile_audit` file has no follow-up yet. "
    "It is valid: `validate` and `run` give a warning naming what is missing, and the book is the "
    "**baseline report** (the trial flow to date, baseline characteristics and balance by arm, the ICC at "
    "baseline, the minimum detectable effect size at randomisation, reach, dose and fidelity so far, and "
    "costs so far). No outcome is analysed and no effect is estimated until follow-up rows arrive; then the "
    "same command gives the full report.",
    "A participant with a baseline row and no follow-up row is normal attrition: counted as lost to "
    "follow-up, never an error.",
    "Follow-up rows in some LAs but not others: the pooled trial is the full report, and the staff of an LA "
    "without follow-up count as lost to follow-up in it (an LA may have withdrawn; the handbook cannot tell "
    "a late return from a withdrawal). `validate` warns, naming those LAs, and each such LA's own pages are "
    "its baseline report.",
    'Follow-up survey rows without follow-up case-file rows (or the reverse) is not "no follow-up yet": '
    "the outcome without follow-up rows is not estimable and says so.",
)


#: How problems are reported. Markdown.
REPORT_RULES: tuple[str, ...] = (
    "`validate` and `run` list every problem by file (file, row, column, value, rule) and exit with code 2 "
    f"before any notebook starts; at most {REPORT_LINES} lines per file and rule are printed, with a count "
    "of the rest.",
    "`python -m isafe_helpers validate --data ROOT --report problems.csv` writes every problem, one per "
    "row (file, row, column, value, rule), to open in a spreadsheet; text cells that a spreadsheet would "
    "run as a formula (starting with `=`, `+`, `-`, `@`) are written with a leading `'`.",
)
