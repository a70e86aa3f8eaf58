"""Shared helpers for the attacks: token arrays, value counts, attack results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class AttackResult:
    """What one attack guesses, per record (None where it makes no guess).

    ``fields``: field name -> guessed normalised value (strings; dates as ISO ``yyyy-mm-dd``),
    or a list of such guesses (several columns each carry one; any may be right).
    ``columns``: token column -> guessed pre-hash value (list columns: sorted values joined by
    ``|``). ``notes``: aggregate facts about the attack (never a value).
    """

    name: str
    fields: dict[str, np.ndarray | list[np.ndarray]] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0


def int_tokens(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values with 0 in null slots, validity mask)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    vals = pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return vals.astype(np.int64), valid


def ranked(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values by descending count: (distinct, counts, rank of each input row).

    Ties are broken by value, so the order is deterministic (and meaningless, as for the
    attacker: tied frequencies carry no information).
    """
    distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    order = np.lexsort((np.arange(len(distinct)), -counts))
    rank_of = np.empty(len(distinct), np.int64)
    rank_of[order] = np.arange(len(distinct))
    return distinct[order], counts[order], rank_of[inverse]


def strings(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow string/date array as an object array of str (None for null); lists are
    joined as sorted, ``|``-separated strings so that set equality is string equality."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        sorted_lists = [None if v is None else "|".join(sorted(set(v))) for v in arr.to_pylist()]
        return np.array(sorted_lists, dtype=object)
    if not pa.types.is_string(t):
        arr = pc.cast(arr, pa.string())
    return arr.to_numpy(zero_copy_only=False).astype(object)
