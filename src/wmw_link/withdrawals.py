"""Withdrawals: a controller's signed list of row refs whose records must leave the linkage.

A record is withdrawn when its subject opts out (the NHS national data opt-out) or exercises
the UK GDPR right to erasure or to object. The controller turns the record ids into row refs
exactly as ``tokenise`` does (its own row-reference key, the agreement id, the dataset id:
:func:`wmw_link.tokenise.worker.row_ref_tokenizer`), so the list names the rows the TTP and the
analysts hold without naming anyone: no record id or other identifier is ever written. Two
files, owner-only (docs/withdrawals.md)::

    <dataset>.withdrawals.parquet         one column, row_ref (string): sorted, distinct
    <dataset>.withdrawals.manifest.json   kind, agreement, dataset, party, delivery, key
                                          check, rows, the Parquet file's name, SHA-256 and
                                          rows, created, signature

The signature is Ed25519 (PyNaCl, the controller's party key, :mod:`wmw_link.party_keys`) over
the canonical JSON of every other manifest field, so it covers the Parquet file's SHA-256 and
row count too. :func:`read_withdrawals` is what the TTP (``link --withdrawals``) and the
analysts (``journeys --withdrawals``) call: it refuses a list that is altered, unsigned or
signed by anyone but the dataset's controller (with a keyring), or made for another agreement.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nacl.exceptions import BadSignatureError
from pydantic import Field, StrictInt, StrictStr, ValidationError

from wmw_link import token_schema as ts
from wmw_link._version import __version__
from wmw_link.agreement import Agreement, Dataset, Role, load_agreement
from wmw_link.errors import (
    ConfigError,
    InputDataError,
    KeyFileError,
    PolicyError,
    VerificationError,
)
from wmw_link.files import atomic_path, sha256_file
from wmw_link.keys import SecretKey, load_key
from wmw_link.manifest_models import AgreementRef, FileEntry, Strict
from wmw_link.party_keys import Keyring, PartySecret, load_secret

KIND = "wmw-link/withdrawals"
FORMAT_VERSION = 1
PARQUET_SUFFIX = ".withdrawals.parquet"
MANIFEST_SUFFIX = ".withdrawals.manifest.json"
SIGNATURE_ALGORITHM = "ed25519"
#: What the manifest's key check value is of: the controller's row-reference key (the row refs
#: depend on it alone), not the shared linkage key of the tokens manifests.
KEY_CHECK_OF = "row-reference key"
_ROW_REF_PATTERN = f"^[0-9a-f]{{{2 * ts.ROW_REF_BYTES}}}$"
_SCHEMA = pa.schema([pa.field(ts.ROW_REF, pa.string(), nullable=False)])
DEFAULT_BATCH_ROWS = 100_000
#: The writer's top-level keys, exactly (manifest_check refuses any other at seal).
MANIFEST_KEYS = frozenset(
    {
        "kind",
        "format_version",
        "agreement",
        "dataset",
        "party",
        "delivery",
        "key_check",
        "key_check_of",
        "rows",
        "records",
        "files",
        "created",
        "tool_version",
        "signature",
    }
)
#: HKDF domain of the key that digests a record id file for the audit log.
AUDIT_DOMAIN = "withdrawals-audit"


@dataclass(frozen=True)
class Withdrawals:
    """A verified withdrawal list: the dataset, its row refs (distinct strings), the manifest."""

    dataset: str
    row_refs: pa.Array
    manifest: dict[str, Any]


@dataclass(frozen=True)
class WithdrawResult:
    """What :func:`withdraw` or :func:`write_withdrawals` wrote (counts, never values)."""

    dataset: str
    party: str
    parquet: Path
    manifest: Path
    rows: int
    key_check: str
    signed: bool
    records_input: int = 0
    records_blank: int = 0
    records_repeated: int = 0
    #: an earlier list of the dataset in the same folder was replaced
    replaced: bool = False
    delivery: int = 1

    @property
    def outputs(self) -> list[Path]:
        return [self.parquet, self.manifest]


def series(dataset_id: str) -> str:
    """The delivery series of a dataset's withdrawal lists (numbered apart from its tokens)."""
    return f"{dataset_id}.withdrawals"


