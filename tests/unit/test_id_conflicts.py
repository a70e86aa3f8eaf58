"""Clustering keeps records with different NINos (or NHS numbers) apart unless a linked pair
carries both (linkage/components.py: split_conflicts, cluster_in_memory, split_fetched)."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmw_link.linkage.components import (
    cluster_in_memory,
    components,
    split_conflicts,
    split_fetched,
)

NONE = -1


def _split(n: int, edges: list[tuple[int, int, float]], *ids: list[int]) -> tuple[list[int], int]:
    a = np.array([e[0] for e in edges], dtype=np.int64)
    b = np.array([e[1] for e in edges], dtype=np.int64)
    w = np.array([e[2] for e in edges], dtype=float)
    columns = [(np.array(i, dtype=np.int64), np.array(i) == NONE) for i in ids]
    labels, refused = split_conflicts(components(n, a, b), a, b, w, columns)
    return labels.tolist(), refused


def _groups(labels: list[int]) -> set[frozenset[int]]:
    out: dict[int, set[int]] = {}
    for node, lab in enumerate(labels):
        out.setdefault(lab, set()).add(node)
    return {frozenset(g) for g in out.values()}


def test_twins_chained_through_a_record_without_a_nino_are_kept_apart() -> None:
    # 0: twin A (NINo 1), 1: a record without a NINo like both, 2: twin B (NINo 2).
    labels, refused = _split(3, [(0, 1, 9.0), (1, 2, 8.0)], [1, NONE, 2])
    assert _groups(labels) == {frozenset({0, 1}), frozenset({2})}
    assert refused == 1


def test_a_pair_that_carries_both_ninos_still_links() -> None:
    # The model linked 0 and 2 with their NINos differing (a typo in one): one person.
    labels, refused = _split(3, [(0, 1, 9.0), (1, 2, 8.0), (0, 2, 4.0)], [1, NONE, 2])
    assert _groups(labels) == {frozenset({0, 1, 2})}
    assert refused == 1  # 1-2 was refused; the direct pair joined them


def test_nhs_numbers_keep_apart_too_and_other_components_keep_their_labels() -> None:
    ninos = [NONE, NONE, NONE, 5, 5, NONE]
    nhs = [7, NONE, 8, NONE, NONE, NONE]
    labels, _ = _split(6, [(0, 1, 3.0), (1, 2, 2.0), (3, 4, 5.0), (4, 5, 1.0)], ninos, nhs)
    assert _groups(labels) == {frozenset({0, 1}), frozenset({2}), frozenset({3, 4, 5})}
    before = components(6, np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]))
    assert labels[3] == before[3]  # no conflict there: not relabelled


def test_no_ids_or_no_conflict_leaves_the_components() -> None:
    edges = [(0, 1, 1.0), (1, 2, 1.0)]
    assert _groups(_split(3, edges, [NONE, NONE, NONE])[0]) == {frozenset({0, 1, 2})}
    assert _groups(_split(3, edges, [4, NONE, 4])[0]) == {frozenset({0, 1, 2})}
    assert _split(3, edges)[0] == components(3, np.array([0, 1]), np.array([1, 2])).tolist()


def test_ties_do_not_hang_on_the_order_of_the_edges() -> None:
    # Equal weights: which twin keeps the record without a NINo follows the records' keys.
    ids = [(np.array([1, 0, 2], dtype=np.int64), np.array([False, True, False]))]
    keys = [np.array(["b", "a", "c"], dtype=object)]
    got = set()
    for edges in ([(0, 1), (1, 2)], [(1, 2), (0, 1)], [(2, 1), (1, 0)]):
        a = np.array([e[0] for e in edges])
        b = np.array([e[1] for e in edges])
        labels, _ = split_conflicts(
            components(3, a, b), a, b, np.ones(2), ids, lambda n: [k[n] for k in keys]
        )
        got.add(frozenset(_groups(labels.tolist())))
    assert got == {frozenset({frozenset({0, 1}), frozenset({2})})}


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(2, 12),
    data=st.data(),
)
def test_a_cluster_holds_two_ids_only_through_a_pair_that_carries_both(n: int, data: Any) -> None:
    """Property: the result refines the components, and any cluster with two values of an id
    holds a linked pair whose records carry two different values of it."""
    edges = data.draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.floats(-5, 20)).filter(
                lambda e: e[0] != e[1]
            ),
            max_size=3 * n,
        )
    )
    ids = data.draw(st.lists(st.sampled_from([NONE, NONE, 1, 2, 3]), min_size=n, max_size=n))
    labels, _ = _split(n, edges, ids)
    a = np.array([e[0] for e in edges], dtype=np.int64)
    b = np.array([e[1] for e in edges], dtype=np.int64)
    before = components(n, a, b)
    for group in _groups(labels):
        assert len({before[x] for x in group}) == 1
        values = {ids[x] for x in group} - {NONE}
        if len(values) > 1:
            assert any(
                x in group and y in group and NONE not in (ids[x], ids[y]) and ids[x] != ids[y]
                for x, y, _ in edges
            )


class _Sdf:
    def __init__(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        self.con, self.physical_name = con, name

    def drop_table_from_database_and_remove_from_cache(self) -> None:
        self.con.execute(f"DROP TABLE {self.physical_name}")


class _Linker:
    """What the clustering functions use of a Splink linker: ``misc.query_sql``."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.misc, self._n = con, self, 3

    def query_sql(self, sql: str, output_type: str = "pandas") -> Any:
        if output_type == "pandas":
            # Rows in no particular order, as DuckDB gives them without insertion order.
            return self.con.execute(sql).df().sample(frac=1.0, random_state=self._n)
        self._n += 1
        name = f"t{self._n}"
        self.con.execute(f"CREATE TABLE {name} AS {sql}")
        return _Sdf(self.con, name)


