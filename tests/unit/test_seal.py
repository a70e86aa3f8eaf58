"""Sealed transfers: round trips, every tamper case, and the agreement's flow and field rules."""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
from collections import Counter
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wmw_link import runrecord, seal, token_schema
from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import InputDataError, KeyFileError, PolicyError, VerificationError
from wmw_link.party_keys import new_keyring, new_party, public_path
from wmw_link.seal import classify, read_envelope, seal_file, seal_outputs, unseal_file

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"
PARTIES = ["dwp", "hmrc", "linkage-unit", "insight-team"]


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    secrets = new_keyring(PARTIES, tmp_path / "secrets", tmp_path / "ring")
    return {**secrets, "ring": tmp_path / "ring"}


def _tokens(path: Path, rows: int = 3, extra: dict[str, list[str]] | None = None) -> Path:
    cols = {
        "row_ref": [f"{i:032x}" for i in range(rows)],
        "nino": [f"{i + 7:032x}" for i in range(rows)],
        "fn_dob": ["a" * 32] * rows,
    }
    cols.update(extra or {})
    pq.write_table(pa.table(cols), path)
    return path


def _payload(path: Path, extra: dict[str, list[str]] | None = None) -> Path:
    cols = {"row_ref": ["r1", "r2", "r3"], "benefit": ["UC", "PIP", "UC"]}
    cols.update(extra or {})
    pq.write_table(pa.table(cols), path)
    return path


def _manifest(
    path: Path,
    agreement: Agreement,
    files: dict[str, Path] | None = None,
    dataset: str = "dwp_claims",
) -> Path:
    """A tokens manifest made by the real writer (tokenise's build_manifest), for ``files``."""
    from wmw_link.files import sha256_file, write_json_atomic
    from wmw_link.tokenise.manifest import build_manifest

    ds = agreement.dataset(dataset)
    shipped = {
        kind: (p, sha256_file(p), pq.read_metadata(p).num_rows) for kind, p in (files or {}).items()
    }
    manifest = build_manifest(
        agreement=agreement,
        dataset=ds,
        party=ds.controller,
        key_check="0f" * 16,
        token_columns=token_schema.columns_for_identifiers([f.type.value for f in ds.identifiers]),
        payload_types={f.name: f.type.value for f in ds.analyst_payload()},
        # Consistent counts (rule 'manifest counts'): one file row per tokenised row.
        rows_input=1 + next((r for _, _, r in shipped.values()), 3),
        rows_tokens=next((r for _, _, r in shipped.values()), 3),
        rejected_by_reason=Counter({f"{ds.record_id}:duplicate_record_id": 1}),
        nulled_by_reason=Counter(
            {f"{ds.identifiers[0].column}:missing": 2, "payload.birth_year:future_date": 1}
        ),
        files=shipped,
    )
    write_json_atomic(path, manifest)
    return path


def _seal_tokens(tmp_path: Path, keys: dict[str, Path], agreement: Agreement, **kw):
    src = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    return src, seal_file(
        src,
        agreement=agreement,
        secret=keys["dwp"],
        recipient="linkage-unit",
        keyring=keys["ring"],
        out=tmp_path / "out" / "dwp_claims.tokens.parquet.sealed",
        **kw,
    )


def _unseal(
    path: Path,
    keys: dict[str, Path],
    agreement: Agreement,
    out: Path,
    party: str = "linkage-unit",
    **kw,
):
    out.mkdir(parents=True, exist_ok=True)
    return unseal_file(
        path, agreement=agreement, secret=keys[party], keyring=keys["ring"], out=out, **kw
    )


def _check_refused(exc: pytest.ExceptionInfo[BaseException], check: str) -> None:
    assert f"check '{check}' failed" in str(exc.value), str(exc.value)


# -- round trips ---------------------------------------------------------------------------------


def test_round_trip_restores_the_exact_bytes(tmp_path: Path, keys, agreement) -> None:
    src, sealed = _seal_tokens(tmp_path, keys, agreement)
    env = sealed.envelope
    assert env["sender"] == "dwp" and env["recipient"] == "linkage-unit"
    assert env["agreement"] == {
        "id": agreement.id,
        "version": agreement.version,
        "hash": agreement.hash,
    }
    assert env["file"]["name"] == src.name and env["file"]["kind"] == "tokens"
    assert env["file"]["dataset"] == "dwp_claims"
    assert src.read_bytes() not in sealed.path.read_bytes()  # encrypted, not wrapped
    result = _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    assert result.path == tmp_path / "ttp" / src.name
    assert result.path.read_bytes() == src.read_bytes()
    assert result.checks == (
        "format",
        "signature",
        "recipient",
        "agreement",
        "validity",
        "flows",
        "ciphertext",
        "decryption",
        "plaintext",
        "fields",
    )


def test_multi_chunk_file_streams_through(tmp_path: Path, keys, agreement) -> None:
    # age encrypts in 64 KiB chunks; a file of several chunks plus a tail must round-trip.
    src = tmp_path / "dwp_claims.tokens.parquet"
    rows = 4000  # random hex does not compress: several 64 KiB chunks
    cols = {c: [os.urandom(16).hex() for _ in range(rows)] for c in ("row_ref", "nino", "fn_dob")}
    pq.write_table(pa.table(cols), src, compression="none")
    assert src.stat().st_size > 3 * 65536
    sealed = seal_file(
        src, agreement=agreement, secret=keys["dwp"], recipient="linkage-unit", keyring=keys["ring"]
    )
    assert sealed.path == tmp_path / "dwp_claims.tokens.parquet.sealed"
    result = _unseal(sealed.path, keys, agreement, tmp_path / "in")
    assert result.path.read_bytes() == src.read_bytes()
    assert sealed.envelope["file"]["size"] == src.stat().st_size


