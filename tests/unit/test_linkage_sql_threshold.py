"""Bloom-filter agreement in database SQL, and the label-free threshold choice."""

from __future__ import annotations

import random

import duckdb
import pytest
import sqlglot

from wmw_link.linkage.threshold import (
    choose_threshold,
    cluster_sweep,
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


def _edges(rows: list[tuple[int, int, float]]) -> tuple[list[int], list[int], list[float], list[float]]:
    rows = sorted(rows, key=lambda r: -r[2])
    return (
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [weight_to_probability(r[2]) for r in rows],
    )


def test_cluster_sweep_counts_record_pairs_joined_by_hand() -> None:
    # Three people of two records (weight 10); at weight 2 one pair already connected and one
    # joining two components of two records; at weight -1 one joining four and two records.
    strong = weight_to_probability(10.0)
    mid, low = weight_to_probability(2.0), weight_to_probability(-1.0)
    pts = {
        p.threshold_match_weight: p
        for p in cluster_sweep(
            *_edges([(0, 1, 10.0), (2, 3, 10.0), (4, 5, 10.0), (0, 1, 2.0), (1, 2, 2.0),
                     (3, 4, -1.0)]),  # fmt: skip
            n_nodes=6,
            bin_width=1.0,
        )
    }
    assert list(pts) == [-1.0, 2.0, 10.0]
    p_join = (mid - 0.5) / 0.5  # half the bin's pairs already connected: taken as true
    assert pts[10.0].expected_tp == pytest.approx(3 * strong)
    assert pts[2.0].expected_tp == pytest.approx(3 * strong + 4 * p_join)
    assert pts[2.0].expected_fp == pytest.approx(3 * (1 - strong) + 4 * (1 - p_join))
    assert pts[-1.0].expected_tp == pytest.approx(3 * strong + 4 * p_join + 8 * low)
    assert pts[10.0].expected_fn == pytest.approx(4 * p_join + 8 * low)
    assert pts[-1.0].expected_fn == 0.0
    assert [pts[w].pairs_above for w in (10.0, 2.0, -1.0)] == [3, 5, 6]


def test_cluster_sweep_leaves_out_weak_pairs_that_mostly_repeat_links() -> None:
    """Weak pairs of probability 0.6, half of them between records already linked: the pair
    sweep takes them (0.6 > F1 / 2); joining pairs are then matches with probability 0.2, and
    each joins four record pairs, so the clustered sweep stops above them."""
    w6 = probability_to_weight(0.6)
    rows = [(0, 1, 10.0), (2, 3, 10.0), (4, 5, 10.0), (0, 1, w6), (1, 2, w6)]
    clustered = choose_threshold(cluster_sweep(*_edges(rows), n_nodes=6, bin_width=0.25))
    assert clustered.threshold_match_weight == 10.0
    hist: dict[int, list[float]] = {}
    for _, _, w in rows:
        b = hist.setdefault(int(w // 0.25), [0, 0.0])
        b[0] += 1
        b[1] += weight_to_probability(w)
    pairwise = choose_threshold(sweep([(b, n, s) for b, (n, s) in hist.items()], 0.25))
    assert pairwise.threshold_match_weight < 1.0


def test_cluster_sweep_needs_descending_weights() -> None:
    with pytest.raises(ValueError, match="descending"):
        cluster_sweep([0, 1], [1, 2], [1.0, 2.0], [0.6, 0.8], 3)
