"""Tests of the synthetic-trial generator (isafe_helpers.synth)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from isafe_helpers.data.la_info import FILENAME as LA_INFO
from isafe_helpers.data.la_info import la_names
from isafe_helpers.data.synth import NOTE, SURVEY_ITEMS, generate

FILES = {
    "teams": ["team_id", "arm", "team_type"],
    "participants": ["participant_id", "team_id", "role", "age_band", "years_qualified"],
    "survey": ["participant_id", "wave", "completed_on", *SURVEY_ITEMS],
    "casefile_audit": ["participant_id", "wave", "cases_audited", "father_contact_recorded"],
    "attendance": ["person_id", "component", "session_date", "attended"],
    "ipe_targets": ["component", "intended_n"],
    "feedback": ["person_id", "component", "satisfaction", "usefulness", "would_recommend", "comment"],
    "fidelity": ["session_id", "component", "planned_elements", "delivered_elements", "quality"],
    "costs": ["item", "category", "phase", "bearer", "quantity", "unit", "unit_cost_gbp", "price_year"],
}
COMPONENTS = {"father_engagement", "motivational_interviewing", "qa_audit", "champion", "leaders_webinar"}
PRACTICE = {"father_engagement", "motivational_interviewing"}
INT_COLUMNS = set(SURVEY_ITEMS) | {
    "cases_audited",
    "father_contact_recorded",
    "intended_n",
    "satisfaction",
    "usefulness",
    "planned_elements",
    "delivered_elements",
    "quality",
    "price_year",
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _la_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name != "report")  # report/: the evaluator's pages


def _load(root: Path) -> dict[str, pd.DataFrame]:
    """All tables as text, with an `la` column; blanks stay ''."""
    out = {}
    for name in FILES:
        frames = []
        for la in _la_dirs(root):
            df = pd.read_csv(la / f"{name}.csv", dtype=str, keep_default_na=False)
            df["la"] = la.name
            frames.append(df)
        out[name] = pd.concat(frames, ignore_index=True)
    return out


@pytest.fixture(scope="module")
def default_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "data")


@pytest.fixture(scope="module")
def tables(default_root) -> dict[str, pd.DataFrame]:
    return _load(default_root)


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_byte_identical_tree(tmp_path, default_root):
    again = generate(tmp_path / "again")
    assert again == tmp_path / "again"
    assert _tree(again) == _tree(default_root)


def test_different_seed_gives_different_data(tmp_path, default_root):
    other = generate(tmp_path / "other", seed=7)
    a, b = _tree(default_root), _tree(other)
    assert a.keys() == b.keys()
    assert any(a[k] != b[k] for k in a if k != "synthetic.yml")


# --------------------------------------------------------------------------- layout and design
def test_default_design(default_root, tables):
    las = _la_dirs(default_root)
    assert [p.name for p in las] == [f"LA{i:02d}" for i in range(1, 8)]
    for la in las:
        # the data files, and the LA's la.yml naming it (an invented name: isafe_helpers.data.la_info)
        assert sorted(p.name for p in la.iterdir()) == sorted([*(f"{n}.csv" for n in FILES), LA_INFO])
    names = la_names(default_root, [la.name for la in las])
    assert sorted(names) == [la.name for la in las] and len(set(names.values())) == len(las)
    teams = tables["teams"]
    assert len(teams) == 63
    assert teams["arm"].value_counts().to_dict() == {"control": 32, "treatment": 31}
    per_la = teams.groupby("la")["arm"].nunique()
    assert (per_la == 2).all()
    assert teams.groupby("la").size().eq(9).all()


def test_marker_file(default_root):
    text = (default_root / "synthetic.yml").read_text(encoding="utf-8")
    meta = yaml.safe_load(text)
    assert list(meta) == ["synthetic", "generator", "seed", "las", "teams_per_la", "staff_per_team", "note"]
    assert meta == {
        "synthetic": True,
        "generator": "isafe synth (isafe_helpers.data.synth)",
        "seed": 20240601,
        "las": 7,
        "teams_per_la": 9,
        "staff_per_team": 10,
        "note": NOTE,
    }


def test_las_argument_and_refusing_non_empty_out(tmp_path):
    root = generate(tmp_path / "three", las=3, seed=3)
    assert [p.name for p in _la_dirs(root)] == ["LA01", "LA02", "LA03"]
    with pytest.raises(FileExistsError):
        generate(root, las=3)
    blocker = tmp_path / "full"
    blocker.mkdir()
    (blocker / "something.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate(blocker)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (generate(empty, las=1, teams_per_la=2) / "LA01" / "teams.csv").is_file()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path / "x", las=0)
    with pytest.raises(TypeError):
        generate(tmp_path / "y", teams_per_la=2.5)


def test_large_design_is_fast_and_three_digit(tmp_path):
    start = time.perf_counter()
    root = generate(tmp_path / "big", las=150, teams_per_la=10, staff_per_team=10)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    las = _la_dirs(root)
    assert len(las) == 150 and las[0].name == "LA001" and las[-1].name == "LA150"
    n_staff = sum(len(pd.read_csv(la / "participants.csv", dtype=str)) for la in las[:10])
    assert 60 <= n_staff / 10 <= 140  # ~100 staff per LA


# --------------------------------------------------------------------------- file format
def test_csv_text_format(default_root):
    for la in _la_dirs(default_root):
        for name, cols in FILES.items():
            raw = (la / f"{name}.csv").read_bytes()
            assert not raw.startswith(b"\xef\xbb\xbf")
            assert b"\r" not in raw and raw.endswith(b"\n")
            text = raw.decode("utf-8")
            assert text.splitlines()[0] == ",".join(cols)
            df = pd.read_csv(la / f"{name}.csv", dtype=str, keep_default_na=False)
            for col in set(cols) & INT_COLUMNS:
                assert df[col].str.fullmatch(r"\d*").all(), (la.name, name, col)
    parts = pd.read_csv(default_root / "LA01" / "participants.csv", dtype=str, keep_default_na=False)
    yq = parts["years_qualified"][parts["years_qualified"] != ""]
    assert yq.str.fullmatch(r"\d{1,2}\.\d").all()
    costs = pd.read_csv(default_root / "LA01" / "costs.csv", dtype=str, keep_default_na=False)
    assert costs["quantity"].str.fullmatch(r"\d+\.\d{2}").all()
    assert costs["unit_cost_gbp"].str.fullmatch(r"\d+\.\d{2}").all()


# --------------------------------------------------------------------------- contract facts
def test_ids_unique_and_consistent(tables):
    teams, parts = tables["teams"], tables["participants"]
    assert teams["team_id"].is_unique
    assert parts["participant_id"].is_unique
    assert set(parts["participant_id"]).isdisjoint(teams["team_id"])
    team_la = dict(zip(teams["team_id"], teams["la"]))
    assert parts["team_id"].map(team_la).eq(parts["la"]).all()
    assert parts["participant_id"].str.fullmatch(r"LA\d{2}-P\d{4}").all()
    assert teams["team_id"].str.fullmatch(r"LA\d{2}-T\d{2}").all()
    part_la = dict(zip(parts["participant_id"], parts["la"]))
    for name in ("survey", "casefile_audit"):
        df = tables[name]
        assert df["participant_id"].map(part_la).eq(df["la"]).all()
        assert not df.duplicated(["participant_id", "wave"]).any()
        assert set(df["wave"]) == {"baseline", "followup"}
    fid = tables["fidelity"]
    assert fid["session_id"].is_unique
    assert fid["session_id"].str.fullmatch(r"LA\d{2}-FS\d{3}").all()
    att = tables["attendance"]
    others = att.loc[~att["person_id"].isin(part_la), "person_id"]
    assert len(others) > 0 and others.str.fullmatch(r"LA\d{2}-S\d{3}").all()
    assert (att["person_id"].str[:4] == att["la"]).all()


def test_categorical_values(tables):
    parts = tables["participants"]
    assert set(parts["role"]) <= {"social_worker", "senior_practitioner", "team_manager", "other"}
    assert set(parts["age_band"]) <= {"under_30", "30_39", "40_49", "50_plus", ""}
    assert (parts["age_band"] == "").any() and (parts["years_qualified"] == "").any()
    yq = pd.to_numeric(parts["years_qualified"].replace("", np.nan))
    assert yq.min() >= 0 and yq.max() <= 40
    roles = parts.merge(tables["teams"][["team_id"]], on="team_id").groupby("team_id")["role"]
    assert roles.apply(lambda r: (r == "team_manager").sum()).eq(1).all()
    assert roles.size().min() >= 3
    assert set(tables["teams"]["arm"]) == {"treatment", "control"}
    for name in ("attendance", "ipe_targets", "feedback", "fidelity"):
        assert set(tables[name]["component"]) == COMPONENTS
    assert set(tables["attendance"]["attended"]) == {"true", "false"}
    fb = tables["feedback"]
    assert set(fb["would_recommend"]) <= {"true", "false", ""}
    assert set(fb["satisfaction"]) <= set("12345")
    assert set(fb["usefulness"]) <= set("12345") | {""}
    costs = tables["costs"]
    assert set(costs["category"]) <= {
        "personnel",
        "trainer_fees",
        "materials",
        "venue",
        "travel",
        "licences",
        "overheads",
        "staff_time",
        "other",
    }
    assert "staff_time" in set(costs["category"])
    assert set(costs["phase"]) == {"setup", "delivery"}
    assert set(costs["bearer"]) <= {"developer", "local_authority", "funder"}
    assert set(costs["price_year"]) == {"2023"}
    assert (pd.to_numeric(costs["quantity"]) >= 0).all() and (pd.to_numeric(costs["unit_cost_gbp"]) >= 0).all()


def test_numeric_ranges(tables):
    ca = tables["casefile_audit"]
    audited = pd.to_numeric(ca["cases_audited"])
    recorded = pd.to_numeric(ca["father_contact_recorded"])
    assert (recorded >= 0).all() and (recorded <= audited).all() and (audited >= 0).all()
    items = tables["survey"][list(SURVEY_ITEMS)]
    assert set(np.unique(items.to_numpy())) <= {"", "1", "2", "3", "4", "5"}
    assert 0.01 < (items == "").to_numpy().mean() < 0.06
    dates = pd.to_datetime(tables["survey"]["completed_on"], format="%Y-%m-%d")
    assert dates.notna().all()
    fid = tables["fidelity"]
    planned, delivered = pd.to_numeric(fid["planned_elements"]), pd.to_numeric(fid["delivered_elements"])
    assert (planned > 0).all() and (delivered >= 0).all() and (delivered <= planned).all()
    assert set(fid["quality"]) <= set("12345") | {""}
    tg = tables["ipe_targets"]
    assert (pd.to_numeric(tg["intended_n"]) > 0).all()
    assert not tg.duplicated(["la", "component"]).any()


def test_survey_attrition_is_realistic(tables):
    parts, sv = tables["participants"], tables["survey"]
    n = len(parts)
    n_base = (sv["wave"] == "baseline").sum()
    n_follow = (sv["wave"] == "followup").sum()
    assert 0.90 < n_base / n < 0.99
    assert 0.70 < n_follow / n_base < 0.90
    base_ids = set(sv.loc[sv["wave"] == "baseline", "participant_id"])
    assert set(sv.loc[sv["wave"] == "followup", "participant_id"]) <= base_ids


# --------------------------------------------------------------------------- shape of findings
def test_shape_of_findings(tables):
    teams, parts, sv = tables["teams"], tables["participants"], tables["survey"]
    arm = parts["team_id"].map(dict(zip(teams["team_id"], teams["arm"])))
    arm_of = dict(zip(parts["participant_id"], arm))

    # follow-up confidence: treatment mean above control mean
    conf = [f"conf_{j}" for j in range(1, 7)]
    fu = sv[sv["wave"] == "followup"]
    score = fu[conf].replace("", np.nan).apply(pd.to_numeric).mean(axis=1)
    by_arm = score.groupby(fu["participant_id"].map(arm_of)).mean()
    assert by_arm["treatment"] > by_arm["control"]

    # reach: distinct attendees (attended true) over intended_n, pooled
    att, tg = tables["attendance"], tables["ipe_targets"]
    attendees = att[att["attended"] == "true"].drop_duplicates(["person_id", "component"])
    reach = 100 * len(attendees) / pd.to_numeric(tg["intended_n"]).sum()
    assert 70 <= reach <= 90
    per_comp = attendees.groupby("component").size() / tg.groupby("component")["intended_n"].apply(
        lambda s: pd.to_numeric(s).sum()
    )
    assert per_comp.between(0.6, 1.0).all()

    # satisfaction: share answering 4 or 5
    fb = tables["feedback"]
    satisfied = 100 * pd.to_numeric(fb["satisfaction"]).ge(4).mean()
    assert 70 <= satisfied <= 88
    assert 0.5 < len(fb) / (att["attended"] == "true").sum() < 0.9

    # cost per participant reached (financial cost, staff_time excluded): rating 2
    costs = tables["costs"]
    fin = costs[costs["category"] != "staff_time"]
    total = (pd.to_numeric(fin["quantity"]) * pd.to_numeric(fin["unit_cost_gbp"])).sum()
    treated = {p for p, a in arm_of.items() if a == "treatment"}
    reached = attendees[attendees["component"].isin(PRACTICE) & attendees["person_id"].isin(treated)]
    per_participant = total / reached["person_id"].nunique()
    assert 200 <= per_participant <= 450

    # no treatment effect built into case-file audits: similar proportions by arm
    ca = tables["casefile_audit"]
    ca = ca[ca["wave"] == "followup"]
    rec = pd.to_numeric(ca["father_contact_recorded"]).groupby(ca["participant_id"].map(arm_of)).sum()
    aud = pd.to_numeric(ca["cases_audited"]).groupby(ca["participant_id"].map(arm_of)).sum()
    prop = rec / aud
    assert prop.between(0.3, 0.5).all()
