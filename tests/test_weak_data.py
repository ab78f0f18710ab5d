"""Analysable but weak data (issue 7, item 2) are not errors: the run goes on
and the `note` column says what could not be estimated and why."""

from __future__ import annotations

import pytest
from conftest import read, write

from isafe_helpers.data.loading import load_root
from isafe_helpers.results.estimates import read_estimates
from isafe_helpers.run.cli import main


@pytest.fixture
def weak_root(small_root):
    # LA01: every team in the control arm (no attendance needed then)
    teams = read(small_root, "LA01/teams.csv")
    write(small_root, "LA01/teams.csv", teams.assign(arm="control"))
    # nobody answered the strategy_frequency items
    for la in ("LA01", "LA02"):
        s = read(small_root, f"{la}/survey.csv")
        for c in [c for c in s.columns if c.startswith("freq_")]:
            s[c] = ""
        write(small_root, f"{la}/survey.csv", s)
    # a team with one member: move all but one of LA02's first team elsewhere
    parts = read(small_root, "LA02/participants.csv")
    first, other = sorted(parts["team_id"].unique())[:2]
    idx = parts.index[parts["team_id"] == first][1:]
    parts.loc[idx, "team_id"] = other
    write(small_root, "LA02/participants.csv", parts)
    return small_root


def test_weak_data_load_without_error(weak_root):
    data = load_root(weak_root)
    assert set(data.teams.loc[data.teams["la"] == "LA01", "arm"]) == {"control"}


@pytest.mark.slow
def test_weak_data_run_goes_on_and_says_why(weak_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["run", "--data", str(weak_root), "--out", str(out), "--no-book", "--strand", "impact", "process", "cost"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    la01 = read_estimates(out / "LA01" / "estimates.csv")
    te = la01[(la01["analysis"] == "primary") & (la01["quantity"] == "treatment_effect")]
    assert te["estimate"].isna().all()
    assert te["note"].str.contains("not estimable").all()
    trial = read_estimates(out / "trial" / "estimates.csv")
    freq = trial[(trial["analysis"] == "primary") & (trial["outcome"] == "strategy_frequency")]
    # the per-arm analysed counts are counts, not estimates: nobody answered, so none was analysed
    counted = freq["quantity"].isin(["analysed_treatment", "analysed_control"])
    assert counted.sum() == 2 and (freq.loc[counted, "estimate"] == 0).all()
    assert (~counted).any() and freq.loc[~counted, "estimate"].isna().all() and (freq["note"] != "").all()
    conf = trial[
        (trial["analysis"] == "primary")
        & (trial["outcome"] == "confidence")
        & (trial["quantity"] == "treatment_effect")
    ]
    assert conf["estimate"].notna().all()
