"""Outcome measures of the West Midlands Works plan, from journeys, with disclosure control.

Modules: ``presets`` (sustained-employment rules), ``cohort`` (support starts and their
month-by-month records), ``measures`` (cohort measures, aggregation), ``population``
(population measures), ``bias`` (linkage-bias table), ``run`` (:func:`measure_outcomes`).
"""

from __future__ import annotations

from wmw_link.outcomes.presets import NLW_RATES, PRESETS, get_rule, nlw_rate
from wmw_link.outcomes.run import OutcomesResult, compute_measures, measure_outcomes

__all__ = [
    "NLW_RATES",
    "PRESETS",
    "OutcomesResult",
    "compute_measures",
    "get_rule",
    "measure_outcomes",
    "nlw_rate",
]
