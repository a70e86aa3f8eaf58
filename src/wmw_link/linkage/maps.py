"""Person ids and per-dataset maps (row_ref -> person_id), every input row exactly once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow as pa

from wmw_link.errors import VerificationError
from wmw_link.files import write_parquet_atomic


def person_ids(cluster_ids: pd.Series, salt: str) -> pd.Series:
    """Opaque person ids from Splink cluster ids (which embed a row_ref).

    The id is a hash of the agreement id and the cluster id, so the same clustering gives the
    same ids, and the id does not show which record represents the cluster.
    """
    uniq = pd.Series(cluster_ids.unique())
    mapping = {
        c: "p" + hashlib.sha256(f"{salt}\x1f{c}".encode()).hexdigest()[:20] for c in uniq.tolist()
    }
    return cluster_ids.map(mapping)


def build_maps(
    clusters: pd.DataFrame, expected: dict[str, pd.Series], salt: str
) -> dict[str, pd.DataFrame]:
    """One (row_ref, person_id) frame per dataset, covering every input row exactly once.

    Args:
        clusters: columns source_dataset, unique_id (the row_ref), cluster_id.
        expected: for each dataset, the row_refs of its input.
        salt: mixed into the person ids (the agreement id).

    Raises:
        VerificationError: a row_ref appears twice, or the clustering lost or invented rows.
    """
    clusters = clusters.assign(person_id=person_ids(clusters["cluster_id"].astype(str), salt))
    out: dict[str, pd.DataFrame] = {}
    for dataset, refs in expected.items():
        got = clusters.loc[clusters["source_dataset"] == dataset, ["unique_id", "person_id"]]
        got = got.rename(columns={"unique_id": "row_ref"})
        if got["row_ref"].duplicated().any():
            raise VerificationError(f"dataset '{dataset}': a row_ref is in the clusters twice")
        missing = ~refs.isin(got["row_ref"])
        if missing.any():
            # Rows Splink did not return (never expected, but a map must be complete): each
            # becomes a person of its own.
            lone = pd.DataFrame({"row_ref": refs[missing].to_numpy()})
            lone["person_id"] = person_ids(dataset + "/" + lone["row_ref"], salt)
            got = pd.concat([got, lone], ignore_index=True)
        extra = ~got["row_ref"].isin(refs)
        if extra.any():
            raise VerificationError(
                f"dataset '{dataset}': the clustering returned {int(extra.sum())} row(s) not in "
                "its input"
            )
        out[dataset] = got.sort_values("row_ref", ignore_index=True)
    return out


def write_maps(maps: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, Path]:
    """Write ``<dataset>.map.parquet`` files atomically; return their paths."""
    schema = pa.schema([("row_ref", pa.string()), ("person_id", pa.string())])
    paths = {}
    for dataset, frame in maps.items():
        path = out_dir / f"{dataset}.map.parquet"
        write_parquet_atomic(path, pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
        paths[dataset] = path
    return paths


__all__ = ["build_maps", "person_ids", "write_maps"]
