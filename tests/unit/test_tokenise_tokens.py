"""Token properties: same key same token, other key/agreement/domain different, swaps meet."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from wmw_link import token_schema as ts
from wmw_link.keys import SecretKey
from wmw_link.tokenise.bloom import BloomEncoder, bigrams, dice
from wmw_link.tokenise.tokens import DateTokens, Hasher, NameTokens, nickname_group, simple_tokens

KEY = SecretKey(b"k" * 32)
OTHER = SecretKey(b"o" * 32)
_names = st.from_regex(r"[a-z]{1,12}( [a-z]{1,12}){0,2}", fullmatch=True)


def _name_tokens(key=KEY, agreement="wmw-outcomes", part="forename"):
    h = Hasher(key, agreement)
    return NameTokens(h, part, BloomEncoder(lambda b: h.digest(ts.DOMAIN_BLOOM, b)))


def _col(nt: NameTokens, row, suffix):
    return row[[c.name for c in nt.columns].index(f"{nt.part}_{suffix}")]


@settings(max_examples=100, deadline=None)
@given(_names)
def test_same_key_same_token_other_key_or_agreement_different(name):
    a = _name_tokens().row(name)
    assert a == _name_tokens().row(name)
    assert _col(_name_tokens(), a, "exact") != _col(
        _name_tokens(OTHER), _name_tokens(OTHER).row(name), "exact"
    )
    other_agreement = _name_tokens(agreement="another-agreement")
    assert _col(_name_tokens(), a, "exact") != _col(
        other_agreement, other_agreement.row(name), "exact"
    )


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=12))
def test_domains_and_encodings_separate_tokens(value):
    h = Hasher(KEY, "a")
    tokens = {
        h.tokenizer(ts.DOMAIN_NAME, "name")(value),
        h.tokenizer(ts.DOMAIN_NAME, "nysiis")(value),
        h.tokenizer(ts.DOMAIN_NINO, "nino")(value),
        h.tokenizer(ts.DOMAIN_POSTCODE, "unit")(value),
        h.tokenizer(ts.DOMAIN_DOB, "date")(value),
    }
    assert len(tokens) == 5
    assert all(isinstance(t, int) and -(2**63) <= t < 2**63 for t in tokens)


@settings(max_examples=100, deadline=None)
@given(_names, _names)
def test_swapped_forename_and_surname_tokens_meet(first, last):
    fore, sur = _name_tokens(part="forename"), _name_tokens(part="surname")
    fr, sr = fore.row(first), sur.row(first)
    # A forename recorded as a surname gives the same exact and words tokens.
    for suffix in ("exact", "words"):
        assert _col(fore, fr, suffix) == _col(sur, sr, suffix)
    assert ts.comparable("forename_exact", "surname_exact")
    assert not ts.comparable("forename_exact", "nino")
    # Bloom filters of the two parts are in one domain: identical filters for the same name.
    words = [c.name for c in fore.columns if c.kind == "bloom_word"]
    idx_f = [[c.name for c in fore.columns].index(w) for w in words]
    idx_s = [[c.name for c in sur.columns].index(w.replace("forename", "surname")) for w in words]
    assert [fr[i] for i in idx_f] == [sr[i] for i in idx_s]


def test_first_word_meets_exact_and_words_intersect():
    nt = _name_tokens()
    folded = nt.row("mary ann")
    plain = nt.row("mary")
    assert _col(nt, folded, "first") == _col(nt, plain, "exact")
    assert set(_col(nt, folded, "words")) & set(_col(nt, plain, "words"))
    sur = _name_tokens(part="surname")
    assert set(_col(sur, sur.row("smith jones"), "words")) & set(
        _col(sur, sur.row("jones"), "words")
    )


def test_phonetic_and_nickname_tokens_meet_for_variants():
    nt = _name_tokens()
    m1, m2 = nt.row("mohammed"), nt.row("muhammad")
    assert _col(nt, m1, "exact") != _col(nt, m2, "exact")
    assert set(_col(nt, m1, "dm")) & set(_col(nt, m2, "dm"))
    b, w = nt.row("bill"), nt.row("william")
    assert set(_col(nt, b, "nick")) & set(_col(nt, w, "nick"))
    assert "william" in nickname_group("bill")
    # Unrelated names do not meet on nicknames.
    assert not set(_col(nt, nt.row("zoe"), "nick")) & set(_col(nt, w, "nick"))


def test_bloom_dice_tracks_similarity():
    h = Hasher(KEY, "a")
    enc = BloomEncoder(lambda b: h.digest(ts.DOMAIN_BLOOM, b))
    same = dice(enc.filter_int("catherine"), enc.filter_int("catherine"))
    typo = dice(enc.filter_int("catherine"), enc.filter_int("katherine"))
    other = dice(enc.filter_int("catherine"), enc.filter_int("bob"))
    assert same == 1.0 and 0.7 < typo < 1.0 and other < 0.3
    words, pop = enc.encode("catherine")
    assert len(words) == ts.BLOOM_WORDS and all(-(2**63) <= w < 2**63 for w in words)
    assert pop == enc.filter_int("catherine").bit_count() <= 2 * len(bigrams("catherine"))
    # Another key gives a different filter for the same name.
    h2 = Hasher(OTHER, "a")
    enc2 = BloomEncoder(lambda b: h2.digest(ts.DOMAIN_BLOOM, b))
    assert enc2.filter_int("catherine") != enc.filter_int("catherine")


def test_date_tokens_swap_and_neighbours_meet():
    dtok = DateTokens(Hasher(KEY, "a"))
    names = [c.name for c in dtok.columns]
    a = dict(zip(names, dtok.row(dt.date(1985, 4, 3)), strict=True))
    swapped = dict(zip(names, dtok.row(dt.date(1985, 3, 4)), strict=True))
    nxt = dict(zip(names, dtok.row(dt.date(1985, 4, 4)), strict=True))
    other_year = dict(zip(names, dtok.row(dt.date(1986, 4, 3)), strict=True))
    assert a["dob_swap"] == swapped["dob_exact"]
    assert a["dob_next"] == nxt["dob_exact"] and nxt["dob_prev"] == a["dob_exact"]
    assert a["dob_md"] == other_year["dob_md"] and a["dob_exact"] != other_year["dob_exact"]
    assert a["dob_ym"] == nxt["dob_ym"]
    # No swap when the day cannot be a month, or day == month.
    assert dict(zip(names, dtok.row(dt.date(1985, 4, 13)), strict=True))["dob_swap"] is None
    assert dict(zip(names, dtok.row(dt.date(1985, 4, 4)), strict=True))["dob_swap"] is None


def test_nulls_stay_null():
    tok = Hasher(KEY, "a").tokenizer(ts.DOMAIN_NINO, "nino")
    out = simple_tokens(pa.array(["AB123456", None, "AB123456"]), tok)
    assert out.to_pylist()[1] is None
    assert out.to_pylist()[0] == out.to_pylist()[2] == tok("AB123456")
    assert tok("") not in out.to_pylist()


def test_token_is_truncated_hmac_of_tagged_value_under_hkdf_subkey():
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    sub = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"wmw-link/v1|wmw-outcomes|name"
    ).derive(b"k" * 32)
    digest = hmac.new(sub, b"name\x1fjohn", hashlib.sha256).digest()
    expected = int.from_bytes(digest[:8], "big", signed=True)
    assert Hasher(KEY, "wmw-outcomes").tokenizer(ts.DOMAIN_NAME, "name")("john") == expected
    cached = Hasher(KEY, "wmw-outcomes").cached_tokenizer(ts.DOMAIN_NAME, "name", max_entries=1)
    # A full cache is cleared, never wrong.
    assert [cached(v) for v in ("john", "ann", "john")][2] == expected


def test_row_ref_is_128_bit_hex_of_hmac_under_the_ref_domain():
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    sub = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"wmw-link/v1|wmw-outcomes|row_ref"
    ).derive(b"k" * 32)
    expected = hmac.new(sub, b"hmrc_rti\x1fR1", hashlib.sha256).digest()[:16].hex()
    ref = Hasher(KEY, "wmw-outcomes").ref_tokenizer(ts.DOMAIN_ROW_REF, "hmrc_rti")
    assert ref("R1") == expected and len(expected) == 32


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz '-", min_size=1, max_size=40), max_size=30
    )
)
def test_bloom_filters_built_together_equal_those_built_one_by_one(names):
    h = Hasher(KEY, "a")
    enc = BloomEncoder(lambda b: h.digest(ts.DOMAIN_BLOOM, b))
    words, pop = enc.encode_many(names)
    assert words.shape == (len(names), ts.BLOOM_WORDS) and words.dtype.name == "int64"
    for i, name in enumerate(names):
        one_words, one_pop = enc.encode(name)
        assert words[i].tolist() == one_words and int(pop[i]) == one_pop


def test_name_arrays_equal_rows_and_keep_nulls():
    nt = _name_tokens()
    values = pa.array(["mary ann", None, "john", "mary ann", "zoë"])
    arrays = nt.arrays(values)
    assert len(arrays) == len(nt.columns)
    for i, v in enumerate(values.to_pylist()):
        got = tuple(a[i].as_py() for a in arrays)
        if v is None:
            assert all(x is None for x in got)
        else:
            assert got == nt.row(v)


def test_batch_lookups_equal_single_tokens_and_stay_bounded():
    h = Hasher(KEY, "wmw-outcomes")
    single = h.tokenizer(ts.DOMAIN_POSTCODE, "unit")
    cached = h.cached_tokenizer(ts.DOMAIN_POSTCODE, "unit", max_entries=5)
    first = [f"b{i} 1aa" for i in range(4)]
    assert cached.many(first) == [single(v) for v in first]
    second = [f"b{i} 1aa" for i in range(2, 8)]  # overlaps, and overflows the cache
    assert cached.many(second) == [single(v) for v in second]
    assert len(cached._cache) <= len(second)
    ref = h.ref_tokenizer(ts.DOMAIN_ROW_REF, "hmrc_rti")
    assert ref.many(["R1", "R2"]) == [ref("R1"), ref("R2")] and ref("R1") != ref("R2")


def test_a_very_long_name_is_encoded_alone_and_the_same():
    import tracemalloc

    h = Hasher(KEY, "a")
    enc = BloomEncoder(lambda b: h.digest(ts.DOMAIN_BLOOM, b))
    names = [f"name{i}" for i in range(2000)] + ["x" * 20_000 + "y"]
    tracemalloc.start()
    words, pop = enc.encode_many(names)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Fixed-width arrays as wide as the long name would take over 600 MB here.
    assert peak < 50_000_000
    for i in (0, 1999, 2000):
        one_words, one_pop = enc.encode(names[i])
        assert words[i].tolist() == one_words and int(pop[i]) == one_pop
