"""The report's status in readers' words: the baseline report (no follow-up yet) or the full report.

The run records, for the pooled trial and each LA, whether follow-up has
arrived (``report_status`` in the run's record, from
:func:`isafe_helpers.data.followup.statuses`). The book shows it on the
front page and on every LA's index page. In a baseline report the front
page's impact sentences say that the outcome analysis awaits follow-up, the
headline results and security tables (which need outcomes) are left out
rather than shown empty, and the impact and process pages drop the sections
that need follow-up (cells tagged ``needs-followup``) and show those written
for the baseline report (cells tagged ``baseline-only``).
"""

from __future__ import annotations

import math

from isafe_helpers.data import contract as C
from isafe_helpers.publish import summary as S
from isafe_helpers.publish.escape import md
from isafe_helpers.publish.tables import number
from isafe_helpers.results.estimates import Lookup
from isafe_helpers.results.labels import label

#: Cells a page keeps only in the full report, and only in the baseline report.
NEEDS_FOLLOWUP, BASELINE_ONLY = "needs-followup", "baseline-only"


def baseline_scopes(run: dict) -> set[str]:
    """The scopes (``trial`` and LA codes) whose report is the baseline report (no follow-up yet)."""
    return {s for s, v in (run.get("report_status") or {}).items() if v == "baseline"}


def front_page_status(run: dict) -> str:
    """The front page's statement of what this report is (Markdown, escaped)."""
    base = baseline_scopes(run)
    if C.TRIAL_SCOPE in base:
        return md(
            "This is the baseline report: follow-up has not been collected yet. It shows the trial as randomised: "
            "the flow of teams and staff to date, how alike the arms were at baseline, how much scores cluster in "
            "teams, the smallest effect the trial can detect, and delivery and costs so far. Still to come, once the "
            "follow-up survey and case-file audit are in: the effect of ISAFE on each outcome, attrition, the "
            "robustness checks, for whom the effect differed, and the security of the finding."
        )
    text = "This is the full report: outcomes were measured at baseline and at follow-up."
    las = sorted(s for s in base if s != C.TRIAL_SCOPE)
    if las:
        text += (
            f" Follow-up has not been received from {len(las)} LA(s) ({', '.join(las)}): their staff count as lost "
            "to follow-up in the pooled trial, and their own pages are a baseline report."
        )
    return md(text)


def waves_sentence(baseline: bool) -> str:
    """The front page's sentence on when the trial measured its outcomes (Markdown; fixed text, no data)."""
    if baseline:
        return (
            "Staff answered a survey at baseline, and case files were audited for fathers' contact details; the "
            "follow-up survey and audit, about two months later, are still to come."
        )
    return (
        "Staff answered surveys at baseline and about two months later; case files were audited for fathers' "
        "contact details."
    )


def la_status(la: str, run: dict) -> str:
    """An LA index page's statement of what its report is (a MyST block, escaped)."""
    if la in baseline_scopes(run):
        body = (
            f"Baseline report: follow-up has not been collected in {la} yet. These pages show the trial flow to "
            "date, how alike the arms were at baseline, delivery and costs so far; the effect on outcomes follows "
            "once follow-up arrives."
        )
        return "```{important}\n" + md(body) + "\n```\n"
    return md(f"Full report: outcomes in {la} were measured at baseline and at follow-up.") + "\n"


def baseline_glue(look: Lookup, run: dict, limit: int) -> dict[str, str]:
    """The summary's sentences that differ in the baseline report: nothing read from an outcome analysis."""
    named = S.primary_outcome(look)
    primary = S.reference_outcome(look)
    awaits = "awaits follow-up"
    teams = sum(look.value("impact", "trial_flow", f"allocated_{a}", "teams") for a in ("treatment", "control"))
    staff = sum(look.value("impact", "trial_flow", f"allocated_{a}", "staff") for a in ("treatment", "control"))
    las = len(run.get("las", []))
    size = f"{number(teams, 'int')} teams in {las} local authorities" if math.isfinite(teams) else f"{las} LAs"
    if math.isfinite(staff):
        size += f", with {number(staff, 'people') if staff >= limit else '[c]'} staff at baseline,"
    mdes = look.value("impact", "power", primary, "mdes_randomisation")
    return {
        "s_size_sentence": md(f"{size} were randomised within LA to ISAFE or to business as usual."),
        "s_primary_sentence": md(
            f"The effect on the primary outcome, {label(primary).lower()}, {awaits}: this baseline report "
            "estimates no effect."
            if named is not None
            else f"The effect of ISAFE on each outcome {awaits} (no primary outcome was pre-specified): this "
            "baseline report estimates no effect."
        ),
        "s_secondary_sentence": md(
            f"The effects on the other outcomes {awaits.replace('awaits', 'await')} too."
            if named is not None
            else "Each outcome's p-value will be adjusted for testing all of them (Holm)."
        ),
        "s_attrition_sentence": md("Attrition is known once follow-up has been collected."),
        "s_mdes_sentence": md(
            f"As randomised, before follow-up, the trial could detect an effect of {number(mdes, 'number', 2)} SD on "
            + ("the primary outcome" if named is not None else label(primary).lower())
            + " with 80% power (with the ICC at baseline and, conservatively, no variance explained "
            "by the baseline score)."
            if math.isfinite(mdes)
            else "The minimum detectable effect size at randomisation is not available in this build."
        ),
        "s_security_sentence": md(
            "The security of the finding (power achieved, attrition, baseline balance of the analysed sample and "
            "the robustness checks) is set out in the full report, once follow-up has been collected."
        ),
    }