def _persons(frame: pd.DataFrame) -> set[frozenset[tuple[str, str]]]:
    return {
        frozenset(zip(g["source_dataset"].astype(str), g["unique_id"], strict=True))
        for _, g in frame.groupby("cluster_id", observed=True)
    }


def test_in_memory_and_backend_clustering_split_alike() -> None:
    """The in-memory path (DuckDB) and the fetched path (Splink's clusters, as on Spark) keep
    the same records apart, from the same SQL over token columns with nulls."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE rec AS SELECT * FROM (VALUES ('hmrc', 'a', 101::BIGINT, NULL::BIGINT), "
        "('dwp', 'b', NULL, NULL), ('hmrc', 'c', -9223372036854775807, NULL), "
        "('nhs', 'd', NULL, 55), ('nhs', 'e', NULL, 56), ('dwp', 'f', NULL, NULL), "
        "('dwp', 'g', 7, NULL)) t(source_dataset, unique_id, nino, nhs)"
    )
    con.execute(
        "CREATE TABLE edges AS SELECT * FROM (VALUES ('hmrc', 'a', 'dwp', 'b', 9.0), "
        "('dwp', 'b', 'hmrc', 'c', 8.0), ('nhs', 'd', 'dwp', 'f', 3.0), "
        "('dwp', 'f', 'nhs', 'e', 2.5)) "
        "t(source_dataset_l, unique_id_l, source_dataset_r, unique_id_r, match_weight)"
    )
    linker = _Linker(con)
    ids = ["nino", "nhs"]
    records = "SELECT source_dataset, unique_id, nino, nhs FROM rec"
    ours, refused = cluster_in_memory(linker, records, "edges", ids)
    want = {
        frozenset({("hmrc", "a"), ("dwp", "b")}),
        frozenset({("hmrc", "c")}),
        frozenset({("nhs", "d"), ("dwp", "f")}),
        frozenset({("nhs", "e")}),
        frozenset({("dwp", "g")}),
    }
    assert _persons(ours) == want and refused == 2
    # Splink's clusters (plain connected components), then the fetched split.
    plain, _ = cluster_in_memory(linker, records, "edges")
    con.register("plain_df", plain.assign(source_dataset=plain["source_dataset"].astype(str)))
    con.execute("CREATE TABLE clusters AS SELECT * FROM plain_df")
    assert len(_persons(plain)) == 3
    fetched, refused = split_fetched(linker, plain, records, "clusters", "edges", ids)
    assert _persons(fetched) == want and refused == 2


def test_the_person_index_keeps_different_ninos_apart_as_a_link_does() -> None:
    """The index's persons (its stored and new edges) are split as a link's clusters are,
    with ids read from the loaded records (linkage/index/run.py)."""
    from types import SimpleNamespace

    from wmw_link.linkage.index.run import _person_labels

    con = duckdb.connect()
    # Positions 0-2: twin A, a record without ids, twin B; 3-4: one person, NHS number only.
    con.execute(
        "CREATE TABLE wmw_tokens_hmrc AS SELECT * FROM (VALUES (0, 11::BIGINT, NULL::BIGINT), "
        "(2, 12, NULL), (3, NULL, 40)) t(unique_id, nino, nhs)"
    )
    con.execute(
        "CREATE TABLE wmw_tokens_dwp AS SELECT * FROM (VALUES (1, NULL::BIGINT, NULL::BIGINT), "
        "(4, NULL, 40)) t(unique_id, nino, nhs)"
    )
    cur = SimpleNamespace(n=5, tables={"hmrc": None, "dwp": None})
    left, right = np.array([0, 1, 3]), np.array([1, 2, 4])
    labels = _person_labels(
        SimpleNamespace(con=con), cur, {"nino": "hmac", "nhs": "hmac"}, left, right,
        np.array([6.0, 5.0, 9.0]),
    )  # fmt: skip
    assert labels[0] == labels[1] != labels[2] and labels[3] == labels[4]
    assert sorted(set(labels.tolist())) == [0, 1, 2]  # numbered 0 .. k - 1 for assign()
    # Without the ids the three records are one component.
    plain = _person_labels(SimpleNamespace(con=con), cur, {}, left, right, np.ones(3))
    assert plain[0] == plain[1] == plain[2]


def test_a_link_clusters_with_the_ids_of_its_inputs(monkeypatch: Any, tmp_path: Any) -> None:
    """fit_and_cluster hands the NINo and NHS columns to either clustering, and none with
    ``split_id_conflicts=False`` (the plaintext baseline)."""
    from pathlib import Path

    from linkage_fixtures import write_fixture

    from wmw_link.agreement import load_agreement
    from wmw_link.linkage import components as comp
    from wmw_link.linkage import run
    from wmw_link.linkage.backends import open_backend
    from wmw_link.linkage.settings import plan_model
    from wmw_link.linkage.verify import verify_inputs

    agreement = load_agreement(Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml")
    write_fixture(agreement, tmp_path / "tokens", n_households=25)
    verified = verify_inputs(agreement, tmp_path / "tokens")
    kinds = run._token_kinds(verified)
    seen: list[tuple[str, list[str]]] = []
    in_memory, fetched = comp.cluster_in_memory, comp.split_fetched

    def spy_memory(linker: Any, records: str, edges: str, ids: Any = (), keys: Any = ()) -> Any:
        seen.append(("memory", list(ids), list(keys)))
        return in_memory(linker, records, edges, ids, keys)

    def spy_fetched(linker: Any, frame: Any, records: str, clusters: str, edges: str,
                    ids: Any, keys: Any = ()) -> Any:  # fmt: skip
        seen.append(("fetched", list(ids), list(keys)))
        return fetched(linker, frame, records, clusters, edges, ids, keys)

    monkeypatch.setattr(run, "cluster_in_memory", spy_memory)
    monkeypatch.setattr(run, "split_fetched", spy_fetched)
    for splink_clustering, split in ((False, True), (True, True), (False, False)):
        be = open_backend("duckdb", tmp_path / f"scratch{splink_clustering}{split}")
        try:
            inputs = [
                be.load_tokens(v.dataset, v.tokens_path, kinds, set(v.token_columns) & set(kinds))
                for v in verified
            ]
            run.fit_and_cluster(
                inputs, plan_model(set(kinds), {}), seed=1,
                n_records=sum(v.rows for v in verified), splink_clustering=splink_clustering,
                split_id_conflicts=split,
            )  # fmt: skip
        finally:
            be.close()
    keys = ["nino", "nhs", "names_dob", "fn_dob", "sn_dob", "pc_dob", "name_pc"]
    assert seen == [
        ("memory", ["nino", "nhs"], keys), ("fetched", ["nino", "nhs"], keys), ("memory", [], [])
    ]


@pytest.mark.parametrize("backend_ids", [("a", "m", "b"), ("z", "m", "c")])
def test_ties_fall_to_the_records_content_not_their_ids(backend_ids: tuple[str, ...]) -> None:
    """A record without a NINo exactly as like two people (the same weight to each) goes to the
    same one whatever ``unique_id`` the backend gave the records (row numbers on DuckDB, row
    references on Spark): ties fall to the tie-key tokens."""
    con = duckdb.connect()
    a_id, m_id, b_id = backend_ids
    con.execute(
        "CREATE TABLE rec AS SELECT * FROM (VALUES "
        f"('hmrc', '{a_id}', 101::BIGINT, 7::BIGINT), ('dwp', '{m_id}', NULL, 8), "
        f"('hmrc', '{b_id}', 202, 9)) t(source_dataset, unique_id, nino, names_dob)"
    )
    con.execute(
        "CREATE TABLE edges AS SELECT * FROM (VALUES "
        f"('hmrc', '{a_id}', 'dwp', '{m_id}', 5.0000000001), "
        f"('dwp', '{m_id}', 'hmrc', '{b_id}', 5.0)) "
        "t(source_dataset_l, unique_id_l, source_dataset_r, unique_id_r, match_weight)"
    )
    records = "SELECT source_dataset, unique_id, nino, names_dob FROM rec"
    frame, refused = cluster_in_memory(_Linker(con), records, "edges", ["nino"], ["names_dob"])
    by_id = dict(zip(frame["unique_id"], frame["cluster_id"], strict=True))
    # names_dob 7 (the first twin) sorts before 9: the middle record joins it.
    assert by_id[m_id] == by_id[a_id] != by_id[b_id] and refused == 1
