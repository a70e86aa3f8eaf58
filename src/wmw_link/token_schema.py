"""The token schema: every column a ``<dataset>.tokens.parquet`` file may hold, and how to compare it.

This module is the contract between ``wmw-link tokenise`` (controller side) and ``wmw-link link``
(trusted third party). It is pure data: no keys, no hashing. ``docs/token-schema.md`` explains the
same schema in prose, with what the TTP can learn from each column and the attack figures; change
both together.

Token schema version 3 is built so that a TTP holding every partner's tokens, the published code
and public name, birth and postcode statistics cannot decode them (``benchmarks/bench_attacks.py``
measures it):

* **Composites only.** Every token except the NINo and NHS number is a hashed *match-key*: a
  composite of a fuzzy encoding of one field with the exact value of another, high-entropy
  field (its *context*), e.g. ``forename | date of birth``. No column hashes a name, a date or a
  postcode on its own, so no column's value frequencies follow a public table (the most common
  value of a column covers a tiny share of it), and low-entropy facts (year, month-day,
  initials, district) appear only inside composites.
* **A subkey per column.** Each column is HMACed under its own HKDF subkey (domain
  ``v3:<column>``): no two columns can be compared, so no equality between columns lets an
  attacker chain values (version 2's ``dob_prev = dob_exact`` rebuilt the calendar).
* **One context per field.** Names are compared only within the same date of birth, dates only
  within the same (phonetic) full name, postcodes only within the same date of birth. The
  records sharing a token are then, in practice, one person or a few (twins, namesakes born on
  the same day), so tokens do not chain across people into groups whose size would reveal a
  value's frequency.
* **Salted, balanced Bloom filters.** A name's bigram filter is salted with the date of birth
  (a keyed permutation of bit positions per date, so filters of different dates are not in one
  bit space and pattern mining has a handful of filters per map), and balanced (the filter and
  its complement, permuted together), so every filter has the same number of bits set and
  leaks nothing about the name's length. Forenames and surnames have separate keys.

Kinds:

* ``hmac``: int64, the first 64 bits of HMAC-SHA256 under the column's subkey, read as a signed
  big-endian integer, or null (null whenever any part of the composite is missing).
* ``hmac_list``: list<int64> of such tokens (set semantics, sorted, no duplicates), or null.
  Compare with array overlap (``list_has_any`` in DuckDB, ``arrays_overlap`` in Spark).
* ``bloom_word``: int64, one 64-bit word of a balanced, salted Bloom filter
  (:data:`BLOOM_WORDS` words, :data:`BLOOM_SET_BITS` bits set in every filter). Two names of
  the same date of birth are close when their filters share many set bits
  (:func:`shared_bits_sql`); filters of different dates share about half, like unrelated noise.

Row references are in the ``row_ref`` column (string, 32 hex characters), keyed with the
controller's own ``--ref-key``: they join tokens to payload and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

#: Version 3: composite match-keys, a subkey per column, salted balanced Bloom filters.
#: (Version 2 hashed fields on their own with shared subkeys; version 1 wrote hex strings.)
TOKEN_SCHEMA_VERSION = 3

#: HMAC-SHA256 output is truncated to this many bytes (64 bits) and read as a signed int64.
TOKEN_BYTES = 8
#: Row references keep 128 bits, as hex: they are ids joined across files, never compared
#: inside linkage, and must not collide within a controller's extracts.
ROW_REF_BYTES = 16

#: Bloom filters: each bigram of the padded name sets one of ``BLOOM_RAW_BITS`` positions (keyed
#: per name part); the filter and its complement are concatenated (``BLOOM_BITS`` bits, exactly
#: ``BLOOM_SET_BITS`` of them set) and permuted by a permutation keyed with the salt (the date
#: of birth). Shared set bits of two filters of one salt = ``BLOOM_SET_BITS`` minus the number
#: of positions where the raw filters differ.
BLOOM_RAW_BITS = 256
BLOOM_BITS = 2 * BLOOM_RAW_BITS
BLOOM_SET_BITS = BLOOM_RAW_BITS
BLOOM_WORDS = BLOOM_BITS // 64
#: Names are padded with this character at both ends before taking bigrams ("_ann_").
BLOOM_PAD = "_"

#: Row references: HKDF domain under the controller's own ref key.
DOMAIN_ROW_REF = "row_ref"
ROW_REF = "row_ref"
#: Token columns' HKDF domains are ``DOMAIN_PREFIX + <column or filter name>``.
DOMAIN_PREFIX = "v3:"

_STRING = pa.string()
_TOKEN = pa.int64()
_LIST = pa.list_(pa.int64())

# Parts: (field, transform). Fields are the token sources; transforms say what of the field
# enters the composite (docs/token-schema.md lists them).
FORENAME, SURNAME, DOB, POSTCODE = "forename", "surname", "date_of_birth", "postcode"
NINO, NHS = "nino", "nhs_number"


@dataclass(frozen=True)
class TokenColumn:
    """One token column: what its composite is made of, and what it may be compared with
    (only itself)."""

    name: str
    kind: str  # hmac | hmac_list | bloom_word
    parts: tuple[tuple[str, str], ...]  # (field, transform) in the order they are hashed
    description: str
    reveals: str  # what someone holding only this column (without the key) can learn
    filter: str = ""  # bloom_word columns: the filter they belong to (its HKDF domain)

    @property
    def sources(self) -> tuple[str, ...]:
        """The token sources (fields) every value of this column needs."""
        return tuple(dict.fromkeys(f for f, _ in self.parts))

    @property
    def domain(self) -> str:
        """The HKDF domain of the column's subkey."""
        return DOMAIN_PREFIX + (self.filter or self.name)

    @property
    def arrow_type(self) -> pa.DataType:
        return {"hmac": _TOKEN, "hmac_list": _LIST, "bloom_word": _TOKEN}[self.kind]

    def to_manifest(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "domain": self.domain,
            "parts": [list(p) for p in self.parts],
        }


