"""Date-of-birth parsing and validation with the agreement's strptime format."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.normalise._base import MISSING, Normalised, blank_to_null

INVALID_DATE = "invalid_date"
FUTURE_DATE = "future_date"
AGE_OUT_OF_RANGE = "age_out_of_range"

#: Oldest plausible age in years; older birth dates are typing errors (1899 for 1989).
MAX_AGE_YEARS = 120


_CACHE_MAX = 500_000
_SHARED_CACHES: dict[tuple[str, dt.date, int], dict[str, tuple[dt.date | None, str | None]]] = {}


@dataclass
class Dates:
    """Parser for one strptime format with a cache of distinct raw values.

    Dates repeat a lot (tens of thousands of distinct values in millions of rows), so each
    distinct string is parsed once per process with :meth:`datetime.datetime.strptime`, which
    is strict: no 31 February, no month 13.
    """

    fmt: str
    today: dt.date
    max_age: int = MAX_AGE_YEARS

    def __post_init__(self) -> None:
        # Shared by every parser of the same format, day and age limit in this process
        # (datasets in one run repeat each other's dates); bounded.
        self._cache = _SHARED_CACHES.setdefault((self.fmt, self.today, self.max_age), {})
        if len(self._cache) > _CACHE_MAX:
            self._cache.clear()
        try:
            self._oldest = self.today.replace(year=self.today.year - self.max_age)
        except ValueError:  # 29 February
            self._oldest = self.today.replace(year=self.today.year - self.max_age, day=28)

    def parse_one(self, text: str) -> tuple[dt.date | None, str | None]:
        """(date, None) or (None, reason) for one trimmed, non-empty string."""
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        try:
            d: dt.date | None = dt.datetime.strptime(text, self.fmt).date()
            why: str | None = None
        except ValueError:
            d, why = None, INVALID_DATE
        if d is not None and d > self.today:
            d, why = None, FUTURE_DATE
        elif d is not None and d < self._oldest:
            d, why = None, AGE_OUT_OF_RANGE
        self._cache[text] = (d, why)
        return d, why

    def __call__(self, arr: pa.Array | pa.ChunkedArray) -> Normalised:
        """Parse a column of dates.

        Returns:
            date32 values; reasons ``missing``, ``invalid_date``, ``future_date`` or
            ``age_out_of_range``.
        """
        raw = blank_to_null(arr)
        d = pc.dictionary_encode(raw)
        parsed = [self.parse_one(v) for v in d.dictionary.to_pylist()]
        vals = pa.array([p[0] for p in parsed], pa.date32())
        why = pa.array([p[1] for p in parsed], pa.string())
        values = pc.take(vals, d.indices)
        reasons = pc.if_else(pc.is_null(raw), pa.scalar(MISSING), pc.take(why, d.indices))
        return Normalised(values, reasons)


def normalise_dates(
    arr: pa.Array | pa.ChunkedArray, fmt: str, today: dt.date | None = None
) -> Normalised:
    """Parse dates of birth with strptime format ``fmt`` (see :class:`Dates`)."""
    return Dates(fmt, today or dt.date.today())(arr)
