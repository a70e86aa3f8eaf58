"""Keyed tokens: HMAC-SHA256 truncated to 64 bits, a subkey per token column, distinct values only.

A :class:`Hasher` holds one HMAC object per HKDF domain (token schema v3: one per column); a
token is the first 8 bytes of the HMAC of a value read as a signed big-endian int64 (row
references: the first 16 bytes as hex). :func:`composite_tokens` hashes the composites of
:mod:`wmw_link.tokenise.composites` once per distinct value of a batch.

The HMAC is ``cryptography``'s (OpenSSL): a pre-keyed object is copied per value, which saves
hashing the key pads each time. Values go in as the bytes Arrow already holds and the digests
come out as one buffer that numpy reads as big-endian integers, so a value costs one Python
loop step of three calls (``copy``, ``update``, ``finalize``) and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from wmw_link import token_schema as ts
from wmw_link.keys import SecretKey

_SEP = b"\x1f"
_DIGEST = 32  # SHA-256
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _as_bytes(values: pa.Array | Sequence[str]) -> Sequence[bytes]:
    """The UTF-8 bytes of non-null strings (an Arrow array's own bytes, without decoding)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        large = pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type)
        as_bytes = pc.cast(values, pa.large_binary() if large else pa.binary())
        return as_bytes.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
    return [v.encode("utf-8") for v in values]


def _digests(base: crypto_hmac.HMAC, values: pa.Array | Sequence[str]) -> np.ndarray:
    """HMACs of non-null strings under a pre-keyed object, as an (n, 32) uint8 array."""
    copy = base.copy
    out: list[bytes] = []
    append = out.append
    for v in _as_bytes(values):
        h = copy()
        h.update(v)
        append(h.finalize())
    if not out:
        return np.zeros((0, _DIGEST), dtype=np.uint8)
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(-1, _DIGEST)


def _int64_tokens(digests: np.ndarray) -> np.ndarray:
    """The first :data:`TOKEN_BYTES` of each digest as a signed big-endian int64."""
    first = np.ascontiguousarray(digests[:, : ts.TOKEN_BYTES])
    return first.view(">i8").reshape(-1).astype(np.int64)


def _hex_refs(digests: np.ndarray) -> pa.Array:
    """The first :data:`ROW_REF_BYTES` of each digest as lower-case hex, one string each."""
    first = digests[:, : ts.ROW_REF_BYTES]
    chars = np.empty((len(first), 2 * ts.ROW_REF_BYTES), dtype=np.uint8)
    chars[:, 0::2] = _HEX[first >> 4]
    chars[:, 1::2] = _HEX[first & 0x0F]
    width = 2 * ts.ROW_REF_BYTES
    offsets = np.arange(0, width * len(first) + 1, width, dtype=np.int32)
    return pa.StringArray.from_buffers(
        len(first), pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())
    )


class Hasher:
    """Pre-keyed HMACs for one agreement; tokens are int64, row references 32 hex characters."""

    def __init__(self, key: SecretKey, agreement_id: str) -> None:
        self._key = key
        self._agreement_id = agreement_id
        self._domains: dict[str, crypto_hmac.HMAC] = {}
        self._prefixed: dict[tuple[str, str], crypto_hmac.HMAC] = {}

    def _domain(self, domain: str) -> crypto_hmac.HMAC:
        h = self._domains.get(domain)
        if h is None:
            h = crypto_hmac.HMAC(self._key.derive(self._agreement_id, domain), hashes.SHA256())
            self._domains[domain] = h
        return h

    def derive(self, domain: str) -> bytes:
        """The raw HKDF subkey of a domain (for keys that are not HMAC tokens, e.g. Bloom
        permutations)."""
        return self._key.derive(self._agreement_id, domain)

    def _prefixed_inner(self, domain: str, encoding: str) -> crypto_hmac.HMAC:
        base = self._prefixed.get((domain, encoding))
        if base is None:
            base = self._domain(domain).copy()
            if encoding:
                base.update(encoding.encode("ascii") + _SEP)
            self._prefixed[(domain, encoding)] = base
        return base

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

    def __init__(self, inner: crypto_hmac.HMAC) -> None:
        self._inner = inner

    def __call__(self, value: str) -> int:
        return self.many([value])[0]

    def array(self, values: pa.Array | Sequence[str]) -> np.ndarray:
        """Tokens of non-null strings as an int64 array."""
        return _int64_tokens(_digests(self._inner, values))

    def many(self, values: Sequence[str]) -> list[int]:
        return self.array(values).tolist()  # type: ignore[no-any-return]


class RefTokenizer:
    """Row references: the first 16 bytes of the HMAC as hex. ``array`` runs one loop over a
    batch (every record id is distinct, so this runs once per row)."""

    def __init__(self, inner: crypto_hmac.HMAC) -> None:
        self._inner = inner

    def __call__(self, value: str) -> str:
        return self.many([value])[0]

    def array(self, values: pa.Array | Sequence[str]) -> pa.Array:
        """Row references of non-null strings as a string array."""
        return _hex_refs(_digests(self._inner, values))

    def many(self, values: Sequence[str]) -> list[str]:
        return self.array(values).to_pylist()  # type: ignore[no-any-return]


class CachedTokenizer:
    """A tokenizer with a bounded cache; ``array`` looks a batch of values up in one loop."""

    def __init__(self, raw: Tokenizer, max_entries: int) -> None:
        self._raw = raw
        self._max = max_entries
        self._cache: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        return self.many([value])[0]

    def many(self, values: Sequence[str]) -> list[int]:
        return self.array(pa.array(values, pa.string())).tolist()  # type: ignore[no-any-return]

    def array(self, values: pa.Array) -> np.ndarray:
        """Tokens of distinct non-null strings (each is hashed at most once) as int64."""
        keys = values.to_pylist()
        get = self._cache.get
        found = [get(v) for v in keys]
        if len(self._cache) + len(keys) >= self._max:
            self._cache.clear()
        missing = [i for i, t in enumerate(found) if t is None]
        out = np.array([0 if t is None else t for t in found], dtype=np.int64)
        if missing:
            idx = np.array(missing, dtype=np.int64)
            fresh = self._raw.array(values.take(pa.array(idx)))
            out[idx] = fresh
            self._cache.update(zip([keys[i] for i in missing], fresh.tolist(), strict=True))
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
    array = getattr(token, "array", None)
    if array is not None:
        tokens = pa.array(array(enc.dictionary), pa.int64())
    else:
        tokens = pa.array([token(v) for v in enc.dictionary.to_pylist()], pa.int64())
    return pc.take(tokens, enc.indices)


def ref_tokens(values: pa.Array, token: RefTokenizer) -> pa.Array:
    """Row references from record ids, as a dictionary array (:data:`WIRE_STRING`)."""
    enc = pc.dictionary_encode(values)
    return as_dictionary(token.array(enc.dictionary), enc.indices)


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
