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
    pairs = (
        pd.DataFrame({"label": labels[known], "old": old_ids[known]})
        .groupby(["label", "old"], sort=False)
        .size()
        .reset_index(name="n")
        # Most shared records first; ties broken by id and label, so reruns agree.
        .sort_values(["n", "old", "label"], ascending=[False, True, True], kind="stable")
    )
    kept: dict[int, str] = {}
    used: set[str] = set()
    for label, old in zip(pairs["label"].to_numpy(), pairs["old"].to_numpy(), strict=True):
        if label in kept or old in used:
            continue
        kept[int(label)] = old
        used.add(old)
    return kept


__all__ = ["carry_over"]
