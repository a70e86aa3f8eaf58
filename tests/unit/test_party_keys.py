"""Party keypairs: files, permissions, loading, keyring look-ups, and the new-party command."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from wmw_link.errors import ConfigError, KeyFileError
from wmw_link.party_keys import (
    Keyring,
    generate_party,
    load_public,
    load_secret,
    new_keyring,
    new_party,
    public_path,
    secret_path,
)


def test_new_party_writes_owner_only_secret_and_public_file(tmp_path: Path) -> None:
    public = new_party("dwp", tmp_path)
    spath, ppath = secret_path(tmp_path, "dwp"), public_path(tmp_path, "dwp")
    assert stat.S_IMODE(spath.stat().st_mode) == 0o600
    assert stat.S_IMODE(ppath.stat().st_mode) == 0o644
    doc = json.loads(ppath.read_text())
    assert doc["party"] == "dwp"
    assert doc["age_recipient"].startswith("age1")
    assert doc["fingerprint"] == public.fingerprint
    # The public file holds no secret material.
    secret = json.loads(spath.read_text())
    assert secret["signing_key"] not in ppath.read_text()
    assert secret["age_identity"] not in ppath.read_text()


def test_round_trip_secret_matches_public(tmp_path: Path) -> None:
    new_party("hmrc", tmp_path)
    secret = load_secret(secret_path(tmp_path, "hmrc"))
    public = load_public(public_path(tmp_path, "hmrc"))
    assert secret.party == "hmrc"
    assert bytes(secret.public().verify_key) == bytes(public.verify_key)
    assert secret.public().recipient_str == public.recipient_str
    assert "AGE-SECRET" not in repr(secret)


def test_new_party_refuses_to_overwrite_a_secret(tmp_path: Path) -> None:
    first = new_party("dwp", tmp_path)
    with pytest.raises(ConfigError, match="exists already"):
        new_party("dwp", tmp_path)
    second = new_party("dwp", tmp_path, force=True)
    assert second.fingerprint != first.fingerprint


def test_bad_party_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid"):
        generate_party("../etc")


def test_group_readable_secret_is_refused(tmp_path: Path) -> None:
    new_party("dwp", tmp_path)
    spath = secret_path(tmp_path, "dwp")
    os.chmod(spath, 0o640)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_secret(spath)


def test_malformed_secret_never_echoes_key_material(tmp_path: Path) -> None:
    new_party("dwp", tmp_path)
    spath = secret_path(tmp_path, "dwp")
    doc = json.loads(spath.read_text())
    doc["signing_key"] = "bm90LWEta2V5"  # base64 of a wrong-length seed
    spath.write_text(json.dumps(doc))
    os.chmod(spath, 0o600)
    with pytest.raises(KeyFileError, match="not a valid Ed25519 seed") as exc:
        load_secret(spath)
    assert "bm90LWEta2V5" not in str(exc.value)


def test_public_file_with_wrong_fingerprint_is_refused(tmp_path: Path) -> None:
    new_party("dwp", tmp_path)
    new_party("hmrc", tmp_path)
    ppath = public_path(tmp_path, "dwp")
    doc = json.loads(ppath.read_text())
    doc["age_recipient"] = json.loads(public_path(tmp_path, "hmrc").read_text())["age_recipient"]
    ppath.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="fingerprint does not match"):
        load_public(ppath)


def test_keyring_lookups(tmp_path: Path) -> None:
    secrets = new_keyring(["dwp", "linkage-unit"], tmp_path / "secrets", tmp_path / "ring")
    ring = Keyring(tmp_path / "ring")
    assert ring.parties() == ["dwp", "linkage-unit"]
    assert ring.get("dwp").fingerprint == load_secret(secrets["dwp"]).public().fingerprint
    with pytest.raises(KeyFileError, match="no public key for party 'hmrc'"):
        ring.get("hmrc")
    # A file placed under another party's name is refused.
    (tmp_path / "ring" / "hmrc.public.json").write_text(
        (tmp_path / "ring" / "dwp.public.json").read_text()
    )
    with pytest.raises(KeyFileError, match="is for party 'dwp', not 'hmrc'"):
        ring.get("hmrc")
    with pytest.raises(KeyFileError, match="keyring directory not found"):
        Keyring(tmp_path / "missing")


def test_new_party_command(tmp_path: Path) -> None:
    from wmw_link.cli.party_keys_cmd import new_party as cmd

    agreement = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"
    result = CliRunner().invoke(
        cmd, ["--party", "dwp", "--out", str(tmp_path), "--agreement", str(agreement)]
    )
    assert result.exit_code == 0, result.output
    assert "fingerprint:" in result.output
    assert secret_path(tmp_path, "dwp").exists()
    refused = CliRunner().invoke(
        cmd, ["--party", "nobody", "--out", str(tmp_path), "--agreement", str(agreement)]
    )
    assert refused.exit_code != 0
    assert not secret_path(tmp_path, "nobody").exists()


def test_keys_new_party_is_registered_and_audited(tmp_path: Path) -> None:
    from wmw_link.audit import verify
    from wmw_link.cli import main

    log = tmp_path / "audit.jsonl"
    agreement = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"
    args = ["--audit-log", str(log), "keys", "new-party", "--party", "linkage-unit"]
    result = CliRunner().invoke(
        main, [*args, "--out", str(tmp_path / "k"), "--agreement", str(agreement)]
    )
    assert result.exit_code == 0, result.output
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["command"] == "keys new-party"
    assert (entry["party"], entry["role"], entry["outcome"]) == ("linkage-unit", "ttp", "ok")
    # The public file is recorded by hash; the secret file is never listed.
    assert [Path(o["path"]).name for o in entry["outputs"]] == ["linkage-unit.public.json"]
    secret_text = secret_path(tmp_path / "k", "linkage-unit").read_text()
    assert json.loads(secret_text)["signing_key"] not in log.read_text()
    assert verify(log).lines == 1


def test_new_party_without_an_agreement_warns_that_the_party_was_not_checked(
    tmp_path: Path,
) -> None:
    from wmw_link.cli.party_keys_cmd import new_party as cmd

    agreement = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"
    result = CliRunner().invoke(cmd, ["--party", "mi5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning: party 'mi5' was not checked against any agreement" in result.stderr
    assert secret_path(tmp_path, "mi5").exists()
    # With --agreement there is nothing to warn about (the party was checked).
    checked = CliRunner().invoke(
        cmd, ["--party", "dwp", "--out", str(tmp_path), "--agreement", str(agreement)]
    )
    assert checked.exit_code == 0, checked.output
    assert "warning" not in checked.output