def paths_for(out_dir: str | os.PathLike[str], dataset_id: str) -> tuple[Path, Path]:
    """``(<dataset>.withdrawals.parquet, <dataset>.withdrawals.manifest.json)`` in ``out_dir``."""
    out = Path(out_dir)
    return out / f"{dataset_id}{PARQUET_SUFFIX}", out / f"{dataset_id}{MANIFEST_SUFFIX}"


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes the signature covers: every manifest field but ``signature``, canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# -- controller: derive and write ----------------------------------------------------------------


def _as_agreement(agreement: Agreement | str | os.PathLike[str]) -> Agreement:
    return agreement if isinstance(agreement, Agreement) else load_agreement(agreement)


def _require_controller(agreement: Agreement, party: str, dataset_id: str) -> Dataset:
    ds = agreement.dataset(dataset_id)
    agreement.require_role(party, Role.CONTROLLER, "withdraw records of a dataset")
    if ds.controller != party:
        raise PolicyError(
            f"rule 'controller': dataset '{dataset_id}' belongs to '{ds.controller}', not to "
            f"'{party}'; only its controller may withdraw its records"
        )
    return ds


def derive_row_refs(
    agreement: Agreement, dataset_id: str, record_ids: pa.Array, ref_key: SecretKey
) -> pa.Array:
    """Row refs of raw record ids, exactly as ``tokenise`` makes them (null for a blank id).

    Args:
        agreement: the agreement (its id keys the derivation).
        dataset_id: the dataset (hashed with each record id).
        record_ids: the record ids as strings (other types are cast as the tokenise reader does).
        ref_key: the controller's own row-reference key (``tokenise --ref-key``).

    Returns:
        A string array, one row ref per input id, null where the id is blank.
    """
    # Imported here: the readers of withdrawal lists (TTP, analysts) never need the tokeniser.
    from wmw_link.tokenise.worker import row_ref_tokenizer, row_refs

    agreement.dataset(dataset_id)
    if not pa.types.is_string(record_ids.type):
        record_ids = pc.cast(record_ids, pa.string())
    tokenizer = row_ref_tokenizer(ref_key, agreement.id, dataset_id)
    return pc.cast(row_refs(record_ids, tokenizer), pa.string())


def _not_row_refs(values: pa.Array) -> int:
    """How many strings are not row refs (32 lower-case hex characters)."""
    if not len(values):
        return 0
    ok = pc.match_substring_regex(values, _ROW_REF_PATTERN)
    return len(values) - ok.true_count


def _checked_refs(row_refs: pa.Array | pa.ChunkedArray | Iterable[str]) -> pa.Array:
    """Distinct, sorted row refs; refuse anything that is not a row ref (a record id, above all)."""
    if isinstance(row_refs, pa.ChunkedArray):
        row_refs = row_refs.combine_chunks()
    elif not isinstance(row_refs, pa.Array):
        row_refs = pa.array(list(row_refs), pa.string())
    if pa.types.is_dictionary(row_refs.type):
        row_refs = row_refs.dictionary_decode()
    if not pa.types.is_string(row_refs.type):
        raise InputDataError(f"row refs must be strings, not {row_refs.type}")
    if row_refs.null_count:
        raise InputDataError(f"{row_refs.null_count} row ref(s) are null")
    if _not_row_refs(row_refs):
        # Never show the value: a "row ref" that is not one may be a record id.
        raise InputDataError(
            f"rule 'row refs only': {_not_row_refs(row_refs)} value(s) are not row refs ({2 * ts.ROW_REF_BYTES} "
            "lower-case hex characters); a withdrawal list holds row refs, never record ids"
        )
    return pc.unique(row_refs).sort()  # sorted: the order says nothing about the input's


