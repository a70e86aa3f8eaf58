"""Streaming input: CSV or Parquet files (or an Arrow table), only the agreement's columns.

Every column is read as a string; columns the agreement does not name are never read. Errors
name the file, the column and the line, and never quote the data (pyarrow's own messages can
contain a row's text, so they are replaced, not passed on).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from wmw_link.errors import InputDataError

_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}


@dataclass
class Source:
    """An opened input: its batches (string columns, in ``columns`` order) and what it is."""

    label: str
    batches: Iterator[pa.RecordBatch]
    total_rows: int | None
    path: Path | None


def _missing_error(
    label: str, columns: list[str], dataset: str, header: list[str], first_line: str | None = None
) -> InputDataError:
    """A missing-column error with a hint at the likely cause (never quoting data: a header
    cell is named only when it matches one of the agreement's column names).

    Args:
        label: the file (or ``<arrow table>``).
        columns: the agreement's columns for the dataset.
        dataset: the dataset id.
        header: the column names found.
        first_line: the CSV header line as text (to spot another separator).
    """
    missing = [c for c in columns if c not in header]
    cols = ", ".join(f"'{c}'" for c in missing)
    msg = (
        f"{label}: rule 'columns': missing column(s) {cols} that the agreement names for "
        f"dataset '{dataset}'"
    )
    hints: list[str] = []
    if first_line is not None and len(header) == 1:
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in first_line:
                hints.append(
                    f"the header line is separated by {what}, not commas: save the extract "
                    "as comma-separated CSV"
                )
                break
    loose = {h.strip().casefold(): h for h in header}
    near = [(c, loose[c.casefold()]) for c in missing if c.casefold() in loose]
    if near:
        pairs = ", ".join(f"'{h}' for '{c}'" for c, h in near)
        hints.append(
            f"the header has {pairs}: column names must match the agreement exactly, including "
            "case and spaces; rename the column(s) in the extract"
        )
    found = len(missing) < len(columns) or near
    if not hints and not found:
        # Empty cells or runs of digits (dates, ids, phone numbers) are rare in column names.
        if any(not h.strip() or re.search(r"[0-9]{2}", h) for h in header):
            hints.append(
                "none of the agreement's columns are in the first line, which looks like data, "
                "not a header: the extract needs a header line with the column names"
            )
        else:
            hints.append(
                "none of the agreement's columns are in the header: check that this is the "
                f"extract of dataset '{dataset}'"
            )
    if hints:
        msg += "; " + "; ".join(hints)
    return InputDataError(msg)


def _as_strings(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    arrays = []
    for name in columns:
        arr = batch.column(name)
        if not pa.types.is_string(arr.type):
            arr = pc.cast(arr, pa.string())
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def open_table(table: pa.Table, columns: list[str], dataset: str, batch_rows: int) -> Source:
    """Batches of an in-memory Arrow table."""
    if any(c not in table.column_names for c in columns):
        raise _missing_error("<arrow table>", columns, dataset, table.column_names)
    if table.num_rows == 0:
        raise InputDataError("<arrow table>: the table has no rows")
    sub = table.select(columns)
    batches = (_as_strings(b, columns) for b in sub.to_batches(max_chunksize=batch_rows))
    return Source("<arrow table>", batches, table.num_rows, None)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputDataError(f"{path}: input file not found")
    if not path.is_file():
        raise InputDataError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise InputDataError(f"{path}: input file is not readable (permissions)")
    if path.stat().st_size == 0:
        raise InputDataError(f"{path}: input file is empty")


def open_parquet(path: Path, columns: list[str], dataset: str, batch_rows: int) -> Source:
    """Batches of a Parquet file, reading only ``columns``."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError):
        raise InputDataError(f"{path}: not a readable Parquet file") from None
    names = pf.schema_arrow.names
    if any(c not in names for c in columns):
        raise _missing_error(str(path), columns, dataset, names)
    total = pf.metadata.num_rows
    if total == 0:
        raise InputDataError(f"{path}: the file has no data rows")

    def gen() -> Iterator[pa.RecordBatch]:
        try:
            for b in pf.iter_batches(batch_size=batch_rows, columns=columns):
                yield _as_strings(b, columns)
        except pa.ArrowException:
            raise InputDataError(f"{path}: the Parquet file is damaged or unreadable") from None

    return Source(str(path), gen(), total, path)


def _read_header(path: Path) -> tuple[list[str], str]:
    """The header's column names, and the header line as text."""
    with path.open("rb") as fh:
        first = fh.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputDataError(
            f"{path}: the header line is not UTF-8 text (line 1); save the extract as UTF-8"
        ) from None
    if not text.strip():
        raise InputDataError(f"{path}: the first line is blank; a CSV header is required")
    return next(csv.reader(io.StringIO(text))), text


_SCAN_CHUNK = 1 << 20
#: Longer physical lines are not read whole when explaining a CSV error: such a line holds a
#: cell far over the tokenise limits (64 KiB / 1 MiB), and reading it whole costs its size.
_MAX_LINE_CHARS = 4 << 20


def _first_bad_utf8_line(path: Path) -> int | None:
    """The line of the first invalid UTF-8 byte, reading in chunks (a line may be huge)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_SCAN_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                return newlines + chunk[: max(e.start, 0)].count(b"\n") + 1
            newlines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return newlines + 1
    return None


def _cell_size_error(path: Path, data_row: int, line: int) -> InputDataError:
    return InputDataError(
        f"{path}: rule 'cell_size': data row {data_row} (line {line}) holds a cell far over the "
        "limits (64 KiB for identifiers and record ids, 1 MiB for payload), too large to read "
        "row by row; remove or shorten that cell and run again"
    )


def _bounded_lines(fh: io.TextIOBase, on_long: Callable[[int], None]) -> Iterator[str]:
    """The file's lines, calling ``on_long(line number)`` instead of reading a huge one whole."""
    n = 0
    while line := fh.readline(_MAX_LINE_CHARS):
        n += 1
        if len(line) == _MAX_LINE_CHARS and not line.endswith("\n"):
            on_long(n)
        yield line


def _first_ragged_row(path: Path, width: int) -> tuple[int, int] | None:
    """(data row, line) of the first row without ``width`` fields.

    Data rows count from 1 after the header and skip blank lines, as the rejects file's
    ``row_number`` does; lines count physical lines from 1, the header being line 1.

    Raises:
        InputDataError: rule 'cell_size', at a cell too large to read row by row.
    """
    data_row = 0  # the header is row 0

    def too_long(line: int) -> None:
        raise _cell_size_error(path, data_row + 1, line)

    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(_bounded_lines(fh, too_long))
        data_row = -1
        try:
            for row in reader:
                if not row:
                    continue  # blank lines are skipped (pyarrow skips them too)
                data_row += 1
                if len(row) != width:
                    return data_row, reader.line_num
        except csv.Error:
            # Python's csv stops at a field over its limit (128 KiB): a huge cell, which is
            # also why pyarrow failed (a row larger than its read block).
            raise _cell_size_error(path, data_row + 1, reader.line_num) from None
    return None


def _explain_csv_error(path: Path, width: int) -> InputDataError:
    line = _first_bad_utf8_line(path)
    if line is not None:
        return InputDataError(
            f"{path}: not valid UTF-8 text (first bad byte on line {line}, the header being "
            "line 1); save the extract as UTF-8"
        )
    ragged = _first_ragged_row(path, width)
    if ragged is not None:
        row, line = ragged
        return InputDataError(
            f"{path}: rule 'csv': data row {row} (line {line}) does not have the {width} fields "
            "of the header (data rows count from 1 after the header, as in the rejects file)"
        )
    return InputDataError(f"{path}: the CSV file cannot be parsed (rule 'csv')")


def open_csv(
    path: Path, columns: list[str], dataset: str, batch_rows: int, block_bytes: int
) -> Source:
    """Batches of a UTF-8 CSV file with a header, reading only ``columns`` as strings."""
    header, first_line = _read_header(path)
    dupes = sorted({c for c in header if header.count(c) > 1 and c in columns})
    if dupes:
        raise InputDataError(
            f"{path}: rule 'columns': column(s) {', '.join(dupes)} appear twice in the header"
        )
    if any(c not in header for c in columns):
        raise _missing_error(str(path), columns, dataset, header, first_line)
    read_opts = pv.ReadOptions(block_size=block_bytes, use_threads=True)
    conv = pv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        include_columns=columns,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    parse = pv.ParseOptions(newlines_in_values=False)
    try:
        reader = pv.open_csv(
            path, read_options=read_opts, convert_options=conv, parse_options=parse
        )
    except pa.ArrowInvalid:
        raise _explain_csv_error(path, len(header)) from None

    def gen() -> Iterator[pa.RecordBatch]:
        seen = 0
        try:
            for block in reader:
                seen += block.num_rows
                # Blocks are sized in bytes; slice them (zero-copy) to ``batch_rows`` rows.
                for start in range(0, block.num_rows, batch_rows):
                    yield _as_strings(block.slice(start, batch_rows), columns)
        except pa.ArrowInvalid:
            raise _explain_csv_error(path, len(header)) from None
        if seen == 0:
            raise InputDataError(f"{path}: the file has a header but no data rows")

    return Source(str(path), gen(), None, path)


def open_input(
    source: str | os.PathLike[str] | pa.Table,
    columns: list[str],
    dataset: str,
    batch_rows: int,
) -> Source:
    """Open a CSV/Parquet path or an Arrow table for streaming.

    Raises:
        InputDataError: missing, unreadable or empty file; a named column missing; not UTF-8.
    """
    if isinstance(source, pa.Table):
        return open_table(source, columns, dataset, batch_rows)
    path = Path(source)
    _check_file(path)
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return open_parquet(path, columns, dataset, batch_rows)
    # Roughly 200 bytes per row in partner extracts: blocks of about ``batch_rows`` rows.
    return open_csv(path, columns, dataset, batch_rows, max(1 << 16, batch_rows * 200))
