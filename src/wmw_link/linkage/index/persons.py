"""Persons from accepted edges: connected components, id assignment, id changes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wmw_link.linkage.index.reconcile import carry_over
from wmw_link.linkage.maps import new_person_ids

ID_CHANGES_SCHEMA = pa.schema(
    [
        ("old_person_id", pa.string()),
        ("new_person_id", pa.string()),
        ("reason", pa.string()),
        ("delivery", pa.int32()),
    ]
)
REASONS = ("merge", "split", "retrain", "rekey", "withdrawal", "correction")


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


@dataclass
class Assignment:
    """Every record's person id after this run, and the id changes it made."""

    person_ids: np.ndarray  # object array of str, one per record
    changes: pd.DataFrame  # old_person_id, new_person_id, reason


def assign(
    labels: np.ndarray,
    old_ids: np.ndarray,
    *,
    gone: dict[str, int] | None = None,
    corrected_persons: set[str] | None = None,
    reason: str | None = None,
) -> Assignment:
    """Give each cluster a person id, keeping old ids by maximum overlap; list the changes.

    Args:
        labels: each current record's cluster.
        old_ids: each current record's person id before the run (None: new to the index).
        gone: old person id -> records of it withdrawn in this run (persons that may vanish).
        corrected_persons: old ids that held a record re-sent (corrected) in this run: their
            splits are recorded as ``correction``.
        reason: one reason for every change (``retrain``, ``rekey``); default: ``merge``,
            ``split``, ``correction`` by what happened.

    Returns:
        An :class:`Assignment`. A change row means: records that had ``old_person_id`` now
        (some or all of them) have ``new_person_id``; ``new_person_id`` is None when no record
        of the old person is left (all withdrawn).
    """
    gone = gone or {}
    corrected_persons = corrected_persons or set()
    codes, uniq = pd.factorize(labels)
    kept = carry_over(codes, old_ids)
    fresh = [c for c in range(len(uniq)) if c not in kept]
    ids = np.empty(len(uniq), dtype=object)
    for c, old in kept.items():
        ids[c] = old
    ids[fresh] = new_person_ids(len(fresh)) if fresh else []
    person_ids = ids[codes] if len(codes) else np.zeros(0, dtype=object)

    rows: list[tuple[str, str | None, str]] = []
    known = pd.notna(old_ids)
    moved = pd.DataFrame({"old": old_ids[known], "new": person_ids[known]})
    moved = moved[moved["old"] != moved["new"]].drop_duplicates()
    survivors = set(kept.values())
    for old, new in zip(moved["old"], moved["new"], strict=True):
        if reason:
            why = reason
        elif old in corrected_persons:  # a re-sent record moved: split off or joined another
            why = "correction"
        elif old in survivors:  # the old person kept its id: this part split off
            why = "split"
        else:  # the old person's records joined a person that kept another id
            why = "merge"
        rows.append((old, new, why))
    present = set(old_ids[known])
    for old in sorted(set(gone) - present):
        rows.append((old, None, "withdrawal"))  # the person ended, whatever the run
    changes = pd.DataFrame(rows, columns=["old_person_id", "new_person_id", "reason"])
    return Assignment(person_ids, changes)


def changes_table(changes: pd.DataFrame, delivery: int) -> pa.Table:
    """The ``id-changes.parquet`` table of a run."""
    return pa.Table.from_arrays(
        [
            pa.array(changes["old_person_id"].tolist(), pa.string()),
            pa.array(changes["new_person_id"].tolist(), pa.string()),
            pa.array(changes["reason"].tolist(), pa.string()),
            pa.array(np.full(len(changes), delivery, dtype=np.int32), pa.int32()),
        ],
        schema=ID_CHANGES_SCHEMA,
    )


__all__ = ["ID_CHANGES_SCHEMA", "REASONS", "Assignment", "assign", "changes_table", "components"]
