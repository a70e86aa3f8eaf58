"""Person ids and per-dataset maps (row_ref -> person_id), every input row exactly once."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from wmw_link.errors import VerificationError
from wmw_link.files import write_parquet_atomic

#: Random bytes per person id: 80 bits, so a million persons share an id with probability
#: about 4e-13 (and :func:`new_person_ids` draws again if two share their first 64 bits).
PERSON_ID_BYTES = 10
MAP_SCHEMA = pa.schema(
    [pa.field("row_ref", pa.string(), nullable=False), ("person_id", pa.string())]
)


def new_person_ids(n: int) -> np.ndarray:
    """``n`` distinct person ids, ``p`` + 20 hex characters, from the operating system's CSPRNG.

    Random rather than derived from the cluster: Splink names a cluster after one of its
    records, and any function of that name that analysts could recompute would tell them which
    record it was. Ids are therefore new in every linkage run and mean nothing outside it.
    """
    return _person_id_array(n).to_numpy(zero_copy_only=False)


def _person_id_array(n: int) -> pa.StringArray:
    """:func:`new_person_ids` as an Arrow array, built in one buffer (no Python loop per id)."""
    k = PERSON_ID_BYTES
    width = 1 + 2 * k
    while True:
        raw = np.frombuffer(secrets.token_bytes(k * n), dtype=np.uint8).reshape(n, k)
        # Distinct first 8 bytes are enough for distinct ids (and cheaper to check than text);
        # a repeat there (odds ~n^2 / 2^65) draws again.
        if len(pd.unique(raw[:, :8].copy().view(np.uint64).ravel())) < n:
            continue
        text = np.empty((n, width), dtype=np.uint8)
        text[:, 0] = ord("p")
        text[:, 1:] = np.frombuffer(raw.tobytes().hex().encode("ascii"), np.uint8).reshape(n, -1)
        offsets = np.arange(0, width * (n + 1), width, dtype=np.int64)
        ids = pa.LargeStringArray.from_buffers(
            n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())
        ).cast(pa.string())
        return ids


def build_maps(clusters: pd.DataFrame, expected: dict[str, pa.Array]) -> dict[str, pa.Table]:
    """One (row_ref, person_id) table per dataset, in the order of its tokens file.

    Args:
        clusters: columns source_dataset, unique_id, cluster_id. ``unique_id`` is either the
            row_ref or (integers) the row's number in its tokens file.
        expected: for each dataset, the row_refs of its input, in file order.

    Raises:
        VerificationError: a row appears twice, or the clustering invented rows.
    """
    clusters = clusters.reset_index(drop=True)
    codes, uniques = pd.factorize(clusters["cluster_id"])
    by_row_number = pd.api.types.is_integer_dtype(clusters["unique_id"])
    # A row Splink did not return (never expected, but a map must be complete) becomes a
    # person of its own: its id is drawn after the clusters' ids.
    next_lone = len(uniques)
    by_dataset = {ds: g for ds, g in clusters.groupby("source_dataset", sort=False, observed=True)}
    picked: dict[str, tuple[pa.Array, np.ndarray]] = {}
    for dataset, refs in expected.items():
        g = by_dataset.pop(dataset, clusters.iloc[:0])
        rows = g.index.to_numpy()
        if by_row_number:
            pos = _positions_by_row_number(dataset, g["unique_id"].to_numpy(), len(refs))
        else:
            pos = _positions_by_row_ref(dataset, g["unique_id"].to_numpy(), refs)
        found = pos >= 0
        person = np.empty(len(refs), dtype=np.int64)
        person[found] = codes[rows[pos[found]]]
        n_missing = int((~found).sum())
        person[~found] = np.arange(next_lone, next_lone + n_missing)
        next_lone += n_missing
        picked[dataset] = (refs, person)
    if by_dataset:
        raise VerificationError(
            f"the clustering returned rows of dataset(s) {', '.join(sorted(by_dataset))} that "
            "were not linked"
        )
    ids = _person_id_array(next_lone)
    return {
        ds: pa.Table.from_arrays([refs.cast(pa.string()), ids.take(person)], schema=MAP_SCHEMA)
        for ds, (refs, person) in picked.items()
    }


def _positions_by_row_number(dataset: str, ids: np.ndarray, n_rows: int) -> np.ndarray:
    """For each input row, its position among the clustered rows (-1: not returned)."""
    ids = ids.astype(np.int64, copy=False)
    if len(ids) and (ids.min() < 0 or ids.max() >= n_rows):
        bad = int(((ids < 0) | (ids >= n_rows)).sum())
        raise VerificationError(
            f"dataset '{dataset}': the clustering returned {bad} row(s) not in its input"
        )
    if len(ids) and np.bincount(ids, minlength=n_rows).max() > 1:
        raise VerificationError(f"dataset '{dataset}': a row is in the clusters twice")
    pos = np.full(n_rows, -1, dtype=np.int64)
    pos[ids] = np.arange(len(ids))
    return pos


def _positions_by_row_ref(dataset: str, ids: np.ndarray, refs: pa.Array) -> np.ndarray:
    index = pd.Index(ids)
    if not index.is_unique:
        raise VerificationError(f"dataset '{dataset}': a row is in the clusters twice")
    pos = index.get_indexer(pd.Index(refs.to_numpy(zero_copy_only=False)))
    n_found = int((pos >= 0).sum())
    if n_found != len(index):
        raise VerificationError(
            f"dataset '{dataset}': the clustering returned {len(index) - n_found} row(s) not in "
            "its input"
        )
    return pos


def write_maps(maps: dict[str, pa.Table], out_dir: Path) -> dict[str, Path]:
    """Write ``<dataset>.map.parquet`` files atomically; return their paths."""
    paths = {}
    for dataset, table in maps.items():
        path = out_dir / f"{dataset}.map.parquet"
        write_parquet_atomic(path, table)
        paths[dataset] = path
    return paths


__all__ = ["MAP_SCHEMA", "build_maps", "new_person_ids", "write_maps"]
