"""What each token of schema version 3 hashes: composites of normalised fields, before any key.

:func:`composite_inputs` gives, for a batch of normalised identifiers, the exact string (or list
of strings) that each ``hmac`` / ``hmac_list`` column HMACs under its own subkey;
:func:`bloom_inputs` gives each name's bigrams and the salt of its Bloom filter. They are keyless
and public on purpose: the tokeniser uses them, and so can anyone checking the schema - the
attack benchmark computes a reference population's composites with them, exactly as an attacker
holding the published code would.

A composite's parts are joined with the unit separator (0x1f), which no normalised value holds.
A composite is null when any of its parts is: null stays null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache

import jellyfish
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from doublemetaphone import doublemetaphone

from wmw_link import token_schema as ts
from wmw_link.data_tables import read_rows

SEP = "\x1f"
_LIST_STR = pa.list_(pa.string())


@lru_cache(maxsize=1)
def _nicknamer() -> object:
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=1)
def _family_rows() -> tuple[dict[str, str], ...]:
    return tuple(read_rows("name_families.csv"))


@lru_cache(maxsize=1)
def name_families() -> dict[str, str]:
    """Spellings and abbreviations of one name with its canonical form (``md``, ``mohd``,
    ``mohammed`` -> ``muhammad``), from ``data/name_families.csv`` (each row cites its source).
    The ``nicknames`` table is English: it has no abbreviations such as Md or Mohd, which
    Double Metaphone cannot reach either (``MT`` against ``MHMT``)."""
    return {row["name"]: row["canonical"] for row in _family_rows()}


@lru_cache(maxsize=1)
def name_prefixes() -> frozenset[str]:
    """The family names (spellings and abbreviations, not nicknames such as Mo) that are a
    religious prefix when another given name follows: Md Karim is known as Karim, and twins
    Md Rahim and Mohammed Karim share only the prefix."""
    return frozenset(r["name"] for r in _family_rows() if r["kind"] != "nickname")


def forename_nicknames(forename: str) -> list[str]:
    """The nickname group of a forename: of its first word, or of its second when the first
    is a prefix (:func:`name_prefixes`) and another word follows."""
    words = forename.split(" ")
    word = words[1] if len(words) > 1 and words[0] in name_prefixes() else words[0]
    return list(nickname_group(word))


@lru_cache(maxsize=65_536)
def nickname_group(first_word: str) -> tuple[str, ...]:
    """The word and its canonical names in the ``nicknames`` table (Bill -> William, ...) and
    in :func:`name_families` (Md -> Muhammad)."""
    canon = set(_nicknamer().canonicals_of(first_word))  # type: ignore[attr-defined]
    family = name_families().get(first_word)
    if family is not None:
        canon.add(family)
    return tuple(sorted({first_word, *canon}))


@lru_cache(maxsize=131_072)
def _word_codes(word: str) -> tuple[str, ...]:
    """A word's non-empty Double Metaphone codes, remembered per process: name words repeat
    across rows and batches, and a lookup costs a sixteenth of the encoding."""
    return tuple(c for c in doublemetaphone(word) if c)


def _dm_codes(key: str) -> list[str] | None:
    return sorted(set(_word_codes(key))) or None


def _words(s: str) -> list[str] | None:
    return sorted(set(s.split(" "))) or None


def _words_dm(s: str) -> list[str] | None:
    """Double Metaphone codes of every word of a name (or of both names, joined by SEP)."""
    codes: set[str] = set()
    for w in s.replace(SEP, " ").split():
        codes.update(_word_codes(w))
    return sorted(codes) or None


def bigrams(name: str) -> list[str]:
    """Distinct padded bigrams of a normalised name, in first-seen order."""
    s = f"{ts.BLOOM_PAD}{name}{ts.BLOOM_PAD}"
    return list(dict.fromkeys([s[i : i + 2] for i in range(len(s) - 1)]))


def id_deletions(value: str) -> list[str]:
    """The id and, when it is long enough, each of its distinct one-character deletions: two
    ids one substitution, adjacent transposition, insertion or deletion apart share one."""
    if len(value) < ts.ID_NEAR_MIN_LENGTH:
        return [value]
    return list(dict.fromkeys([value, *(value[:i] + value[i + 1 :] for i in range(len(value)))]))


def _on_distinct(values: pa.Array, fn: Callable[[str], object], typ: pa.DataType) -> pa.Array:
    """``fn`` once per distinct non-null value, spread back to rows (null stays null)."""
    enc = pc.dictionary_encode(values)
    out = pa.array([fn(v) for v in enc.dictionary.to_pylist()], typ)
    return pc.take(out, enc.indices)


def _first_word(names: pa.Array) -> pa.Array:
    """Everything before the first space (what the regex ``" .*$"`` leaves)."""
    if pc.any(pc.match_substring(names, "\n")).as_py():
        # RE2's '.' stops at a newline, so the regex keeps such a value whole. Normalised
        # names hold none; other text keeps the regex's meaning.
        return pc.replace_substring_regex(names, r" .*$", "")
    # Splitting once is several times faster than the regex and gives the same words.
    return pc.list_element(pc.split_pattern(names, " ", max_splits=1), 0)


def _two(values: pa.Array) -> pa.Array:
    return pc.utf8_lpad(pc.cast(values, pa.string()), 2, "0")


class Parts:
    """The parts of composites for one batch of normalised identifiers, computed lazily.

    ``fields`` holds normalised values by token source: ``forename`` and ``surname`` (strings),
    ``date_of_birth`` (date32), ``postcode`` (the unit, ``OUT IN``; for ``country: any`` the
    compact value), ``nino``, ``nhs_number``, and ``identifier:<name>`` / ``text:<name>``.
    """

    def __init__(self, fields: Mapping[str, pa.Array]) -> None:
        self._fields = dict(fields)
        self._cache: dict[tuple[str, str], pa.Array] = {}

    def __call__(self, field: str, transform: str) -> pa.Array:
        key = (field, transform)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._make(field, transform)
        return hit

    def _make(self, field: str, transform: str) -> pa.Array:  # noqa: C901 - a table of cases
        v = self._fields[field]
        if transform == "exact":
            return pc.cast(v, pa.string()) if field == ts.DOB else v
        if transform == "deletions" and field.startswith("identifier:"):
            return _on_distinct(v, id_deletions, _LIST_STR)
        if field == ts.FORENAME:
            first = _first_word(v)
            if transform == "first_word":
                return first
            if transform == "key":
                return pc.replace_substring(v, " ", "")
            if transform == "prefix3":
                return pc.utf8_slice_codeunits(first, 0, 3)
            if transform == "nickname":
                return _on_distinct(v, forename_nicknames, _LIST_STR)
            if transform == "dmetaphone":
                return _on_distinct(first, _dm_codes, _LIST_STR)
            if transform == "words":
                return _on_distinct(v, _words, _LIST_STR)
            if transform == "nysiis_first":
                return _on_distinct(first, jellyfish.nysiis, pa.string())
        if field == ts.SURNAME:
            key = pc.replace_substring(v, " ", "")
            if transform == "key":
                return key
            if transform == "first_word":
                return _first_word(v)
            if transform == "words":
                return _on_distinct(v, _words, _LIST_STR)
            if transform == "dmetaphone":
                return _on_distinct(key, _dm_codes, _LIST_STR)
            if transform == "nysiis_key":
                return _on_distinct(key, jellyfish.nysiis, pa.string())
        if field == ts.DOB:
            return self._date_part(v, transform)
        if field == ts.POSTCODE and transform == "unit":
            return v
        if field == ts.POSTCODE and transform == "district":
            return pc.utf8_slice_codeunits(v, 0, -4)  # 'B15 2TT' -> 'B15'
        if field == ts.POSTCODE and transform == "sector":
            return pc.utf8_slice_codeunits(v, 0, -2)  # 'B15 2TT' -> 'B15 2'
        raise ValueError(f"no transform {transform!r} for {field!r}")

    @staticmethod
    def _date_part(d: pa.Array, transform: str) -> pa.Array:
        year = pc.cast(pc.year(d), pa.string())
        month, day = _two(pc.month(d)), _two(pc.day(d))
        if transform == "year":
            return year
        if transform == "ym":
            return pc.binary_join_element_wise(year, month, "-")
        if transform == "yd":
            return pc.binary_join_element_wise(year, day, "-")
        if transform == "md":
            return pc.binary_join_element_wise(month, day, "-")
        if transform == "swap_sorted":
            lo, hi = pc.min_element_wise(month, day), pc.max_element_wise(month, day)
            return pc.binary_join_element_wise(year, lo, hi, "-")
        # Days since 1970 moved by an even offset so that integer division floors (dates of
        # birth are at most 120 years old; the offset reaches back to 1696).
        days = pc.add(pc.cast(pc.cast(d, pa.int32()), pa.int64()), 100_000)
        if transform == "day_bucket0":
            return pc.cast(pc.divide(days, 2), pa.string())
        if transform == "day_bucket1":
            return pc.cast(pc.divide(pc.add(days, 1), 2), pa.string())
        raise ValueError(f"no transform {transform!r} for date_of_birth")


def _join(scalars: list[pa.Array]) -> pa.Array:
    return scalars[0] if len(scalars) == 1 else pc.binary_join_element_wise(*scalars, SEP)


#: Columns whose first two parts (the two names) are hashed in sorted order.
_SORTED_PAIRS = frozenset({"names_dob", "name_pc"})
#: List columns whose first two parts (the two names) give one list between them.
_NAME_UNIONS = frozenset({"namesdm_dob"})


def _name_union(parts: Parts) -> pa.Array:
    """Double Metaphone codes of every word of both names, one list per row (null when either
    name is: null stays null). Computed once per distinct (forename, surname)."""
    both = pc.binary_join_element_wise(parts._fields[ts.FORENAME], parts._fields[ts.SURNAME], SEP)
    return _on_distinct(both, _words_dm, _LIST_STR)


def _composite(col: ts.TokenColumn, parts: Parts) -> pa.Array:
    """One column's pre-hash values: a string per row, or a list of strings for list columns."""
    if col.name in _SORTED_PAIRS:
        # Sorted name pair: a forename/surname swap gives the same composite.
        (fa, ta), (fb, tb), rest = col.parts[0], col.parts[1], col.parts[2:]
        a, b = parts(fa, ta), parts(fb, tb)
        lo, hi = pc.min_element_wise(a, b), pc.max_element_wise(a, b)
        both = pc.if_else(pc.or_(pc.is_null(a), pc.is_null(b)), pa.scalar(None, pa.string()), lo)
        return _join([both, hi, *[parts(f, t) for f, t in rest]])
    if col.name in _NAME_UNIONS:
        arrays = [_name_union(parts), *[parts(f, t) for f, t in col.parts[2:]]]
    else:
        arrays = [parts(f, t) for f, t in col.parts]
    lists = [i for i, a in enumerate(arrays) if pa.types.is_list(a.type)]
    if col.kind != "hmac_list":
        return _join(arrays)
    (li,) = lists  # a list column has exactly one list part
    lst = arrays[li]
    flat = pc.list_flatten(lst)
    parent = pc.list_parent_indices(lst)
    joined = _join([flat if i == li else pc.take(a, parent) for i, a in enumerate(arrays)])
    # A list whose scalar parts are null is null as a whole (null stays null).
    scalars_ok = np.ones(len(lst), bool)
    for i, a in enumerate(arrays):
        if i != li:
            scalars_ok &= pc.is_valid(a).to_numpy(zero_copy_only=False)
    valid = scalars_ok & pc.is_valid(lst).to_numpy(zero_copy_only=False)
    parents = parent.to_numpy(zero_copy_only=False)
    joined = joined.filter(pa.array(valid[parents]))
    lengths = pc.list_value_length(lst).fill_null(0).to_numpy(zero_copy_only=False)
    lengths = np.where(valid, lengths, 0)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), joined, mask=pa.array(~valid))