def write_withdrawals(
    agreement: Agreement | str | os.PathLike[str],
    dataset_id: str,
    row_refs: pa.Array | pa.ChunkedArray | Iterable[str],
    out_dir: str | os.PathLike[str],
    *,
    key_check: str,
    party: str | None = None,
    secret: PartySecret | str | os.PathLike[str] | None = None,
    records: dict[str, int] | None = None,
    delivery: int = 1,
    now: dt.datetime | None = None,
) -> WithdrawResult:
    """Write a dataset's withdrawal list and its (optionally signed) manifest, owner-only.

    The Parquet file is renamed into place before the manifest, and an earlier manifest is
    removed first: a manifest never describes another list.

    Args:
        agreement: the agreement (object or YAML path).
        dataset_id: the dataset whose records are withdrawn.
        row_refs: the row refs (any order, repeats allowed); each must be a row ref.
        out_dir: the folder (made owner-only if new).
        key_check: the check value of the row-reference key the refs were made with
            (``SecretKey.check_value(agreement.id)``).
        party: who writes the list; must be the dataset's controller (the default).
        secret: the party's secret (object or path) to sign with; None writes an unsigned list,
            which a reader with a keyring refuses.
        records: counts to record (``input``, ``blank``, ``repeated``), never values.
        delivery: the list's number among the dataset's withdrawal lists (series
            ``<dataset>.withdrawals``): recipients refuse one older than they accepted.
        now: creation time (tests).

    Raises:
        PolicyError: the party is not the dataset's controller, or the dataset is unknown.
        KeyFileError: the secret belongs to another party.
        InputDataError: a value is not a row ref.
    """
    agreement = _as_agreement(agreement)
    party = party or agreement.dataset(dataset_id).controller
    _require_controller(agreement, party, dataset_id)
    signer = None
    if secret is not None:
        signer = secret if isinstance(secret, PartySecret) else load_secret(secret)
        if signer.party != party:
            raise KeyFileError(
                f"{signer.source}: this secret belongs to '{signer.party}'; a withdrawal list "
                f"of '{dataset_id}' is signed by its controller '{party}'"
            )
    refs = _checked_refs(row_refs)
    if delivery < 1:
        raise ConfigError(f"delivery must be 1 or more, not {delivery}")
    counts = {"input": len(refs), "blank": 0, "repeated": 0, **(records or {})}
    if counts["input"] - counts["blank"] - counts["repeated"] != len(refs):
        raise ConfigError(
            f"records: input {counts['input']} - blank {counts['blank']} - repeated "
            f"{counts['repeated']} is not the {len(refs)} distinct row refs listed"
        )
    out = Path(out_dir)
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    parquet, manifest_path = paths_for(out, dataset_id)
    replaced = parquet.exists() or manifest_path.exists()
    with contextlib.suppress(FileNotFoundError):
        manifest_path.unlink()  # a stale manifest must never describe the new list
    # Sealed copies of an earlier list (OUT/sealed/<party>/, from --seal-to) go too.
    for name in (parquet.name, manifest_path.name):
        for old in out.glob(f"sealed/*/{name}.sealed"):
            old.unlink()
    with atomic_path(parquet) as tmp:
        pq.write_table(pa.table([refs], schema=_SCHEMA), tmp, compression="zstd")
        os.chmod(tmp, 0o600)
        digest = sha256_file(tmp)
    manifest: dict[str, Any] = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "agreement": {"id": agreement.id, "version": agreement.version, "hash": agreement.hash},
        "dataset": dataset_id,
        "party": party,
        "delivery": delivery,
        "key_check": key_check,
        "key_check_of": KEY_CHECK_OF,
        "rows": len(refs),
        "records": {k: counts[k] for k in ("input", "blank", "repeated")},
        "files": {"withdrawals": {"name": parquet.name, "sha256": digest, "rows": len(refs)}},
        "created": (now or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat(),
        "tool_version": __version__,
        "signature": None,
    }
    if signer is not None:
        value = signer.signing_key.sign(canonical(manifest)).signature
        manifest["signature"] = {
            "algorithm": SIGNATURE_ALGORITHM,
            "party": signer.party,
            "value": base64.b64encode(value).decode("ascii"),
        }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o600)
    return WithdrawResult(
        dataset=dataset_id,
        party=party,
        parquet=parquet,
        manifest=manifest_path,
        rows=len(refs),
        key_check=key_check,
        signed=signer is not None,
        records_input=counts["input"],
        records_blank=counts["blank"],
        records_repeated=counts["repeated"],
        replaced=replaced,
        delivery=delivery,
    )


