"""UK postcode normalisation (``OUT IN``) with sector and district."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.normalise._base import MISSING, Normalised, blank_to_null

INVALID_FORMAT = "invalid_format"

# Outward code: A9, A99, AA9, AA99, A9A, AA9A (and the special GIR); inward: 9AA.
_PATTERN = (
    r"^(?P<out>[A-PR-UWYZ][0-9][0-9A-HJKMNPR-Y]?|[A-PR-UWYZ][A-HK-Y][0-9][0-9ABEHMNPRVWXY]?|GIR)"
    r"(?P<in>[0-9][ABD-HJLNP-UW-Z]{2})$"
)


@dataclass(frozen=True)
class Postcodes:
    """Normalised postcodes and their parts (all null where the postcode is invalid)."""

    unit: Normalised  # "B15 2TT"
    sector: pa.Array  # "B15 2"
    district: pa.Array  # "B15"


def normalise_postcodes(arr: pa.Array | pa.ChunkedArray) -> Postcodes:
    """Normalise UK postcodes: upper case, spaces and punctuation removed, format checked.

    Returns:
        :class:`Postcodes`; reasons ``missing`` or ``invalid_format``.
    """
    raw = blank_to_null(arr)
    compact = pc.replace_substring_regex(pc.utf8_upper(raw), r"[^A-Z0-9]", "")
    parts = pc.extract_regex(compact, _PATTERN)
    valid = pc.fill_null(pc.is_valid(parts), False)
    outward = pc.if_else(valid, pc.struct_field(parts, "out"), pa.scalar(None, pa.string()))
    inward = pc.if_else(valid, pc.struct_field(parts, "in"), pa.scalar(None, pa.string()))
    unit = pc.binary_join_element_wise(outward, inward, " ")
    sector = pc.binary_join_element_wise(outward, pc.utf8_slice_codeunits(inward, 0, 1), " ")
    reasons = pc.if_else(
        pc.is_null(raw),
        pa.scalar(MISSING),
        pc.if_else(valid, pa.scalar(None, pa.string()), pa.scalar(INVALID_FORMAT)),
    )
    return Postcodes(Normalised(unit, reasons), sector, outward)
