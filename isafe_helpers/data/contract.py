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


#: Optional file at the data root: the primary outcome and the planned design
#: (read and checked by :mod:`isafe_helpers.data.protocol`).
PROTOCOL_FILE = "protocol.yml"


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
    """The survey instrument: an ordered set of scales."""

    scales: tuple[Scale, ...]

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

        The file has the default instrument's shape::

            scales:
              confidence:
                items: [conf_1, conf_2, conf_3, conf_4, conf_5, conf_6]
                reverse: []
                min: 1
                max: 5
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
            out.append(Scale(str(name), items, reverse, int(spec.get("min", 1)), int(spec.get("max", 5))))
        return cls(tuple(out))


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
            bounds.append(f"> {self.gt:g}")
        if self.ge is not None:
            bounds.append(f">= {self.ge:g}")
        if self.le is not None:
            bounds.append(f"<= {self.le:g}")
        if bounds:
            parts.append(" and ".join(bounds))
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
    needs_rows: bool = False  # a header with no data rows is an error

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
                Field("cases_audited", "int", "Case files audited", ge=0),
                Field(
                    "father_contact_recorded",
                    "int",
                    "Files holding the father's contact details",
                    ge=0,
                    at_most="cases_audited",
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
            notes=("Required in an LA that has at least one treatment team.",),
        ),
        FileSpec(
            "ipe_targets",
            "The intended audience of each component in the LA.",
            (COMPONENT_FIELD, Field("intended_n", "int", "Intended audience", gt=0)),
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
                    "Coded theme of the comment (an addition to the contract): only counts are published",
                    required=False,
                    nullable=True,
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
                Field("planned_elements", "int", "Elements planned", gt=0),
                Field(
                    "delivered_elements",
                    "int",
                    "Elements delivered",
                    ge=0,
                    at_most="planned_elements",
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
                Field("quantity", "float", "Quantity", ge=0),
                Field("unit", "str", "Unit of quantity, e.g. hours, days, item"),
                Field("unit_cost_gbp", "float", "Cost per unit in GBP", ge=0),
                Field("price_year", "int", "Year whose prices unit_cost_gbp is in"),
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
        Field("year", "int", "Price year"),
        Field("index", "float", "Price index for the year", gt=0),
    ),
    required="optional",
    unique=("year",),
)
