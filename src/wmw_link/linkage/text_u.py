"""u of the text comparisons' levels, on sampled pairs of two people born on the same day.

A text field is compared only within one date of birth (its tokens are salted with it): pairs
whose dates differ are a null level, "not compared". Splink's random sampling would estimate
u over the pairs left, those of one date, and in a register of thousands most random pairs
sharing a date are one person: u would come out near m, and an agreeing address would weigh
nothing. Instead u is counted, as in :mod:`wmw_link.linkage.level_u`, on pairs that are two
people with near certainty (their NINos, NHS numbers or generic ids are both present and
differ) and, among those, on the pairs whose filters share a bit space (one date of birth):
a random sample of such pairs, because a date of birth cannot be grouped on (it is never a
token of its own).

Ids are not perfect: one person's records carry different ids after a typo, and in a small
register most same-date pairs are one person, so those few records would make an agreeing text
look common among two people (FEBRL 3, whose duplicates' ids differ at odds 0.10: u of the same
address line 0.36, an address worth half a bit). As :mod:`wmw_link.linkage.level_u` does, the
sample's pairs of *equal* ids are counted too, and at every level that many pairs times the odds
that one person's ids differ (:func:`wmw_link.linkage.level_u.ref_error_odds`) are taken off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from wmw_link.linkage.backends import Backend
from wmw_link.linkage.level_u import ref_error_odds, reference_column
from wmw_link.linkage.settings import SAME_SALT_MIN_BITS, text_levels, text_names
from wmw_link.token_schema import BLOOM_SET_BITS, bloom_columns, text_filter

log = logging.getLogger(__name__)

#: Records drawn for each side of the sampled pairs (their cross product is the sample).
SAMPLE_SIDE = 3_000
#: Fewer same-date pairs of two people than this: keep Splink's sampling (too few to count).
MIN_SAME_DATE_PAIRS = 30


def text_u(
    backend: Backend, tables: Sequence[str], present: set[str], seed: int = 42
) -> dict[str, dict[str, float]]:
    """u of every level of every text comparison (``text_<name>``).

    Returns:
        Comparison name -> level label -> u; empty without a reference id or text fields,
        or when the sample holds too few pairs of two people sharing a date of birth.
    """
    ref, names = reference_column(present, backend, tables), text_names(present)
    if ref is None or not names:
        return {}
    cols = sorted({ref} | {c for n in names
                           for c in (f"tx_{n}_dob", *bloom_columns(text_filter(n)))} & present)  # fmt: skip
    union = " UNION ALL ".join(
        f"SELECT {', '.join(cols)}, CONCAT('{i}:', CAST(unique_id AS STRING)) AS rid FROM {t} "
        f"WHERE {ref} IS NOT NULL"
        for i, t in enumerate(tables)
    )
    if backend.name == "spark":
        side = f"(SELECT * FROM ({union}) ORDER BY rand({{s}}) LIMIT {SAMPLE_SIDE})"
    else:
        side = f"(SELECT * FROM ({union}) USING SAMPLE {SAMPLE_SIDE} ROWS (reservoir, {{s}}))"
    odds = ref_error_odds(backend, tables, present)
    out: dict[str, dict[str, float]] = {}
    for n in names:
        words = bloom_columns(text_filter(n))
        if not set(words) <= present:
            continue
        shared = " + ".join(f"CAST(bit_count(a.{w} & b.{w}) AS INTEGER)" for w in words)
        levels = text_levels(n)
        # Level conditions over a/b columns, first match wins (as in Splink's CASE).
        cases = " ".join(
            f"WHEN {' OR '.join(' AND '.join(_atom(a) for a in conj) for conj in dnf)} THEN {i}"
            for i, (_, dnf) in enumerate(levels)
        )
        sql = (
            f"SELECT lvl, same, COUNT(*) FROM (SELECT CASE {cases} ELSE -1 END AS lvl, "
            f"a.{ref} = b.{ref} AS same FROM {side.format(s=seed)} a, "
            f"{side.format(s=seed + 1)} b WHERE a.rid <> b.rid AND a.tx_{n}_dob IS NOT NULL "
            f"AND b.tx_{n}_dob IS NOT NULL AND ({shared}) >= {SAME_SALT_MIN_BITS}) "
            "GROUP BY lvl, same"
        )
        diff: dict[int, float] = {}
        for lvl, same, k in backend.rows(sql):
            # Pairs of different ids, less those expected of one person whose ids differ.
            diff[int(lvl)] = diff.get(int(lvl), 0.0) + (-odds * int(k) if same else int(k))
        total = sum(max(v, 0.0) for v in diff.values())
        if total < MIN_SAME_DATE_PAIRS:
            log.info("text %s: %d same-date pairs of two people sampled; u left to Splink", n, total)
            continue
        out[f"text_{n}"] = {
            label: max(diff.get(i, 0.0), 0.5) / total for i, (label, _) in enumerate(levels)
        }
        log.info(
            "text %s: u counted on %d sampled same-date pairs of two people (ids differ within "
            "one person at odds %.3f)", n, total, odds,
        )  # fmt: skip
    return out


def _atom(atom: tuple[object, ...]) -> str:
    """One atom of a text level over the sampled pair's ``a`` and ``b`` records."""
    if atom[0] == "eq":
        return f"a.{atom[1]} = b.{atom[1]}"
    if atom[0] == "bf":
        words = bloom_columns(str(atom[1]))
        shared = " + ".join(f"CAST(bit_count(a.{w} & b.{w}) AS INTEGER)" for w in words)
        return f"({shared}) >= {BLOOM_SET_BITS - int(str(atom[2]))}"
    raise ValueError(f"no text level atom {atom!r}")


__all__ = ["text_u"]
