"""Bloom-filter agreement in database SQL, and the label-free threshold choice."""

from __future__ import annotations

import random

import duckdb
import pytest
import sqlglot

from wmw_link.linkage.threshold import (
    choose_threshold,
    probability_to_weight,
    sweep,
    weight_to_probability,
)
from wmw_link.token_schema import shared_bits_sql

WORDS = ["bf0", "bf1", "bf2"]


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


@pytest.mark.parametrize("seed", range(5))
def test_shared_bits_sql_matches_python(seed: int) -> None:
    """The Bloom-filter agreement linkage reads runs in the database (DuckDB and Spark)."""
    rng = random.Random(seed)
    a = [rng.getrandbits(64) for _ in WORDS]
    b = [x ^ (rng.getrandbits(64) & rng.getrandbits(64)) for x in a]
    cols = ", ".join(
        f"CAST({_signed(x)} AS BIGINT) AS {w}_l, CAST({_signed(y)} AS BIGINT) AS {w}_r"
        for w, x, y in zip(WORDS, a, b, strict=True)
    )
    got = duckdb.sql(f"SELECT {shared_bits_sql(WORDS)} FROM (SELECT {cols})").fetchall()[0][0]
    assert got == sum(bin(x & y).count("1") for x, y in zip(a, b, strict=True))
    spark_sql = sqlglot.transpile(shared_bits_sql(WORDS), read="duckdb", write="spark")[0]
    assert "BIT_COUNT" in spark_sql.upper() and '"' not in spark_sql


def test_weight_probability_round_trip() -> None:
    assert weight_to_probability(0.0) == pytest.approx(0.5)
    assert probability_to_weight(weight_to_probability(7.3)) == pytest.approx(7.3)


def test_sweep_expected_counts_by_hand() -> None:
    # bins of width 1: two pairs at weight 10 (p ~ 1), one at 0 (p .5), three at -10 (p ~ 0)
    rows = [(10, 2, 2.0), (0, 1, 0.5), (-10, 3, 0.0)]
    pts = {p.threshold_match_weight: p for p in sweep(rows, bin_width=1.0)}
    top = pts[10.0]
    assert (top.expected_tp, top.expected_fp, top.expected_fn) == (2.0, 0.0, 0.5)
    mid = pts[0.0]
    assert (mid.expected_tp, mid.expected_fp, mid.expected_fn) == (2.5, 0.5, 0.0)
    assert top.expected_f1 == pytest.approx(4 / 4.5)
    assert mid.expected_f1 == pytest.approx(5 / 5.5)
    assert choose_threshold(list(pts.values())).threshold_match_weight == 0.0


def test_threshold_below_every_pair_is_a_probability_of_one_half() -> None:
    # Every pair confident (the maximum at the lowest pair): where to cut is not in the data.
    rows = [(19, 11, 11.0), (12, 1, 1.0)]
    best = choose_threshold(sweep(rows, bin_width=1.0))
    assert (best.threshold_match_weight, best.threshold_probability) == (0.0, 0.5)
    assert best.pairs_above == 12
    # A lowest pair below weight 0 stays the threshold; an interior maximum is unchanged.
    assert choose_threshold(sweep([(5, 3, 3.0), (-3, 1, 0.9)], 1.0)).threshold_match_weight == -3
    assert choose_threshold(sweep([(5, 3, 3.0), (2, 1, 0.01)], 1.0)).threshold_match_weight == 5


def test_choose_threshold_needs_pairs() -> None:
    with pytest.raises(ValueError):
        choose_threshold([])
