"""Generic identifiers for any partner's extract: exact ids, free text, non-UK postcodes.

No format is checked (a passport number, an address line or an Australian postcode has no
rule wmw-link could know); a value is invalid only when nothing usable is left after
normalising it. Like names, other scripts are transliterated to ASCII first.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.normalise._base import MISSING, Normalised, blank_to_null
from wmw_link.normalise.names import _to_ascii

NO_CHARACTERS = "no_characters"


def _finish(raw: pa.Array, s: pa.Array) -> Normalised:
    empty = pc.fill_null(pc.equal(s, ""), False)
    values = pc.if_else(empty, pa.scalar(None, pa.string()), s)
    reasons = pc.if_else(
        pc.is_null(raw),
        pa.scalar(MISSING),
        pc.if_else(empty, pa.scalar(NO_CHARACTERS), pa.scalar(None, pa.string())),
    )
    return Normalised(values, reasons)


def _compact(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    raw = blank_to_null(arr)
    s = pc.utf8_upper(_to_ascii(raw))
    return _finish(raw, pc.replace_substring_regex(s, r"[^A-Z0-9]+", ""))


def normalise_identifiers(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    """Normalise exact ids (``identifier``): ASCII, upper case, everything but letters and
    digits removed (``ab-123 456`` -> ``AB123456``). Idempotent.

    Returns:
        Normalised values; reasons ``missing`` or ``no_characters`` (no letter or digit).
    """
    return _compact(arr)


def normalise_any_postcodes(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    """Normalise postcodes of any country (``postcode`` with ``country: any``): as
    :func:`normalise_identifiers`, with no format check and no sector or district.

    Returns:
        Normalised values; reasons ``missing`` or ``no_characters``.
    """
    return _compact(arr)


def normalise_texts(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    """Normalise free text (``text``): ASCII, lower case, apostrophes dropped, other
    characters but letters and digits to single spaces (``12, O'Hara St.`` -> ``12 ohara
    st``). Idempotent.

    Returns:
        Normalised values; reasons ``missing`` or ``no_characters`` (no letter or digit).
    """
    raw = blank_to_null(arr)
    s = pc.utf8_lower(_to_ascii(raw))
    s = pc.replace_substring_regex(s, r"['`]", "")
    s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r"[^a-z0-9]+", " "))
    return _finish(raw, s)


__all__ = ["NO_CHARACTERS", "normalise_any_postcodes", "normalise_identifiers", "normalise_texts"]
