"""The rejects file (stays with the controller): which rows were left out, and why.

One row per rejected input row: ``row_number`` (1 = the first data row, after any header),
``column`` (the record-id or identifier column concerned, or null) and ``reason``. Never a value.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

MISSING_RECORD_ID = "missing_record_id"
DUPLICATE_RECORD_ID = "duplicate_record_id"
NO_USABLE_IDENTIFIERS = "no_usable_identifiers"

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

CROSSWALK_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        # The token dictionaries of a batch, as they come from the workers (read back: string).
        pa.field("row_ref", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    ]
)


def reason_key(column: str | None, reason: str) -> str:
    """The ``rejected_by_reason`` key: ``column:reason`` or the bare reason."""
    return f"{column}:{reason}" if column else reason


def count_rejects(rejects: pa.RecordBatch) -> Counter[str]:
    """Rejected rows by ``column:reason``."""
    counts: Counter[str] = Counter()
    if rejects.num_rows == 0:
        return counts
    table = pa.Table.from_batches([rejects])
    grouped = table.group_by(["column", "reason"]).aggregate([("row_number", "count")])
    for row in grouped.to_pylist():
        counts[reason_key(row["column"], row["reason"])] += row["row_number_count"]
    return counts


def duplicates_batch(row_numbers: pa.Array, column: str, mask: pa.Array) -> pa.RecordBatch:
    """Rejects for rows whose record id was already seen."""
    rn = pc.filter(row_numbers, mask)
    n = len(rn)
    return pa.RecordBatch.from_arrays(
        [rn, pa.array([column] * n, pa.string()), pa.array([DUPLICATE_RECORD_ID] * n, pa.string())],
        schema=REJECTS_SCHEMA,
    )
