"""estimates.csv: the contract's columns, strands merged in a fixed order."""

from __future__ import annotations

import math

from isafe_helpers.results.estimates import COLUMNS, est_row, frame, read_estimates, write_estimates


def test_strands_merge_in_fixed_order_whatever_finishes_first(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    imp = frame([est_row("primary", "confidence", "treatment_effect", 0.1, 0.05, n=10, n_clusters=2)], "LA01", "impact")
    cost = frame([est_row("unit_cost", "total", "total_cost_gbp", 123.456)], "LA01", "cost")
    proc = frame([est_row("reach", "champion", "reach_pct", 80.0)], "LA01", "process")
    for df in (cost, imp, proc):
        write_estimates(df, a)
    for df in (proc, imp, cost):
        write_estimates(df, b)
    assert (a / "estimates.csv").read_bytes() == (b / "estimates.csv").read_bytes()
    out = read_estimates(a / "estimates.csv")
    assert list(out.columns) == COLUMNS
    assert list(out["strand"]) == ["impact", "process", "cost"]


def test_rewriting_a_strand_replaces_its_rows_and_keeps_numbers_unrounded(tmp_path):
    write_estimates(frame([est_row("unit_cost", "total", "total_cost_gbp", 1.0)], "trial", "cost"), tmp_path)
    write_estimates(frame([est_row("unit_cost", "total", "total_cost_gbp", 1 / 3)], "trial", "cost"), tmp_path)
    out = read_estimates(tmp_path / "estimates.csv")
    assert len(out) == 1
    assert out.loc[0, "estimate"] == 1 / 3
    assert math.isnan(out.loc[0, "se"]) and out.loc[0, "note"] == ""


def test_names_are_read_back_as_values_not_their_spreadsheet_safe_form(tmp_path):
    """Issue 26: an outcome named ``=Effectiveness`` is written ``'=Effectiveness`` for spreadsheets,
    and read back (by the book, the summary, a rerun's merge) as ``=Effectiveness``."""
    from isafe_helpers.results.estimates import Lookup, read_scope

    names = ["=Effectiveness", "+Reach", "@Team", "'quoted", "''=twice", "-1.5", "plain"]
    rows = [est_row("primary", name, "treatment_effect", 0.1, note=f"note {name}") for name in names]
    write_estimates(frame(rows, "LA01", "impact"), tmp_path / "LA01")
    write_estimates(frame([est_row("reach", "=Champion", "reach_pct", 1.0)], "LA01", "process"), tmp_path / "LA01")
    text = (tmp_path / "LA01" / "estimates.csv").read_text(encoding="utf-8")
    assert ",'=Effectiveness," in text and ",'=Champion," in text  # safe to open in a spreadsheet
    assert "\n=" not in text and ",=" not in text and ",+" not in text
    est = read_scope(tmp_path, "LA01")
    assert list(est["outcome"]) == [*names, "=Champion"]
    assert list(est["note"])[: len(names)] == [f"note {name}" for name in names]
    assert Lookup(est).value("impact", "primary", "=Effectiveness", "treatment_effect") == 0.1
