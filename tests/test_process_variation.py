"""Reach against impact (read from other strands' results), and the strand figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from tiny import COSTS_HEAD, TARGETS, make_root, standard_root

from isafe_helpers import cost, process
from isafe_helpers.data.loading import load_root
from isafe_helpers.process import variation as process_variation
from isafe_helpers.publish import figures
from isafe_helpers.results.estimates import RESULTS_ROOT_MARKER

COSTS = COSTS_HEAD + "t,trainer_fees,delivery,developer,1,item,10,2023\n"
EST_HEAD = "scope,strand,analysis,outcome,quantity,estimate,se,ci_low,ci_high,p_value,n,n_clusters,note\n"


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three LAs whose person-level practice-pathway reach is 1/3, 2/3 and 3/3 of treatment-team staff
    (and 1/6, 2/6, 3/6 of the practice pathway's places, which the comparison does not use)."""
    tmp = tmp_path_factory.mktemp("three")
    for i, la in enumerate(("LA01", "LA02", "LA03"), start=1):
        att = "person_id,component,attended\n" + "".join(
            f"{la}-P{j},motivational_interviewing,true\n" for j in range(1, i + 1)
        )
        root = make_root(tmp, la, att, TARGETS, None, None, COSTS, n_treated=3)
    return load_root(root)


def _write_impact(out, la, effect):
    (out / la).mkdir(parents=True, exist_ok=True)
    (out / la / "estimates.csv").write_text(
        EST_HEAD + f"{la},impact,primary,confidence,treatment_effect,{effect},0.1,{effect - 0.2},{effect + 0.2},,8,2,\n"
    )


def test_reach_vs_impact_reads_each_la_and_correlates(three, tmp_path):
    out = tmp_path / "results"
    for la, eff in (("LA01", 0.1), ("LA02", 0.3), ("LA03", 0.2)):
        _write_impact(out, la, eff)
    cmp = process_variation.reach_vs_impact(three, "trial", out / "trial")
    assert cmp.available and cmp.found == ["LA01", "LA02", "LA03"] and cmp.missing == []
    t = cmp.frame.set_index("la")
    assert t.loc["LA02", "reach_pct"] == pytest.approx(100 * 2 / 3)  # staff, not places (2 / 6)
    assert t.loc["LA02", "staff"] == 3
    assert t.loc["LA03", "treatment_effect"] == pytest.approx(0.2)
    # Pearson r of x = (1, 2, 3)/3 and y = (0.1, 0.3, 0.2): centred x (-1, 0, 1), y (-0.1, 0.1, 0)
    r_hand = (0.1 + 0 + 0) / np.sqrt(2 * 0.02)
    r = cmp.rows()[0]
    assert (r["outcome"], r["quantity"], r["n"]) == ("confidence", "pearson_r_reach_effect", 3)
    assert r["estimate"] == pytest.approx(r_hand)
    text = process_variation.impact_text(cmp, "trial")
    assert "impact notebook before any process notebook" in text


def test_reach_vs_impact_says_when_results_do_not_exist(three, tmp_path):
    cmp = process_variation.reach_vs_impact(three, "trial", tmp_path / "nothing" / "trial")
    assert not cmp.available and cmp.rows() == [] and cmp.missing == ["LA01", "LA02", "LA03"]
    assert "do not exist yet" in process_variation.impact_text(cmp, "trial")


def test_reach_vs_impact_finds_the_run_through_the_pipeline_marker(three, tmp_path):
    """Under the pipeline a notebook's output_dir is a private folder naming the results folder."""
    out = tmp_path / "results"
    _write_impact(out, "LA02", 0.3)
    work = tmp_path / "results" / ".tmp" / "LA02-process"
    work.mkdir(parents=True)
    (work / RESULTS_ROOT_MARKER).write_text(str(out))
    cmp = process_variation.reach_vs_impact(three.for_scope("LA02"), "LA02", work)
    assert cmp.found == ["LA02"] and cmp.rows() == []  # one LA: no correlation


def _views(*tabs):
    """The tables' views as :func:`isafe_helpers.publish.report.views` gives them when nothing is withheld:
    the declared columns, numbers as floats."""
    out = []
    for t in tabs:
        declared = [c.key for c in t.columns] + [p for c in t.columns if c.kind == "ci" for p in c.parts]
        data = t.data.reset_index(drop=True)[list(dict.fromkeys(declared))].copy()
        for c in t.columns:
            if c.kind != "text":
                for col in (c.key, *(c.parts or ())):
                    data[col] = pd.to_numeric(data[col], errors="coerce").astype(float)
        out.append(data)
    return out


def test_figures_build_for_la_and_pooled_scopes(three, tmp_path):
    std = load_root(standard_root(tmp_path))
    for d in (three, std):
        r = process.reach(d)
        sat = process.satisfaction(d)
        fid = process.fidelity(d)
        year = cost.report_price_year(d)
        uc = cost.unit_cost(d, price_year=year)
        sens = cost.sensitivity(d, price_year=year)
        by_la = [r.table("by_la")] if len(d.las) > 1 else []
        pooled = [uc.table()] if len(d.las) > 1 else []
        figs = [
            figures.process.reach(_views(r.table(), *by_la)),
            figures.process.dose_outcome(_views(process_variation.dose_outcome(d).table())),
            figures.cost.cost_by_la(_views(figures.cost.category_table(uc.category_by_la, year)), price_year=year),
            figures.cost.unit_cost_bands(_views(uc.la_table(), *pooled), price_year=year),
            figures.cost.tornado(
                _views(figures.cost.tornado_table(sens), uc.table()), share=cost.SENSITIVITY_SHARE, price_year=year
            ),
        ]
        if not d.feedback.empty:
            dist = figures.process.distribution_table(sat.frames["distribution"])
            figs.append(figures.process.satisfaction_diverging(_views(dist)))
        if len(fid.frames["sessions"]):
            figs.append(figures.process.fidelity_heatmap(_views(figures.process.fidelity_table(fid.frames["by_la"]))))
        assert all(isinstance(f, plt.Figure) for f, _ in figs)
        assert all(isinstance(alt, str) and alt.strip() for _, alt in figs)
