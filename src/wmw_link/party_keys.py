"""Party keypairs for sealed transfers: an Ed25519 signing key and an age (x25519) identity.

Each party (controller, trusted third party, analyst) holds one secret file and publishes one
public file. ``new_party`` writes both::

    DIR/<party>.secret        JSON, mode 0600: signing key seed and age identity
    DIR/<party>.public.json   JSON: party id, Ed25519 verify key, age recipient, fingerprint

A *keyring* is a directory holding the public files of every party. Sealing encrypts to the
recipient's age recipient and signs with the sender's signing key; unsealing checks the
signature against the sender's verify key from the keyring. The keys come from PyNaCl
(Ed25519) and pyrage (age); nothing here is a home-made construction, only file handling.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pyrage
from nacl.signing import SigningKey, VerifyKey

from wmw_link.errors import ConfigError, KeyFileError
from wmw_link.files import write_bytes_atomic

SECRET_KIND = "wmw-link/party-secret"
PUBLIC_KIND = "wmw-link/party-public"
_PARTY_ID = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class PartyPublic:
    """What everyone may know about a party: who it is and how to seal to it and verify it."""

    party: str
    verify_key: VerifyKey
    recipient: pyrage.x25519.Recipient
    source: str = "<memory>"

    @property
    def verify_key_b64(self) -> str:
        return base64.b64encode(bytes(self.verify_key)).decode("ascii")

    @property
    def recipient_str(self) -> str:
        return str(self.recipient)

    @property
    def fingerprint(self) -> str:
        """Short hash of both public keys, to compare by phone or letter when exchanging keys."""
        return _fingerprint(self.party, self.verify_key_b64, self.recipient_str)

    def to_json(self) -> dict[str, str | int]:
        return {
            "kind": PUBLIC_KIND,
            "version": 1,
            "party": self.party,
            "signing_public_key": self.verify_key_b64,
            "age_recipient": self.recipient_str,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class PartySecret:
    """A party's own secrets: never leaves the party, never printed or logged."""

    party: str
    signing_key: SigningKey
    identity: pyrage.x25519.Identity
    source: str = "<memory>"

    def public(self) -> PartyPublic:
        return PartyPublic(
            party=self.party,
            verify_key=self.signing_key.verify_key,
            recipient=self.identity.to_public(),
            source=self.source,
        )

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return f"PartySecret(party={self.party!r}, source={self.source!r})"


def _fingerprint(party: str, verify_key_b64: str, recipient: str) -> str:
    digest = hashlib.sha256(f"{party}\n{verify_key_b64}\n{recipient}".encode()).hexdigest()
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def _check_party_id(party: str) -> None:
    if not _PARTY_ID.match(party):
        raise ConfigError(
            f"party id '{party}' is not valid: use lower-case letters, digits, '-' and '_'"
        )


def generate_party(party: str) -> PartySecret:
    """Generate a new signing key and age identity for ``party`` (in memory only)."""
    _check_party_id(party)
    return PartySecret(
        party=party, signing_key=SigningKey.generate(), identity=pyrage.x25519.Identity.generate()
    )


def secret_path(directory: str | os.PathLike[str], party: str) -> Path:
    return Path(directory) / f"{party}.secret"


def public_path(directory: str | os.PathLike[str], party: str) -> Path:
    return Path(directory) / f"{party}.public.json"