def test_seal_and_unseal_fill_the_run_record(tmp_path: Path, keys, agreement) -> None:
    token = runrecord.start("seal")
    try:
        src, sealed = _seal_tokens(tmp_path, keys, agreement)
        rec = runrecord.current()
        assert rec.inputs[str(src)] == sealed.sha256
        assert str(sealed.path) in rec.outputs
        assert rec.rows == {"dwp_claims.tokens.parquet": 3}
    finally:
        runrecord.finish(token)


# -- tamper cases ----------------------------------------------------------------------------------


def test_flipped_ciphertext_byte_is_refused(tmp_path: Path, keys, agreement) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    data = bytearray(sealed.path.read_bytes())
    data[200] ^= 0x01
    sealed.path.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    _check_refused(exc, "ciphertext")
    assert not (tmp_path / "ttp" / "dwp_claims.tokens.parquet").exists()
    assert list((tmp_path / "ttp").iterdir()) == []  # no temporary left behind


def _rewrite(path: Path, envelope: dict, signing_key) -> None:
    """Put a new envelope, signed with ``signing_key``, in front of the same ciphertext."""
    _, _, _, ct_len = read_envelope(path)
    ct = path.read_bytes()[:ct_len]
    env_bytes = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    sig = signing_key.sign(env_bytes).signature
    path.write_bytes(
        ct + env_bytes + sig + struct.pack(">8sQI", b"WMWSEAL1", ct_len, len(env_bytes))
    )


def test_flipped_envelope_byte_breaks_the_signature(tmp_path: Path, keys, agreement) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    data = bytearray(sealed.path.read_bytes())
    _, env_bytes, _, ct_len = read_envelope(sealed.path)
    at = ct_len + env_bytes.index(b'"sha256":"') + len(b'"sha256":"')
    data[at] = ord("0") if data[at] != ord("0") else ord("1")  # still valid JSON
    sealed.path.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    _check_refused(exc, "signature")


def test_envelope_signed_by_someone_else_is_refused(tmp_path: Path, keys, agreement) -> None:
    # hmrc re-signs a file that claims to come from dwp (e.g. to swap in its own content).
    from wmw_link.party_keys import load_secret

    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    envelope, _, _, _ = read_envelope(sealed.path)
    envelope["created_at"] = "2026-01-02T00:00:00+00:00"
    _rewrite(sealed.path, envelope, load_secret(keys["hmrc"]).signing_key)
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    _check_refused(exc, "signature")
    assert "not signed by 'dwp'" in str(exc.value)
    # Re-signed by dwp itself, the same envelope passes: the test above failed on the signer.
    _rewrite(sealed.path, envelope, load_secret(keys["dwp"]).signing_key)
    assert _unseal(sealed.path, keys, agreement, tmp_path / "ttp2").path.exists()


@pytest.mark.parametrize("cut", [1, 30, 500])
def test_truncated_file_is_refused(tmp_path: Path, keys, agreement, cut: int) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    data = sealed.path.read_bytes()
    sealed.path.write_bytes(data[:-cut])
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    _check_refused(exc, "format")


def test_truncated_ciphertext_with_a_rebuilt_footer_is_refused(
    tmp_path: Path, keys, agreement
) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    _, env_bytes, sig, ct_len = read_envelope(sealed.path)
    data = sealed.path.read_bytes()
    short = data[: ct_len - 16]
    footer = struct.pack(">8sQI", b"WMWSEAL1", len(short), len(env_bytes))
    sealed.path.write_bytes(short + env_bytes + sig + footer)
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    _check_refused(exc, "ciphertext")


def test_swapped_ciphertexts_of_two_parties_are_refused(tmp_path: Path, keys, agreement) -> None:
    # dwp's envelope and signature in front of hmrc's ciphertext (both sealed to the TTP).
    _, dwp = _seal_tokens(tmp_path, keys, agreement)
    hsrc = _tokens(tmp_path / "hmrc_rti.tokens.parquet", rows=5)
    hmrc = seal_file(
        hsrc,
        agreement=agreement,
        secret=keys["hmrc"],
        recipient="linkage-unit",
        keyring=keys["ring"],
    )
    _, env_bytes, sig, _ = read_envelope(dwp.path)
    _, _, _, h_ct_len = read_envelope(hmrc.path)
    h_ct = hmrc.path.read_bytes()[:h_ct_len]
    spliced = tmp_path / "spliced.sealed"
    spliced.write_bytes(
        h_ct + env_bytes + sig + struct.pack(">8sQI", b"WMWSEAL1", len(h_ct), len(env_bytes))
    )
    with pytest.raises(VerificationError) as exc:
        _unseal(spliced, keys, agreement, tmp_path / "ttp")
    _check_refused(exc, "ciphertext")


def test_file_from_an_unexpected_sender_is_refused(tmp_path: Path, keys, agreement) -> None:
    hsrc = _tokens(tmp_path / "hmrc_rti.tokens.parquet")
    hmrc = seal_file(
        hsrc,
        agreement=agreement,
        secret=keys["hmrc"],
        recipient="linkage-unit",
        keyring=keys["ring"],
    )
    with pytest.raises(VerificationError) as exc:
        _unseal(hmrc.path, keys, agreement, tmp_path / "ttp", expect_sender="dwp")
    _check_refused(exc, "sender")


def test_an_envelope_naming_an_invalid_sender_is_refused(tmp_path: Path, keys, agreement) -> None:
    """A flipped bit can turn the sender 'dwp' into 'Dwp', not a valid party id: the file is
    refused as unverifiable (VerificationError), not a configuration error."""
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    data = sealed.path.read_bytes()
    assert data.count(b'"dwp"') >= 1
    sealed.path.write_bytes(data.replace(b'"sender":"dwp"', b'"sender":"Dwp"').replace(
        b'"sender": "dwp"', b'"sender": "Dwp"'))  # fmt: skip
    assert sealed.path.read_bytes() != data
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    assert "check '" in str(exc.value)


def test_file_for_another_party_is_refused(tmp_path: Path, keys, agreement) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "an", party="insight-team")
    _check_refused(exc, "recipient")


