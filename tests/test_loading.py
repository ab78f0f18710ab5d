"""The loader: valid roots load, scores are right, and every contract
violation is reported with file, row, column, value and rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import read, write

from isafe_helpers.data.contract import DEFAULT_INSTRUMENT, SCALES
from isafe_helpers.data.loading import DataValidationError, Problem, load_root
from isafe_helpers.data.scoring import score_scales


def problems_of(root: Path) -> list[Problem]:
    with pytest.raises(DataValidationError) as info:
        load_root(root)
    return info.value.problems


def test_valid_root_loads_with_la_column_and_scores(small_root):
    data = load_root(small_root)
    assert data.las == ["LA01", "LA02"]
    assert set(data.teams["la"]) == {"LA01", "LA02"}
    assert set(SCALES) <= set(data.survey.columns)
    assert data.is_synthetic


def test_ids_stay_text(small_root):
    df = read(small_root, "LA01/teams.csv")
    df.loc[0, "team_id"] = "007"
    parts = read(small_root, "LA01/participants.csv")
    parts.loc[parts["team_id"] == read(small_root, "LA01/teams.csv").loc[0, "team_id"], "team_id"] = "007"
    write(small_root, "LA01/teams.csv", df)
    write(small_root, "LA01/participants.csv", parts)
    data = load_root(small_root)
    assert "007" in set(data.teams["team_id"])


def test_scale_score_hand_computed():
    # competence: comp_6 reverse-coded; 6 items need 4 answered
    row = {f"comp_{i}": v for i, v in enumerate([5, 4, None, None, 3, 1], start=1)}
    row2 = {f"comp_{i}": v for i, v in enumerate([5, None, None, None, 3, 1], start=1)}
    df = pd.DataFrame([row, row2])
    for s in DEFAULT_INSTRUMENT.scales:
        for item in s.items:
            if item not in df:
                df[item] = np.nan
    out = score_scales(df, DEFAULT_INSTRUMENT)
    assert out.loc[0, "competence"] == pytest.approx((5 + 4 + 3 + (6 - 1)) / 4)
    assert np.isnan(out.loc[1, "competence"])  # 3 of 6 answered < ceil(12/3) = 4
    assert np.isnan(out.loc[0, "confidence"])


def test_all_problems_of_a_file_reported_at_once(small_root):
    df = read(small_root, "LA01/survey.csv")
    df.loc[0, "conf_1"] = "7"
    df.loc[1, "conf_2"] = "x"
    df.loc[2, "wave"] = "folowup"
    write(small_root, "LA01/survey.csv", df)
    probs = problems_of(small_root)
    got = {(p.file, p.row, p.column, p.value) for p in probs}
    assert ("LA01/survey.csv", 2, "conf_1", "7") in got
    assert ("LA01/survey.csv", 3, "conf_2", "x") in got
    assert ("LA01/survey.csv", 4, "wave", "folowup") in got
    rules = {p.column: p.rule for p in probs}
    assert "between 1 and 5" in rules["conf_1"]
    assert "whole number" in rules["conf_2"]
    assert "baseline, followup" in rules["wave"]


def test_wrong_arm_spelling(small_root):
    df = read(small_root, "LA02/teams.csv")
    df.loc[1, "arm"] = "Treatment"
    write(small_root, "LA02/teams.csv", df)
    (p,) = problems_of(small_root)
    assert (p.file, p.row, p.column, p.value) == ("LA02/teams.csv", 3, "arm", "Treatment")
    assert "treatment, control" in p.rule


def test_missing_required_column_and_file(small_root):
    df = read(small_root, "LA01/participants.csv").drop(columns=["role"])
    write(small_root, "LA01/participants.csv", df)
    (small_root / "LA02" / "costs.csv").unlink()
    probs = problems_of(small_root)
    assert any(p.file == "LA01/participants.csv" and p.column == "role" and "missing" in p.rule for p in probs)
    assert any(p.file == "LA02/costs.csv" and "required file is missing" in p.rule for p in probs)


def test_duplicate_participant_across_las(small_root):
    a = read(small_root, "LA01/participants.csv")
    b = read(small_root, "LA02/participants.csv")
    b.loc[0, "participant_id"] = a.loc[0, "participant_id"]
    write(small_root, "LA02/participants.csv", b)
    s = read(small_root, "LA02/survey.csv")
    s = s[s["participant_id"] != read(small_root, "LA02/participants.csv").loc[0, "participant_id"]]
    write(small_root, "LA02/survey.csv", s)
    probs = problems_of(small_root)
    dup = [p for p in probs if "unique across the data root" in p.rule]
    assert {p.file for p in dup} == {"LA01/participants.csv", "LA02/participants.csv"}
    assert all(p.value == a.loc[0, "participant_id"] for p in dup)


def test_team_in_two_las_is_reported(small_root):
    a = read(small_root, "LA01/teams.csv")
    b = read(small_root, "LA02/teams.csv")
    b = pd.concat([b, a.iloc[[0]]], ignore_index=True)
    write(small_root, "LA02/teams.csv", b)
    probs = problems_of(small_root)
    assert any(p.file == "LA02/teams.csv" and p.column == "team_id" and "one LA per team" in p.rule for p in probs)


def test_survey_row_for_unknown_participant(small_root):
    s = read(small_root, "LA01/survey.csv")
    s.loc[0, "participant_id"] = "NOBODY"
    write(small_root, "LA01/survey.csv", s)
    (p,) = problems_of(small_root)
    assert (p.file, p.row, p.column, p.value) == ("LA01/survey.csv", 2, "participant_id", "NOBODY")
    assert "participant_id of the same LA" in p.rule


def test_contacts_above_cases_audited(small_root):
    a = read(small_root, "LA01/casefile_audit.csv")
    a.loc[0, "cases_audited"] = "3"
    a.loc[0, "father_contact_recorded"] = "5"
    write(small_root, "LA01/casefile_audit.csv", a)
    (p,) = problems_of(small_root)
    assert (p.row, p.column, p.value) == (2, "father_contact_recorded", "5")
    assert "at most cases_audited" in p.rule


def test_several_price_years_need_deflators(small_root):
    c = read(small_root, "LA01/costs.csv")
    c.loc[0, "price_year"] = "2021"
    write(small_root, "LA01/costs.csv", c)
    (p,) = problems_of(small_root)
    assert p.column == "price_year" and "2021" in p.value and "deflators.csv" in p.rule
    (small_root / "deflators.csv").write_text("year,index\n2021,95.0\n2023,100.0\n")
    assert load_root(small_root).deflators is not None


def test_bad_la_folder_name(small_root):
    shutil.move(small_root / "LA02", small_root / "LA 02")
    probs = problems_of(small_root)
    assert any(p.file == "LA 02" and "letters, digits" in p.rule for p in probs)


def test_bom_crlf_trailing_blank_rows_are_read(small_root):
    path = small_root / "LA01" / "teams.csv"
    text = path.read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode() + b",,\r\n,,\r\n")
    data = load_root(small_root)
    assert len(data.teams[data.teams["la"] == "LA01"]) == 4


def test_xlsx_file_is_read(small_root):
    df = read(small_root, "LA01/participants.csv")
    (small_root / "LA01" / "participants.csv").unlink()
    df.to_excel(small_root / "LA01" / "participants.xlsx", index=False)
    data = load_root(small_root)
    assert set(df["participant_id"]) <= set(data.participants["participant_id"])


def test_empty_file(small_root):
    (small_root / "LA01" / "fidelity.csv").write_text("")
    (p,) = problems_of(small_root)
    assert p.file == "LA01/fidelity.csv" and "empty" in p.rule


def test_error_report_groups_by_file():
    err = DataValidationError(
        [
            Problem("LA01/teams.csv", 2, "arm", "x", "must be one of treatment, control"),
            Problem("LA02/survey.csv", 5, "conf_1", "9", "must be between 1 and 5"),
        ]
    )
    text = err.report()
    assert "2 problem(s)" in text
    assert "  LA01/teams.csv\n    row 2, column arm, value 'x': must be one of treatment, control" in text


def _same_tables(a, b) -> None:
    assert a.las == b.las and a.notes == b.notes and a.warnings == b.warnings and a.fingerprint == b.fingerprint
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])


def test_a_file_cache_reuses_unchanged_files_and_rereads_changed_ones(small_root):
    """Validation with the last run's per-file results gives what a fresh validation gives: unchanged files
    are taken from the cache, a changed file is read and validated again (its new values and its problems)."""
    from isafe_helpers.data.loading import FileCache

    first = FileCache()
    _same_tables(load_root(small_root, first), load_root(small_root))
    assert first.hits == 0 and len(first.new) >= 16
    again = FileCache(old=first.new)
    _same_tables(load_root(small_root, again), load_root(small_root))
    assert again.hits == len(first.new)

    costs = read(small_root, "LA02/costs.csv")
    costs.loc[0, "unit_cost_gbp"] = str(float(costs.loc[0, "unit_cost_gbp"]) + 100)
    write(small_root, "LA02/costs.csv", costs)
    changed = FileCache(old=again.new)
    data = load_root(small_root, changed)
    _same_tables(data, load_root(small_root))
    assert changed.hits == len(first.new) - 1
    assert data.costs.loc[data.costs["la"] == "LA02", "unit_cost_gbp"].iloc[0] == float(costs.loc[0, "unit_cost_gbp"])

    costs.loc[1, "unit_cost_gbp"] = "-5"  # a problem in the changed file is reported, not hidden by the cache
    write(small_root, "LA02/costs.csv", costs)
    with pytest.raises(DataValidationError) as bad:
        load_root(small_root, FileCache(old=changed.new))
    fresh = problems_of(small_root)
    assert bad.value.problems == fresh and any(p.column == "unit_cost_gbp" for p in fresh)
