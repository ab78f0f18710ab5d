"""Deterministic generator of a synthetic ISAFE data root.

The real ISAFE trial data are not public. This module writes a *synthetic*
trial with the same design (teams nested in local authorities, randomised
within LA) and the same broad shape of findings as the published evaluation:
small positive effects on confidence, competence and perceived organisational
practice, none on the two strategy scales nor on fathers' contact details in
case files, reach near 80%, about 79% of respondents satisfied, and a low cost
per participant (Foundations cost rating 2). Every number it produces is
illustrative, never the trial's.

The output follows the ISAFE data contract (section 1, "a data root") and
is byte-for-byte reproducible for the same arguments: all randomness comes
from one ``numpy.random.default_rng(seed)`` stream consumed in a fixed order,
rows are written in a fixed sort order, and no output depends on time or on
dict/set ordering.

Generative model (all parameters are module constants, see ``PARAMS``)
---------------------------------------------------------------------
Survey scales. For participant *i* in team *t* of LA *l* and scale *s*, a
standardised latent score (total variance 1 at baseline) is::

    baseline_i,s = a_l,s + u_t,s + p_i,s
    followup_i,s = a_l,s + u_t,s + rho * p_i,s + sqrt(1 - rho^2) * q_i,s
                   + T_t * m_l * (delta_s + [s == confidence] * beta * (yq_i - 10))

with LA effects ``a ~ N(0, 0.03)``, team effects ``u ~ N(0, 0.08)``
(variances), person terms ``p, q ~ N(0, 0.89)`` sharing a common factor
across scales, ``rho = 0.8`` (a 2-month test-retest correlation typical of
attitude scales), treatment indicator ``T``, LA multiplier of the
effect ``m_l ~ N(1, 0.25^2)``, ``delta = (0.22, 0.18, 0.18, 0, 0)`` SD and
``beta = 0.015`` SD per year qualified. Each item is
``clip(round(loc_s + 0.9 * latent + N(0, 0.6^2)), 1, 5)``; the reverse-coded
items (``comp_6``, ``org_5``) store ``6 - item``. About 95% of participants
answer at baseline and about 80% of them at follow-up (79% treatment, 81%
control); 2.5% of item cells are blank at random and 2% of rows stop
part-way, leaving some scales unscorable.

Case-file audits: 3 to 12 files per participant and wave, father's contact
details recorded with probability ``expit(logit(0.4) + LA + team + person)``
(SDs 0.2, 0.35, 0.3 on the logit scale), no treatment effect.

Process data (LAs with treatment teams only; a control-only LA gets
header-only process and cost files): every treatment-team participant is
offered both practice-pathway sessions, treatment-team managers plus 1-3
other managers (``S`` ids) the QA-audit and champion training, 3-6 senior
leaders the webinar. Attendance rates are drawn per LA around 81% (SD 0.07,
kept within 65-95%); 15% of non-attenders get a catch-up offer (a second
row), and 1-2 new starters outside the participants table attend. About 70%
of attendances give feedback; satisfaction is an ordered-logit draw with 79%
answering 4-5 at the mean. Costs are priced in 2023 and scale with the
number offered and the sessions run (groups of up to 15).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from isafe_helpers.data import contract as C
from isafe_helpers.data.report_pages import FOLDER as REPORT_FOLDER
from isafe_helpers.data.report_pages import write_synthetic

__all__ = ["generate", "PARAMS", "COMPONENTS", "SURVEY_ITEMS", "NOTE"]


NOTE = "Synthetic data made by the isafe synth command (isafe_helpers.data.synth); numbers are illustrative, not the ISAFE trial's."


COMPONENTS = (
    "father_engagement",
    "motivational_interviewing",
    "qa_audit",
    "champion",
    "leaders_webinar",
)


#: (scale, item prefix, number of items, reverse-coded items)
SCALES = (
    ("confidence", "conf", 6, ()),
    ("competence", "comp", 6, ("comp_6",)),
    ("org_practice", "org", 5, ("org_5",)),
    ("strategy_effectiveness", "eff", 5, ()),
    ("strategy_frequency", "freq", 5, ()),
)


SURVEY_ITEMS = tuple(f"{prefix}_{j}" for _, prefix, k, _ in SCALES for j in range(1, k + 1))


#: Parameters of the generative model (documented in the module docstring).
PARAMS: dict[str, Any] = {
    # design
    "team_size_range": (0.5, 1.5),  # team size = staff_per_team * U(range), >= 3
    "min_team_size": 3,
    "role_probs_non_manager": {"social_worker": 0.77, "senior_practitioner": 0.20, "other": 0.03},
    "blank_age_band": 0.03,
    "blank_years_qualified": 0.03,
    # survey
    "p_baseline": 0.95,
    "p_followup_given_baseline": {"treatment": 0.79, "control": 0.81},
    "var_la": 0.03,
    "var_team": 0.08,
    "rho_person": 0.8,
    "common_factor_loading": 0.6,
    "effects_sd": {
        "confidence": 0.22,
        "competence": 0.18,
        "org_practice": 0.18,
        "strategy_effectiveness": 0.0,
        "strategy_frequency": 0.0,
    },
    "confidence_effect_per_year_qualified": 0.015,
    "years_centre": 10.0,
    "la_effect_multiplier_sd": 0.25,
    "item_loading": 0.9,
    "item_noise_sd": 0.6,
    "item_location": {
        "confidence": 3.3,
        "competence": 3.5,
        "org_practice": 3.0,
        "strategy_effectiveness": 3.6,
        "strategy_frequency": 3.2,
    },
    "p_item_blank": 0.025,
    "p_survey_dropout": 0.02,  # rows where the respondent stops answering part-way
    # case-file audit
    "cases_audited_range": (3, 12),
    "p_father_contact": 0.4,
    "audit_sd_la": 0.2,
    "audit_sd_team": 0.35,
    "audit_sd_person": 0.3,
    # attendance / reach
    "attendance_rate_mean": 0.81,
    "attendance_rate_la_sd": 0.07,
    "attendance_rate_range": (0.65, 0.95),
    "p_catch_up": 0.15,  # non-attenders with a second offer
    "p_catch_up_attend": 0.75,
    "session_size": 15,
    # feedback
    "p_feedback": 0.70,
    "satisfaction_cum_probs": (0.03, 0.08, 0.21, 0.60),  # P(sat <= 1..4) at LA shift 0
    "satisfaction_la_sd": 0.25,
    "p_comment": 0.10,
    # fidelity
    "planned_elements": {
        "father_engagement": 12,
        "motivational_interviewing": 10,
        "qa_audit": 8,
        "champion": 8,
        "leaders_webinar": 6,
    },
    "p_element_missed": 0.09,
    # costs
    "price_year": 2023,
}


#: Invented names of the synthetic LAs (``la.yml``): no real authority is meant.
_LA_NAMES = ("Ashvale", "Brookmere", "Castleford Vale", "Dunmoor", "Eastwick", "Fernholt", "Greyhaven")
_TEAM_TYPES = ("assessment", "child_protection", "children_in_need", "family_support")


_AGE_BANDS = ("under_30", "30_39", "40_49", "50_plus")


_POSITIVE_COMMENTS = (
    "Useful techniques for contacting dads",
    "Good mix of theory and practice",
    "The role-play on first contact with fathers helped",
    "Practical ideas I can use this week",
    "Clear and well paced",
    "Made me rethink how I record fathers' details",
    "Would like a refresher session in six months",
)


_NEGATIVE_COMMENTS = (
    "Too much content for one session",
    "Online format made discussion hard",
    "Some examples did not fit our caseloads",
    "Would prefer in-person training",
    "Session ran over time",
)


_BASELINE_START = np.datetime64("2023-06-01", "D")


_SESSION_START = {
    "father_engagement": np.datetime64("2023-07-03", "D"),
    "motivational_interviewing": np.datetime64("2023-07-17", "D"),
    "qa_audit": np.datetime64("2023-07-10", "D"),
    "champion": np.datetime64("2023-07-24", "D"),
    "leaders_webinar": np.datetime64("2023-07-06", "D"),
}


_COLUMNS = {
    "teams": ("team_id", "arm", "team_type"),
    "participants": ("participant_id", "team_id", "role", "age_band", "years_qualified"),
    "survey": ("participant_id", "wave", "completed_on") + SURVEY_ITEMS,
    "casefile_audit": ("participant_id", "wave", "cases_audited", "father_contact_recorded"),
    "attendance": ("person_id", "component", "session_date", "attended"),
    "ipe_targets": ("component", "intended_n"),
    "feedback": ("person_id", "component", "satisfaction", "usefulness", "would_recommend", "comment"),
    "fidelity": ("session_id", "component", "planned_elements", "delivered_elements", "quality"),
    "costs": ("item", "category", "phase", "bearer", "quantity", "unit", "unit_cost_gbp", "price_year"),
}


_SMALL_INT = np.array([""] + [str(v) for v in range(1, 6)], dtype=object)  # index 0 = blank


# ---------------------------------------------------------------------------
# formatting helpers
# ---------------------------------------------------------------------------
def _csv_field(value: str) -> str:
    """Quote a text field the way RFC 4180 wants, only when needed."""
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _fmt_float(values: np.ndarray, decimals: int, missing: np.ndarray | None = None) -> list[str]:
    """Fixed-decimal text for floats, blank where ``missing``."""
    out = [f"{v:.{decimals}f}" for v in np.round(np.asarray(values, dtype=float), decimals) + 0.0]
    if missing is not None:
        for i in np.flatnonzero(missing):
            out[i] = ""
    return out


def _fmt_small_int(values: np.ndarray) -> np.ndarray:
    """Text for integers 0..5 where 0 means blank (vectorised lookup)."""
    return _SMALL_INT[np.asarray(values, dtype=np.intp)]


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[tuple[str, ...]] | list[list[str]]) -> None:
    lines = [",".join(columns)]
    lines.extend(",".join(r) for r in rows)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


def _slices(la_index: np.ndarray, n_las: int) -> np.ndarray:
    """Row boundaries of each LA in an array sorted by LA index."""
    return np.searchsorted(la_index, np.arange(n_las + 1), side="left")


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _yaml_text(seed: int, las: int, teams_per_la: int, staff_per_team: int) -> str:
    return (
        "synthetic: true\n"
        "generator: isafe synth (isafe_helpers.data.synth)\n"
        f"seed: {seed}\n"
        f"las: {las}\n"
        f"teams_per_la: {teams_per_la}\n"
        f"staff_per_team: {staff_per_team}\n"
        f'note: "{NOTE}"\n'
    )


#: The bundled trial's protocol.yml: SYNTHETIC, like the data. It names confidence as the primary outcome and gives
#: a plan (the ISAFE protocol's 48 teams in 8 LAs of about 10 staff) with planning ICC and R2 near the generator's
#: (team variance 0.08 of a total of 1; a 2-month test-retest correlation of 0.8), so the bundled book shows the
#: normal road: a named primary outcome, MDES at protocol, randomisation and analysis. Every name, id, url and date
#: is invented and says so.
PROTOCOL_TEXT = """\
# SYNTHETIC protocol of the SYNTHETIC bundled trial (isafe synth): every value below is invented for
# illustration. It is not the ISAFE trial's protocol, registration, dates or organisations.
synthetic: true
primary_outcome: confidence
design:
  las: 8
  teams: 48
  team_size: 10
  share_treated: 0.5
  mdes: 0.25
  icc: 0.08
  r2_between: 0.5
  r2_within: 0.6
