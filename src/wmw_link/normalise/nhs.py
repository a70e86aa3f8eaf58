"""NHS number validation: ten digits with the modulus-11 check digit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.normalise._base import Normalised, blank_to_null, reasons_where

INVALID_FORMAT = "invalid_format"
BAD_CHECK_DIGIT = "bad_check_digit"
PLACEHOLDER = "placeholder"

_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)  # 10, 9, ..., 2 for the first nine digits


def _check_digit_ok(digits: pa.Array) -> np.ndarray:
    """Modulus-11 check of ten-digit strings (nulls give False)."""
    n = len(digits)
    ok = np.zeros(n, dtype=bool)
    valid = pc.fill_null(pc.match_substring_regex(digits, r"^[0-9]{10}$"), False)
    idx = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
    if idx.size == 0:
        return ok
    chosen = pc.take(digits, pa.array(idx))
    buf = "".join(chosen.to_pylist()).encode("ascii")
    d = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 10).astype(np.int64) - 48
    rem = (d[:, :9] @ _WEIGHTS) % 11
    check = 11 - rem
    check[check == 11] = 0
    ok[idx] = (check != 10) & (check == d[:, 9])
    return ok


def normalise_nhs_numbers(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    """Validate NHS numbers (spaces and hyphens allowed in the input).

    Returns:
        Ten-digit strings; reasons ``missing``, ``invalid_format``, ``placeholder`` (one digit
        repeated, e.g. ``0000000000``, which passes the check) or ``bad_check_digit``.
    """
    raw = blank_to_null(arr)
    s = pc.replace_substring_regex(raw, r"[\s\-]", "")
    fmt_ok = pc.match_substring_regex(s, r"^[0-9]{10}$")
    placeholder = pc.match_substring_regex(
        s, r"^(?:0{10}|1{10}|2{10}|3{10}|4{10}|5{10}|6{10}|7{10}|8{10}|9{10})$"
    )
    check_ok = pa.array(_check_digit_ok(s))
    reasons = reasons_where(
        raw,
        [
            (pc.invert(fmt_ok), INVALID_FORMAT),
            (placeholder, PLACEHOLDER),
            (pc.invert(check_ok), BAD_CHECK_DIGIT),
        ],
        pc.is_null(raw),
    )
    values = pc.if_else(pc.is_null(reasons), s, pa.scalar(None, pa.string()))
    return Normalised(values, reasons)
