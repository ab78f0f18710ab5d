"""The trial protocol: what was pre-specified (``protocol.yml`` at the data root).

The file is optional. Its shape (every key optional)::

    synthetic: true               # the file describes a synthetic trial (the bundled data's)
    primary_outcome: confidence   # a scale of the instrument, or father_contact_recorded
    design:                       # the protocol's planned design
      las: 8                      # local authorities (randomisation strata)
      teams: 48                   # teams to randomise
      team_size: 10               # staff per team
      share_treated: 0.5          # share of teams allocated to the intervention
      mdes: 0.25                  # the protocol's planned MDES (SD units); optional
      icc: 0.10                   # planning ICC, in [0, 1); optional
      r2_between: 0.30            # planning R2 at team level, in [0, 1); optional
      r2_within: 0.40             # planning R2 at staff level, in [0, 1); optional
    registration:                 # registry, id, url, date (YYYY-MM-DD or YYYY-MM)
      registry: ISRCTN
      id: ISRCTN00000000
      url: https://...
      date: 2022-01
    dates:                        # randomised, baseline, followup (YYYY-MM-DD or YYYY-MM)
      randomised: 2022-03
    evaluator: ...                # names (text)
    developer: ...
    funder: ...

What the :class:`Protocol` object exposes: ``primary_outcome`` (``None`` when
the file names none), ``design`` (:class:`PlannedDesign`, with the planning
``icc``, ``r2_between``, ``r2_within`` or ``None``), ``registration`` (a dict
with any of ``registry``, ``id``, ``url``, ``date``; empty when not given),
``dates`` (a dict with any of ``randomised``, ``baseline``, ``followup``),
``evaluator``, ``developer``, ``funder`` (text or ``None``) and ``synthetic``.
Dates are kept as the text the file gives (``2022-03`` or ``2022-03-14``).

**No primary outcome unless the protocol names one.** Without
``primary_outcome`` nothing is called primary: every outcome (the scales and
the case-file outcome) has the role ``"outcome"`` and they form one Holm
family (methods.md, "Outcomes and multiplicity"). With one, the others are
``"secondary"`` and form the Holm family. A missing design is taken from
:data:`DEFAULT_DESIGN` (the ISAFE protocol's plan: 48 teams in 8 LAs of about
10 staff, half of the teams treated, no planned MDES nor planning ICC or R2)
and stated as an assumption (:attr:`Protocol.assumptions`).

A file that breaks these rules is reported through the loader's
:class:`~isafe_helpers.data.loading.DataValidationError`, one
:class:`~isafe_helpers.data.readers.Problem` per broken rule, naming the file,
its line, the key (``design.teams``), the value and the rule.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from isafe_helpers.data.contract import CASEFILE_OUTCOME, PROTOCOL_FILE
from isafe_helpers.data.readers import Problem

__all__ = [
    "NO_PRIMARY",
    "DEFAULT_DESIGN",
    "PlannedDesign",
    "Protocol",
    "default_protocol",
    "protocol_of",
    "read_protocol",
]


#: The ``outcome`` of the ``protocol`` / ``primary_outcome`` row when the protocol names no primary outcome.
NO_PRIMARY = "not_pre_specified"


@dataclass(frozen=True)
class PlannedDesign:
    """The protocol's planned design: LAs, teams, staff per team, share of teams treated, planned MDES."""

    las: int
    teams: int
    team_size: float
    share_treated: float
    mdes: float | None = None
    icc: float | None = None
    r2_between: float | None = None
    r2_within: float | None = None

    def describe(self) -> str:
        """``48 teams in 8 LAs of about 10 staff each, 50% of teams treated`` (and the MDES when stated)."""
        text = (
            f"{self.teams} teams in {self.las} LAs of about {self.team_size:g} staff each, "
            f"{100 * self.share_treated:g}% of teams treated"
        )
        return text + (f", planned MDES {self.mdes:g} SD" if self.mdes is not None else ", no planned MDES stated")


