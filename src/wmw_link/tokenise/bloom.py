"""Keyed Bloom filters of a name's padded character bigrams, as fixed-width int64 words.

Each bigram sets ``BLOOM_HASHES`` bits at ``(h1 + i*h2) mod BLOOM_BITS`` (double hashing), where
``h1`` and ``h2`` are the first two 64-bit words of the HMAC of the bigram under the Bloom
subkey: without the key nobody can rebuild a filter from a guessed name.
"""

from __future__ import annotations

from collections.abc import Callable

from wmw_link import token_schema as ts

_MASK64 = (1 << 64) - 1
_SIGN = 1 << 63


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


def dice(a: int, b: int) -> float:
    """Dice coefficient of two filters given as integers (0.0 when both are empty)."""
    total = a.bit_count() + b.bit_count()
    return 2.0 * (a & b).bit_count() / total if total else 0.0