registration:
  registry: SYNTHETIC registry
  id: SYNTHETIC-0000
  url: https://example.org/synthetic-registration
  date: 2022-01
dates:
  randomised: 2022-03
  baseline: 2022-02
  followup: 2022-07
evaluator: SYNTHETIC evaluator
developer: SYNTHETIC developer
funder: SYNTHETIC funder
"""


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


# ---------------------------------------------------------------------------
# main entry point
# ---------------------------------------------------------------------------
def generate(
    out: str | Path,
    seed: int = 20240601,
    las: int = 7,
    teams_per_la: int = 9,
    staff_per_team: int = 10,
) -> Path:
    """Write a synthetic ISAFE data root to `out`.

    The data root holds ``synthetic.yml`` (a marker saying the data are
    synthetic, with the arguments used), a SYNTHETIC ``protocol.yml``
    (:data:`PROTOCOL_TEXT`: confidence named primary, a planned design with
    planning ICC and R2, an invented registration, dates and organisations,
    each marked synthetic) and one folder per local authority
    (``LA01``, ``LA02``, ...; three digits when ``las >= 100``) with the nine
    CSV files of the data contract: ``teams``, ``participants``, ``survey``,
    ``casefile_audit``, ``attendance``, ``ipe_targets``, ``feedback``,
    ``fidelity`` and ``costs``.

    Parameters
    ----------
    out : str or pathlib.Path
        Folder to create. It must not exist or be empty.
    seed : int, default 20240601
        Seed of ``numpy.random.default_rng``. The same arguments give a
        byte-identical tree.
    las : int, default 7
        Number of local authorities (>= 1).
    teams_per_la : int, default 9
        Teams randomised in each LA (>= 1). Each LA treats
        ``teams_per_la // 2`` teams; when that count is odd, a seeded half
        (rounded down) of the LAs treat one more, so 7 x 9 gives 31 treatment
        and 32 control teams.
    staff_per_team : int, default 10
        Average team size (>= 1). Sizes vary between about 0.5x and 1.5x of
        it, at least 3, with one team manager per team.

    Returns
    -------
    pathlib.Path
        The data root `out`.

    Raises
    ------
    FileExistsError
        If `out` exists and is not an empty folder.
    ValueError, TypeError
        If a count is not a positive integer.

    Notes
    -----
    The generative model and its parameters are described in the module
    docstring and in ``PARAMS``. The numbers are illustrative only.

    Examples
    --------
    >>> from isafe_helpers.data.synth import generate
    >>> root = generate("/tmp/isafe-synthetic")  # doctest: +SKIP
    """
    seed = _check_int("seed", seed, 0)
    las = _check_int("las", las, 1)
    teams_per_la = _check_int("teams_per_la", teams_per_la, 1)
    staff_per_team = _check_int("staff_per_team", staff_per_team, 1)

    out = Path(out)
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise FileExistsError(f"output folder {out} exists and is not empty")
    tables = _simulate(seed, las, teams_per_la, staff_per_team)

    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.yml").write_text(
        _yaml_text(seed, las, teams_per_la, staff_per_team), encoding="utf-8", newline="\n"
    )
    (out / C.PROTOCOL_FILE).write_text(PROTOCOL_TEXT, encoding="utf-8", newline="\n")
    for k, (la_code, files) in enumerate(tables):
        la_dir = out / la_code
        la_dir.mkdir()
        for name in _COLUMNS:
            _write_csv(la_dir / f"{name}.csv", _COLUMNS[name], files[name])
        name = _LA_NAMES[k] if k < len(_LA_NAMES) else f"Synthetic LA {k + 1:02d}"
        (la_dir / "la.yml").write_text(f"name: {name}\n", encoding="utf-8", newline="\n")
    write_synthetic(out / REPORT_FOLDER)  # the evaluator's pages, marked synthetic (data.report_pages)
    return out


# ---------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------
def _simulate(seed: int, las: int, teams_per_la: int, staff_per_team: int):
    """Return ``[(la_code, {table: rows})]`` with rows as lists of text fields."""
    P = PARAMS
    rng = np.random.default_rng(seed)
    la_width = 3 if las >= 100 else 2
    la_codes = [f"LA{i + 1:0{la_width}d}" for i in range(las)]

    # ---------------- teams and randomisation --------------------------------
    n_teams = las * teams_per_la
    n_treat = np.full(las, teams_per_la // 2)
    if teams_per_la % 2 == 1:
        extra = rng.permutation(las)[: las // 2]
        n_treat[extra] += 1
    u = rng.random((las, teams_per_la))
    rank = np.argsort(np.argsort(u, axis=1, kind="stable"), axis=1, kind="stable")
    team_treated = (rank < n_treat[:, None]).ravel()
    team_la = np.repeat(np.arange(las), teams_per_la)
    team_num = np.tile(np.arange(1, teams_per_la + 1), las)
    team_width = max(2, len(str(teams_per_la)))
    team_ids = [f"{la_codes[li]}-T{k:0{team_width}d}" for li, k in zip(team_la.tolist(), team_num.tolist())]
    team_type = rng.integers(0, len(_TEAM_TYPES), n_teams)

    lo, hi = P["team_size_range"]
    size = np.maximum(P["min_team_size"], np.rint(staff_per_team * rng.uniform(lo, hi, n_teams))).astype(int)

    # ---------------- participants ------------------------------------------
    n = int(size.sum())
    p_team = np.repeat(np.arange(n_teams), size)
    p_la = team_la[p_team]
    team_start = np.concatenate([[0], np.cumsum(size)[:-1]])
    role_names = np.array(["social_worker", "senior_practitioner", "other", "team_manager"], dtype=object)
    rp = P["role_probs_non_manager"]
    role = rng.choice(3, size=n, p=[rp["social_worker"], rp["senior_practitioner"], rp["other"]])
    manager_pos = team_start + (rng.random(n_teams) * size).astype(int)
    role[manager_pos] = 3
    is_manager = role == 3

    years: np.ndarray = rng.gamma(1.6, 6.5, n) + np.where(is_manager, 6.0, 0.0) + np.where(role == 1, 4.0, 0.0)
    years = np.round(np.clip(years, 0.0, 40.0), 1)
    age = 22.0 + years + rng.gamma(1.5, 3.0, n)
    age_idx = np.digitize(age, [30.0, 40.0, 50.0])
    age_blank = rng.random(n) < P["blank_age_band"]
    years_blank = rng.random(n) < P["blank_years_qualified"]

    # participant numbers within LA, in team order
    la_start_p = np.searchsorted(p_la, np.arange(las))
    p_num = np.arange(n) - la_start_p[p_la] + 1
    max_in_la = int(np.bincount(p_la, minlength=las).max())
    p_width = max(4, len(str(max_in_la)))
    pid = [f"{la_codes[li]}-P{k:0{p_width}d}" for li, k in zip(p_la.tolist(), p_num.tolist())]
    p_treated = team_treated[p_team]

    # ---------------- survey -------------------------------------------------
    n_scales = len(SCALES)
    sd_la, sd_team = math.sqrt(P["var_la"]), math.sqrt(P["var_team"])
    sd_person = math.sqrt(1.0 - P["var_la"] - P["var_team"])
    lam = P["common_factor_loading"]
    la_eff = rng.normal(0.0, sd_la, (las, n_scales))
    team_eff = rng.normal(0.0, sd_team, (n_teams, n_scales))
    g_b = rng.normal(size=(n, 1))
    person_b = sd_person * (lam * g_b + math.sqrt(1 - lam**2) * rng.normal(size=(n, n_scales)))
    g_f = rng.normal(size=(n, 1))
    person_new = sd_person * (lam * g_f + math.sqrt(1 - lam**2) * rng.normal(size=(n, n_scales)))
    rho = P["rho_person"]
    common = la_eff[p_la] + team_eff[p_team]
    lat_b = common + person_b
    la_mult = rng.normal(1.0, P["la_effect_multiplier_sd"], las)
    delta = np.array([P["effects_sd"][s[0]] for s in SCALES])
    effect = np.tile(delta, (n, 1))
    effect[:, 0] += P["confidence_effect_per_year_qualified"] * (years - P["years_centre"])
    effect *= la_mult[p_la][:, None]
    lat_f = common + rho * person_b + math.sqrt(1 - rho**2) * person_new + p_treated[:, None] * effect

    # who answers
    has_b = rng.random(n) < P["p_baseline"]
    pf = np.where(p_treated, P["p_followup_given_baseline"]["treatment"], P["p_followup_given_baseline"]["control"])
    has_f = has_b & (rng.random(n) < pf)
    date_b = _BASELINE_START + rng.integers(0, 30, n).astype("timedelta64[D]")
    date_f = date_b + (61 + rng.integers(0, 14, n)).astype("timedelta64[D]")

    # survey rows: participant order, baseline then follow-up
    rows_p = np.repeat(np.arange(n), 2)
    rows_w = np.tile([0, 1], n)
    keep = np.where(rows_w == 0, has_b[rows_p], has_f[rows_p])
    rows_p, rows_w = rows_p[keep], rows_w[keep]
    m = rows_p.size
    latent = np.where(rows_w[:, None] == 0, lat_b[rows_p], lat_f[rows_p])
    item_scale = np.repeat(np.arange(n_scales), [s[2] for s in SCALES])
    loc = np.array([P["item_location"][s[0]] for s in SCALES])[item_scale]
    value = loc + P["item_loading"] * latent[:, item_scale] + rng.normal(0.0, P["item_noise_sd"], (m, item_scale.size))
    items = np.clip(np.rint(value), 1, 5).astype(np.int8)
    reverse = np.array([name in {r for s in SCALES for r in s[3]} for name in SURVEY_ITEMS])
    items[:, reverse] = 6 - items[:, reverse]
    blank = rng.random(items.shape) < P["p_item_blank"]
    dropout = rng.random(m) < P["p_survey_dropout"]
    stop_at = rng.integers(8, items.shape[1] - 2, m)
    blank |= dropout[:, None] & (np.arange(items.shape[1])[None, :] >= stop_at[:, None])
    items[blank] = 0
    item_text = _fmt_small_int(items)
    survey_date = np.where(rows_w == 0, date_b[rows_p], date_f[rows_p]).astype(str)
    wave_names = np.array(["baseline", "followup"], dtype=object)[rows_w]
    survey_la = p_la[rows_p]

    # ---------------- case-file audit ---------------------------------------
    a_la = rng.normal(0.0, P["audit_sd_la"], las)
    a_team = rng.normal(0.0, P["audit_sd_team"], n_teams)
    a_person = rng.normal(0.0, P["audit_sd_person"], n)
    a_has_b = rng.random(n) < P["p_baseline"]
    a_has_f = a_has_b & (rng.random(n) < pf)
    arows_p = np.repeat(np.arange(n), 2)
    arows_w = np.tile([0, 1], n)
    akeep = np.where(arows_w == 0, a_has_b[arows_p], a_has_f[arows_p])
    arows_p, arows_w = arows_p[akeep], arows_w[akeep]
    c_lo, c_hi = P["cases_audited_range"]
    audited = rng.integers(c_lo, c_hi + 1, arows_p.size)
    p_rec = _expit(_logit(P["p_father_contact"]) + a_la[p_la[arows_p]] + a_team[p_team[arows_p]] + a_person[arows_p])
    recorded = rng.binomial(audited, p_rec)
    audit_la = p_la[arows_p]

    # ---------------- per-LA process data and costs --------------------------
    thresholds = np.array([_logit(p) for p in P["satisfaction_cum_probs"]])
    att_lo, att_hi = P["attendance_rate_range"]
    nd = NormalDist()

    # slice boundaries of the global, LA-sorted tables
    t_sl = _slices(team_la, las)
    p_sl = _slices(p_la, las)
    s_sl = _slices(survey_la, las)
    a_sl = _slices(audit_la, las)
    arm_names = np.where(team_treated, "treatment", "control")
    role_text = role_names[role]
    age_text = np.array(list(_AGE_BANDS) + [""], dtype=object)[np.where(age_blank, 4, age_idx)]
    years_text = _fmt_float(years, 1, years_blank)
    audited_text = audited.astype(str)
    recorded_text = recorded.astype(str)
    audit_wave = np.array(["baseline", "followup"], dtype=object)[arows_w]

    result = []
    for li in range(las):
        code = la_codes[li]
        files: dict[str, list] = {}
        t0, t1 = t_sl[li], t_sl[li + 1]
        files["teams"] = [(team_ids[t], arm_names[t], _TEAM_TYPES[team_type[t]]) for t in range(t0, t1)]
        p0, p1 = p_sl[li], p_sl[li + 1]
        files["participants"] = [
            (pid[i], team_ids[p_team[i]], role_text[i], age_text[i], years_text[i]) for i in range(p0, p1)
        ]
        s0, s1 = s_sl[li], s_sl[li + 1]
        files["survey"] = [(pid[rows_p[r]], wave_names[r], survey_date[r], *item_text[r]) for r in range(s0, s1)]
        a0, a1 = a_sl[li], a_sl[li + 1]
        files["casefile_audit"] = [
            (pid[arows_p[r]], audit_wave[r], audited_text[r], recorded_text[r]) for r in range(a0, a1)
        ]
        proc = _la_process(
            rng,
            code,
            ids=pid[p0:p1],
            treated=p_treated[p0:p1],
            manager=is_manager[p0:p1],
            thresholds=thresholds,
            att_range=(att_lo, att_hi),
            nd=nd,
        )
        files.update(proc)
        result.append((code, files))
    return result


def _la_process(rng, code, ids, treated, manager, thresholds, att_range, nd):
    """Attendance, IPE targets, feedback, fidelity and costs for one LA."""
    P = PARAMS
    files: dict[str, list] = {}
    offered_practice = [ids[i] for i in np.flatnonzero(treated)]
    if not offered_practice:
        # a control-only LA: nothing was delivered, the process files are empty
        for name in ("attendance", "ipe_targets", "feedback", "fidelity", "costs"):
            files[name] = []
        return files

    # staff outside the participants table
    n_other_mgr = int(rng.integers(1, 4))
    n_leaders = int(rng.integers(3, 7))
    n_new = int(rng.integers(1, 3))
    s_ids = [f"{code}-S{k:03d}" for k in range(1, n_other_mgr + n_leaders + n_new + 1)]
    other_mgr = s_ids[:n_other_mgr]
    leaders = s_ids[n_other_mgr : n_other_mgr + n_leaders]
    new_starters = s_ids[n_other_mgr + n_leaders :]
    managers = [ids[i] for i in np.flatnonzero(treated & manager)] + other_mgr

    audience = {
        "father_engagement": offered_practice,
        "motivational_interviewing": offered_practice,
        "qa_audit": managers,
        "champion": managers,
        "leaders_webinar": leaders,
    }
    lo, hi = att_range
    la_rate = float(np.clip(rng.normal(P["attendance_rate_mean"], P["attendance_rate_la_sd"]), lo, hi))
    offset = np.timedelta64(int(rng.integers(0, 5)), "D")
    catch_gain = P["p_catch_up"] * P["p_catch_up_attend"]
    # person propensity shared across components (keyed by position in the audience list)
    propensity = {
        pid: z
        for pid, z in zip(
            offered_practice + other_mgr + leaders,
            rng.normal(size=len(offered_practice) + len(other_mgr) + len(leaders)),
        )
    }

    att_rows: list[tuple[str, int, str, bool]] = []
    fid_rows: list[list[str]] = []
    intended: list[tuple[str, str]] = []
    sessions_by_comp: dict[str, int] = {}
    fs = 0
    for ci, comp in enumerate(COMPONENTS):
        people = audience[comp]
        k = len(people)
        if k == 0:
            continue
        intended.append((comp, str(k)))
        rate = float(np.clip(la_rate + rng.normal(0.0, 0.03), lo, hi))
        r0 = max(0.0, (rate - catch_gain) / (1.0 - catch_gain))
        cut = nd.inv_cdf(r0) if 0.0 < r0 < 1.0 else (math.inf if r0 >= 1 else -math.inf)
        z = np.array([propensity[p] for p in people])
        latent = 0.6 * z + 0.8 * rng.normal(size=k)
        attended = latent < cut
        n_sess = 1 if comp == "leaders_webinar" else max(2, math.ceil(k / P["session_size"]))
        n_sess = min(n_sess, k)
        sessions_by_comp[comp] = n_sess
        order = rng.permutation(k)
        per = math.ceil(k / n_sess)
        sess = np.empty(k, dtype=int)
        sess[order] = np.arange(k) // per
        dates = _SESSION_START[comp] + offset + (2 * sess).astype("timedelta64[D]")
        catch = (~attended) & (rng.random(k) < P["p_catch_up"])
        catch_att = rng.random(k) < P["p_catch_up_attend"]
        for j, person in enumerate(people):
            att_rows.append((person, ci, str(dates[j]), bool(attended[j])))
            if catch[j]:
                att_rows.append((person, ci, str(dates[j] + np.timedelta64(14, "D")), bool(catch_att[j])))
        planned = P["planned_elements"][comp]
        delivered = planned - rng.binomial(planned, P["p_element_missed"], n_sess)
        quality = rng.choice(5, size=n_sess, p=[0.02, 0.06, 0.22, 0.45, 0.25]) + 1
        q_blank = rng.random(n_sess) < 0.08
        for s in range(n_sess):
            fs += 1
            fid_rows.append(
                [f"{code}-FS{fs:03d}", comp, str(planned), str(delivered[s]), "" if q_blank[s] else str(quality[s])]
            )
    # new starters (not in participants) who joined the practice-pathway training
    for j, person in enumerate(new_starters):
        ci = j % 2
        comp = COMPONENTS[ci]
        att_rows.append((person, ci, str(_SESSION_START[comp] + offset + np.timedelta64(2, "D")), True))

    att_rows.sort(key=lambda r: (r[0], r[1], r[2]))
    files["attendance"] = [(p, COMPONENTS[ci], d, "true" if a else "false") for p, ci, d, a in att_rows]
    files["ipe_targets"] = intended

    # ---------------- feedback --------------------------------------------------
    attended_rows = [(p, ci) for p, ci, _, a in att_rows if a]
    # one feedback form per person and component at most
    seen: set[tuple[str, int]] = set()
    uniq = []
    for key in attended_rows:
        if key not in seen:
            seen.add(key)
            uniq.append(key)
    nf = len(uniq)
    la_shift = rng.normal(0.0, P["satisfaction_la_sd"])
    respond = rng.random(nf) < P["p_feedback"]
    sat_lat = rng.logistic(0.0, 1.0, nf) + la_shift
    sat = 1 + (sat_lat[:, None] > thresholds[None, :]).sum(axis=1)
    useful = np.clip(sat + np.rint(rng.normal(0.0, 0.8, nf)).astype(int), 1, 5)
    useful_blank = rng.random(nf) < 0.05
    p_rec = np.array([0.05, 0.15, 0.45, 0.85, 0.97])[sat - 1]
    recommend = rng.random(nf) < p_rec
    rec_blank = rng.random(nf) < 0.06
    has_comment = rng.random(nf) < P["p_comment"]
    pos_pick = rng.integers(0, len(_POSITIVE_COMMENTS), nf)
    neg_pick = rng.integers(0, len(_NEGATIVE_COMMENTS), nf)
    fb = []
    for j, (person, ci) in enumerate(uniq):
        if not respond[j]:
            continue
        if has_comment[j]:
            text = _POSITIVE_COMMENTS[pos_pick[j]] if sat[j] >= 4 else _NEGATIVE_COMMENTS[neg_pick[j]]
        else:
            text = ""
        fb.append(
            (
                person,
                COMPONENTS[ci],
                str(sat[j]),
                "" if useful_blank[j] else str(useful[j]),
                "" if rec_blank[j] else ("true" if recommend[j] else "false"),
                _csv_field(text),
            )
        )
    files["feedback"] = fb
    files["fidelity"] = fid_rows

    # ---------------- costs ------------------------------------------------------
    n_practice_offered = len(offered_practice)
    practice_sessions = sessions_by_comp.get("father_engagement", 0) + sessions_by_comp.get(
        "motivational_interviewing", 0
    )
    system_sessions = sum(sessions_by_comp.get(c, 0) for c in ("qa_audit", "champion", "leaders_webinar"))
    all_sessions = practice_sessions + system_sessions
    practice_hours = 3.0 * sum(1 for _, ci, _, a in att_rows if a and ci < 2)
    system_hours = 2.5 * sum(1 for _, ci, _, a in att_rows if a and ci >= 2)
    year = str(P["price_year"])
    coordinator_rate = 32.0
    delivery_personnel = (2.0 * all_sessions + 10.0) * coordinator_rate
    cost_rows = [
        # item, category, phase, bearer, quantity, unit, unit_cost
        ("Trainer preparation and course tailoring", "personnel", "setup", "developer", 12.0, "hours", 45.0),
        ("Training licences", "licences", "setup", "funder", float(n_practice_offered), "item", 25.0),
        ("Training materials and workbooks", "materials", "setup", "developer", float(n_practice_offered), "item", 8.5),
        ("LA coordinator set-up time", "personnel", "setup", "local_authority", 15.0, "hours", 32.0),
        (
            "Trainer fees: practice-pathway sessions",
            "trainer_fees",
            "delivery",
            "funder",
            float(practice_sessions),
            "session",
            650.0,
        ),
        (
            "Trainer fees: system-pathway sessions",
            "trainer_fees",
            "delivery",
            "funder",
            float(system_sessions),
            "session",
            550.0,
        ),
        ("Online platform licence", "licences", "delivery", "funder", 3.0, "month", 120.0),
        (
            "LA coordinator delivery time",
            "personnel",
            "delivery",
            "local_authority",
            2.0 * all_sessions + 10.0,
            "hours",
            coordinator_rate,
        ),
        (
            "Overheads on coordinator time",
            "overheads",
            "delivery",
            "local_authority",
            1.0,
            "item",
            round(0.2 * delivery_personnel, 2),
        ),
        (
            "Social workers' time in practice-pathway training",
            "staff_time",
            "delivery",
            "local_authority",
            practice_hours,
            "hours",
            30.0,
        ),
        (
            "Managers' and leaders' time in system-pathway training",
            "staff_time",
            "delivery",
            "local_authority",
            system_hours,
            "hours",
            42.0,
        ),
    ]
    files["costs"] = [
        (_csv_field(item), cat, phase, bearer, f"{qty:.2f}", unit, f"{cost:.2f}", year)
        for item, cat, phase, bearer, qty, unit, cost in cost_rows
    ]
    return files
