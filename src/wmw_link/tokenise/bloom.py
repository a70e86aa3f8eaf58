"""Keyed Bloom filters of a name's padded character bigrams, as fixed-width int64 words.

Each bigram sets ``BLOOM_HASHES`` bits at ``(h1 + i*h2) mod BLOOM_BITS`` (double hashing), where
``h1`` and ``h2`` are the first two 64-bit words of the HMAC of the bigram under the Bloom
subkey: without the key nobody can rebuild a filter from a guessed name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from wmw_link import token_schema as ts

_MASK64 = (1 << 64) - 1
_SIGN = 1 << 63
#: Longest name :meth:`BloomEncoder.encode_many` puts in its fixed-width arrays (real names are
#: far shorter; longer ones are encoded one by one).
ARRAY_MAX_CHARS = 64


def bigrams(name: str) -> list[str]:
    """Distinct padded bigrams of a normalised name, in first-seen order."""
    s = f"{ts.BLOOM_PAD}{name}{ts.BLOOM_PAD}"
    return list(dict.fromkeys([s[i : i + 2] for i in range(len(s) - 1)]))


def to_signed(word: int) -> int:
    """Reinterpret an unsigned 64-bit word as int64 (two's complement)."""
    return word - (1 << 64) if word & _SIGN else word


class BloomEncoder:
    """Build filters; bit positions of each bigram are cached (there are few distinct bigrams)."""

    def __init__(
        self,
        digest: Callable[[bytes], bytes],
        bits: int = ts.BLOOM_BITS,
        hashes: int = ts.BLOOM_HASHES,
    ) -> None:
        # ``bits``/``hashes`` other than the schema's are for measuring (bench_bloom_params).
        self._digest = digest
        self._nbits = bits
        self._k = hashes
        self._bits: dict[str, int] = {}

    def _bigram_bits(self, gram: str) -> int:
        bits = self._bits.get(gram)
        if bits is None:
            d = self._digest(gram.encode("utf-8"))
            h1 = int.from_bytes(d[0:8], "big")
            h2 = int.from_bytes(d[8:16], "big") | 1  # odd, so the k positions differ
            bits = 0
            for i in range(self._k):
                bits |= 1 << ((h1 + i * h2) % self._nbits)
            self._bits[gram] = bits
        return bits

    def filter_int(self, name: str) -> int:
        """The filter as one Python integer (bit i = position i)."""
        bits = 0
        for g in bigrams(name):
            bits |= self._bigram_bits(g)
        return bits

    def encode(self, name: str) -> tuple[list[int], int]:
        """(int64 words, popcount) of a name's filter."""
        bits = self.filter_int(name)
        words = [to_signed((bits >> (64 * w)) & _MASK64) for w in range(self._nbits // 64)]
        return words, bits.bit_count()

    def _gram_words(self, grams: np.ndarray) -> np.ndarray:
        """Filter words (uint64, one row per bigram) of bigrams given as packed code points."""
        n_words = self._nbits // 64
        out = np.empty((len(grams), n_words), dtype=np.uint64)
        for i, g in enumerate(grams.tolist()):
            bits = self._bigram_bits(chr(g >> 21) + chr(g & 0x1FFFFF))
            out[i] = [(bits >> (64 * w)) & _MASK64 for w in range(n_words)]
        return out

    def encode_many(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Filters of many names at once: (int64 words, shape (n, words); int16 popcounts).

        The same filters as :meth:`encode`, built with array operations: each name's padded
        bigrams are packed into integers (two 21-bit code points), each distinct bigram is
        hashed once, and a name's filter is the OR of its bigrams' rows. Names must be
        non-empty. Names longer than :data:`ARRAY_MAX_CHARS` are encoded one by one: the
        arrays are as wide as the longest name, so one mangled cell of thousands of characters
        would otherwise cost gigabytes.
        """
        n_words = self._nbits // 64
        long_rows = [i for i, s in enumerate(names) if len(s) > ARRAY_MAX_CHARS]
        if long_rows:
            words = np.zeros((len(names), n_words), dtype=np.int64)
            pop = np.zeros(len(names), dtype=np.int16)
            short_rows = [i for i, s in enumerate(names) if len(s) <= ARRAY_MAX_CHARS]
            words[short_rows], pop[short_rows] = self.encode_many([names[i] for i in short_rows])
            for i in long_rows:
                one_words, one_pop = self.encode(names[i])
                words[i], pop[i] = one_words, one_pop
            return words, pop
        if not names:
            return np.zeros((0, n_words), dtype=np.int64), np.zeros(0, dtype=np.int16)
        pad = ts.BLOOM_PAD
        padded = np.array([f"{pad}{s}{pad}" for s in names])
        width = padded.dtype.itemsize // 4
        codes = padded.view(np.uint32).reshape(len(names), width).astype(np.int64)
        n_grams = np.char.str_len(padded) - 1
        grams = (codes[:, :-1] << 21) | codes[:, 1:]
        valid = np.arange(width - 1)[None, :] < n_grams[:, None]
        distinct, which = np.unique(grams[valid], return_inverse=True)
        rows = self._gram_words(distinct)[which]
        starts = np.concatenate(([0], np.cumsum(n_grams)[:-1]))
        filters = np.bitwise_or.reduceat(rows, starts, axis=0)
        pop = np.bitwise_count(filters).sum(axis=1).astype(np.int16)
        return filters.view(np.int64), pop


def dice(a: int, b: int) -> float:
    """Dice coefficient of two filters given as integers (0.0 when both are empty)."""
    total = a.bit_count() + b.bit_count()
    return 2.0 * (a & b).bit_count() / total if total else 0.0
