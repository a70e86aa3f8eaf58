"""Salted, balanced Bloom filters of a name's padded character bigrams (token schema v3).

Hardening, after Schnell, Ranbaduge and Christen's reviews of Bloom-filter attacks:

* **Keyed positions per name part.** Each bigram sets one of ``BLOOM_RAW_BITS`` positions:
  the first 8 bytes of HMAC-SHA256 under the part's own subkey, modulo the width. Forenames and
  surnames never share a map.
* **Balancing.** The raw filter is concatenated with its complement, so every filter has exactly
  ``BLOOM_SET_BITS`` bits set: bit counts say nothing about a name's length.
* **Salting with the date of birth.** The balanced filter's bits are permuted by a permutation
  keyed with the salt: the ChaCha20 keystream (``cryptography``) under ``HMAC(perm subkey,
  salt)`` gives a random number per position and their sort order is the permutation. Filters
  of people born on different days live in unrelated bit spaces, so frequency and pattern
  mining sees only the handful of names that share a date of birth.

Two filters of the same salt share ``BLOOM_SET_BITS - d`` set bits, ``d`` being the number of
raw positions where the names' filters differ (a changed character changes about two bigrams,
so ``d`` is about 4); filters of different salts share about half their bits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from wmw_link import token_schema as ts
from wmw_link.tokenise.composites import bigrams

_NONCE = bytes(16)
#: Per-process caches are cleared at these sizes (bounded memory on any extract).
_MAX_POSITIONS = 100_000
_MAX_PERMUTATIONS = 50_000
_POS_BITS = (ts.BLOOM_BITS - 1).bit_length()
_POS_MASK = ts.BLOOM_BITS - 1
_ZEROS = bytes(4 * ts.BLOOM_BITS)  # ChaCha20 keystream: 32 random bits per position
_POSITIONS = np.arange(ts.BLOOM_BITS, dtype=np.uint64)
_POSITIONS16 = np.broadcast_to(np.arange(ts.BLOOM_BITS, dtype=np.int16), (1, ts.BLOOM_BITS))
#: Rows per slice of a batch's filters (bounds the temporary bit matrix: 512 bytes a row).
_SLICE_ROWS = 16_384


class Permutations:
    """Keyed permutations of the balanced filter's positions, one per salt (cached per process).

    Each name part has its own: with one permutation for both, the words of a forename's and a
    surname's filter that draw only on positions neither short name sets would be equal, an
    equality across columns that the schema rules out.
    """

    def __init__(self, key: bytes) -> None:
        self._perm = crypto_hmac.HMAC(key, hashes.SHA256())
        # salt -> (inverse permutation, the permuted filter of an empty name)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, salt: str) -> np.ndarray:
        return self.many([salt])[0]

    def many(self, salts: list[str]) -> np.ndarray:
        """The permutations of ``salts`` as a (len(salts), BLOOM_BITS) int16 array: bit ``j``
        of a salted filter is bit ``perm[j]`` of the balanced one."""
        inverse, _ = self.flips(salts)
        perms = np.empty_like(inverse)
        np.put_along_axis(perms, inverse.astype(np.intp), _POSITIONS16, axis=1)
        return perms

    def flips(self, salts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each salt: the inverse permutation (where each balanced-filter bit lands) as a
        (len(salts), BLOOM_BITS) int16 array, and the salted filter of an empty name (only
        its complement half set) as (len(salts), BLOOM_WORDS) uint64 words.

        New salts are done in one batch: one sort over all their keystreams costs a fraction
        of one call per salt (there is a salt per distinct date of birth).
        """
        new = [s for s in dict.fromkeys(salts) if s not in self._cache]
        if len(self._cache) + len(new) > _MAX_PERMUTATIONS:
            self._cache.clear()
            new = list(dict.fromkeys(salts))
        if new:
            perms = self._permutations(new)
            inverse = np.empty_like(perms)
            np.put_along_axis(inverse, perms.astype(np.intp), _POSITIONS16, axis=1)
            empty = np.packbits(perms >= ts.BLOOM_RAW_BITS, axis=1, bitorder="little")
            self._cache.update(zip(new, zip(inverse, empty.view("<u8"), strict=True), strict=True))
        inverse = np.empty((len(salts), ts.BLOOM_BITS), dtype=np.int16)
        empty = np.empty((len(salts), ts.BLOOM_WORDS), dtype=np.uint64)
        for i, salt in enumerate(salts):
            inverse[i], empty[i] = self._cache[salt]
        return inverse, empty

    def _permutations(self, salts: list[str]) -> np.ndarray:
        """The permutation of each salt: the order that sorts ChaCha20 keystream numbers under
        ``HMAC(perm subkey, salt)`` (a stable sort: ties keep position order)."""
        copy, zeros = self._perm.copy, _ZEROS
        stream = bytearray()
        for salt in salts:
            h = copy()
            h.update(salt.encode("utf-8"))
            cipher = Cipher(algorithms.ChaCha20(h.finalize(), _NONCE), None)
            stream += cipher.encryptor().update(zeros)
        rand = np.frombuffer(bytes(stream), dtype="<u4").reshape(len(salts), ts.BLOOM_BITS)
        return stable_order(rand)


