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
import hashlib
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
from wmw_link.files import restrict_tree, sha256_file, write_json_atomic

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
    # Each file is read once: hashed, then parsed from the same bytes.
    data: dict[str, bytes] = {}
    for rel, entry in sorted(files.items()):
        if not isinstance(entry, dict) or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise _refuse(index_dir, "the manifest lists a file outside its generation")
        p = gen / rel
        if not p.is_file():
            raise _refuse(index_dir, f"{m['generation']}/{rel} is missing (a corrupted index)")
        try:
            data[rel] = p.read_bytes()
        except OSError as e:
            raise _refuse(index_dir, f"{m['generation']}/{rel}: unreadable ({e.strerror})") from None
        if hashlib.sha256(data[rel]).hexdigest() != entry.get("sha256"):
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
        model = json.loads(data.pop(MODEL_NAME).decode("utf-8"))
        tables = {rel: pq.read_table(pa.py_buffer(data.pop(rel))) for rel in list(data)}
    except (UnicodeDecodeError, pa.ArrowInvalid, json.JSONDecodeError) as e:
        raise _refuse(index_dir, f"unreadable index file ({type(e).__name__})") from None
    for rel, t in tables.items():
        if t.num_rows != files[rel].get("rows"):
            raise _refuse(index_dir, f"{rel}: row count differs from the manifest")
    edges = tables.pop(EDGES_NAME)
    records = {Path(rel).name[: -len(".parquet")]: t for rel, t in tables.items()
               if rel.startswith(f"{RECORDS_DIR}/")}  # fmt: skip
    if edges.schema != EDGE_SCHEMA:
        raise _refuse(index_dir, f"{EDGES_NAME} has columns other than the format's")
    return IndexState(index_dir, m, model, records, edges)


@dataclass
class Generation:
    """A new generation written to disk but not yet committed (see :func:`commit`)."""

    index_dir: Path
    name: str
    manifest: dict[str, Any]


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
) -> Generation:
    """Write a new generation folder (owner-only); :func:`commit` makes it the index."""
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
        # Hashes and random ids do not compress: neither compression nor dictionaries pay.
        pq.write_table(edges, stage / EDGES_NAME, compression="none", use_dictionary=False)
        files[EDGES_NAME] = {"sha256": sha256_file(stage / EDGES_NAME), "rows": edges.num_rows}
        for ds, table in sorted(records.items()):
            rel = f"{RECORDS_DIR}/{ds}.parquet"
            pq.write_table(table, stage / rel, compression="none", use_dictionary=False)
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
    return Generation(index_dir, name, manifest)


def commit(gen: Generation) -> Path:
    """Make ``gen`` the index: replace the manifest (atomic), then delete older generations.

    On any failure the previous manifest, and so the previous index, stays in force.

    Returns:
        The manifest path.
    """
    path = gen.index_dir / MANIFEST_NAME
    try:
        write_json_atomic(path, gen.manifest)  # the commit
    except BaseException:
        discard(gen)
        raise
    os.chmod(path, 0o600)
    _fsync(path)  # the commit is durable before the previous generation can be deleted
    _fsync(gen.index_dir)
    remove_stale(gen.index_dir, keep=gen.name)
    return path


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk (a power cut loses neither)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(gen: Generation) -> None:
    """Delete a generation that was not committed."""
    shutil.rmtree(gen.index_dir / gen.name, ignore_errors=True)


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
    # exist_ok: a racing first run may make the folder between the test and the mkdir.
    index_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
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
    "Generation",
    "check_usable",
    "commit",
    "discard",
    "exists",
    "locked",
    "read_index",
    "read_manifest",
    "remove_stale",
    "write_generation",
]