def test_replay_under_another_agreement_is_refused(tmp_path: Path, keys, agreement) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    other_text = agreement.model_copy(update={"purpose": "something else"})
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, other_text, tmp_path / "a")
    _check_refused(exc, "agreement")
    assert "hash differs" in str(exc.value)
    other_id = agreement.model_copy(update={"id": "another-scheme"})
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, other_id, tmp_path / "b")
    _check_refused(exc, "agreement")


def test_newer_version_accepts_older_files_only_when_declared_compatible(
    tmp_path: Path, keys, agreement
) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    v2 = agreement.model_copy(update={"version": 2, "compatible_with": []})
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, v2, tmp_path / "a")
    _check_refused(exc, "agreement")
    assert "compatible_with" in str(exc.value)
    v2_compatible = agreement.model_copy(update={"version": 2, "compatible_with": [1]})
    result = _unseal(sealed.path, keys, v2_compatible, tmp_path / "b")
    assert result.path.exists()


def test_stale_recipient_key_fails_decryption(tmp_path: Path, keys, agreement) -> None:
    # The sender's keyring still holds the TTP's previous public key.
    stale_ring = tmp_path / "stale"
    stale_ring.mkdir()
    new_party("linkage-unit", tmp_path / "old-ttp")
    for party in ("dwp", "hmrc", "insight-team"):
        (stale_ring / f"{party}.public.json").write_bytes(
            public_path(keys["ring"], party).read_bytes()
        )
    (stale_ring / "linkage-unit.public.json").write_bytes(
        public_path(tmp_path / "old-ttp", "linkage-unit").read_bytes()
    )
    src = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    sealed = seal_file(
        src, agreement=agreement, secret=keys["dwp"], recipient="linkage-unit", keyring=stale_ring
    )
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    _check_refused(exc, "decryption")


def test_manifest_hash_must_match(tmp_path: Path, keys, agreement) -> None:
    src, sealed = _seal_tokens(tmp_path, keys, agreement)
    manifest = tmp_path / "dwp_claims.manifest.json"
    files = {"tokens": {"name": src.name, "sha256": sealed.sha256, "rows": 3}}
    manifest.write_text(json.dumps({"files": files}))
    ok = _unseal(sealed.path, keys, agreement, tmp_path / "a", manifest=manifest)
    assert "manifest" in ok.checks
    # An old manifest (from an earlier extract) lists another hash for the same name.
    files["tokens"]["sha256"] = "0" * 64
    manifest.write_text(json.dumps({"files": files}))
    with pytest.raises(VerificationError) as exc:
        _unseal(sealed.path, keys, agreement, tmp_path / "b", manifest=manifest)
    _check_refused(exc, "manifest")
    assert not (tmp_path / "b" / src.name).exists()
    manifest.write_text(json.dumps({"files": {}}))
    with pytest.raises(VerificationError, match="does not list"):
        _unseal(sealed.path, keys, agreement, tmp_path / "c", manifest=manifest)


def test_output_must_keep_the_original_name(tmp_path: Path, keys, agreement) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    wrong = tmp_path / "ttp" / "hmrc_rti.tokens.parquet"
    wrong.parent.mkdir()
    with pytest.raises(VerificationError) as exc:
        unseal_file(
            sealed.path,
            agreement=agreement,
            secret=keys["linkage-unit"],
            keyring=keys["ring"],
            out=wrong,
        )
    _check_refused(exc, "file-name")
    assert not wrong.exists()


def test_not_a_sealed_file(tmp_path: Path, keys, agreement) -> None:
    junk = tmp_path / "x.sealed"
    junk.write_bytes(b"hello" * 100)
    with pytest.raises(VerificationError) as exc:
        _unseal(junk, keys, agreement, tmp_path / "o")
    _check_refused(exc, "format")
    with pytest.raises(InputDataError):
        _unseal(tmp_path / "missing.sealed", keys, agreement, tmp_path / "o")


# -- the agreement's rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "dataset"),
    [
        ("dwp_claims.tokens.parquet", "tokens", "dwp_claims"),
        ("dwp_claims.payload.parquet", "payload", "dwp_claims"),
        ("dwp_claims.manifest.json", "tokens-manifest", "dwp_claims"),
        ("dwp_claims.map.parquet", "map", "dwp_claims"),
        ("link-manifest.json", "link-manifest", None),
    ],
)
def test_classify(name: str, kind: str, dataset: str | None) -> None:
    assert classify(name) == (kind, dataset)


@pytest.mark.parametrize(
    "name",
    ["dwp_claims.rejects.parquet", "dwp_claims.crosswalk.parquet", "notes.txt", "dwp.secret"],
)
def test_local_or_unknown_files_are_never_sealed(name: str) -> None:
    with pytest.raises(PolicyError, match="rule 'flows'"):
        classify(name)


@pytest.mark.parametrize(
    ("sender", "recipient", "file", "rule"),
    [
        ("dwp", "insight-team", "dwp_claims.tokens.parquet", "rule 'flows'"),  # tokens to analysts
        ("dwp", "linkage-unit", "dwp_claims.payload.parquet", "rule 'flows'"),  # payload to the TTP
        (
            "hmrc",
            "linkage-unit",
            "dwp_claims.tokens.parquet",
            "rule 'controller'",
        ),  # not its dataset
        (
            "linkage-unit",
            "insight-team",
            "dwp_claims.tokens.parquet",
            "rule 'flows'",
        ),  # TTP is no controller
        (
            "insight-team",
            "linkage-unit",
            "dwp_claims.map.parquet",
            "rule 'flows'",
        ),  # maps come from the TTP
        ("dwp", "nobody", "dwp_claims.tokens.parquet", "not in agreement"),  # unknown party
        (
            "dwp",
            "linkage-unit",
            "prison_records.tokens.parquet",
            "dataset 'prison_records' is not in agreement",
        ),
    ],
)
def test_flows_the_agreement_does_not_allow_are_refused_at_seal(
    tmp_path: Path, keys, agreement, sender: str, recipient: str, file: str, rule: str
) -> None:
    path = tmp_path / file
    if file.endswith(".tokens.parquet"):
        _tokens(path)
    elif file.endswith(".map.parquet"):
        pq.write_table(pa.table({"row_ref": ["a"], "person_id": ["p"]}), path)
    else:
        _payload(path)
    with pytest.raises(PolicyError, match=rule):
        seal_file(
            path,
            agreement=agreement,
            secret=keys[sender],
            recipient=recipient,
            keyring=keys["ring"],
        )
    assert not (tmp_path / (file + ".sealed")).exists()


