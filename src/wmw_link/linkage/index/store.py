"""The person index on disk: layout, manifest, versioning, verification, generations, lock.

Layout of an index folder ``DIR`` (every file owner-only)::

    DIR/index-manifest.json       kind, format_version, agreement, key_check, deliveries,
                                  generation, files (relative path -> sha256, rows)
    DIR/index.lock                held (flock) by the run that is updating the index
    DIR/<generation>/model.json   the trained Splink model, threshold, household-rule SQL
    DIR/<generation>/edges.parquet            accepted links between records
    DIR/<generation>/records/<dataset>.parquet  tokens + person_id + delivery per record

A run writes a whole new generation folder, then replaces ``index-manifest.json`` atomically
(the commit), then deletes the previous generation. An interrupted run leaves the previous
manifest pointing at the previous, intact generation; its half-written folder is removed by the
next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wmw_link._version import __version__
from wmw_link.agreement import Agreement
from wmw_link.errors import ConfigError, VerificationError
from wmw_link.files import restrict_tree, sha256_file, write_bytes_atomic, write_json_atomic

KIND = "wmw-link/person-index"
FORMAT_VERSION = 1
MANIFEST_NAME = "index-manifest.json"
LOCK_NAME = "index.lock"
MODEL_NAME = "model.json"
EDGES_NAME = "edges.parquet"
RECORDS_DIR = "records"
_GEN = re.compile(r"^gen-\d{4,}-[0-9a-f]{8}$")
_STAGING = re.compile(r"^\.gen-.*\.tmp$")

EDGE_SCHEMA = pa.schema(
    [
        pa.field("dataset_l", pa.string(), nullable=False),
        pa.field("row_ref_l", pa.string(), nullable=False),
        pa.field("dataset_r", pa.string(), nullable=False),
        pa.field("row_ref_r", pa.string(), nullable=False),
        pa.field("match_weight", pa.float64(), nullable=False),
    ]
)
#: Columns of a records file besides its token columns.
RECORD_KEYS = ("row_ref", "person_id", "delivery")


@dataclass
class IndexState:
    """A verified index, read into memory."""

    path: Path
    manifest: dict[str, Any]
    model: dict[str, Any]
    #: dataset -> row_ref, person_id, delivery (int32) and the dataset's token columns.
    records: dict[str, pa.Table]
    edges: pa.Table

    @property
    def deliveries(self) -> list[int]:
        return [int(d) for d in self.manifest["deliveries"]]

    @property
    def key_check(self) -> str:
        return str(self.manifest["key_check"])


def exists(index_dir: Path) -> bool:
    """Whether ``index_dir`` holds an index (a manifest); an absent or empty folder does not."""
    return (index_dir / MANIFEST_NAME).is_file()


def check_usable(index_dir: Path) -> None:
    """Refuse a path that is not a folder, or a folder without a manifest holding other files."""
    if index_dir.exists() and not index_dir.is_dir():
        raise ConfigError(f"{index_dir}: is a file; --index must be a folder")
    if not index_dir.is_dir() or exists(index_dir):
        return
    foreign = [
        n for n in sorted(os.listdir(index_dir))
        if n != LOCK_NAME and not _GEN.match(n) and not _STAGING.match(n)
    ]  # fmt: skip
    if foreign:
        raise ConfigError(
            f"{index_dir}: holds '{foreign[0]}' but no {MANIFEST_NAME}: not a person index; give "
            "an empty or new folder for a first run"
        )


def _refuse(index_dir: Path, why: str) -> VerificationError:
    return VerificationError(f"{index_dir / MANIFEST_NAME}: refused: {why}")


def read_manifest(agreement: Agreement, index_dir: Path) -> dict[str, Any]:
    """Read and check an index manifest: kind, format version, agreement.

    Raises:
        VerificationError: not an index manifest, a format this version cannot read, or an
            index made under another agreement.
    """
    path = index_dir / MANIFEST_NAME
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refuse(index_dir, f"not a readable JSON manifest ({type(e).__name__})") from None
    if not isinstance(m, dict) or m.get("kind") != KIND:
        raise _refuse(index_dir, f"not a person index manifest (kind {m.get('kind')!r})"
                      if isinstance(m, dict) else "not a person index manifest")  # fmt: skip
    version = m.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _refuse(index_dir, "format_version is missing or not an integer")
    if version > FORMAT_VERSION:
        raise _refuse(
            index_dir,
            f"index format version {version} is newer than this wmw-link ({__version__}) reads "
            f"(up to {FORMAT_VERSION}); upgrade wmw-link",
        )
    if version < 1:
        raise _refuse(index_dir, f"unknown index format version {version}")
    agr = m.get("agreement") or {}
    if agr.get("id") != agreement.id:
        raise _refuse(
            index_dir,
            f"a foreign index: made under agreement {agr.get('id')!r}, this run acts under "
            f"{agreement.id!r}",
        )
    ver = agr.get("version")
    if not isinstance(ver, int) or not agreement.accepts_version(ver):
        raise _refuse(
            index_dir,
            f"made under agreement {agreement.id} v{ver}, which v{agreement.version} does not "
            "accept (compatible_with)",
        )
    if ver == agreement.version and agr.get("hash") != agreement.hash:
        raise _refuse(
            index_dir,
            f"made under another text of agreement {agreement.id} v{ver} (agreement hash differs)",
        )
    for key in ("key_check", "generation", "files", "deliveries"):
        if key not in m:
            raise _refuse(index_dir, f"the manifest has no '{key}'")
    if not isinstance(m["generation"], str) or not _GEN.match(m["generation"]):
        raise _refuse(index_dir, "the manifest names no valid generation folder")
    return m


def read_index(agreement: Agreement, index_dir: Path) -> IndexState:
    """Read a verified index: every file's SHA-256 and row count must match the manifest.

    Raises:
        VerificationError: see :func:`read_manifest`; a missing or altered file (corrupted).
    """
    m = read_manifest(agreement, index_dir)
    gen = index_dir / m["generation"]
    files = m["files"]
    if not isinstance(files, dict) or MODEL_NAME not in files or EDGES_NAME not in files:
        raise _refuse(index_dir, "the manifest lists no model or edges file")
    for rel, entry in sorted(files.items()):
        p = gen / rel
        if not p.is_file():
            raise _refuse(index_dir, f"{m['generation']}/{rel} is missing (a corrupted index)")
        if sha256_file(p) != entry.get("sha256"):
            raise _refuse(
                index_dir,
                f"{m['generation']}/{rel}: SHA-256 differs from the manifest (a corrupted or "
                "altered index); restore it from a backup",
            )
    unlisted = sorted(
        f"{RECORDS_DIR}/{p.name}" for p in (gen / RECORDS_DIR).glob("*.parquet")
        if f"{RECORDS_DIR}/{p.name}" not in files
    )  # fmt: skip
    if unlisted:
        raise _refuse(index_dir, f"{m['generation']}/{unlisted[0]} is not in the manifest")
    try:
        model = json.loads((gen / MODEL_NAME).read_text(encoding="utf-8"))
        records = {}
        for rel, entry in files.items():
            if rel.startswith(f"{RECORDS_DIR}/"):
                t = pq.read_table(gen / rel)
                if t.num_rows != entry.get("rows"):
                    raise _refuse(index_dir, f"{rel}: row count differs from the manifest")
                records[Path(rel).name[: -len(".parquet")]] = t
        edges = pq.read_table(gen / EDGES_NAME)
    except (OSError, pa.ArrowInvalid, json.JSONDecodeError) as e:
        raise _refuse(index_dir, f"unreadable index file ({type(e).__name__})") from None
    if edges.schema != EDGE_SCHEMA:
        raise _refuse(index_dir, f"{EDGES_NAME} has columns other than the format's")
    return IndexState(index_dir, m, model, records, edges)


def write_generation(
    index_dir: Path,
    agreement: Agreement,
    *,
    key_check: str,
    deliveries: list[int],
    model: dict[str, Any],
    records: dict[str, pa.Table],
    edges: pa.Table,
    extra: dict[str, Any],
) -> Path:
    """Write a new generation and commit it by replacing the manifest; delete the old one.

    Returns:
        The manifest path.
    """
    pending = stage_generation(
        index_dir, agreement, key_check=key_check, deliveries=deliveries, model=model,
        records=records, edges=edges, extra=extra,
    )  # fmt: skip
    return commit_generation(index_dir, pending)


@dataclass
class PendingGeneration:
    """A generation folder written in full but not yet the index's (no manifest names it)."""

    name: str
    manifest: dict[str, Any]


