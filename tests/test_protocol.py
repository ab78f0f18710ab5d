"""protocol.yml: the primary outcome and the planned design, their defaults, and bad files refused
with the file, line, key, value and rule; the primary and secondary outcomes in the estimates
(Holm across the secondary family, against statsmodels) and the plan in the MDES rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from isafe_helpers import impact
from isafe_helpers.data.loading import DataValidationError, load_root
from isafe_helpers.data.protocol import DEFAULT_DESIGN, default_protocol, read_protocol
from isafe_helpers.run.cli import main

SCALES = ["confidence", "competence", "org_practice", "strategy_effectiveness", "strategy_frequency"]

VALID = """\
primary_outcome: org_practice
design:
  las: 3
  teams: 12
  team_size: 6.5
  share_treated: 0.5
  mdes: 0.3
"""


def _write(root, text: str):
    (root / "protocol.yml").write_text(text, encoding="utf-8")


def test_without_the_file_no_outcome_is_primary_and_the_design_is_stated_as_an_assumption(tmp_path):
    p, problems = read_protocol(tmp_path, SCALES)
    assert problems == [] and p.source == "default"
    assert p.primary_outcome is None and p.design == DEFAULT_DESIGN
    assert (p.design.teams, p.design.las, p.design.team_size, p.design.share_treated) == (48, 8, 10.0, 0.5)
    assert len(p.assumptions) == 1 and p.assumptions[0].startswith("planned design")
    assert {p.role(o) for o in [*SCALES, "father_contact_recorded"]} == {"outcome"}  # nothing is primary
    assert p.secondary([*SCALES, "father_contact_recorded"]) == [*SCALES, "father_contact_recorded"]
    assert p.statement().startswith("No primary outcome was pre-specified")
    assert "Assumed" in p.statement() and "48 teams in 8 LAs" in p.statement()
    assert default_protocol(["wellbeing", "stress"]).primary_outcome is None


def test_a_valid_file_is_read(tmp_path):
    _write(tmp_path, VALID)
    p, problems = read_protocol(tmp_path, SCALES)
    assert problems == [] and p.source == "protocol.yml" and p.assumptions == ()
    assert p.primary_outcome == "org_practice"
    assert (p.design.las, p.design.teams, p.design.team_size, p.design.share_treated, p.design.mdes) == (
        3,
        12,
        6.5,
        0.5,
        0.3,
    )
    assert p.role("org_practice") == "primary" and p.role("confidence") == "secondary"
    assert p.role("father_contact_recorded") == "secondary"


def test_a_file_naming_only_the_primary_outcome_keeps_the_default_design_as_an_assumption(tmp_path):
    _write(tmp_path, "primary_outcome: father_contact_recorded\n")
    p, problems = read_protocol(tmp_path, SCALES)
    assert problems == [] and p.primary_outcome == "father_contact_recorded"
    assert p.design == DEFAULT_DESIGN and len(p.assumptions) == 1 and p.assumptions[0].startswith("planned design")
    assert p.role("father_contact_recorded") == "primary" and p.role("confidence") == "secondary"


@pytest.mark.parametrize(
    "text, line, key, value, rule",
    [
        ("primary_outcome: confdence\n", 1, "primary_outcome", "confdence", "must name an analysed outcome"),
        ("primary_outcome: [a, b]\n", 1, "primary_outcome", "['a', 'b']", "must name an analysed outcome"),
        ("primary: confidence\n", 1, "primary", None, "unknown key"),
        (VALID.replace("teams: 12", "teams: 12.5"), 4, "design.teams", "12.5", "whole number of teams"),
        (VALID.replace("teams: 12", "teams: 5"), 4, "design.teams", "5", "at least 2 per LA"),
        (VALID.replace("teams: 12", "teams: 3"), 4, "design.teams", "3", "at least 4"),
        (VALID.replace("las: 3", "las: 0"), 3, "design.las", "0", "at least 1"),
        (VALID.replace("team_size: 6.5", "team_size: -1"), 5, "design.team_size", "-1", "greater than 0"),
        (VALID.replace("share_treated: 0.5", "share_treated: 1"), 6, "design.share_treated", "1", "between 0 and 1"),
        (VALID.replace("share_treated: 0.5", "share_treated: half"), 6, "design.share_treated", "half", "between"),
        (VALID.replace("mdes: 0.3", "mdes: .nan"), 7, "design.mdes", "nan", "greater than 0"),
        (VALID.replace("mdes: 0.3", "mdes: true"), 7, "design.mdes", "True", "greater than 0"),
        (VALID.replace("mdes: 0.3", "mde: 0.3"), 7, "design.mde", None, "unknown key"),
        ("design:\n  las: 2\n  teams: 8\n", 1, "design", None, "must give every one of"),
        ("design: 48\n", 1, "design", "48", "must be a mapping"),
        (VALID + "  icc: 1.0\n", 8, "design.icc", "1.0", "at least 0 and below 1"),
        (VALID + "  icc: -0.1\n", 8, "design.icc", "-0.1", "at least 0 and below 1"),
        (VALID + "  r2_between: 1\n", 8, "design.r2_between", "1", "at least 0 and below 1"),
        (VALID + "  r2_within: lots\n", 8, "design.r2_within", "lots", "at least 0 and below 1"),
        ("registration: ISRCTN1\n", 1, "registration", "ISRCTN1", "must be a mapping of registry, id, url, date"),
        ("registration:\n  number: 5\n", 2, "registration.number", None, "unknown key"),
        ("registration:\n  id: ''\n", 2, "registration.id", "", "non-empty text"),
        ("registration:\n  date: 2022-13\n", 2, "registration.date", "2022-13", "YYYY-MM-DD or YYYY-MM"),
        ("dates:\n  baseline: March 2022\n", 2, "dates.baseline", "March 2022", "YYYY-MM-DD or YYYY-MM"),
        ("dates:\n  followup: 2022-02-30x\n", 2, "dates.followup", "2022-02-30x", "YYYY-MM-DD or YYYY-MM"),
        ("dates:\n  ended: 2022-02\n", 2, "dates.ended", None, "unknown key"),
        ("evaluator: ''\n", 1, "evaluator", "", "must be a name"),
        ("funder: [a, b]\n", 1, "funder", "['a', 'b']", "must be a name"),
        ("synthetic: yes please\n", 1, "synthetic", "yes please", "true or false"),
    ],
)
def test_a_bad_file_is_reported_with_line_key_value_and_rule(tmp_path, text, line, key, value, rule):
    _write(tmp_path, text)
    p, problems = read_protocol(tmp_path, SCALES)
    assert p.source == "default"  # nothing half-read is used
    hit = [q for q in problems if q.column == key]
    assert hit, [str(q) for q in problems]
    q = hit[0]
    assert q.file == "protocol.yml" and q.row == line and q.value == value and rule in q.rule


FULL = (
    VALID
    + """\
  icc: 0.1
  r2_between: 0.0
  r2_within: 0.45
