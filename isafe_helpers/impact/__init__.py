"""Impact strand: the cluster-randomised comparison of the arms.

The analyses a notebook calls, each returning a result with ``tidy()`` and ``table()``.
"""

from isafe_helpers.impact.baseline import (
    AWAITING_TEXT,
    awaits_followup,
    baseline_balance,
    baseline_power,
    descriptives,
)
from isafe_helpers.impact.casefiles import casefile
from isafe_helpers.impact.change import change_summary
from isafe_helpers.impact.characteristics import baseline_characteristics
from isafe_helpers.impact.compliance import cace, cace_all
from isafe_helpers.impact.flow import attrition, baseline_equivalence, trial_flow
from isafe_helpers.impact.heterogeneity import la_heterogeneity
from isafe_helpers.impact.missing_data import missing_data
from isafe_helpers.impact.power import power_analysis
from isafe_helpers.impact.primary_model import convergence_message, primary, primary_all, scope_caveat
from isafe_helpers.impact.sensitivity import robustness
from isafe_helpers.impact.subgroups import moderators

__all__ = [
    "AWAITING_TEXT",
    "awaits_followup",
    "baseline_balance",
    "baseline_characteristics",
    "baseline_power",
    "attrition",
    "baseline_equivalence",
    "cace",
    "cace_all",
    "descriptives",
    "casefile",
    "change_summary",
    "convergence_message",
    "la_heterogeneity",
    "missing_data",
    "moderators",
    "power_analysis",
    "primary",
    "primary_all",
    "robustness",
    "scope_caveat",
    "trial_flow",
]
