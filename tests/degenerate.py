"""Small valid data roots with degenerate features (issue 23), and the analyses run on them directly.

:func:`make_root` writes a root that the data contract accepts, from a
:class:`Spec` naming its shape (LAs, teams and their arms, staff per team)
and its degenerate features (a constant item or scale by wave or LA,
case-file outcomes that separate the arms, an LA with no case files, no
feedback, no fidelity log, no costs of a phase, every follow-up survey
missing in one arm, duplicated scores, values at the rule bounds).
:func:`analyse` runs every analysis a strand's notebook runs, for every
scope, and returns the rows and tables they would publish; :func:`check`
asserts what a reader may rely on (no exception, a reason for every value
not estimable, every published statistic finite).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from isafe_helpers.data.contract import DEFAULT_INSTRUMENT

ITEMS = DEFAULT_INSTRUMENT.items
SCALE_ITEMS = {s: [i for i in ITEMS if i.startswith(p)] for s, p in (
    ("confidence", "conf_"), ("competence", "comp_"), ("org_practice", "org_"),
    ("strategy_effectiveness", "eff_"), ("strategy_frequency", "freq_"),
)}  # fmt: skip
COMPONENTS = ("father_engagement", "motivational_interviewing", "qa_audit", "champion", "leaders_webinar")
CATEGORIES = ("personnel", "trainer_fees", "materials", "venue", "travel", "licences", "overheads", "other")


@dataclass
class Spec:
    """The shape and degenerate features of a root (defaults: an ordinary two-LA trial)."""

    #: per LA, the arm of each team (``"t"`` or ``"c"``)
    arms: list[str] = field(default_factory=lambda: ["ttcc", "tcct"])
    #: staff per team (every team)
    staff: int = 3
    seed: int = 0
    #: (scale, LA index or None for every LA, wave or None for both): every answer 3
    constant_scales: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    #: items answered 3 by everyone at both waves
    constant_items: list[str] = field(default_factory=list)
    #: case files: every treatment file records the contact details, no control file does
    separation: bool = False
    #: LA indexes whose casefile_audit holds the header only
    no_casefiles: list[int] = field(default_factory=list)
    feedback: bool = True
    fidelity: bool = True
    #: a cost phase left out of every LA (``"setup"`` or ``"delivery"``), or None
    no_cost_phase: str | None = None
    #: an arm (``"treatment"`` or ``"control"``) with no follow-up survey at all, or None
    no_followup_arm: str | None = None
    #: every participant's answers copied from the first participant's
    duplicated: bool = False
    #: answers only at the bounds of the rule (1 or 5), case files 0 of 0 or all recorded
    extremes: bool = False


def _write(path: Path, head: list[str], rows: list[list]) -> None:
    path.write_text(",".join(head) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def make_root(base: Path, spec: Spec) -> Path:
    """Write the root described by ``spec`` under ``base / "root"`` and return its path."""
    rng = np.random.default_rng(spec.seed)
    root = base / "root"
    root.mkdir(parents=True)
    first: dict[str, list[int]] = {}
    for k, arms in enumerate(spec.arms):
        la = f"LA{k + 1:02d}"
        d = root / la
        d.mkdir()
        teams = [(f"{la}-T{j + 1}", "treatment" if a == "t" else "control") for j, a in enumerate(arms)]
        _write(d / "teams.csv", ["team_id", "arm"], [list(t) for t in teams])
        people = [(f"{t}-P{i + 1}", t, arm) for t, arm in teams for i in range(spec.staff)]
        roles = ("social_worker", "senior_practitioner", "team_manager", "other")
        ages = ("under_30", "30_39", "40_49", "50_plus", "")
        _write(
            d / "participants.csv",
            ["participant_id", "team_id", "role", "age_band", "years_qualified"],
            [[p, t, roles[rng.integers(4)], ages[rng.integers(5)], rng.integers(0, 51)] for p, t, _ in people],
        )
        survey = []
        for p, _t, arm in people:
            for wave in ("baseline", "followup"):
                if wave == "followup" and arm == spec.no_followup_arm:
                    continue
                if spec.extremes:
                    ans = list(rng.choice([1, 5], size=len(ITEMS)))
                else:
                    centre = int(rng.integers(1, 6))
                    ans = list(np.clip(centre + rng.integers(-1, 2, size=len(ITEMS)), 1, 5))
                if spec.duplicated:
                    ans = first.setdefault(wave, ans)
                row = dict(zip(ITEMS, ans))
                for item in spec.constant_items:
                    row[item] = 3
                for scale, la_k, w in spec.constant_scales:
                    if la_k in (None, k) and w in (None, wave):
                        for item in SCALE_ITEMS[scale]:
                            row[item] = 3
                if rng.random() < 0.1:  # an unanswered item now and then
                    row[ITEMS[int(rng.integers(len(ITEMS)))]] = ""
                survey.append([p, wave, *(row[i] for i in ITEMS)])
        _write(d / "survey.csv", ["participant_id", "wave", *ITEMS], survey)
        audits = []
        if k not in spec.no_casefiles:
            for p, _t, arm in people:
                for wave in ("baseline", "followup"):
                    n = 0 if spec.extremes and rng.random() < 0.2 else int(rng.integers(1, 9))
                    if spec.separation and wave == "followup":
                        r = n if arm == "treatment" else 0
                    elif spec.extremes:
                        r = n if rng.random() < 0.5 else 0
                    else:
                        r = int(rng.integers(0, n + 1))
                    audits.append([p, wave, n, r])
        _write(d / "casefile_audit.csv", ["participant_id", "wave", "cases_audited", "father_contact_recorded"], audits)
        treated = [p for p, _t, arm in people if arm == "treatment"]
        att = [[p, c, "true" if rng.random() < 0.7 else "false"] for p in treated for c in COMPONENTS[:2]]
        att += [[f"{la}-M1", c, "true"] for c in COMPONENTS[2:]]
        _write(d / "attendance.csv", ["person_id", "component", "attended"], att)
        _write(d / "ipe_targets.csv", ["component", "intended_n"], [[c, max(1, len(treated))] for c in COMPONENTS])
        if spec.feedback:
            fb = [[p, c, rng.integers(1, 6), rng.integers(1, 6), "true"] for p, c, a in att if a == "true"]
            _write(d / "feedback.csv", ["person_id", "component", "satisfaction", "usefulness", "would_recommend"], fb)
        if spec.fidelity:
            fid = [
                [f"S{j}", COMPONENTS[j % 2], 10, int(rng.integers(0, 11)), int(rng.integers(1, 6))] for j in range(3)
            ]
            _write(
                d / "fidelity.csv",
                ["session_id", "component", "planned_elements", "delivered_elements", "quality"],
                fid,
            )
        costs = [
            [
                f"item{j}",
                CATEGORIES[j % len(CATEGORIES)],
                phase,
                "developer",
                int(rng.integers(0, 20)),
                "hours",
                40,
                2023,
            ]
            for j, phase in enumerate(("setup", "delivery", "delivery"))
            if phase != spec.no_cost_phase
        ]
        _write(
            d / "costs.csv",
            ["item", "category", "phase", "bearer", "quantity", "unit", "unit_cost_gbp", "price_year"],
            costs,
        )
    return root


# ---------------------------------------------------------------------------
def analyse(data, heavy: bool = True) -> list:
    """Every analysis the notebooks run, for the pooled trial and each LA: the result objects.

    ``heavy=False`` leaves out multiple imputation and randomisation inference (the costly checks).
    """
    from isafe_helpers import cost, impact, process
    from isafe_helpers.impact import sensitivity

    out: list = []
    year = cost.report_price_year(data)
    for scope in ["trial", *data.las]:
        d = data.for_scope(scope)
        primary = impact.primary_all(d)
        mods = impact.moderators(d)
        out += [
            impact.trial_flow(d),
            impact.attrition(d),
            impact.baseline_equivalence(d),
            primary,
            impact.change_summary(d),
            impact.cace_all(d, primary),
            mods,
            impact.la_heterogeneity(d, primary, mods),
            impact.power_analysis(d),
        ]
        if heavy:
            out.append(impact.robustness(d, primary, n_perm=50, n_imputations=3))
            out.append(impact.missing_data(d, primary, n_imputations=3))
        else:
            out += [sensitivity.cluster_robust(d, s) for s in d.instrument.scale_names]
            out.append(sensitivity.casefile_cluster_robust(d))
        out += [
            process.reach(d),
            process.dose(d),
            process.satisfaction(d),
            process.usefulness(d),
            process.response_rate(d),
            process.fidelity(d),
            process.dose_outcome(d),
            cost.unit_cost(d, price_year=year),
            cost.sensitivity(d, price_year=year),
        ]
    return out


#: Words a reason must hold beyond its prefix (``not estimable:`` alone says nothing).
_REASON = re.compile(r"^(not estimable|did not converge|not available)\s*:?\s*(.*)$", re.S)


def check(results: list) -> int:
    """Assert what a reader may rely on; return the number of rows checked.

    - every ``not estimable`` / ``did not converge`` note gives a reason;
    - a model estimate that is missing has a note saying why;
    - every number a table publishes is finite (``[x]`` where it is not) and every
      ``[x]`` in a table with a note column has a note in its row.
    """
    from isafe_helpers.publish.tables import NOT_AVAILABLE, protected

    n = 0
    for res in results:
        rows = res.rows() if hasattr(res, "rows") else []
        for r in rows:
            n += 1
            note = str(r.get("note") or "")
            for part in note.split("; "):
                m = _REASON.match(part)
                if m:
                    assert m.group(2).strip(), f"{r['analysis']}/{r['outcome']}/{r['quantity']}: no reason: {note!r}"
            est = r.get("estimate")
            if r.get("quantity") in ("treatment_effect", "odds_ratio", "risk_difference", "hedges_g_total"):
                if est is None or (isinstance(est, float) and math.isnan(est)):
                    assert note.strip(), f"{r['analysis']}/{r['outcome']}/{r['quantity']}: missing with no reason"
        tables = []
        if hasattr(res, "table"):
            try:
                tables.append(res.table())
            except (KeyError, IndexError):
                # a result with nothing to show: its notebook shows a sentence instead (e.g. heterogeneity)
                assert not getattr(res, "estimable", True) or getattr(res, "empty", False), type(res)
        for t in tables:
            if not hasattr(t, "columns"):
                continue
            cells = protected(t, limit=1)
            for col in [c.key for c in t.columns if c.kind != "text"]:
                for v in cells[col].astype(str):
                    assert not re.search(r"\b(nan|inf|NaN|None)\b", v), f"{t.caption}: {col}: {v!r}"
            if "note" in cells.columns:
                for _, row in cells.iterrows():
                    if any(v == NOT_AVAILABLE for v in row.to_numpy()):
                        assert str(row["note"]).strip() or t.notes, f"{t.caption}: [x] with no reason: {dict(row)}"
    return n


# ---------------------------------------------------------------------------
# In memory: the same features applied to a loaded root's tables (cheap enough for hundreds of examples)
def vary(data, spec: Spec):
    """A copy of validated ``data`` with new answers and case files, and ``spec``'s features applied.

    Only values change (within the contract's rules) and rows or whole optional tables are left
    out, as :func:`make_root` does on disk; the shape (LAs, teams, arms, staff) is ``data``'s.
    Scores are computed again by the loader's own scoring.
    """
    from isafe_helpers.data.loading import TrialData
    from isafe_helpers.data.scoring import score_scales

    rng = np.random.default_rng(spec.seed)
    t = {k: v.copy() for k, v in data.tables.items()}
    arm = t["participants"]["team_id"].map(t["teams"].set_index("team_id")["arm"])
    arm_of = dict(zip(t["participants"]["participant_id"], arm))
    s = t["survey"].drop(columns=list(data.instrument.scale_names))
    if spec.no_followup_arm:
        s = s[~((s["wave"] == "followup") & (s["participant_id"].map(arm_of) == spec.no_followup_arm))]
    n = len(s)
    if spec.extremes:
        vals = rng.choice([1.0, 5.0], size=(n, len(ITEMS)))
    else:
        vals = np.clip(rng.integers(1, 6, size=(n, 1)) + rng.integers(-1, 2, size=(n, len(ITEMS))), 1, 5).astype(float)
    if spec.duplicated:
        vals[:] = vals[0]
    vals[rng.random(size=vals.shape) < 0.05] = np.nan
    for j, item in enumerate(ITEMS):
        s[item] = pd.array(vals[:, j], dtype=s[item].dtype) if str(s[item].dtype) != "object" else vals[:, j]
    la_codes = sorted(data.las)
    for item in spec.constant_items:
        s[item] = s[item] * 0 + 3
    for scale, la_k, w in spec.constant_scales:
        m = pd.Series(True, index=s.index)
        if la_k is not None:
            m &= s["la"] == la_codes[la_k % len(la_codes)]
        if w is not None:
            m &= s["wave"] == w
        for item in SCALE_ITEMS[scale]:
            s.loc[m, item] = 3
    t["survey"] = score_scales(s.reset_index(drop=True), data.instrument)
    c = t["casefile_audit"]
    audited = rng.integers(0 if spec.extremes else 1, 9, size=len(c))
    if spec.separation:
        treated = (c["participant_id"].map(arm_of) == "treatment").to_numpy()
        rec = np.where(c["wave"].to_numpy() == "followup", np.where(treated, audited, 0), audited // 2)
    elif spec.extremes:
        rec = np.where(rng.random(len(c)) < 0.5, audited, 0)
    else:
        rec = (rng.random(len(c)) * (audited + 1)).astype(int)
    c["cases_audited"] = pd.array(audited, dtype=c["cases_audited"].dtype)
    c["father_contact_recorded"] = pd.array(rec, dtype=c["father_contact_recorded"].dtype)
    for k in spec.no_casefiles:
        c = c[c["la"] != la_codes[k % len(la_codes)]]
    t["casefile_audit"] = c.reset_index(drop=True)
    if not spec.feedback:
        t["feedback"] = t["feedback"].iloc[0:0]
    if not spec.fidelity:
        t["fidelity"] = t["fidelity"].iloc[0:0]
    if spec.no_cost_phase:
        t["costs"] = t["costs"][t["costs"]["phase"] != spec.no_cost_phase].reset_index(drop=True)
    return TrialData(
        data.root, list(data.las), data.instrument, t, data.deflators, data.synthetic, data.fingerprint,
        list(data.warnings), list(data.notes), dict(data.la_names), data.protocol,
    )  # fmt: skip


def analyse_light(data, scale: str) -> list:
    """Every model of one scale, for the pooled trial and its first LA (the descriptive process and cost
    tables, costly in pandas and not models, are left to :func:`analyse`)."""
    from isafe_helpers import impact
    from isafe_helpers.impact import sensitivity

    out: list = []
    for scope in ["trial", data.las[0]]:
        d = data.for_scope(scope)
        p = impact.primary(d, scale)
        out += [
            p,
            impact.casefile(d),
            impact.cace(d, p),
            sensitivity.cluster_robust(d, scale),
            sensitivity.multiple_imputation(d, scale, n_imputations=2, n_cycles=2),
            sensitivity.randomisation_inference(d, scale, n_perm=20),
        ]
    out.append(impact.power_analysis(data))
    return out
