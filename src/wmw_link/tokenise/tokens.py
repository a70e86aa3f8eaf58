"""Keyed tokens: HMAC-SHA256 truncated to 64 bits, per domain and encoding, distinct values only.

A :class:`Hasher` holds one pre-keyed HMAC object per (domain, encoding) with the encoding tag
already absorbed; a token is the first 8 bytes of ``copy().update(value).digest()`` read as a
signed big-endian int64 (row references: the first 16 bytes as hex). The token columns of
each identifier are built over the *distinct* normalised values of a batch (names and dates
repeat a lot) and cached per process across batches, then spread back to rows with ``take``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import jellyfish
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from doublemetaphone import doublemetaphone

from wmw_link import token_schema as ts
from wmw_link.keys import SecretKey
from wmw_link.tokenise.bloom import BloomEncoder

_SEP = b"\x1f"
_ONE_DAY = dt.timedelta(days=1)
#: Per-process caches of token rows (one per distinct name or date) are cleared at this size,
#: so that memory stays bounded however large the extract (under 1 KiB per cached name; an
#: extract of a million people holds about 150,000 distinct forenames).
_ROW_CACHE_MAX = 200_000


class Hasher:
    """Pre-keyed HMACs for one agreement; tokens are int64, row references 32 hex characters."""

    def __init__(self, key: SecretKey, agreement_id: str) -> None:
        self._key = key
        self._agreement_id = agreement_id
        self._domains: dict[str, hmac.HMAC] = {}
        self._prefixed: dict[tuple[str, str], hmac.HMAC] = {}

    def _domain(self, domain: str) -> hmac.HMAC:
        h = self._domains.get(domain)
        if h is None:
            h = hmac.new(self._key.derive(self._agreement_id, domain), digestmod=hashlib.sha256)
            self._domains[domain] = h
        return h

    def digest(self, domain: str, data: bytes) -> bytes:
        """Full HMAC-SHA256 of raw bytes under the domain subkey (for Bloom positions)."""
        h = self._domain(domain).copy()
        h.update(data)
        return h.digest()

    def _prefixed_inner(self, domain: str, encoding: str) -> Any:
        base = self._prefixed.get((domain, encoding))
        if base is None:
            base = self._domain(domain).copy()
            base.update(encoding.encode("ascii") + _SEP)
            self._prefixed[(domain, encoding)] = base
        # The OpenSSL-backed object inside hmac.HMAC copies and digests without the Python
        # wrapper's per-call overhead (a third of the cost per token); same HMAC either way.
        return getattr(base, "_hmac", None) or base

    def tokenizer(self, domain: str, encoding: str) -> Callable[[str], int]:
        """A function value -> int64 token for one (domain, encoding)."""
        inner = self._prefixed_inner(domain, encoding)
        n = ts.TOKEN_BYTES
        from_bytes = int.from_bytes

        def token(value: str) -> int:
            h = inner.copy()
            h.update(value.encode("utf-8"))
            return from_bytes(h.digest()[:n], "big", signed=True)

        return token

    def ref_tokenizer(self, domain: str, encoding: str) -> RefTokenizer:
        """Record id -> row reference (32 hex characters) for one encoding."""
        return RefTokenizer(self._prefixed_inner(domain, encoding))

    def cached_tokenizer(
        self, domain: str, encoding: str, max_entries: int = 300_000
    ) -> CachedTokenizer:
        """Like :meth:`tokenizer`, remembering tokens of values seen before in this process.

        Names, name parts, phonetic codes and postcode parts repeat across batches; the cache
        is cleared when it reaches ``max_entries`` so that memory stays bounded.
        """
        return CachedTokenizer(self.tokenizer(domain, encoding), max_entries)


class RefTokenizer:
    """Row references: the first 16 bytes of the HMAC as hex. ``many`` avoids a Python call per
    record (every record id is distinct, so this runs once per row)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, value: str) -> str:
        return self.many([value])[0]

    def many(self, values: Sequence[str]) -> list[str]:
        copy, n = self._inner.copy, ts.ROW_REF_BYTES
        out = []
        for v in values:
            h = copy()
            h.update(v.encode("utf-8"))
            out.append(h.digest()[:n].hex())
        return out


