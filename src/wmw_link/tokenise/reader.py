"""Streaming input: CSV or Parquet files (or an Arrow table), only the agreement's columns.

Every column is read as a string; columns the agreement does not name are never read. Errors
name the file, the column and the line, and never quote the data (pyarrow's own messages can
contain a row's text, so they are replaced, not passed on).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
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


def _missing_error(label: str, missing: list[str], dataset: str) -> InputDataError:
    cols = ", ".join(f"'{c}'" for c in missing)
    return InputDataError(
        f"{label}: missing column(s) {cols} that the agreement names for dataset '{dataset}'"
    )


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
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise _missing_error("<arrow table>", missing, dataset)
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
    missing = [c for c in columns if c not in names]
    if missing:
        raise _missing_error(str(path), missing, dataset)
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


def _read_header(path: Path) -> list[str]:
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
    return next(csv.reader(io.StringIO(text)))


def _first_bad_utf8_line(path: Path) -> int | None:
    with path.open("rb") as fh:
        for i, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return i
    return None


def _first_ragged_line(path: Path, width: int) -> int | None:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        for row in reader:
            if row and len(row) != width:
                return reader.line_num
    return None


def _explain_csv_error(path: Path, width: int) -> InputDataError:
    line = _first_bad_utf8_line(path)
    if line is not None:
        return InputDataError(
            f"{path}: not valid UTF-8 text (first bad byte on line {line}); save the extract "
            "as UTF-8"
        )
    line = _first_ragged_line(path, width)
    if line is not None:
        return InputDataError(
            f"{path}: line {line} does not have the {width} fields of the header (rule 'csv')"
        )
    return InputDataError(f"{path}: the CSV file cannot be parsed (rule 'csv')")


def open_csv(
    path: Path, columns: list[str], dataset: str, batch_rows: int, block_bytes: int
) -> Source:
    """Batches of a UTF-8 CSV file with a header, reading only ``columns`` as strings."""
    header = _read_header(path)
    dupes = sorted({c for c in header if header.count(c) > 1 and c in columns})
    if dupes:
        raise InputDataError(f"{path}: column(s) {', '.join(dupes)} appear twice in the header")
    missing = [c for c in columns if c not in header]
    if missing:
        raise _missing_error(str(path), missing, dataset)
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
