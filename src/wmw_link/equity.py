"""Linkage quality by group: who the errors fall on.

Linkage error is rarely spread evenly: names that are transliterated, shared in a community or
written in another order are linked less well, and the measures built on linked journeys then
carry the bias (Bohensky et al. 2010; Harron et al. 2017). This module breaks pairwise precision,
recall and F1 down by a person-level attribute (ethnic group, sex, age band) and flags the groups
that fall clearly below the overall figures.

A group's *recall* counts the true pairs of its people (a true pair is always inside one person,
so inside one group). Its *precision* counts every predicted pair that touches one of its
records: a false merge of a Pakistani-origin record with a White British one counts against
both groups, because both people's journeys are now wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

#: A group is flagged when its precision or recall is more than this below the overall figure.
GAP = 0.02
#: Groups with fewer true pairs than this are reported but never flagged: too few to tell.
MIN_TRUE_PAIRS = 100

#: Age bands of the plan's measures (youth 16-24 is a priority group).
AGE_BANDS = [(16, 24), (25, 34), (35, 49), (50, 64), (65, 200)]


def age_band(age: pd.Series) -> pd.Series:
    """``16-24`` ... ``65+`` from ages in whole years; null outside the bands."""
    out = pd.Series(pd.NA, index=age.index, dtype="object")
    for lo, hi in AGE_BANDS:
        label = f"{lo}+" if hi >= 200 else f"{lo}-{hi}"
        out[(age >= lo) & (age <= hi)] = label
    return out


@dataclass(frozen=True)
class GroupFigures:
    """Pair counts of one group; precision counts predicted pairs touching the group."""

    group: str
    records: int
    true_positive: int
    predicted_touching: int
    true_pairs: int

    @property
    def precision(self) -> float:
        t = self.predicted_touching
        return self.true_positive / t if t else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if (p + r) else 0.0

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "group": self.group,
            "records": self.records,
            "true_pairs": self.true_pairs,
            "predicted_pairs_touching": self.predicted_touching,
            "true_positive": self.true_positive,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def by_group(frame: pd.DataFrame, column: str, con: Any = None) -> list[GroupFigures]:
    """Figures for each value of ``column`` (records whose value is null are left out).

    Args:
        frame: one row per record with ``pred``, ``true`` and ``column`` (a person-level
            attribute, so every record of a true person has the same value).
        con: a DuckDB connection to count in (default: a new one, see
            :func:`wmw_link.resources.open_duckdb`).
    """
    from wmw_link.pair_sql import Cells
    from wmw_link.resources import close_duckdb, open_duckdb

    own = None
    if con is None:
        con, own = open_duckdb()
    if "dataset" not in frame.columns:  # the source does not matter here
        frame = frame.assign(dataset="")
    try:
        cells = Cells(con, frame, [column])
        try:
            return group_figures(cells, column)
        finally:
            cells.drop()
    finally:
        if own is not None:
            close_duckdb(con, own)


def group_figures(cells: Any, column: str) -> list[GroupFigures]:
    """:func:`by_group` on a :class:`wmw_link.pair_sql.Cells` table that holds ``column``."""
    from wmw_link.pair_sql import pairs, quote

    g = quote(column)
    # Pairs touching the group in a cluster of n holding k of its records: all pairs minus
    # those among the n - k others. A row alone in its cluster (prow 1: one person, one
    # value) is its own (p, g) and (p, t, g) group, with k = n = size; alone in its person
    # (trow 1), its own (t, g) group. Only the other rows are grouped.
    sql = f"""
    WITH f AS (SELECT p, t, {g} AS g, n, size, prow, trow FROM {cells.persons()}
               WHERE {g} IS NOT NULL),
    touch AS (
        SELECT g, sum({pairs("size")} - {pairs("size - k")}) AS touching
        FROM (SELECT p, g, any_value(size) AS size, sum(n) AS k FROM f WHERE prow > 1
              GROUP BY ALL)
        GROUP BY g),
    tp AS (SELECT g, sum({pairs("m")}) AS tp
           FROM (SELECT p, t, g, sum(n) AS m FROM f WHERE prow > 1 GROUP BY ALL) GROUP BY g),
    tr AS (SELECT g, sum({pairs("m")}) AS true_pairs
           FROM (SELECT t, g, sum(n) AS m FROM f WHERE trow > 1 GROUP BY ALL) GROUP BY g),
    rec AS (SELECT g, sum(n) AS records,
                sum({pairs("n")}) FILTER (prow = 1) AS alone_p,
                sum({pairs("n")}) FILTER (trow = 1) AS alone_t
            FROM f GROUP BY g)
    SELECT rec.g, records, coalesce(tp, 0) + coalesce(alone_p, 0),
        coalesce(touching, 0) + coalesce(alone_p, 0),
        coalesce(true_pairs, 0) + coalesce(alone_t, 0)
    FROM rec LEFT JOIN tp USING (g) LEFT JOIN touch USING (g) LEFT JOIN tr USING (g)
    """
    values = cells.values[column]
    out = [
        GroupFigures(
            group=str(code if values is None else values[code]),
            records=int(records),
            true_positive=int(tp),
            predicted_touching=int(touching),
            true_pairs=int(true_pairs),
        )
        for code, records, tp, touching, true_pairs in cells.rows(sql)
    ]
    return sorted(out, key=lambda f: f.group)


def flags(
    groups: list[GroupFigures], precision: float, recall: float, gap: float = GAP
) -> list[str]:
    """Plain-language flags for groups more than ``gap`` below the overall figures."""
    out = []
    for g in groups:
        if g.true_pairs < MIN_TRUE_PAIRS:
            continue
        for what, mine, overall in (
            ("precision", g.precision, precision),
            ("recall", g.recall, recall),
        ):
            if mine < overall - gap:
                out.append(
                    f"{g.group}: {what} {mine:.4f} is {100 * (overall - mine):.1f} points "
                    f"below the overall {overall:.4f}"
                )
    return out


__all__ = [
    "AGE_BANDS",
    "GAP",
    "MIN_TRUE_PAIRS",
    "GroupFigures",
    "age_band",
    "by_group",
    "flags",
    "group_figures",
]