def new_party(party: str, out_dir: str | os.PathLike[str], *, force: bool = False) -> PartyPublic:
    """Create ``<party>.secret`` (mode 0600) and ``<party>.public.json`` in ``out_dir``.

    Args:
        party: the party id as the agreement names it.
        out_dir: directory to write both files into (created if missing).
        force: overwrite an existing secret file; otherwise an existing one is an error, since
            replacing a key silently would make every file sealed to the old one unreadable.

    Returns:
        The public half, as written.

    Raises:
        ConfigError: bad party id, or the secret file exists and ``force`` is not set.
    """
    secret = generate_party(party)
    spath, ppath = secret_path(out_dir, party), public_path(out_dir, party)
    if spath.exists() and not force:
        raise ConfigError(f"{spath}: a secret for party '{party}' exists already (use --force)")
    doc = {
        "kind": SECRET_KIND,
        "version": 1,
        "party": party,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "signing_key": base64.b64encode(bytes(secret.signing_key)).decode("ascii"),
        "age_identity": str(secret.identity),
    }
    write_bytes_atomic(spath, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), mode=0o600)
    public = secret.public()
    # The public file is meant to be copied around: world-readable, unlike the secret.
    text = json.dumps(public.to_json(), indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(ppath, text.encode("utf-8"), mode=0o644)
    return public


def _read_json(path: Path, what: str) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KeyFileError(f"{path}: cannot read the {what} ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise KeyFileError(f"{path}: the {what} is not a JSON object")
    return data


def _field(data: dict[str, object], name: str, path: Path) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise KeyFileError(f"{path}: field '{name}' is missing or not a string")
    return value


def load_secret(path: str | os.PathLike[str]) -> PartySecret:
    """Load a party secret file, refusing one that others can read.

    Raises:
        KeyFileError: missing, malformed, or group/world-readable file.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"{path}: party secret file not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: party secret file is readable by others (mode {stat.S_IMODE(mode):o}); "
            "run chmod 600 on it"
        )
    data = _read_json(path, "party secret file")
    if data.get("kind") != SECRET_KIND:
        raise KeyFileError(f"{path}: not a wmw-link party secret (kind is not '{SECRET_KIND}')")
    party = _field(data, "party", path)
    try:
        seed = base64.b64decode(_field(data, "signing_key", path), validate=True)
        signing_key = SigningKey(seed)
    except Exception:  # noqa: BLE001 - never echo key material, whatever went wrong
        raise KeyFileError(f"{path}: field 'signing_key' is not a valid Ed25519 seed") from None
    try:
        identity = pyrage.x25519.Identity.from_str(_field(data, "age_identity", path))
    except Exception:  # noqa: BLE001
        raise KeyFileError(f"{path}: field 'age_identity' is not a valid age identity") from None
    return PartySecret(party=party, signing_key=signing_key, identity=identity, source=str(path))


def load_public(path: str | os.PathLike[str]) -> PartyPublic:
    """Load one ``<party>.public.json`` file.

    Raises:
        KeyFileError: missing or malformed file, or a fingerprint that does not match the keys.
    """
    path = Path(path)
    data = _read_json(path, "party public key file")
    if data.get("kind") != PUBLIC_KIND:
        raise KeyFileError(f"{path}: not a wmw-link party public key (kind is not '{PUBLIC_KIND}')")
    party = _field(data, "party", path)
    try:
        verify_key = VerifyKey(
            base64.b64decode(_field(data, "signing_public_key", path), validate=True)
        )
    except KeyFileError:
        raise
    except Exception:  # noqa: BLE001
        raise KeyFileError(f"{path}: field 'signing_public_key' is not an Ed25519 key") from None
    try:
        recipient = pyrage.x25519.Recipient.from_str(_field(data, "age_recipient", path))
    except KeyFileError:
        raise
    except Exception:  # noqa: BLE001
        raise KeyFileError(f"{path}: field 'age_recipient' is not an age recipient") from None
    public = PartyPublic(party=party, verify_key=verify_key, recipient=recipient, source=str(path))
    stated = data.get("fingerprint")
    if stated is not None and stated != public.fingerprint:
        raise KeyFileError(f"{path}: the fingerprint does not match the keys in the file")
    return public


class Keyring:
    """The public keys of all parties, read from a directory of ``<party>.public.json`` files."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise KeyFileError(f"{self.directory}: keyring directory not found")
        self._cache: dict[str, PartyPublic] = {}

    def get(self, party: str) -> PartyPublic:
        """The public keys of ``party``.

        Raises:
            KeyFileError: no file for the party, or the file names another party.
        """
        if party in self._cache:
            return self._cache[party]
        _check_party_id(party)
        path = public_path(self.directory, party)
        if not path.exists():
            raise KeyFileError(f"{path}: no public key for party '{party}' in the keyring")
        public = load_public(path)
        if public.party != party:
            raise KeyFileError(f"{path}: the file is for party '{public.party}', not '{party}'")
        self._cache[party] = public
        return public

    def parties(self) -> list[str]:
        return sorted(
            p.name.removesuffix(".public.json") for p in self.directory.glob("*.public.json")
        )


def new_keyring(
    parties: list[str],
    secrets_dir: str | os.PathLike[str],
    keyring_dir: str | os.PathLike[str],
    *,
    force: bool = False,
) -> dict[str, Path]:
    """Create a keypair for each party and gather the public files into one keyring (demos, tests).

    In a real deployment each party runs ``wmw-link keys new-party`` on its own machine and sends
    only the public file; this helper does it all in one place for synthetic runs.

    Args:
        parties: party ids.
        secrets_dir: each secret goes to ``secrets_dir/<party>/<party>.secret``.
        keyring_dir: every ``<party>.public.json`` goes here.
        force: replace existing secrets.

    Returns:
        party id -> path of its secret file.
    """
    paths: dict[str, Path] = {}
    for party in parties:
        own = Path(secrets_dir) / party
        public = new_party(party, own, force=force)
        text = json.dumps(public.to_json(), indent=2, sort_keys=True) + "\n"
        write_bytes_atomic(public_path(keyring_dir, party), text.encode("utf-8"), mode=0o644)
        paths[party] = secret_path(own, party)
    return paths
