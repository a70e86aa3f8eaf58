"""Input errors that say what is wrong and how to fix it, and row numbers that agree."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _tokenise_data import AGREEMENT, HUB_HEADER, HUB_ROWS, plaintext_values, write_hub_csv

from wmw_link.errors import InputDataError
from wmw_link.keys import new_key
from wmw_link.tokenise import tokenise

TODAY = dt.date(2026, 6, 1)


@pytest.fixture
def keys(tmp_path):
    new_key(tmp_path / "link.key")
    new_key(tmp_path / "ref.key")
    return tmp_path / "link.key", tmp_path / "ref.key"


def _run(tmp_path, keys, src):
    return tokenise(
        AGREEMENT, "hub_birmingham", src, keys[0], keys[1], tmp_path / "out", today=TODAY
    )


def _error(tmp_path, keys, src) -> str:
    with pytest.raises(InputDataError) as info:
        _run(tmp_path, keys, src)
    msg = str(info.value)
    for value in plaintext_values():
        assert value not in msg, "an identifier value appears in the error"
    return msg


def _write(path, header, rows, **fmt):
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, **fmt)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize(("delimiter", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_other_separators_are_named(tmp_path, keys, delimiter, word):
    src = _write(tmp_path / "h.csv", HUB_HEADER, HUB_ROWS, delimiter=delimiter)
    msg = _error(tmp_path, keys, src)
    assert "rule 'columns': missing column(s) 'client_id'" in msg
    assert f"separated by {word}, not commas" in msg


def test_headerless_file_is_named(tmp_path, keys):
    msg = _error(tmp_path, keys, _write(tmp_path / "h.csv", None, HUB_ROWS))
    assert "rule 'columns'" in msg and "looks like data, not a header" in msg


def test_wrong_file_is_named(tmp_path, keys):
    msg = _error(tmp_path, keys, _write(tmp_path / "h.csv", ["a", "b"], [["x", "y"]]))
    assert "none of the agreement's columns are in the header" in msg
    assert "dataset 'hub_birmingham'" in msg


def test_case_and_spaces_in_headers_are_named(tmp_path, keys):
    header = [h.upper() if h == "date_of_birth" else h for h in HUB_HEADER]
    header = [f" {h} " if h == "postcode" else h for h in header]
    msg = _error(tmp_path, keys, _write(tmp_path / "h.csv", header, HUB_ROWS))
    assert "missing column(s) 'date_of_birth', 'postcode'" in msg
    assert "'DATE_OF_BIRTH' for 'date_of_birth'" in msg and "' postcode ' for 'postcode'" in msg
    assert "exactly, including case and spaces" in msg
    # The same hint for Parquet input.
    table = pa.table({h: [r[i] for r in HUB_ROWS] for i, h in enumerate(header)})
    pq.write_table(table, tmp_path / "h.parquet")
    msg = _error(tmp_path, keys, tmp_path / "h.parquet")
    assert "rule 'columns'" in msg and "'DATE_OF_BIRTH' for 'date_of_birth'" in msg


def test_ragged_row_numbers_agree_with_the_rejects(tmp_path, keys):
    src = write_hub_csv(tmp_path / "hub.csv")  # header + 9 data rows = lines 1 to 10
    text = src.read_text()
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(text + "\n" + "C011,John,Smith,03/04/1985,AB123456C\n")  # after a blank line
    msg = _error(tmp_path, keys, ragged)
    assert "rule 'csv': data row 10 (line 12)" in msg
    # A blank line is skipped in the rejects' row numbers too: the missing record id of data
    # row 6 (line 8 with a blank line before it) is row_number 6.
    lines = text.splitlines(keepends=True)
    blank = tmp_path / "blank.csv"
    blank.write_text("".join(lines[:3]) + "\n" + "".join(lines[3:]))
    res = _run(tmp_path, keys, blank)
    rejected = [r for r in pq.read_table(res.rejects).to_pylist() if r["action"] == "rejected"]
    assert {"row_number": 6, "column": "client_id", "reason": "missing_record_id",
            "action": "rejected"} in rejected  # fmt: skip


def test_bad_utf8_says_which_line_counting(tmp_path, keys):
    src = write_hub_csv(tmp_path / "hub.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(src.read_bytes() + b"C099,Zo\xeb,Smith\n")
    msg = _error(tmp_path, keys, bad)
    assert "line 11, the header being line 1" in msg
