"""Token properties (schema v3): same key same token, a subkey per column, composites meet for
the variants linkage needs and for nothing else, salted balanced Bloom filters, null stays null."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import numpy as np
import pyarrow as pa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from wmw_link import token_schema as ts
from wmw_link.keys import SecretKey
from wmw_link.tokenise.bloom import bloom_for, shared_bits
from wmw_link.tokenise.composites import (
    SEP,
    bloom_inputs,
    bloom_names,
    composite_inputs,
    nickname_group,
)
from wmw_link.tokenise.tokens import Hasher, composite_tokens, simple_tokens

KEY = SecretKey(b"k" * 32)
OTHER = SecretKey(b"o" * 32)
_names = st.from_regex(r"[a-z]{1,12}( [a-z]{1,12}){0,2}", fullmatch=True)
_dates = st.dates(dt.date(1910, 1, 1), dt.date(2020, 12, 31))


def _fields(rows: list[tuple]) -> dict[str, pa.Array]:
    """Normalised fields from (forename, surname, date, postcode, nino) rows."""
    cols = list(zip(*rows, strict=True))
    return {
        "forename": pa.array(cols[0], pa.string()),
        "surname": pa.array(cols[1], pa.string()),
        "date_of_birth": pa.array(cols[2], pa.date32()),
        "postcode": pa.array(cols[3], pa.string()),
        "nino": pa.array(cols[4], pa.string()),
    }


def _tokens(rows: list[tuple], key: SecretKey = KEY, agreement: str = "wmw-outcomes"):
    """Every token column of the rows, as lists (one entry per row)."""
    fields = _fields(rows)
    h = Hasher(key, agreement)
    out = {
        name: composite_tokens(vals, h.tokenizer(ts.BY_NAME[name].domain)).to_pylist()
        for name, vals in composite_inputs(fields).items()
    }
    for part, (names, salts) in bloom_names(fields).items():
        words = bloom_for(h.derive, part).encode(names, salts)
        out.update({c: w.to_pylist() for c, w in zip(ts.bloom_columns(part), words, strict=True)})
    return out


def _agree(tok: dict, i: int, j: int) -> set[str]:
    """The hmac/hmac_list columns on which rows i and j agree (equal, or lists overlap)."""
    same = set()
    for name, vals in tok.items():
        a, b = vals[i], vals[j]
        if a is None or b is None or ts.BY_NAME[name].kind == "bloom_word":
            continue
        if (set(a) & set(b)) if isinstance(a, list) else a == b:
            same.add(name)
    return same


def _bloom(tok: dict, i: int, part: str) -> np.ndarray:
    return np.array([tok[c][i] for c in ts.bloom_columns(part)], dtype=np.int64)


D = dt.date(1985, 4, 3)
BASE = ("mary ann", "de souza", D, "B15 2TT", "AB123456")


@settings(max_examples=20, deadline=None)
@given(_names, _names, _dates)
def test_same_key_same_tokens_other_key_or_agreement_different(fore, sur, born):
    row = [(fore, sur, born, "B1 1AA", "AB123456")]
    a = _tokens(row)
    assert a == _tokens(row)
    other_key, other_agreement = _tokens(row, OTHER), _tokens(row, agreement="another")
    for name, vals in a.items():
        if vals != [None]:
            assert vals != other_key[name] and vals != other_agreement[name], name


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_names, _names, _dates), min_size=2, max_size=12))
def test_no_two_columns_share_a_value(people):
    """A subkey per column: equality across columns, which chained values in version 2 (the
    date-of-birth calendar), cannot happen."""
    tok = _tokens([(f, s, d, "B1 1AA", f"AB{i:06d}") for i, (f, s, d) in enumerate(people)])
    seen: dict[int, str] = {}
    for name, vals in tok.items():
        flat = {v for x in vals if x is not None for v in (x if isinstance(x, list) else [x])}
        for v in flat:
            assert seen.setdefault(v, name) == name, (name, seen[v])


def test_every_column_has_its_own_subkey_domain():
    domains = [c.domain for c in ts.TOKEN_COLUMNS if c.kind != "bloom_word"]
    assert len(domains) == len(set(domains))
    h = Hasher(KEY, "a")
    assert len({h.tokenizer(d)("same value") for d in domains}) == len(domains)
    # The two Bloom filters have separate position and permutation keys.
    f, s = (bloom_for(h.derive, p) for p in ("forename", "surname"))
    assert not np.array_equal(f.raw("ann"), s.raw("ann"))


def test_no_standalone_field_token():
    """Every token but the NINo and NHS number combines two fields (a match-key)."""
    for c in ts.TOKEN_COLUMNS:
        if c.name not in ("nino", "nhs"):
            assert len(c.sources) >= 2, c.name


def test_names_meet_only_on_the_same_date():
    tok = _tokens(
        [
            BASE,
            ("mary", "de souza", D, "B15 2TT", "AB123456"),  # a middle name dropped
            ("de souza", "mary ann", D, "B15 2TT", None),  # names swapped
            ("mary ann", "de souza", D.replace(year=1986), "B15 2TT", None),  # another date
            ("molly", "desouza", D, "B1 1AA", None),  # nickname, spacing, moved
        ]
    )
    assert {"fn_dob", "sn_dob", "fn1_dob", "names_dob", "pc_dob", "pc_sn"} <= _agree(tok, 0, 0)
    assert "fn_dob" not in _agree(tok, 0, 1) and "fn1_dob" in _agree(tok, 0, 1)
    assert _agree(tok, 0, 2) & {"fn_dob", "sn_dob", "fn1_dob"} == set()
    assert "names_dob" in _agree(tok, 0, 2)
    assert "names_dob" in _agree(tok, 1, 2)  # first words, with or without middle names
    # Another date: no name token meets (they are all hashed with the date of birth).
    assert not {n for n in _agree(tok, 0, 3) if n.endswith("_dob")}
    assert {"dobmd_nph", "name_pc", "pc_sn"} <= _agree(tok, 0, 3)
    assert {"sn_dob", "fnnick_dob"} <= _agree(tok, 0, 4)
    assert "molly" in nickname_group("mary") or "mary" in nickname_group("molly")


def test_date_variants_meet_within_the_same_name():
    def row(d, fore="john", sur="smith"):
        return (fore, sur, d, None, None)

    tok = _tokens(
        [
            row(D),
            row(dt.date(1985, 3, 4)),  # day and month swapped
            row(dt.date(1985, 4, 4)),  # a day out
            row(dt.date(1985, 4, 2)),  # a day out the other way
            row(dt.date(1958, 4, 3)),  # year digits transposed
            row(dt.date(1985, 4, 4), "jon"),  # a day out and a forename variant
            row(dt.date(1985, 4, 5)),  # two days out
            row(D, "priya", "patel"),  # another person, same date
        ]
    )
    assert "dobsw_nph" in _agree(tok, 0, 1) and "dobsw_sn" in _agree(tok, 0, 1)
    for j in (2, 3):
        day = {"dobb0_nph", "dobb1_nph"} & _agree(tok, 0, j)
        assert len(day) == 1  # adjacent dates share exactly one two-day bucket
    assert "dobmd_nph" in _agree(tok, 0, 4)
    assert {"dobb0_sn", "dobb1_sn"} & _agree(tok, 0, 5)
    assert not {"dobb0_nph", "dobb1_nph", "dobb0_sn", "dobb1_sn"} & _agree(tok, 0, 6)
    assert _agree(tok, 0, 7) == set()  # the same date alone gives nothing in common


def test_a_first_of_january_meets_the_true_date_in_the_year_token_only():
    # A date recorded as 1 January when only the year was known, against the true date.
    tok = _tokens(
        [
            ("saleh", "nasir", D, "B36 3ER", None),
            ("salih", "nasser", dt.date(1985, 1, 1), "B36 9XY", None),  # placeholder, spellings
            ("saleh", "nasir", dt.date(1986, 1, 1), "B36 3ER", None),  # another year
            ("priya", "patel", dt.date(1985, 1, 1), "B36 9XY", None),  # another person
            ("saleh", "nasir", dt.date(1985, 1, 1), "CV1 1DJ", None),  # another district
        ]
    )
    assert _agree(tok, 0, 1) == {"dobypd_nph"}
    assert "dobypd_nph" not in _agree(tok, 0, 2)  # another year
    assert "dobypd_nph" not in _agree(tok, 1, 3)
    assert "dobypd_nph" not in _agree(tok, 0, 4)


def test_md_and_mohd_are_muhammad_in_the_nickname_token():
    # Md and Mohd abbreviate Muhammad (Bangladeshi and Malaysian usage); the English
    # nickname table and Double Metaphone (MT against MHMT) miss them.
    tok = _tokens(
        [
            ("mohammed", "uddin", D, None, None),
            ("md", "uddin", D, None, None),
            ("mohd", "uddin", D, None, None),
            ("muhammad", "uddin", D, None, None),
            ("mahmood", "uddin", D, None, None),  # another name of the same root: not one
            ("md karim", "uddin", D, None, None),
            ("mohammed karim", "uddin", D, None, None),
            ("md rahim", "uddin", D, None, None),  # a twin: the prefix alone is no name
        ]
    )
    for j in (1, 2, 3):
        assert "fnnick_dob" in _agree(tok, 0, j), j
    assert "fndm_dob" not in _agree(tok, 0, 1)  # what the phonetic codes could not do
    assert "fnnick_dob" not in _agree(tok, 0, 4)
    # A prefix before another given name: the person is known by that name.
    assert "fnnick_dob" in _agree(tok, 5, 6)  # Md Karim and Mohammed Karim, by Karim
    assert "fnnick_dob" not in _agree(tok, 7, 5)  # Md Rahim and Md Karim
    assert "fnnick_dob" not in _agree(tok, 7, 6)  # Md Rahim and Mohammed Karim
    assert "muhammad" in nickname_group("md") and "muhammad" in nickname_group("mohammed")
    assert "william" in nickname_group("bill")  # the English table still applies


def test_the_name_family_table_is_normalised_and_cited():
    import csv
    from importlib import resources

    from wmw_link.normalise import normalise_names
    from wmw_link.tokenise.composites import name_families

    text = resources.files("wmw_link").joinpath("data", "name_families.csv").read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert rows and all(r["source"].strip() for r in rows)
    names = [r["name"] for r in rows]
    assert normalise_names(pa.array(names)).values.to_pylist() == names  # as the tokeniser sees
    assert len(set(names)) == len(names) and set(name_families()) == set(names)


def test_bloom_filters_are_balanced_salted_and_track_similarity():
    tok = _tokens(
        [
            ("catherine", "smith", D, None, None),
            ("katherine", "smyth", D, None, None),
            ("bob", "jones", D, None, None),
            ("catherine", "smith", D.replace(day=4), None, None),
        ]
    )
    for part in ("forename", "surname"):
        for i in range(4):
            assert int(np.bitwise_count(_bloom(tok, i, part).view(np.uint64)).sum()) == (
                ts.BLOOM_SET_BITS
            )
    cath, kath = _bloom(tok, 0, "forename"), _bloom(tok, 1, "forename")
    assert shared_bits(cath, cath) == ts.BLOOM_SET_BITS
    assert ts.BLOOM_SET_BITS - 4 <= shared_bits(cath, kath) < ts.BLOOM_SET_BITS
    assert shared_bits(cath, _bloom(tok, 2, "forename")) < ts.BLOOM_SET_BITS - 8
    # The same name under another date of birth is in an unrelated bit space.
    assert shared_bits(cath, _bloom(tok, 3, "forename")) < ts.BLOOM_SET_BITS * 0.65
    assert shared_bits(_bloom(tok, 0, "surname"), _bloom(tok, 1, "surname")) >= ts.BLOOM_SET_BITS - 4


def test_nulls_stay_null():
    tok = _tokens([("ann", "lee", None, "B1 1AA", None), ("ann", None, D, None, "AB123456")])
    for name, vals in tok.items():
        sources = ts.BY_NAME[name].sources
        if "date_of_birth" in sources or "nino" in sources:
            assert vals[0] is None, name
        if {"surname", "postcode"} & set(sources):
            assert vals[1] is None, name
    assert tok["fn_dob"][1] is not None and tok["nino"][1] is not None
    tok_fn = Hasher(KEY, "a").tokenizer(ts.BY_NAME["nino"].domain)
    out = simple_tokens(pa.array(["AB123456", None, "AB123456"]), tok_fn)
    assert out.to_pylist() == [tok_fn("AB123456"), None, tok_fn("AB123456")]
    assert tok_fn("") not in out.to_pylist()


def test_token_is_truncated_hmac_of_the_composite_under_the_column_subkey():
    sub = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"wmw-link/v1|wmw-outcomes|v3:fn_dob"
    ).derive(b"k" * 32)
    digest = hmac.new(sub, f"john{SEP}1985-04-03".encode(), hashlib.sha256).digest()
    expected = int.from_bytes(digest[:8], "big", signed=True)
    assert _tokens([("john", "smith", D, None, None)])["fn_dob"] == [expected]


def test_row_ref_is_128_bit_hex_of_hmac_under_the_ref_domain():
    sub = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"wmw-link/v1|wmw-outcomes|row_ref"
    ).derive(b"k" * 32)
    expected = hmac.new(sub, b"hmrc_rti\x1fR1", hashlib.sha256).digest()[:16].hex()
    ref = Hasher(KEY, "wmw-outcomes").ref_tokenizer(ts.DOMAIN_ROW_REF, "hmrc_rti")
    assert ref("R1") == expected and len(expected) == 32
    assert ref.many(["R1", "R2"]) == [ref("R1"), ref("R2")] and ref("R1") != ref("R2")


def test_list_tokens_are_sorted_numerically_not_by_plaintext():
    tok = _tokens([("bill", "smith jones", D, None, None)])
    for name in ("fnnick_dob", "snw_dob"):
        assert tok[name][0] == sorted(tok[name][0]) and len(tok[name][0]) >= 2


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(_names, _names, _dates), min_size=1, max_size=8))
def test_a_batch_gives_each_row_the_tokens_it_gets_alone(people):
    rows = [(f, s, d, "B1 1AA", None) for f, s, d in people]
    together = _tokens(rows)
    for i, r in enumerate(rows):
        alone = _tokens([r])
        assert {k: v[i] for k, v in together.items()} == {k: v[0] for k, v in alone.items()}


def test_composites_are_public_and_keyless():
    """What the attack benchmark relies on: the pre-hash values, from the published code."""
    fields = _fields([BASE])
    got = composite_inputs(fields)
    assert got["fn_dob"].to_pylist() == [f"mary ann{SEP}1985-04-03"]
    assert got["names_dob"].to_pylist() == [f"de{SEP}mary{SEP}1985-04-03"]
    assert got["pcs_dob"].to_pylist() == [f"B15 2{SEP}1985-04-03"]
    grams, salt = bloom_inputs(fields)["forename"]
    assert grams.to_pylist() == [["_m", "ma", "ar", "ry", "y_"]] and salt.to_pylist() == [
        "1985-04-03"
    ]


def test_a_very_long_name_costs_little_memory():
    import tracemalloc

    h = Hasher(KEY, "a")
    enc = bloom_for(h.derive, "surname")
    names = pa.array([f"name{i}" for i in range(2000)] + ["x" * 20_000 + "y"])
    salts = pa.array(["1985-04-03"] * len(names))
    tracemalloc.start()
    words = enc.encode(names, salts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000 and len(words) == ts.BLOOM_WORDS


def test_permutations_in_a_batch_equal_one_at_a_time_and_survive_a_cache_clear() -> None:
    from wmw_link.tokenise import bloom

    key = b"p" * 32
    salts = ["1980-01-02", "1975-12-31", "1980-01-02", "2001-07-04"]
    batch = bloom.Permutations(key).many(salts)
    one = bloom.Permutations(key)
    single = np.stack([one(s) for s in salts])
    assert (batch == single).all()
    assert (batch[0] == batch[2]).all() and not (batch[0] == batch[1]).all()
    assert all(sorted(row) == list(range(ts.BLOOM_BITS)) for row in batch.tolist())
    old = bloom._MAX_PERMUTATIONS
    try:
        bloom._MAX_PERMUTATIONS = 2
        small = bloom.Permutations(key)
        small.many(salts[:2])
        assert (small.many(salts) == batch).all()  # overflow clears, results unchanged
    finally:
        bloom._MAX_PERMUTATIONS = old


def test_tokenizer_many_equals_one_at_a_time() -> None:
    tok = Hasher(KEY, "a").tokenizer(ts.BY_NAME["nino"].domain)
    vals = ["AB123456C", "ZZ000000A", "AB123456C"]
    assert tok.many(vals) == [tok(v) for v in vals]
    assert tok.many(vals)[0] == tok.many(vals)[2] != tok.many(vals)[1]


def test_swapped_and_misspelt_names_share_a_name_word_code_and_middle_names_a_word() -> None:
    from wmw_link.tokenise.composites import composite_inputs

    d = pa.array([dt.date(1979, 11, 30)] * 4)
    out = composite_inputs(
        {
            "forename": pa.array(["awan", "nasreem", "barry mark", "mark"]),
            "surname": pa.array(["nasrin", "awan", "reid", "reid"]),
            "date_of_birth": d,
        }
    )
    dm = [set(v) for v in out["namesdm_dob"].to_pylist()]
    assert dm[0] & dm[1]  # Awan in either place
    assert not dm[0] & dm[2]
    fnw = [set(v) for v in out["fnw_dob"].to_pylist()]
    assert fnw[2] & fnw[3] and not fnw[0] & fnw[1]
    other_day = composite_inputs(
        {"forename": pa.array(["awan"]), "surname": pa.array(["nasrin"]),
         "date_of_birth": pa.array([dt.date(1979, 12, 1)])}
    )
    assert not set(other_day["namesdm_dob"].to_pylist()[0]) & dm[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab \n\r\t-", max_size=8)), max_size=6))
def test_first_word_is_what_the_regex_leaves(values) -> None:
    """The split that replaced the regex ``" .*$"`` must keep its meaning on any text."""
    import pyarrow.compute as pc

    from wmw_link.tokenise.composites import _first_word

    arr = pa.array(values, pa.string())
    assert _first_word(arr).to_pylist() == pc.replace_substring_regex(arr, r" .*$", "").to_pylist()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdhjkostwxz \x1f", max_size=20))
def test_word_codes_are_the_double_metaphone_codes_of_every_word(s) -> None:
    from doublemetaphone import doublemetaphone

    from wmw_link.tokenise.composites import _dm_codes, _words_dm

    words = s.replace(SEP, " ").split()
    assert _words_dm(s) == (sorted({c for w in words for c in doublemetaphone(w) if c}) or None)
    assert _dm_codes(s) == (sorted({c for c in doublemetaphone(s) if c}) or None)