def stage_generation(
    index_dir: Path,
    agreement: Agreement,
    *,
    key_check: str,
    deliveries: list[int],
    model: dict[str, Any],
    records: dict[str, pa.Table],
    edges: pa.Table,
    extra: dict[str, Any],
) -> PendingGeneration:
    """Write a new generation folder; :func:`commit_generation` makes it the index's.

    Until the commit the previous manifest still names the previous generation, so a run can
    write everything else it owes (its outputs) first and commit last; an uncommitted folder
    is removed by :func:`discard_generation` or by the next run (:func:`remove_stale`).
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(index_dir, 0o700)
    name = f"gen-{max(deliveries):04d}-{secrets.token_hex(4)}"
    stage = index_dir / f".{name}.tmp"
    stage.mkdir(mode=0o700)
    try:
        (stage / RECORDS_DIR).mkdir(mode=0o700)
        files: dict[str, dict[str, Any]] = {}
        model_path = stage / MODEL_NAME
        model_path.write_text(json.dumps(model, indent=1, sort_keys=True), encoding="utf-8")
        files[MODEL_NAME] = {"sha256": sha256_file(model_path)}
        pq.write_table(edges, stage / EDGES_NAME, compression="zstd")
        files[EDGES_NAME] = {"sha256": sha256_file(stage / EDGES_NAME), "rows": edges.num_rows}
        for ds, table in sorted(records.items()):
            rel = f"{RECORDS_DIR}/{ds}.parquet"
            pq.write_table(table, stage / rel, compression="zstd")
            files[rel] = {"sha256": sha256_file(stage / rel), "rows": table.num_rows}
        restrict_tree(stage)
        for f in sorted(stage.rglob("*")):  # on disk before any manifest names them
            if f.is_file():
                _fsync(f)
        _fsync(stage / RECORDS_DIR)
        _fsync(stage)
        os.rename(stage, index_dir / name)
        _fsync(index_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    manifest = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "agreement": {"id": agreement.id, "version": agreement.version, "hash": agreement.hash},
        "key_check": key_check,
        "deliveries": deliveries,
        "generation": name,
        "files": files,
        "updated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }
    return PendingGeneration(name, manifest)


def commit_generation(
    index_dir: Path, pending: PendingGeneration, *, remove_previous: bool = True
) -> Path:
    """Make a staged generation the index's (replace the manifest); delete the previous one.

    With ``remove_previous=False`` the previous generation stays until :func:`remove_stale`,
    so :func:`uncommit` can still restore it if what follows the commit fails.

    Returns:
        The manifest path.
    """
    path = index_dir / MANIFEST_NAME
    try:
        write_json_atomic(path, pending.manifest)  # the commit
    except BaseException:
        discard_generation(index_dir, pending)
        raise
    os.chmod(path, 0o600)
    _fsync(path)  # the commit is durable before the previous generation can be deleted
    _fsync(index_dir)
    if remove_previous:
        remove_stale(index_dir, keep=pending.name)
    return path


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk (a power cut loses neither)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def uncommit(index_dir: Path, previous: bytes | None) -> None:
    """Put back the manifest replaced by :func:`commit_generation` (None: there was none)."""
    path = index_dir / MANIFEST_NAME
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        write_bytes_atomic(path, previous)
        os.chmod(path, 0o600)


def discard_generation(index_dir: Path, pending: PendingGeneration) -> None:
    """Delete a staged generation that will not be committed."""
    shutil.rmtree(index_dir / pending.name, ignore_errors=True)


def remove_stale(index_dir: Path, keep: str | None) -> None:
    """Delete generation folders other than ``keep`` (old or half-written ones)."""
    if not index_dir.is_dir():
        return
    for n in os.listdir(index_dir):
        if n != keep and (_GEN.match(n) or _STAGING.match(n)):
            shutil.rmtree(index_dir / n, ignore_errors=True)


@contextlib.contextmanager
def locked(index_dir: Path) -> Iterator[None]:
    """Hold the index's exclusive lock (``flock``: released even if the process dies).

    Raises:
        ConfigError: another run holds the lock (its pid, host and start time are named).
    """
    if not index_dir.is_dir():
        index_dir.mkdir(parents=True, mode=0o700, exist_ok=True)  # another run may race us
    path = index_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
            raise ConfigError(
                f"{index_dir}: the person index is locked by another run ({holder}); wait for "
                "it to finish (the lock is released when that process ends)"
            ) from None
        info = (
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


__all__ = [
    "EDGE_SCHEMA",
    "FORMAT_VERSION",
    "KIND",
    "MANIFEST_NAME",
    "IndexState",
    "PendingGeneration",
    "check_usable",
    "commit_generation",
    "discard_generation",
    "exists",
    "locked",
    "read_index",
    "read_manifest",
    "remove_stale",
    "stage_generation",
    "uncommit",
    "write_generation",
]
