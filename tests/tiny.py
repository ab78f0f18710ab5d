"""A tiny hand-made data root (one or two LAs, four participants each) whose
process and cost figures the tests work out by plain arithmetic."""

from __future__ import annotations

from pathlib import Path

from isafe_helpers.data.contract import DEFAULT_INSTRUMENT

ITEMS = DEFAULT_INSTRUMENT.items


def _survey(pids, scores=None):
    """Every item of every participant 3, unless ``scores[pid] = (baseline, followup)``
    sets all items of that participant's waves (so a scale without reverse-coded
    items, such as confidence, scores exactly that value)."""
    scores = scores or {}
    head = "participant_id,wave," + ",".join(ITEMS)
    rows = [
        f"{p},{w}," + ",".join(str(scores.get(p, (3, 3))[k]) for _ in ITEMS)
        for p in pids
        for k, w in enumerate(("baseline", "followup"))
    ]
    return "\n".join([head, *rows]) + "\n"


def make_root(
    tmp_path: Path,
    la: str,
    attendance: str,
    targets: str,
    feedback: str | None,
    fidelity: str | None,
    costs: str,
    n_people: int = 4,
    n_treated: int = 2,
    people: list[tuple[str, str, str]] | None = None,
    scores: dict | None = None,
) -> Path:
    """One LA folder under ``tmp_path / "root"``: participants ``<la>-P1`` .. ``<la>-P<n_people>``,
    the first ``n_treated`` in treatment team ``<la>-T1``, the rest in control team ``<la>-T2``.

    ``people`` optionally gives each participant's (role, age_band, years_qualified);
    by default all are social workers aged 30 to 39 with 5 years qualified.
    """
    d = tmp_path / "root" / la
    d.mkdir(parents=True)
    pids = [f"{la}-P{i}" for i in range(1, n_people + 1)]
    people = people or [("social_worker", "30_39", "5")] * n_people
    (d / "teams.csv").write_text(f"team_id,arm\n{la}-T1,treatment\n{la}-T2,control\n")
    (d / "participants.csv").write_text(
        "participant_id,team_id,role,age_band,years_qualified\n"
        + "".join(
            f"{p},{la}-T{1 if i < n_treated else 2},{r},{a},{y}\n" for i, (p, (r, a, y)) in enumerate(zip(pids, people))
        )
    )
    (d / "survey.csv").write_text(_survey(pids, scores))
    (d / "casefile_audit.csv").write_text(
        "participant_id,wave,cases_audited,father_contact_recorded\n"
        + "".join(f"{p},{w},4,2\n" for p in pids for w in ("baseline", "followup"))
    )
    (d / "attendance.csv").write_text(attendance)
    (d / "ipe_targets.csv").write_text(targets)
    if feedback is not None:
        (d / "feedback.csv").write_text(feedback)
    if fidelity is not None:
        (d / "fidelity.csv").write_text(fidelity)
    (d / "costs.csv").write_text(costs)
    return tmp_path / "root"


TARGETS = (
    "component,intended_n\nfather_engagement,2\nmotivational_interviewing,4\n"
    "qa_audit,1\nchampion,1\nleaders_webinar,1\n"
)
COSTS_HEAD = "item,category,phase,bearer,quantity,unit,unit_cost_gbp,price_year\n"


def standard_root(tmp_path: Path) -> Path:
    """One LA with edge cases: a component nobody attended, a person attending
    twice, staff outside the participants table, reach over 100%."""
    la = "LA01"
    attendance = (
        "person_id,component,attended\n"
        f"{la}-P1,father_engagement,true\n"
        f"{la}-P1,father_engagement,true\n"  # attended twice: counted once
        f"{la}-P2,father_engagement,no\n"
        f"{la}-P2,motivational_interviewing,yes\n"
        f"{la}-X9,father_engagement,1\n"  # staff outside the participants table
        f"{la}-P3,motivational_interviewing,1\n"  # a control-team participant
        f"{la}-M1,qa_audit,false\n"  # nobody attended qa_audit
        f"{la}-M1,champion,true\n"
        f"{la}-L1,leaders_webinar,true\n"
        f"{la}-L2,leaders_webinar,true\n"  # 2 of 1 intended: over 100%
    )
    feedback = (
        "person_id,component,satisfaction,usefulness,would_recommend,comment\n"
        f"{la}-P1,father_engagement,5,4,true,Great session\n"
        f"{la}-X9,father_engagement,3,,,\n"
        f"{la}-P2,motivational_interviewing,4,5,false,\n"
    )
    fidelity = (
        "session_id,component,planned_elements,delivered_elements,quality\n"
        "S1,father_engagement,10,9,4\nS2,father_engagement,6,3,\nS3,champion,4,4,5\n"
    )
    costs = COSTS_HEAD + (
        "trainer,trainer_fees,delivery,developer,10,hours,50,2023\n"  # 500
        "licence,licences,setup,funder,1,item,100,2023\n"  # 100
        "attending,staff_time,delivery,local_authority,8,hours,30,2023\n"  # 240, not financial
    )
    return make_root(tmp_path, la, attendance, TARGETS, feedback, fidelity, costs)
