"""Partner-specific formatting: dates, names, postcodes, NINo and NHS number layouts.

Formatting a million dates one ``strftime`` at a time is too slow, so each format has a lookup
table of every day from 1935 to 2030 and dates are formatted by indexing into it.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.synth.events import NO_DATE

_EPOCH = dt.date(1970, 1, 1)
_FIRST = (dt.date(1935, 1, 1) - _EPOCH).days
_LAST = (dt.date(2030, 12, 31) - _EPOCH).days


@lru_cache(maxsize=16)
def _table(fmt: str) -> np.ndarray:
    return np.array(
        [(_EPOCH + dt.timedelta(days=d)).strftime(fmt) for d in range(_FIRST, _LAST + 1)],
        dtype=object,
    )


def dates(days: np.ndarray, fmt: str) -> pa.Array:
    """Format day numbers with a strptime/strftime pattern; :data:`NO_DATE` becomes null."""
    missing = days == NO_DATE
    idx = np.clip(days - _FIRST, 0, _LAST - _FIRST)
    out = _table(fmt)[idx]
    return pa.array(np.where(missing, None, out), type=pa.string())


def strings(values: np.ndarray) -> pa.Array:
    """An object array (None = missing) as an Arrow string array."""
    return pa.array(values, type=pa.string())


def upper(a: pa.Array) -> pa.Array:
    """Upper-case every value."""
    return pc.utf8_upper(a)


def no_space(a: pa.Array) -> pa.Array:
    """Remove every space (``B23 4XY`` -> ``B234XY``)."""
    return pc.replace_substring(a, " ", "")


def choose(mask: np.ndarray, a: pa.Array, b: pa.Array) -> pa.Array:
    """Element-wise ``a if mask else b``."""
    return pc.if_else(pa.array(mask, type=pa.bool_()), a, b)


def mixed_case(a: pa.Array, lower_mask: np.ndarray, upper_mask: np.ndarray) -> pa.Array:
    """Some values lower-case, some upper-case (as typed by different advisers)."""
    a = pc.if_else(pa.array(lower_mask), pc.utf8_lower(a), a)
    return pc.if_else(pa.array(upper_mask), pc.utf8_upper(a), a)


def spaced_nino(a: pa.Array) -> pa.Array:
    """``AB123456C`` -> ``AB 12 34 56 C`` (how DWP systems print it)."""
    parts = [pc.utf8_slice_codeunits(a, i, j) for i, j in ((0, 2), (2, 4), (4, 6), (6, 8), (8, 9))]
    return pc.binary_join_element_wise(*parts, " ")


def spaced_nhs(a: pa.Array) -> pa.Array:
    """``9434765919`` -> ``943 476 5919`` (the NHS display format)."""
    parts = [pc.utf8_slice_codeunits(a, i, j) for i, j in ((0, 3), (3, 6), (6, 10))]
    return pc.binary_join_element_wise(*parts, " ")


def pounds(values: np.ndarray) -> pa.Array:
    """Money with two decimals, e.g. ``2145.07``."""
    if len(values) == 0:  # numpy's string functions cannot size an empty result
        return pa.array([], type=pa.string())
    pence = np.round(values * 100).astype(np.int64)
    whole = (pence // 100).astype(str)
    frac = np.strings.zfill((pence % 100).astype(str), 2)
    return pa.array(np.strings.add(np.strings.add(whole, "."), frac), type=pa.string())


def padded(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Record ids such as ``CL00001234``."""
    if len(numbers) == 0:
        return pa.array([], type=pa.string())
    return pa.array(
        np.strings.add(prefix, np.strings.zfill(numbers.astype(str), width)), type=pa.string()
    )
