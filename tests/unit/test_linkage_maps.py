"""Maps from clusters: every input row once, in file order, with random person ids."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from wmw_link.errors import VerificationError
from wmw_link.linkage.maps import build_maps, new_person_ids


def _clusters(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["source_dataset", "unique_id", "cluster_id"])


def test_maps_follow_file_order_and_clusters() -> None:
    clusters = _clusters(
        [("a", "r2", "c1"), ("a", "r1", "c1"), ("b", "s1", "c1"), ("b", "s2", "c2")]
    )
    maps = build_maps(clusters, {"a": pa.array(["r1", "r2"]), "b": pa.array(["s2", "s1"])})
    a, b = maps["a"].to_pydict(), maps["b"].to_pydict()
    assert a["row_ref"] == ["r1", "r2"] and b["row_ref"] == ["s2", "s1"]
    assert a["person_id"][0] == a["person_id"][1] == b["person_id"][1]
    assert b["person_id"][0] != b["person_id"][1]
    assert all(p.startswith("p") and len(p) == 21 for p in a["person_id"] + b["person_id"])


def test_a_row_the_clustering_missed_becomes_its_own_person() -> None:
    clusters = _clusters([("a", "r1", "c1"), ("a", "r2", "c1")])
    maps = build_maps(clusters, {"a": pa.array(["r1", "r2", "r3"]), "b": pa.array(["s1"])})
    a = maps["a"].to_pydict()["person_id"]
    lone = {a[2], maps["b"].to_pydict()["person_id"][0]}
    assert a[0] == a[1] and len(lone) == 2 and a[0] not in lone


def test_invented_or_repeated_rows_are_refused() -> None:
    with pytest.raises(VerificationError, match="1 row\\(s\\) not in its input"):
        build_maps(_clusters([("a", "r1", "c"), ("a", "zz", "c")]), {"a": pa.array(["r1"])})
    with pytest.raises(VerificationError, match="in the clusters twice"):
        build_maps(_clusters([("a", "r1", "c"), ("a", "r1", "d")]), {"a": pa.array(["r1"])})
    with pytest.raises(VerificationError, match="dataset\\(s\\) b that were not linked"):
        build_maps(_clusters([("a", "r1", "c"), ("b", "s", "c")]), {"a": pa.array(["r1"])})


def test_person_ids_are_random_not_derived_from_the_cluster() -> None:
    clusters = _clusters([("a", "r1", "a-r1"), ("a", "r2", "a-r2")])
    expected = {"a": pa.array(["r1", "r2"])}
    first = build_maps(clusters, expected)["a"].column("person_id").to_pylist()
    second = build_maps(clusters, expected)["a"].column("person_id").to_pylist()
    assert not set(first) & set(second)
    ids = new_person_ids(10_000)
    assert len(set(ids)) == 10_000


def test_row_numbers_are_read_as_positions_in_the_tokens_file() -> None:
    clusters = pd.DataFrame(
        {"source_dataset": ["a", "a", "a"], "unique_id": [2, 0, 1], "cluster_id": ["x", "y", "x"]}
    )
    maps = build_maps(clusters, {"a": pa.array(["r0", "r1", "r2", "r3"])})
    refs, ids = maps["a"].column("row_ref").to_pylist(), maps["a"].column("person_id").to_pylist()
    assert refs == ["r0", "r1", "r2", "r3"]
    assert ids[1] == ids[2] and len({ids[0], ids[1], ids[3]}) == 3  # r3 was not returned
    bad = clusters.assign(unique_id=[2, 0, 7])
    with pytest.raises(VerificationError, match="1 row\\(s\\) not in its input"):
        build_maps(bad, {"a": pa.array(["r0", "r1", "r2"])})
    twice = clusters.assign(unique_id=[1, 0, 1])
    with pytest.raises(VerificationError, match="twice"):
        build_maps(twice, {"a": pa.array(["r0", "r1", "r2"])})
