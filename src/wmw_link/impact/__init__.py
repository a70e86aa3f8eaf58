"""What works: the effect of hub support against a matched comparison group.

Modules: ``cohort`` (treated, comparison pool, pseudo-starts), ``covariates`` (pre-start
record and outcomes, from journeys), ``matching`` (propensity scores, nearest-neighbour and
kernel matching, balance), ``estimate`` (ATT, bootstrap intervals, breakdowns), ``publish``
(disclosure control), ``run`` (:func:`estimate_impact`). Method: docs/impact.md.
"""

from __future__ import annotations

from wmw_link.impact.cohort import Window
from wmw_link.impact.estimate import Settings
from wmw_link.impact.run import ImpactResult, estimate_impact

__all__ = ["ImpactResult", "Settings", "Window", "estimate_impact"]
