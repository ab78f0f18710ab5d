"""Implementation and process strand: reach, dose, feedback, fidelity and (exploratory) variation.

The analyses a notebook calls, each returning a result with ``tidy()`` and ``table()``.
"""

from isafe_helpers.data.followup import awaits_followup
from isafe_helpers.process.delivery import FIDELITY_THRESHOLD_PCT, fidelity
from isafe_helpers.process.feedback import has_themes, response_rate, satisfaction, themes, usefulness
from isafe_helpers.process.participation import dose, reach, reached_profile
from isafe_helpers.process.variation import dose_outcome, impact_text, reach_vs_impact, skipped_text

__all__ = [
    "FIDELITY_THRESHOLD_PCT",
    "awaits_followup",
    "dose",
    "dose_outcome",
    "fidelity",
    "has_themes",
    "impact_text",
    "reach",
    "reach_vs_impact",
    "reached_profile",
    "response_rate",
    "satisfaction",
    "skipped_text",
    "themes",
    "usefulness",
]
