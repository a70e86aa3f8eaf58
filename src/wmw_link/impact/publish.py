"""Disclosure control of the impact estimates, with the same policy tiers as ``outcomes``.

* Counts (treated, comparison pool, matched, off support; treated per breakdown group) are
  suppressed below ``min_cell`` and rounded to ``rounding_base`` by
  :func:`wmw_link.disclosure.protect`, which also hides a second group wherever one group
  alone is hidden (so no group's count follows from the total).
* An estimate, its interval and its naive difference are shown only when at least
  ``min_denominator`` treated people *and* ``min_denominator`` distinct matched comparison
  people stand behind it, and its group's count is shown. No interval from fewer.
* Points are rounded to the tier's rate decimals (0.1 internal, whole points public), pounds
  to its value base (GBP 1 / GBP 10). Standardised mean differences are shown to 0.001 (they
  are ratios of means over at least ``min_denominator`` people); covariate means are not
  published in the public tier.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from wmw_link.agreement import DisclosureTier
from wmw_link.disclosure import Precision, protect
from wmw_link.impact.estimate import Estimates
from wmw_link.outcomes.measures import aggregate


def _round(v: float, base: float) -> float:
    # Half up; the epsilon stops 5.55 / 0.1 = 55.4999... from rounding down.
    return float(base * math.floor(v / base + 0.5 + 1e-9))


def _num(v: Any, unit: str, prec: Precision) -> float | None:
    if v is None or not np.isfinite(v):
        return None
    if unit == "pounds":
        return _round(float(v), prec.value_base)
    return round(_round(float(v), 10.0**-prec.rate_decimals), prec.rate_decimals)


def _count(v: float, tier: DisclosureTier) -> int | None:
    return None if v < tier.min_cell else int(_round(v, tier.rounding_base))


def _enough(n_t: int, n_c: int, tier: DisclosureTier) -> bool:
    return n_t >= tier.min_denominator and n_c >= tier.min_denominator


def protect_estimates(
    est: Estimates, tier: DisclosureTier, prec: Precision, *, means: bool
) -> dict[str, Any]:
    """The published form of the estimates for one tier (a JSON-ready dict)."""
    outcomes: dict[str, dict[str, Any]] = {}
    for r in est.outcomes.itertuples(index=False):
        shown = _enough(r.n_treated, r.n_controls, tier)
        vals = ("estimate", "ci_low", "ci_high", "kernel_estimate", "kernel_ci_low",
                "kernel_ci_high", "naive", "treated_mean")  # fmt: skip
        entry: dict[str, Any] = {"unit": r.unit}
        for v in vals:
            entry[v] = _num(getattr(r, v), r.unit, prec) if shown else None
        entry["n_treated"] = _count(r.n_treated, tier)
        outcomes[r.outcome] = entry

    # Treated per breakdown group: one SDC family per breakdown (groups add up to the total).
    tb = est.breakdowns.drop_duplicates(["breakdown", "group"])
    cells = []
    for b, part in tb.groupby("breakdown", sort=True):
        frame = pd.DataFrame({b: np.repeat(part["group"].to_numpy(), part["n_treated"].to_numpy())})
        agg = aggregate(frame, table="impact_breakdowns", measure=f"treated_{b}", kind="count",
                        population=f"impact_{b}", domains={b: list(part["group"])}, dims=[b],
                        pairs=[])  # fmt: skip
        cells.append(agg)
    protected = protect(pd.concat(cells, ignore_index=True), tier, prec) if cells else None
    shown_n: dict[tuple[str, str], float | None] = {}
    if protected is not None:
        for r in protected.itertuples(index=False):
            if r.breakdown != "all":
                shown_n[(r.breakdown, r.group1)] = None if pd.isna(r.n) else float(r.n)
    breakdowns = []
    for r in est.breakdowns.itertuples(index=False):
        n_pub = shown_n.get((r.breakdown, str(r.group)))
        ok = n_pub is not None and _enough(r.n_treated, r.n_controls, tier)
        unit = "pounds" if r.outcome.startswith("earnings") else "points"
        breakdowns.append(
            {
                "breakdown": r.breakdown,
                "group": str(r.group),
                "outcome": r.outcome,
                "n_treated": int(n_pub) if n_pub is not None else None,
                "estimate": _num(r.estimate, unit, prec) if ok else None,
                "ci_low": _num(r.ci_low, unit, prec) if ok else None,
                "ci_high": _num(r.ci_high, unit, prec) if ok else None,
            }
        )
    balance = []
    for r in est.balance.itertuples(index=False):
        row: dict[str, Any] = {
            "covariate": r.covariate,
            "smd_before": round(float(r.smd_before), 3) + 0.0,  # + 0.0: no "-0.0"
            "smd_after": round(float(r.smd_after), 3) + 0.0,
        }
        if means:
            for c in ("mean_treated", "mean_control_before", "mean_control_after"):
                row[c] = round(float(getattr(r, c)), 2)
        balance.append(row)
    counts = {k: _count(v, tier) for k, v in est.counts.items()}
    return {
        "counts": counts,
        "outcomes": outcomes,
        "breakdowns": breakdowns,
        "balance": balance,
        "max_censoring_weight": round(est.max_censoring_weight, 2),
    }
