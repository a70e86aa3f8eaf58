"""Sex / gender normalisation to ``f``, ``m`` or ``x`` (other); unknown values become null."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.normalise._base import MISSING, Normalised, blank_to_null

NOT_KNOWN = "not_known"
UNRECOGNISED = "unrecognised"

_CODES = {
    "f": "f", "female": "f", "woman": "f", "girl": "f", "2": "f",
    "m": "m", "male": "m", "man": "m", "boy": "m", "1": "m",
    "x": "x", "other": "x", "indeterminate": "x", "i": "x", "3": "x", "non binary": "x",
    "nonbinary": "x", "non-binary": "x",
}  # fmt: skip
_NOT_KNOWN = {
    "u", "unknown", "not known", "not stated", "not specified", "prefer not to say",
    "refused", "0", "9", "n/a", "na",
}  # fmt: skip


def normalise_sex(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    """Map sex codes (NHS data dictionary 1/2/9/0, words, single letters) to ``f``/``m``/``x``.

    Returns:
        Normalised values; reasons ``missing``, ``not_known`` or ``unrecognised``.
    """
    raw = blank_to_null(arr)
    key = pc.utf8_lower(pc.replace_substring_regex(raw, r"\s+", " "))
    d = pc.dictionary_encode(key)
    words = d.dictionary.to_pylist()
    vals = pa.array([_CODES.get(w) for w in words], pa.string())
    why = pa.array(
        [None if w in _CODES else (NOT_KNOWN if w in _NOT_KNOWN else UNRECOGNISED) for w in words],
        pa.string(),
    )
    values = pc.take(vals, d.indices)
    reasons = pc.if_else(pc.is_null(raw), pa.scalar(MISSING), pc.take(why, d.indices))
    return Normalised(values, reasons)