def composite_inputs(
    fields: Mapping[str, pa.Array], columns: list[ts.TokenColumn] | None = None
) -> dict[str, pa.Array]:
    """The pre-hash value of every ``hmac`` and ``hmac_list`` column the fields can feed.

    Args:
        fields: normalised values by token source (see :class:`Parts`); sources the dataset
            lacks are simply absent.
        columns: restrict to these columns (default: every column whose sources are present).

    Returns:
        Column name -> ``pa.string()`` array (``hmac``) or ``pa.list_(pa.string())`` array
        (``hmac_list``), one entry per row, null where the token is null.
    """
    parts = Parts(fields)
    cols = columns if columns is not None else ts.columns_for(list(fields))
    return {c.name: _composite(c, parts) for c in cols if c.kind in ("hmac", "hmac_list")}


def bloom_names(fields: Mapping[str, pa.Array]) -> dict[str, tuple[pa.Array, pa.Array]]:
    """For each Bloom-filtered name part (and text field's filter, by filter name) the fields
    feed: (the name or text filtered, salt) per row.

    The forename's filter is of its first word (middle names come and go between sources; see
    ``fn1_dob``), the surname's of the whole surname. The salt is the ISO date of birth. Both
    are null where the name or the date is null.
    """
    out: dict[str, tuple[pa.Array, pa.Array]] = {}
    if ts.DOB not in fields:
        return out
    salt = pc.cast(fields[ts.DOB], pa.string())
    # Text fields' filters are keyed by filter name (``tx_<name>_bf_dob``): salted the same way.
    texts = {ts.text_filter(f.split(":", 1)[1]): f for f in fields if f.startswith("text:")}
    for part, source in [(ts.FORENAME, ts.FORENAME), (ts.SURNAME, ts.SURNAME), *texts.items()]:
        if source in fields:
            names = fields[source]
            if part == ts.FORENAME:
                names = _first_word(names)
            missing = pc.or_(pc.is_null(names), pc.is_null(salt))
            out[part] = (
                pc.if_else(missing, pa.scalar(None, pa.string()), names),
                pc.if_else(missing, pa.scalar(None, pa.string()), salt),
            )
    return out


def bloom_inputs(fields: Mapping[str, pa.Array]) -> dict[str, tuple[pa.Array, pa.Array]]:
    """For each Bloom-filtered name part: (the bigram lists, the salt) per row, null where the
    name or the date of birth is null (what :func:`bloom_names` filters, as bigrams)."""
    return {
        part: (_on_distinct(names, bigrams, _LIST_STR), salt)
        for part, (names, salt) in bloom_names(fields).items()
    }


__all__ = ["SEP", "Parts", "bigrams", "bloom_inputs", "bloom_names", "composite_inputs", "nickname_group"]
