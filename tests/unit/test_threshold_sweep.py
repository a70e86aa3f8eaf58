"""The one-pass threshold sweep equals clustering and scoring each threshold on its own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from wmw_link.errors import InputDataError
from wmw_link.evaluate import score, score_pairs, threshold_sweep
from wmw_link.linkage.components import components
from wmw_link.resources import close_duckdb, open_duckdb


def _graph(
    seed: int, n: int = 300, m: int = 500, text: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records of persons of 1-4 records in households of 1-3 persons (some unknown), and
    random weighted edges: mostly within a person, some within a household, some anywhere.
    Persons as text (``text``) or integers; households as numbers with NaN for unknown."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(n), rng.integers(1, 5, n))[:n]
    house = (person // 3).astype(float)
    house[rng.random(n) < 0.1] = np.nan
    records = pd.DataFrame(
        {
            "node": np.arange(n),
            "true": [f"p{p}" for p in person] if text else person * 7,
            "household": house,
        }
    )
    a = rng.integers(0, n, m)
    near = np.clip(a + rng.integers(-4, 5, m), 0, n - 1)
    b = np.where(rng.random(m) < 0.8, near, rng.integers(0, n, m))
    # Weights on a coarse grid, so that edges tie with each other and with the thresholds.
    w = rng.integers(-12, 36, m) / 2
    return records, pd.DataFrame({"a": a, "b": b, "weight": w})


def _one_by_one(
    records: pd.DataFrame, edges: pd.DataFrame, t: float, con: object
) -> tuple[object, int]:
    sel = edges[edges["weight"] >= t]
    labels = components(len(records), sel["a"].to_numpy(), sel["b"].to_numpy())
    frame = pd.DataFrame(
        {
            "dataset": "",
            "pred": labels,
            "true": records["true"],
            "household": records["household"],
        }
    )
    total, house = score_pairs(frame, con)
    return total, house["false_pairs_same_household"]


@pytest.mark.parametrize(("seed", "text"), [(1, True), (2, False), (3, True), (4, False)])
def test_sweep_equals_clustering_each_threshold(seed: int, text: bool) -> None:
    records, edges = _graph(seed, text=text)
    if not text:  # integer households too, null where unknown
        records["household"] = records["household"].astype("Int64")
    thresholds = [3.0, -4.0, 16.0, 0.5, 7.0, 7.0, 20.0, -10.0, 10.0]  # unsorted, repeated
    con, spill = open_duckdb("200MB")
    try:
        con.register("recs", records)
        con.register("edges", edges)
        got = threshold_sweep(con, "recs", "edges", thresholds)
        want = [_one_by_one(records, edges, t, con) for t in thresholds]
        no_house = threshold_sweep(con, '(SELECT node, "true" FROM recs)', "edges", [0.0])
        at_zero = _one_by_one(records, edges, 0.0, con)[0]
    finally:
        close_duckdb(con, spill)
    assert [p.threshold for p in got] == thresholds
    assert [(p.pairwise, p.household_false_pairs) for p in got] == want
    # The graph is not trivial: figures move with the threshold.
    assert len({p.pairwise.predicted for p in got}) > 3
    assert len({p.household_false_pairs for p in got}) > 1
    assert got[7].pairwise.true_positive > got[6].pairwise.true_positive
    assert no_house[0].household_false_pairs is None
    assert no_house[0].pairwise == at_zero


def test_sweep_refuses_nodes_that_do_not_number_the_records() -> None:
    records, edges = _graph(4, n=20, m=10)
    con, spill = open_duckdb("200MB")
    try:
        con.register("recs", records.assign(node=records["node"] + 1))
        con.register("edges", edges)
        with pytest.raises(InputDataError, match="node must number the records"):
            threshold_sweep(con, "recs", "edges", [0.0])
        con.register("recs", records)
        con.register("far", edges.assign(b=99))
        with pytest.raises(InputDataError, match="an edge names a node not in"):
            threshold_sweep(con, "recs", "far", [0.0])
    finally:
        close_duckdb(con, spill)


def test_score_of_a_duckdb_table_equals_score_of_the_frame() -> None:
    rng = np.random.default_rng(5)
    n = 400
    person = rng.integers(0, 150, n)
    frame = pd.DataFrame(
        {
            "dataset": rng.choice(["x", "y", "z"], n),
            "pred": [
                f"c{p if r < 0.85 else p + 1}" for p, r in zip(person, rng.random(n), strict=True)
            ],
            "true": person,
            "household": np.where(person % 7 == 0, np.nan, person // 3),
            "sex": np.where(person % 2 == 0, "F", "M"),
            "age_band": np.where(person % 5 == 0, None, "25-34"),
        }
    )
    con, spill = open_duckdb("200MB")
    try:
        con.register("frame_view", pa.Table.from_pandas(frame, preserve_index=False))
        con.execute("CREATE TEMP TABLE frame_table AS SELECT * FROM frame_view")
        in_db = score("frame_view", con).to_dict()
        one_empty = "(SELECT * REPLACE (CASE WHEN rowid = 3 THEN NULL ELSE pred END AS pred) FROM "
        with pytest.raises(InputDataError, match="column pred is empty in 1 row"):
            score(f"{one_empty} frame_table)", con)
    finally:
        close_duckdb(con, spill)
    assert in_db == score(frame).to_dict()
    assert in_db["pairwise"]["false_positive"] > 0


@pytest.mark.parametrize("scale", [1, 2**40])  # one combined key, or lexsort (too wide)
def test_pairs_agreeing_lists_every_pair_that_agrees_once(scale: int) -> None:
    from itertools import combinations

    from wmw_link.evaluate import _pairs_agreeing

    rng = np.random.default_rng(scale % 97)
    ids = rng.permutation(60) + 1000
    k1 = rng.integers(0, 5, 60) * scale
    k2 = rng.integers(-3, 3, 60) * scale
    a, b = _pairs_agreeing(ids, [k1, k2])
    got = sorted(tuple(sorted(p)) for p in zip(a.tolist(), b.tolist(), strict=True))
    want = sorted(
        tuple(sorted((int(ids[i]), int(ids[j]))))
        for i, j in combinations(range(60), 2)
        if k1[i] == k1[j] and k2[i] == k2[j]
    )
    assert got == want and len(want) > 20


def test_sweep_of_no_records_or_no_edges() -> None:
    records, edges = _graph(5, n=30, m=40)
    con, spill = open_duckdb("200MB")
    try:
        con.register("recs", records)
        con.register("edges", edges)
        empty = threshold_sweep(
            con, "(SELECT * FROM recs WHERE false)", "(SELECT * FROM edges WHERE false)", [1.0]
        )
        none_linked = threshold_sweep(con, "recs", "(SELECT * FROM edges WHERE false)", [1.0, 2.0])
    finally:
        close_duckdb(con, spill)
    assert empty[0].pairwise.predicted == 0 and empty[0].pairwise.actual == 0
    assert [p.pairwise.predicted for p in none_linked] == [0, 0]
    assert none_linked[0].pairwise.actual > 0 and none_linked[0].pairwise.recall == 0.0