def stable_order(rand: np.ndarray) -> np.ndarray:
    """``np.argsort(rand, axis=1, kind="stable")`` of uint32 rows of ``BLOOM_BITS``, as int16.

    A stable argsort is a plain sort of (number, position) pairs. Packed into uint32 with the
    number's top 23 bits, rows sort twice as fast as packed into uint64; the few rows where two
    numbers share their top bits (about 1.5%) are sorted again on the whole number.
    """
    pos = _POSITIONS.astype(np.uint32)
    keys = (rand & np.uint32(~_POS_MASK & 0xFFFFFFFF)) | pos
    keys.sort(axis=1)
    top = keys >> np.uint32(_POS_BITS)
    tied = np.flatnonzero((top[:, 1:] == top[:, :-1]).any(axis=1))
    order = (keys & np.uint32(_POS_MASK)).astype(np.int16)
    if len(tied):
        wide = (rand[tied].astype(np.uint64) << np.uint64(_POS_BITS)) | _POSITIONS
        wide.sort(axis=1)
        order[tied] = (wide & np.uint64(_POS_MASK)).astype(np.int16)
    return order


class SaltedBloom:
    """Builds one name part's filters; bigram positions are cached per process."""

    def __init__(self, position_key: bytes, permutations: Permutations) -> None:
        self._pos = crypto_hmac.HMAC(position_key, hashes.SHA256())
        self._positions: dict[str, int] = {}
        self.permutation = permutations

    def _position(self, gram: str) -> int:
        p = self._positions.get(gram)
        if p is None:
            if len(self._positions) >= _MAX_POSITIONS:
                self._positions.clear()
            h = self._pos.copy()
            h.update(gram.encode("utf-8"))
            p = self._positions[gram] = int.from_bytes(h.finalize()[:8], "big") % ts.BLOOM_RAW_BITS
        return p

    def positions(self, name: str) -> list[int]:
        """The distinct raw-filter positions a name's bigrams set, ascending."""
        return sorted({self._position(g) for g in bigrams(name)})

    def raw(self, name: str) -> np.ndarray:
        """The raw filter of one name: a bool vector of ``BLOOM_RAW_BITS``."""
        bits = np.zeros(ts.BLOOM_RAW_BITS, dtype=bool)
        bits[self.positions(name)] = True
        return bits

    def encode(self, names: pa.Array, salts: pa.Array) -> list[pa.Array]:
        """The ``BLOOM_WORDS`` int64 word columns of a batch; null where name or salt is null.

        A row's filter is its raw filter and the complement, permuted by its salt. Built
        sparsely: start from the permuted filter of an empty name (where only the complement
        half is set) and, for each of the name's raw positions ``p``, flip the bits where
        ``p`` and ``p + BLOOM_RAW_BITS`` land. A name sets a handful of positions, so this
        touches a few bits a row instead of moving all 512.
        """
        n = len(names)
        missing = pc.or_(pc.is_null(names), pc.is_null(salts)).to_numpy(zero_copy_only=False)
        names = pc.if_else(missing, pa.scalar(None, pa.string()), names)
        salts = pc.if_else(missing, pa.scalar(None, pa.string()), salts)
        name_enc, salt_enc = pc.dictionary_encode(names), pc.dictionary_encode(salts)
        # The distinct names' positions, flat, with each name's start and count.
        per_name = [self.positions(s) for s in name_enc.dictionary.to_pylist()]
        counts = np.fromiter((len(p) for p in per_name), dtype=np.int64, count=len(per_name))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        flat = np.fromiter(
            (q for p in per_name for q in p), dtype=np.int64, count=int(counts.sum())
        )
        inverse, empty = self.permutation.flips(salt_enc.dictionary.to_pylist())
        ni = name_enc.indices.fill_null(0).to_numpy(zero_copy_only=False)
        si = salt_enc.indices.fill_null(0).to_numpy(zero_copy_only=False)
        words = np.zeros((n, ts.BLOOM_WORDS), dtype=np.uint64)
        ok = np.flatnonzero(~missing)
        for begin in range(0, len(ok), _SLICE_ROWS):
            rows = ok[begin : begin + _SLICE_ROWS]
            k = counts[ni[rows]]
            # One entry per (row, position): the row's slot in the slice and the position.
            slot = np.repeat(np.arange(len(rows)), k)
            within = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
            pos = flat[np.repeat(starts[ni[rows]], k) + within]
            salt = si[rows][slot]
            flip = np.zeros((len(rows), ts.BLOOM_BITS), dtype=bool)
            flip[slot, inverse[salt, pos]] = True
            flip[slot, inverse[salt, pos + ts.BLOOM_RAW_BITS]] = True
            packed = np.packbits(flip, axis=1, bitorder="little").view("<u8")
            words[rows] = empty[si[rows]] ^ packed
        signed = words.view(np.int64)
        return [
            pa.array(np.ascontiguousarray(signed[:, w]), pa.int64(), mask=missing)
            for w in range(ts.BLOOM_WORDS)
        ]


def shared_bits(a: np.ndarray, b: np.ndarray) -> int:
    """Set bits two filters (int64 word vectors) share."""
    return int(np.bitwise_count(a.view(np.uint64) & b.view(np.uint64)).sum())


def bloom_for(derive: Callable[[str], bytes], part: str) -> SaltedBloom:
    """The encoder of one name part (or of a text field's filter, given by filter name) from a
    subkey-deriving function (domain -> key). Each filter has its own position and permutation
    subkeys."""
    filt = ts.BLOOM_FILTERS[part][0] if part in ts.BLOOM_FILTERS else part
    return SaltedBloom(
        derive(ts.DOMAIN_PREFIX + filt + ":positions"),
        Permutations(derive(ts.DOMAIN_PREFIX + filt + ":permutation")),
    )


__all__ = ["Permutations", "SaltedBloom", "bloom_for", "shared_bits"]
