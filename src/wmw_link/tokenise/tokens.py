"""Keyed tokens: HMAC-SHA256 truncated to 64 bits, a subkey per token column, distinct values only.

A :class:`Hasher` holds one HMAC object per HKDF domain (token schema v3: one per column); a
token is the first 8 bytes of ``copy().update(value).digest()`` read as a signed big-endian
int64 (row references: the first 16 bytes as hex). :func:`composite_tokens` hashes the
composites of :mod:`wmw_link.tokenise.composites` once per distinct value of a batch.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wmw_link import token_schema as ts
from wmw_link.keys import SecretKey

_SEP = b"\x1f"


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

    def derive(self, domain: str) -> bytes:
        """The raw HKDF subkey of a domain (for keys that are not HMAC tokens, e.g. Bloom
        permutations)."""
        return self._key.derive(self._agreement_id, domain)

    def _prefixed_inner(self, domain: str, encoding: str) -> Any:
        base = self._prefixed.get((domain, encoding))
        if base is None:
            base = self._domain(domain).copy()
            if encoding:
                base.update(encoding.encode("ascii") + _SEP)
            self._prefixed[(domain, encoding)] = base
        # The OpenSSL-backed object inside hmac.HMAC copies and digests without the Python
        # wrapper's per-call overhead (a third of the cost per token); same HMAC either way.
        return getattr(base, "_hmac", None) or base

    def tokenizer(self, domain: str, encoding: str = "") -> Tokenizer:
        """A function value -> int64 token for one domain (and, for row refs, an encoding tag
        hashed in front of the value); ``many`` hashes a list in one loop."""
        return Tokenizer(self._prefixed_inner(domain, encoding))

    def ref_tokenizer(self, domain: str, encoding: str) -> RefTokenizer:
        """Record id -> row reference (32 hex characters) for one encoding."""
        return RefTokenizer(self._prefixed_inner(domain, encoding))

    def cached_tokenizer(
        self, domain: str, encoding: str = "", max_entries: int = 300_000
    ) -> CachedTokenizer:
        """Like :meth:`tokenizer`, remembering tokens of values seen before in this process.

        NINos and NHS numbers repeat across batches of one extract (several records per
        person); the cache is cleared when it reaches ``max_entries`` so that memory stays
        bounded.
        """
        return CachedTokenizer(self.tokenizer(domain, encoding), max_entries)


class Tokenizer:
    """Value -> int64 token under one pre-keyed HMAC."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, value: str) -> int:
        return self.many([value])[0]

    def many(self, values: Sequence[str]) -> list[int]:
        # One loop without a Python call per value: the call cost as much as the HMAC.
        copy, n, from_bytes = self._inner.copy, ts.TOKEN_BYTES, int.from_bytes
        out = []
        for v in values:
            h = copy()
            h.update(v.encode("utf-8"))
            out.append(from_bytes(h.digest()[:n], "big", signed=True))
        return out


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

    def __init__(self, raw: Tokenizer, max_entries: int) -> None:
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
        missing = [i for i, t in enumerate(out) if t is None]
        fresh = self._raw.many([values[i] for i in missing])
        cache = self._cache
        for i, t in zip(missing, fresh, strict=True):
            out[i] = cache[values[i]] = t
        return out


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


def composite_tokens(values: pa.Array, token: Callable[[str], int]) -> pa.Array:
    """Tokens of one composite column: int64 for a string array, list<int64> for a list array.

    Each distinct value is hashed once. A list's tokens are sorted numerically, so their order
    says nothing about the order of the plaintext values.
    """
    if not pa.types.is_list(values.type):
        return simple_tokens(values, token)
    flat = simple_tokens(pc.list_flatten(values), token).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(values).to_numpy(zero_copy_only=False)
    order = np.lexsort((flat, parents))
    lengths = pc.list_value_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(flat[order], pa.int64()), mask=pc.is_null(values)
    )
