"""The attacker in the suite (issue 22): small adversarial roots run, staged, and attacked.

Each root is made by the generator with small teams, then edited as an
intruder would wish (:func:`adversarial_root`): in LA01 one intervention
person is never reached; in LA02 a handful of feedback answers, all "very
satisfied"; in LA03 one person aged 50 or over and a team of two. The
handbook runs on it (no HTML build: the staged book holds every number the
book publishes, in its published-numbers CSVs), and :mod:`attacker` tries
each attack class against the truth (the same results staged at threshold 1).

The CI profile attacks one root (about a minute on two cores). The longer
profile (``-m attacker_long``; ``ISAFE_ATTACKER_LONG=1``) attacks three more
seeds and the bundled data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from attacker import _cox, _cox_index, _harmonic, attack, harvest, stage_pair
from conftest import read, write

from isafe_helpers.data.synth import generate

LIMIT = 10


def adversarial_root(path: Path, seed: int) -> Path:
    """A generated root edited to hold the small cells an intruder looks for (module docstring)."""
    root = generate(path, seed=seed, las=3, teams_per_la=4, staff_per_team=6)
    # LA01: every intervention person reached but one
    teams = read(root, "LA01/teams.csv")
    treated = set(teams.loc[teams["arm"] == "treatment", "team_id"])
    people = read(root, "LA01/participants.csv")
    staff = sorted(people.loc[people["team_id"].isin(treated), "participant_id"])
    att = read(root, "LA01/attendance.csv")
    practice = att["component"].isin(["father_engagement", "motivational_interviewing"])
    att.loc[practice & att["person_id"].isin(staff), "attended"] = "true"
    att.loc[att["person_id"] == staff[0], "attended"] = "false"
    write(root, "LA01/attendance.csv", att)
    # LA02: a handful of feedback answers, every one "very satisfied"
    fb = read(root, "LA02/feedback.csv").head(4).copy()
    fb["satisfaction"] = "5"
    write(root, "LA02/feedback.csv", fb)
    # LA03: one person aged 50 or over, and a team of two
    people = read(root, "LA03/participants.csv")
    people["age_band"] = people["age_band"].replace("50_plus", "40_49")
    people.loc[people.index[0], "age_band"] = "50_plus"
    team = people["team_id"].iloc[-1]
    drop = set(people.loc[people["team_id"] == team, "participant_id"].iloc[2:])
    write(root, "LA03/participants.csv", people[~people["participant_id"].isin(drop)])
    for rel, col in (("survey.csv", "participant_id"), ("casefile_audit.csv", "participant_id")):
        d = read(root, f"LA03/{rel}")
        write(root, f"LA03/{rel}", d[~d[col].isin(drop)])
    d = read(root, "LA03/attendance.csv")
    write(root, "LA03/attendance.csv", d[~d["person_id"].isin(drop)])
    d = read(root, "LA03/feedback.csv")
    write(root, "LA03/feedback.csv", d[~d["person_id"].isin(drop)])
    return root


def run_and_attack(root: Path, work: Path):
    results = work / "results"
    res = subprocess.run(
        [sys.executable, "-m", "isafe_helpers", "run", "--data", root, "--out", results, "--no-book", "--jobs", "2"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    published, truth = stage_pair(results, work)
    pub = harvest(published)
    return Attacked(attack(pub, harvest(truth), LIMIT), pub, results)


class Attacked(list):
    """What the attacker recovered, with the published cells it read (``pub``) and the run's results folder."""

    def __init__(self, found, pub: pd.DataFrame, results: Path | None = None):
        super().__init__(found)
        self.pub = pub
        self.results = results


@pytest.fixture(scope="session")
def attacked(tmp_path_factory):
    """What the attacker recovers from the CI profile's adversarial root."""
    work = tmp_path_factory.mktemp("attacker")
    return run_and_attack(adversarial_root(work / "root", seed=11), work)


def _of(found, kind):
    return [str(s) for s in found if s.attack == kind]


def test_no_withheld_count_is_printed_elsewhere_in_its_scope(attacked):
    assert _of(attacked, "twin") == []


def test_no_withheld_count_follows_by_linear_programming_over_pooled_las_and_totals(attacked):
    assert _of(attacked, "linear") == []


def test_no_rate_times_its_base_gives_back_a_withheld_or_small_count(attacked):
    assert _of(attacked, "rate") == []


def test_no_distribution_puts_everyone_in_one_withheld_category(attacked):
    assert _of(attacked, "class") == []


def test_no_team_size_follows_from_the_mean_team_size(attacked):
    """The MDES table's team size is staff / teams (power.TEAM_SIZE): a harmonic mean pinned small teams."""
    assert _of(attacked, "integer") == []


