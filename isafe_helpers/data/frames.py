"""Analysis frames: the validated tables reshaped the way the analyses read them.

Each definition the strands share is written here once:

- the wide survey (one row per participant, a column per wave) and the
  primary analysis sample (:func:`analysis_frame`: both waves scored);
- the wide case-file audit;
- "attended" (an attendance row marked true) and the distinct attendees of
  each component;
- the practice-pathway dose of each participant (0, 1 or 2 of
  :data:`~isafe_helpers.data.contract.PRACTICE_PATHWAY`), from which
  "reached" (at least one session) and "complied" (both sessions) follow.

The survey's wide frames and the analysis sample are reshaped once per
:class:`~isafe_helpers.data.loading.TrialData` and outcome (an impact
notebook asks for them some fifty times), and each caller gets its own
copy; validated data are never changed in place, so the copy equals a
fresh reshaping.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import PRACTICE_PATHWAY
from isafe_helpers.data.loading import TrialData

WAVES_WIDE = ["baseline", "followup"]

#: Frames already made, by the id of the TrialData they were made from (dropped when it is).
_MADE: dict[int, tuple[weakref.ref, dict]] = {}


def _once(data: TrialData, key: tuple, make: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``make()`` for ``data`` the first time ``key`` is asked for; a copy of that frame each time."""
    entry = _MADE.get(id(data))
    if entry is None or entry[0]() is not data:
        ident = id(data)
        try:
            ref = weakref.ref(data, lambda _: _MADE.pop(ident, None))
        except TypeError:  # data that cannot be referred to weakly (a stand-in of a test): not kept
            return make()
        entry = _MADE[ident] = (ref, {})
    frames = entry[1]
    if key not in frames:
        frames[key] = make()
    return frames[key].copy()


def with_arm(data: TrialData, columns: list[str] | None = None) -> pd.DataFrame:
    """Participants (all columns, or ``columns``) with their team's ``arm``."""
    parts = data.participants if columns is None else data.participants[columns]
    return parts.merge(data.teams[["team_id", "arm"]], on="team_id")


def survey_wide(data: TrialData, outcome: str) -> pd.DataFrame:
    """Scale score ``outcome`` by participant (index) and wave (columns ``baseline``, ``followup``)."""

    def make() -> pd.DataFrame:
        sv = data.survey.pivot_table(index="participant_id", columns="wave", values=outcome, aggfunc="first")
        return sv.reindex(columns=WAVES_WIDE)

    return _once(data, ("survey_wide", outcome), make)


def _scores(parts: pd.DataFrame, data: TrialData, outcome: str) -> pd.DataFrame:
    return parts.merge(survey_wide(data, outcome), left_on="participant_id", right_index=True, how="left")


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df["treated"] = (df["arm"] == "treatment").astype(float)
    df["la"] = df["la"].astype(str)
    return df.reset_index(drop=True)


def analysis_frame(data: TrialData, outcome: str) -> pd.DataFrame:
    """One row per participant with baseline and follow-up scores of ``outcome``.

    Columns: participant_id, team_id, la, arm, treated (0/1), baseline,
    followup, plus age_band and years_qualified. Only participants with both
    waves scored are kept (the analysed sample).
    """
    return _once(
        data,
        ("analysis_frame", outcome),
        lambda: _typed(_scores(with_arm(data), data, outcome).dropna(subset=WAVES_WIDE).copy()),
    )


def mi_frame(data: TrialData, outcome: str) -> pd.DataFrame:
    """Every randomised participant, with baseline and follow-up score of ``outcome`` (may be missing)."""
    parts = data.participants[["participant_id", "team_id", "la"]].merge(data.teams[["team_id", "arm"]], on="team_id")
    return _typed(_scores(parts, data, outcome))


def casefile_wide(data: TrialData) -> pd.DataFrame | None:
    """Audited files and files with the father's contact details, by participant (index) and wave.

    Columns are ``(quantity, wave)`` pairs; None when either wave has no audits.
    """
    wide = data.casefile_audit.pivot_table(
        index="participant_id", columns="wave", values=["cases_audited", "father_contact_recorded"], aggfunc="first"
    )
    if not set(WAVES_WIDE) <= set(wide.columns.get_level_values(1)):
        return None
    return wide


def casefile_frame(data: TrialData) -> pd.DataFrame | None:
    """Participants audited at both waves: files at follow-up and the baseline proportion recorded.

    Columns: ``audited`` and ``recorded`` (follow-up), ``base`` (baseline
    share recorded), participant_id, team_id, la, arm. Participants with no
    files audited at either wave are left out (their proportion is undefined).
    None when either wave has no audits.
    """
    wide = casefile_wide(data)
    if wide is None:
        return None
    d = pd.DataFrame(
        {
            "audited": wide[("cases_audited", "followup")],
            "recorded": wide[("father_contact_recorded", "followup")],
            "base": wide[("father_contact_recorded", "baseline")] / wide[("cases_audited", "baseline")],
        }
    ).astype(float)
    d = d.replace([np.inf, -np.inf], np.nan).dropna()
    d = d[d["audited"] > 0]
    d = d.merge(data.participants[["participant_id", "team_id", "la"]], left_index=True, right_on="participant_id")
    return d.merge(data.teams[["team_id", "arm"]], on="team_id")


def attended(att: pd.DataFrame) -> pd.DataFrame:
    """Attendance rows marked attended (blank counts as not attended)."""
    return att[att["attended"].fillna(False).astype(bool)]


def attendees(data: TrialData) -> pd.DataFrame:
    """Distinct (LA, person, component) with at least one attended session."""
    return attended(data.attendance)[["la", "person_id", "component"]].drop_duplicates()


def practice_dose(data: TrialData) -> pd.Series:
    """Practice-pathway components (0, 1 or 2) each participant attended, indexed by participant_id.

    Counted in both arms: a control participant who attended is counted too.
    """
    att = attendees(data)
    sessions = att[att["component"].isin(PRACTICE_PATHWAY)].groupby("person_id")["component"].nunique()
    ids = data.participants["participant_id"]
    return pd.Series(ids.map(sessions).fillna(0).astype(int).to_numpy(), index=pd.Index(ids, name="participant_id"))


def treatment_participants(data: TrialData) -> pd.DataFrame:
    """Participants of treatment teams with their ``dose`` (:func:`practice_dose`) and ``reached`` (dose > 0)."""
    parts = with_arm(data)
    parts = parts[parts["arm"] == "treatment"].copy()
    parts["dose"] = parts["participant_id"].map(practice_dose(data)).astype(int)
    parts["reached"] = parts["dose"] > 0
    return parts.reset_index(drop=True)


def participants_reached(data: TrialData) -> int:
    """Participants of treatment teams who attended at least one practice-pathway session."""
    return int(treatment_participants(data)["reached"].sum())


def complied(data: TrialData) -> pd.Series:
    """1.0 for participants who attended both practice-pathway sessions, else 0.0; indexed by participant_id.

    The same rule applies in both arms (a control participant who attended
    both counts as treated: contamination).
    """
    return (practice_dose(data) == len(PRACTICE_PATHWAY)).astype(float)
