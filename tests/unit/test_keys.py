"""Key files: creation, permission/length/format checks, HKDF subkeys, key check values, CLI."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from wmw_link.cli import main
from wmw_link.errors import KeyFileError
from wmw_link.keys import KEY_HEADER, SecretKey, load_key, new_key


def test_new_key_is_owner_only_and_loads(tmp_path):
    path = tmp_path / "link.key"
    key = new_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key(path)
    assert loaded.derive("a", "name") == key.derive("a", "name")
    assert len(path.read_text().strip()) == len(KEY_HEADER) + 64


def test_new_key_refuses_to_overwrite(tmp_path):
    path = tmp_path / "k"
    first = new_key(path)
    with pytest.raises(KeyFileError, match="exists"):
        new_key(path)
    second = new_key(path, force=True)
    assert first.check_value() != second.check_value()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_group_or_other_access(tmp_path, mode):
    path = tmp_path / "k"
    new_key(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)


def _write(path, data: bytes):
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def test_load_refuses_short_key(tmp_path):
    path = _write(tmp_path / "k", (KEY_HEADER + "ab" * 31 + "\n").encode())
    with pytest.raises(KeyFileError, match="31 bytes; at least 32"):
        load_key(path)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe not text",
        b"just some text\n",
        (KEY_HEADER + "zz" * 32).encode(),
        (KEY_HEADER + "abc").encode(),
    ],
)
def test_load_refuses_malformed(tmp_path, data):
    path = _write(tmp_path / "k", data)
    with pytest.raises(KeyFileError, match="malformed"):
        load_key(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(KeyFileError, match="not found"):
        load_key(tmp_path / "nope")


def test_errors_and_repr_never_show_the_key(tmp_path):
    path = tmp_path / "k"
    new_key(path)
    hex_key = path.read_text().strip()[len(KEY_HEADER) :]
    key = load_key(path)
    assert hex_key not in repr(key) and hex_key not in str(key)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError) as e:
        load_key(path)
    assert hex_key not in str(e.value)
    # A key with a bad character: the message does not echo the text.
    bad = hex_key[:-1] + "g"
    _write(path, (KEY_HEADER + bad).encode())
    with pytest.raises(KeyFileError) as e:
        load_key(path)
    assert bad not in str(e.value) and hex_key[:16] not in str(e.value)


def test_subkeys_differ_by_agreement_and_domain():
    key = SecretKey(bytes(range(32)))
    subkeys = {
        key.derive(a, d) for a in ("wmw-outcomes", "other") for d in ("name", "nino", "row_ref")
    }
    assert len(subkeys) == 6
    assert key.derive("wmw-outcomes", "name") == SecretKey(bytes(range(32))).derive(
        "wmw-outcomes", "name"
    )


def test_key_check_value_identifies_the_key_per_agreement():
    a, b = SecretKey(b"a" * 32), SecretKey(b"b" * 32)
    assert a.check_value("x") == SecretKey(b"a" * 32).check_value("x")
    assert a.check_value("x") != b.check_value("x")
    assert a.check_value("x") != a.check_value("y")
    assert len(a.check_value("x")) == 32


def test_cli_keys_new_prints_check_value_not_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agreement = os.path.join(
        os.path.dirname(__file__), "..", "..", "agreements", "wmw-outcomes.yaml"
    )
    result = CliRunner().invoke(main, ["keys", "new", "--out", "k.key", "--agreement", agreement])
    assert result.exit_code == 0, result.output
    key = load_key(tmp_path / "k.key")
    assert f"key check value: {key.check_value()}" in result.output
    assert key.check_value("wmw-outcomes") in result.output
    hex_key = (tmp_path / "k.key").read_text().strip()[len(KEY_HEADER) :]
    assert hex_key not in result.output
    again = CliRunner().invoke(main, ["keys", "new", "--out", "k.key"])
    assert again.exit_code == 1 and "exists" in again.output


def test_cli_keys_group_lists_new():
    result = CliRunner().invoke(main, ["keys", "--help"])
    assert result.exit_code == 0
    assert "new" in result.output
