"""What a manifest may hold before it crosses a boundary (``seal`` and ``unseal``, check 'fields').

Manifests are the only sealed files that are not Parquet, so a column check cannot vouch for
them: without this module a plaintext extract renamed ``dwp_claims.manifest.json`` would be
sealed to the TTP. The check is positive, like the column check: a manifest passes only when
it is exactly what the writers produce (``wmw_link.tokenise.manifest.build_manifest`` and
``wmw_link.linkage.run._link_manifest``, written by ``wmw_link.files.write_json_atomic``):

* JSON in the writers' own layout (indent 2, sorted keys, ASCII, final newline), at most
  :data:`MAX_MANIFEST_BYTES`; a duplicate key, a comment or extra whitespace is refused, so
  nothing can hide beside the parsed values;
* ``kind`` is the tokens-manifest kind for ``<dataset>.manifest.json``, the link-manifest
  kind for ``link-manifest.json`` and the withdrawals kind for
  ``<dataset>.withdrawals.manifest.json`` (:mod:`wmw_link.withdrawals`); ``dataset`` is the
  file name's dataset;
* exactly the writers' keys, each value of the writers' JSON type, and every string one the
  writers can produce: agreement, dataset, party, column and payload names from the
  agreement; token columns from :mod:`wmw_link.token_schema`; reason codes, hashes, versions
  and times by pattern or from a fixed list.

Refusals say which key is wrong (``rows.nulled_by_reason``), never what it holds: a refused
file may be personal data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wmw_link import token_schema as ts
from wmw_link.agreement import Agreement, Dataset, IdentifierType
from wmw_link.errors import AgreementError, InputDataError, PolicyError, VerificationError
from wmw_link.withdrawals import FORMAT_VERSION as _WD_FORMAT_VERSION
from wmw_link.withdrawals import KEY_CHECK_OF as _WD_KEY_CHECK_OF
from wmw_link.withdrawals import KIND as WITHDRAWALS_MANIFEST_KIND
from wmw_link.withdrawals import MANIFEST_KEYS as WITHDRAWALS_MANIFEST_KEYS
from wmw_link.withdrawals import MANIFEST_SUFFIX as WITHDRAWALS_MANIFEST_SUFFIX
from wmw_link.withdrawals import PARQUET_SUFFIX as _WD_PARQUET_SUFFIX
from wmw_link.withdrawals import SIGNATURE_ALGORITHM as _WD_SIGNATURE_ALGORITHM

#: The ``kind`` of each manifest (tokenise/manifest.py and linkage/run.py write the same strings;
#: tests/unit/test_seal.py checks they agree).
TOKENS_MANIFEST_KIND = "wmw-link/tokens-manifest"
LINK_MANIFEST_KIND = "wmw-link/link-manifest"
LINK_MANIFEST_NAME = "link-manifest.json"

#: Real manifests are a few KiB (a tokens manifest of the largest dataset is under 20 KiB).
MAX_MANIFEST_BYTES = 1 << 20

TOKENS_MANIFEST_KEYS = frozenset(
    {
        "kind",
        "agreement",
        "dataset",
        "party",
        "tool_version",
        "created_at",
        "delivery",
        "key_check",
        "token_schema",
        "payload_schema",
        "rows",
        "files",
    }
)
LINK_MANIFEST_KEYS = frozenset(
    {
        "kind",
        "tool_version",
        "agreement",
        "backend",
        "seed",
        "model",
        "inputs",
        "outputs",
        "threshold",
        "counts",
        "timings_seconds",
    }
)

#: Every reason code tokenise counts (normalisers, payload parser, rejects). A new code in
#: tokenise must be added here, or its manifests are refused at seal (the test that seals a
#: real tokenise run's manifest catches it).
REASONS = frozenset(
    {
        # wmw_link.normalise
        "missing",
        "invalid_date",
        "future_date",
        "age_out_of_range",
        "no_letters",
        "invalid_format",
        "bad_check_digit",
        "placeholder",
        "invalid_prefix",
        "temporary_number",
        "administrative_number",
        "not_known",
        "unrecognised",
        "no_characters",
        # wmw_link.tokenise.payload
        "invalid_integer",
        "invalid_number",
        "invalid_boolean",
        "not_a_category",
        "invalid_postcode",
        # wmw_link.tokenise.rejects
        "missing_record_id",
        "duplicate_record_id",
        "no_usable_identifiers",
        # wmw_link.tokenise.cells (checked before any normaliser runs)
        "cell_too_large",
        "control_character",
    }
)

#: A person-index run's link manifest (wmw_link.linkage.index.run) adds these keys.
INDEX_LINK_MANIFEST_KEYS = frozenset({"index", "id_changes"})
_INDEX_KEYS = frozenset({"delivery", "mode", "as_at", "deliveries", "model_trained_delivery"})
_INDEX_MODES = frozenset({"full", "incremental", "retrain", "rekey"})
_INDEX_COUNTS = frozenset(
    {
        "records",
        "new_records",
        "corrected",
        "withdrawn",
        "withdrawals_unmatched",
        "persons",
        "comparisons_scored",
        "map_rows",
        "id_changes",
    }
)
_INDEX_TIMINGS = frozenset(
    {
        "prepare",
        "plan",
        "linker",  # incremental scoring (wmw_link.linkage.index.incremental.score_new)
        "block",
        "score",
        "persons",
        "write_outputs",
        "write_index",
        "report",
        "total",
    }
)

# The fixed strings of the link manifest (wmw_link.linkage.run and .threshold).
_BACKENDS = frozenset({"duckdb", "spark"})
_MODELS = frozenset({"full", "exact-only"})
_THRESHOLD_METHODS = frozenset({"given", "no candidate pairs", "maximum expected F1 (label-free)"})
_HOUSEHOLD_RULE = (
    "a link needs forename, date-of-birth, NINo or NHS-number evidence; surname and address "
    "alone never link"
)
_TIMINGS = frozenset(
    {
        "verify",
        "load",
        "prior",
        "u_sampling",
        "em",
        "predict",
        "threshold_and_cluster",
        "write_maps",
        "report",
        "total",
    }
)

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"[0-9A-Za-z.+!_-]{1,40}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(\+00:00|Z)?")
_ED25519_B64 = re.compile(r"[A-Za-z0-9+/]{86}==")  # 64 bytes


class _Refused(Exception):
    """A manifest that does not pass; the message names a key path, never a value."""


def check_manifest(
    agreement: Agreement, path: Path, name: str, dataset: str | None, label: str | None = None
) -> None:
    """Refuse a manifest that is not exactly what the tokenise or link writer produces.

    Args:
        agreement: the agreement the transfer happens under.
        path: the file to check (at unseal: the decrypted temporary file).
        name: the file's contract name (``<dataset>.manifest.json``, ``link-manifest.json`` or
            ``<dataset>.withdrawals.manifest.json``).
        dataset: the dataset the name says (None for the link manifest).
        label: how to name the file in a refusal (default ``name``).

    Raises:
        PolicyError: rule 'fields', naming the file and the key that is wrong (never a value).
        InputDataError: the file cannot be read.
    """
    label = label or name
    link = name == LINK_MANIFEST_NAME
    withdrawals = name.endswith(WITHDRAWALS_MANIFEST_SUFFIX)
    what = "link manifest" if link else "tokens manifest"
    if withdrawals:
        what = "withdrawals manifest"
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputDataError(f"{label}: cannot read the manifest ({type(e).__name__})") from None
    try:
        if size > MAX_MANIFEST_BYTES:
            raise _Refused(
                f"it is {size} bytes; a real manifest is under {MAX_MANIFEST_BYTES} bytes"
            )
        data = _parse(path.read_bytes())
        if link:
            _check_link_manifest(agreement, data)
        elif withdrawals:
            assert dataset is not None
            _check_withdrawals_manifest(agreement, data, dataset)
        else:
            assert dataset is not None
            _check_tokens_manifest(agreement, data, dataset)
    except _Refused as e:
        raise PolicyError(
            f"rule 'fields': {label} is not a {what} as wmw-link writes it: {e}; agreement "
            f"{agreement.id} v{agreement.version} lets nothing else travel under this name"
        ) from None


def _parse(raw: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise _Refused("a key appears twice in one object")
        return dict(pairs)

    try:
        text = raw.decode("utf-8")
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _Refused("it is not JSON") from None
    if not isinstance(data, dict):
        raise _Refused("it is not a JSON object")
    # The writers' layout (wmw_link.files.write_json_atomic): nothing but the values, so no
    # text can ride along in whitespace or in an overwritten duplicate.
    if json.dumps(data, indent=2, sort_keys=True) + "\n" != text:
        raise _Refused("it is not laid out as wmw-link writes manifests (indent 2, sorted keys)")
    return data


# -- typed accessors ---------------------------------------------------------------------------


def _obj(value: Any, where: str, keys: frozenset[str] | set[str], exact: bool = True) -> dict:
    if not isinstance(value, dict):
        raise _Refused(f"'{where}' is not an object")
    unknown = [k for k in value if k not in keys]
    if unknown:
        # The keys are not named: in a forged file they could be anything.
        raise _Refused(f"'{where}' has {len(unknown)} key(s) the writer never produces")
    missing = sorted(keys - value.keys()) if exact else []
    if missing:
        raise _Refused(f"'{where}' lacks {', '.join(missing)}")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Refused(f"'{where}' is not a non-negative integer")
    return value


def _num(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Refused(f"'{where}' is not a number")
    return float(value)


def _str(value: Any, where: str, ok: Callable[[str], bool] | frozenset[str] | str) -> str:
    if not isinstance(value, str):
        raise _Refused(f"'{where}' is not a string")
    if isinstance(ok, str):
        passed = value == ok
    elif isinstance(ok, frozenset):
        passed = value in ok
    else:
        passed = ok(value)
    if not passed:
        raise _Refused(f"'{where}' is not a value the writer produces")
    return value


def _match(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda s: pattern.fullmatch(s) is not None


def _agreement_block(agreement: Agreement, value: Any) -> None:
    block = _obj(value, "agreement", {"id", "version", "hash"})
    _str(block["id"], "agreement.id", agreement.id)
    version = block["version"]
    _int(version, "agreement.version")
    if version == agreement.version:
        _str(block["hash"], "agreement.hash", agreement.hash)
    elif agreement.accepts_version(version):
        _str(block["hash"], "agreement.hash", _match(_HEX64))
    else:
        raise _Refused(
            f"'agreement.version' is v{version}, which v{agreement.version} does not declare "
            "compatible (compatible_with)"
        )


def _file_entry(value: Any, where: str, name: str, rows: bool = True) -> None:
    keys = {"name", "sha256", "rows"} if rows else {"name", "sha256"}
    entry = _obj(value, where, keys)
    _str(entry["name"], f"{where}.name", name)
    _str(entry["sha256"], f"{where}.sha256", _match(_HEX64))
    if rows:
        _int(entry["rows"], f"{where}.rows")


def _dataset(agreement: Agreement, ds_id: str, where: str) -> Dataset:
    try:
        return agreement.dataset(ds_id)
    except AgreementError:
        raise _Refused(f"'{where}' names a dataset that is not in the agreement") from None


# -- tokens manifest ---------------------------------------------------------------------------


def _labels(ds: Dataset) -> set[str]:
    """The column labels tokenise counts reasons under (``Plan.labels`` and the record id)."""
    out = {ds.record_id}
    for f in ds.identifiers:
        out.add(f.column)
        if f.type == IdentifierType.FULL_NAME:
            out |= {f"{f.column}/forename", f"{f.column}/surname"}
    out |= {f"payload.{f.name}" for f in ds.analyst_payload()}
    return out


def _reason_counts(value: Any, where: str, labels: set[str]) -> None:
    if not isinstance(value, dict):
        raise _Refused(f"'{where}' is not an object")
    bad = 0
    for key, count in value.items():
        column, sep, reason = key.rpartition(":")
        if not (reason in REASONS and (not sep or column in labels)):
            bad += 1
        _int(count, f"{where}")
    if bad:
        raise _Refused(f"'{where}' has {bad} key(s) that are not a column label and reason code")


def _check_tokens_manifest(agreement: Agreement, data: dict[str, Any], dataset: str) -> None:
    _obj(data, "(top level)", TOKENS_MANIFEST_KEYS)
    _str(data["kind"], "kind", TOKENS_MANIFEST_KIND)
    _str(data["dataset"], "dataset", dataset)
    _agreement_block(agreement, data["agreement"])
    ds = _dataset(agreement, dataset, "dataset")
    _str(data["party"], "party", ds.controller)
    _str(data["tool_version"], "tool_version", _match(_VERSION))
    _str(data["created_at"], "created_at", _match(_TIME))
    if _int(data["delivery"], "delivery") < 1:
        raise _Refused("'delivery' is not a delivery number (1 or more)")
    _str(data["key_check"], "key_check", _match(_HEX32))

    schema = _obj(
        data["token_schema"], "token_schema", {"version", "token_bytes", "bloom", "columns"}
    )
    fixed = ts.manifest_entry([])
    for key in ("version", "token_bytes", "bloom"):
        if schema[key] != fixed[key]:
            raise _Refused(f"'token_schema.{key}' is not this token schema's")
    allowed = {c.name: c for c in ts.columns_for_dataset(ds)}
    columns = _obj(schema["columns"], "token_schema.columns", set(allowed), exact=False)
    for col, entry in columns.items():
        if entry != allowed[col].to_manifest():
            raise _Refused(f"'token_schema.columns.{col}' is not the token schema's entry")

    payload_types = {f.name: f.type.value for f in ds.analyst_payload()}
    payload = _obj(data["payload_schema"], "payload_schema", set(payload_types), exact=False)
    for field, kind in payload.items():
        _str(kind, f"payload_schema.{field}", payload_types[field])

    rows = _obj(
        data["rows"],
        "rows",
        {"input", "tokens", "rejected", "rejected_by_reason", "nulled_by_reason"},
    )
    for key in ("input", "tokens", "rejected"):
        _int(rows[key], f"rows.{key}")
    labels = _labels(ds)
    _reason_counts(rows["rejected_by_reason"], "rows.rejected_by_reason", labels)
    _reason_counts(rows["nulled_by_reason"], "rows.nulled_by_reason", labels)

    files = _obj(data["files"], "files", {"tokens", "payload"}, exact=False)
    for kind, entry in files.items():
        _file_entry(entry, f"files.{kind}", f"{dataset}.{kind}.parquet")
    _check_token_counts(data)


class CountsError(Exception):
    """A manifest whose counts contradict each other; the message names the rule."""


def tokens_manifest_counts(data: dict[str, Any]) -> None:
    """Refuse a tokens manifest whose counts contradict each other (rule 'manifest counts').

    Every input row is tokenised or rejected; the rejected rows are the sum of their reasons;
    the tokens file and the payload file each hold one row per tokenised row. A signature
    proves who wrote a manifest, not that its numbers are true: a controller's tool that lies
    (or a hand-edited manifest signed afterwards) is caught here. Assumes the keys exist and
    are counts (checked by :func:`check_manifest`, or by the TTP's own model).

    Raises:
        CountsError: naming the rule broken, with the counts (never a data value).
    """
    rows = data["rows"]
    n_in, n_tok, n_rej = rows["input"], rows["tokens"], rows["rejected"]
    if n_in != n_tok + n_rej:
        raise CountsError(
            f"rows.input ({n_in}) is not rows.tokens ({n_tok}) + rows.rejected ({n_rej})"
        )
    by_reason = rows.get("rejected_by_reason")
    if isinstance(by_reason, dict) and sum(by_reason.values()) != n_rej:
        raise CountsError(
            f"rows.rejected ({n_rej}) is not the sum of rows.rejected_by_reason "
            f"({sum(by_reason.values())})"
        )
    for kind, entry in (data.get("files") or {}).items():
        if entry.get("rows") != n_tok:
            raise CountsError(
                f"files.{kind}.rows ({entry.get('rows')}) is not rows.tokens ({n_tok}): one "
                f"{kind} row per tokenised row"
            )


def verify_tokens_manifest_counts(path: Path, data: dict[str, Any]) -> None:
    """:func:`tokens_manifest_counts` for a manifest the TTP reads at ``link``.

    Raises:
        VerificationError: rule 'manifest counts', naming the file and the counts.
    """
    try:
        # The TTP's own model ignores keys it does not read; only the counts must be counts.
        rows = data.get("rows")
        if not isinstance(rows, dict):
            raise _Refused("'rows' is not an object")
        for key in ("input", "tokens", "rejected"):
            _int(rows.get(key), f"rows.{key}")
        by_reason = rows.get("rejected_by_reason", {})
        if not isinstance(by_reason, dict):
            raise _Refused("'rows.rejected_by_reason' is not an object")
        for value in by_reason.values():
            _int(value, "rows.rejected_by_reason")
        for kind, entry in (data.get("files") or {}).items():
            _int((entry or {}).get("rows"), f"files.{kind}.rows")
        tokens_manifest_counts(data)
    except (CountsError, _Refused) as e:
        raise VerificationError(f"{path}: rule 'manifest counts': {e}") from None


def _check_token_counts(data: dict[str, Any]) -> None:
    try:
        tokens_manifest_counts(data)
    except CountsError as e:
        raise _Refused(f"rule 'manifest counts': {e}") from None


# -- link manifest -----------------------------------------------------------------------------


def _link_manifest_head(agreement: Agreement, data: dict[str, Any]) -> None:
    """The fields a plain and a person-index link manifest share: kind, tool, agreement, run."""
    _str(data["kind"], "kind", LINK_MANIFEST_KIND)
    _str(data["tool_version"], "tool_version", _match(_VERSION))
    _agreement_block(agreement, data["agreement"])
    _str(data["backend"], "backend", _BACKENDS)
    _int(data["seed"], "seed")
    _str(data["model"], "model", _MODELS)


def _link_run_options(data: dict[str, Any]) -> None:
    """The top level's keys, with the optional ones later writers add: the memory limit a run
    was given (wmw_link.linkage.run, --memory-limit: bytes or null) and the blocks its pairs
    were scored in (wmw_link.linkage.predict_blocks: a count)."""
    optional = {"memory_limit_bytes", "predict_blocks"} & set(data if isinstance(data, dict) else ())
    _obj(data, "(top level)", LINK_MANIFEST_KEYS | optional)
    if "memory_limit_bytes" in optional and data["memory_limit_bytes"] is not None:
        _int(data["memory_limit_bytes"], "memory_limit_bytes")
    if "predict_blocks" in optional and _int(data["predict_blocks"], "predict_blocks") < 1:
        raise _Refused("'predict_blocks' is not a positive integer")


def _check_link_manifest(agreement: Agreement, data: dict[str, Any]) -> None:
    if isinstance(data, dict) and "index" in data:
        _check_index_link_manifest(agreement, data)
        return
    _link_run_options(data)
    _link_manifest_head(agreement, data)

    inputs = data["inputs"]
    if not isinstance(inputs, dict):
        raise _Refused("'inputs' is not an object")
    for ds_id, entry in inputs.items():
        ds = _dataset(agreement, ds_id, "inputs")
        where = f"inputs.{ds_id}"
        entry = _obj(entry, where, {"party", "tokens", "manifest", "key_check"})
        _str(entry["party"], f"{where}.party", ds.controller)
        _file_entry(entry["tokens"], f"{where}.tokens", f"{ds_id}.tokens.parquet")
        _file_entry(entry["manifest"], f"{where}.manifest", f"{ds_id}.manifest.json", rows=False)
        _str(entry["key_check"], f"{where}.key_check", _match(_HEX32))

    outputs = data["outputs"]
    if not isinstance(outputs, dict):
        raise _Refused("'outputs' is not an object")
    for ds_id, entry in outputs.items():
        _dataset(agreement, ds_id, "outputs")
        _file_entry(entry, f"outputs.{ds_id}", f"{ds_id}.map.parquet")

    threshold = _obj(
        data["threshold"],
        "threshold",
        {"match_weight", "match_probability", "method", "household_rule"},
    )
    _num(threshold["match_weight"], "threshold.match_weight")
    _num(threshold["match_probability"], "threshold.match_probability")
    _str(threshold["method"], "threshold.method", _THRESHOLD_METHODS)
    _str(threshold["household_rule"], "threshold.household_rule", _HOUSEHOLD_RULE)

    counts = _obj(data["counts"], "counts", {"records", "persons", "comparisons_scored"})
    for key, value in counts.items():
        _int(value, f"counts.{key}")
    # rule 'manifest counts': one map per input, one map row per token row, records the sum.
    if set(outputs) != set(inputs):
        raise _Refused("rule 'manifest counts': 'outputs' and 'inputs' name different datasets")
    for ds_id, entry in outputs.items():
        if entry["rows"] != inputs[ds_id]["tokens"]["rows"]:
            raise _Refused(
                f"rule 'manifest counts': outputs.{ds_id}.rows ({entry['rows']}) is not "
                f"inputs.{ds_id}.tokens.rows ({inputs[ds_id]['tokens']['rows']})"
            )
    total = sum(e["tokens"]["rows"] for e in inputs.values())
    if counts["records"] != total:
        raise _Refused(
            f"rule 'manifest counts': counts.records ({counts['records']}) is not the sum of "
            f"the inputs' rows ({total})"
        )
    if counts["persons"] > counts["records"]:
        raise _Refused("rule 'manifest counts': counts.persons exceeds counts.records")
    timings = _obj(data["timings_seconds"], "timings_seconds", set(_TIMINGS), exact=False)
    for key, value in timings.items():
        _num(value, f"timings_seconds.{key}")


def _link_input(agreement: Agreement, ds_id: str, entry: Any, where: str) -> int:
    """One input entry of a link manifest (tokens, manifest, party, key check); its rows."""
    ds = _dataset(agreement, ds_id, "inputs")
    entry = _obj(entry, where, {"party", "tokens", "manifest", "key_check"})
    _str(entry["party"], f"{where}.party", ds.controller)
    _file_entry(entry["tokens"], f"{where}.tokens", f"{ds_id}.tokens.parquet")
    _file_entry(entry["manifest"], f"{where}.manifest", f"{ds_id}.manifest.json", rows=False)
    _str(entry["key_check"], f"{where}.key_check", _match(_HEX32))
    return int(entry["tokens"]["rows"])


def _index_block(value: Any) -> None:
    index = _obj(value, "index", set(_INDEX_KEYS))
    if _int(index["delivery"], "index.delivery") < 1:
        raise _Refused("'index.delivery' is not a delivery number (1 or more)")
    _str(index["mode"], "index.mode", _INDEX_MODES)
    _str(index["as_at"], "index.as_at", _match(_TIME))
    if not isinstance(index["deliveries"], list):
        raise _Refused("'index.deliveries' is not a list")
    for i, d in enumerate(index["deliveries"]):
        _int(d, f"index.deliveries[{i}]")
    if index["model_trained_delivery"] is not None:
        _int(index["model_trained_delivery"], "index.model_trained_delivery")


def _index_counts(value: Any, outputs: dict[str, Any], id_changes_rows: int) -> None:
    counts = _obj(value, "counts", set(_INDEX_COUNTS), exact=False)
    for key in ("records", "persons", "map_rows", "id_changes"):
        if key not in counts:
            raise _Refused(f"'counts' lacks {key}")
    for key, v in counts.items():
        _int(v, f"counts.{key}")
    if counts["persons"] > counts["records"]:
        raise _Refused("rule 'manifest counts': counts.persons exceeds counts.records")
    if counts["map_rows"] != sum(e["rows"] for e in outputs.values()):
        raise _Refused("rule 'manifest counts': counts.map_rows is not the sum of the maps' rows")
    if counts["id_changes"] != id_changes_rows:
        raise _Refused("rule 'manifest counts': counts.id_changes is not id_changes.rows")


def _check_index_link_manifest(agreement: Agreement, data: dict[str, Any]) -> None:
    """A person-index run's link manifest (``link --index``; docs/person-index.md).

    Its maps hold this delivery's records and every record of a person an id change names, so
    the plain run's counts rules (one map row per token row) do not apply; its own do: the
    map rows are the outputs' rows, the id changes the listed file's rows, persons at most
    records.
    """
    _obj(data, "(top level)", LINK_MANIFEST_KEYS | INDEX_LINK_MANIFEST_KEYS)
    _link_manifest_head(agreement, data)
    inputs = data["inputs"]
    if not isinstance(inputs, dict):
        raise _Refused("'inputs' is not an object")
    for ds_id, entry in inputs.items():
        where = f"inputs.{ds_id}"
        also = entry.get("also", []) if isinstance(entry, dict) else []
        if not isinstance(also, list):
            raise _Refused(f"'{where}.also' is not a list")
        first = (
            {k: v for k, v in entry.items() if k != "also"} if isinstance(entry, dict) else entry
        )
        _link_input(agreement, ds_id, first, where)
        for i, more in enumerate(also):
            _link_input(agreement, ds_id, more, f"{where}.also[{i}]")
    outputs = data["outputs"]
    if not isinstance(outputs, dict):
        raise _Refused("'outputs' is not an object")
    for ds_id, entry in outputs.items():
        _dataset(agreement, ds_id, "outputs")
        _file_entry(entry, f"outputs.{ds_id}", f"{ds_id}.map.parquet")
    _file_entry(data["id_changes"], "id_changes", "id-changes.parquet")
    _index_block(data["index"])
    threshold = _obj(
        data["threshold"],
        "threshold",
        {"match_weight", "match_probability", "method", "household_rule"},
    )
    _num(threshold["match_weight"], "threshold.match_weight")
    _num(threshold["match_probability"], "threshold.match_probability")
    _str(threshold["method"], "threshold.method", _THRESHOLD_METHODS)
    _str(threshold["household_rule"], "threshold.household_rule", _HOUSEHOLD_RULE)
    _index_counts(data["counts"], outputs, data["id_changes"]["rows"])
    timings = _obj(
        data["timings_seconds"], "timings_seconds", set(_TIMINGS | _INDEX_TIMINGS), exact=False
    )
    for key, value in timings.items():
        _num(value, f"timings_seconds.{key}")


# -- withdrawals manifest (wmw_link.withdrawals) ------------------------------------------------


def _check_withdrawals_manifest(agreement: Agreement, data: dict[str, Any], dataset: str) -> None:
    _obj(data, "(top level)", WITHDRAWALS_MANIFEST_KEYS)
    _str(data["kind"], "kind", WITHDRAWALS_MANIFEST_KIND)
    if data["format_version"] != _WD_FORMAT_VERSION:
        raise _Refused("'format_version' is not this wmw-link's")
    _str(data["dataset"], "dataset", dataset)
    _agreement_block(agreement, data["agreement"])
    ds = _dataset(agreement, dataset, "dataset")
    _str(data["party"], "party", ds.controller)
    _str(data["tool_version"], "tool_version", _match(_VERSION))
    _str(data["created"], "created", _match(_TIME))
    if _int(data["delivery"], "delivery") < 1:
        raise _Refused("'delivery' is not a delivery number (1 or more)")
    _str(data["key_check"], "key_check", _match(_HEX32))
    _str(data["key_check_of"], "key_check_of", _WD_KEY_CHECK_OF)
    rows = _int(data["rows"], "rows")
    records = _obj(data["records"], "records", {"input", "blank", "repeated"})
    for key, value in records.items():
        _int(value, f"records.{key}")
    files = _obj(data["files"], "files", {"withdrawals"})
    _file_entry(files["withdrawals"], "files.withdrawals", f"{dataset}{_WD_PARQUET_SUFFIX}")
    if files["withdrawals"]["rows"] != rows:
        raise _Refused("rule 'manifest counts': 'files.withdrawals.rows' is not 'rows'")
    if records["input"] - records["blank"] - records["repeated"] != rows:
        raise _Refused(
            "rule 'manifest counts': 'rows' is not records.input - records.blank - records.repeated"
        )
    if data["signature"] is not None:
        sig = _obj(data["signature"], "signature", {"algorithm", "party", "value"})
        _str(sig["algorithm"], "signature.algorithm", _WD_SIGNATURE_ALGORITHM)
        _str(sig["party"], "signature.party", ds.controller)
        _str(sig["value"], "signature.value", _match(_ED25519_B64))


__all__ = [
    "CountsError",
    "LINK_MANIFEST_KIND",
    "MAX_MANIFEST_BYTES",
    "REASONS",
    "TOKENS_MANIFEST_KIND",
    "WITHDRAWALS_MANIFEST_KIND",
    "check_manifest",
    "tokens_manifest_counts",
    "verify_tokens_manifest_counts",
]