registration:
  registry: ISRCTN
  id: ISRCTN12345678
  url: https://www.isrctn.com/ISRCTN12345678
  date: 2022-01-15
dates:
  randomised: 2022-03
  baseline: 2022-02-01
  followup: 2022-07
evaluator: An evaluator
developer: A developer
funder: A funder
"""
)


def test_the_planning_assumptions_registration_dates_and_organisations_are_read(tmp_path):
    _write(tmp_path, FULL)
    p, problems = read_protocol(tmp_path, SCALES)
    assert problems == [], [str(q) for q in problems]
    assert (p.design.icc, p.design.r2_between, p.design.r2_within) == (0.1, 0.0, 0.45)
    assert p.registration == {
        "registry": "ISRCTN",
        "id": "ISRCTN12345678",
        "url": "https://www.isrctn.com/ISRCTN12345678",
        "date": "2022-01-15",  # a YAML date stays the text the file gives
    }
    assert p.dates == {"randomised": "2022-03", "baseline": "2022-02-01", "followup": "2022-07"}
    assert (p.evaluator, p.developer, p.funder, p.synthetic) == ("An evaluator", "A developer", "A funder", False)
    # without them: empty, None, and the design's planning assumptions None (not pre-specified)
    _write(tmp_path, VALID)
    p, _ = read_protocol(tmp_path, SCALES)
    assert p.registration == {} and p.dates == {} and p.evaluator is None and p.design.icc is None


def test_the_bundled_synthetic_protocol_is_valid_names_confidence_and_says_it_is_synthetic(tmp_path):
    from isafe_helpers.data.synth import PROTOCOL_TEXT

    _write(tmp_path, PROTOCOL_TEXT)
    p, problems = read_protocol(tmp_path, SCALES)
    assert problems == [], [str(q) for q in problems]
    assert p.primary_outcome == "confidence" and p.synthetic and p.assumptions == ()
    assert None not in (p.design.icc, p.design.r2_between, p.design.r2_within, p.design.mdes)
    assert set(p.registration) == {"registry", "id", "url", "date"} and set(p.dates) == {
        "randomised",
        "baseline",
        "followup",
    }
    for text in (*p.registration.values(), p.evaluator, p.developer, p.funder):
        assert text is not None
    assert all("SYNTHETIC" in t for t in (p.registration["id"], p.evaluator, p.developer, p.funder))
    # and it is what the bundled data root ships (make bundled-data writes it)
    bundled = Path(__file__).resolve().parents[1] / "data" / "synthetic" / "protocol.yml"
    assert bundled.read_text(encoding="utf-8") == PROTOCOL_TEXT


@pytest.mark.parametrize("text", ["primary_outcome: [unclosed\n", "- a list\n- not a mapping\n"])
def test_unreadable_or_wrong_shape_is_one_problem(tmp_path, text):
    _write(tmp_path, text)
    _, problems = read_protocol(tmp_path, SCALES)
    assert len(problems) == 1 and problems[0].file == "protocol.yml"


def test_load_root_refuses_a_bad_protocol_and_the_cli_names_it(small_root, tmp_path, capsys):
    _write(small_root, "primary_outcome: happiness\n")
    with pytest.raises(DataValidationError) as err:
        load_root(small_root)
    assert "protocol.yml" in str(err.value) and "happiness" in str(err.value)
    code = main(["validate", "--data", str(small_root)])
    out = capsys.readouterr()
    assert code == 2
    text = out.out + out.err
    assert "protocol.yml" in text and "primary_outcome" in text and "must name an analysed outcome" in text
    assert "Traceback" not in text


def test_the_protocol_reaches_every_scope_and_names_the_primary_outcome(small_root):
    _write(small_root, VALID.replace("las: 3", "las: 2").replace("teams: 12", "teams: 8"))
    data = load_root(small_root)
    assert data.protocol.primary_outcome == "org_practice"
    la = data.for_scope("LA01")
    assert la.protocol is data.protocol
    pa = impact.primary_all(la)
    rows = pa.tidy()
    named = rows[rows["quantity"] == "primary_outcome"]
    assert named["outcome"].tolist() == ["org_practice"] and "protocol.yml" in named["note"].iloc[0]
    design = rows[rows["analysis"] == "protocol"].set_index("quantity")
    assert design.loc["planned_teams", "estimate"] == 8 and design.loc["planned_mdes", "estimate"] == 0.3
    assert design.loc["planned_teams", "note"] == "protocol.yml"
    te = rows[(rows["analysis"] == "primary") & (rows["quantity"] == "treatment_effect")].set_index("outcome")
    assert te.loc["org_practice", "note"].startswith("primary outcome")
    assert all(te.loc[s, "note"].startswith("secondary outcome") for s in SCALES if s != "org_practice")


def _holm_family(pa):
    rows = pa.tidy()
    holm = rows[(rows["analysis"] == "secondary") & (rows["quantity"] == "p_holm")].set_index("outcome")
    raw = {r.outcome: r.p_value for r in pa}
    raw["father_contact_recorded"] = pa.casefile.odds_ratio[4] if pa.casefile.converged else np.nan
    family = [o for o in holm.index if np.isfinite(raw[o])]
    want = multipletests([raw[o] for o in family], method="holm")[1]
    return rows, holm, family, want


def test_without_a_protocol_every_outcome_is_one_holm_family_and_none_is_primary(small_root):
    (small_root / "protocol.yml").unlink()  # generated roots ship a synthetic one
    pa = impact.primary_all(load_root(small_root))
    rows, holm, family, want = _holm_family(pa)
    assert set(holm.index) == {*SCALES, "father_contact_recorded"}  # all six, confidence included
    np.testing.assert_allclose(holm.loc[family, "estimate"], want, rtol=1e-12)
    assert holm.loc[family, "note"].str.contains(f"across all {len(family)} outcomes").all()
    named = rows[rows["quantity"] == "primary_outcome"]
    assert named["outcome"].tolist() == ["not_pre_specified"] and "names none" in named["note"].iloc[0]
    te = rows[(rows["analysis"] == "primary") & (rows["quantity"] == "treatment_effect")]
    assert not te["note"].str.contains("primary outcome \\(", regex=True).any()
    table = pa.table()
    assert set(table.data["role"]) == {"One family (no primary)"}
    assert table.data["p_holm"].notna().sum() == len([o for o in family if o != "father_contact_recorded"])
    assert "No primary outcome was pre-specified" in " ".join(table.notes)
    assert "Primary" not in " ".join(table.notes).replace("No primary", "")
    assert pa.casefile.role == "outcome" and pa.casefile.p_holm == holm.loc["father_contact_recorded", "estimate"]


def test_holm_across_the_secondary_family_matches_statsmodels(small_root):
    _write(small_root, "primary_outcome: confidence\n")
    data = load_root(small_root)
    pa = impact.primary_all(data)
    rows = pa.tidy()
    holm = rows[(rows["analysis"] == "secondary") & (rows["quantity"] == "p_holm")].set_index("outcome")
    assert set(holm.index) == set(SCALES[1:]) | {"father_contact_recorded"}  # confidence is the primary
    raw = {r.outcome: r.p_value for r in pa}
    raw["father_contact_recorded"] = pa.casefile.odds_ratio[4] if pa.casefile.converged else np.nan
    family = [o for o in holm.index if np.isfinite(raw[o])]
    want = multipletests([raw[o] for o in family], method="holm")[1]
    np.testing.assert_allclose(holm.loc[family, "estimate"], want, rtol=1e-12)
    np.testing.assert_allclose(holm.loc[family, "p_value"], want, rtol=1e-12)
    assert holm.loc[family, "note"].str.contains(f"across the {len(family)} secondary outcomes").all()
    shown = pa.table().data.set_index("role")
    assert np.isnan(shown.loc["Primary", "p_holm"])  # the primary outcome is not adjusted


def test_the_primary_outcome_can_be_the_case_file_outcome(small_root):
    _write(small_root, "primary_outcome: father_contact_recorded\n")
    pa = impact.primary_all(load_root(small_root))
    rows = pa.tidy()
    holm = rows[rows["quantity"] == "p_holm"]
    assert set(holm["outcome"]) == set(SCALES)
    assert pa.casefile.role == "primary"
    assert all(r.role == "secondary" for r in pa)


def test_mdes_uses_the_planned_design_of_the_protocol(small_root):
    _write(small_root, VALID.replace("las: 3", "las: 2").replace("teams: 12", "teams: 8") + "  icc: 0.1\n")
    res = impact.power_analysis(load_root(small_root))
    assert res.design.teams == 8 and res.design.team_size == 6.5
    assert (res.frame["df_protocol"] == 8 - 2 - (2 - 1)).all()
    rows = pd.DataFrame(res.rows())
    planned = rows[rows["quantity"] == "mdes_planned"]
    assert planned["estimate"].tolist() == [0.3] and "protocol.yml" in planned["note"].iloc[0]
    proto = rows[rows["quantity"] == "mdes_protocol"]
    assert proto["note"].str.contains(r"\(protocol.yml\)").all() and proto["estimate"].notna().all()


def test_without_a_protocol_the_plan_is_the_documented_assumption(small_root):
    (small_root / "protocol.yml").unlink()  # generated roots ship a synthetic one
    res = impact.power_analysis(load_root(small_root))
    assert res.design.teams == 48 and res.design.las == 8
    rows = pd.DataFrame(res.rows())
    assert "mdes_planned" not in set(rows["quantity"])
    proto = rows[rows["quantity"] == "mdes_protocol"]
    assert proto["note"].str.contains("assumed").all() and proto["note"].str.contains("not pre-specified").all()
