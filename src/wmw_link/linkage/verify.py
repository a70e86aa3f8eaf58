"""Verify every input the trusted third party receives, before any linkage.

The TTP accepts exactly two kinds of file: ``<dataset>.tokens.parquet`` and
``<dataset>.manifest.json``. Everything else (payloads above all: the TTP never reads a
payload) is refused. Each tokens file must match its manifest (SHA-256, row count, columns),
each manifest must belong to this agreement (id, an accepted version, the hash for the same
version), name a dataset of the agreement and that dataset's controller, and every partner
must have used the same linkage key (the same key check value). Any failure stops the run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import StrictStr, ValidationError

from wmw_link import token_schema as ts
from wmw_link.agreement import Agreement, Dataset
from wmw_link.errors import InputDataError, VerificationError
from wmw_link.files import sha256_file
from wmw_link.manifest_check import verify_tokens_manifest_counts
from wmw_link.manifest_models import AgreementRef, FileEntry, Strict

MANIFEST_KIND = "wmw-link/tokens-manifest"
TOKENS_SUFFIX = ".tokens.parquet"
MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class VerifiedInput:
    """One dataset's tokens, checked against its manifest."""

    dataset: str
    party: str
    tokens_path: Path
    manifest_path: Path
    manifest: dict[str, Any]
    rows: int
    sha256: str
    #: The file's row refs in file order (checked non-null and distinct): the maps' row refs.
    row_refs: pa.Array
    #: The agreement's dataset: it, not the manifest, says what each token column is.
    spec_dataset: Dataset

    @property
    def token_columns(self) -> dict[str, dict[str, Any]]:
        """Token column name -> {name, kind, domain, parts}.

        The specification comes from :mod:`wmw_link.token_schema`, not from the manifest (which
        verification has checked agrees with it): the controller does not decide how a column
        is compared.
        """
        spec = {c.name: c for c in ts.columns_for_dataset(self.spec_dataset)}
        return {c: spec[c].to_manifest() for c in self.manifest["token_schema"]["columns"]}

    @property
    def agreement_version(self) -> int:
        return int(self.manifest["agreement"]["version"])


