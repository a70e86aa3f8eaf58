"""Name normalisation: ASCII, casefolded, no punctuation, titles or suffixes, single spaces.

Vectorised with ``pyarrow.compute``; only values still outside ASCII after accent stripping
(other scripts, ``æ``, ``ø``, ``ł``) go through ``anyascii`` one distinct value at a time.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
from anyascii import anyascii

from wmw_link.normalise._base import MISSING, Normalised, as_string_array, blank_to_null

NO_LETTERS = "no_letters"

TITLES = (
    "mr", "mrs", "ms", "miss", "mx", "master", "dr", "prof", "professor", "rev", "revd",
    "reverend", "sir", "dame", "lord", "lady", "fr", "father", "sr", "sister",
)  # fmt: skip
SUFFIXES = (
    "jr", "jnr", "junior", "snr", "sr", "senior", "ii", "iii", "iv", "phd", "obe", "mbe",
    "cbe", "esq",
)  # fmt: skip

# Titles come off the front and suffixes off the end only when another word remains: "Lord"
# alone is a surname, "Mr Lord" is not a forename.
_TITLE_RE = r"^(?:(?:" + "|".join(TITLES) + r")\s+)+(\S)"
_SUFFIX_RE = r"(\S)(?:\s+(?:" + "|".join(SUFFIXES) + r"))+$"


def _to_ascii(arr: pa.Array) -> pa.Array:
    """NFKD with combining marks removed; anything still non-ASCII is transliterated."""
    arr = pc.replace_substring_regex(pc.utf8_normalize(arr, "NFKD"), r"\p{M}+", "")
    ascii_mask = pc.fill_null(pc.string_is_ascii(arr), True)
    if pc.all(ascii_mask).as_py():
        return arr
    values = arr.to_pylist()
    flags = ascii_mask.to_pylist()
    return pa.array(
        [v if ok or v is None else anyascii(v) for v, ok in zip(values, flags, strict=True)],
        pa.string(),
    )


def normalise_names(arr: pa.Array | pa.ChunkedArray) -> Normalised:
    """Normalise names.

    Unicode NFKD with accents stripped (other scripts transliterated), casefolded, apostrophes
    removed (``O'Brien`` -> ``obrien``), hyphens and other non-letters turned into spaces
    (``Smith-Jones`` -> ``smith jones``), leading titles and trailing suffixes removed when
    another word remains, spaces collapsed. Idempotent.

    Args:
        arr: raw names.

    Returns:
        Normalised values; reasons ``missing`` (empty cell) or ``no_letters``.
    """
    raw = blank_to_null(arr)
    missing = pc.is_null(raw)
    s = _to_ascii(raw)
    s = pc.utf8_lower(s)
    s = pc.replace_substring_regex(s, r"['`]", "")
    s = pc.replace_substring_regex(s, r"[^a-z]+", " ")
    s = pc.utf8_trim_whitespace(s)
    s = pc.replace_substring_regex(s, _TITLE_RE, r"\1")
    s = pc.replace_substring_regex(s, _SUFFIX_RE, r"\1")
    empty = pc.fill_null(pc.equal(s, ""), False)
    values = pc.if_else(empty, pa.scalar(None, pa.string()), s)
    reasons = pc.if_else(
        missing,
        pa.scalar(MISSING),
        pc.if_else(empty, pa.scalar(NO_LETTERS), pa.scalar(None, pa.string())),
    )
    return Normalised(values, reasons)


_SPLIT = re.compile(r"\s+")
_SUFFIX_WORDS = frozenset(SUFFIXES)


def _split_one(full: str) -> tuple[str | None, str | None]:
    """Split one raw full name into raw (forenames, surname)."""
    if "," in full:
        # "SMITH, John Paul": the surname comes first.
        surname, _, forenames = full.partition(",")
        return forenames.strip() or None, surname.strip() or None
    words = [w for w in _SPLIT.split(full.strip()) if w]
    # Drop trailing suffixes ("John Smith Jr") so that the surname is the last real word.
    while len(words) > 1 and re.sub(r"[^a-z]", "", words[-1].lower()) in _SUFFIX_WORDS:
        words.pop()
    if not words:
        return None, None
    if len(words) == 1:
        return None, words[0]
    return " ".join(words[:-1]), words[-1]


def split_full_names(arr: pa.Array | pa.ChunkedArray) -> tuple[Normalised, Normalised]:
    """Split full names into forename(s) and surname, then normalise each.

    The surname is the last whitespace-separated word (a hyphenated surname stays whole), or
    everything before a comma in ``Surname, Forenames``. Titles are removed from the forenames
    by :func:`normalise_names`.

    Returns:
        (forenames, surname); a name with one word has only a surname (forename reason
        ``missing``).
    """
    raw = blank_to_null(as_string_array(arr))
    dict_arr = pc.dictionary_encode(raw)
    parts = [_split_one(v) for v in dict_arr.dictionary.to_pylist()]
    fore = pa.array([p[0] for p in parts], pa.string())
    sur = pa.array([p[1] for p in parts], pa.string())
    idx = dict_arr.indices
    fore_n = normalise_names(fore)
    sur_n = normalise_names(sur)

    def take(n: Normalised) -> Normalised:
        values = pc.take(n.values, idx)
        reasons = pc.take(n.reasons, idx)
        # Rows whose full name is missing: the index is null, so is the reason; say "missing".
        reasons = pc.if_else(pc.is_null(idx), pa.scalar(MISSING), reasons)
        return Normalised(values, reasons)

    return take(fore_n), take(sur_n)