def test_fields_not_permitted_are_refused_at_seal(tmp_path: Path, keys, agreement) -> None:
    payload = _payload(tmp_path / "dwp_claims.payload.parquet", extra={"phone": ["0121", "0121", "0121"]})
    with pytest.raises(PolicyError, match="rule 'fields'.*phone"):
        seal_file(
            payload,
            agreement=agreement,
            secret=keys["dwp"],
            recipient="insight-team",
            keyring=keys["ring"],
        )
    tokens = _tokens(tmp_path / "dwp_claims.tokens.parquet", extra={"surname_raw": ["x", "y", "z"]})
    with pytest.raises(PolicyError, match="rule 'fields'.*surname_raw"):
        seal_file(
            tokens,
            agreement=agreement,
            secret=keys["dwp"],
            recipient="linkage-unit",
            keyring=keys["ring"],
        )
    # NHS number tokens are not among dwp_claims's identifiers.
    nhs = _tokens(tmp_path / "dwp_claims.tokens.parquet", extra={"nhs": ["a", "b", "c"]})
    with pytest.raises(PolicyError, match="rule 'fields'.*nhs"):
        seal_file(
            nhs,
            agreement=agreement,
            secret=keys["dwp"],
            recipient="linkage-unit",
            keyring=keys["ring"],
        )


def test_forged_flow_is_refused_at_unseal_too(tmp_path: Path, keys, agreement, monkeypatch) -> None:
    # A controller with a modified tool seals its tokens to the analysts, validly signed: the
    # analysts' unseal applies the agreement itself and refuses to open tokens.
    monkeypatch.setattr(seal, "check_flow", lambda *a, **k: None)
    src = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    sealed = seal_file(
        src, agreement=agreement, secret=keys["dwp"], recipient="insight-team", keyring=keys["ring"]
    )
    monkeypatch.undo()
    with pytest.raises(PolicyError, match="rule 'flows'.*only go to a 'ttp'"):
        _unseal(sealed.path, keys, agreement, tmp_path / "an", party="insight-team")
    assert list((tmp_path / "an").iterdir()) == []


def test_forged_extra_field_is_refused_at_unseal(
    tmp_path: Path, keys, agreement, monkeypatch
) -> None:
    monkeypatch.setattr(seal, "check_fields", lambda *a, **k: None)
    src = _payload(tmp_path / "dwp_claims.payload.parquet", extra={"surname": ["a", "b", "c"]})
    sealed = seal_file(
        src, agreement=agreement, secret=keys["dwp"], recipient="insight-team", keyring=keys["ring"]
    )
    monkeypatch.undo()
    with pytest.raises(PolicyError, match="rule 'fields'.*surname"):
        _unseal(sealed.path, keys, agreement, tmp_path / "an", party="insight-team")
    assert list((tmp_path / "an").iterdir()) == []


def test_expired_agreement_is_refused(tmp_path: Path, keys, agreement) -> None:
    expired = agreement.model_copy(
        update={"valid_until": dt.date(2020, 1, 1), "valid_from": dt.date(2019, 1, 1)}
    )
    src = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    with pytest.raises(PolicyError, match="rule 'validity'"):
        seal_file(
            src,
            agreement=expired,
            secret=keys["dwp"],
            recipient="linkage-unit",
            keyring=keys["ring"],
        )


def test_secret_not_matching_the_keyring_is_refused(tmp_path: Path, keys, agreement) -> None:
    new_party("dwp", tmp_path / "other")
    os.chmod(tmp_path / "other" / "dwp.secret", 0o600)
    src = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    with pytest.raises(KeyFileError, match="does not match the keyring"):
        seal_file(
            src,
            agreement=agreement,
            secret=tmp_path / "other" / "dwp.secret",
            recipient="linkage-unit",
            keyring=keys["ring"],
        )


def test_seal_outputs_sends_each_file_only_where_it_may_go(tmp_path: Path, keys, agreement) -> None:
    out = tmp_path / "tok"
    out.mkdir()
    files = [
        _tokens(out / "dwp_claims.tokens.parquet"),
        _payload(out / "dwp_claims.payload.parquet"),
        out / "dwp_claims.manifest.json",
        out / "dwp_claims.rejects.parquet",
        out / "dwp_claims.crosswalk.parquet",
    ]
    _manifest(files[2], agreement, {"tokens": files[0], "payload": files[1]})
    pq.write_table(pa.table({"row_number": [1]}), files[3])
    pq.write_table(pa.table({"record_id": ["c1"], "row_ref": ["r"]}), files[4])
    results = seal_outputs(
        files,
        agreement=agreement,
        secret=keys["dwp"],
        recipients=["linkage-unit", "insight-team"],
        keyring=keys["ring"],
        out_dir=tmp_path / "outbox",
    )
    got = sorted(str(r.path.relative_to(tmp_path / "outbox")) for r in results)
    assert got == [
        "insight-team/dwp_claims.manifest.json.sealed",
        "insight-team/dwp_claims.payload.parquet.sealed",
        "linkage-unit/dwp_claims.manifest.json.sealed",
        "linkage-unit/dwp_claims.tokens.parquet.sealed",
    ]
    inbox = tmp_path / "ttp"
    unsealed = seal.unseal_all(
        tmp_path / "outbox" / "linkage-unit",
        agreement=agreement,
        secret=keys["linkage-unit"],
        keyring=keys["ring"],
        out_dir=inbox,
    )
    assert sorted(p.name for p in inbox.iterdir()) == [
        "dwp_claims.manifest.json",
        "dwp_claims.tokens.parquet",
    ]
    assert len(unsealed) == 2
    with pytest.raises(PolicyError, match="none of the files may go to 'hmrc'"):
        seal_outputs(
            files,
            agreement=agreement,
            secret=keys["dwp"],
            recipients=["hmrc"],
            keyring=keys["ring"],
            out_dir=tmp_path / "x",
        )


