"""Sustained-employment rules as named, documented presets with open parameters.

A rule looks at one cohort member's first months after their support start and says whether
they were in sustained employment by a horizon (6 or 12 months). Rules see, per person,

* ``employed[m]``: whether any PAYE employment spell overlaps month ``m`` after the start
  (month 1 is ``[start, start + 1 month)``, month 2 the next, ...; several employers in one
  month count once);
* ``earnings[m]``: earnings in month ``m``, each spell's ``monthly_pay`` pro-rated by the days
  of the month it covers (``monthly_pay * days * 12 / 365.25``), summed over employers;
* ``start``: the support start date.

Presets:

``dfe_5_of_6_months``
    The Department for Education destination measures' sustained employment: employed in at
    least ``min_months`` (5) of ``window_months`` (6) consecutive months. The window is the
    ``window_months`` months that end at the horizon: months 1-6 for the 6-month measure,
    months 7-12 for the 12-month one. A single month's gap still counts; two do not.

``whp_16h_nlw_26_weeks``
    The Work and Health Programme job outcome: cumulative earnings from the start to the
    horizon of at least the equivalent of ``hours_per_week`` (16) hours a week for ``weeks``
    (26) weeks at the National Living Wage in force on the start date
    (``16 * 26 * rate``: GBP 5,079.36 for a start in 2025/26 at GBP 12.21, GBP 5,287.36 in
    2026/27 at GBP 12.71; see :data:`NLW_RATES`). The NLW applies from age 21 (23 before April 2024); the rule applies
    it to every age, as WHP does for its threshold.

Parameters are open: ``get_rule("dfe_5_of_6_months", min_months=4)`` gives a variant, and any
object with the :class:`SustainedRule` interface can be passed to ``measure_outcomes``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

import numpy as np

from wmw_link.errors import ConfigError

#: National Living Wage hourly rates (GBP), each in force from 1 April of its year (the rate for
#: the oldest age band: 25+ to March 2021, 23+ to March 2024, 21+ since). Sources: the
#: government's National Minimum Wage and National Living Wage rates pages and the Low Pay
#: Commission's accepted recommendations (2026 rate announced November 2025).
NLW_RATES: Mapping[dt.date, float] = MappingProxyType(
    {
        dt.date(2016, 4, 1): 7.20,
        dt.date(2017, 4, 1): 7.50,
        dt.date(2018, 4, 1): 7.83,
        dt.date(2019, 4, 1): 8.21,
        dt.date(2020, 4, 1): 8.72,
        dt.date(2021, 4, 1): 8.91,
        dt.date(2022, 4, 1): 9.50,
        dt.date(2023, 4, 1): 10.42,
        dt.date(2024, 4, 1): 11.44,
        dt.date(2025, 4, 1): 12.21,
        dt.date(2026, 4, 1): 12.71,
    }
)


def nlw_rate(on: dt.date, rates: Mapping[dt.date, float] = NLW_RATES) -> float:
    """The National Living Wage hourly rate in force on a date.

    Raises:
        ConfigError: the date is before the first rate in the table.
    """
    best = None
    for since in sorted(rates):
        if since <= on:
            best = rates[since]
    if best is None:
        raise ConfigError(
            f"no National Living Wage rate in force on {on.isoformat()} (table starts {min(rates)})"
        )
    return best


class SustainedRule(Protocol):
    """What ``measure_outcomes`` needs of a sustained-employment rule."""

    name: str
    description: str

    def evaluate(
        self, employed: np.ndarray, earnings: np.ndarray, starts: Sequence[dt.date], horizon: int
    ) -> np.ndarray:
        """Boolean per person: sustained employment by ``horizon`` months.

        ``employed`` and ``earnings`` have shape (people, months >= horizon); column ``m - 1``
        is month ``m`` after the start.
        """
        ...

    def params(self) -> dict[str, object]:
        """The rule's parameters, for manifests and the dashboard notes."""
        ...


@dataclass(frozen=True)
class MonthsInWindowRule:
    """Employed in at least ``min_months`` of the ``window_months`` months ending at the horizon."""

    name: str = "dfe_5_of_6_months"
    description: str = "employed in at least 5 of the 6 months (DfE destination measures)"
    window_months: int = 6
    min_months: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.min_months <= self.window_months:
            raise ConfigError(f"rule {self.name}: need 1 <= min_months <= window_months")

    def evaluate(
        self, employed: np.ndarray, earnings: np.ndarray, starts: Sequence[dt.date], horizon: int
    ) -> np.ndarray:
        if horizon < self.window_months:
            raise ConfigError(
                f"rule {self.name}: a {horizon}-month horizon is shorter than the "
                f"{self.window_months}-month window"
            )
        window = employed[:, horizon - self.window_months : horizon]
        return window.sum(axis=1) >= self.min_months

    def params(self) -> dict[str, object]:
        return {"window_months": self.window_months, "min_months": self.min_months}


@dataclass(frozen=True)
class EarningsThresholdRule:
    """Cumulative earnings from the start to the horizon of at least ``hours_per_week`` x
    ``weeks`` x the NLW rate in force on the start date."""

    name: str = "whp_16h_nlw_26_weeks"
    description: str = (
        "earnings of at least 16 hours a week for 26 weeks at the National Living Wage "
        "(Work and Health Programme job outcome)"
    )
    hours_per_week: float = 16.0
    weeks: float = 26.0
    rates: Mapping[dt.date, float] = field(default_factory=lambda: NLW_RATES, compare=False)

    def threshold(self, start: dt.date) -> float:
        """The earnings threshold (GBP) for a support start on ``start``."""
        return self.hours_per_week * self.weeks * nlw_rate(start, self.rates)

    def evaluate(
        self, employed: np.ndarray, earnings: np.ndarray, starts: Sequence[dt.date], horizon: int
    ) -> np.ndarray:
        thresholds = np.array([self.threshold(s) for s in starts], dtype=float)
        total = earnings[:, :horizon].sum(axis=1)
        # A cent of tolerance: pro-rating by days must not fail someone paid exactly the threshold.
        return total >= thresholds - 0.01

    def params(self) -> dict[str, object]:
        return {
            "hours_per_week": self.hours_per_week,
            "weeks": self.weeks,
            "nlw_rates": {d.isoformat(): r for d, r in sorted(self.rates.items())},
        }


PRESETS: Mapping[str, SustainedRule] = MappingProxyType(
    {
        "dfe_5_of_6_months": MonthsInWindowRule(),
        "whp_16h_nlw_26_weeks": EarningsThresholdRule(),
    }
)


def get_rule(name: str, **overrides: object) -> SustainedRule:
    """A preset by name, with any of its parameters changed.

    Raises:
        ConfigError: unknown preset or parameter.
    """
    if name not in PRESETS:
        raise ConfigError(
            f"unknown sustained-employment rule {name!r}; presets: {', '.join(PRESETS)}"
        )
    rule = PRESETS[name]
    if not overrides:
        return rule
    try:
        return replace(rule, **overrides)  # type: ignore[type-var]
    except TypeError as e:
        raise ConfigError(f"rule {name}: {e}") from None