#: The plan of the ISAFE protocol (trial.md), used when ``protocol.yml`` gives no design.
DEFAULT_DESIGN = PlannedDesign(las=8, teams=48, team_size=10.0, share_treated=0.5, mdes=None)


@dataclass(frozen=True)
class Protocol:
    """The primary outcome and the planned design of the trial.

    ``source`` is ``"protocol.yml"`` when the file was read, else ``"default"``;
    ``assumptions`` lists, in words, each part taken from the handbook's
    default rather than from the file (empty when the file gives everything).
    """

    primary_outcome: str | None = None
    design: PlannedDesign = DEFAULT_DESIGN
    source: str = "default"
    assumptions: tuple[str, ...] = field(default=())
    registration: dict[str, str] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)
    evaluator: str | None = None
    developer: str | None = None
    funder: str | None = None
    synthetic: bool = False

    def role(self, outcome: str) -> str:
        """``"primary"``, ``"secondary"`` (a primary is named) or ``"outcome"`` (none is: one Holm family)."""
        if self.primary_outcome is None:
            return "outcome"
        return "primary" if outcome == self.primary_outcome else "secondary"

    def secondary(self, outcomes) -> list[str]:
        """The outcomes in the Holm family among ``outcomes``: all but the primary (all when none is named)."""
        return [o for o in outcomes if o != self.primary_outcome]

    def reference_outcome(self, outcomes) -> str:
        """The outcome whose sample a single figure (flow, attrition, MDES) describes: the primary, else the first."""
        outcomes = list(outcomes)
        if self.primary_outcome is not None and self.primary_outcome in outcomes:
            return self.primary_outcome
        return outcomes[0] if outcomes else (self.primary_outcome or "")

    def family_note(self) -> str:
        """How the outcomes are adjusted, in one phrase for the estimates' notes."""
        if self.primary_outcome is None:
            return f"no primary outcome pre-specified ({PROTOCOL_FILE} names none): every outcome is one Holm family"
        return "every other outcome is secondary"

    def primary_source(self) -> str:
        """Where the primary outcome comes from, in words."""
        if self.primary_outcome is None:
            return f"none: {PROTOCOL_FILE} names no primary outcome"
        return f"named by {PROTOCOL_FILE}"

    def primary_note(self) -> str:
        """``primary outcome (<where it comes from>)``, for the estimates' notes."""
        return f"primary outcome ({self.primary_source()})"

    def statement(self) -> str:
        """One paragraph for the book: the primary outcome, the plan, and what is assumed."""
        if self.primary_outcome is None:
            text = (
                f"No primary outcome was pre-specified. Planned design: {self.design.describe()}. "
                "Every outcome (the survey scales and the case-file outcome) is one family for the Holm adjustment."
            )
        else:
            text = (
                f"Primary outcome: {self.primary_outcome}. Planned design: {self.design.describe()}. "
                "The other survey scales and the case-file outcome are secondary."
            )
        if self.assumptions:
            text += " Assumed (not given by a protocol.yml at the data root): " + "; ".join(self.assumptions) + "."
        return text


def default_protocol(outcomes=()) -> Protocol:
    """The protocol when ``protocol.yml`` is absent: no primary outcome, the ISAFE plan stated as an assumption.

    >>> default_protocol(["confidence", "competence"]).primary_outcome is None
    True
    >>> default_protocol().role("confidence")
    'outcome'
    """
    return Protocol(None, DEFAULT_DESIGN, "default", (_assumed_design(),))


def _assumed_design() -> str:
    return f"planned design {DEFAULT_DESIGN.describe()} (the ISAFE protocol's plan)"


def protocol_of(data) -> Protocol:
    """The protocol a scope's data carry, or the default for their instrument."""
    p = getattr(data, "protocol", None)
    if p is not None:
        return p
    return default_protocol()