def test_no_age_band_by_arm_follows_from_the_cox_indexes(attacked):
    """A Cox index rests on its band's staff in each arm and the rest of each arm (Table.rests): with the arm
    sizes, a sample's four indexes gave back the whole band-by-arm table (bundled LA03: 2, 7, 5, 4 and 3, 11,
    13, 4), so an index is withheld when any of its cells is small or withheld."""
    assert _of(attacked, "cox") == []
    # not vacuous: the root prints age-band indexes (the pooled trial's bands are large enough)
    pub = attacked.pub
    ages = pub[pub["analysis"].isin(["baseline_equivalence"]) & pub["outcome"].str.contains(":age_", regex=False)]
    assert ages.loc[ages["field"] == "estimate", "value"].notna().any()


def test_no_arm_follows_from_the_differential_attrition(attacked):
    """A differential attrition to 0.1 pp, with the staff randomised by arm and analysed in all, has one
    whole-number solution for the arms' analysed staff: it is withheld when either arm's analysed staff are
    few or withheld (the trial flow's own sample excepted: CONSORT prints its counts by arm)."""
    assert _of(attacked, "attrition") == []


def test_no_analysis_prints_a_count_nested_in_the_staff_analysed_that_gives_back_those_left_out(attacked):
    """Staff analysed minus the staff of a model or comparison nested in them (a moderator model's staff, those
    with years qualified recorded) counted the staff left out: bundled LA01 printed 80 analysed and 75 with years
    recorded. The moderator tables and the baseline equivalence table no longer print the nested counts; their
    statistics rest on them (withheld when they are small)."""
    assert _of(attacked, "nested") == []
    pub = attacked.pub  # not vacuous: the moderators' estimates are printed, and the staff analysed
    assert pub.loc[pub["analysis"].str.startswith("subgroup_") & (pub["field"] == "estimate"), "value"].notna().any()
    assert pub.loc[(pub["analysis"] == "primary") & (pub["field"] == "n"), "value"].notna().any()
    # and the root has what the attack looks for: a model leaving out a few staff (estimates.csv keeps every n)
    gaps = []
    for est in attacked.results.glob("*/estimates.csv"):
        e = pd.read_csv(est)
        whole = e[(e["analysis"] == "primary") & (e["quantity"] == "treatment_effect")].set_index("outcome")["n"]
        for r in e[e["analysis"].isin(["subgroup_age", "subgroup_experience"])].itertuples():
            if r.outcome in whole.index and 0 < whole[r.outcome] - r.n < LIMIT:
                gaps.append((est.parent.name, r.outcome, r.analysis, whole[r.outcome] - r.n))
    assert gaps, "the root should hold a model that leaves out fewer staff than the threshold"


def test_the_nested_attack_finds_staff_left_out_by_a_printed_model_count():
    """The attack on a hand-made book: 34 analysed and 31 in the model give back 3 left out; 34 and 25 do not
    (9 is a count under 10: recovered too); 34 and 20 (14 left out) are not a success."""
    from attacker import _nested

    def cell(analysis, outcome, value, truth):
        return dict(
            scope="LA01",
            table="t",
            row="r",
            column="c",
            occ=0,
            analysis=analysis,
            outcome=outcome,
            quantity="q",
            field="n",
            value=value,
            truth=truth,
        )

    d = pd.DataFrame(
        [
            cell("primary", "confidence", 34.0, 34.0),
            cell("subgroup_age", "confidence", 31.0, 31.0),
            cell("baseline_equivalence", "confidence:years_qualified", 25.0, 25.0),
            cell("subgroup_experience", "confidence", 20.0, 20.0),
            cell("subgroup_age", "competence", 1.0, 1.0),  # no primary count of its own outcome: not compared
        ]
    )
    found = _nested(d, LIMIT)
    assert sorted((s.recovered, s.truth) for s in found) == [(3.0, 3.0), (9.0, 9.0)]


def test_the_baseline_report_gives_no_age_band_by_arm_from_its_balance_table(tmp_path):
    """Before follow-up the book is the baseline report: its balance table prints each age band's Cox index
    beside the arms' staff with a band recorded, which pinned the randomised band-by-arm table. Attacked on the
    CI root with every follow-up row dropped."""
    root = adversarial_root(tmp_path / "root", seed=11)
    for la in ("LA01", "LA02", "LA03"):
        for name in ("survey.csv", "casefile_audit.csv"):
            df = read(root, f"{la}/{name}")
            write(root, f"{la}/{name}", df[df["wave"] != "followup"])
    found = run_and_attack(root, tmp_path)
    assert [str(s) for s in found] == []
    pub = found.pub
    ages = pub[(pub["analysis"] == "baseline_balance") & pub["outcome"].str.startswith("age_")]
    assert len(ages), "the baseline report prints its balance table"