_UNIQUE = (
    "which records share a value (in practice the same person, or people alike in both parts); "
    "no value frequencies to align with public tables"
)


def _hmac(name: str, parts: tuple[tuple[str, str], ...], description: str) -> TokenColumn:
    return TokenColumn(name, "hmac", parts, description, _UNIQUE)


def _list(name: str, parts: tuple[tuple[str, str], ...], description: str) -> TokenColumn:
    return TokenColumn(name, "hmac_list", parts, description, _UNIQUE + "; list lengths")


_D = (DOB, "exact")
#: The phonetic full name that is the context of fuzzy date tokens.
_NPH = ((FORENAME, "nysiis_first"), (SURNAME, "nysiis_key"))


def _bloom(part: str, prefix: str) -> list[TokenColumn]:
    filt = f"{prefix}bf_dob"
    return [
        TokenColumn(
            f"{filt}{w}",
            "bloom_word",
            ((part, "first_word_bigrams" if part == FORENAME else "bigrams"), _D),
            f"word {w} of the balanced {BLOOM_BITS}-bit Bloom filter of the padded bigrams of "
            f"the {'first word of the forename' if part == FORENAME else 'surname'}, bit "
            "positions permuted by a key and the date of birth",
            "similarity of names of people born on the same day; nothing across dates",
            filt,
        )
        for w in range(BLOOM_WORDS)
    ]