# --------------------------------------------------------------------------
# Reading and validating protocol.yml
# --------------------------------------------------------------------------
_TOP_KEYS = ("primary_outcome", "design", "registration", "dates", "evaluator", "developer", "funder", "synthetic")
_DESIGN_KEYS = ("las", "teams", "team_size", "share_treated", "mdes", "icc", "r2_between", "r2_within")
_OPTIONAL_DESIGN = ("mdes", "icc", "r2_between", "r2_within")
_REGISTRATION_KEYS = ("registry", "id", "url", "date")
_DATE_KEYS = ("randomised", "baseline", "followup")
_PEOPLE_KEYS = ("evaluator", "developer", "funder")
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$")


def _lines(text: str) -> dict[str, int]:
    """Line (1-based) of each key, as ``key`` or ``design.key``, from the YAML node tree."""
    out: dict[str, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out
    if not isinstance(node, yaml.MappingNode):
        return out
    for k, v in node.value:
        out[str(k.value)] = k.start_mark.line + 1
        if isinstance(v, yaml.MappingNode):
            for k2, _ in v.value:
                out[f"{k.value}.{k2.value}"] = k2.start_mark.line + 1
    return out


def _number(v) -> float | None:
    """A finite real number, or None (booleans and text are not numbers)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


#: The rule of each design key, in words (the error messages and the data dictionary say it so).
DESIGN_RULES = {
    "las": "a whole number of LAs, at least 1",
    "teams": "a whole number of teams, at least 4 and at least 2 per LA",
    "team_size": "a number of staff per team, greater than 0",
    "share_treated": "a share of teams treated, strictly between 0 and 1",
    "mdes": "a planned MDES in SD units, greater than 0",
    "icc": "a planning intra-cluster correlation, at least 0 and below 1",
    "r2_between": "a planning share of team-level variance explained by covariates, at least 0 and below 1",
    "r2_within": "a planning share of staff-level variance explained by covariates, at least 0 and below 1",
}


def read_protocol(root: str | Path, outcomes) -> tuple[Protocol, list]:
    """Read ``protocol.yml`` at ``root`` (if present) and check it.

    Parameters
    ----------
    root : the data root.
    outcomes : the scales of the instrument (the case-file outcome is added).

    Returns
    -------
    (Protocol, problems)
        The protocol (the default where the file is absent, or for the parts
        it does not give) and a list of
        :class:`~isafe_helpers.data.readers.Problem`, empty when the file is
        valid or absent.
    """
    scales = list(outcomes)
    default = default_protocol(scales)
    path = Path(root) / PROTOCOL_FILE
    if not path.is_file():
        return default, []
    problems: list[Problem] = []

    def bad(key: str | None, value, rule: str) -> None:
        problems.append(Problem(PROTOCOL_FILE, lines.get(key or ""), key, None if value is None else str(value), rule))

    try:
        text = path.read_text(encoding="utf-8-sig")
        raw = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        return default, [Problem(PROTOCOL_FILE, None, None, None, f"unreadable: not UTF-8 YAML ({exc})")]
    lines = _lines(text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return default, [
            Problem(PROTOCOL_FILE, None, None, None, "must be a mapping of keys (" + ", ".join(_TOP_KEYS) + ")")
        ]

    for k in raw:
        if str(k) not in _TOP_KEYS:
            bad(str(k), None, f"unknown key: allowed keys are {', '.join(_TOP_KEYS)}")

    allowed = [*scales, CASEFILE_OUTCOME]
    primary: str | None = None
    assumptions: list[str] = []
    if "primary_outcome" in raw:
        v = raw["primary_outcome"]
        if isinstance(v, str) and v.strip() in allowed:
            primary = v.strip()
        else:
            bad("primary_outcome", v, "must name an analysed outcome: one of " + ", ".join(allowed))

    def text_map(key: str, keys: tuple[str, ...], rule, what: str) -> dict[str, str]:
        out: dict[str, str] = {}
        if key not in raw:
            return out
        m = raw[key]
        if not isinstance(m, dict):
            bad(key, m, "must be a mapping of " + ", ".join(keys))
            return out
        for k, v in m.items():
            if str(k) not in keys:
                bad(f"{key}.{k}", None, f"unknown key: allowed keys under {key} are {', '.join(keys)}")
                continue
            text = v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v
            if not isinstance(text, (str, int)) or isinstance(text, bool) or not rule(str(text).strip()):
                bad(f"{key}.{k}", v, f"must be {what}")
            else:
                out[str(k)] = str(text).strip()
        return out

    def is_date(x: str) -> bool:
        return bool(_DATE.match(x))

    registration = text_map(
        "registration",
        _REGISTRATION_KEYS,
        lambda x: bool(x),
        "non-empty text (the registry, the id, the url; the date as YYYY-MM-DD or YYYY-MM)",
    )
    if "date" in registration and not is_date(registration["date"]):
        bad("registration.date", registration.pop("date"), "must be an ISO date, YYYY-MM-DD or YYYY-MM")
    dates = text_map("dates", _DATE_KEYS, is_date, "an ISO date, YYYY-MM-DD or YYYY-MM")
    people: dict[str, str | None] = {}
    for k in _PEOPLE_KEYS:
        v = raw.get(k)
        if k in raw and not (isinstance(v, str) and v.strip()):
            bad(k, v, "must be a name (non-empty text)")
        people[k] = v.strip() if isinstance(v, str) and v.strip() else None
    synthetic = raw.get("synthetic", False)
    if not isinstance(synthetic, bool):
        bad("synthetic", synthetic, "must be true or false")
        synthetic = False

    design = DEFAULT_DESIGN
    if "design" in raw:
        d = raw["design"]
        if not isinstance(d, dict):
            bad("design", d, "must be a mapping of " + ", ".join(_DESIGN_KEYS))
            d = {}
        for k in d:
            if str(k) not in _DESIGN_KEYS:
                bad(f"design.{k}", None, f"unknown key: allowed keys under design are {', '.join(_DESIGN_KEYS)}")
        vals: dict[str, float] = {}
        for k in _DESIGN_KEYS:
            if k not in d:
                continue
            v = d[k]
            x = _number(v)
            if k in ("las", "teams") and x is not None and not float(x).is_integer():
                x = None
            ok = x is not None and {
                "las": lambda x: x >= 1,
                "teams": lambda x: x >= 4,
                "team_size": lambda x: x > 0,
                "share_treated": lambda x: 0 < x < 1,
                "mdes": lambda x: x > 0,
                "icc": lambda x: 0 <= x < 1,
                "r2_between": lambda x: 0 <= x < 1,
                "r2_within": lambda x: 0 <= x < 1,
            }[k](x)
            if ok and x is not None:
                vals[k] = x
            else:
                bad(f"design.{k}", v, f"must be {DESIGN_RULES[k]}")
        if "las" in vals and "teams" in vals and vals["teams"] < 2 * vals["las"]:
            bad("design.teams", int(vals["teams"]), f"must be {DESIGN_RULES['teams']} ({int(vals['las'])} LAs)")
        required = [k for k in _DESIGN_KEYS if k not in _OPTIONAL_DESIGN]
        if any(k not in d for k in required):
            bad("design", None, "must give every one of " + ", ".join(required))
        if not problems:
            design = PlannedDesign(
                las=int(vals["las"]),
                teams=int(vals["teams"]),
                team_size=float(vals["team_size"]),
                share_treated=float(vals["share_treated"]),
                mdes=vals.get("mdes"),
                icc=vals.get("icc"),
                r2_between=vals.get("r2_between"),
                r2_within=vals.get("r2_within"),
            )
    else:
        assumptions.append(_assumed_design())
    if problems:
        return default, problems
    return (
        Protocol(
            primary,
            design,
            PROTOCOL_FILE,
            tuple(assumptions),
            registration=registration,
            dates=dates,
            evaluator=people["evaluator"],
            developer=people["developer"],
            funder=people["funder"],
            synthetic=synthetic,
        ),
        [],
    )
