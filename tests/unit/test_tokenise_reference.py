"""Tokens of a small synthetic extract equal a reference computed the plain way, value by value.

``tokenise`` hashes distinct values only, in batches, through pre-keyed HMAC copies, reads the
digests with numpy, and builds Bloom filters by flipping bits of a salt's empty filter. None of
that may change a token. The reference here does the straightforward thing for every row on its
own: ``hmac.new(subkey, composite).digest()`` per value, per list element, per record id, and a
Bloom filter as the schema describes it (set the bigrams' keyed positions, append the
complement, permute by the stable argsort of the salt's ChaCha20 keystream, pack the bits). It
runs once in one process and once on two processes with small batches (caches that carry over
between batches, the pool, several row groups).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _tokenise_data import AGREEMENT
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from wmw_link import token_schema as ts
from wmw_link.agreement import load_agreement
from wmw_link.keys import SecretKey
from wmw_link.normalise import Dates, normalise_names, normalise_ninos, normalise_postcodes
from wmw_link.synth import extract_path, generate
from wmw_link.tokenise import tokenise
from wmw_link.tokenise.composites import bigrams, bloom_names, composite_inputs

TODAY = dt.date(2026, 6, 1)
LINK = SecretKey(b"reference-link-key-0123456789abc")
REF = SecretKey(b"reference-own-ref-key-0123456789")
DATASET = "hmrc_rti"


def _hmac(subkey: bytes, value: str) -> bytes:
    return hmac.new(subkey, value.encode("utf-8"), hashlib.sha256).digest()


def _token(subkey: bytes, value: str) -> int:
    return int.from_bytes(_hmac(subkey, value)[:8], "big", signed=True)


def _bloom_words(name: str, salt: str, filt: str) -> list[int]:
    """One balanced, salted filter, built bit by bit as docs/token-schema.md describes it."""
    pos_key = LINK.derive("wmw-outcomes", f"{ts.DOMAIN_PREFIX}{filt}:positions")
    perm_key = LINK.derive("wmw-outcomes", f"{ts.DOMAIN_PREFIX}{filt}:permutation")
    raw = np.zeros(ts.BLOOM_RAW_BITS, dtype=bool)
    for gram in bigrams(name):
        raw[int.from_bytes(_hmac(pos_key, gram)[:8], "big") % ts.BLOOM_RAW_BITS] = True
    balanced = np.concatenate([raw, ~raw])
    stream = Cipher(algorithms.ChaCha20(_hmac(perm_key, salt), bytes(16)), mode=None).encryptor()
    rand = np.frombuffer(stream.update(bytes(4 * ts.BLOOM_BITS)), dtype="<u4")
    bits = balanced[np.argsort(rand, kind="stable")]
    return np.packbits(bits, bitorder="little").view("<u8").view(np.int64).tolist()


def _reference(extract: pa.Table) -> dict[str, dict[str, object]]:
    """Record id -> {column: token} for every row, one row and one value at a time."""
    ds = load_agreement(AGREEMENT).dataset(DATASET)
    col = {f.type.value: f.column for f in ds.identifiers}
    raw = {k: pc.utf8_trim_whitespace(extract.column(c).combine_chunks()) for k, c in col.items()}
    fields = {
        ts.FORENAME: normalise_names(raw["forename"]).values,
        ts.SURNAME: normalise_names(raw["surname"]).values,
        ts.DOB: Dates("%Y-%m-%d", TODAY)(raw["date_of_birth"]).values,
        ts.POSTCODE: normalise_postcodes(raw["postcode"]).unit.values,
        ts.NINO: normalise_ninos(raw["nino"]).values,
    }
    columns = ts.columns_for_dataset(ds)
    inputs = {k: v.to_pylist() for k, v in composite_inputs(fields, columns).items()}
    blooms = {p: (n.to_pylist(), s.to_pylist()) for p, (n, s) in bloom_names(fields).items()}
    ref_key = REF.derive("wmw-outcomes", ts.DOMAIN_ROW_REF)
    out: dict[str, dict[str, object]] = {}
    for i, rid in enumerate(extract.column(ds.record_id).to_pylist()):
        row: dict[str, object] = {
            ts.ROW_REF: _hmac(ref_key, f"{DATASET}\x1f{rid}")[: ts.ROW_REF_BYTES].hex()
        }
        for c in columns:
            if c.kind == "bloom_word":
                continue
            sub = LINK.derive("wmw-outcomes", c.domain)
            v = inputs[c.name][i]
            if v is None:
                row[c.name] = None
            elif c.kind == "hmac_list":
                row[c.name] = sorted(_token(sub, e) for e in v)
            else:
                row[c.name] = _token(sub, v)
        for part, (names, salts) in blooms.items():
            filt, word_cols = ts.BLOOM_FILTERS[part]
            words = (
                [None] * len(word_cols)
                if names[i] is None
                else _bloom_words(names[i], salts[i], filt)
            )
            row.update(zip(word_cols, words, strict=True))
        out.setdefault(rid, row)  # a repeated record id: the first row is kept
    return out


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    out = tmp_path_factory.mktemp("synth")
    generate(people=250, seed=7, out=out)
    return pq.read_table(extract_path(out, DATASET))


@pytest.mark.parametrize(("workers", "batch_rows"), [(1, 100_000), (2, 53)])
def test_tokens_equal_the_value_by_value_reference(tmp_path, extract, workers, batch_rows):
    res = tokenise(
        AGREEMENT, DATASET, extract, LINK, REF, tmp_path, workers=workers,
        batch_rows=batch_rows, today=TODAY, progress=False,
    )  # fmt: skip
    assert res.rows_tokens > 200 and res.workers_used == workers
    tokens = pq.read_table(res.tokens).to_pylist()
    record_ids = pq.read_table(res.crosswalk).column(0).to_pylist()
    reference = _reference(extract)
    names = [ts.ROW_REF, *(c.name for c in ts.columns_for_dataset(
        load_agreement(AGREEMENT).dataset(DATASET)))]  # fmt: skip
    assert list(tokens[0]) == names
    lists = seen = 0
    for rid, row in zip(record_ids, tokens, strict=True):
        assert row == reference[rid], rid
        lists += sum(len(v) for k, v in row.items() if isinstance(v, list))
        seen += 1
    # The comparison covered list tokens, nulls and every row.
    assert lists > 3 * seen and seen == res.rows_tokens
    assert any(v is None for row in tokens for v in row.values())
