"""Process strand, exploratory: variation in outcomes and what each page skips.

Everything here is descriptive and exploratory, never causal. Dose is not
randomised: staff who attended both sessions may differ from those who
attended none in ways that also drive their outcomes. LA-level comparisons
of reach with impact rest on a handful of LAs and are ecological.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from isafe_helpers.data import contract as C
from isafe_helpers.data.frames import attendees, survey_wide, treatment_participants
from isafe_helpers.data.loading import TrialData
from isafe_helpers.process.participation import DOSE_LABELS, pathway_by_la
from isafe_helpers.process.result import ProcessResult
from isafe_helpers.results import keys as K
from isafe_helpers.results.estimates import FILENAME, est_row, read_estimates, results_root
from isafe_helpers.results.labels import label
from isafe_helpers.results.protocol import Result
from isafe_helpers.results.table import Col, Table

EXPLORATORY = "exploratory and descriptive, not causal"


def dose_outcome(data: TrialData) -> ProcessResult:
    """Within the treatment arm: mean change (follow-up minus baseline) of each scale by dose.

    Participants of treatment teams with both waves scored on a scale are
    grouped by practice-pathway sessions attended (none, one, both). The
    table has one row per scale and dose group: n, mean baseline, mean
    follow-up and mean change.
    """
    tp = treatment_participants(data)
    recs, rows = [], []
    for scale in data.instrument.scale_names:
        df = tp.merge(survey_wide(data, scale), left_on="participant_id", right_index=True, how="left").dropna(
            subset=["baseline", "followup"]
        )
        for d, dose_name in DOSE_LABELS.items():
            sub = df[df["dose"] == d]
            change = (sub["followup"] - sub["baseline"]).astype(float)
            n = len(sub)
            mean = float(change.mean()) if n else np.nan
            se = float(change.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
            recs.append(
                {
                    "outcome": scale,
                    "dose": dose_name,
                    "n": n,
                    "baseline": float(sub["baseline"].mean()) if n else np.nan,
                    "followup": float(sub["followup"].mean()) if n else np.nan,
                    "mean_change": mean,
                    "se": se,
                }
            )
            rows.append(
                est_row("dose_outcome", scale, f"mean_change_dose_{dose_name}", mean, se=se, n=n, note=EXPLORATORY)
            )
            # the group's mean scores, which the table prints beside their change
            for wave in ("baseline", "followup"):
                rows.append(
                    est_row(
                        "dose_outcome",
                        scale,
                        f"mean_{wave}_dose_{dose_name}",
                        recs[-1][wave],
                        n=n,
                        note=EXPLORATORY,
                    )
                )
    return ProcessResult(
        "dose_outcome",
        pd.DataFrame(recs),
        rows,
        [
            Col("outcome", "Outcome", "text"),
            Col("dose", "Sessions attended", "text"),
            Col("n", "Staff", "people"),
            Col("baseline", "Mean at baseline", "mean", 2, base="n"),
            Col("followup", "Mean at follow-up", "mean", 2, base="n"),
            Col("mean_change", "Mean change", "mean", 2, base="n"),
            Col("se", "SE of the mean change", "mean", 2, base="n"),
        ],
        "Outcome change by practice-pathway sessions attended (intervention arm)",
        quantities={
            "n": ("mean_change_dose_{dose}", "n"),
            "baseline": ("mean_baseline_dose_{dose}", "estimate"),
            "followup": ("mean_followup_dose_{dose}", "estimate"),
            "mean_change": ("mean_change_dose_{dose}", "estimate"),
            "se": ("mean_change_dose_{dose}", "se"),
        },
    )


@dataclass
class ImpactComparison(Result):
    """LA-level reach beside the LA's impact estimates, when these exist."""

    frame: pd.DataFrame
    estimates: list[dict]
    found: list[str]
    missing: list[str]
    provenance: str
    notes: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return bool(self.found)

    def rows(self) -> list[dict]:
        return self.estimates

    def table(self) -> Table:
        """One row per LA and scale: practice-pathway reach beside the LA's treatment effect."""
        t = self.frame.assign(outcome=[label(o) for o in self.frame["outcome"]])
        return Table(
            t,
            [
                Col("la", "LA", "text"),
                Col("staff", "Intervention-team staff", "people"),
                # "82.1% of 28": the share and its base give back the staff reached, which the LA's pages count
                Col(
                    "reach_pct",
                    "Staff with at least one practice-pathway session (%)",
                    "pct",
                    1,
                    base="staff",
                    of="staff",
                ),
                Col("outcome", "Outcome", "text"),
                Col("treatment_effect", "Effect in the LA: its own primary model (scale points)", "number", 3),
                Col("ci_low", "95% CI low", "number", 3),
                Col("ci_high", "95% CI high", "number", 3),
            ],
            caption="Reach against impact in each LA (exploratory)",
            keys={
                "staff": [K.staff([la], "treatment") for la in self.frame["la"]],
                "reach_pct|share": [K.reached([la]) for la in self.frame["la"]],
            },
            # each LA's own numbers: its reach (process) and its primary model's effect (impact) in its estimates.csv
            facts={
                **{
                    col: [(la, "process", "reach", "practice_pathway_one", q, "estimate") for la in self.frame["la"]]
                    for col, q in (("staff", "treatment_participants"), ("reach_pct", "reach_pct"))
                },
                **{
                    col: [
                        (la, "impact", "primary", o, "treatment_effect", fld)
                        for la, o in zip(self.frame["la"], self.frame["outcome"])
                    ]
                    for col, fld in (("treatment_effect", "estimate"), ("ci_low", "ci_low"), ("ci_high", "ci_high"))
                },
            },
        )


