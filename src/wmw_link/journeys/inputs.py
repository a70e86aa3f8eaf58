"""The journeys input contract: what the analysis environment may open, and what vouches for it.

An analyst never sees an identifier, plain or hashed: token files, controller-local files
(crosswalks, rejects) and any file with a token column are refused, and a payload may hold
only ``row_ref`` and the agreement's analyst payload fields of its dataset. A payload file
read from a directory needs its ``<dataset>.manifest.json`` beside it (unless the caller waives
manifests), made under an accepted version of the agreement and naming the file's SHA-256.

Maps must come from the linkage run that linked these payloads' tokens. A maps directory must
hold the TTP's ``link-manifest.json``: every ``<dataset>.map.parquet`` must be listed there
with its SHA-256 (a map left from an earlier run is refused), and the tokens SHA-256 the link
run took as input for a dataset must equal the ``files.tokens.sha256`` the dataset's payload
manifest records (else the maps come from another run). Every payload row must have a person
id in its map.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link.agreement import Agreement, Dataset
from wmw_link.errors import InputDataError, PolicyError, VerificationError
from wmw_link.files import sha256_file
from wmw_link.token_schema import is_token_column

PAYLOAD_SUFFIX = ".payload.parquet"
MAP_SUFFIX = ".map.parquet"
MANIFEST_SUFFIX = ".manifest.json"
TOKENS_SUFFIX = ".tokens.parquet"
#: The TTP's manifest of a linkage run; it must sit beside the maps.
LINK_MANIFEST = "link-manifest.json"
LINK_MANIFEST_KIND = "wmw-link/link-manifest"
_EXPECTS = {
    "payload": f"<dataset>{PAYLOAD_SUFFIX} files and their <dataset>{MANIFEST_SUFFIX}",
    "map": f"<dataset>{MAP_SUFFIX} files and the TTP's {LINK_MANIFEST}",
}
#: Controller-local files (record id crosswalks, rejects) that must never reach analysts.
LOCAL_SUFFIXES = (".crosswalk.parquet", ".rejects.parquet")


def load_districts(path: str | Path | None = None) -> dict[str, str]:
    """Postcode district -> local authority, from ``path`` or the packaged table.

    The table is a CSV with ``district`` and ``local_authority`` columns.
    """
    if path is None:
        ref = resources.files("wmw_link") / "data" / "postcode_districts.csv"
        text = ref.read_text(encoding="utf-8")
        source = "wmw_link/data/postcode_districts.csv"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise InputDataError(
                f"{path}: cannot read the district table ({type(e).__name__})"
            ) from None
        source = str(path)
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"district", "local_authority"} <= set(rows[0]):
        raise InputDataError(f"{source}: needs columns 'district' and 'local_authority'")
    return {r["district"].strip().upper(): r["local_authority"].strip() for r in rows}


def _refuse_tokens(dataset: str, where: str, columns: list[str]) -> None:
    tokens = sorted(c for c in columns if is_token_column(c))
    if tokens:
        raise PolicyError(
            f"rule 'separation': {where} ({dataset}) holds token column(s) "
            f"{', '.join(tokens[:5])}; an analyst never opens tokens"
        )


def _check_payload_columns(ds: Dataset, where: str, columns: list[str]) -> None:
    _refuse_tokens(ds.id, where, columns)
    if "row_ref" not in columns:
        raise InputDataError(f"{where}: payload of {ds.id} lacks column 'row_ref'")
    allowed = {f.name for f in ds.analyst_payload()} | {"row_ref"}
    withheld = sorted({f.name for f in ds.payload if not f.to_analyst} & set(columns))
    if withheld:
        raise PolicyError(
            f"rule 'payload': {where} holds field(s) {', '.join(withheld)} that dataset {ds.id} "
            "withholds from analysts (to_analyst: false)"
        )
    extra = sorted(set(columns) - allowed)
    if extra:
        raise PolicyError(
            f"rule 'payload': {where} holds column(s) {', '.join(extra)} that the agreement does "
            f"not name as analyst payload of {ds.id}"
        )


def _check_agreement(agreement: Agreement, path: Path, man: dict[str, Any]) -> None:
    """Refuse a manifest made under another agreement, an unaccepted version or text."""
    ag = man.get("agreement") or {}
    if not isinstance(ag, dict) or ag.get("id") != agreement.id:
        got = ag.get("id") if isinstance(ag, dict) else None
        raise PolicyError(
            f"rule 'agreement': {path.name} was made under agreement {got!r}, not {agreement.id!r}"
        )
    if not isinstance(ag.get("version"), int) or not agreement.accepts_version(ag["version"]):
        raise PolicyError(
            f"rule 'version': {path.name} was made under {agreement.id} v{ag.get('version')}, "
            f"which v{agreement.version} does not accept"
        )
    stated_hash = ag.get("hash")
    if ag["version"] == agreement.version and stated_hash and stated_hash != agreement.hash:
        raise PolicyError(
            f"rule 'agreement hash': {path.name} was made under another text of "
            f"{agreement.id} v{agreement.version} (the agreement hash differs)"
        )


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VerificationError(f"{path}: unreadable {what} ({type(e).__name__})") from None
    if not isinstance(man, dict):
        raise VerificationError(f"{path}: unreadable {what} (not a JSON object)")
    return man


def _check_manifest(agreement: Agreement, ds_id: str, payload_path: Path) -> dict[str, Any]:
    path = payload_path.with_name(ds_id + MANIFEST_SUFFIX)
    if not path.exists():
        raise VerificationError(f"{payload_path}: no manifest {path.name} beside it")
    man = _read_json(path, "manifest")
    _check_agreement(agreement, path, man)
    if man.get("dataset") not in (None, ds_id):
        raise VerificationError(f"{path.name}: manifest is for dataset {man.get('dataset')!r}")
    want = ((man.get("files") or {}).get("payload") or {}).get("sha256")
    if want and want != sha256_file(payload_path):
        raise VerificationError(
            f"{payload_path.name}: SHA-256 differs from its manifest {path.name}"
        )
    return man


def require_dir(directory: Path, what: str, expects: str) -> None:
    """Refuse a missing input directory, or a file given where a directory is expected.

    Raises:
        InputDataError: naming the path, whether it is missing or a file, and what is expected.
    """
    if directory.is_file():
        raise InputDataError(
            f"{directory}: is a file, not a directory; expected the {what} directory holding "
            f"{expects} (give the folder, not one file in it)"
        )
    if not directory.is_dir():
        raise InputDataError(f"{directory}: {what} directory not found (expected {expects})")


def _load_link_manifest(agreement: Agreement, directory: Path) -> tuple[dict[str, Any], Path]:
    """The TTP's link manifest beside the maps, checked against the agreement."""
    path = directory / LINK_MANIFEST
    if not path.is_file():
        raise VerificationError(
            f"{path}: not found; the TTP's {LINK_MANIFEST} must be beside the maps (it lists "
            "each map's SHA-256 and the tokens the linkage run read, so that stale maps and maps "
            "from another linkage run are refused)"
        )
    man = _read_json(path, "link manifest")
    if man.get("kind") != LINK_MANIFEST_KIND:
        raise VerificationError(f"{path}: not a link manifest (kind {man.get('kind')!r})")
    _check_agreement(agreement, path, man)
    for key in ("inputs", "outputs"):
        if not isinstance(man.get(key), dict):
            raise VerificationError(f"{path}: the link manifest lists no {key}")
    return man, path


