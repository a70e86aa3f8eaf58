"""Token schema v2, frozen for the attack benchmark (no longer what the product writes).

A faithful copy of what ``wmw_link.tokenise`` wrote for token schema version 2 (``tokens.py``,
``bloom.py``, ``worker.py`` and ``token_schema.py`` at commit ec97cbc), taking normalised fields
rather than raw extracts:

* HKDF-SHA256 subkey per domain (``SecretKey.derive(agreement_id, domain)``);
* token = first 8 bytes of ``HMAC-SHA256(subkey, encoding || 0x1f || value)``, signed
  big-endian int64; list columns are sorted sets of such tokens;
* one 512-bit Bloom filter per name part over the padded (``_``) distinct bigrams, one bit per
  bigram at ``h1 mod 512`` (``h1`` the first 64-bit word of ``HMAC(bloom subkey, bigram)``, no
  encoding tag), one shared map for forenames and surnames, as 8 int64 words plus the popcount.

Code is copied, not imported from ``wmw_link.tokenise``, since the product moved on to v3.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from functools import lru_cache

import jellyfish
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from benchmarks.attacks.world import Column
from doublemetaphone import doublemetaphone

from wmw_link.keys import SecretKey

VERSION = 2
TOKEN_BYTES = 8
BLOOM_BITS = 512
BLOOM_WORDS = BLOOM_BITS // 64
BLOOM_PAD = "_"
_SEP = b"\x1f"
_ONE_DAY = dt.timedelta(days=1)
_STR = pa.string()
_STR_LIST = pa.list_(pa.string())


def _name_cols(part: str) -> list[Column]:
    key = "first_word" if part == "forename" else "key"

    def c(name: str, kind: str, enc: str, transform: str, domain: str = "name") -> Column:
        return Column(f"{part}_{name}", kind, domain, enc, ((part, transform),))

    cols = [c("exact", "hmac", "name", "exact")]
    if part == "forename":
        cols.append(c("first", "hmac", "name", "first_word"))
    cols += [
        c("words", "hmac_list", "name", "words"),
        c("dm", "hmac_list", "dmetaphone", f"dmetaphone({key})"),
        c("nysiis", "hmac", "nysiis", f"nysiis({key})"),
        c("initial", "hmac", "initial", f"initial({key})"),
    ]
    if part == "forename":
        cols.append(c("nick", "hmac_list", "nickname", "nickname"))
    cols += [
        c(f"bf{w}", "bloom_word", "bloom", "bigrams", "name-bloom") for w in range(BLOOM_WORDS)
    ]
    cols.append(c("bf_pop", "bloom_popcount", "bloom", "bigrams", "name-bloom"))
    return cols


def _col(name: str, domain: str, enc: str, fld: str, transform: str) -> Column:
    return Column(name, "hmac", domain, enc, ((fld, transform),))


COLUMNS: list[Column] = (
    _name_cols("forename")
    + _name_cols("surname")
    + [
        _col("dob_exact", "date_of_birth", "date", "date_of_birth", "exact"),
        _col("dob_swap", "date_of_birth", "date", "date_of_birth", "swap"),
        _col("dob_prev", "date_of_birth", "date", "date_of_birth", "prev"),
        _col("dob_next", "date_of_birth", "date", "date_of_birth", "next"),
        _col("dob_ym", "date_of_birth", "ym", "date_of_birth", "ym"),
        _col("dob_yd", "date_of_birth", "yd", "date_of_birth", "yd"),
        _col("dob_md", "date_of_birth", "md", "date_of_birth", "md"),
        _col("dob_year", "date_of_birth", "year", "date_of_birth", "year"),
        _col("pc_unit", "postcode", "unit", "postcode", "unit"),
        _col("pc_sector", "postcode", "sector", "postcode", "sector"),
        _col("pc_district", "postcode", "district", "postcode", "district"),
        _col("nino", "nino", "nino", "nino", "exact"),
        _col("nhs", "nhs_number", "nhs", "nhs_number", "exact"),
        _col("sex", "sex", "sex", "sex", "exact"),
    ]
)
BY_NAME = {c.name: c for c in COLUMNS}


@lru_cache(maxsize=1)
def _nicknamer() -> object:
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=65_536)
def nickname_group(first_word: str) -> tuple[str, ...]:
    """The word and its canonical names in the ``nicknames`` table (Bill -> William, ...)."""
    canon = _nicknamer().canonicals_of(first_word)  # type: ignore[attr-defined]
    return tuple(sorted({first_word, *canon}))


def bigrams(name: str) -> list[str]:
    """Distinct padded bigrams of a normalised name, in first-seen order."""
    s = f"{BLOOM_PAD}{name}{BLOOM_PAD}"
    return list(dict.fromkeys([s[i : i + 2] for i in range(len(s) - 1)]))


def _spread(values: pa.Array, fn: object, typ: pa.DataType) -> pa.Array:
    """``fn`` once per distinct non-null value, spread back to rows (null stays null)."""
    enc = pc.dictionary_encode(values)
    out = [fn(v) for v in enc.dictionary.to_pylist()]  # type: ignore[operator]
    return pc.take(pa.array(out, typ), enc.indices)


def _name_inputs(part: str, names: pa.Array) -> dict[str, pa.Array]:
    def row(name: str) -> tuple[object, ...]:
        words = name.split(" ")
        key = words[0] if part == "forename" else "".join(words)
        out: list[object] = [name]
        if part == "forename":
            out.append(words[0])
        out += [
            sorted(set(words)),
            sorted({c for c in doublemetaphone(key) if c}) or None,
            jellyfish.nysiis(key),
            key[0],
        ]
        if part == "forename":
            out.append(list(nickname_group(words[0])))
        return tuple(out)

    cols = [c for c in _name_cols(part) if c.kind in ("hmac", "hmac_list")]
    enc = pc.dictionary_encode(names)
    rows = [row(v) for v in enc.dictionary.to_pylist()]
    by_col = list(zip(*rows, strict=True)) or [()] * len(cols)
    return {
        c.name: pc.take(pa.array(v, _STR if c.kind == "hmac" else _STR_LIST), enc.indices)
        for c, v in zip(cols, by_col, strict=True)
    }


def _swapped(d: dt.date) -> dt.date | None:
    if d.day > 12 or d.day == d.month:
        return None
    try:
        return d.replace(month=d.day, day=d.month)
    except ValueError:
        return None


def _date_row(d: dt.date) -> tuple[str | None, ...]:
    sw = _swapped(d)
    try:
        nxt: dt.date | None = d + _ONE_DAY
    except OverflowError:
        nxt = None
    return (
        d.isoformat(),
        sw.isoformat() if sw else None,
        (d - _ONE_DAY).isoformat(),
        nxt.isoformat() if nxt else None,
        f"{d.year:04d}-{d.month:02d}",
        f"{d.year:04d}-{d.day:02d}",
        f"{d.month:02d}-{d.day:02d}",
        f"{d.year:04d}",
    )


_DOB_COLS = [
    "dob_exact",
    "dob_swap",
    "dob_prev",
    "dob_next",
    "dob_ym",
    "dob_yd",
    "dob_md",
    "dob_year",
]


class SchemaV2:
    """Token schema v2 behind the attack benchmark's :class:`~benchmarks.attacks.world.Schema`."""

    version = VERSION
    columns = COLUMNS

    def composite_inputs(self, fields: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
        """The pre-hash value of every hmac (string) and hmac_list (list of strings) column."""
        out: dict[str, pa.Array] = {}
        for part in ("forename", "surname"):
            out.update(_name_inputs(part, fields[part]))
        enc = pc.dictionary_encode(fields["date_of_birth"])
        rows = [_date_row(d) for d in enc.dictionary.to_pylist()]
        by_col = list(zip(*rows, strict=True)) or [()] * len(_DOB_COLS)
        for name, v in zip(_DOB_COLS, by_col, strict=True):
            out[name] = pc.take(pa.array(v, _STR), enc.indices)
        unit = fields["postcode"]
        out["pc_unit"] = unit
        out["pc_sector"] = pc.utf8_slice_codeunits(unit, 0, -2)  # 'B15 2TT' -> 'B15 2'
        out["pc_district"] = pc.replace_substring_regex(unit, r" .*$", "")
        out["nino"] = fields["nino"]
        out["nhs"] = fields["nhs_number"]
        if "sex" in fields:
            out["sex"] = fields["sex"]
        return out

    def bloom_inputs(self, fields: Mapping[str, pa.Array]) -> dict[str, tuple[pa.Array, pa.Array]]:
        """Per name part: (padded bigrams, salt) per record; v2 has no salt (null)."""
        return {
            part: (_spread(fields[part], bigrams, _STR_LIST), pa.nulls(len(fields[part]), _STR))
            for part in ("forename", "surname")
        }

    def bloom_names(self, fields: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
        """The value each part's filter encodes: the whole normalised name."""
        return {p: fields[p] for p in ("forename", "surname")}

    def bloom_columns(self) -> dict[str, tuple[list[str], str | None]]:
        return {
            p: ([f"{p}_bf{w}" for w in range(BLOOM_WORDS)], f"{p}_bf_pop")
            for p in ("forename", "surname")
        }

    # -- tokens (the controllers' side: uses the key) ---------------------------------------

    def tokens(self, fields: Mapping[str, pa.Array], key: SecretKey, agreement_id: str) -> pa.Table:
        """Every v2 token column of the records in ``fields`` (nulls where a field is null)."""
        subkeys: dict[str, bytes] = {}

        def token_fn(domain: str, encoding: str) -> object:
            sub = subkeys.get(domain)
            if sub is None:
                sub = subkeys[domain] = key.derive(agreement_id, domain)
            base = hmac.new(sub, encoding.encode("ascii") + _SEP, hashlib.sha256)
            cache: dict[str, int] = {}

            def tok(v: str) -> int:
                t = cache.get(v)
                if t is None:
                    h = base.copy()
                    h.update(v.encode("utf-8"))
                    t = cache[v] = int.from_bytes(h.digest()[:TOKEN_BYTES], "big", signed=True)
                return t

            return tok

        inputs = self.composite_inputs(fields)
        out: dict[str, pa.Array] = {}
        toks: dict[tuple[str, str], object] = {}
        for c in COLUMNS:
            if c.kind not in ("hmac", "hmac_list"):
                continue
            tok = toks.setdefault((c.domain, c.encoding), token_fn(c.domain, c.encoding))
            if c.kind == "hmac":
                out[c.name] = _spread(inputs[c.name], tok, pa.int64())
            else:
                out[c.name] = _list_tokens(inputs[c.name], tok)
        bloom_key = key.derive(agreement_id, "name-bloom")
        positions: dict[str, int] = {}

        def pos(gram: str) -> int:
            p = positions.get(gram)
            if p is None:
                d = hmac.new(bloom_key, gram.encode("utf-8"), hashlib.sha256).digest()
                p = positions[gram] = int.from_bytes(d[:8], "big") % BLOOM_BITS
            return p

        for part in ("forename", "surname"):
            names = fields[part]
            enc = pc.dictionary_encode(names)
            distinct = enc.dictionary.to_pylist()
            bits = np.zeros((len(distinct), BLOOM_BITS), bool)
            for i, name in enumerate(distinct):
                bits[i, [pos(g) for g in bigrams(name)]] = True
            words = pack_bits(bits)
            pop = bits.sum(axis=1).astype(np.int16)
            for w in range(BLOOM_WORDS):
                out[f"{part}_bf{w}"] = pc.take(pa.array(words[:, w]), enc.indices)
            out[f"{part}_bf_pop"] = pc.take(pa.array(pop), enc.indices)
        return pa.table({c.name: out[c.name] for c in COLUMNS})


def _list_tokens(values: pa.Array, tok: object) -> pa.Array:
    enc = pc.dictionary_encode(pc.cast(pc.binary_join(values, "\x1e"), _STR))
    rows = [
        sorted({tok(v) for v in s.split("\x1e")})  # type: ignore[operator]
        for s in enc.dictionary.to_pylist()
    ]
    return pc.take(pa.array(rows, pa.list_(pa.int64())), enc.indices)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(n, 512) booleans -> (n, 8) int64 words, bit i in bit i % 64 of word i // 64."""
    n, nbits = bits.shape
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    words = (bits.reshape(n, nbits // 64, 64).astype(np.uint64) * weights).sum(
        axis=2, dtype=np.uint64
    )
    return words.view(np.int64)


def unpack_bits(words: np.ndarray) -> np.ndarray:
    """(n, w) int64 words -> (n, 64 w) booleans (the inverse of :func:`pack_bits`)."""
    u = np.ascontiguousarray(words).view(np.uint64)
    shifts = np.arange(64, dtype=np.uint64)
    return ((u[:, :, None] >> shifts) & np.uint64(1)).astype(bool).reshape(len(u), -1)
