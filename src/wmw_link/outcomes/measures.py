"""Cohort outcome measures and the aggregation every measure goes through.

Every measure is aggregated by :func:`aggregate` into the long format that
:func:`wmw_link.disclosure.protect` takes: the total, each characteristic on its own
(:data:`ONE_WAY`), and two-way intersections (:data:`PAIRS`). Every group of a characteristic
appears, zero included, so that an absent row never says "nobody" (zeros are then suppressed).

Cohort measures, for each horizon h in (6, 12) months, over members followed up to h:

* ``sustained_<rule>_<h>m``: sustained employment under each rule (see ``presets``);
* ``employed_at_start_<h>m`` / ``employed_at_<h>m``: in work on the start date / h months on
  (the same people: the difference is the change in employment after support);
* ``off_benefits_<h>m``: of those on an out-of-work benefit at the start, the share not on one
  h months later;
* ``earnings_change_<h>m``: mean change in monthly pay (pay of the spells covering the date h
  months on, minus those covering the day before the start; zero when out of work);
* ``progression_<h>m``: of those in work the day before the start, the share whose monthly pay
  h months on is at least ``progression_min_increase`` (10%) higher.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from wmw_link.outcomes.cohort import HORIZONS, MONTHS
from wmw_link.outcomes.presets import SustainedRule

#: Characteristics every measure is broken down by.
ONE_WAY: tuple[str, ...] = (
    "la",
    "age_band",
    "gender",
    "ethnicity",
    "disability",
    "health_condition",
)
#: Two-way intersections (every pair of these).
PAIR_DIMS: tuple[str, ...] = ("la", "age_band", "gender", "ethnicity", "disability")
PAIRS: tuple[tuple[str, str], ...] = tuple(itertools.combinations(PAIR_DIMS, 2))
#: Extra one-way breakdowns of cohort measures.
COHORT_EXTRA: tuple[str, ...] = ("programme", "start_month", "start_quarter")

DIM_LABELS = {
    "la": "Local authority",
    "age_band": "Age band",
    "gender": "Gender",
    "ethnicity": "Ethnicity",
    "disability": "Disability",
    "health_condition": "Health condition",
    "programme": "Programme",
    "start_month": "Month of start",
    "start_quarter": "Quarter of start",
    "source": "Source",
}

Stat = Callable[[pd.Series], float]


def bottom_half_size(values: pd.Series) -> int:
    """How many values :func:`bottom_half_median` summarises."""
    v = values.dropna()
    return int((v <= v.median()).sum()) if len(v) else 0


def bottom_half_median(values: pd.Series) -> float:
    """Median of the values at or below the median (the median earnings of the bottom half)."""
    v = values.dropna()
    if v.empty:
        return float("nan")
    return float(v[v <= v.median()].median())


def _stat(values: pd.Series, stat: Stat | str) -> float:
    if values.dropna().empty:
        return float("nan")
    if stat == "mean":
        return float(values.mean())
    if stat == "median":
        return float(values.median())
    return float(stat(values))  # type: ignore[operator]


def aggregate(
    frame: pd.DataFrame,
    *,
    table: str,
    measure: str,
    kind: str,
    population: str,
    domains: Mapping[str, Sequence[str]],
    dims: Sequence[str] = ONE_WAY,
    pairs: Sequence[tuple[str, str]] = PAIRS,
    flag: str | None = None,
    value: str | None = None,
    stat: Stat | str = "mean",
    show_n: bool = True,
    n_of: Callable[[pd.DataFrame], int] | None = None,
) -> pd.DataFrame:
    """Aggregate person rows into the long SDC format (total, one-way, two-way cells).

    Args:
        frame: one row per person (or record) in the population, with the ``dims`` columns.
        table, measure, kind, population: labels (see :mod:`wmw_link.disclosure`).
        domains: every value each dimension can take (zero cells are filled in).
        flag: boolean column counted as the numerator (``kind="rate"``).
        value: numeric column summarised by ``stat`` (``kind="mean"``/``"median"``).
        show_n: whether the written table shows the group size (False when it equals a
            numerator published elsewhere, e.g. employed people).
        n_of: the number of people a value is computed from, when not the group size (the
            bottom half of earners for their median); disclosure control tests it.
    """
    pairs = [p for p in pairs if p[0] in dims and p[1] in dims]
    rows: list[dict[str, object]] = []

    def cell(part: pd.DataFrame, bd: str, d1: str, g1: str, d2: str, g2: str) -> None:
        n = len(part) if n_of is None or part.empty else int(n_of(part))
        count = float(part[flag].sum()) if flag else np.nan
        val = _stat(part[value], stat) if (value and n) else np.nan
        rows.append(
            dict(table=table, measure=measure, kind=kind, population=population, breakdown=bd,
                 dim1=d1, group1=g1, dim2=d2, group2=g2, n=n, count=count, value=val, show_n=show_n)
        )  # fmt: skip

    cell(frame, "all", "", "", "", "")
    for d in dims:
        groups = dict(tuple(frame.groupby(d, sort=False))) if len(frame) else {}
        for g in domains[d]:
            cell(groups.get(g, frame.iloc[0:0]), d, d, str(g), "", "")
    for a, b in pairs:
        groups = dict(tuple(frame.groupby([a, b], sort=False))) if len(frame) else {}
        for ga, gb in itertools.product(domains[a], domains[b]):
            cell(groups.get((ga, gb), frame.iloc[0:0]), f"{a} x {b}", a, str(ga), b, str(gb))
    return pd.DataFrame(rows)


def domains_of(frame: pd.DataFrame, dims: Sequence[str]) -> dict[str, list[str]]:
    """Sorted distinct values of each dimension (the groups every table lists)."""
    return {d: sorted(str(v) for v in frame[d].dropna().unique()) for d in dims}


def cohort_measures(
    cohort: pd.DataFrame,
    rules: Sequence[SustainedRule],
    *,
    progression_min_increase: float = 0.10,
    horizons: Sequence[int] = HORIZONS,
) -> pd.DataFrame:
    """All cohort measures in long format (before disclosure control)."""
    dims = (*ONE_WAY, *COHORT_EXTRA)
    cohort = cohort.copy()
    for d in dims:
        cohort[d] = cohort[d].fillna("Unknown").astype(str)
    domains = domains_of(cohort, dims)
    parts: list[pd.DataFrame] = []

    def add(frame: pd.DataFrame, **kw: object) -> None:
        parts.append(aggregate(frame, domains=domains, dims=dims, **kw))  # type: ignore[arg-type]

    emp = (
        cohort[[f"emp_{m}" for m in range(1, MONTHS + 1)]].to_numpy(dtype=bool)
        if len(cohort)
        else np.zeros((0, MONTHS), bool)
    )
    earn = (
        cohort[[f"earn_{m}" for m in range(1, MONTHS + 1)]].to_numpy(dtype=float)
        if len(cohort)
        else np.zeros((0, MONTHS))
    )
    for h in horizons:
        followed = cohort[f"followed_{h}"].fillna(False).to_numpy(dtype=bool)
        pop = cohort.loc[followed].copy()
        key = f"cohort_{h}m"
        for rule in rules:
            pop[f"_s_{rule.name}"] = rule.evaluate(
                emp[followed], earn[followed], list(pop["start"]), h
            )
            add(pop, table="sustained_employment", measure=f"sustained_{rule.name}_{h}m", kind="rate",
                population=key, flag=f"_s_{rule.name}")  # fmt: skip
        add(pop, table="sustained_employment", measure=f"employed_at_start_{h}m", kind="rate",
            population=key, flag="employed_at_0")  # fmt: skip
        add(pop, table="sustained_employment", measure=f"employed_at_{h}m", kind="rate",
            population=key, flag=f"employed_at_{h}")  # fmt: skip
        oow = pop.loc[pop["oow_at_0"].astype(bool)].copy()
        oow["_off"] = ~oow[f"oow_at_{h}"].astype(bool)
        add(oow, table="off_benefits", measure=f"off_benefits_{h}m", kind="rate",
            population=f"cohort_on_benefit_{h}m", flag="_off")  # fmt: skip
        pop["_change"] = pop[f"pay_at_{h}"].astype(float) - pop["pay_before"].astype(float)
        add(pop, table="earnings_change", measure=f"earnings_change_{h}m", kind="mean",
            population=key, value="_change", stat="mean")  # fmt: skip
        inwork = pop.loc[pop["pay_before"] > 0].copy()
        inwork["_prog"] = (
            inwork[f"pay_at_{h}"] >= (1 + progression_min_increase) * inwork["pay_before"]
        )
        add(inwork, table="progression", measure=f"progression_{h}m", kind="rate",
            population=f"cohort_in_work_{h}m", flag="_prog")  # fmt: skip
    return pd.concat(parts, ignore_index=True)