def _check_map_file(link_man: dict[str, Any], link_path: Path, ds_id: str, path: Path) -> None:
    """A map file must be one the link manifest lists, with the SHA-256 it lists."""
    entry = link_man["outputs"].get(ds_id)
    if not isinstance(entry, dict) or entry.get("name", path.name) != path.name:
        raise VerificationError(
            f"{path}: not listed in {link_path.name}; a map left from an earlier linkage run? "
            f"Every map must come from the run {link_path.name} describes: remove this file"
        )
    if entry.get("sha256") != sha256_file(path):
        raise VerificationError(
            f"{path}: SHA-256 differs from {link_path.name}; the map comes from another linkage "
            f"run than {link_path.name} describes (a stale map?), or was altered"
        )


def _check_same_run(
    ds_id: str, pay_man: dict[str, Any], pay_path: Path, link_man: dict[str, Any], link_path: Path
) -> None:
    """The link run's input tokens for ``ds_id`` must be the tokens the payload came with."""
    man_name = ds_id + MANIFEST_SUFFIX
    want = ((pay_man.get("files") or {}).get("tokens") or {}).get("sha256")
    if not want:
        raise VerificationError(
            f"{pay_path.with_name(man_name)}: records no files.tokens.sha256, so the payload of "
            f"{ds_id} cannot be matched to the linkage run that made its map"
        )
    got = (((link_man["inputs"].get(ds_id) or {}).get("tokens")) or {}).get("sha256")
    if got != want:
        why = (
            f"{link_path} lists no {ds_id} input"
            if got is None
            else f"{link_path} says that run linked other {ds_id} tokens than the payload's "
            f"{man_name} records (tokens SHA-256 differs)"
        )
        raise VerificationError(
            f"dataset {ds_id}: the maps come from another linkage run: {why}; use the maps and "
            f"{LINK_MANIFEST} of the run that linked these payloads' tokens"
        )


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputDataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None


