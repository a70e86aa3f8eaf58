"""Cells refused before any normaliser sees them: too large, or holding control characters.

Normalising and Bloom-encoding one string costs memory in proportion to its length (an 8 MB
name cost about 700 MB), and no real identifier is longer than a few hundred characters. A NUL
or other control character in a name or record id is a corrupt extract or an attack on a
downstream tool, never data. So, per row, before the batch goes to the workers:

* a record-id or identifier cell over :data:`IDENTIFIER_CELL_LIMIT` bytes (64 KiB), or a payload
  cell over :data:`PAYLOAD_CELL_LIMIT` bytes (1 MiB), rejects its row with reason
  ``cell_too_large``;
* a record-id or identifier cell holding a control character (C0, DEL or C1: U+0000-U+001F,
  U+007F-U+009F) rejects its row with reason ``control_character``.

The cell is blanked before the workers run (so the row costs what an empty row costs) and the
row is then taken out of the outputs and put in the rejects, once, with the first column found.
A cell too large for the CSV reader itself (over its block, tens of MB) cannot be read row by
row: the reader refuses the file with rule 'cell_size' (:mod:`wmw_link.tokenise.reader`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.tokenise.rejects import REJECTED, REJECTS_SCHEMA

IDENTIFIER_CELL_LIMIT = 64 * 1024
PAYLOAD_CELL_LIMIT = 1 << 20
CELL_TOO_LARGE = "cell_too_large"
CONTROL_CHARACTER = "control_character"
# RE2 syntax (pyarrow): C0 controls, DEL and the C1 controls.
_CONTROL = r"[\x{00}-\x{1f}\x{7f}-\x{9f}]"


def _may_hold_control(arr: pa.Array) -> bool:
    """Whether the bytes under a string array hold a control character (a fast pre-check).

    In UTF-8 a C0 control or DEL is one byte below 0x20 or 0x7F, never part of a longer
    character, and a C1 control is 0xC2 then 0x80-0x9F: one pass of numpy over the data buffer
    (a few ms per million cells, against ~0.5 s for a regex per column). The buffer may hold
    bytes of rows outside a sliced batch: a hit only sends the column to the exact check.
    """
    if not pa.types.is_string(arr.type):
        return True
    data = arr.buffers()[2]
    if data is None or data.size == 0:
        return False
    b = np.frombuffer(data, dtype=np.uint8)
    if int(b.min()) < 0x20 or bool((b == 0x7F).any()):
        return True
    lead = np.flatnonzero(b[:-1] == 0xC2)  # rare in most extracts (e.g. a pound sign)
    follow = b[lead + 1]
    return bool(((follow >= 0x80) & (follow <= 0x9F)).any())


@dataclass(frozen=True)
class Screened:
    """The rows of a batch refused by the screen: data row number -> (column, reason)."""

    rows: dict[int, tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(self.rows)


class CellScreen:
    """Blank and flag oversized or control-character cells of raw string batches."""

    def __init__(self, columns: list[str], identifier_columns: set[str]) -> None:
        self._columns = columns
        self._identifiers = identifier_columns

    def screen(self, batch: pa.RecordBatch, offset: int) -> tuple[pa.RecordBatch, Screened]:
        """The batch with refused cells blanked, and the refused rows (first column found).

        Args:
            batch: string columns in input order; its first row is data row ``offset + 1``.
            offset: rows before this batch.
        """
        flagged: dict[int, tuple[str, str]] = {}
        arrays = []
        for name in self._columns:
            arr = batch.column(name)
            ident = name in self._identifiers
            limit = IDENTIFIER_CELL_LIMIT if ident else PAYLOAD_CELL_LIMIT
            lengths = pc.binary_length(arr)
            reason_big = (pc.max(lengths).as_py() or 0) > limit
            bad = pc.fill_null(pc.greater(lengths, limit), False) if reason_big else None
            ctrl = None
            if ident and _may_hold_control(arr):
                ctrl = pc.fill_null(pc.match_substring_regex(arr, _CONTROL), False)
                if not pc.any(ctrl).as_py():
                    ctrl = None
            if bad is None and ctrl is None:
                arrays.append(arr)
                continue
            if bad is not None:
                for i in pc.indices_nonzero(bad).to_pylist():
                    flagged.setdefault(offset + i + 1, (name, CELL_TOO_LARGE))
            if ctrl is not None:
                for i in pc.indices_nonzero(ctrl).to_pylist():
                    flagged.setdefault(offset + i + 1, (name, CONTROL_CHARACTER))
                bad = ctrl if bad is None else pc.or_(bad, ctrl)
            arrays.append(pc.if_else(bad, pa.scalar("", arr.type), arr))
        if not flagged:
            return batch, Screened({})
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names), Screened(flagged)


def rejects_for(screened: Screened) -> pa.RecordBatch:
    """One ``rejected`` entry per screened row, in row order."""
    rows = sorted(screened.rows.items())
    return pa.RecordBatch.from_arrays(
        [
            pa.array([r for r, _ in rows], pa.int64()),
            pa.array([c for _, (c, _) in rows], pa.string()),
            pa.array([why for _, (_, why) in rows], pa.string()),
            pa.array([REJECTED] * len(rows), pa.string()),
        ],
        schema=REJECTS_SCHEMA,
    )


__all__ = [
    "CELL_TOO_LARGE",
    "CONTROL_CHARACTER",
    "IDENTIFIER_CELL_LIMIT",
    "PAYLOAD_CELL_LIMIT",
    "CellScreen",
    "Screened",
    "rejects_for",
]