def withdraw(
    agreement: Agreement | str | os.PathLike[str],
    dataset_id: str,
    records: str | os.PathLike[str] | pa.Table,
    key: SecretKey | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    party: str | None = None,
    secret: PartySecret | str | os.PathLike[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    delivery: int | None = None,
    now: dt.datetime | None = None,
) -> WithdrawResult:
    """Turn a file of record ids into the dataset's withdrawal list (``wmw-link withdraw``).

    Args:
        agreement: the agreement (object or YAML path).
        dataset_id: the dataset; its ``record_id`` column is read from ``records``.
        records: CSV (UTF-8, header) or Parquet file, or an Arrow table; other columns are not
            read. Blank ids are counted and skipped; repeated ids are listed once.
        key: the controller's row-reference key (``tokenise --ref-key``).
        out_dir: where the list and its manifest go.
        party: who runs it; must be the dataset's controller (the default).
        secret: the party secret to sign with (None: an unsigned list).
        batch_rows: rows read at a time.
        delivery: the list's number (series ``<dataset>.withdrawals``). Default: one more
            than the counter beside the key file (``<key>.deliveries.json``, which tokenise
            keeps too), updated when the list is written; 1 for an in-memory key.
        now: creation time (tests).

    Raises:
        PolicyError: not the dataset's controller, or the dataset is not in the agreement.
        InputDataError: the file is missing, unreadable, empty, lacks the record id column, or
            holds no record id at all (the message names the file and column, never a value).
        KeyFileError: an unsafe or malformed key or secret.
    """
    from wmw_link import freshness
    from wmw_link.tokenise.reader import open_input  # the controller's side only

    agreement = _as_agreement(agreement)
    ds = agreement.dataset(dataset_id)
    party = party or ds.controller
    _require_controller(agreement, party, dataset_id)
    ref_key = key if isinstance(key, SecretKey) else load_key(key)
    if batch_rows < 1:
        raise ConfigError("batch_rows must be at least 1")
    counter = freshness.counter_path(ref_key.source)
    number = freshness.next_delivery(counter, series(ds.id), delivery)
    source = open_input(records, [ds.record_id], ds.id, batch_rows)
    parts: list[pa.Array] = []
    n_in = blank = 0
    for batch in source.batches:
        refs = derive_row_refs(agreement, ds.id, batch.column(0), ref_key)
        n_in += len(refs)
        blank += refs.null_count
        parts.append(refs.drop_null())
    if n_in == blank:
        raise InputDataError(
            f"{source.label}: rule 'records': column '{ds.record_id}' holds no record id "
            f"({blank} blank row(s)); nothing to withdraw"
        )
    refs = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    distinct = pc.count_distinct(refs).as_py()
    result = write_withdrawals(
        agreement,
        ds.id,
        refs,
        out_dir,
        key_check=ref_key.check_value(agreement.id),
        party=party,
        secret=secret,
        records={"input": n_in, "blank": blank, "repeated": len(refs) - distinct},
        delivery=number,
        now=now,
    )
    freshness.record_issued(counter, series(ds.id), number)
    return result


def key_has_tokenised(key: SecretKey | str | os.PathLike[str], dataset_id: str) -> bool | None:
    """Whether the delivery counter beside a row-reference key file records ``dataset_id``.

    ``tokenise`` counts its deliveries in ``<ref-key>.deliveries.json``: a key with no count for
    the dataset is likely the wrong key (the linkage key, say), whose row refs match nothing.
    None when it cannot tell (an in-memory key, or an unreadable counter).
    """
    from wmw_link import freshness

    source = key.source if isinstance(key, SecretKey) else os.fspath(key)
    counter = freshness.counter_path(source)
    if counter is None:
        return None
    try:
        data = freshness.read_json(counter, freshness.COUNTER_KIND)
    except VerificationError:
        return None
    return dataset_id in (data.get("issued") or {})


def records_digest(
    path: str | os.PathLike[str], key: SecretKey | str | os.PathLike[str], agreement_id: str
) -> str:
    """A keyed digest of the record id file, for the controller's audit log.

    A plain SHA-256 of a short file of record ids could be reversed by hashing guesses (ids
    are often sequential), so the audit log gets an HMAC under a subkey of the controller's
    row-reference key instead: the controller can still prove which file it used.
    """
    ref_key = key if isinstance(key, SecretKey) else load_key(key)
    mac = hmac.new(ref_key.derive(agreement_id, AUDIT_DOMAIN), digestmod=hashlib.sha256)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            mac.update(chunk)
    return "hmac-sha256:" + mac.hexdigest()


# -- TTP and analysts: read and verify -----------------------------------------------------------


class _Files(Strict):
    withdrawals: FileEntry


class _Signature(Strict):
    algorithm: StrictStr
    party: StrictStr
    value: StrictStr


class WithdrawalsManifest(Strict):
    """The fields of a withdrawals manifest a reader relies on (docs/withdrawals.md)."""

    kind: StrictStr
    format_version: StrictInt
    agreement: AgreementRef
    dataset: StrictStr
    party: StrictStr
    delivery: StrictInt = Field(ge=1)
    key_check: StrictStr
    rows: StrictInt = Field(ge=0)
    files: _Files
    created: StrictStr
    signature: _Signature | None = None


_TYPE_WORDS = {
    "dict_type": "an object",
    "model_type": "an object",
    "string_type": "a string",
    "int_type": "an integer",
    "greater_than_equal": "a number at or above its minimum",
}


def _refused(path: Path, rule: str, why: str) -> VerificationError:
    return VerificationError(f"{path}: withdrawal list refused: rule '{rule}': {why}")


def _locate(path: Path) -> tuple[Path, Path]:
    """The (Parquet, manifest) pair from either file, or from a folder holding one list."""
    if path.is_dir():
        found = sorted(path.glob("*" + PARQUET_SUFFIX))
        if len(found) != 1:
            raise InputDataError(
                f"{path}: a folder with {len(found)} withdrawal lists; give one "
                f"<dataset>{PARQUET_SUFFIX} file"
            )
        path = found[0]
    name = path.name
    if name.endswith(MANIFEST_SUFFIX) and len(name) > len(MANIFEST_SUFFIX):
        stem = name[: -len(MANIFEST_SUFFIX)]
    elif name.endswith(PARQUET_SUFFIX) and len(name) > len(PARQUET_SUFFIX):
        stem = name[: -len(PARQUET_SUFFIX)]
    else:
        raise InputDataError(
            f"{path}: not a withdrawal list (expected <dataset>{PARQUET_SUFFIX} or "
            f"<dataset>{MANIFEST_SUFFIX})"
        )
    parquet, manifest = paths_for(path.parent, stem)
    if not parquet.is_file():
        raise InputDataError(f"{parquet}: withdrawal list not found")
    if not manifest.is_file():
        raise _refused(parquet, "manifest", f"no manifest {manifest.name} beside it")
    return parquet, manifest


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refused(path, "manifest", f"not readable JSON ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise _refused(path, "manifest", f"not a withdrawals manifest (kind is not '{KIND}')")
    if data.get("format_version") != FORMAT_VERSION:
        raise _refused(
            path,
            "format version",
            f"format_version {data.get('format_version')!r}; this wmw-link reads {FORMAT_VERSION}",
        )
    try:
        WithdrawalsManifest.model_validate(data)
    except ValidationError as e:
        # Name the field and the expected type, never the value.
        err = e.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            raise _refused(path, "manifest", f"field '{field}' is missing") from None
        want = _TYPE_WORDS.get(err["type"], "of another type")
        raise _refused(path, "manifest", f"field '{field}' must be {want}") from None
    return data


def _check_agreement(path: Path, m: dict[str, Any], agreement: Agreement) -> Dataset:
    a = m["agreement"]
    if a["id"] != agreement.id:
        raise _refused(path, "agreement", f"made under agreement '{a['id']}', not '{agreement.id}'")
    if not agreement.accepts_version(a["version"]):
        accepted = ", ".join(f"v{v}" for v in [agreement.version, *agreement.compatible_with])
        raise _refused(
            path,
            "version",
            f"made under {agreement.id} v{a['version']}; v{agreement.version} accepts {accepted}",
        )
    if a["version"] == agreement.version and a["hash"] != agreement.hash:
        raise _refused(
            path,
            "agreement hash",
            f"the agreement hash differs from {agreement.id} v{agreement.version} (the "
            "agreement text was changed)",
        )
    try:
        ds = agreement.dataset(m["dataset"])
    except PolicyError:
        raise _refused(
            path,
            "datasets",
            f"dataset '{m['dataset']}' is not in agreement {agreement.id} v{agreement.version}",
        ) from None
    if m["party"] != ds.controller:
        raise _refused(
            path,
            "controller",
            f"dataset '{ds.id}' belongs to '{ds.controller}', but the manifest names party "
            f"'{m['party']}'",
        )
    return ds


def _check_signature(path: Path, m: dict[str, Any], ds: Dataset, ring: Keyring) -> None:
    sig = m.get("signature")
    if sig is None:
        raise _refused(
            path,
            "signature",
            f"the list is not signed; with a keyring only a list signed by '{ds.controller}' "
            f"(the controller of '{ds.id}') is accepted",
        )
    if sig["algorithm"] != SIGNATURE_ALGORITHM:
        raise _refused(path, "signature", f"algorithm '{sig['algorithm']}' is not ed25519")
    if sig["party"] != ds.controller:
        raise _refused(
            path,
            "signature",
            f"signed by '{sig['party']}'; only '{ds.controller}', the controller of "
            f"'{ds.id}', may withdraw its records",
        )
    try:
        value = base64.b64decode(sig["value"], validate=True)
    except ValueError:
        raise _refused(path, "signature", "the signature is not base64") from None
    public = ring.get(ds.controller)
    try:
        public.verify_key.verify(canonical(m), value)
    except (BadSignatureError, ValueError):
        raise _refused(
            path,
            "signature",
            f"the signature does not verify with the public key of '{ds.controller}' in the "
            f"keyring ({public.source}): the manifest was altered or signed by another key",
        ) from None


def _check_list(parquet: Path, m: dict[str, Any]) -> pa.Array:
    entry = m["files"]["withdrawals"]
    if sha256_file(parquet) != entry["sha256"]:
        raise _refused(
            parquet,
            "file hash",
            "SHA-256 differs from its manifest (the list was altered, or is not the one the "
            "manifest describes)",
        )
    try:
        pf = pq.ParquetFile(parquet)
        schema = pf.schema_arrow
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a broken file
        raise _refused(
            parquet, "format", f"not a readable Parquet file ({type(e).__name__})"
        ) from None
    if schema.names != [ts.ROW_REF]:
        # Refused unread: any other column could hold record ids.
        raise _refused(
            parquet,
            "row refs only",
            f"columns {', '.join(schema.names) or '(none)'}; a withdrawal list has exactly one "
            f"column, '{ts.ROW_REF}'",
        )
    if schema.field(ts.ROW_REF).type != pa.string():
        raise _refused(
            parquet, "format", f"column '{ts.ROW_REF}' is {schema.field(ts.ROW_REF).type}"
        )
    refs = pf.read().column(0).combine_chunks()
    for said in (entry["rows"], m["rows"]):
        if len(refs) != said:
            raise _refused(parquet, "row count", f"{len(refs)} rows, the manifest says {said}")
    if refs.null_count:
        raise _refused(parquet, "row refs only", f"{refs.null_count} row(s) have no row ref")
    bad = _not_row_refs(refs)
    if bad:
        raise _refused(
            parquet,
            "row refs only",
            f"{bad} value(s) are not row refs ({2 * ts.ROW_REF_BYTES} lower-case hex characters)",
        )
    repeated = len(refs) - pc.count_distinct(refs).as_py()
    if repeated:
        raise _refused(parquet, "row refs", f"{repeated} row ref(s) repeat an earlier row's")
    return refs


def read_withdrawals(
    agreement: Agreement | str | os.PathLike[str],
    path: str | os.PathLike[str],
    keyring: Keyring | str | os.PathLike[str] | None = None,
) -> Withdrawals:
    """Read and verify a withdrawal list (the TTP's ``link`` and the analysts' ``journeys``).

    Checks, in order: the manifest is beside the list and well-formed (kind, format version,
    fields); it was made under this agreement (id, an accepted version, the same hash for the
    same version) for a dataset of the agreement by that dataset's controller; with a keyring,
    the Ed25519 signature by the controller over the manifest; the list's SHA-256 and row
    count are the manifest's; the file has exactly the column ``row_ref``, every value a row
    ref, none repeated.

    Args:
        agreement: the agreement the reader works under (object or YAML path).
        path: ``<dataset>.withdrawals.parquet`` or its manifest (the other must be beside it),
            or a folder holding exactly one list.
        keyring: the parties' public keys (a :class:`Keyring` or its folder); without one the
            signature is not checked (the hash and agreement checks still are).

    Returns:
        The dataset, its withdrawn row refs and the manifest.

    Raises:
        VerificationError: a failed check; the message names the file and the rule.
        InputDataError: the list is missing or the path is not a withdrawal list.
        KeyFileError: the keyring has no (valid) public key for the dataset's controller.
    """
    agreement = _as_agreement(agreement)
    parquet, manifest_path = _locate(Path(path))
    m = _load_manifest(manifest_path)
    stem = parquet.name[: -len(PARQUET_SUFFIX)]
    listed = m["files"]["withdrawals"]["name"]
    if m["dataset"] != stem or listed != parquet.name:
        raise _refused(
            manifest_path,
            "file name",
            f"the manifest is for '{listed}' (dataset '{m['dataset']}'), not {parquet.name}",
        )
    ds = _check_agreement(manifest_path, m, agreement)
    if keyring is not None:
        ring = keyring if isinstance(keyring, Keyring) else Keyring(keyring)
        _check_signature(manifest_path, m, ds, ring)
    refs = _check_list(parquet, m)
    return Withdrawals(dataset=ds.id, row_refs=refs, manifest=m)


__all__ = [
    "KIND",
    "MANIFEST_SUFFIX",
    "PARQUET_SUFFIX",
    "WithdrawResult",
    "Withdrawals",
    "WithdrawalsManifest",
    "canonical",
    "derive_row_refs",
    "key_has_tokenised",
    "paths_for",
    "read_withdrawals",
    "records_digest",
    "series",
    "withdraw",
    "write_withdrawals",
]
