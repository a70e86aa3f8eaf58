"""National Insurance number validation; temporary and administrative numbers are missing."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.normalise._base import Normalised, blank_to_null, reasons_where

INVALID_FORMAT = "invalid_format"
INVALID_PREFIX = "invalid_prefix"
TEMPORARY = "temporary_number"
ADMINISTRATIVE = "administrative_number"

_FORMAT = r"^[A-Z]{2}[0-9]{6}[A-D]?$"
# HMRC: the first letter is not D, F, I, Q, U or V; the second is not those nor O; some pairs
# are never issued.
_BAD_PREFIX = r"^(?:[DFIQUV].|.[DFIQUVO]|BG|GB|KN|NK|NT|ZZ)"
# Temporary reference numbers (TN + date of birth + sex letter) identify nobody for linkage.
_TEMPORARY = r"^TN"
# Prefixes HMRC and DWP use for administrative (not personal) numbers.
_ADMIN = r"^(?:OO|CR|FY|MW|NC|PP|PY|PZ)"


def normalise_ninos(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    """Validate NINos and normalise them to the eight characters before the suffix.

    ``ab 12 34 56 c`` -> ``AB123456``. The suffix (A-D, optional) is dropped because sources
    disagree on it for the same person.

    Returns:
        Normalised values; reasons ``missing``, ``temporary_number``, ``invalid_format``,
        ``administrative_number`` or ``invalid_prefix``.
    """
    raw = blank_to_null(arr)
    s = pc.replace_substring_regex(pc.utf8_upper(raw), r"[\s\-]", "")
    temporary = pc.match_substring_regex(s, _TEMPORARY)
    fmt_ok = pc.match_substring_regex(s, _FORMAT)
    admin = pc.match_substring_regex(s, _ADMIN)
    bad_prefix = pc.match_substring_regex(s, _BAD_PREFIX)
    reasons = reasons_where(
        raw,
        [
            (temporary, TEMPORARY),
            (pc.invert(fmt_ok), INVALID_FORMAT),
            (admin, ADMINISTRATIVE),
            (bad_prefix, INVALID_PREFIX),
        ],
        pc.is_null(raw),
    )
    values = pc.if_else(
        pc.is_null(reasons), pc.utf8_slice_codeunits(s, 0, 8), pa.scalar(None, pa.string())
    )
    return Normalised(values, reasons)
