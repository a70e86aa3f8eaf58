"""u probabilities of composite-token levels, counted on pairs that are known to be two people.

Splink estimates u (the chance that two records of *different* people agree at a level) from
random pairs. That works for a field compared on its own: a random pair agrees on a surname far
more often by coincidence than because the two records are one person. Composite tokens (token
schema v3) are the opposite: two records of different people almost never share a "forename |
date of birth" token, so most random pairs that do are the *same* person, and the sampled u comes
out near the prior - every strong level then weighs about the same, whatever it says.

Instead, for each level this module counts, exactly and inside the database, the pairs that
satisfy the level's condition among pairs whose NINos (or NHS numbers) are both present and
differ - pairs that are two people with near certainty - and divides by the number of such pairs.
Conditions are counted by grouping on their tokens (lists are exploded). A conjunction with
Bloom-filter atoms is counted by joining the records that agree on its other atoms and testing
the filters on those pairs (a handful per record: the other atoms are composites). A
conjunction of Bloom atoms alone has nothing to join on and is not counted. The conjunctions of
a level are summed. A level never seen gets half a pair's worth, the smallest u the count can
support.

Above :data:`SAMPLE_RECORDS` records holding the reference id, the counts run on a uniform
sample of the records (a reproducible hash of the record id) of about that many. Each pair is
in the sample with the same probability ``f^2``, so the share of different-person pairs
agreeing at a level is estimated without bias, and the count behind a level is about what an
exact count over ``SAMPLE_RECORDS`` records gives: a count of ``c`` pairs has a relative
standard error of about ``1 / sqrt(c)`` (nearly Poisson: such pairs are rare), ``1.44 /
sqrt(c)`` bits of match weight, the precision a register of that size gets counted in full.
The rarest counted level's count is logged. Where the NINo-error correction below takes off
most of a level's count, what is left carries the error of both counts (measured in
docs/linkage.md). Cost then stops growing with the records (one
pass selects the sample), where an exact count grows with them, and faster for the
Bloom-filter joins (the records sharing a surname and date grow with the register, their pairs
with its square).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from wmw_link.linkage.backends import Backend
from wmw_link.token_schema import BLOOM_SET_BITS, bloom_columns

log = logging.getLogger(__name__)

#: Records holding the reference id up to which every one is counted; above, a uniform sample
#: of about this many (a 100,000-person register is counted in full).
SAMPLE_RECORDS = 250_000

Atom = tuple[object, ...]
Dnf = list[list[Atom]]


def _exploded(cols: list[str], ov: list[str], extra: list[str], source: str, generator: str) -> str:
    """Rows of ``source`` with each list column in ``ov`` exploded (one per query level:
    several generators in one select would be zipped)."""
    inner = source
    keys = [c for c in cols if c not in ov]
    for i, c in enumerate(ov):
        others = ", ".join([*keys, *ov[i + 1 :], *extra])
        inner = f"SELECT {others}, {generator}({c}) AS {c}_e FROM ({inner})"
        keys.append(f"{c}_e")
    return inner


def _conjunction_sql(conj: list[Atom], ref: str, union: str, generator: str) -> str | None:
    """SQL counting the pairs that satisfy the conjunction, as one row (pairs of different
    ``ref``, pairs of the same ``ref``), or None when it has no token to group or join on."""
    eq = [str(a[1]) for a in conj if a[0] == "eq"]
    ov = [str(a[1]) for a in conj if a[0] == "ov"]
    bf = [a for a in conj if a[0] == "bf"]
    if not eq and not ov:
        return None
    cols = eq + ov
    words = [w for a in bf for w in bloom_columns(str(a[1]))]
    base = (
        f"SELECT {', '.join(dict.fromkeys([*cols, *words]))}, {ref} AS ref, rid FROM ({union}) "
        f"WHERE {ref} IS NOT NULL" + "".join(f" AND {c} IS NOT NULL" for c in cols)
    )
    rows = _exploded(cols, ov, [*dict.fromkeys(words), "ref", "rid"], base, generator)
    keys = eq + [f"{c}_e" for c in ov]
    if not bf:
        key = ", ".join(keys)
        return (
            f"SELECT SUM(s * s - q) / 2, SUM(q - s) / 2 FROM (SELECT SUM(n) AS s, SUM(n * n) AS q "
            f"FROM (SELECT {key}, ref, COUNT(*) AS n FROM ({rows}) GROUP BY {key}, ref) "
            f"GROUP BY {key})"
        )
    on = " AND ".join(f"a.{k} = b.{k}" for k in keys)
    close = " AND ".join(
        "("
        + " + ".join(f"CAST(bit_count(a.{w} & b.{w}) AS INTEGER)" for w in bloom_columns(str(p)))
        + f") >= {BLOOM_SET_BITS - int(k)}"
        for _, p, k in bf
    )
    return (
        "SELECT SUM(CASE WHEN ra <> rb THEN 1 ELSE 0 END), SUM(CASE WHEN ra = rb THEN 1 ELSE 0 "
        f"END) FROM (SELECT DISTINCT a.rid AS xa, b.rid AS xb, a.ref AS ra, b.ref AS rb FROM ({rows}) a "
        f"JOIN ({rows}) b ON {on} AND a.rid < b.rid WHERE {close})"
    )


def reference_column(
    present: set[str], backend: Backend | None = None, tables: Sequence[str] = ()
) -> str | None:
    """The near-unique identifier that tells people apart for the count (NINo, else NHS).

    A generic id (``id_<name>``) serves when neither is given: different ids, different people;
    of several, the one most records hold (counted when ``backend`` and ``tables`` are given).
    """
    fixed = next((c for c in ("nino", "nhs") if c in present), None)
    ids = sorted(c for c in present if c.startswith("id_"))
    if fixed or len(ids) < 2 or backend is None or not tables:
        return fixed or next(iter(ids), None)
    held = {
        c: sum(float(backend.scalar(f"SELECT COUNT({c}) FROM {t}") or 0) for t in tables)
        for c in ids
    }
    return max(ids, key=lambda c: (held[c], c))


def level_u(
    backend: Backend,
    tables: Sequence[str],
    present: set[str],
    comparisons: dict[str, list[tuple[str, Dnf]]],
    seed: int = 42,
    sample_records: int = SAMPLE_RECORDS,
) -> dict[str, dict[str, float]]:
    """u of every level of the given comparisons, counted on pairs known to be two people.

    Args:
        backend: the open database session.
        tables: the physical input tables (every token column present in each).
        present: the token columns present.
        comparisons: comparison name -> its (label, condition) levels, strongest first.
        seed: seed of the record sample (used only above ``sample_records``).
        sample_records: count on every record holding the reference id up to this many; above
            it, on a uniform sample of about this many (see the module docstring).

    Returns:
        Comparison name -> level label -> u; empty when no NINo or NHS number is present or
        too few records carry one.
    """
    ref = reference_column(present, backend, tables)
    if ref is None:
        return {}
    cols = sorted(present)
    union = " UNION ALL ".join(
        f"SELECT {', '.join(cols)}, {_record_id(backend, i)} AS rid FROM {t} "
        f"WHERE {ref} IS NOT NULL"
        for i, t in enumerate(tables)
    )
    n_ref = float(backend.scalar(f"SELECT COUNT(*) FROM ({union})") or 0)
    fraction = min(1.0, sample_records / n_ref) if n_ref else 1.0
    keep = f" WHERE {backend.sample_condition('rid', fraction, seed)}" if fraction < 1.0 else ""
    # One table read by every count below: the records (or the sample) are selected once.
    table = backend.materialise("wmw_level_u_records", f"SELECT * FROM ({union}){keep}")
    try:
        return _counted_u(backend, table, ref, comparisons, fraction)
    finally:
        backend.drop(table)


def _record_id(backend: Backend, table: int) -> str:
    """SQL for a record's id across tables: the table's number and the record's ``unique_id``
    (an integer when that is a row number, as on DuckDB: joins on it are cheaper)."""
    if backend.row_number_ids:
        return f"CAST({table} AS BIGINT) * 4294967296 + unique_id"
    return f"CONCAT('{table}:', CAST(unique_id AS STRING))"


def _counted_u(
    backend: Backend,
    table: str,
    ref: str,
    comparisons: dict[str, list[tuple[str, Dnf]]],
    fraction: float,
) -> dict[str, dict[str, float]]:
    """:func:`level_u` on the selected records in ``table`` (``fraction``: the sampled share)."""
    source = f"SELECT * FROM {table}"
    n_ref, sq = backend.rows(
        f"SELECT SUM(n), SUM(n * n) FROM (SELECT COUNT(*) AS n FROM {table} GROUP BY {ref})"
    )[0]
    pairs = (float(n_ref or 0) ** 2 - float(sq or 0)) / 2.0
    if pairs < 1e4:
        return {}
    generator = "explode" if backend.name == "spark" else "unnest"
    counts: dict[str, dict[str, tuple[float, float]]] = {}
    for name, levels in comparisons.items():
        counts[name] = {}
        for label, dnf in levels:
            diff = same = 0.0
            counted = False
            for conj in dnf:
                sql = _conjunction_sql(conj, ref, source, generator)
                if sql is not None:
                    d, s = backend.rows(sql)[0]
                    diff, same = diff + float(d or 0), same + float(s or 0)
                    counted = True
            if counted:
                counts[name][label] = (diff, same)
    odds = _ref_error_odds(counts)
    fewest = min((d for lv in counts.values() for d, _ in lv.values() if d > 0), default=0.0)
    log.info(
        "level u counted on %.3g pairs of different %s in %.3g of the records (one person's "
        "records differ in it at odds %.4f; the rarest counted level has %d pairs)",
        pairs,
        ref,
        fraction,
        odds,
        fewest,
    )
    return {
        name: {
            label: max(diff - same * odds, 0.5) / pairs for label, (diff, same) in levels.items()
        }
        for name, levels in counts.items()
    }


def ref_error_odds(backend: Backend, tables: Sequence[str], present: set[str]) -> float:
    """Odds that one person's two records carry different reference ids, measured as
    :func:`level_u` does (on the pairs sharing whole names and the exact date: one person),
    over every record holding the reference id; 0 without those tokens or such pairs."""
    ref = reference_column(present, backend, tables)
    strongest = [("eq", "fn_dob"), ("eq", "sn_dob")]
    if ref is None or not {"fn_dob", "sn_dob"} <= present:
        return 0.0
    cols = sorted({ref, "fn_dob", "sn_dob"})
    union = " UNION ALL ".join(
        f"SELECT {', '.join(cols)}, {_record_id(backend, i)} AS rid FROM {t} "
        f"WHERE {ref} IS NOT NULL"
        for i, t in enumerate(tables)
    )
    sql = _conjunction_sql(strongest, ref, union, "explode" if backend.name == "spark" else "unnest")
    diff, same = backend.rows(str(sql))[0]
    return _ref_error_odds({"identity": {"names and date": (float(diff or 0), float(same or 0))}})


def _ref_error_odds(counts: dict[str, dict[str, tuple[float, float]]]) -> float:
    """Odds that one person's two records carry different NINos (a typo, a placeholder).

    Pairs that share the strongest identity level (whole names and the exact date) are one
    person with near certainty, so among them the share whose NINos differ is the NINo error
    rate of matches. At every level, that many pairs of the same person per pair with equal
    NINos are taken off the different-NINo count: otherwise a NINo typo rate of 1% would make
    "same names and date" look like a coincidence of different people a hundred times too
    often, and the strongest levels would lose most of their weight.
    """
    first = next((levels for levels in counts.values() if levels), None)
    if not first:
        return 0.0
    diff, same = next(iter(first.values()))
    return diff / same if same > 0 and diff < same else 0.0


__all__ = ["level_u", "ref_error_odds", "reference_column"]
