"""Identifier normalisation and validation, one module per identifier type.

Every normaliser takes an Arrow string array (a column, or the distinct values of one) and
returns a :class:`Normalised`: the normalised values (null where missing or invalid) and, for
each null, the reason (``missing``, ``invalid_format``, ...). Invalid values are never guessed.
Reasons are fixed labels and never contain the value.
"""

from __future__ import annotations

from wmw_link.normalise._base import Normalised, blank_to_null, count_reasons
from wmw_link.normalise.dates import Dates, normalise_dates
from wmw_link.normalise.generic import (
    normalise_any_postcodes,
    normalise_identifiers,
    normalise_texts,
)
from wmw_link.normalise.names import normalise_names, split_full_names
from wmw_link.normalise.nhs import normalise_nhs_numbers
from wmw_link.normalise.nino import normalise_ninos
from wmw_link.normalise.postcodes import Postcodes, normalise_postcodes
from wmw_link.normalise.sex import normalise_sex

__all__ = [
    "Dates",
    "Normalised",
    "Postcodes",
    "blank_to_null",
    "count_reasons",
    "normalise_any_postcodes",
    "normalise_dates",
    "normalise_identifiers",
    "normalise_names",
    "normalise_nhs_numbers",
    "normalise_ninos",
    "normalise_postcodes",
    "normalise_sex",
    "normalise_texts",
    "split_full_names",
]
