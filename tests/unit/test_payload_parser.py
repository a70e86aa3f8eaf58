"""Payload values that cannot be represented become null with a reason, never a crash.

A failing Arrow cast would put the offending cell's value into the exception message (and so
onto the controller's terminal); these values must be caught before any cast.
"""

from __future__ import annotations

import pyarrow as pa

from wmw_link.agreement import PayloadField, PayloadType
from wmw_link.tokenise.payload import PayloadParser


def _parse(field: PayloadField, values: list[str | None]):
    batch = pa.RecordBatch.from_pydict({field.column: pa.array(values, pa.string())})
    arrays, notes = PayloadParser([field]).parse(batch)
    return arrays[0].to_pylist(), notes[0]


def test_integers_too_big_for_int64_are_nulled_not_crashed() -> None:
    f = PayloadField(column="n", name="n", type=PayloadType.INTEGER)
    got, (label, non_empty, reasons) = _parse(f, ["12", "07745138714999999999999", "-5", "x", None])
    assert got == [12, None, -5, None, None]
    assert label == "payload.n" and non_empty == 4
    assert reasons.to_pylist() == [None, "invalid_integer", None, "invalid_integer", None]


def test_infinite_numbers_are_nulled() -> None:
    f = PayloadField(column="pay", name="pay", type=PayloadType.NUMBER)
    got, (_, _, reasons) = _parse(f, ["1234.5", "1e999", "-1e999", "2e3"])
    assert got == [1234.5, None, None, 2000.0]
    assert reasons.to_pylist() == [None, "invalid_number", "invalid_number", None]
