"""Cost strand: ingredients costing, unit costs, the Foundations rating and its sensitivity.

The analyses a notebook calls, each returning a result with ``tidy()`` and ``table()``.
"""

from isafe_helpers.cost.costing import report_price_year, unit_cost
from isafe_helpers.cost.scenarios import SENSITIVITY_SHARE, sensitivity

__all__ = ["SENSITIVITY_SHARE", "report_price_year", "sensitivity", "unit_cost"]
