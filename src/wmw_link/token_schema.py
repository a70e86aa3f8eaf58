"""The token schema: every column a ``<dataset>.tokens.parquet`` file may hold, and how to compare it.

This module is the contract between ``wmw-link tokenise`` (controller side) and ``wmw-link link``
(trusted third party). It is pure data: no keys, no hashing. ``docs/token-schema.md`` explains the
same schema in prose; change both together.

Two token columns are comparable (their values can be tested for equality) exactly when they have
the same ``domain`` and the same ``encoding``: the HMAC input is ``encoding || 0x1f || value`` under
the HKDF subkey of ``domain``. So ``forename_exact`` meets ``surname_exact`` (swapped names),
``forename_first`` meets ``forename_exact`` (a dropped middle name), ``dob_swap`` meets ``dob_exact``
(day and month swapped) and ``dob_prev`` / ``dob_next`` meet ``dob_exact`` (a day out).

Kinds:

* ``hmac``: int64, the first 64 bits of HMAC-SHA256 read as a signed big-endian integer, or
  null. 64 bits, not more: databases join and compare 8-byte integers far faster than long
  strings, and among a million distinct values of one encoding the chance that any two share a
  token is about 3 in 100 million (a collision would only add one spurious agreement).
* ``hmac_list``: list<int64> of such tokens (set semantics, sorted, no duplicates), or null.
  Compare with array overlap (``list_has_any(a, b)`` in DuckDB, ``arrays_overlap(a, b)`` in
  Spark).
* ``bloom_word``: int64, one 64-bit word of a keyed Bloom filter of the name's padded character
  bigrams (bit ``i`` of the filter is bit ``i % 64`` of word ``i // 64``; the words are the
  two's-complement reinterpretation of unsigned words). Null when the name is null.
* ``bloom_popcount``: int16, the number of bits set in the whole filter. Dice similarity is
  ``2 * sum(bit_count(a_w & b_w) for each word w) / (a_pop + b_pop)``, which works in DuckDB and
  Spark SQL alike.

Row references are in the ``row_ref`` column (string, 32 hex characters), keyed with the
controller's own ``--ref-key``: they join tokens to payload and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

#: Version 2: tokens are 64-bit integers (version 1 wrote 128-bit hex strings).
TOKEN_SCHEMA_VERSION = 2

#: HMAC-SHA256 output is truncated to this many bytes (64 bits) and read as a signed int64.
TOKEN_BYTES = 8
#: Row references keep 128 bits, as hex: they are ids joined across files, never compared
#: inside linkage, and must not collide within a controller's extracts.
ROW_REF_BYTES = 16

#: Bloom filter parameters, chosen by measurement (benchmarks/bench_bloom_params.py, results in
#: benchmarks/results/bloom_params.md) on 5,915 real variant pairs (one person's differing names
#: in two synthetic extracts) and as many unrelated pairs: at a width of 8 int64 words, one
#: position per bigram tracks plaintext bigram Dice best (mean absolute error 0.007 on variants,
#: 0.017 on unrelated names; 23 of 11,830 pairs change side of Dice 0.8, against 56 with two
#: positions); 1024 bits with two positions is as close but doubles storage and SQL work.
BLOOM_BITS = 512
BLOOM_HASHES = 1
BLOOM_WORDS = BLOOM_BITS // 64
#: Names are padded with this character at both ends before taking bigrams ("_ann_").
BLOOM_PAD = "_"

#: HKDF domains (the info string is ``wmw-link/v1|<agreement id>|<domain>``).
DOMAIN_NAME = "name"
DOMAIN_BLOOM = "name-bloom"
DOMAIN_DOB = "date_of_birth"
DOMAIN_POSTCODE = "postcode"
DOMAIN_NINO = "nino"
DOMAIN_NHS = "nhs_number"
DOMAIN_SEX = "sex"
DOMAIN_ROW_REF = "row_ref"

ROW_REF = "row_ref"

_STRING = pa.string()
_TOKEN = pa.int64()
_LIST = pa.list_(pa.int64())


@dataclass(frozen=True)
class TokenColumn:
    """One token column: what it holds and what it may be compared with."""

    name: str
    identifier: str  # the token source: forename, surname, date_of_birth, postcode, nino, ...
    kind: str  # hmac | hmac_list | bloom_word | bloom_popcount
    domain: str
    encoding: str  # the tag hashed in front of the value; same domain + encoding = comparable
    description: str
    reveals: str  # what someone holding only this column (without the key) can learn
    low_entropy: bool = False  # few distinct values: open to frequency analysis on its own

    @property
    def arrow_type(self) -> pa.DataType:
        return {
            "hmac": _TOKEN,
            "hmac_list": _LIST,
            "bloom_word": pa.int64(),
            "bloom_popcount": pa.int16(),
        }[self.kind]

    def to_manifest(self) -> dict[str, object]:
        d = asdict(self)
        del d["description"], d["reveals"]
        return d


_FREQ = "the frequency distribution of the values"


#: A forename's first word: meets a forename with or without its middle names. (Surnames have
#: no such column: their words list covers a dropped half of a double-barrelled surname.)
FORENAME_FIRST = TokenColumn(
    "forename_first",
    "forename",
    "hmac",
    DOMAIN_NAME,
    "name",
    "the first word of the normalised forename",
    _FREQ,
)


def _name_columns(part: str) -> list[TokenColumn]:
    """Token columns of one name part (``forename`` or ``surname``), all in the name domain.

    Phonetic codes and the initial are taken from the part's *key*: the first word of a
    forename (middle names vary between sources) and the whole surname with spaces removed
    (``de souza`` -> ``desouza``; particles are part of a surname).

    Only what the linkage model compares is made (data minimisation): last words, Soundex
    codes and name prefixes were measured (``benchmarks/results/name_tokens.md``) and left out
    of token schema version 2, since the phonetic codes, word lists and Bloom filters already
    carry their evidence and low-entropy tokens only widen what frequency analysis can see.
    """
    key = "the first word" if part == "forename" else "the surname with spaces removed"
    cols = [
        TokenColumn(
            f"{part}_exact",
            part,
            "hmac",
            DOMAIN_NAME,
            "name",
            "the whole normalised name, words separated by one space",
            _FREQ,
        ),
        TokenColumn(
            f"{part}_words",
            part,
            "hmac_list",
            DOMAIN_NAME,
            "name",
            "each word of the normalised name (sorted set): folded middle names, half of a "
            "double-barrelled surname",
            _FREQ + " and the number of words",
        ),
        TokenColumn(
            f"{part}_dm",
            part,
            "hmac_list",
            DOMAIN_NAME,
            "dmetaphone",
            f"Double Metaphone codes (primary and alternate) of {key}",
            _FREQ + " (coarser than the name)",
        ),
        TokenColumn(
            f"{part}_nysiis",
            part,
            "hmac",
            DOMAIN_NAME,
            "nysiis",
            f"NYSIIS code of {key}",
            _FREQ + " (coarser than the name)",
        ),
        TokenColumn(
            f"{part}_initial",
            part,
            "hmac",
            DOMAIN_NAME,
            "initial",
            f"the first letter of {key}",
            "the initial's frequency: about 26 values; use only with other fields",
            low_entropy=True,
        ),
    ]
    if part == "forename":
        # The first word alone meets a forename with or without its middle names.
        cols.insert(1, FORENAME_FIRST)
        cols.append(
            TokenColumn(
                "forename_nick",
                part,
                "hmac_list",
                DOMAIN_NAME,
                "nickname",
                "the first word and its canonical forms from a nickname table (Bill -> "
                "William, Robert, ...): two forenames are nickname-equivalent when these meet",
                _FREQ,
            )
        )
    cols += [
        TokenColumn(
            f"{part}_bf{w}",
            part,
            "bloom_word",
            DOMAIN_BLOOM,
            "bloom",
            f"word {w} of the {BLOOM_BITS}-bit keyed Bloom filter of the name's padded bigrams",
            "bit patterns shared by similar names; frequent bigrams give frequent bits",
        )
        for w in range(BLOOM_WORDS)
    ]
    cols.append(
        TokenColumn(
            f"{part}_bf_pop",
            part,
            "bloom_popcount",
            DOMAIN_BLOOM,
            "bloom",
            "number of bits set in the Bloom filter (denominator of Dice)",
            "roughly the name's length",
            low_entropy=True,
        )
    )
    return cols


def _dob_columns() -> list[TokenColumn]:
    def col(name: str, enc: str, desc: str, reveals: str = _FREQ, low: bool = False) -> TokenColumn:
        return TokenColumn(name, "date_of_birth", "hmac", DOMAIN_DOB, enc, desc, reveals, low)

    return [
        col("dob_exact", "date", "the date of birth (ISO yyyy-mm-dd)"),
        col(
            "dob_swap",
            "date",
            "the date with day and month swapped; null when the swap is not a valid other date",
        ),
        col("dob_prev", "date", "the day before the date of birth"),
        col("dob_next", "date", "the day after the date of birth"),
        col("dob_ym", "ym", "year and month (a typo in the day still matches)"),
        col("dob_yd", "yd", "year and day (a typo in the month still matches)"),
        col(
            "dob_md",
            "md",
            "month and day (a typo in the year still matches)",
            low=True,
            reveals="about 366 values: birthday frequency; use only with other fields",
        ),
        col(
            "dob_year",
            "year",
            "year of birth",
            low=True,
            reveals="about 100 values: the age distribution; use only with other fields",
        ),
    ]


def _postcode_columns() -> list[TokenColumn]:
    def col(name: str, enc: str, desc: str, reveals: str, low: bool = False) -> TokenColumn:
        return TokenColumn(name, "postcode", "hmac", DOMAIN_POSTCODE, enc, desc, reveals, low)

    return [
        col("pc_unit", "unit", "the full postcode, normalised as 'OUT IN'", _FREQ),
        col("pc_sector", "sector", "postcode sector: outward code and first inward digit", _FREQ),
        col(
            "pc_district",
            "district",
            "postcode district (outward code)",
            "a few hundred values in the region: area sizes; use only with other fields",
            True,
        ),
    ]


TOKEN_COLUMNS: tuple[TokenColumn, ...] = tuple(
    _name_columns("forename")
    + _name_columns("surname")
    + _dob_columns()
    + _postcode_columns()
    + [
        TokenColumn(
            "nino",
            "nino",
            "hmac",
            DOMAIN_NINO,
            "nino",
            "National Insurance number: two prefix letters and six digits (suffix dropped)",
            _FREQ,
        ),
        TokenColumn(
            "nhs", "nhs_number", "hmac", DOMAIN_NHS, "nhs", "NHS number (10 digits)", _FREQ
        ),
        TokenColumn(
            "sex",
            "sex",
            "hmac",
            DOMAIN_SEX,
            "sex",
            "sex: 'f', 'm' or 'x' (other)",
            "three values: the sex ratio; use only with other fields",
            True,
        ),
    ]
)

BY_NAME: dict[str, TokenColumn] = {c.name: c for c in TOKEN_COLUMNS}

#: Which token sources each agreement identifier type feeds (full_name is split in two).
SOURCES_BY_IDENTIFIER: dict[str, tuple[str, ...]] = {
    "forename": ("forename",),
    "surname": ("surname",),
    "full_name": ("forename", "surname"),
    "date_of_birth": ("date_of_birth",),
    "postcode": ("postcode",),
    "nino": ("nino",),
    "nhs_number": ("nhs_number",),
    "sex": ("sex",),
}


def columns_for(sources: set[str] | list[str] | tuple[str, ...]) -> list[TokenColumn]:
    """The token columns produced for a set of token sources, in schema order."""
    wanted = set(sources)
    return [c for c in TOKEN_COLUMNS if c.identifier in wanted]


def columns_for_identifiers(identifier_types: list[str]) -> list[TokenColumn]:
    """The token columns of a dataset whose agreement lists these identifier types."""
    sources = {s for t in identifier_types for s in SOURCES_BY_IDENTIFIER[t]}
    return columns_for(sources)


def comparable(a: str, b: str) -> bool:
    """Whether equal values in token columns ``a`` and ``b`` mean equal plaintext."""
    ca, cb = BY_NAME[a], BY_NAME[b]
    return ca.domain == cb.domain and ca.encoding == cb.encoding


def bloom_columns(part: str) -> tuple[list[str], str]:
    """The Bloom word columns and the popcount column of ``forename`` or ``surname``."""
    return [f"{part}_bf{w}" for w in range(BLOOM_WORDS)], f"{part}_bf_pop"


def dice_sql(part_l: str, part_r: str, left: str = "l", right: str = "r") -> str:
    """SQL (DuckDB and Spark) for the Bloom-filter Dice of two name parts, null if either is null.

    Example: ``dice_sql("forename", "forename")`` compares forenames of ``l`` and ``r``;
    ``dice_sql("forename", "surname")`` compares a forename with a surname (swapped names).
    """
    words_l, pop_l = bloom_columns(part_l)
    words_r, pop_r = bloom_columns(part_r)
    inter = " + ".join(
        f"bit_count({left}.{a} & {right}.{b})" for a, b in zip(words_l, words_r, strict=True)
    )
    return f"(2.0 * ({inter}) / nullif({left}.{pop_l} + {right}.{pop_r}, 0))"


def arrow_schema(columns: list[TokenColumn]) -> pa.Schema:
    """Arrow schema of a tokens file holding ``columns`` (``row_ref`` first)."""
    return pa.schema(
        [pa.field(ROW_REF, _STRING, nullable=False)]
        + [pa.field(c.name, c.arrow_type) for c in columns]
    )


def manifest_entry(columns: list[TokenColumn]) -> dict[str, object]:
    """The ``token_schema`` block of a manifest."""
    return {
        "version": TOKEN_SCHEMA_VERSION,
        "token_bytes": TOKEN_BYTES,
        "bloom": {
            "bits": BLOOM_BITS,
            "hashes": BLOOM_HASHES,
            "words": BLOOM_WORDS,
            "qgram": 2,
            "pad": BLOOM_PAD,
        },
        "columns": {c.name: c.to_manifest() for c in columns},
    }