TOKEN_COLUMNS: tuple[TokenColumn, ...] = (
    # -- names, in the context of the exact date of birth ------------------------------------
    _hmac("fn_dob", ((FORENAME, "exact"), _D), "whole forename | date of birth"),
    _hmac("fn1_dob", ((FORENAME, "first_word"), _D), "first word of the forename | date of birth"),
    _hmac(
        "fn3_dob",
        ((FORENAME, "prefix3"), _D),
        "first three letters of the forename's first word | date of birth",
    ),
    _list(
        "fnnick_dob",
        ((FORENAME, "nickname"), _D),
        "each of the first word and its canonical names in a nickname table (Bill -> William, "
        "Robert, ...) | date of birth",
    ),
    _list(
        "fndm_dob",
        ((FORENAME, "dmetaphone"), _D),
        "Double Metaphone codes of the forename's first word | date of birth",
    ),
    _list(
        "fnw_dob",
        ((FORENAME, "words"), _D),
        "each word of the forename | date of birth: a middle name used as the forename",
    ),
    *_bloom(FORENAME, "fn"),
    _hmac("sn_dob", ((SURNAME, "key"), _D), "surname with spaces removed | date of birth"),
    _list("snw_dob", ((SURNAME, "words"), _D), "each word of the surname | date of birth"),
    _list(
        "sndm_dob",
        ((SURNAME, "dmetaphone"), _D),
        "Double Metaphone codes of the surname (spaces removed) | date of birth",
    ),
    *_bloom(SURNAME, "sn"),
    _hmac(
        "names_dob",
        ((FORENAME, "first_word"), (SURNAME, "first_word"), _D),
        "first words of forename and surname in sorted order | date of birth: equal for "
        "swapped forename and surname, with or without middle names",
    ),
    _hmac("nameph_dob", (*_NPH, _D), "NYSIIS codes of forename and surname | date of birth"),
    _list(
        "namesdm_dob",
        ((FORENAME, "words_dmetaphone"), (SURNAME, "words_dmetaphone"), _D),
        "Double Metaphone codes of every word of forename and surname, in one list | date of "
        "birth: a name alike in either place (swapped and misspelt names, a middle name)",
    ),
    # -- date of birth, in the context of the phonetic full name -----------------------------
    _hmac(
        "dobsw_nph",
        (*_NPH, (DOB, "swap_sorted")),
        "year, and day and month in sorted order | phonetic full name: equal for a day/month swap",
    ),
    _hmac(
        "dobb0_nph",
        (*_NPH, (DOB, "day_bucket0")),
        "the two-day bucket (days since 1970 // 2) | phonetic full name",
    ),
    _hmac(
        "dobb1_nph",
        (*_NPH, (DOB, "day_bucket1")),
        "the shifted two-day bucket ((days + 1) // 2) | phonetic full name: with dobb0, dates a "
        "day apart share exactly one bucket",
    ),
    _hmac("dobym_nph", (*_NPH, (DOB, "ym")), "year and month | phonetic full name"),
    _hmac("dobyd_nph", (*_NPH, (DOB, "yd")), "year and day | phonetic full name"),
    _hmac("dobmd_nph", (*_NPH, (DOB, "md")), "month and day | phonetic full name"),
    _hmac(
        "dobypd_nph",
        (*_NPH, (DOB, "year"), (POSTCODE, "district")),
        "year | postcode district | phonetic full name: a date recorded as 1 January when only "
        "the year is known (the district keeps the groups of a common name and year small)",
    ),
    # -- date of birth, in the context of one name (a variant in the other name as well) -----
    *[
        _hmac(
            f"dob{enc}_{ctx}",
            (part, (DOB, transform)),
            f"{what} | {label}",
        )
        for ctx, part, label in (
            ("sn", (SURNAME, "key"), "surname"),
            ("fn", (FORENAME, "first_word"), "first word of the forename"),
        )
        for enc, transform, what in (
            ("sw", "swap_sorted", "year, and day and month in sorted order"),
            ("b0", "day_bucket0", "the two-day bucket"),
            ("b1", "day_bucket1", "the shifted two-day bucket"),
        )
    ],
    # -- postcode ------------------------------------------------------------------------------
    _hmac(
        "name_pc",
        ((FORENAME, "first_word"), (SURNAME, "first_word"), (POSTCODE, "unit")),
        "first words of forename and surname in sorted order | full postcode: the same name "
        "(or swapped names) at the same address",
    ),
    _hmac(
        "fn_pc",
        ((FORENAME, "first_word"), (POSTCODE, "unit")),
        "first word of the forename | full postcode: the same forename at the same address",
    ),
    _hmac("pc_dob", ((POSTCODE, "unit"), _D), "full postcode | date of birth"),
    _hmac("pcs_dob", ((POSTCODE, "sector"), _D), "postcode sector | date of birth"),
    _hmac(
        "pc_sn",
        ((POSTCODE, "unit"), (SURNAME, "key")),
        "full postcode | surname: the same surname at the same address (a household)",
    ),
    # -- unique identifiers --------------------------------------------------------------------
    _hmac("nino", ((NINO, "exact"),), "National Insurance number, two letters and six digits"),
    _hmac("nhs", ((NHS, "exact"),), "NHS number (10 digits)"),
)

BY_NAME: dict[str, TokenColumn] = {c.name: c for c in TOKEN_COLUMNS}

#: Which token sources each agreement identifier type feeds (full_name is split in two; sex is
#: normalised and counted but never tokenised: it is three values and adds little evidence).
SOURCES_BY_IDENTIFIER: dict[str, tuple[str, ...]] = {
    "forename": (FORENAME,),
    "surname": (SURNAME,),
    "full_name": (FORENAME, SURNAME),
    "date_of_birth": (DOB,),
    "postcode": (POSTCODE,),
    "nino": (NINO,),
    "nhs_number": (NHS,),
    "sex": (),
}