def _provenance() -> str:
    """Where the impact estimates come from (see :mod:`isafe_helpers.run.pipeline`)."""
    return (
        "The pipeline finishes every scope's impact notebook before any process notebook starts, and "
        "reruns a notebook only when its inputs change, so these are the impact estimates for this data "
        "root, provided the impact strand was run on it (in this run or an earlier one)."
    )


def reach_vs_impact(data: TrialData, scope: str, output_dir: str | Path) -> ImpactComparison:
    """Practice-pathway reach of each LA beside its primary impact estimates.

    Reach here is person level: the LA's treatment-team participants who
    attended at least one practice-pathway session, over all of them
    (``reach_pct`` of ``practice_pathway_one``).

    Reads ``<results>/<LA>/estimates.csv`` (see
    :func:`isafe_helpers.results.estimates.results_root`; rows ``impact``,
    ``primary``, each scale, ``treatment_effect``) for each LA of the scope;
    an LA without that file or those rows is listed in ``missing``. In a
    pooled scope with at least three LAs found, each scale gets the Pearson
    correlation across LAs of reach with the treatment effect (exploratory,
    ecological; ``n`` counts the LAs).
    """
    results = results_root(output_dir)
    prac = pathway_by_la(data).set_index("la")
    recs, found, missing = [], [], []
    for la in data.las:
        path = results / la / FILENAME
        est = read_estimates(path) if path.is_file() else pd.DataFrame(columns=["strand"])
        if len(est):
            est = est[
                (est["strand"] == "impact")
                & (est["analysis"] == "primary")
                & (est["quantity"] == "treatment_effect")
                & est["estimate"].notna()
            ]
        if est.empty:
            missing.append(la)
            continue
        found.append(la)
        for r in est.itertuples(index=False):
            recs.append(
                {
                    "la": la,
                    "staff": int(prac.loc[la, "staff"]),
                    "reach_pct": float(prac.loc[la, "one_pct"]),
                    "outcome": r.outcome,
                    "treatment_effect": r.estimate,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                }
            )
    table = pd.DataFrame(recs, columns=["la", "staff", "reach_pct", "outcome", "treatment_effect", "ci_low", "ci_high"])
    rows = []
    if scope == C.TRIAL_SCOPE and len(found) >= 3:
        for outcome, sub in table.groupby("outcome", sort=False):
            sub = sub.dropna(subset=["reach_pct", "treatment_effect"])
            r = float(np.corrcoef(sub["reach_pct"], sub["treatment_effect"])[0, 1]) if len(sub) >= 3 else np.nan
            rows.append(
                est_row(
                    "reach_vs_impact",
                    outcome,
                    "pearson_r_reach_effect",
                    r,
                    n=len(sub),
                    note=f"across LAs; reach: staff with at least one practice-pathway session; {EXPLORATORY}",
                )
            )
    prov = _provenance() if found else ""
    return ImpactComparison(table, rows, found, missing, prov)


def skipped_sections(data: TrialData) -> list[str]:
    """Sections a page skips for want of an optional file, and why (one sentence each).

    In a pooled scope, LAs without feedback or fidelity are named: their
    reach and dose still count, but they are absent from the sections
    built on the missing file.
    """
    out = []
    att_las = set(attendees(data)["la"])
    for name, sections in (
        ("feedback", "satisfaction, usefulness, would-recommend, the response rate and themes"),
        ("fidelity", "fidelity and quality of delivery"),
    ):
        have = set(getattr(data, name)["la"])
        lacking = [la for la in data.las if la not in have]
        if not lacking:
            continue
        if len(lacking) == len(data.las):
            out.append(
                f"No {name} file was returned (it is optional), so {sections} are skipped: "
                f"their rows in estimates.csv are blank with a note."
            )
        else:
            out.append(
                f"{', '.join(lacking)} returned no {name} file (it is optional), so "
                f"{'it is' if len(lacking) == 1 else 'they are'} left out of {sections}; "
                "reach and dose still count every LA."
            )
    no_att = [la for la in data.las if la not in att_las]
    if no_att:
        out.append(f"{', '.join(no_att)} recorded no attended sessions, so reach there is zero or blank.")
    return out


def skipped_text(data: TrialData) -> str:
    """Markdown for the top of a page: the skipped sections, or that none is skipped."""
    items = skipped_sections(data)
    if not items:
        return "Every optional file (feedback, fidelity) was returned: no section is skipped."
    return "**Sections skipped or incomplete.**\n\n" + "\n".join(f"- {s}" for s in items)


def impact_text(cmp: ImpactComparison, scope: str) -> str:
    """Markdown saying what the reach-against-impact comparison rests on, or why it is absent."""
    if not cmp.available:
        return (
            "Impact results for this scope's LA(s) do not exist yet (no `impact` rows in "
            "`<results>/<LA>/estimates.csv`), so reach is not set against impact here. The pipeline "
            "runs the strands in parallel: rerun this page after the impact strand has finished to see "
            "the comparison."
        )
    text = f"Impact estimates found for {len(cmp.found)} LA(s) ({', '.join(cmp.found)}). {cmp.provenance}"
    if cmp.missing:
        text += f" No impact results yet for {', '.join(cmp.missing)}."
    if scope == C.TRIAL_SCOPE and len(cmp.found) < 3:
        text += " Fewer than three LAs have impact results, so no correlation across LAs is computed."
    elif scope == C.TRIAL_SCOPE:
        text += (
            " The correlations across LAs below are "
            + EXPLORATORY
            + ": they rest on a handful of LAs and are ecological."
        )
    else:
        text += " One LA gives a single point: it is shown for reading across LA pages, not as evidence."
    return text
