"""Typed payload columns for the analysts, as the agreement and docs/contracts.md define them.

date -> date32, year -> int16, integer -> int64, number -> float64, boolean -> bool,
category / string / postcode_district -> string. A value that does not parse (or a category not
in the agreement's list) becomes null and is counted as ``payload.<name>:<reason>``. A year is
a year of birth (``birth_year``): it passes the date-of-birth rule of the identifier it comes
from (not in the future, at most 120 years ago), so the analysts never get a year the linkage
refused (``future_date``, ``age_out_of_range``).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.agreement import PayloadField, PayloadType
from wmw_link.normalise import Dates, blank_to_null, count_reasons, normalise_postcodes
from wmw_link.normalise.dates import INVALID_DATE, parse_date

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_NULL_STR = pa.scalar(None, pa.string())


class PayloadParser:
    """Parses one batch's payload columns; caches parsed dates across batches.

    Args:
        fields: the dataset's analyst payload fields.
        today: the date that years of birth must not be after (as for dates of birth).
    """

    def __init__(self, fields: list[PayloadField], today: dt.date | None = None) -> None:
        self.fields = fields
        self.today = today or dt.date.today()
        self._date_cache: dict[tuple[str, str], dt.date | None] = {}
        # Shares the process's date-of-birth parse cache: the same column is usually also
        # the date-of-birth identifier, so its values are parsed once.
        self._years: dict[str, Dates] = {}

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, arrow_type(f.type)) for f in self.fields])

    def _dates(self, raw: pa.Array, fmt: str) -> pa.Array:
        enc = pc.dictionary_encode(raw)
        out = []
        for v in enc.dictionary.to_pylist():
            key = (fmt, v)
            if key not in self._date_cache:
                self._date_cache[key] = parse_date(v, fmt)
            out.append(self._date_cache[key])
        return pc.take(pa.array(out, pa.date32()), enc.indices)

    def parse(
        self, batch: pa.RecordBatch
    ) -> tuple[list[pa.Array], list[tuple[str, int, pa.Array | None]]]:
        """Typed payload arrays in field order, and per field its label ``payload.<name>``, its
        number of non-empty values, and (when any value was nulled) a reason per row: null
        where the value is valid or missing, else why it was nulled."""
        arrays: list[pa.Array] = []
        notes: list[tuple[str, int, pa.Array | None]] = []
        for f in self.fields:
            raw = blank_to_null(batch.column(f.column))
            arr, why = self._one(f, raw)
            bad = pc.and_(pc.is_valid(raw), pc.is_null(arr))
            # Reasons per row only for the (rare) batches with a nulled value.
            n_bad = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
            reasons = None
            if n_bad:
                reasons = pc.if_else(
                    bad, why if isinstance(why, pa.Array) else pa.scalar(why), _NULL_STR
                )
            notes.append((f"payload.{f.name}", len(raw) - raw.null_count, reasons))
            arrays.append(arr)
        return arrays, notes

    def _one(self, f: PayloadField, raw: pa.Array) -> tuple[pa.Array, str | pa.Array]:
        """The typed array, and the reason for non-empty values that became null (one label,
        or an array of reasons per row)."""
        t = f.type
        if t == PayloadType.DATE:
            return self._dates(raw, f.format or ""), INVALID_DATE
        if t == PayloadType.YEAR:
            fmt = f.format or ""
            parser = self._years.get(fmt)
            if parser is None:
                parser = self._years[fmt] = Dates(fmt, self.today)
            n = parser(raw)
            return pc.cast(pc.year(n.values), pa.int16()), n.reasons
        if t == PayloadType.INTEGER:
            # At most 18 digits always fits int64, so the cast below cannot fail on a cell
            # (a failing cast would put the cell's value into pyarrow's error message).
            ok = pc.match_substring_regex(raw, r"^[+-]?0*[0-9]{1,18}$")
            return pc.cast(pc.if_else(ok, raw, _NULL_STR), pa.int64()), "invalid_integer"
        if t == PayloadType.NUMBER:
            ok = pc.match_substring_regex(
                raw, r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
            )
            num = pc.cast(pc.if_else(ok, raw, _NULL_STR), pa.float64())
            finite = pc.is_finite(num)  # 1e999 parses as inf: not a number anyone meant
            return pc.if_else(finite, num, pa.scalar(None, pa.float64())), "invalid_number"
        if t == PayloadType.BOOLEAN:
            low = pc.utf8_lower(raw)
            is_t = pc.is_in(low, pa.array(sorted(_TRUE)))
            is_f = pc.is_in(low, pa.array(sorted(_FALSE)))
            out = pc.if_else(is_t, True, pc.if_else(is_f, False, pa.scalar(None, pa.bool_())))
            return out, "invalid_boolean"
        if t == PayloadType.CATEGORY and f.categories is not None:
            # Case-insensitive match to the agreement's spelling of each category.
            cats = list(f.categories)
            idx = pc.index_in(pc.utf8_lower(raw), pa.array([c.lower() for c in cats]))
            return pc.take(pa.array(cats, pa.string()), idx), "not_a_category"
        if t == PayloadType.POSTCODE_DISTRICT:
            return normalise_postcodes(raw).district, "invalid_postcode"
        return raw, "invalid"


def arrow_type(t: PayloadType) -> pa.DataType:
    """The Arrow type of a payload column (docs/contracts.md)."""
    return {
        PayloadType.DATE: pa.date32(),
        PayloadType.YEAR: pa.int16(),
        PayloadType.INTEGER: pa.int64(),
        PayloadType.NUMBER: pa.float64(),
        PayloadType.BOOLEAN: pa.bool_(),
    }.get(t, pa.string())


__all__ = ["PayloadParser", "arrow_type", "count_reasons"]