# -- command line ------------------------------------------------------------------------------


def test_seal_and_unseal_commands(tmp_path: Path, keys) -> None:
    from click.testing import CliRunner

    from wmw_link.audit import verify
    from wmw_link.cli import main

    log = tmp_path / "audit.jsonl"
    src = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    common = ["--agreement", str(AGREEMENT), "--keyring", str(keys["ring"])]
    runner = CliRunner()
    sealed = tmp_path / "send" / "dwp_claims.tokens.parquet.sealed"
    r = runner.invoke(
        main,
        [
            "--audit-log",
            str(log),
            "seal",
            str(src),
            *common,
            "--from",
            "dwp",
            "--secret",
            str(keys["dwp"]),
            "--to",
            "linkage-unit",
            "--out",
            str(sealed),
            "--delivery",  # a tokens file sealed without its manifest: the number is given
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "sealed dwp_claims.tokens.parquet (tokens" in r.output
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # The analysts cannot open it; the refusal names the check.
    r = runner.invoke(
        main,
        [
            "--audit-log",
            str(log),
            "unseal",
            str(sealed),
            *common,
            "--as",
            "insight-team",
            "--secret",
            str(keys["insight-team"]),
            "--out",
            str(inbox),
        ],
    )
    assert r.exit_code == 1 and "check 'recipient' failed" in r.output
    # --as must match the secret.
    r = runner.invoke(
        main,
        [
            "--audit-log",
            str(log),
            "unseal",
            str(sealed),
            *common,
            "--as",
            "linkage-unit",
            "--secret",
            str(keys["insight-team"]),
            "--out",
            str(inbox),
        ],
    )
    assert r.exit_code == 1 and "belongs to 'insight-team'" in r.output
    r = runner.invoke(
        main,
        [
            "--audit-log",
            str(log),
            "unseal",
            str(sealed),
            *common,
            "--as",
            "linkage-unit",
            "--secret",
            str(keys["linkage-unit"]),
            "--out",
            str(inbox),
            "--from",
            "dwp",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (inbox / src.name).read_bytes() == src.read_bytes()
    entries = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(e["command"], e["party"], e["outcome"][:7]) for e in entries] == [
        ("seal", "dwp", "ok"),
        ("unseal", "insight-team", "refused"),
        ("unseal", None, "refused"),
        ("unseal", "linkage-unit", "ok"),
    ]
    assert entries[0]["role"] == "controller" and entries[3]["role"] == "ttp"
    assert entries[3]["outputs"][0]["sha256"] == entries[0]["inputs"][0]["sha256"]
    assert verify(log).lines == 4


def test_a_file_sealed_in_force_does_not_open_after_expiry(
    tmp_path: Path, keys, agreement, monkeypatch
) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    original = Agreement.require_in_force
    # The same agreement (same hash), on a day after its valid_until.
    monkeypatch.setattr(
        Agreement, "require_in_force", lambda self, on=None: original(self, dt.date(2030, 1, 1))
    )
    with pytest.raises(PolicyError, match="rule 'validity'.*expired"):
        _unseal(sealed.path, keys, agreement, tmp_path / "late")
    assert list((tmp_path / "late").iterdir()) == []


def test_audit_hashes_of_sealed_files_are_their_real_hashes(
    tmp_path: Path, keys, agreement
) -> None:
    from wmw_link.files import sha256_file

    token = runrecord.start("seal")
    try:
        _, sealed = _seal_tokens(tmp_path, keys, agreement)
        assert runrecord.current().outputs[str(sealed.path)] == sha256_file(sealed.path)
    finally:
        runrecord.finish(token)
    token = runrecord.start("unseal")
    try:
        result = _unseal(sealed.path, keys, agreement, tmp_path / "in")
        rec = runrecord.current()
        assert rec.inputs[str(sealed.path)] == sha256_file(sealed.path)
        assert rec.outputs[str(result.path)] == sha256_file(result.path)
    finally:
        runrecord.finish(token)


def test_inbox_unseal_checks_each_file_against_its_manifest(
    tmp_path: Path, keys, agreement
) -> None:
    from click.testing import CliRunner

    from wmw_link.cli import main

    out = tmp_path / "tok"
    out.mkdir()
    tokens = _tokens(out / "dwp_claims.tokens.parquet")
    manifest = _manifest(out / "dwp_claims.manifest.json", agreement, {"tokens": tokens})
    outbox = tmp_path / "outbox"
    seal_outputs(
        [tokens, manifest], agreement=agreement, secret=keys["dwp"], recipients=["linkage-unit"],
        keyring=keys["ring"], out_dir=outbox,
    )  # fmt: skip
    args = [
        "--audit-log", str(tmp_path / "a.jsonl"), "unseal", str(outbox / "linkage-unit"),
        "--agreement", str(AGREEMENT), "--secret", str(keys["linkage-unit"]),
        "--keyring", str(keys["ring"]), "--out", str(tmp_path / "inbox"), "--from", "dwp",
    ]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("unsealed dwp_claims.manifest.json")  # manifests first
    assert "manifest" in lines[1].split("checks passed:")[1]  # the tokens were checked against it
    # A newer extract arrives while the inbox still holds the old manifest: refused.
    (tmp_path / "bare").mkdir()
    tokens = _tokens(tmp_path / "bare" / "dwp_claims.tokens.parquet", rows=4)
    seal_file(
        tokens, agreement=agreement, secret=keys["dwp"], recipient="linkage-unit",
        keyring=keys["ring"], out=tmp_path / "new" / "dwp_claims.tokens.parquet.sealed",
        delivery=2,
    )  # fmt: skip
    r = CliRunner().invoke(main, [*args[:3], str(tmp_path / "new"), *args[4:]])
    assert r.exit_code == 1 and "check 'manifest' failed" in r.output


# -- properties ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    secrets = new_keyring(PARTIES, root / "secrets", root / "ring")
    return {**secrets, "ring": root / "ring"}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.binary(min_size=0, max_size=3 * 65536 + 7),
    where=st.floats(0, 1),
    bit=st.integers(0, 7),
)
def test_any_content_round_trips_and_any_flipped_bit_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
    module_keys,
    agreement,
    content: bytes,
    where: float,
    bit: int,
) -> None:
    from wmw_link.party_keys import load_secret

    work = tmp_path_factory.mktemp("prop")
    src = work / "dwp_claims.manifest.json"
    src.write_bytes(content)
    dwp, ttp = load_secret(module_keys["dwp"]), load_secret(module_keys["linkage-unit"])
    # This property is about the framing (any bytes, any flipped bit), not the content rules,
    # which would refuse arbitrary bytes as a manifest: they are tested above.
    with mock.patch.object(seal, "check_fields", lambda *a, **k: None):
        sealed = seal_file(
            src,
            agreement=agreement,
            secret=dwp,
            recipient="linkage-unit",
            keyring=module_keys["ring"],
        )
        out = work / "out"
        out.mkdir()
        result = unseal_file(
            sealed.path, agreement=agreement, secret=ttp, keyring=module_keys["ring"], out=out
        )
        assert result.path.read_bytes() == content
        data = bytearray(sealed.path.read_bytes())
        i = min(int(where * len(data)), len(data) - 1)
        data[i] ^= 1 << bit
        sealed.path.write_bytes(bytes(data))
        result.path.unlink()
        with pytest.raises(VerificationError, match="unseal refused: check '"):
            unseal_file(
                sealed.path, agreement=agreement, secret=ttp, keyring=module_keys["ring"], out=out
            )
    assert list(out.iterdir()) == []


# -- manifests: only what the writers produce ---------------------------------------------------


def _seal_manifest(path: Path, keys, agreement, sender="dwp", recipient="linkage-unit"):
    return seal_file(
        path, agreement=agreement, secret=keys[sender], recipient=recipient, keyring=keys["ring"]
    )


EXTRACT_CSV = (
    "claim_ref,nino,first_name,surname,dob,postcode,gender\n"
    "C1,QQ123456C,Amelia,Thornbury,03/04/1985,B23 4XY,F\n"
)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (EXTRACT_CSV.encode(), "it is not JSON"),
        (
            json.dumps([{"nino": "QQ123456C", "surname": "Thornbury"}]).encode(),
            "it is not a JSON object",
        ),
        # An extract as JSON in the writers' very layout still has keys no writer produces.
        (
            (
                json.dumps({"C1": {"surname": "Thornbury"}}, indent=2, sort_keys=True) + "\n"
            ).encode(),
            "key(s) the writer never produces",
        ),
    ],
)
def test_renamed_extract_is_not_sealed_as_a_manifest(
    tmp_path: Path, keys, agreement, content: bytes, why: str
) -> None:
    src = tmp_path / "dwp_claims.manifest.json"
    src.write_bytes(content)
    with pytest.raises(PolicyError, match="rule 'fields'") as exc:
        _seal_manifest(src, keys, agreement)
    assert why in str(exc.value)
    for value in ("Thornbury", "QQ123456C", "Amelia", "C1"):
        assert value not in str(exc.value)  # a refusal never repeats what the file holds
    assert not (tmp_path / "dwp_claims.manifest.json.sealed").exists()


