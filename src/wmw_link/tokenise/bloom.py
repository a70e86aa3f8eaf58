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

import hashlib
import hmac
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from wmw_link import token_schema as ts
from wmw_link.tokenise.composites import bigrams

_NONCE = bytes(16)
#: Per-process caches are cleared at these sizes (bounded memory on any extract).
_MAX_POSITIONS = 100_000
_MAX_PERMUTATIONS = 50_000


class Permutations:
    """Keyed permutations of the balanced filter's positions, one per salt (cached per process).

    Each name part has its own: with one permutation for both, the words of a forename's and a
    surname's filter that draw only on positions neither short name sets would be equal, an
    equality across columns that the schema rules out.
    """

    def __init__(self, key: bytes) -> None:
        self._perm = hmac.new(key, digestmod=hashlib.sha256)
        self._perms: dict[str, np.ndarray] = {}

    def __call__(self, salt: str) -> np.ndarray:
        return self.many([salt])[0]

    def many(self, salts: list[str]) -> np.ndarray:
        """The permutations of ``salts`` as a (len(salts), BLOOM_BITS) int16 array.

        New salts are sorted in one batch: one ``argsort`` over all their keystreams costs a
        fraction of one call per salt (there is a salt per distinct date of birth).
        """
        new = [s for s in dict.fromkeys(salts) if s not in self._perms]
        if len(self._perms) + len(new) > _MAX_PERMUTATIONS:
            self._perms.clear()
            new = list(dict.fromkeys(salts))
        if new:
            stream = bytearray()
            for salt in new:
                h = self._perm.copy()
                h.update(salt.encode("utf-8"))
                enc = Cipher(algorithms.ChaCha20(h.digest(), _NONCE), mode=None).encryptor()
                stream += enc.update(bytes(4 * ts.BLOOM_BITS))
            rand = np.frombuffer(bytes(stream), dtype="<u4").reshape(len(new), ts.BLOOM_BITS)
            perms = np.argsort(rand, axis=1, kind="stable").astype(np.int16)
            self._perms.update(zip(new, perms, strict=True))
        out = np.empty((len(salts), ts.BLOOM_BITS), dtype=np.int16)
        for i, salt in enumerate(salts):
            out[i] = self._perms[salt]
        return out


class SaltedBloom:
    """Builds one name part's filters; bigram positions are cached per process."""

    def __init__(self, position_key: bytes, permutations: Permutations) -> None:
        self._pos = hmac.new(position_key, digestmod=hashlib.sha256)
        self._positions: dict[str, int] = {}
        self.permutation = permutations

    def _position(self, gram: str) -> int:
        p = self._positions.get(gram)
        if p is None:
            if len(self._positions) >= _MAX_POSITIONS:
                self._positions.clear()
            h = self._pos.copy()
            h.update(gram.encode("utf-8"))
            p = self._positions[gram] = int.from_bytes(h.digest()[:8], "big") % ts.BLOOM_RAW_BITS
        return p

    def raw(self, name: str) -> np.ndarray:
        """The raw filter of one name: a bool vector of ``BLOOM_RAW_BITS``."""
        bits = np.zeros(ts.BLOOM_RAW_BITS, dtype=bool)
        bits[[self._position(g) for g in bigrams(name)]] = True
        return bits

    def encode(self, names: pa.Array, salts: pa.Array) -> list[pa.Array]:
        """The ``BLOOM_WORDS`` int64 word columns of a batch; null where name or salt is null."""
        n = len(names)
        missing = pc.or_(pc.is_null(names), pc.is_null(salts)).to_numpy(zero_copy_only=False)
        names = pc.if_else(missing, pa.scalar(None, pa.string()), names)
        salts = pc.if_else(missing, pa.scalar(None, pa.string()), salts)
        name_enc, salt_enc = pc.dictionary_encode(names), pc.dictionary_encode(salts)
        raw = np.array([self.raw(s) for s in name_enc.dictionary.to_pylist()], dtype=bool)
        raw = raw.reshape(-1, ts.BLOOM_RAW_BITS)
        balanced = np.concatenate([raw, ~raw], axis=1)
        perms = self.permutation.many(salt_enc.dictionary.to_pylist())
        ni = name_enc.indices.fill_null(0).to_numpy(zero_copy_only=False)
        si = salt_enc.indices.fill_null(0).to_numpy(zero_copy_only=False)
        words = np.zeros((n, ts.BLOOM_WORDS), dtype=np.int64)
        ok = np.flatnonzero(~missing)
        # Rows in slices: a (rows x 512) bool and int16 matrix per slice keeps memory small.
        for start in range(0, len(ok), 16_384):
            rows = ok[start : start + 16_384]
            bits = np.take_along_axis(balanced[ni[rows]], perms[si[rows]].astype(np.intp), axis=1)
            packed = np.packbits(bits, axis=1, bitorder="little")
            words[rows] = packed.view("<u8").view(np.int64)
        return [
            pa.array(np.ascontiguousarray(words[:, w]), pa.int64(), mask=missing)
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
