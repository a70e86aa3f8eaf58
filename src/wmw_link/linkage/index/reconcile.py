"""Carry person ids over from one clustering to the next by maximum overlap.

One rule serves every kind of run: each old person id goes to at most one new cluster and each
new cluster takes at most one old id, choosing pairs in order of how many records they share
(most first). So a person joined by new records keeps its id; when several persons merge, the
one with most records keeps its id; when a person splits, its largest part keeps it; after a
re-train, clusters that mostly re-form an old person keep that person's id.
"""

from __future__ import annotations

import numpy as np


def carry_over(labels: np.ndarray, old_code: np.ndarray, n_clusters: int, m: int) -> np.ndarray:
    """The old person (code) each new cluster keeps.

    Args:
        labels: each record's new cluster, in ``0 .. n_clusters - 1``.
        old_code: each record's old person, in ``0 .. m - 1`` (-1: new to the index).
        n_clusters: the number of new clusters.
        m: the number of old persons.

    Returns:
        Per cluster, the old person code whose id it keeps (-1: it takes a new id).
    """
    kept = np.full(n_clusters, -1, dtype=np.int64)
    known = old_code >= 0
    if not known.any():
        return kept
    key, n = np.unique(labels[known].astype(np.int64) * m + old_code[known], return_counts=True)
    lab, old = key // m, key % m
    # Most pairs are one cluster and one old person that share no other: settled at once.
    lone = (np.bincount(lab, minlength=n_clusters)[lab] == 1) & (
        np.bincount(old, minlength=m)[old] == 1
    )
    kept[lab[lone]] = old[lone]
    # The rest by shared records, most first; ties by old person and cluster, so reruns agree.
    rest = np.flatnonzero(~lone)
    rest = rest[np.lexsort((lab[rest], old[rest], -n[rest]))]
    used: set[int] = set()
    for label, code in zip(lab[rest].tolist(), old[rest].tolist(), strict=True):
        if kept[label] >= 0 or code in used:
            continue
        kept[label] = code
        used.add(code)
    return kept


__all__ = ["carry_over"]
