"""The trial protocol: the primary outcome and the planned design (``protocol.yml`` at the data root).

The file is optional. Its shape (every key optional)::

    primary_outcome: confidence   # a scale of the instrument, or father_contact_recorded
    design:                       # the protocol's planned design
      las: 8                      # local authorities (randomisation strata)
      teams: 48                   # teams to randomise
      team_size: 10               # staff per team
      share_treated: 0.5          # share of teams allocated to the intervention
      mdes: 0.25                  # the protocol's planned MDES (SD units); optional

What the file does not give is taken from :data:`DEFAULT_DESIGN` and
:data:`DEFAULT_PRIMARY` and is stated as an assumption
(:attr:`Protocol.assumptions`): the handbook's default for the bundled
synthetic data is the primary outcome ``confidence`` (the published ISAFE
summary names no single primary outcome) and the plan of the ISAFE protocol
(48 teams in 8 LAs of about 10 staff, half of the teams treated; no planned
MDES stated). With an ``instrument.yml`` that has no ``confidence`` scale the
default primary outcome is the instrument's first scale.

Every other outcome of the impact strand (the other scales and the case-file
outcome) is secondary.

A file that breaks these rules is reported through the loader's
:class:`~isafe_helpers.data.loading.DataValidationError`, one
:class:`~isafe_helpers.data.readers.Problem` per broken rule, naming the file,
its line, the key (``design.teams``), the value and the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from isafe_helpers.data.contract import CASEFILE_OUTCOME, PROTOCOL_FILE
from isafe_helpers.data.readers import Problem

__all__ = [
    "DEFAULT_DESIGN",
    "DEFAULT_PRIMARY",
    "PlannedDesign",
    "Protocol",
    "default_protocol",
    "protocol_of",
    "read_protocol",
]

#: The handbook's default primary outcome (when ``protocol.yml`` does not name one).
DEFAULT_PRIMARY = "confidence"


@dataclass(frozen=True)
class PlannedDesign:
    """The protocol's planned design: LAs, teams, staff per team, share of teams treated, planned MDES."""

    las: int
    teams: int
    team_size: float
    share_treated: float
    mdes: float | None = None

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

    primary_outcome: str
    design: PlannedDesign = DEFAULT_DESIGN
    source: str = "default"
    assumptions: tuple[str, ...] = field(default=())

    def role(self, outcome: str) -> str:
        """``"primary"`` or ``"secondary"``."""
        return "primary" if outcome == self.primary_outcome else "secondary"

    def secondary(self, outcomes) -> list[str]:
        """The secondary outcomes among ``outcomes``, in their order."""
        return [o for o in outcomes if o != self.primary_outcome]

    @property
    def assumed_primary(self) -> bool:
        return any(a.startswith("primary outcome") for a in self.assumptions)

    def primary_source(self) -> str:
        """Where the primary outcome comes from, in words."""
        if self.assumed_primary:
            return f"assumed: the handbook's default, no {PROTOCOL_FILE} naming one"
        return f"named by {PROTOCOL_FILE}"

    def primary_note(self) -> str:
        """``primary outcome (<where it comes from>)``, for the estimates' notes."""
        return f"primary outcome ({self.primary_source()})"

    def statement(self) -> str:
        """One paragraph for the book: the primary outcome, the plan, and what is assumed."""
        text = (
            f"Primary outcome: {self.primary_outcome}. Planned design: {self.design.describe()}. "
            "The other survey scales and the case-file outcome are secondary."
        )
        if self.assumptions:
            text += " Assumed (not given by a protocol.yml at the data root): " + "; ".join(self.assumptions) + "."
        return text


def default_protocol(outcomes) -> Protocol:
    """The handbook's default for an instrument with these scales (``protocol.yml`` absent).

    >>> default_protocol(["confidence", "competence"]).primary_outcome
    'confidence'
    >>> default_protocol(["wellbeing"]).primary_outcome
    'wellbeing'
    """
    outcomes = list(outcomes)
    primary = DEFAULT_PRIMARY if DEFAULT_PRIMARY in outcomes or not outcomes else outcomes[0]
    return Protocol(
        primary,
        DEFAULT_DESIGN,
        "default",
        (_assumed_primary(primary), _assumed_design()),
    )


def _assumed_primary(primary: str) -> str:
    return f"primary outcome {primary} (the published summary names none; the handbook's default)"


def _assumed_design() -> str:
    return f"planned design {DEFAULT_DESIGN.describe()} (the ISAFE protocol's plan)"


def protocol_of(data) -> Protocol:
    """The protocol a scope's data carry, or the default for their instrument."""
    p = getattr(data, "protocol", None)
    if p is not None:
        return p
    instrument = getattr(data, "instrument", None)
    return default_protocol(instrument.scale_names if instrument is not None else [DEFAULT_PRIMARY])


# --------------------------------------------------------------------------
# Reading and validating protocol.yml
# --------------------------------------------------------------------------
_TOP_KEYS = ("primary_outcome", "design")
_DESIGN_KEYS = ("las", "teams", "team_size", "share_treated", "mdes")


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
            Problem(PROTOCOL_FILE, None, None, None, "must be a mapping of keys (primary_outcome, design)")
        ]

    for k in raw:
        if str(k) not in _TOP_KEYS:
            bad(str(k), None, f"unknown key: allowed keys are {', '.join(_TOP_KEYS)}")

    allowed = [*scales, CASEFILE_OUTCOME]
    primary, assumptions = default.primary_outcome, []
    if "primary_outcome" in raw:
        v = raw["primary_outcome"]
        if isinstance(v, str) and v.strip() in allowed:
            primary = v.strip()
        else:
            bad("primary_outcome", v, "must name an analysed outcome: one of " + ", ".join(allowed))
    else:
        assumptions.append(_assumed_primary(primary))

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
            }[k](x)
            if ok and x is not None:
                vals[k] = x
            else:
                bad(f"design.{k}", v, f"must be {DESIGN_RULES[k]}")
        if "las" in vals and "teams" in vals and vals["teams"] < 2 * vals["las"]:
            bad("design.teams", int(vals["teams"]), f"must be {DESIGN_RULES['teams']} ({int(vals['las'])} LAs)")
        missing = [k for k in _DESIGN_KEYS if k != "mdes" and k not in d]
        if missing:
            bad("design", None, "must give every one of " + ", ".join(k for k in _DESIGN_KEYS if k != "mdes"))
        if not problems:
            design = PlannedDesign(
                las=int(vals["las"]),
                teams=int(vals["teams"]),
                team_size=float(vals["team_size"]),
                share_treated=float(vals["share_treated"]),
                mdes=vals.get("mdes"),
            )
    else:
        assumptions.append(_assumed_design())
    if problems:
        return default, problems
    return Protocol(primary, design, PROTOCOL_FILE, tuple(assumptions)), []
