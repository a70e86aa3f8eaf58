"""Sealed transfers between parties: age encryption to the recipient, Ed25519 signature by the sender.

A sealed file is one file the sender can hand over by any means::

    [age ciphertext of the file]                    pyrage (x25519 recipient, STREAM, streamed)
    [envelope: canonical JSON, UTF-8]               who, to whom, which agreement, which file, hashes
    [Ed25519 signature of the envelope: 64 bytes]   PyNaCl, the sender's signing key
    [footer: b"WMWSEAL1", ciphertext length (u64), envelope length (u32)]

The envelope binds the sender and recipient parties, the agreement (id, version, hash), the
original file name, its kind and dataset, the plaintext SHA-256 and size, the ciphertext SHA-256
and size, the creation time, the tool version, the delivery (series, number and signed time,
:mod:`wmw_link.freshness`) and the sender's audit head (seq and hash of its log's last line when
it sealed, so the recipient's log holds a signed checkpoint of the sender's log). The signature comes last because the
ciphertext hash is known only once the file has been encrypted: sealing reads the input once.

Unsealing verifies before it writes anything, and names the check that failed: ``format``,
``signature``, ``sender``, ``recipient``, ``agreement``, the agreement's ``validity`` and
``flows`` rules, ``freshness``, ``ciphertext``, ``decryption``, ``plaintext``, ``manifest``,
``fields`` and ``file-name``. The plaintext is decrypted to a temporary file beside the output
and renamed into place only when every check passed, so a refused file never appears. An inbox
(:func:`unseal_all`) is all or nothing: every file is verified into a temporary file first, and
only then are they all renamed into place.

The cryptography is age (via pyrage) and Ed25519 (via PyNaCl); this module only frames them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq
import pyrage
from nacl.exceptions import BadSignatureError

from wmw_link import __version__, freshness, runrecord, token_schema, withdrawals
from wmw_link.agreement import Agreement, Role
from wmw_link.errors import (
    AgreementError,
    ConfigError,
    InputDataError,
    KeyFileError,
    PolicyError,
    VerificationError,
)
from wmw_link.files import atomic_path
from wmw_link.manifest_check import check_manifest
from wmw_link.party_keys import Keyring, PartySecret, load_secret

ENVELOPE_KIND = "wmw-link/sealed-envelope"
SEALED_SUFFIX = ".sealed"
_MAGIC = b"WMWSEAL1"
_FOOTER = struct.Struct(">8sQI")
_SIG_LEN = 64
_MAX_ENVELOPE = 1 << 20
_CHUNK = 1 << 20


class FileKind(StrEnum):
    """What a file is, which decides who may send it to whom."""

    TOKENS = "tokens"
    PAYLOAD = "payload"
    TOKENS_MANIFEST = "tokens-manifest"
    MAP = "map"
    LINK_MANIFEST = "link-manifest"
    WITHDRAWALS = "withdrawals"
    WITHDRAWALS_MANIFEST = "withdrawals-manifest"
    ID_CHANGES = "id-changes"


# kind -> (sender role, recipient roles). A controller's tokens go to the TTP and its payload
# to the analysts; the TTP's maps go to the analysts; a controller's withdrawal lists (row
# refs only) go to both, who each hold its rows. Nothing else crosses a boundary.
FLOWS: dict[FileKind, tuple[Role, frozenset[Role]]] = {
    FileKind.TOKENS: (Role.CONTROLLER, frozenset({Role.TTP})),
    FileKind.PAYLOAD: (Role.CONTROLLER, frozenset({Role.ANALYST})),
    FileKind.TOKENS_MANIFEST: (Role.CONTROLLER, frozenset({Role.TTP, Role.ANALYST})),
    FileKind.MAP: (Role.TTP, frozenset({Role.ANALYST})),
    FileKind.LINK_MANIFEST: (Role.TTP, frozenset({Role.ANALYST})),
    # A person-index run's id changes (old -> new person id): the analysts apply them.
    FileKind.ID_CHANGES: (Role.TTP, frozenset({Role.ANALYST})),
    FileKind.WITHDRAWALS: (Role.CONTROLLER, frozenset({Role.TTP, Role.ANALYST})),
    FileKind.WITHDRAWALS_MANIFEST: (Role.CONTROLLER, frozenset({Role.TTP, Role.ANALYST})),
}
_WITHDRAWAL_KINDS = (FileKind.WITHDRAWALS, FileKind.WITHDRAWALS_MANIFEST)

_SUFFIX_KINDS = (
    # Before ".manifest.json": a withdrawals manifest is not a tokens manifest.
    (withdrawals.PARQUET_SUFFIX, FileKind.WITHDRAWALS),
    (withdrawals.MANIFEST_SUFFIX, FileKind.WITHDRAWALS_MANIFEST),
    (".tokens.parquet", FileKind.TOKENS),
    (".payload.parquet", FileKind.PAYLOAD),
    (".map.parquet", FileKind.MAP),
    (".manifest.json", FileKind.TOKENS_MANIFEST),
)
#: A person-index link run's id changes (wmw_link.linkage.index), listed in its link manifest.
ID_CHANGES_NAME = "id-changes.parquet"
#: The columns a map or an id-changes file may hold (person-index maps carry their delivery).
MAP_COLUMNS = ("row_ref", "person_id", "delivery")
ID_CHANGES_COLUMNS = ("old_person_id", "new_person_id", "reason", "delivery")
_LOCAL_ONLY = (".rejects.parquet", ".crosswalk.parquet", ".secret", ".key")


def classify(name: str) -> tuple[FileKind, str | None]:
    """The kind of a file and its dataset id, from its contract name (see docs/contracts.md).

    Raises:
        PolicyError: rule 'flows' - a file that stays local, or one no flow names.
    """
    if name == "link-manifest.json":
        return FileKind.LINK_MANIFEST, None
    if name == ID_CHANGES_NAME:
        return FileKind.ID_CHANGES, None
    for suffix in _LOCAL_ONLY:
        if name.endswith(suffix):
            raise PolicyError(
                f"rule 'flows': '{name}' stays with its owner ({suffix} files are never sent)"
            )
    for suffix, kind in _SUFFIX_KINDS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind, name[: -len(suffix)]
    raise PolicyError(
        f"rule 'flows': '{name}' is not a file the agreement lets anyone send; sealable files are "
        "<dataset>.tokens.parquet, <dataset>.payload.parquet, <dataset>.manifest.json, "
        "<dataset>.map.parquet, link-manifest.json, id-changes.parquet and "
        "<dataset>.withdrawals.parquet with its <dataset>.withdrawals.manifest.json"
    )


def check_flow(
    agreement: Agreement, kind: FileKind, dataset: str | None, sender: str, recipient: str
) -> None:
    """Refuse a transfer the agreement does not allow (rule 'flows', 'roles', 'controller').

    Raises:
        PolicyError: a party or dataset not in the agreement, or a sender or recipient acting
            outside its role for this kind of file.
    """
    sender_role, recipient_roles = FLOWS[kind]
    s, r = agreement.party(sender), agreement.party(recipient)
    if s.role != sender_role:
        raise PolicyError(
            f"rule 'flows': a {kind.value} file is sent by a '{sender_role.value}'; party "
            f"'{sender}' has role '{s.role.value}' in agreement {agreement.id} v{agreement.version}"
        )
    if r.role not in recipient_roles:
        allowed = " or ".join(sorted(x.value for x in recipient_roles))
        raise PolicyError(
            f"rule 'flows': a {kind.value} file may only go to a '{allowed}'; party "
            f"'{recipient}' has role '{r.role.value}' in agreement {agreement.id} v{agreement.version}"
        )
    if dataset is not None:
        ds = agreement.dataset(dataset)
        if sender_role == Role.CONTROLLER and ds.controller != sender:
            raise PolicyError(
                f"rule 'controller': dataset '{dataset}' belongs to '{ds.controller}', not to "
                f"'{sender}'; only its controller may send its {kind.value} file"
            )


def check_fields(
    agreement: Agreement, kind: FileKind, dataset: str | None, path: Path, label: str | None = None
) -> None:
    """Positive field minimisation at the boundary: only the columns the agreement names pass.

    Payload files may hold ``row_ref`` and the dataset's analyst payload names; maps hold
    ``row_ref``, ``person_id`` and (a person-index run's) ``delivery``; a person-index run's
    ``id-changes.parquet`` the old and new person id, the reason and the delivery; tokens files ``row_ref`` and the token columns
    (:mod:`wmw_link.token_schema`) of the identifier types the agreement lists for the dataset.
    Manifests must be exactly what the tokenise or link writer produces
    (:func:`wmw_link.manifest_check.check_manifest`): otherwise any file renamed
    ``<dataset>.manifest.json`` would travel.

    Raises:
        PolicyError: rule 'fields', naming the column or manifest key (never a value).
    """
    label = label or path.name
    if kind in (FileKind.TOKENS_MANIFEST, FileKind.LINK_MANIFEST, FileKind.WITHDRAWALS_MANIFEST):
        name = {
            FileKind.LINK_MANIFEST: "link-manifest.json",
            FileKind.TOKENS_MANIFEST: f"{dataset}.manifest.json",
            FileKind.WITHDRAWALS_MANIFEST: f"{dataset}{withdrawals.MANIFEST_SUFFIX}",
        }[kind]
        check_manifest(agreement, path, name, dataset, label=label)
        return
    try:
        columns = pq.read_schema(path).names
    except Exception as e:  # noqa: BLE001 - any unreadable Parquet is a refusal, not a crash
        raise InputDataError(f"{label}: not a readable Parquet file ({type(e).__name__})") from None
    if kind == FileKind.MAP:
        allowed = set(MAP_COLUMNS)
    elif kind == FileKind.ID_CHANGES:
        allowed = set(ID_CHANGES_COLUMNS)
    elif kind == FileKind.WITHDRAWALS:
        allowed = {token_schema.ROW_REF}
    elif kind == FileKind.PAYLOAD:
        assert dataset is not None
        allowed = {"row_ref"} | {f.name for f in agreement.dataset(dataset).analyst_payload()}
    else:
        assert dataset is not None
        ds = agreement.dataset(dataset)
        allowed = {token_schema.ROW_REF} | {c.name for c in token_schema.columns_for_dataset(ds)}
    bad = [c for c in columns if c not in allowed]
    if bad:
        raise PolicyError(
            f"rule 'fields': {label} has column(s) {', '.join(bad)} that agreement "
            f"{agreement.id} v{agreement.version} does not permit in a {kind.value} file"
        )


# -- streaming helpers -------------------------------------------------------------------------


class _HashingReader:
    """File-like reader that hashes what passes through and stops after ``limit`` bytes."""

    def __init__(self, fh: IO[bytes], limit: int | None = None) -> None:
        self._fh, self._left = fh, limit
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        if self._left is not None:
            n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self._left is not None:
            self._left -= len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _HashingWriter:
    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealResult:
    """What :func:`seal_file` wrote."""

    path: Path
    envelope: dict[str, Any]

    @property
    def sha256(self) -> str:
        return str(self.envelope["file"]["sha256"])


@dataclass(frozen=True)
class UnsealResult:
    """What :func:`unseal_file` verified and wrote."""

    path: Path
    envelope: dict[str, Any]
    checks: tuple[str, ...]


def _as_secret(secret: PartySecret | str | os.PathLike[str]) -> PartySecret:
    return secret if isinstance(secret, PartySecret) else load_secret(secret)


def _as_keyring(keyring: Keyring | str | os.PathLike[str]) -> Keyring:
    return keyring if isinstance(keyring, Keyring) else Keyring(keyring)


def _failed(check: str, sealed: Path, why: str) -> VerificationError:
    return VerificationError(f"unseal refused: check '{check}' failed for {sealed.name}: {why}")


# -- seal --------------------------------------------------------------------------------------


def seal_file(
    path: str | os.PathLike[str],
    *,
    agreement: Agreement,
    secret: PartySecret | str | os.PathLike[str],
    recipient: str,
    keyring: Keyring | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    now: dt.datetime | None = None,
    delivery: int | None = None,
    require_delivery: bool = False,
) -> SealResult:
    """Encrypt ``path`` to ``recipient`` and sign it as the party that owns ``secret``.

    The envelope states the file's delivery: a tokens manifest's own number; for tokens and
    payload, the number of the ``<dataset>.manifest.json`` beside the file, which must list
    the file with this SHA-256 and row count (a stale pair is refused, check 'manifest'); for
    maps and the link manifest, ``delivery`` (the TTP's link-run number).

    Args:
        path: the file to send; its name says its kind (``<dataset>.tokens.parquet`` ...).
        agreement: the agreement the transfer happens under.
        secret: the sender's party secret (object or ``<party>.secret`` path).
        recipient: the recipient party id.
        keyring: directory (or :class:`Keyring`) with every party's public file.
        out: the sealed file; default ``<path>.sealed``.
        now: creation time (tests); default the current UTC time.
        delivery: the delivery number, for files no manifest numbers (maps, link manifest,
            a tokens or payload file sealed without its manifest beside it).
        require_delivery: refuse to seal a file whose delivery number is unknown (the CLI
            does: a recipient with a delivery state would refuse it).

    Returns:
        The written path and its envelope.

    Raises:
        PolicyError: the agreement is not in force, or does not allow this flow or these fields.
        KeyFileError: a key is missing, or the sender's secret does not match its public key.
        InputDataError: the input file is missing.
    """
    src = Path(path)
    if not src.is_file():
        raise InputDataError(f"{src}: file to seal not found")
    sender = _as_secret(secret)
    ring = _as_keyring(keyring)
    agreement.require_in_force()
    kind, dataset = classify(src.name)
    check_flow(agreement, kind, dataset, sender.party, recipient)
    check_fields(agreement, kind, dataset, src)
    listed = ring.get(sender.party)
    if bytes(listed.verify_key) != bytes(sender.signing_key.verify_key):
        raise KeyFileError(
            f"{sender.source}: this secret does not match the keyring's public key for "
            f"'{sender.party}' ({listed.source}); the recipient could not verify the signature"
        )
    target = Path(out) if out is not None else src.with_name(src.name + SEALED_SUFFIX)
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    rec = runrecord.current()
    with atomic_path(target) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
        reader, writer = _HashingReader(fin), _HashingWriter(fout)
        pyrage.encrypt_io(reader, writer, [ring.get(recipient).recipient])
        stated = _delivery_for(src, kind, dataset, reader.sha.hexdigest(), delivery, stamp)
        if stated is None and require_delivery:
            raise ConfigError(
                f"{src}: rule 'freshness': no delivery number for this file; seal it beside "
                "the manifest that lists it, or give --delivery N (the link run's number for "
                "maps); recipients refuse a file they cannot order"
            )
        envelope = {
            "kind": ENVELOPE_KIND,
            "format": 1,
            "sender": sender.party,
            "recipient": recipient,
            "agreement": {
                "id": agreement.id,
                "version": agreement.version,
                "hash": agreement.hash,
            },
            "file": {
                "name": src.name,
                "kind": kind.value,
                "dataset": dataset,
                "sha256": reader.sha.hexdigest(),
                "size": reader.size,
            },
            "ciphertext": {
                "encryption": "age-x25519",
                "sha256": writer.sha.hexdigest(),
                "size": writer.size,
            },
            "signature": "ed25519",
            "created_at": stamp,
            "tool_version": __version__,
            "delivery": stated.to_json() if stated is not None else None,
            "sender_audit_head": rec.audit_head,
        }
        env_bytes = _canonical(envelope)
        signature = sender.signing_key.sign(env_bytes).signature
        trailer = env_bytes + signature + _FOOTER.pack(_MAGIC, writer.size, len(env_bytes))
        fout.write(trailer)
    # The sealed file is the ciphertext then the trailer: hash it without reading it again.
    whole = writer.sha.copy()
    whole.update(trailer)
    if os.fspath(src) not in rec.outputs:  # sealing a command's own output (--seal-to)
        rec.inputs[os.fspath(src)] = envelope["file"]["sha256"]
    rec.outputs[os.fspath(target)] = whole.hexdigest()
    _record_rows(rec, src, src.name)
    return SealResult(path=target, envelope=envelope)


def _manifest_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputDataError(f"{path}: cannot read the manifest ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise InputDataError(f"{path}: the manifest is not a JSON object")
    return data


def _parquet_rows(path: Path, label: str) -> int:
    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception as e:  # noqa: BLE001 - any unreadable Parquet is a refusal
        raise InputDataError(f"{label}: not a readable Parquet file ({type(e).__name__})") from None


def _listed_entry(data: dict[str, Any], kind: FileKind) -> dict[str, Any] | None:
    """The manifest's ``files.<tokens|payload|withdrawals>`` entry for a data file of ``kind``."""
    entry = (data.get("files") or {}).get(kind.value)
    return entry if isinstance(entry, dict) else None


def _check_rows(label: str, manifest: str, entry: dict[str, Any] | None, rows: int) -> None:
    """Rule 'manifest counts': a data file holds the rows its manifest says."""
    if entry is not None and entry.get("rows") != rows:
        raise VerificationError(
            f"{label}: rule 'manifest counts': {rows} rows, but {manifest} says {entry.get('rows')}"
        )


def _delivery_for(
    src: Path,
    kind: FileKind,
    dataset: str | None,
    sha256: str,
    explicit: int | None,
    stamp: str,
) -> freshness.Delivery | None:
    """The delivery a sealed file's envelope states (see :func:`seal_file`)."""
    if kind in (FileKind.TOKENS_MANIFEST, FileKind.WITHDRAWALS_MANIFEST):
        assert dataset is not None
        try:
            data = _manifest_json(src)  # check_fields has checked it is a real manifest
        except InputDataError:
            return None
        for entry in (data.get("files") or {}).values():
            beside = src.with_name(str((entry or {}).get("name")))
            if beside.is_file():  # the files it vouches for, when they are here: rows agree
                _check_rows(beside.name, src.name, entry, _parquet_rows(beside, beside.name))
        number = data.get("delivery")
        if not freshness.is_count(number):
            return None
        if explicit is not None and explicit != number:
            raise ConfigError(
                f"--delivery {explicit}: {src.name} is delivery {number} of {dataset}"
            )
        return freshness.Delivery(
            _series(kind, dataset), number, data.get("created_at", data.get("created"))
        )
    if kind in (FileKind.TOKENS, FileKind.PAYLOAD, FileKind.WITHDRAWALS):
        assert dataset is not None
        series = _series(kind, dataset)
        manifest = src.with_name(_manifest_beside(kind, dataset))
        if not manifest.is_file():
            return freshness.Delivery(series, explicit, stamp) if explicit else None
        data = _manifest_json(manifest)
        entry = _listed_entry(data, kind)
        if entry is None or entry.get("sha256") != sha256:
            raise VerificationError(
                f"{src}: check 'manifest': {manifest.name} beside it does not list this "
                f"{kind.value} file's SHA-256 (a file from another run?); seal the pair that "
                "one tokenise run wrote"
            )
        _check_rows(src.name, manifest.name, entry, _parquet_rows(src, src.name))
        number = data.get("delivery")
        if not freshness.is_count(number):
            return freshness.Delivery(series, explicit, stamp) if explicit else None
        if explicit is not None and explicit != number:
            raise ConfigError(f"--delivery {explicit}: {manifest.name} is delivery {number}")
        return freshness.Delivery(series, number, data.get("created_at", data.get("created")))
    return freshness.Delivery(freshness.LINK_SERIES, explicit, stamp) if explicit else None


def _series(kind: FileKind, dataset: str | None) -> str:
    """The delivery series of a file: its dataset, the dataset's withdrawal lists, or link."""
    if kind in _WITHDRAWAL_KINDS:
        assert dataset is not None
        return withdrawals.series(dataset)
    if kind in (FileKind.MAP, FileKind.LINK_MANIFEST, FileKind.ID_CHANGES):
        return freshness.LINK_SERIES
    assert dataset is not None
    return dataset


def _manifest_beside(kind: FileKind, dataset: str) -> str:
    """The manifest that lists a data file of ``kind`` (tokens, payload, withdrawals)."""
    if kind == FileKind.WITHDRAWALS:
        return f"{dataset}{withdrawals.MANIFEST_SUFFIX}"
    return f"{dataset}.manifest.json"


def _record_rows(rec: runrecord.RunRecord, path: Path, name: str) -> None:
    """Row count of a Parquet file, from its footer, for the audit record."""
    # A count is a nicety: check_fields reports an unreadable file.
    if name.endswith(".parquet"):
        with contextlib.suppress(Exception):
            rec.rows[name] = pq.read_metadata(path).num_rows


def seal_outputs(
    paths: Iterable[str | os.PathLike[str]],
    *,
    agreement: Agreement,
    secret: PartySecret | str | os.PathLike[str],
    recipients: Sequence[str],
    keyring: Keyring | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    delivery: int | None = None,
) -> list[SealResult]:
    """Seal each of a stage's outputs to each recipient the agreement lets it go to.

    Files that go to nobody on the list (rejects, crosswalks, payload when sealing to the TTP)
    are skipped, never sealed. Each recipient gets an outbox: ``out_dir/<recipient>/<name>.sealed``.

    Args:
        paths: the stage's output files.
        agreement: the agreement in force.
        secret: the sender's party secret.
        recipients: recipient party ids (e.g. the TTP and the analysts).
        keyring: the public keys of all parties.
        out_dir: where the outboxes go.
        delivery: the delivery number of outputs no manifest numbers (the TTP's maps).

    Returns:
        One result per sealed file.

    Raises:
        PolicyError: a recipient not in the agreement, or one that may receive none of the files.
    """
    sender = _as_secret(secret)
    ring = _as_keyring(keyring)
    paths = [Path(p) for p in paths]
    results: list[SealResult] = []
    for recipient in recipients:
        role = agreement.party(recipient).role
        sealed_any = False
        for p in paths:
            try:
                kind, _ = classify(p.name)
            except PolicyError:
                continue  # local-only files are never sealed
            sender_role, recipient_roles = FLOWS[kind]
            if role not in recipient_roles:
                continue
            target = Path(out_dir) / recipient / (p.name + SEALED_SUFFIX)
            results.append(
                seal_file(
                    p,
                    agreement=agreement,
                    secret=sender,
                    recipient=recipient,
                    keyring=ring,
                    out=target,
                    delivery=delivery,
                )
            )
            sealed_any = True
        if not sealed_any:
            raise PolicyError(
                f"rule 'flows': none of the files may go to '{recipient}' (role '{role.value}')"
            )
    return results


# -- unseal ------------------------------------------------------------------------------------


def read_envelope(sealed: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes, bytes, int]:
    """Read a sealed file's envelope WITHOUT verifying it: (envelope, raw bytes, signature, ct length).

    Raises:
        VerificationError: check 'format' - not a sealed file, or truncated.
    """
    path = Path(sealed)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputDataError(f"{path}: sealed file not found") from None
    if size < _FOOTER.size + _SIG_LEN:
        raise _failed("format", path, "too short to be a sealed file (truncated?)")
    with open(path, "rb") as fh:
        fh.seek(size - _FOOTER.size)
        magic, ct_len, env_len = _FOOTER.unpack(fh.read(_FOOTER.size))
        if magic != _MAGIC:
            raise _failed("format", path, "no sealed-file footer (truncated or not a sealed file)")
        if env_len > _MAX_ENVELOPE or ct_len + env_len + _SIG_LEN + _FOOTER.size != size:
            raise _failed(
                "format", path, "the section lengths do not add up (truncated or spliced)"
            )
        fh.seek(ct_len)
        env_bytes = fh.read(env_len)
        signature = fh.read(_SIG_LEN)
    try:
        envelope = json.loads(env_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _failed("format", path, "the envelope is not JSON") from None
    if not isinstance(envelope, dict) or envelope.get("kind") != ENVELOPE_KIND:
        raise _failed("format", path, f"the envelope is not a '{ENVELOPE_KIND}'")
    return envelope, env_bytes, signature, ct_len


def _check_agreement(sealed: Path, envelope: dict[str, Any], agreement: Agreement) -> None:
    stated = envelope.get("agreement") or {}
    if stated.get("id") != agreement.id:
        raise _failed(
            "agreement",
            sealed,
            f"sealed under agreement '{stated.get('id')}', not '{agreement.id}'",
        )
    version = stated.get("version")
    if version == agreement.version:
        if stated.get("hash") != agreement.hash:
            raise _failed(
                "agreement",
                sealed,
                f"sealed under a different text of {agreement.id} v{version} (hash differs)",
            )
    elif not (isinstance(version, int) and agreement.accepts_version(version)):
        raise _failed(
            "agreement",
            sealed,
            f"sealed under {agreement.id} v{version}; v{agreement.version} does not declare it "
            "compatible (compatible_with)",
        )


def _manifest_hash(manifest: Path, name: str) -> str | None:
    """The SHA-256 a manifest lists for the file called ``name`` (any nesting), or None."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputDataError(f"{manifest}: manifest not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputDataError(f"{manifest}: cannot read the manifest ({type(e).__name__})") from None
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            label = node.get("name") or node.get("path")
            if isinstance(label, str) and Path(label).name == name and "sha256" in node:
                return str(node["sha256"])
            for key, value in node.items():
                if isinstance(value, str) and Path(str(key)).name == name and len(value) == 64:
                    return value
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return None


def _verify_signature(
    sealed: Path, envelope: dict[str, Any], env_bytes: bytes, signature: bytes, ring: Keyring
) -> str:
    """Check the envelope's Ed25519 signature against the named sender's keyring key."""
    sender = envelope.get("sender")
    if not isinstance(sender, str):
        raise _failed("format", sealed, "the envelope names no sender")
    try:
        sender_key = ring.get(sender)
    except ConfigError:
        # Not a party id at all (a flipped bit can make one): the unverified text is not echoed.
        raise _failed("signature", sealed, "the envelope's sender is not a valid party id") from None
    except KeyFileError as e:
        raise _failed("signature", sealed, f"cannot verify: {e}") from None
    try:
        sender_key.verify_key.verify(env_bytes, signature)
    except BadSignatureError:
        raise _failed(
            "signature",
            sealed,
            f"the envelope was not signed by '{sender}' (key in {sender_key.source})",
        ) from None
    return sender


def _shown(path: Path) -> str:
    """A file's name for messages: a manifest of the same transfer is still a temporary file
    (``.<name>.<random>.tmp``) while it is used, and is named as it will be."""
    name = path.name
    if name.startswith(".") and name.endswith(".tmp"):
        return name[1:].rsplit(".", 2)[0]
    return name


def _check_manifest(sealed: Path, manifest: Path, name: str, sha256: str) -> None:
    listed = _manifest_hash(manifest, name)
    if listed is None:
        raise _failed("manifest", sealed, f"{_shown(manifest)} does not list '{name}'")
    if listed != sha256:
        raise _failed(
            "manifest",
            sealed,
            f"{_shown(manifest)} lists a different SHA-256 for '{name}' (an old manifest?)",
        )


def _target(out: str | os.PathLike[str], name: str) -> tuple[Path, bool]:
    """Where ``unseal`` writes ``name`` for ``--out``, and whether a new directory is needed.

    ``out`` is a directory when it is one, when it ends with a slash, or when it does not
    exist and has no suffix (``inbox``, as in inbox mode); otherwise it is the output file.
    """
    raw = os.fspath(out)
    path = Path(raw)
    if path.is_dir():
        return path / name, False
    if raw.endswith(("/", os.sep)) or (not path.exists() and not path.suffix):
        return path / name, True
    return path, not path.parent.exists()


@dataclass
class _Pending:
    """A sealed file verified and decrypted into ``tmp``, not yet renamed to ``target``."""

    sealed: Path
    tmp: Path
    target: Path
    envelope: dict[str, Any]
    checks: list[str]
    sealed_sha256: str
    rows: int | None
    acceptance: freshness.Acceptance | None


def _check_envelope(
    sealed: Path,
    envelope: dict[str, Any],
    env_bytes: bytes,
    signature: bytes,
    agreement: Agreement,
    me: PartySecret,
    ring: Keyring,
    expect_sender: str | None,
    checks: list[str],
) -> tuple[FileKind, str | None, str]:
    """Checks 'signature' to 'flows', on the envelope alone: (kind, dataset, file name)."""
    sender = _verify_signature(sealed, envelope, env_bytes, signature, ring)
    checks.append("signature")
    if expect_sender is not None and sender != expect_sender:
        raise _failed("sender", sealed, f"sent by '{sender}', expected '{expect_sender}'")
    try:
        agreement.party(sender)
    except AgreementError:
        # A key in the keyring does not make its holder a party: say which check refused it.
        raise _failed(
            "sender",
            sealed,
            f"'{sender}' is not a party of agreement {agreement.id} v{agreement.version}",
        ) from None
    if envelope.get("recipient") != me.party:
        raise _failed(
            "recipient", sealed, f"sealed for '{envelope.get('recipient')}', not for '{me.party}'"
        )
    checks.append("recipient")
    _check_agreement(sealed, envelope, agreement)
    checks.append("agreement")
    agreement.require_in_force()
    checks.append("validity")

    fmeta = envelope.get("file") or {}
    name = str(fmeta.get("name", ""))
    if Path(name).name != name or not name:
        raise _failed("format", sealed, "the envelope's file name is not a plain file name")
    kind, dataset = classify(name)
    if fmeta.get("kind") != kind.value or fmeta.get("dataset") != dataset:
        raise _failed("format", sealed, "the envelope's file kind does not match the file name")
    check_flow(agreement, kind, dataset, sender, me.party)
    checks.append("flows")
    return kind, dataset, name


def _after_decryption(
    sealed: Path,
    tmp: Path,
    name: str,
    kind: FileKind,
    dataset: str | None,
    stated: freshness.Delivery | None,
    manifest: Path | None,
    sha256: str,
    agreement: Agreement,
    checks: list[str],
) -> int | None:
    """Checks 'manifest', 'fields' and the manifest's own delivery; the file's rows (Parquet)."""
    rows = _parquet_rows(tmp, name) if name.endswith(".parquet") else None
    if manifest is not None:
        _check_manifest(sealed, manifest, name, sha256)
        data = _manifest_json(manifest)
        if kind in (FileKind.TOKENS, FileKind.PAYLOAD, FileKind.WITHDRAWALS) and rows is not None:
            _check_rows(sealed.name, _shown(manifest), _listed_entry(data, kind), rows)
            number = data.get("delivery")
            if stated is not None and number != stated.number:
                raise _failed(
                    "freshness",
                    sealed,
                    f"the envelope says delivery {stated.number}, its manifest "
                    f"{_shown(manifest)} is delivery {number}",
                )
        checks.append("manifest")
    check_fields(agreement, kind, dataset, tmp, label=name)
    checks.append("fields")
    if kind in (FileKind.TOKENS_MANIFEST, FileKind.WITHDRAWALS_MANIFEST) and stated is not None:
        number = _manifest_json(tmp).get("delivery")
        if number != stated.number:
            raise _failed(
                "freshness",
                sealed,
                f"the envelope says delivery {stated.number}, the manifest inside says {number}",
            )
    return rows


def _verify_to_temp(
    sealed: Path,
    *,
    agreement: Agreement,
    me: PartySecret,
    ring: Keyring,
    out: str | os.PathLike[str],
    expect_sender: str | None,
    manifest: Path | None,
    state: Path | None,
    accept_older: bool,
) -> _Pending:
    """Every check of :func:`unseal_file`, decrypting into a temporary file beside the target.

    On any failure the temporary file is removed and nothing else is left behind (a directory
    made for the target is the caller's to remove).
    """
    envelope, env_bytes, signature, ct_len = read_envelope(sealed)
    checks = ["format"]
    kind, dataset, name = _check_envelope(
        sealed, envelope, env_bytes, signature, agreement, me, ring, expect_sender, checks
    )
    fmeta = envelope.get("file") or {}
    stated = freshness.Delivery.from_json(envelope.get("delivery"))
    expected_series = _series(kind, dataset)
    if stated is not None and stated.series != expected_series:
        raise _failed("freshness", sealed, f"the delivery is of '{stated.series}', not '{name}'")
    acceptance = None
    if state is not None:
        # Before decrypting: the signed envelope says which delivery this is.
        acceptance = freshness.check(
            state,
            stated,
            name,
            str(fmeta.get("sha256")),
            accept_older=accept_older,
            label=sealed.name,
        )
        checks.append("freshness")

    target, new_dir = _target(out, name)
    if target.name != name:
        raise _failed(
            "file-name",
            sealed,
            f"the file is '{name}'; refusing to write it as '{target.name}' (to unseal into a "
            "new directory, end --out with '/')",
        )
    # The directory is made only once the envelope has passed every check made so far, and
    # removed again if a later check fails.
    made_dir = new_dir and not target.parent.exists()
    if new_dir:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cmeta = envelope.get("ciphertext") or {}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with open(sealed, "rb") as fin, open(tmp, "wb") as fout:
            reader, writer = _HashingReader(fin, limit=ct_len), _HashingWriter(fout)
            decrypt_error: Exception | None = None
            try:
                pyrage.decrypt_io(reader, writer, [me.identity])
            except Exception as e:  # noqa: BLE001 - pyrage raises OSError or DecryptError
                decrypt_error = e
            reader.drain()  # hash the whole ciphertext even if decryption stopped early
        if reader.sha.hexdigest() != cmeta.get("sha256") or reader.size != cmeta.get("size"):
            raise _failed("ciphertext", sealed, "the encrypted content was altered or truncated")
        checks.append("ciphertext")
        if decrypt_error is not None:
            raise _failed(
                "decryption", sealed, f"age refused the ciphertext ({type(decrypt_error).__name__})"
            )
        checks.append("decryption")
        if writer.sha.hexdigest() != fmeta.get("sha256") or writer.size != fmeta.get("size"):
            raise _failed(
                "plaintext", sealed, "the decrypted file's SHA-256 differs from the envelope"
            )
        checks.append("plaintext")
        rows = _after_decryption(
            sealed, tmp, name, kind, dataset, stated, manifest, writer.sha.hexdigest(),
            agreement, checks,
        )  # fmt: skip
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if made_dir:
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # only if still empty
        raise
    # read_envelope checked the file is exactly ciphertext + envelope + signature + footer.
    whole = reader.sha.copy()
    whole.update(env_bytes + signature + _FOOTER.pack(_MAGIC, ct_len, len(env_bytes)))
    return _Pending(
        sealed, tmp, target, envelope, checks, whole.hexdigest(), rows, acceptance
    )  # fmt: skip


def _commit(p: _Pending) -> UnsealResult:
    """Rename a verified file into place and record it in the run record."""
    os.replace(p.tmp, p.target)
    rec = runrecord.current()
    name = p.target.name
    if p.rows is not None:
        rec.rows[name] = p.rows
    rec.inputs[os.fspath(p.sealed)] = p.sealed_sha256
    rec.outputs[os.fspath(p.target)] = str(p.envelope["file"]["sha256"])
    head = p.envelope.get("sender_audit_head")
    if isinstance(head, dict):
        rec.received_heads.append({"party": p.envelope["sender"], **head})
    if p.acceptance is not None and p.acceptance.older:
        rec.overrides.append(
            f"accept-older: {name} accepted as {p.acceptance.delivery.describe()}, not newer "
            "than the delivery accepted before"
        )
    return UnsealResult(path=p.target, envelope=p.envelope, checks=tuple(p.checks))


def _discard(pending: Iterable[_Pending]) -> None:
    for p in pending:
        with contextlib.suppress(FileNotFoundError):
            p.tmp.unlink()


def unseal_file(
    sealed: str | os.PathLike[str],
    *,
    agreement: Agreement,
    secret: PartySecret | str | os.PathLike[str],
    keyring: Keyring | str | os.PathLike[str],
    out: str | os.PathLike[str],
    expect_sender: str | None = None,
    manifest: str | os.PathLike[str] | None = None,
    state: str | os.PathLike[str] | None = None,
    accept_older: bool = False,
) -> UnsealResult:
    """Verify a sealed file and decrypt it, refusing it at the first failed check.

    Args:
        sealed: the sealed file.
        agreement: the agreement the recipient works under.
        secret: the recipient's party secret (object or path).
        keyring: the public keys of all parties.
        out: a directory (the file keeps its original name; made if needed) or the output
            path, whose name must be the original name: downstream stages read the dataset
            from the name. A path ending in a slash, or one that does not exist and has no
            suffix (``inbox``), is a directory.
        expect_sender: refuse a file from any other party.
        manifest: a manifest that must list the file with the same SHA-256 and row count.
        state: the recipient's delivery state (:mod:`wmw_link.freshness`): a delivery older
            than the latest accepted of its dataset is refused, check 'freshness'. None
            skips that check (library use without a state).
        accept_older: accept an older delivery all the same (recorded in the run record).

    Returns:
        The written path, the verified envelope and the checks passed.

    Raises:
        VerificationError: a failed check, named (format, signature, sender, recipient,
            agreement, freshness, ciphertext, decryption, plaintext, manifest, file-name).
        PolicyError: the agreement is not in force, or forbids this flow or these fields.
    """
    me = _as_secret(secret)
    pending = _verify_to_temp(
        Path(sealed), agreement=agreement, me=me, ring=_as_keyring(keyring), out=out,
        expect_sender=expect_sender, manifest=Path(manifest) if manifest is not None else None,
        state=Path(state) if state is not None else None, accept_older=accept_older,
    )  # fmt: skip
    result = _commit(pending)
    if state is not None and pending.acceptance is not None:
        freshness.commit(Path(state), [pending.acceptance], party=me.party)
    return result


def manifest_name(name: str) -> str | None:
    """The manifest that vouches for a data file's hash: ``<dataset>.manifest.json`` for tokens
    and payload, ``<dataset>.withdrawals.manifest.json`` for a withdrawal list,
    ``link-manifest.json`` for maps, None for a manifest itself."""
    kind, dataset = classify(name)
    if kind in (FileKind.TOKENS, FileKind.PAYLOAD, FileKind.WITHDRAWALS):
        assert dataset is not None
        return _manifest_beside(kind, dataset)
    if kind in (FileKind.MAP, FileKind.ID_CHANGES):
        return "link-manifest.json"
    return None


def unseal_all(
    sealed_dir: str | os.PathLike[str],
    *,
    agreement: Agreement,
    secret: PartySecret | str | os.PathLike[str],
    keyring: Keyring | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    expect_sender: str | None = None,
    state: str | os.PathLike[str] | None = None,
    accept_older: bool = False,
) -> list[UnsealResult]:
    """Unseal every ``*.sealed`` file in ``sealed_dir`` into ``out_dir`` (an inbox): all or none.

    Every file is verified and decrypted into a temporary file first; only when all of them
    passed are they renamed into place, so one refused file leaves the inbox as it was.
    Manifests are opened first; each data file is then also checked against its manifest: the
    one in this batch, or else one already in ``out_dir`` (an old manifest that lists another
    hash refuses the file, check ``manifest``).

    Raises:
        VerificationError, PolicyError: at the first file refused; nothing is written.
    """
    out = Path(out_dir)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if made:
        os.chmod(out, 0o700)  # an inbox of unsealed files is for its owner only
    me = _as_secret(secret)
    ring = _as_keyring(keyring)
    state_path = Path(state) if state is not None else None
    files = sorted(Path(sealed_dir).glob("*" + SEALED_SUFFIX))
    pending: list[_Pending] = []
    try:
        # The (not yet verified) envelope names the file; used only to open manifests first
        # and to pick the manifest to check against. Each envelope is verified before use.
        names = {p: str((read_envelope(p)[0].get("file") or {}).get("name", "")) for p in files}
        files.sort(key=lambda p: (not names[p].endswith("manifest.json"), p.name))
        seen: dict[str, Path] = {}
        for p in files:
            if names[p] in seen:
                raise _failed(
                    "format", p, f"{seen[names[p]].name} holds the same file ({names[p]})"
                )
            seen[names[p]] = p
            try:
                wanted = manifest_name(names[p])
            except PolicyError:
                wanted = None  # _verify_to_temp names the rule
            manifest = None
            if wanted:
                batch = [q.tmp for q in pending if q.target.name == wanted]
                manifest = (
                    batch[0] if batch else (out / wanted if (out / wanted).exists() else None)
                )
            pending.append(
                _verify_to_temp(
                    p,
                    agreement=agreement,
                    me=me,
                    ring=ring,
                    out=out,
                    expect_sender=expect_sender,
                    manifest=manifest,
                    state=state_path,
                    accept_older=accept_older,
                )  # fmt: skip
            )
    except BaseException:
        _discard(pending)
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    results = [_commit(p) for p in pending]
    if state_path is not None:
        freshness.commit(
            state_path, [p.acceptance for p in pending if p.acceptance is not None], me.party
        )
    return results
