"""Persons from accepted edges: connected components, id assignment, id changes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from wmw_link.linkage.components import components
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


@dataclass
class Assignment:
    """Every record's person after this run, and the id changes it made."""

    person: np.ndarray  # int64: each record's person, a code into ``person_ids``
    person_ids: np.ndarray  # object array of str: the persons' ids
    changes: pd.DataFrame  # old_person_id, new_person_id, reason
    #: Codes of the old persons the changes name (their records go into the maps).
    changed: np.ndarray

    def ids(self) -> np.ndarray:
        """Each record's person id (object array of str)."""
        return self.person_ids[self.person]


def assign(
    labels: np.ndarray,
    old_code: np.ndarray,
    old_ids: np.ndarray,
    *,
    gone: dict[int, int] | None = None,
    corrected: set[int] | None = None,
    reason: str | None = None,
) -> Assignment:
    """Give each cluster a person id, keeping old ids by maximum overlap; list the changes.

    Args:
        labels: each current record's cluster, ``0 .. k - 1`` (:func:`components`).
        old_code: each current record's person before the run, a code into ``old_ids`` (-1:
            new to the index).
        old_ids: the persons' ids before the run.
        gone: old person code -> records of it withdrawn in this run (persons that may vanish).
        corrected: old person codes that held a record re-sent (corrected) in this run: their
            splits are recorded as ``correction``.
        reason: one reason for every change (``retrain``, ``rekey``); default: ``merge``,
            ``split``, ``correction`` by what happened.

    Returns:
        An :class:`Assignment`. A change row means: records that had ``old_person_id`` now
        (some or all of them) have ``new_person_id``; ``new_person_id`` is None when no record
        of the old person is left (all withdrawn).
    """
    gone = gone or {}
    corrected = corrected or set()
    k = int(labels.max()) + 1 if len(labels) else 0
    m = len(old_ids)
    kept = carry_over(labels, old_code, k, m)
    ids = np.empty(k, dtype=object)
    has = kept >= 0
    ids[has] = old_ids[kept[has]]
    if (~has).any():
        ids[~has] = new_person_ids(int((~has).sum()))
    # Records whose old person's id went to another cluster (or to none) moved.
    home = np.full(m, -1, dtype=np.int64)  # the cluster keeping each old person's id
    home[kept[has]] = np.flatnonzero(has)
    known = old_code >= 0
    oc, lab = old_code[known], labels[known].astype(np.int64)
    moved = home[oc] != lab
    pairs = np.unique(oc[moved] * max(k, 1) + lab[moved])
    rows: list[tuple[str, str | None, str]] = []
    changed = [np.unique(pairs // max(k, 1))]
    for code, label in zip((pairs // max(k, 1)).tolist(), (pairs % max(k, 1)).tolist(),
                           strict=True):  # fmt: skip
        if reason:
            why = reason
        elif code in corrected:  # a re-sent record moved: split off or joined another
            why = "correction"
        elif home[code] >= 0:  # the old person kept its id: this part split off
            why = "split"
        else:  # the old person's records joined a person that kept another id
            why = "merge"
        rows.append((old_ids[code], ids[label], why))
    present = np.zeros(m, dtype=bool)
    present[oc] = True
    ended = sorted(c for c in gone if not present[c])
    for code in ended:
        rows.append((old_ids[code], None, "withdrawal"))  # the person ended, whatever the run
    changes = pd.DataFrame(rows, columns=["old_person_id", "new_person_id", "reason"])
    changed.append(np.asarray(ended, dtype=np.int64))
    return Assignment(labels.astype(np.int64), ids, changes, np.unique(np.concatenate(changed)))


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
