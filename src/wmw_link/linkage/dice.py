"""Dice similarity of keyed Bloom filters, as SQL that runs inside the database.

A Bloom filter arrives as ``n`` signed 64-bit words plus its popcount. The Dice coefficient of
two filters is ``2 |A & B| / (|A| + |B|)``; ``|A & B|`` is the sum over words of
``bit_count(a_i & b_i)``. Both DuckDB and Spark SQL have ``bit_count`` and ``&`` on BIGINT, so
one expression serves both (Splink translates it from the DuckDB dialect with sqlglot). Column
names are bare identifiers: a double-quoted name is an identifier in DuckDB but a string literal
in Spark SQL. The
per-word counts are cast to INTEGER because DuckDB returns ``bit_count`` as TINYINT, which
would overflow when summed over more than one word.
"""

from __future__ import annotations

from collections.abc import Sequence


def dice_sql(words: Sequence[str], popcount: str) -> str:
    """SQL for the Dice coefficient between the left and right record's Bloom filters.

    Args:
        words: the filter's int64 word columns (without the Splink ``_l``/``_r`` suffix).
        popcount: the column holding the filter's number of set bits.

    Returns:
        A DuckDB-dialect SQL expression in [0, 1]; NULL when either filter is missing or both
        are empty.
    """
    if not words:
        raise ValueError("a Bloom filter needs at least one word column")
    inter = " + ".join(f"CAST(bit_count({w}_l & {w}_r) AS INTEGER)" for w in words)
    return f"(2.0 * ({inter})) / NULLIF({popcount}_l + {popcount}_r, 0)"


def dice_at_least_sql(words: Sequence[str], popcount: str, threshold: float) -> str:
    """SQL condition: Dice of the two filters is at least ``threshold``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"a Dice threshold must be in (0, 1], got {threshold}")
    return f"{dice_sql(words, popcount)} >= {threshold:g}"


def dice_null_sql(words: Sequence[str], popcount: str) -> str:
    """SQL condition: either side has no filter (null or no bits set)."""
    return f"({popcount}_l IS NULL OR {popcount}_r IS NULL OR {popcount}_l = 0 OR {popcount}_r = 0)"


__all__ = ["dice_at_least_sql", "dice_null_sql", "dice_sql"]