@dataclass
class _Inputs:
    """Tables read from a directory (or given as a mapping), with what vouches for them."""

    tables: dict[str, pa.Table]
    paths: dict[str, Path] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # payload manifests
    link_manifest: dict[str, Any] | None = None  # maps directory only
    link_path: Path | None = None


def _load_dir(
    agreement: Agreement, directory: Path, suffix: str, what: str, manifests: bool
) -> _Inputs:
    require_dir(directory, what, _EXPECTS[what])
    tokens = sorted(directory.glob("*" + TOKENS_SUFFIX))
    if tokens:
        raise PolicyError(
            f"rule 'separation': {directory} holds token file {tokens[0].name}; an analyst "
            "never opens tokens (remove token files from the analysis environment)"
        )
    local = sorted(p for suffix in LOCAL_SUFFIXES for p in directory.glob("*" + suffix))
    if local:
        raise PolicyError(
            f"rule 'separation': {directory} holds {local[0].name}, which stays with its "
            "controller (record ids, rejected rows); remove it from the analysis environment"
        )
    got = _Inputs({})
    if suffix == MAP_SUFFIX:
        got.link_manifest, got.link_path = _load_link_manifest(agreement, directory)
    for path in sorted(directory.glob("*" + suffix)):
        ds_id = path.name[: -len(suffix)]
        agreement.dataset(ds_id)  # PolicyError if the agreement does not name it
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid) as e:
            raise InputDataError(
                f"{path}: not a readable Parquet file ({type(e).__name__})"
            ) from None
        _refuse_tokens(ds_id, str(path), schema.names)  # before reading any data
        if got.link_manifest is not None and got.link_path is not None:
            _check_map_file(got.link_manifest, got.link_path, ds_id, path)
        elif manifests:
            got.manifests[ds_id] = _check_manifest(agreement, ds_id, path)
        got.tables[ds_id] = _read_parquet(path)
        got.paths[ds_id] = path
    return got


def _as_tables(
    agreement: Agreement,
    source: str | Path | Mapping[str, pa.Table],
    suffix: str,
    what: str,
    manifests: bool,
) -> _Inputs:
    if isinstance(source, Mapping):
        for ds_id in source:
            agreement.dataset(ds_id)
        return _Inputs({k: _to_arrow(v) for k, v in source.items()})
    return _load_dir(agreement, Path(source), suffix, what, manifests)


def _to_arrow(table: Any) -> pa.Table:
    """An Arrow table from an Arrow table, a DuckDB relation or a pandas DataFrame."""
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_arrow_table"):  # DuckDB relation
        return table.to_arrow_table()
    return pa.Table.from_pandas(table, preserve_index=False)


def input_paths(payloads: str | Path, maps: str | Path) -> list[Path]:
    """The files :func:`build_journeys` reads from two directories (for the audit record)."""
    out: list[Path] = []
    for d, suffix in ((Path(payloads), PAYLOAD_SUFFIX), (Path(maps), MAP_SUFFIX)):
        out += sorted(d.glob("*" + suffix))
        if suffix == PAYLOAD_SUFFIX:
            out += sorted(d.glob("*" + MANIFEST_SUFFIX))
        elif (d / LINK_MANIFEST).is_file():
            out.append(d / LINK_MANIFEST)
    return out
