"""The rejects file (stays with the controller): which rows were left out, which values were
nulled, and why.

Columns: ``row_number`` (1 = the first data row, after any header), ``column``, ``reason`` and
``action``. ``action = "rejected"``: one entry per row left out, ``column`` the record-id or
identifier column concerned (or null). ``action = "nulled"``: one entry per non-empty value that
was invalid and became null (in any input row, kept or rejected), ``column`` labelled as in the
manifest's ``nulled_by_reason`` (``dob``, ``FullName/surname``, ``payload.birth_year``). Never a
value.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

MISSING_RECORD_ID = "missing_record_id"
DUPLICATE_RECORD_ID = "duplicate_record_id"
NO_USABLE_IDENTIFIERS = "no_usable_identifiers"

#: ``action`` values: the row was left out / the value was nulled and the row kept or not.
REJECTED = "rejected"
NULLED = "nulled"

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
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
    """Rejected rows (``action = "rejected"``) by ``column:reason``."""
    counts: Counter[str] = Counter()
    if rejects.num_rows == 0:
        return counts
    table = pa.Table.from_batches([rejects])
    table = table.filter(pc.equal(table.column("action"), REJECTED))
    grouped = table.group_by(["column", "reason"]).aggregate([("row_number", "count")])
    for row in grouped.to_pylist():
        counts[reason_key(row["column"], row["reason"])] += row["row_number_count"]
    return counts


def duplicates_batch(row_numbers: pa.Array, column: str, mask: pa.Array) -> pa.RecordBatch:
    """Rejects for rows whose record id was already seen."""
    rn = pc.filter(row_numbers, mask)
    n = len(rn)
    return pa.RecordBatch.from_arrays(
        [
            rn,
            pa.array([column] * n, pa.string()),
            pa.array([DUPLICATE_RECORD_ID] * n, pa.string()),
            pa.array([REJECTED] * n, pa.string()),
        ],
        schema=REJECTS_SCHEMA,
    )


def nulled_batch(
    row_offset: int, invalid: list[tuple[str, pa.Array, pa.Array]], order: dict[str, int]
) -> pa.RecordBatch:
    """``action = "nulled"`` entries of a batch, by row then in the agreement's column order.

    Args:
        row_offset: rows before this batch (its first row is data row ``row_offset + 1``).
        invalid: (label, row indices in the batch, reasons) per column with invalid values.
        order: the rank of each label (so the result does not depend on which process ran
            which column).
    """
    invalid = sorted(invalid, key=lambda e: order.get(e[0], len(order)))
    rn = [pc.add(pc.cast(idx, pa.int64()), row_offset + 1) for _, idx, _ in invalid]
    n = [len(idx) for _, idx, _ in invalid]
    if not invalid or sum(n) == 0:
        return _empty()
    table = pa.table(
        {
            "row_number": pa.concat_arrays(rn),
            "column": pa.concat_arrays(
                [
                    pa.array([label] * k, pa.string())
                    for (label, _, _), k in zip(invalid, n, strict=True)
                ]
            ),
            "reason": pa.concat_arrays([why for _, _, why in invalid]),
            "action": pa.array([NULLED] * sum(n), pa.string()),
        },
        schema=REJECTS_SCHEMA,
    ).sort_by("row_number")  # stable: column order kept within a row
    return table.combine_chunks().to_batches()[0]


def _empty() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([], f.type) for f in REJECTS_SCHEMA], schema=REJECTS_SCHEMA
    )


def merge(*batches: pa.RecordBatch) -> pa.RecordBatch:
    """Entries of several batches in row order (stable: earlier batches first within a row)."""
    table = pa.Table.from_batches(batches, schema=REJECTS_SCHEMA).sort_by("row_number")
    table = table.combine_chunks()
    return table.to_batches()[0] if table.num_rows else _empty()
