"""Carry person ids over from one clustering to the next by maximum overlap.

One rule serves every kind of run: each old person id goes to at most one new cluster and each
new cluster takes at most one old id, choosing pairs in order of how many records they share
(most first). So a person joined by new records keeps its id; when several persons merge, the
one with most records keeps its id; when a person splits, its largest part keeps it; after a
re-train, clusters that mostly re-form an old person keep that person's id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def carry_over(labels: np.ndarray, old_ids: np.ndarray) -> dict[int, str]:
    """Old id chosen for each new cluster that keeps one.

    Args:
        labels: each record's new cluster (integers).
        old_ids: each record's person id before this run (object array; None for a record
            new to the index).

    Returns:
        cluster label -> the old person id it keeps (clusters absent take new ids).
    """
    known = pd.notna(old_ids)
    if not known.any():
        return {}
    old_codes, uniques = pd.factorize(old_ids[known])
    m = len(uniques)
    counts = pd.Series(labels[known].astype(np.int64) * m + old_codes).value_counts(sort=False)
    key, n = counts.index.to_numpy(), counts.to_numpy()
    lab, old = key // m, key % m
    # Most pairs are one cluster and one old person that share no other: settled at once.
    lone = (np.bincount(lab)[lab] == 1) & (np.bincount(old, minlength=m)[old] == 1)
    kept = dict(zip(lab[lone].tolist(), uniques[old[lone]].tolist(), strict=True))
    # The rest by shared records, most first; ties by old id (order of first appearance)
    # and cluster, so reruns agree.
    rest = np.flatnonzero(~lone)
    rest = rest[np.lexsort((lab[rest], old[rest], -n[rest]))]
    used: set[int] = set()
    for label, code in zip(lab[rest].tolist(), old[rest].tolist(), strict=True):
        if label in kept or code in used:
            continue
        kept[label] = uniques[code]
        used.add(code)
    return kept


__all__ = ["carry_over"]