def test_renamed_extract_forged_past_seal_is_refused_at_unseal(
    tmp_path: Path, keys, agreement, monkeypatch
) -> None:
    src = tmp_path / "dwp_claims.manifest.json"
    src.write_bytes(EXTRACT_CSV.encode())
    monkeypatch.setattr(seal, "check_fields", lambda *a, **k: None)
    sealed = _seal_manifest(src, keys, agreement)
    monkeypatch.undo()
    with pytest.raises(PolicyError, match="rule 'fields'.*not JSON"):
        _unseal(sealed.path, keys, agreement, tmp_path / "ttp")
    assert list((tmp_path / "ttp").iterdir()) == []


def _edit(manifest: Path, change) -> Path:
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return manifest


SECRET = "Thornbury 03/04/1985"

TOKENS_MANIFEST_TAMPERING = {
    "kind": (lambda m: m.update(kind="wmw-link/link-manifest"), "'kind'"),
    "dataset": (lambda m: m.update(dataset="hmrc_rti"), "'dataset'"),
    "extra key": (lambda m: m.update(notes=SECRET), "1 key(s) the writer never produces"),
    "missing key": (lambda m: m.pop("key_check"), "lacks key_check"),
    "party": (lambda m: m.update(party="hmrc"), "'party'"),
    "agreement": (lambda m: m["agreement"].update(id="another"), "'agreement.id'"),
    "created_at": (lambda m: m.update(created_at=SECRET), "'created_at'"),
    "tool_version": (lambda m: m.update(tool_version=SECRET), "'tool_version'"),
    "key_check": (lambda m: m.update(key_check=SECRET), "'key_check'"),
    "not a token column": (
        lambda m: m["token_schema"]["columns"].update(surname_raw={}),
        "'token_schema.columns' has 1 key(s)",
    ),
    "another dataset's token column": (
        lambda m: m["token_schema"]["columns"].update(
            nhs=token_schema.BY_NAME["nhs"].to_manifest()
        ),
        "'token_schema.columns' has 1 key(s)",
    ),
    "text in a token column": (
        lambda m: m["token_schema"]["columns"]["nino"].update(note=SECRET),
        "'token_schema.columns.nino'",
    ),
    "bloom": (lambda m: m["token_schema"]["bloom"].update(pad=SECRET), "'token_schema.bloom'"),
    "payload name": (
        lambda m: m["payload_schema"].update(surname="string"),
        "'payload_schema' has 1 key(s)",
    ),
    "payload type": (
        lambda m: m["payload_schema"].update(benefit=SECRET),
        "'payload_schema.benefit'",
    ),
    "reason": (
        lambda m: m["rows"]["nulled_by_reason"].update({f"dob:{SECRET}": 1}),
        "'rows.nulled_by_reason' has 1 key(s)",
    ),
    "reason label": (
        lambda m: m["rows"]["rejected_by_reason"].update({f"{SECRET}:missing": 1}),
        "'rows.rejected_by_reason' has 1 key(s)",
    ),
    "count": (lambda m: m["rows"].update(input=SECRET), "'rows.input'"),
    "file name": (
        lambda m: m["files"]["tokens"].update(name="hmrc_rti.tokens.parquet"),
        "'files.tokens.name'",
    ),
    "file hash": (lambda m: m["files"]["tokens"].update(sha256=SECRET), "'files.tokens.sha256'"),
}