class CachedTokenizer:
    """A tokenizer with a bounded cache; ``many`` looks a batch of values up in one loop."""

    def __init__(self, raw: Callable[[str], int], max_entries: int) -> None:
        self._raw = raw
        self._max = max_entries
        self._cache: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        hit = self._cache.get(value)
        if hit is None:
            if len(self._cache) >= self._max:
                self._cache.clear()
            hit = self._cache[value] = self._raw(value)
        return hit

    def many(self, values: Sequence[str]) -> list[int]:
        """Tokens of ``values`` (distinct values: each is hashed at most once)."""
        get = self._cache.get
        out = [get(v) for v in values]
        if len(self._cache) + len(values) >= self._max:
            self._cache.clear()
        cache, raw = self._cache, self._raw
        for i, t in enumerate(out):
            if t is None:
                v = values[i]
                out[i] = cache[v] = raw(v)
        return out


@lru_cache(maxsize=1)
def _nicknamer() -> object:
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=65_536)
def nickname_group(first_word: str) -> tuple[str, ...]:
    """The word and its canonical names in the ``nicknames`` table (Bill -> William, ...)."""
    canon = _nicknamer().canonicals_of(first_word)  # type: ignore[attr-defined]
    return tuple(sorted({first_word, *canon}))


class NameTokens:
    """Token columns of one name part (forename or surname) from normalised names."""

    def __init__(self, hasher: Hasher, part: str, bloom: BloomEncoder) -> None:
        self.part = part
        self.columns = [c for c in ts.columns_for([part])]
        if [c.kind for c in self.columns[-(ts.BLOOM_WORDS + 1) :]] != ["bloom_word"] * (
            ts.BLOOM_WORDS
        ) + ["bloom_popcount"]:
            raise RuntimeError("the token schema must end a name's columns with its Bloom filter")
        d = ts.DOMAIN_NAME
        # Cached: a one-word name's exact, first, last and only word are one string, and
        # phonetic codes, prefixes and initials are shared by many names.
        self._name = hasher.cached_tokenizer(d, "name")
        self._dm = hasher.cached_tokenizer(d, "dmetaphone")
        self._nysiis = hasher.cached_tokenizer(d, "nysiis")
        self._initial = hasher.cached_tokenizer(d, "initial")
        self._nick = hasher.cached_tokenizer(d, "nickname")
        self._bloom = bloom
        self._cache: dict[str, tuple[object, ...]] = {}

    def row(self, name: str) -> tuple[object, ...]:
        """All token values of one normalised name, in schema column order."""
        words, pop = self._bloom.encode(name)
        return (*self._hashed(name), *words, pop)

    def arrays(self, values: pa.Array) -> list[pa.Array]:
        """The token columns of a batch of normalised names (null stays null), in schema order.

        Hashed tokens are computed once per distinct name (and cached across batches); the
        Bloom filters of a batch's distinct names are built together with array operations.
        """
        enc = pc.dictionary_encode(values)
        distinct = enc.dictionary.to_pylist()
        hashed_cols = self.columns[: -(ts.BLOOM_WORDS + 1)]
        by_column = list(zip(*[self._hashed(v) for v in distinct], strict=True))
        by_column = by_column or [()] * len(hashed_cols)
        words, pop = self._bloom.encode_many(distinct)
        arrays = [pa.array(v, c.arrow_type) for v, c in zip(by_column, hashed_cols, strict=True)]
        arrays += [pa.array(words[:, w]) for w in range(ts.BLOOM_WORDS)]
        arrays.append(pa.array(pop))
        return [pc.take(a, enc.indices) for a in arrays]

    def _hashed(self, name: str) -> tuple[object, ...]:
        """The HMAC token values of one name (every column but the Bloom filter)."""
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        words = name.split(" ")
        key = words[0] if self.part == "forename" else "".join(words)
        codes = sorted({c for c in doublemetaphone(key) if c})
        out: list[object] = [self._name(name)]
        if self.part == "forename":
            out.append(self._name(words[0]))
        out += [
            sorted({self._name(w) for w in words}),
            sorted({self._dm(c) for c in codes}) or None,
            self._nysiis(jellyfish.nysiis(key)),
            self._initial(key[0]),
        ]
        if self.part == "forename":
            out.append(sorted({self._nick(n) for n in nickname_group(words[0])}))
        result = tuple(out)
        if len(self._cache) >= _ROW_CACHE_MAX:
            self._cache.clear()  # bounded memory on very large extracts
        self._cache[name] = result
        return result