#: Bloom filters: name part -> (filter name, word columns).
BLOOM_FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    part: (
        f"{p}bf_dob",
        tuple(c.name for c in TOKEN_COLUMNS if c.filter == f"{p}bf_dob"),
    )
    for part, p in ((FORENAME, "fn"), (SURNAME, "sn"))
}


# -- generic fields (identifier, text; postcode of any country) ------------------------------
#
# Their columns are named after the agreement's field, so a dataset may hold several. Sources
# are ``identifier:<name>`` and ``text:<name>``.

#: Postcode columns made for a postcode of ``country: any``: only those whose other part is
#: rare (the date of birth, both names). A non-UK postcode may cover a whole suburb, so "this
#: postcode with this surname / forename" would form groups as large as the name is common,
#: and the sector is a UK notion.
ANY_COUNTRY_POSTCODE_COLUMNS = frozenset({"pc_dob", "name_pc"})


def identifier_source(name: str) -> str:
    return f"identifier:{name}"


def text_source(name: str) -> str:
    return f"text:{name}"


def text_filter(name: str) -> str:
    """The Bloom filter (and its HKDF domain stem) of a text field."""
    return f"tx_{name}_bf_dob"


def identifier_columns(name: str) -> list[TokenColumn]:
    """The one column of an ``identifier`` field: its normalised value, exact, own subkey.

    Like the NINo it is no composite: an id that is unique per person gives every value one
    or a few records, so value frequencies follow no public table.
    """
    return [
        TokenColumn(
            f"id_{name}",
            "hmac",
            ((identifier_source(name), "exact"),),
            f"the '{name}' identifier (upper case, spaces and punctuation removed)",
            "which records share the id (one person, if the id is unique per person)",
        )
    ]


#: An id of at least this many characters also gives its one-character deletions to its
#: near-id column: shorter ids would leave too few characters to tell people apart.
ID_NEAR_MIN_LENGTH = 5


def identifier_near_columns(name: str) -> list[TokenColumn]:
    """The near-id column of an ``identifier`` field in a dataset with a postcode: the id and
    each of its one-character deletions (two ids one substitution, adjacent transposition,
    insertion or deletion apart share one), each with the postcode unit.

    A typo in an id is common (FEBRL corrupts one in ten); the exact ``id_<name>`` misses it.
    The deletions alone would say "these two ids are close" across a whole register, so each is
    hashed with the address: records that share a value share the address and an id within
    one character.
    """
    return [
        _list(
            f"idpc_{name}",
            ((identifier_source(name), "deletions"), (POSTCODE, "unit")),
            f"the '{name}' identifier and each of its one-character deletions | postcode",
        )
    ]


def identifier_name_columns(name: str) -> list[TokenColumn]:
    """The near-id column of an ``identifier`` field in a dataset with both names: the id and
    each of its one-character deletions, each with the first forename word and the surname.

    A typo in the id of a record whose address changed, or whose date of birth is missing,
    meets no ``idpc_<name>`` and no name token (every name token holds the date). With the
    names, a value is as near-unique as the id itself: two people would need both names and
    ids one character apart.
    """
    return [
        _list(
            f"idnm_{name}",
            (
                (identifier_source(name), "deletions"),
                (FORENAME, "first_word"),
                (SURNAME, "key"),
            ),
            f"the '{name}' identifier and each of its one-character deletions | first forename "
            "word | surname",
        )
    ]


def text_columns(name: str) -> list[TokenColumn]:
    """The columns of a ``text`` field, every one in the context of the exact date of birth:
    the whole text with the date, and its balanced Bloom filter salted with the date."""
    src = text_source(name)
    filt = text_filter(name)
    return [
        _hmac(f"tx_{name}_dob", ((src, "exact"), _D), f"the '{name}' text | date of birth"),
        *[
            TokenColumn(
                f"{filt}{w}",
                "bloom_word",
                ((src, "bigrams"), _D),
                f"word {w} of the balanced {BLOOM_BITS}-bit Bloom filter of the padded bigrams "
                f"of the '{name}' text, bit positions permuted by a key and the date of birth",
                "similarity of texts of people born on the same day; nothing across dates",
                filt,
            )
            for w in range(BLOOM_WORDS)
        ],
    ]