@pytest.mark.parametrize("case", sorted(TOKENS_MANIFEST_TAMPERING))
def test_tokens_manifest_holds_only_what_the_writer_writes(
    tmp_path: Path, keys, agreement, case: str
) -> None:
    tokens = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    manifest = _manifest(tmp_path / "dwp_claims.manifest.json", agreement, {"tokens": tokens})
    assert _seal_manifest(manifest, keys, agreement).path.exists()  # the writer's own passes
    change, why = TOKENS_MANIFEST_TAMPERING[case]
    _edit(manifest, change)
    with pytest.raises(PolicyError, match="rule 'fields'") as exc:
        _seal_manifest(manifest, keys, agreement)
    assert why in str(exc.value)
    assert SECRET not in str(exc.value) and "Thornbury" not in str(exc.value)


def test_manifest_layout_duplicates_and_size_are_checked(tmp_path: Path, keys, agreement) -> None:
    manifest = _manifest(tmp_path / "dwp_claims.manifest.json", agreement)
    text = manifest.read_text()
    # Re-indented: same values, but whitespace could carry anything.
    manifest.write_text(json.dumps(json.loads(text), indent=4, sort_keys=True) + "\n")
    with pytest.raises(PolicyError, match="not laid out as wmw-link writes"):
        _seal_manifest(manifest, keys, agreement)
    # A duplicate key hides a value that json.loads would drop.
    manifest.write_text(text.replace('  "kind":', f'  "kind": "{SECRET}",\n  "kind":', 1))
    with pytest.raises(PolicyError, match="a key appears twice") as exc:
        _seal_manifest(manifest, keys, agreement)
    assert SECRET not in str(exc.value)
    manifest.write_text(text + " " * (2 << 20))
    with pytest.raises(PolicyError, match="bytes; a real manifest is under"):
        _seal_manifest(manifest, keys, agreement)
    manifest.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    with pytest.raises(PolicyError, match="not JSON"):
        _seal_manifest(manifest, keys, agreement)


def test_manifest_of_a_real_tokenise_run_passes_both_ways(tmp_path: Path, keys, agreement) -> None:
    from wmw_link.keys import new_key
    from wmw_link.tokenise import tokenise

    extract = pa.table(
        {
            "claim_ref": ["C1", "C2", "C3", "C4", "C4", ""],
            "nino": ["QQ123456C", "AB 12 34 56 C", "bad", "", "CE123456A", "QQ123456D"],
            "first_name": ["Amelia", "Jo", "!!", "Sam", "Ann", "Raj"],
            "surname": ["Thornbury", "Khan", "Smith", "Lee", "Ng", "Patel"],
            "dob": ["03/04/1985", "31/02/1990", "01/01/2090", "05/06/1970", "", "1/1/1980"],
            "postcode": ["B23 4XY", "B234XY", "XX", "CV1 2AB", "", "DY1 1AA"],
            "gender": ["F", "M", "Q", "", "F", "M"],
            "benefit": ["UC", "PIP", "Nope", "ESA", "UC", ""],
            "regime": ["light_touch", "", "x", "not_applicable", "", ""],
            "start_date": ["01/01/2024", "2024", "", "02/02/2024", "", ""],
            "end_date": ["", "", "", "", "", ""],
        }
    )
    result = tokenise(
        agreement, "dwp_claims", extract, new_key(tmp_path / "link.key"),
        new_key(tmp_path / "ref.key"), tmp_path / "tok", workers=1, max_invalid_share=1.0,
    )  # fmt: skip
    written = json.loads(result.manifest.read_text())
    assert written["rows"]["nulled_by_reason"] and written["rows"]["rejected_by_reason"]
    for recipient in ("linkage-unit", "insight-team"):
        sealed = _seal_manifest(result.manifest, keys, agreement, recipient=recipient)
        out = _unseal(sealed.path, keys, agreement, tmp_path / recipient, party=recipient)
        assert "fields" in out.checks
        assert out.path.read_bytes() == result.manifest.read_bytes()


def _link_manifest_file(tmp_path: Path, agreement: Agreement) -> Path:
    """A link manifest made by the real writer (linkage.run._link_manifest)."""
    from types import SimpleNamespace

    import pandas as pd

    from wmw_link.files import write_json_atomic
    from wmw_link.linkage.run import _link_manifest

    tokens = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    tmanifest = _manifest(tmp_path / "dwp_claims.manifest.json", agreement, {"tokens": tokens})
    maps_path = tmp_path / "dwp_claims.map.parquet"
    pq.write_table(pa.table({"row_ref": ["a", "b", "c"], "person_id": ["p1"] * 3}), maps_path)
    verified = [
        SimpleNamespace(
            dataset="dwp_claims", party="dwp", tokens_path=tokens, sha256="ab" * 32, rows=3,
            manifest_path=tmanifest, manifest={"key_check": "0f" * 16},
        )
    ]  # fmt: skip
    manifest = _link_manifest(
        agreement, verified, SimpleNamespace(name="duckdb", memory_limit=None), 42, False,
        {"dwp_claims": pd.DataFrame({"person_id": ["p1"] * 3})}, {"dwp_claims": maps_path},
        SimpleNamespace(weight=4.5, method="maximum expected F1 (label-free)", comparisons=10,
                        predict_blocks=1),
        {"verify": 0.12345, "total": 1.0}, 3, 1,
    )  # fmt: skip
    path = tmp_path / "link-manifest.json"
    write_json_atomic(path, manifest)
    return path


