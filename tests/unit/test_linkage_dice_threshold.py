"""Bloom-filter Dice in DuckDB SQL, and the label-free threshold choice."""

from __future__ import annotations

import random

import duckdb
import pytest
import sqlglot

from wmw_link.linkage.dice import dice_at_least_sql, dice_null_sql, dice_sql
from wmw_link.linkage.threshold import (
    choose_threshold,
    probability_to_weight,
    sweep,
    weight_to_probability,
)

WORDS = ["bf0", "bf1", "bf2"]


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def _python_dice(a: list[int], b: list[int]) -> float:
    inter = sum(bin((x & y) & ((1 << 64) - 1)).count("1") for x, y in zip(a, b, strict=True))
    pa = sum(bin(x & ((1 << 64) - 1)).count("1") for x in a)
    pb = sum(bin(x & ((1 << 64) - 1)).count("1") for x in b)
    return 2 * inter / (pa + pb)


def _row(words: list[int], side: str) -> str:
    pop = sum(bin(w & ((1 << 64) - 1)).count("1") for w in words)
    cols = [f"CAST({w} AS BIGINT) AS bf{i}_{side}" for i, w in enumerate(words)]
    return ", ".join([*cols, f"{pop} AS pop_{side}"])


@pytest.mark.parametrize("seed", range(5))
def test_dice_sql_matches_python(seed: int) -> None:
    rng = random.Random(seed)
    ua = [rng.getrandbits(64) for _ in WORDS]
    a = [_signed(x) for x in ua]
    b = [_signed(x ^ (rng.getrandbits(64) & rng.getrandbits(64))) for x in ua]
    sql = f"SELECT {dice_sql(WORDS, 'pop')} FROM (SELECT {_row(a, 'l')}, {_row(b, 'r')})"
    got = duckdb.sql(sql).fetchall()[0][0]
    assert got == pytest.approx(_python_dice(a, b))


def test_dice_of_identical_filters_is_one_and_sum_does_not_overflow() -> None:
    full = [-1] * 3  # every bit set: 192 bits, more than a TINYINT holds
    sql = f"SELECT {dice_sql(WORDS, 'pop')} FROM (SELECT {_row(full, 'l')}, {_row(full, 'r')})"
    assert duckdb.sql(sql).fetchall()[0][0] == pytest.approx(1.0)


def test_dice_threshold_and_null_conditions() -> None:
    a, b = [1, 0, 0], [3, 0, 0]  # Dice = 2*1/(1+2) = 0.667
    base = f"FROM (SELECT {_row(a, 'l')}, {_row(b, 'r')})"
    assert duckdb.sql(f"SELECT {dice_at_least_sql(WORDS, 'pop', 0.6)} {base}").fetchall()[0][0]
    assert not duckdb.sql(f"SELECT {dice_at_least_sql(WORDS, 'pop', 0.7)} {base}").fetchall()[0][0]
    null_row = "FROM (SELECT NULL::INT AS pop_l, 4 AS pop_r)"
    assert duckdb.sql(f"SELECT {dice_null_sql(WORDS, 'pop')} {null_row}").fetchall()[0][0]
    with pytest.raises(ValueError):
        dice_at_least_sql(WORDS, "pop", 0.0)


def test_dice_sql_translates_to_spark() -> None:
    spark_sql = sqlglot.transpile(dice_sql(WORDS, "pop"), read="duckdb", write="spark")[0]
    assert "BIT_COUNT(bf0_l & bf0_r)" in spark_sql


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


def test_choose_threshold_needs_pairs() -> None:
    with pytest.raises(ValueError):
        choose_threshold([])