def collect_inputs(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand a directory or a list of files into files, refusing anything but tokens/manifests.

    Raises:
        VerificationError: a file that is not a tokens parquet or a manifest (payload files
            are named as such).
        InputDataError: a path does not exist, or nothing was given.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files.extend(
                sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            )
        elif p.is_file():
            files.append(p)
        else:
            raise InputDataError(f"{p}: no such file or directory")
    if not files:
        raise InputDataError(
            "no input files: give a directory of tokens and manifests, or the files"
        )
    refused = [f for f in files if not f.name.endswith((TOKENS_SUFFIX, MANIFEST_SUFFIX))]
    if refused:
        payloads = [f for f in refused if f.name.endswith(".payload.parquet")]
        if payloads:
            raise VerificationError(
                f"{payloads[0]}: refused: a payload file; the trusted third party reads only "
                "*.tokens.parquet and *.manifest.json, never a payload"
            )
        raise VerificationError(
            f"{refused[0]}: refused: the trusted third party reads only *.tokens.parquet and "
            f"*.manifest.json ({len(refused)} other file(s) given)"
        )
    return files


class _Files(Strict):
    tokens: FileEntry


class _ColumnSpec(Strict):
    name: StrictStr
    kind: StrictStr
    domain: StrictStr
    parts: list[list[StrictStr]]


class _TokenSchema(Strict):
    columns: dict[StrictStr, _ColumnSpec]


class TokensManifest(Strict):
    """The parts of a tokens manifest (docs/contracts.md) the trusted third party relies on."""

    kind: StrictStr
    agreement: AgreementRef
    dataset: StrictStr
    party: StrictStr
    key_check: StrictStr
    token_schema: _TokenSchema
    files: _Files


_TYPE_WORDS = {
    "dict_type": "an object",
    "model_type": "an object",
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "true or false",
    "greater_than_equal": "a count (0 or more)",
}


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VerificationError(
            f"{path}: not a readable JSON manifest ({type(e).__name__})"
        ) from None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        raise VerificationError(f"{path}: not a tokens manifest (kind is not '{MANIFEST_KIND}')")
    schema = data.get("token_schema")
    version = schema.get("version") if isinstance(schema, dict) else None
    if version is not None and version != ts.TOKEN_SCHEMA_VERSION:
        # Before the field checks: an older schema's columns are described differently.
        raise VerificationError(_version_message(path, version))
    try:
        TokensManifest.model_validate(data)
    except ValidationError as e:
        # Name the field and the expected type, never the value (it may be personal data).
        err = e.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            raise VerificationError(f"{path}: manifest lacks '{field}'") from None
        want = _TYPE_WORDS.get(err["type"], "of another type")
        raise VerificationError(
            f"{path}: manifest field '{field}' must be {want} (rule 'manifest structure')"
        ) from None
    verify_tokens_manifest_counts(path, data)  # input = tokens + rejected, file rows = tokens
    return data


def _check_agreement(path: Path, m: dict[str, Any], agreement: Agreement) -> None:
    a = m["agreement"]
    if a.get("id") != agreement.id:
        raise VerificationError(
            f"{path}: rule 'agreement': made under agreement '{a.get('id')}', not '{agreement.id}'"
        )
    version = a.get("version")
    if not isinstance(version, int) or not agreement.accepts_version(version):
        raise VerificationError(
            f"{path}: rule 'version': made under {agreement.id} v{version}; v{agreement.version} "
            f"accepts only v{agreement.version}"
            + "".join(f", v{v}" for v in agreement.compatible_with)
        )
    if version == agreement.version and a.get("hash") != agreement.hash:
        raise VerificationError(
            f"{path}: rule 'agreement hash': the manifest's agreement hash differs from "
            f"{agreement.id} v{agreement.version} (the agreement text was changed)"
        )
    ds_id = m["dataset"]
    try:
        ds = agreement.dataset(ds_id)
    except Exception:  # PolicyError from the look-up: re-word as a verification failure
        raise VerificationError(
            f"{path}: rule 'datasets': dataset '{ds_id}' is not in agreement {agreement.id} "
            f"v{agreement.version}"
        ) from None
    if m["party"] != ds.controller:
        raise VerificationError(
            f"{path}: rule 'controller': dataset '{ds_id}' belongs to '{ds.controller}', but the "
            f"manifest names party '{m['party']}'"
        )


def allowed_token_columns(dataset: Dataset) -> dict[str, ts.TokenColumn]:
    """The token columns the agreement permits for a dataset (from its identifier types)."""
    return {c.name: c for c in ts.columns_for_dataset(dataset)}


def _version_message(path: Path, version: object) -> str:
    return (
        f"{path}: rule 'token schema': tokens made under token schema version {version!r}; "
        f"this wmw-link links version {ts.TOKEN_SCHEMA_VERSION} (tokenise again with the same "
        "wmw-link version as the linkage unit)"
    )


def _check_schema(
    manifest_path: Path, m: dict[str, Any], dataset: Dataset, agreement: Agreement
) -> None:
    """The manifest's token schema: only columns the agreement permits, specified as the schema.

    The allowed columns come from the agreement (the dataset's identifier types), never from
    the manifest: a controller listing a plaintext column in its own manifest does not make it
    a token column.
    """
    version = m["token_schema"].get("version")
    if version != ts.TOKEN_SCHEMA_VERSION:
        raise VerificationError(_version_message(manifest_path, version))
    allowed = allowed_token_columns(dataset)
    for col, spec in m["token_schema"]["columns"].items():
        if col not in allowed:
            raise VerificationError(
                f"{manifest_path}: rule 'tokens only': token schema column '{col}' is not a "
                f"token column agreement {agreement.id} v{agreement.version} permits for "
                f"dataset '{dataset.id}' (identifier types "
                f"{', '.join(f.type.value for f in dataset.identifiers)})"
            )
        want = allowed[col].to_manifest()
        for key in ("name", "kind", "domain", "parts"):
            if spec.get(key) != want[key]:
                raise VerificationError(
                    f"{manifest_path}: rule 'token schema': column '{col}' has {key} other "
                    f"than the token schema's '{want[key]}'"
                )


def _check_tokens(
    tokens: Path, manifest_path: Path, m: dict[str, Any], dataset: Dataset, agreement: Agreement
) -> tuple[int, str, pa.Array]:
    expected = m["files"]["tokens"]
    digest = sha256_file(tokens)
    if digest != expected["sha256"]:
        raise VerificationError(
            f"{tokens}: rule 'file hash': SHA-256 differs from {manifest_path.name} (the file "
            "was altered or is not the one the manifest describes)"
        )
    try:
        meta = pq.ParquetFile(tokens)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise VerificationError(
            f"{tokens}: not a readable Parquet file ({type(e).__name__})"
        ) from None
    rows = meta.metadata.num_rows
    if rows != expected["rows"]:
        raise VerificationError(
            f"{tokens}: rule 'row count': {rows} rows, manifest {manifest_path.name} says "
            f"{expected['rows']}"
        )
    columns = set(meta.schema_arrow.names)
    if ts.ROW_REF not in columns:
        raise VerificationError(f"{tokens}: column '{ts.ROW_REF}' is missing")
    permitted = {ts.ROW_REF, *allowed_token_columns(dataset)}
    foreign = sorted(columns - permitted)
    if foreign:
        # A column the agreement does not make a token column could be plaintext or payload:
        # refuse it unread, whatever the manifest says.
        raise VerificationError(
            f"{tokens}: rule 'tokens only': column(s) {', '.join(foreign)} are not token "
            f"columns agreement {agreement.id} v{agreement.version} permits for dataset "
            f"'{dataset.id}'"
        )
    listed = {ts.ROW_REF, *m["token_schema"]["columns"]}
    extra = sorted(columns - listed)
    if extra:
        raise VerificationError(
            f"{tokens}: rule 'tokens only': column(s) {', '.join(extra)} are not in the "
            "manifest's token schema"
        )
    missing = sorted(listed - columns)
    if missing:
        raise VerificationError(
            f"{tokens}: column(s) {', '.join(missing)} of the token schema are missing"
        )
    spec = allowed_token_columns(dataset)
    want = {ts.ROW_REF: pa.string(), **{c: spec[c].arrow_type for c in listed - {ts.ROW_REF}}}
    for name in sorted(listed):
        got = meta.schema_arrow.field(name).type
        if got != want[name]:
            raise VerificationError(
                f"{tokens}: rule 'token schema': column '{name}' is {got}, the token schema "
                f"says {want[name]}"
            )
    # Maps promise every input row exactly once, keyed by row ref: refuse what would break that.
    refs = pq.read_table(tokens, columns=[ts.ROW_REF]).column(0).combine_chunks()
    if refs.null_count:
        raise VerificationError(
            f"{tokens}: rule 'row refs': {refs.null_count} row(s) have no {ts.ROW_REF}"
        )
    repeated = len(refs) - pc.count_distinct(refs).as_py()
    if repeated:
        raise VerificationError(
            f"{tokens}: rule 'row refs': {repeated} {ts.ROW_REF} value(s) repeat an earlier row's"
        )
    return rows, digest, refs


def _check_key_checks(found: Iterable[VerifiedInput]) -> None:
    found = list(found)
    counts = Counter(v.manifest["key_check"] for v in found)
    if len(counts) <= 1:
        return
    majority, n_major = counts.most_common(1)[0]
    tie = sum(1 for c in counts.values() if c == n_major) > 1
    odd = sorted({f"{v.party} ({v.dataset})" for v in found if v.manifest["key_check"] != majority})
    if tie:
        groups = sorted(
            ", ".join(
                sorted(f"{v.party} ({v.dataset})" for v in found if v.manifest["key_check"] == k)
            )
            for k in counts
        )
        raise VerificationError(
            "rule 'key check': partners used different linkage keys and no key is in the "
            f"majority; groups: [{'] vs ['.join(groups)}]"
        )
    raise VerificationError(
        "rule 'key check': the key check value of "
        + ", ".join(odd)
        + f" differs from the other {n_major} input(s): that partner used a different linkage key"
    )


def verify_inputs(
    agreement: Agreement, inputs: str | Path | Sequence[str | Path]
) -> list[VerifiedInput]:
    """Verify tokens and manifests; return them sorted by dataset.

    Args:
        agreement: the agreement the TTP is acting under.
        inputs: a directory, or a list of tokens and manifest files (directories allowed).

    Returns:
        One :class:`VerifiedInput` per dataset.

    Raises:
        VerificationError: any failed check (the message names the file and the rule).
        InputDataError: missing paths.
    """
    files = collect_inputs(inputs)
    seen: dict[str, Path] = {}
    for f in files:
        if f.name in seen:
            raise VerificationError(
                f"{f}: dataset file given twice (also {seen[f.name]}); verify each delivery "
                "folder on its own (see verify_deliveries)"
            )
        seen[f.name] = f
    tokens = {f.name[: -len(TOKENS_SUFFIX)]: f for f in files if f.name.endswith(TOKENS_SUFFIX)}
    manifests = {
        f.name[: -len(MANIFEST_SUFFIX)]: f for f in files if f.name.endswith(MANIFEST_SUFFIX)
    }
    for stem in sorted(set(tokens) - set(manifests)):
        raise VerificationError(f"{tokens[stem]}: no manifest {stem}{MANIFEST_SUFFIX} beside it")
    for stem in sorted(set(manifests) - set(tokens)):
        raise VerificationError(f"{manifests[stem]}: no tokens file {stem}{TOKENS_SUFFIX} given")
    verified: list[VerifiedInput] = []
    for stem in sorted(tokens):
        mpath = manifests[stem]
        m = _load_manifest(mpath)
        if m["dataset"] != stem:
            raise VerificationError(
                f"{mpath}: manifest is for dataset '{m['dataset']}', but the file is named '{stem}'"
            )
        _check_agreement(mpath, m, agreement)
        dataset = agreement.dataset(stem)
        _check_schema(mpath, m, dataset, agreement)
        rows, digest, refs = _check_tokens(tokens[stem], mpath, m, dataset, agreement)
        verified.append(
            VerifiedInput(
                dataset=stem,
                party=m["party"],
                tokens_path=tokens[stem],
                manifest_path=mpath,
                manifest=m,
                rows=rows,
                sha256=digest,
                row_refs=refs,
                spec_dataset=dataset,
            )
        )
    _check_key_checks(verified)
    versions = sorted({v.agreement_version for v in verified})
    if len(versions) > 1 and not all(agreement.accepts_version(v) for v in versions):
        raise VerificationError(f"rule 'version': mixed agreement versions {versions}")
    return verified


def in_delivery_order(items: Sequence[VerifiedInput]) -> list[VerifiedInput]:
    """One dataset's inputs from several folders, earliest delivery first.

    Ordered by the manifests' ``delivery`` numbers when every one has one (a re-sent row of a
    later delivery must replace the earlier row whatever the order of ``--inputs``: a shell
    glob lists ``inbox-10`` before ``inbox-2``); otherwise in the order given.
    """
    numbers = [v.manifest.get("delivery") for v in items]
    if all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return [v for _, v in sorted(zip(numbers, items, strict=True), key=lambda nv: nv[0])]
    return list(items)


def verify_deliveries(
    agreement: Agreement, inputs: str | Path | Sequence[str | Path], tmp_dir: Path
) -> list[VerifiedInput]:
    """Verify several input folders (one per delivery) that may carry the same dataset.

    Each folder is verified on its own; a dataset given in several folders is merged into one
    tokens file in ``tmp_dir`` (a row re-sent in a later folder replaces the earlier one: a
    correction). A single folder or a list of files is :func:`verify_inputs` unchanged.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if len(items) <= 1 or not all(Path(i).is_dir() for i in items):
        return verify_inputs(agreement, items if len(items) != 1 else items[0])
    groups: dict[str, list[VerifiedInput]] = {}
    for item in items:
        for v in verify_inputs(agreement, item):
            groups.setdefault(v.dataset, []).append(v)
    _check_key_checks([v for vs in groups.values() for v in vs])
    out = []
    for ds, vs in sorted(groups.items()):
        if len(vs) == 1:
            out.append(vs[0])
            continue
        table = None
        vs = in_delivery_order(vs)
        for v in vs:
            t = pq.read_table(v.tokens_path)
            if table is not None:
                resent = pc.is_in(table[ts.ROW_REF], value_set=t[ts.ROW_REF].combine_chunks())
                t = pa.concat_tables([table.filter(pc.invert(resent)), t],
                                     promote_options="default")  # fmt: skip
            table = t
        assert table is not None
        tmp_dir.mkdir(parents=True, exist_ok=True)
        path = tmp_dir / f"{ds}{TOKENS_SUFFIX}"
        pq.write_table(table, path)
        last = vs[-1]
        out.append(
            VerifiedInput(
                dataset=ds, party=last.party, tokens_path=path, manifest_path=last.manifest_path,
                manifest=last.manifest, rows=table.num_rows, sha256=sha256_file(path),
                row_refs=table[ts.ROW_REF].combine_chunks(), spec_dataset=last.spec_dataset,
            )
        )  # fmt: skip
    return out


__all__ = [
    "TokensManifest",
    "VerifiedInput",
    "allowed_token_columns",
    "collect_inputs",
    "in_delivery_order",
    "verify_deliveries",
    "verify_inputs",
]