def test_link_manifest_holds_only_what_the_writer_writes(tmp_path: Path, keys, agreement) -> None:
    path = _link_manifest_file(tmp_path, agreement)
    sealed = _seal_manifest(path, keys, agreement, "linkage-unit", "insight-team")
    assert "fields" in _unseal(sealed.path, keys, agreement, tmp_path / "an", "insight-team").checks
    cases = [
        (lambda m: m.update(kind="wmw-link/tokens-manifest"), "'kind'"),
        (lambda m: m.update(dataset="dwp_claims"), "1 key(s) the writer never produces"),
        (lambda m: m["threshold"].update(method=SECRET), "'threshold.method'"),
        (lambda m: m["threshold"].update(household_rule=SECRET), "'threshold.household_rule'"),
        (lambda m: m["inputs"]["dwp_claims"].update(party="hmrc"), "'inputs.dwp_claims.party'"),
        (lambda m: m["inputs"].update({SECRET: {}}), "names a dataset that is not in"),
        (lambda m: m["timings_seconds"].update({SECRET: 1.0}), "'timings_seconds' has 1 key(s)"),
        (lambda m: m["counts"].update(persons=SECRET), "'counts.persons'"),
        (lambda m: m.update(backend=SECRET), "'backend'"),
        (lambda m: m.update(predict_blocks=SECRET), "'predict_blocks'"),
        (lambda m: m.update(predict_blocks=0), "'predict_blocks' is not a positive integer"),
    ]
    original = path.read_text()
    for change, why in cases:
        path.write_text(original)
        _edit(path, change)
        with pytest.raises(PolicyError, match="rule 'fields'") as exc:
            _seal_manifest(path, keys, agreement, "linkage-unit", "insight-team")
        assert why in str(exc.value) and SECRET not in str(exc.value)
    # A tokens manifest renamed link-manifest.json is refused too.
    tokens_manifest = (tmp_path / "dwp_claims.manifest.json").read_bytes()
    path.write_bytes(tokens_manifest)
    with pytest.raises(PolicyError, match="rule 'fields'.*link manifest"):
        _seal_manifest(path, keys, agreement, "linkage-unit", "insight-team")


def test_manifest_kinds_and_reasons_match_the_writers() -> None:
    import importlib
    import re

    from wmw_link import manifest_check
    from wmw_link.journeys import LINK_MANIFEST_KIND
    from wmw_link.linkage.verify import MANIFEST_KIND as LINK_READS
    from wmw_link.tokenise.manifest import MANIFEST_KIND

    assert manifest_check.TOKENS_MANIFEST_KIND == MANIFEST_KIND == LINK_READS
    assert manifest_check.LINK_MANIFEST_KIND == LINK_MANIFEST_KIND
    codes: set[str] = set()
    for name in ("_base", "dates", "names", "nhs", "nino", "postcodes", "sex"):
        module = importlib.import_module(f"wmw_link.normalise.{name}")
        codes |= {
            v
            for k, v in vars(module).items()
            if k.isupper() and not k.startswith("_") and isinstance(v, str)
        }
    from wmw_link.tokenise import rejects

    codes |= {rejects.MISSING_RECORD_ID, rejects.DUPLICATE_RECORD_ID, rejects.NO_USABLE_IDENTIFIERS}
    payload_src = (Path(seal.__file__).parent / "tokenise" / "payload.py").read_text()
    codes |= set(re.findall(r'"((?:invalid|not_a)_[a-z_]+)"', payload_src))
    assert codes <= manifest_check.REASONS, sorted(codes - manifest_check.REASONS)


# -- unseal --out -------------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["inbox/", "inbox", "deeper/inbox/"])
def test_unseal_out_names_a_new_directory(tmp_path: Path, keys, agreement, out: str) -> None:
    _, sealed = _seal_tokens(tmp_path, keys, agreement)
    target = os.path.join(str(tmp_path), out)
    result = unseal_file(
        sealed.path, agreement=agreement, secret=keys["linkage-unit"], keyring=keys["ring"],
        out=target,
    )  # fmt: skip
    assert result.path == Path(target) / "dwp_claims.tokens.parquet"
    assert result.path.exists()


def test_unseal_command_out_with_a_trailing_slash_is_a_directory(tmp_path: Path, keys) -> None:
    from click.testing import CliRunner

    from wmw_link.cli import main

    src = _tokens(tmp_path / "dwp_claims.tokens.parquet")
    sealed = seal_file(
        src, agreement=load_agreement(AGREEMENT), secret=keys["dwp"], recipient="linkage-unit",
        keyring=keys["ring"], delivery=1,  # no manifest beside it: the number is given
    )  # fmt: skip
    base = [
        "--audit-log", str(tmp_path / "a.jsonl"), "unseal", str(sealed.path), "--agreement",
        str(AGREEMENT), "--secret", str(keys["linkage-unit"]), "--keyring", str(keys["ring"]),
    ]  # fmt: skip
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "inbox") + "/"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "inbox" / src.name).read_bytes() == src.read_bytes()
    # A file name with a suffix that is not the original name is still refused, with a hint.
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "new" / "x.parquet")])
    assert r.exit_code == 1 and "check 'file-name' failed" in r.output
    assert "end --out with '/'" in r.output
    assert not (tmp_path / "new").exists()
    help_text = " ".join(CliRunner().invoke(main, ["unseal", "--help"]).output.split())
    assert "ends with '/'" in help_text
