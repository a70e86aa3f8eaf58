"""u of a generic identifier (``id_<name>``): pairs that share the id and nothing else; and
placeholder values of any person-unique id.

The NINo and NHS number, issued one per person and checked by the tokeniser, take half a
pair's worth (``run.near_unique_u``). Counting ``1 / distinct values``, the chance that a record
of another person carries a value *if values were dealt at random*, would be wrong for any id
meant to be unique per person: nearly every pair sharing it is one person, so an agreeing id
would weigh little more than the prior against it (a pair with only its id agreeing stays near
probability one half).

Here, as in :mod:`wmw_link.linkage.level_u`, a generic id's u is counted on pairs that may be
two people: pairs sharing the id on which no other exact token agrees (no name, date, postcode
or text composite). Different people sharing an id (a typo onto another person's id) are among
these; so are a few records of one person whose every other field was changed, which makes
the estimate an upper bound (a generic id's nature, unlike the NINo's, is not known). Divided by
all pairs, at least half a pair's worth. Placeholders (:func:`placeholder_values`) are nulled
before either is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wmw_link.linkage.backends import Backend


def generic_id_u(
    backend: Backend, tables: Sequence[str], column: str, others: Sequence[str]
) -> float | None:
    """u for exact agreement on ``column`` (an ``id_<name>`` token).

    Args:
        backend: the open database session.
        tables: the physical input tables.
        column: the id's token column.
        others: the other ``hmac`` token columns (compared for equality).

    Returns:
        The u, or None with fewer than two records holding the id.
    """
    cols = [column, *[c for c in others if c != column]]
    union = " UNION ALL ".join(
        f"SELECT {', '.join(cols)}, CONCAT('{i}:', CAST(unique_id AS STRING)) AS rid FROM {t}"
        for i, t in enumerate(tables)
    )
    n = float(backend.scalar(f"SELECT COUNT(*) FROM ({union}) WHERE {column} IS NOT NULL") or 0)
    if n < 2:
        return None
    agree = " OR ".join(f"a.{c} = b.{c}" for c in cols[1:]) or "FALSE"
    bare = backend.scalar(
        f"SELECT COUNT(*) FROM ({union}) a JOIN ({union}) b ON a.{column} = b.{column} "
        f"AND a.rid < b.rid WHERE NOT COALESCE({agree}, FALSE)"
    )
    return max(float(bare or 0), 0.5) / (n * (n - 1) / 2)


def generic_id_near_u(
    backend: Backend, tables: Sequence[str], column: str, near: str, others: Sequence[str]
) -> float | None:
    """u for "the id within one character at the same postcode" (``near``, a list of near-id
    tokens, overlapping) when the exact ids (``column``) differ: counted as for the exact id,
    on pairs of that level on which no other exact token agrees, an upper bound.

    Returns:
        The u, or None with fewer than two records holding the near id.
    """
    cols = [column, near, *[c for c in others if c not in (column, near)]]
    union = " UNION ALL ".join(
        f"SELECT {', '.join(cols)}, CONCAT('{i}:', CAST(unique_id AS STRING)) AS rid FROM {t}"
        for i, t in enumerate(tables)
    )
    n = float(backend.scalar(f"SELECT COUNT(*) FROM ({union}) WHERE {near} IS NOT NULL") or 0)
    if n < 2:
        return None
    generator = "explode" if backend.name == "spark" else "unnest"
    exploded = f"SELECT *, {generator}({near}) AS v FROM ({union}) WHERE {near} IS NOT NULL"
    agree = " OR ".join(f"a.{c} = b.{c}" for c in [column, *cols[2:]])
    bare = backend.scalar(
        f"SELECT COUNT(*) FROM (SELECT DISTINCT a.rid AS ra, b.rid AS rb FROM ({exploded}) a "
        f"JOIN ({exploded}) b ON a.v = b.v AND a.rid < b.rid WHERE NOT COALESCE({agree}, FALSE))"
    )
    return max(float(bare or 0), 0.5) / (n * (n - 1) / 2)


#: A value held by at least this many records ...
PLACEHOLDER_MIN_RECORDS = 10
#: ... of whose pairs more than this share agree on no other exact token is a placeholder.
PLACEHOLDER_BARE_SHARE = 0.9


def placeholder_values(
    backend: Backend, tables: Sequence[str], column: str, others: Sequence[str]
) -> list[Any]:
    """Values of a person-unique id (NINo, NHS number, generic id) that are placeholders, in
    the column's own type (tokens: integers; the benchmarks' plaintext baseline: text).

    A placeholder (``AB123456`` for an unknown NINo) is written on the records of many people,
    whose pairs then agree on nothing else; one person's records mostly share a name and date,
    an address or another id. So a value held by at least :data:`PLACEHOLDER_MIN_RECORDS`
    records, more than :data:`PLACEHOLDER_BARE_SHARE` of whose pairs hold other exact tokens
    and share none of them, is taken for a placeholder. On the hard synthetic profile (100k
    people) one person's NINo is held by at most 11 records, whose share is at most 0.43 from
    seven records on (0.83 at four); the two placeholders (119 and 126 records) are at 1.0.
    With fewer records a person's heavily corrupted records can look like strangers (FEBRL 3:
    six records of one person, five without a date of birth, 14 of 15 pairs sharing no exact
    token). The values are returned to be nulled, as the tokeniser nulls the placeholders it
    knows (an NHS number of one repeated digit).
    """
    cols = [column, *[c for c in others if c != column]]
    union = " UNION ALL ".join(
        f"SELECT {', '.join(cols)}, CONCAT('{i}:', CAST(unique_id AS STRING)) AS rid FROM {t}"
        for i, t in enumerate(tables)
    )
    agree = " OR ".join(f"a.{c} = b.{c}" for c in cols[1:]) or "FALSE"
    # Disagreeing, not merely missing: records without a date of birth hold no composite to
    # agree on, and one person's such records must not look like strangers.
    both = " OR ".join(f"(a.{c} IS NOT NULL AND b.{c} IS NOT NULL)" for c in cols[1:]) or "FALSE"
    rows = backend.rows(
        f"WITH u AS (SELECT * FROM ({union}) WHERE {column} IS NOT NULL), "
        f"k AS (SELECT {column} AS v FROM u GROUP BY {column} "
        f"HAVING COUNT(*) >= {PLACEHOLDER_MIN_RECORDS}) "
        f"SELECT a.{column} FROM u a JOIN k ON k.v = a.{column} JOIN u b "
        f"ON a.{column} = b.{column} AND a.rid < b.rid GROUP BY a.{column} "
        f"HAVING SUM(CASE WHEN COALESCE({agree}, FALSE) OR NOT ({both}) THEN 0 ELSE 1 END) "
        f"> {PLACEHOLDER_BARE_SHARE} * COUNT(*)"
    )
    return sorted(r[0] for r in rows)


__all__ = ["generic_id_near_u", "generic_id_u", "placeholder_values"]