@dataclass(frozen=True)
class FieldRef:
    """What the token schema needs of one agreement identifier field."""

    type: str
    name: str = ""  # identifier and text fields: the name in their columns
    country: str = "gb"  # postcode


def field_refs(identifiers: Iterable[Any]) -> list[FieldRef]:
    """:class:`FieldRef` of agreement identifier fields (``agreement.IdentifierField``)."""
    return [
        FieldRef(
            f.type.value,
            f.token_name if f.type.value in GENERIC_KINDS else "",
            getattr(f, "country", "gb"),
        )
        for f in identifiers
    ]


GENERIC_KINDS = frozenset({"identifier", "text"})


_GENERIC_COLUMN = re.compile(r"^(?:id_[a-z][a-z0-9_]*|id(?:pc|nm)_[a-z][a-z0-9_]*|tx_[a-z][a-z0-9_]*_(?:dob|bf_dob[0-7]))$")


def is_token_column(name: str) -> bool:
    """Whether a column name is a token column of some dataset: a fixed column, or one a
    generic field's columns would be named (the analysts' guards refuse such columns, and an
    agreement may not give a payload field such a name)."""
    return name in BY_NAME or bool(_GENERIC_COLUMN.match(name))


def columns_for_fields(fields: Iterable[FieldRef]) -> list[TokenColumn]:
    """The token columns of a dataset with these identifier fields: the fixed columns their
    sources feed (in schema order), then each generic field's own columns."""
    fields = list(fields)
    fixed = [f.type for f in fields if f.type not in GENERIC_KINDS]
    sources = {s for t in fixed for s in SOURCES_BY_IDENTIFIER[t]}
    any_pc = any(f.type == "postcode" and f.country != "gb" for f in fields)
    out = [
        c
        for c in columns_for(sources)
        if not (any_pc and POSTCODE in c.sources and c.name not in ANY_COUNTRY_POSTCODE_COLUMNS)
    ]
    for f in fields:
        if f.type == "identifier":
            out += identifier_columns(f.name)
            if POSTCODE in sources:
                out += identifier_near_columns(f.name)
            if {FORENAME, SURNAME} <= sources:
                out += identifier_name_columns(f.name)
        elif f.type == "text" and DOB in sources:
            out += text_columns(f.name)  # text is only ever compared within a date of birth
    return out


def columns_for_dataset(dataset: Any) -> list[TokenColumn]:
    """The token columns of an agreement dataset (``agreement.Dataset``)."""
    return columns_for_fields(field_refs(dataset.identifiers))


def columns_for(sources: set[str] | list[str] | tuple[str, ...]) -> list[TokenColumn]:
    """The token columns whose every part is among ``sources``, in schema order."""
    wanted = set(sources)
    return [c for c in TOKEN_COLUMNS if set(c.sources) <= wanted]


def columns_for_identifiers(identifier_types: list[str]) -> list[TokenColumn]:
    """The token columns of a dataset whose agreement lists these identifier types."""
    sources = {s for t in identifier_types for s in SOURCES_BY_IDENTIFIER[t]}
    return columns_for(sources)


def bloom_columns(part: str) -> list[str]:
    """The Bloom word columns of ``forename`` or ``surname``, or of a filter by name (a text
    field's :func:`text_filter`)."""
    if part in BLOOM_FILTERS:
        return list(BLOOM_FILTERS[part][1])
    return [f"{part}{w}" for w in range(BLOOM_WORDS)]


def shared_bits_sql(words: list[str]) -> str:
    """SQL (DuckDB and Spark) for the number of set bits two balanced filters share, over
    Splink's ``<word>_l`` / ``<word>_r`` columns.

    Two filters of the same salt share ``BLOOM_SET_BITS - d`` bits, where ``d`` is the number of
    raw positions where the names' filters differ (about two per changed character). The
    per-word counts are cast to INTEGER because DuckDB returns ``bit_count`` as TINYINT.
    """
    inner = " + ".join(f"CAST(bit_count({w}_l & {w}_r) AS INTEGER)" for w in words)
    return f"({inner})"


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
            "raw_bits": BLOOM_RAW_BITS,
            "bits": BLOOM_BITS,
            "set_bits": BLOOM_SET_BITS,
            "words": BLOOM_WORDS,
            "qgram": 2,
            "pad": BLOOM_PAD,
            "salt": DOB,
        },
        "columns": {c.name: c.to_manifest() for c in columns},
    }
