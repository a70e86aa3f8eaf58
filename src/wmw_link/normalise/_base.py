"""Shared pieces of the normalisers: the result type and reason bookkeeping."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

MISSING = "missing"


@dataclass(frozen=True)
class Normalised:
    """Normalised values and, where a value is null, why.

    Attributes:
        values: the normalised values; null where the input was missing or invalid.
        reasons: null where ``values`` is valid, else a fixed reason label (never the value).
    """

    values: pa.Array
    reasons: pa.Array


def as_string_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A plain (unchunked) string array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    return arr


def blank_to_null(arr: pa.Array) -> pa.Array:
    """Trim whitespace; empty strings become null (an empty cell is a missing value)."""
    arr = pc.utf8_trim_whitespace(as_string_array(arr))
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def reasons_where(
    base: pa.Array, conditions: list[tuple[pa.Array, str]], missing: pa.Array
) -> pa.Array:
    """Build a reason array: ``missing`` first, then the first condition that holds."""
    out = pa.nulls(len(base), pa.string())
    # Apply in reverse so that earlier conditions win.
    for cond, label in reversed(conditions):
        cond = pc.fill_null(cond, False)
        out = pc.if_else(cond, pa.scalar(label), out)
    return pc.if_else(missing, pa.scalar(MISSING), out)


def count_reasons(reasons: pa.Array, prefix: str) -> Counter[str]:
    """Count reasons as ``{prefix}:{reason}`` (for ``nulled_by_reason``)."""
    counts: Counter[str] = Counter()
    if reasons.null_count == len(reasons):
        return counts
    vc = pc.value_counts(reasons.drop_null())
    for item in vc.to_pylist():
        counts[f"{prefix}:{item['values']}"] += item["counts"]
    return counts