long = pytest.mark.skipif(
    os.environ.get("ISAFE_ATTACKER_LONG") != "1", reason="the attacker's long profile: ISAFE_ATTACKER_LONG=1"
)


@long
@pytest.mark.attacker_long
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_attacker_recovers_nothing_from_more_adversarial_roots(tmp_path, seed):
    found = run_and_attack(adversarial_root(tmp_path / "root", seed=seed), tmp_path)
    assert [str(s) for s in found] == []


@long
@pytest.mark.attacker_long
def test_the_attacker_recovers_nothing_from_the_bundled_book(tmp_path, bundled_run):
    published, truth = stage_pair(bundled_run, tmp_path)
    found = attack(harvest(published), harvest(truth), LIMIT)
    assert [str(s) for s in found] == []


def _team_size_row(column: str, value: float, teams: int, staff: int) -> pd.DataFrame:
    row = dict(scope="LA01", table="LA01-impact-table-9", row="Confidence", occ=0)
    return pd.DataFrame(
        [
            dict(row, column=column, value=value),
            dict(row, column="Teams analysed", value=teams),
            dict(row, column="Staff analysed", value=staff),
        ]
    )


def test_the_integer_attack_pins_a_team_behind_a_harmonic_mean_but_not_behind_a_mean():
    """Teams of 2, 10 and 10 staff: the harmonic mean 4.3 leaves two splits of 22, both with a team of 2."""
    pinned = _harmonic(_team_size_row("Staff per analysed team (harmonic mean)", 4.3, 3, 22), 10)
    assert [s.recovered for s in pinned] == [2]
    assert _harmonic(_team_size_row("Staff per analysed team (mean)", 7.3, 3, 22), 10) == []
    # a mean says only staff / teams: under 2 per team, some team has one member whoever it is
    assert [s.recovered for s in _harmonic(_team_size_row("Staff per analysed team (mean)", 1.7, 3, 5), 10)] == [1]


def _cox_rows(table: dict[str, tuple[int, int]], printed: set[str], arms: bool = False) -> pd.DataFrame:
    """A sample's age-band Cox indexes as the published-numbers CSV prints them (``printed`` bands shown), and
    with ``arms`` the characteristics table's analysed staff by arm (none without a band)."""
    nt, nc = (sum(v[i] for v in table.values()) for i in (0, 1))
    rows = []
    for arm, n in (("treatment", nt), ("control", nc)) if arms else ():
        for outcome, q, v in (("all", f"n_{arm}_analysed", n), ("age_band", f"n_not_recorded_{arm}_analysed", 0)):
            rows.append(
                dict(
                    scope="LA03",
                    analysis="baseline_characteristics",
                    outcome=outcome,
                    quantity=q,
                    field="estimate",
                    value=float(v),
                    symbol="",
                    truth=float(v),
                )
            )
    for band, (t, c) in table.items():
        v = float(_cox_index(np.array([t], float), nt, np.array([c], float), nc)[0, 0])
        for fld, x in (("estimate", round(v, 3)), ("n", float(nt + nc))):
            shown = band in printed
            rows.append(
                dict(
                    scope="LA03",
                    analysis="baseline_equivalence",
                    outcome=f"confidence:age_{band}",
                    quantity="standardised_difference",
                    field=fld,
                    value=x if shown or fld == "n" else np.nan,
                    symbol="" if shown or fld == "n" else "[c]",
                    truth=x,
                )
            )
    return pd.DataFrame(rows)


def test_the_cox_attack_pins_a_band_table_from_four_indexes_but_not_from_two():
    """The attack is honest: bundled LA03's analysed table (before issue 22's fix) is pinned from its four
    printed indexes and 49 staff alone, every split into arms tried. As the book now prints them (only the
    indexes whose four cells are publishable, so at least two bands withheld), the small bands stay hidden."""
    table = {"under_30": (2, 3), "30_39": (7, 11), "40_49": (5, 13), "50_plus": (4, 4)}
    found = {(s.cell, s.recovered) for s in _cox(_cox_rows(table, set(table)), LIMIT)}
    assert ("confidence / age under_30 / treatment", 2) in found
    assert ("confidence / age 50_plus / control", 4) in found
    larger = {"under_30": (2, 3), "30_39": (17, 21), "40_49": (15, 23), "50_plus": (4, 4)}
    assert {s.cell for s in _cox(_cox_rows(larger, set(larger)), LIMIT)} >= {"confidence / age under_30 / control"}
    assert _cox(_cox_rows(larger, {"30_39", "40_49"}), LIMIT) == []
    # one band withheld alone is what the printed ones leave: the ledger withholds two bands of an arm together
    found = {(s.cell, s.recovered) for s in _cox(_cox_rows(table, {"under_30", "30_39", "40_49"}, True), LIMIT)}
    assert ("confidence / age 50_plus / treatment", 4) in found