class DateTokens:
    """Token columns of dates of birth."""

    def __init__(self, hasher: Hasher) -> None:
        self.columns = ts.columns_for(["date_of_birth"])
        d = ts.DOMAIN_DOB
        # Cached: a date's exact token is its neighbours' prev/next token and maybe a swap, and
        # the date parts repeat across many dates.
        self._date = hasher.cached_tokenizer(d, "date")
        self._ym = hasher.cached_tokenizer(d, "ym")
        self._yd = hasher.cached_tokenizer(d, "yd")
        self._md = hasher.cached_tokenizer(d, "md")
        self._year = hasher.cached_tokenizer(d, "year")
        self._cache: dict[dt.date, tuple[object, ...]] = {}

    @staticmethod
    def swapped(d: dt.date) -> dt.date | None:
        """The date with day and month swapped, when that is a different valid date."""
        if d.day > 12 or d.day == d.month:
            return None
        try:
            return d.replace(month=d.day, day=d.month)
        except ValueError:
            return None

    def row(self, d: dt.date) -> tuple[object, ...]:
        hit = self._cache.get(d)
        if hit is not None:
            return hit
        sw = self.swapped(d)
        prev = d - _ONE_DAY
        try:
            nxt: dt.date | None = d + _ONE_DAY
        except OverflowError:
            nxt = None
        result = (
            self._date(d.isoformat()),
            self._date(sw.isoformat()) if sw else None,
            self._date(prev.isoformat()),
            self._date(nxt.isoformat()) if nxt else None,
            self._ym(f"{d.year:04d}-{d.month:02d}"),
            self._yd(f"{d.year:04d}-{d.day:02d}"),
            self._md(f"{d.month:02d}-{d.day:02d}"),
            self._year(f"{d.year:04d}"),
        )
        if len(self._cache) >= _ROW_CACHE_MAX:
            self._cache.clear()
        self._cache[d] = result
        return result


#: Row references travel from workers and into Parquet as dictionary arrays (indices into the
#: batch's distinct refs): a third of the bytes to pickle, and the Parquet writer takes the
#: dictionary as it is. Files read back as strings.
WIRE_STRING = pa.dictionary(pa.int32(), pa.string())


def as_dictionary(tokens: pa.Array, indices: pa.Array) -> pa.Array:
    """Rows of ``tokens`` at ``indices`` as a dictionary array; null tokens give null rows.

    The dictionary is made unique (many names share one initial or phonetic code) and free of
    nulls, and null rows get index 0 under a validity mask (not whatever a kernel left in a
    null slot): the Parquet writer then writes the same bytes for the same data every time.
    """
    n = len(indices)
    if len(tokens) == 0:
        return pa.nulls(n, WIRE_STRING)
    unique = pc.dictionary_encode(tokens)
    composed = pc.take(unique.indices, indices)
    null_rows = pc.is_null(composed).to_numpy(zero_copy_only=False)
    if len(unique.dictionary) == 0:
        return pa.nulls(n, WIRE_STRING)
    idx = pc.fill_null(composed, 0).to_numpy(zero_copy_only=False).astype(np.int32)
    return pa.DictionaryArray.from_arrays(
        pa.array(idx, pa.int32(), mask=null_rows), unique.dictionary
    )


def spread(
    values: pa.Array,
    row_fn: Callable[[object], tuple[object, ...]],
    columns: Sequence[ts.TokenColumn],
) -> list[pa.Array]:
    """Compute ``row_fn`` once per distinct non-null value and spread the columns to rows."""
    enc = pc.dictionary_encode(values)
    distinct = enc.dictionary.to_pylist()
    by_column = list(zip(*[row_fn(v) for v in distinct], strict=True)) or [()] * len(columns)
    return [
        pc.take(pa.array(values, col.arrow_type), enc.indices)
        for values, col in zip(by_column, columns, strict=True)
    ]


def simple_tokens(values: pa.Array, token: Callable[[str], int]) -> pa.Array:
    """One int64 token column from a string array (distinct values hashed once; nulls stay
    null)."""
    enc = pc.dictionary_encode(values)
    distinct = enc.dictionary.to_pylist()
    many = getattr(token, "many", None)
    tokens = many(distinct) if many else [token(v) for v in distinct]
    return pc.take(pa.array(tokens, pa.int64()), enc.indices)


def ref_tokens(values: pa.Array, token: RefTokenizer) -> pa.Array:
    """Row references from record ids, as a dictionary array (:data:`WIRE_STRING`)."""
    enc = pc.dictionary_encode(values)
    arr = pa.array(token.many(enc.dictionary.to_pylist()), pa.string())
    return as_dictionary(arr, enc.indices)
