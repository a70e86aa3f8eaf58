"""Connected components of linked records: persons from the pairs above the threshold.

Splink clusters in SQL, joining the pairs to the records again on each pass until no label
changes: about 10% of a 1,000,000-person link on DuckDB, and more at 3,000,000. On one machine
the graph fits in memory as two integer arrays per edge, and scipy's union-find labels it in a
second or two. Spark keeps Splink's clustering: there the records need not fit on the driver.

A component can chain two people through records that lack the identifier that would keep them
apart: twins ``A`` (NINo ``X``) and ``B`` (NINo ``Y``), each linked to a record with no NINo
that is like both. :func:`split_conflicts` re-clusters only the components holding two NINos
(or NHS numbers), strongest pairs first, and refuses a merge that would bring different ids
together unless the pair itself carries both ids: then the model weighed their disagreement
and still linked them (a typo in one of one person's NINos).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wmw_link.errors import InputDataError


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each of ``n`` records' connected component over the edges ``left[i] -- right[i]``."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix(
        (np.ones(len(left), dtype=np.int8), (left.astype(np.int64), right.astype(np.int64))),
        shape=(n, n),
    )
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


#: One id of every record: its values (int64 tokens) and where it is missing.
IdColumn = tuple[np.ndarray, np.ndarray]


def split_conflicts(
    labels: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    weight: np.ndarray,
    ids: Sequence[IdColumn],
    keys: Callable[[np.ndarray], Sequence[np.ndarray]] | None = None,
) -> tuple[np.ndarray, int]:
    """Components relabelled so that none joins different ids through records without them.

    Components where some id (``ids``: per id, each record's value and whether it is missing)
    holds more than one value are clustered again from their edges, highest weight first; a
    merge of two clusters whose values of an id are both present and share none is refused
    unless both of the edge's records carry that id. Weights are compared to six decimals
    (engines sum in their own order) and ties are broken by the records' ``keys``, so the
    result hangs neither on the order the database returned the edges in nor, with keys that
    are the records' content, on the backend. Other components keep their labels.

    Args:
        labels: each record's component (:func:`components`).
        left, right: the edges' records; ``weight``: their match weights.
        ids: per id, (values, missing) over the records.
        keys: given the records of the conflicted components, their sort keys (arrays, most
            significant first); default their positions.

    Returns:
        The labels (new ones numbered after ``labels.max()``), and the linked pairs refused.
    """
    if len(labels) == 0 or not len(ids):
        return labels, 0
    k = int(labels.max()) + 1
    conflicted = np.zeros(k, dtype=bool)
    for values, missing in ids:
        held = ~missing
        lo = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(k, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, labels[held], values[held])
        np.maximum.at(hi, labels[held], values[held])
        conflicted |= lo < hi
    on = conflicted[labels[left]]
    if not on.any():
        return labels, 0
    nodes = np.flatnonzero(conflicted[labels])
    rank = np.zeros(len(labels), dtype=np.int64)
    sub = np.lexsort(tuple(reversed(keys(nodes)))) if keys else np.arange(len(nodes))
    rank[nodes[sub]] = np.arange(len(nodes))
    a, b = left[on].astype(np.int64), right[on].astype(np.int64)
    w = np.round(weight[on], 6)
    lo_rank, hi_rank = np.minimum(rank[a], rank[b]), np.maximum(rank[a], rank[b])
    order = np.lexsort((hi_rank, lo_rank, -w))
    # Each node's ids (None: missing); each cluster's ids and size, at its root. The smaller
    # cluster joins the larger, its ids added in place: linear in the component's size.
    own = {int(x): [None if m[x] else int(v[x]) for v, m in ids] for x in nodes.tolist()}
    held_ids = {x: [set() if i is None else {i} for i in own[x]] for x in own}
    size = dict.fromkeys(own, 1)
    parent = {x: x for x in own}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    refused = 0
    for x, y in zip(a[order].tolist(), b[order].tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx == ry:
            continue
        sx, sy = held_ids[rx], held_ids[ry]
        if any(
            sx[j] and sy[j] and sx[j].isdisjoint(sy[j]) and None in (own[x][j], own[y][j])
            for j in range(len(ids))
        ):
            refused += 1
            continue
        if size[rx] < size[ry]:
            rx, ry, sx, sy = ry, rx, sy, sx
        parent[ry] = rx
        size[rx] += size.pop(ry)
        for mine, theirs in zip(sx, sy, strict=True):
            mine |= theirs
        del held_ids[ry]
    out = labels.copy()
    roots = np.fromiter((find(int(x)) for x in nodes), dtype=np.int64, count=len(nodes))
    out[nodes] = k + np.unique(roots, return_inverse=True)[1]
    return out, refused


def cluster_in_memory(
    linker: Any, records: str, edges: str, ids: Sequence[str] = (), keys: Sequence[str] = ()
) -> tuple[pd.DataFrame, int]:
    """Every record's cluster over the pairs of ``edges`` (DuckDB).

    Records are numbered in the database (a dataset and a ``unique_id``, integer or text,
    become one integer), the edges are fetched as two integer arrays, and
    :func:`components` labels them; with ``ids``, :func:`split_conflicts` then keeps records
    with different ids apart, ties in weight broken by the ``keys`` columns (fetched for the
    records of conflicted components only).

    Args:
        linker: the Splink linker holding the records.
        records: SQL selecting every record's ``source_dataset``, ``unique_id``, the ``ids``
            and the ``keys`` columns (integer tokens).
        edges: a table or subquery of the linked pairs (``source_dataset_l``,
            ``unique_id_l``, ``source_dataset_r``, ``unique_id_r``, ``match_weight``).
        ids: columns of ``records`` whose different values keep records apart.
        keys: columns of ``records`` that order records alike on every backend
            (:func:`wmw_link.linkage.settings.tie_key_columns`).

    Returns:
        Columns ``source_dataset`` (categorical), ``unique_id`` and ``cluster_id`` (int64),
        one row per record; and the linked pairs :func:`split_conflicts` refused.
    """
    q = linker.misc.query_sql
    # Exact integers and a null flag: a nullable BIGINT would reach pandas as float64.
    id_list = "".join(", " + _id_columns(c, k) for k, c in enumerate(ids))
    numbered = q(
        f"SELECT source_dataset, unique_id, CAST(ROW_NUMBER() OVER () - 1 AS BIGINT) AS node"
        f"{id_list} FROM ({records})",
        output_type="splink_df",
    )
    try:
        name = numbered.physical_name
        pairs = q(
            f"SELECT l.node AS a, r.node AS b, e.match_weight AS w FROM {edges} e "
            f"JOIN {name} l ON l.source_dataset = e.source_dataset_l "
            "AND l.unique_id = e.unique_id_l "
            f"JOIN {name} r ON r.source_dataset = e.source_dataset_r "
            "AND r.unique_id = e.unique_id_r",
            output_type="pandas",
        )
        frame = q(f"SELECT * EXCLUDE (node), node FROM {name}", output_type="pandas")
        node = frame["node"].to_numpy()
        a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
        labels = components(len(frame), a, b)
        refused = 0
        if ids:
            at = np.empty_like(node)
            at[node] = np.arange(len(node))  # node -> row of frame
            id_columns = [
                (frame[f"_id{k}"].to_numpy()[at], frame[f"_null{k}"].to_numpy()[at])
                for k in range(len(ids))
            ]

            def keys_of(nodes: np.ndarray) -> list[np.ndarray]:
                listed = ", ".join(map(str, nodes.tolist()))
                got = q(
                    f"SELECT n.node, r.source_dataset, r.unique_id{key_columns_sql(keys, 'r')}"
                    f" FROM {name} n JOIN (SELECT unnest([{listed}]) AS node) s "
                    f"ON s.node = n.node JOIN ({records}) r "
                    "ON r.source_dataset = n.source_dataset AND r.unique_id = n.unique_id",
                    output_type="pandas",
                )
                return key_arrays(got.set_index("node").loc[nodes], len(keys))

            labels, refused = split_conflicts(
                labels, a, b, pairs["w"].to_numpy(), id_columns, keys_of
            )
    finally:
        numbered.drop_table_from_database_and_remove_from_cache()
    return pd.DataFrame(
        {
            "source_dataset": frame["source_dataset"].astype("category"),
            "unique_id": frame["unique_id"],
            "cluster_id": labels[node],
        }
    ), refused


def _id_columns(col: str, k: int, table: str = "", prefix: str = "") -> str:
    """Select list: a token as an exact integer and a null flag (a nullable BIGINT would reach
    pandas as float64); the same SQL on DuckDB and Spark."""
    c = f"{table}.{col}" if table else col
    return f"coalesce({c}, 0) AS {prefix}_id{k}, {c} IS NULL AS {prefix}_null{k}"


def key_columns_sql(keys: Sequence[str], table: str) -> str:
    """Select list (each item after a comma) of the tie-break ``keys`` of ``table``'s records,
    as :func:`key_arrays` reads them."""
    return "".join(", " + _id_columns(c, k, table, "_key") for k, c in enumerate(keys))


def key_arrays(got: pd.DataFrame, n_keys: int) -> list[np.ndarray]:
    """Sort keys of fetched records (columns of :func:`key_columns_sql`):
    the dataset, each key column's null flag and value, and ``unique_id`` last (the row number
    on DuckDB, the row reference on Spark: it decides only between records of one dataset
    whose key columns are all equal)."""
    out = [got["source_dataset"].astype(str).to_numpy()]
    for k in range(n_keys):
        out += [got[f"_key_null{k}"].to_numpy(), got[f"_key_id{k}"].to_numpy()]
    return [*out, got["unique_id"].astype(str).to_numpy()]


def split_fetched(
    linker: Any,
    frame: pd.DataFrame,
    records: str,
    clusters: str,
    edges: str,
    ids: Sequence[str],
    keys: Sequence[str] = (),
) -> tuple[pd.DataFrame, int]:
    """:func:`split_conflicts` for clusters made in the backend (Splink's clustering, as on
    Spark): only the records of clusters holding two values of an id, and their edges, reach
    the driver.

    Args:
        linker: the Splink linker.
        frame: every record's ``source_dataset``, ``unique_id`` and ``cluster_id``.
        records: SQL of every record's ``source_dataset``, ``unique_id`` and ``ids``.
        clusters: a table or subquery of ``source_dataset``, ``unique_id``, ``cluster_id``.
        edges: the linked pairs, as for :func:`cluster_in_memory`.
        ids: columns of ``records`` whose different values keep records apart.
        keys: columns of ``records`` that break ties in weight, as for
            :func:`cluster_in_memory`.

    Returns:
        ``frame`` with integer cluster ids, and the linked pairs refused.

    Raises:
        InputDataError: the pairs or the clusters name a record the other lacks.
    """
    q = linker.misc.query_sql
    on = "r.source_dataset = c.source_dataset AND r.unique_id = c.unique_id"
    two = " OR ".join(f"count(DISTINCT r.{c}) > 1" for c in ids)
    sub = q(
        f"SELECT c.cluster_id AS _cluster, r.source_dataset, r.unique_id, "
        f"{', '.join(_id_columns(c, k, 'r') for k, c in enumerate(ids))}"
        f"{key_columns_sql(keys, 'r')} "
        f"FROM {clusters} c JOIN ({records}) r ON {on} WHERE c.cluster_id IN "
        f"(SELECT c.cluster_id FROM {clusters} c JOIN ({records}) r ON {on} "
        f"GROUP BY c.cluster_id HAVING {two})",
        output_type="splink_df",
    )
    try:
        name = sub.physical_name
        held = q(f"SELECT * FROM {name}", output_type="pandas")
        pairs = q(
            "SELECT e.source_dataset_l, e.unique_id_l, e.source_dataset_r, e.unique_id_r, "
            f"e.match_weight AS w FROM {edges} e JOIN {name} s "
            "ON s.source_dataset = e.source_dataset_l AND s.unique_id = e.unique_id_l",
            output_type="pandas",
        )
    finally:
        sub.drop_table_from_database_and_remove_from_cache()
    codes = pd.factorize(frame["cluster_id"])[0].astype(np.int64)
    if held.empty:
        return frame.assign(cluster_id=codes), 0
    held_at = _keys(held["source_dataset"], held["unique_id"])
    left = held_at.get_indexer(_keys(pairs["source_dataset_l"], pairs["unique_id_l"]))
    right = held_at.get_indexer(_keys(pairs["source_dataset_r"], pairs["unique_id_r"]))
    at = _keys(frame["source_dataset"], frame["unique_id"]).get_indexer(held_at)
    if (left < 0).any() or (right < 0).any() or (at < 0).any():
        # Splink's clusters and the pairs above its threshold should hold the same records.
        raise InputDataError(
            "clustering: the linked pairs and Splink's clusters name different records "
            f"({int((right < 0).sum())} pair end(s), {int((at < 0).sum())} record(s) unmatched)"
        )
    labels = pd.factorize(held["_cluster"])[0].astype(np.int64)
    id_values = [(held[f"_id{k}"].to_numpy(), held[f"_null{k}"].to_numpy()) for k in range(len(ids))]
    order = key_arrays(held, len(keys))
    new, refused = split_conflicts(
        labels, left, right, pairs["w"].to_numpy(), id_values, lambda n: [o[n] for o in order]
    )
    codes[at] = int(codes.max()) + 1 + new
    return frame.assign(cluster_id=codes), refused


def _keys(dataset: pd.Series, unique_id: pd.Series) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([dataset.astype(str).to_numpy(), unique_id.to_numpy()])


__all__ = [
    "cluster_in_memory",
    "components",
    "key_arrays",
    "key_columns_sql",
    "split_conflicts",
    "split_fetched",
]
