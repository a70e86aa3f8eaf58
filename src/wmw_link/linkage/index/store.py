"""The person index on disk: layout, manifest, versioning, verification, generations, lock.

Layout of an index folder ``DIR`` (format 2; every file owner-only)::

    DIR/index-manifest.json       kind, format_version, index_id, agreement, key_check,
                                  deliveries, generation, next_rid, files (DIR-relative path -> sha256,
                                  rows; a record segment also its dataset)
    DIR/index.lock                held (flock) by the run that is updating the index
    DIR/<generation>/model.json   the trained Splink model, threshold, household-rule SQL
    DIR/<generation>/edges.parquet      accepted links: rid_l, rid_r, match_weight
    DIR/<generation>/persons.parquet    every record in the index: rid, person (code)
    DIR/<generation>/person-ids.parquet the person ids, in code order
    DIR/<gen>/records/<dataset>.parquet a record segment: rid, row_ref, delivery, tokens of
                                        the records first stored by run <gen>

Records are stored once: a segment, written by the run whose delivery brought its records, is
never rewritten, and later generations list it again (so a refresh neither re-writes nor
re-parses a new copy of the history). A record is *in the index* when ``persons.parquet``
lists its record id (``rid``, a serial number never reused); a re-sent (corrected) record's
earlier row stays in its segment, out of the index, until the segment is compacted. A segment
holding a withdrawn record is always rewritten without it (a withdrawal leaves no trace), and
one whose records are mostly out of the index is compacted.

A run writes a new generation folder (model, edges, persons and new segments), then replaces
``index-manifest.json`` atomically (the commit), then deletes every generation folder and file
the new manifest does not list. An interrupted run leaves the previous manifest pointing at
intact files; its half-written folder is removed by the next run. Format 1 (each generation a
full copy of every record) is read and rewritten as format 2 by the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wmw_link._version import __version__
from wmw_link.agreement import Agreement
from wmw_link.errors import ConfigError, VerificationError
from wmw_link.files import restrict_tree, sha256_file, write_json_atomic

KIND = "wmw-link/person-index"
FORMAT_VERSION = 2
MANIFEST_NAME = "index-manifest.json"
LOCK_NAME = "index.lock"
MODEL_NAME = "model.json"
EDGES_NAME = "edges.parquet"
PERSONS_NAME = "persons.parquet"
PERSON_IDS_NAME = "person-ids.parquet"
RECORDS_DIR = "records"
_GEN = re.compile(r"^gen-\d{4,}-[0-9a-f]{8}$")
_STAGING = re.compile(r"^\.gen-.*\.tmp$")
#: A manifest write cut short (``files.atomic_path``'s temporary file, never renamed).
_MANIFEST_TMP = re.compile(r"^\.index-manifest\.json\..*\.tmp$")
log = logging.getLogger("wmw_link.linkage.index")

EDGE_SCHEMA = pa.schema(
    [
        pa.field("rid_l", pa.int64(), nullable=False),
        pa.field("rid_r", pa.int64(), nullable=False),
        pa.field("match_weight", pa.float64(), nullable=False),
    ]
)
PERSONS_SCHEMA = pa.schema(
    [pa.field("rid", pa.int64(), nullable=False), pa.field("person", pa.int32(), nullable=False)]
)
PERSON_IDS_SCHEMA = pa.schema([pa.field("person_id", pa.string(), nullable=False)])
#: Columns of a record segment besides its token columns.
SEGMENT_KEYS = ("rid", "row_ref", "delivery")
#: Columns of :attr:`IndexState.records` tables besides their token columns.
RECORD_KEYS = ("row_ref", "person_id", "delivery")
_V1_EDGE_COLUMNS = ["dataset_l", "row_ref_l", "dataset_r", "row_ref_r", "match_weight"]


@dataclass
class Segment:
    """Records of one dataset stored together: ``rid``, ``row_ref``, ``delivery``, tokens."""

    dataset: str
    table: pa.Table
    #: The file's path relative to the index folder and its verified SHA-256; None: not on
    #: disk in format 2 yet (read from a format-1 index), so the next generation writes it.
    rel: str | None = None
    sha256: str | None = None


@dataclass
class IndexState:
    """A verified index, read into memory."""

    path: Path
    manifest: dict[str, Any]
    model: dict[str, Any]
    segments: list[Segment]
    #: The records in the index: their rids (sorted) and person codes into ``person_ids``.
    rid: np.ndarray
    person: np.ndarray
    person_ids: np.ndarray
    edges: pa.Table
    next_rid: int
    _records: dict[str, pa.Table] | None = field(default=None, repr=False)

    @property
    def deliveries(self) -> list[int]:
        return [int(d) for d in self.manifest["deliveries"]]

    @property
    def key_check(self) -> str:
        return str(self.manifest["key_check"])

    @property
    def datasets(self) -> list[str]:
        return sorted({s.dataset for s in self.segments})

    def live(self, segment: Segment) -> np.ndarray:
        """Positions into :attr:`rid` of ``segment``'s rows (-1: the row is not in the index)."""
        return rid_positions(self.rid, segment.table["rid"].to_numpy())

    @property
    def records(self) -> dict[str, pa.Table]:
        """Per dataset, every record in the index: ``row_ref``, ``person_id``, ``delivery``,
        then the dataset's token columns (for tools and tests; a run works on segments)."""
        if self._records is None:
            parts: dict[str, list[pa.Table]] = {}
            for seg in self.segments:
                pos = self.live(seg)
                keep = pos >= 0
                t = seg.table.filter(pa.array(keep)).drop_columns(["rid"])
                pid = self.person_ids[self.person[pos[keep]]]
                t = t.add_column(1, "person_id", pa.array(pid, pa.string()))
                parts.setdefault(seg.dataset, []).append(t)
            self._records = {
                ds: pa.concat_tables(ts_, promote_options="default")
                for ds, ts_ in sorted(parts.items())
            }
        return self._records


def rid_positions(sorted_rids: np.ndarray, rids: np.ndarray) -> np.ndarray:
    """Each of ``rids``' position in ``sorted_rids`` (-1 where it is absent)."""
    if len(sorted_rids) == 0:
        return np.full(len(rids), -1, dtype=np.int64)
    pos = np.searchsorted(sorted_rids, rids)
    pos = np.minimum(pos, len(sorted_rids) - 1)
    return np.where(sorted_rids[pos] == rids, pos, -1).astype(np.int64)


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
        and not _MANIFEST_TMP.match(n)
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
    for key in ("key_check", "generation", "files", "deliveries", *(("next_rid", "index_id")
                if version >= 2 else ())):  # fmt: skip
        if key not in m:
            raise _refuse(index_dir, f"the manifest has no '{key}'")
    if not isinstance(m["generation"], str) or not _GEN.match(m["generation"]):
        raise _refuse(index_dir, "the manifest names no valid generation folder")
    return m


def _read_files(index_dir: Path, m: dict[str, Any], base: Path) -> dict[str, bytes]:
    """Every file the manifest lists (paths relative to ``base``), each checked against its
    SHA-256; read once, so they are parsed from the bytes that were hashed."""
    files = m["files"]
    if not isinstance(files, dict):
        raise _refuse(index_dir, "the manifest's files are not a mapping")
    shown = base.relative_to(index_dir)
    data: dict[str, bytes] = {}
    for rel, entry in sorted(files.items()):
        parts = Path(rel).parts
        if not isinstance(entry, dict) or Path(rel).is_absolute() or ".." in parts:
            raise _refuse(index_dir, "the manifest lists a file outside the index")
        name = (shown / rel).as_posix() if parts else rel
        p = base / rel
        if not p.is_file():
            raise _refuse(index_dir, f"{name} is missing (a corrupted index)")
        try:
            data[rel] = p.read_bytes()
        except OSError as e:
            raise _refuse(index_dir, f"{name}: unreadable ({e.strerror})") from None
        if hashlib.sha256(data[rel]).hexdigest() != entry.get("sha256"):
            raise _refuse(
                index_dir,
                f"{name}: SHA-256 differs from the manifest (a corrupted or altered index); "
                "restore it from a backup",
            )
    return data


def _parquet(index_dir: Path, m: dict[str, Any], rel: str, raw: bytes) -> pa.Table:
    try:
        t = pq.read_table(pa.py_buffer(raw))
    except pa.ArrowInvalid:
        raise _refuse(index_dir, f"{rel}: unreadable index file (ArrowInvalid)") from None
    if t.num_rows != m["files"][rel].get("rows"):
        raise _refuse(index_dir, f"{rel}: row count differs from the manifest")
    return t


def read_index(agreement: Agreement, index_dir: Path) -> IndexState:
    """Read a verified index: every file's SHA-256 and row count must match the manifest.

    Raises:
        VerificationError: see :func:`read_manifest`; a missing or altered file (corrupted).
    """
    m = read_manifest(agreement, index_dir)
    if m["format_version"] == 1:
        return _read_v1(agreement, index_dir, m)
    gen = m["generation"]
    need = [f"{gen}/{n}" for n in (MODEL_NAME, EDGES_NAME, PERSONS_NAME, PERSON_IDS_NAME)]
    files = m["files"]
    if not isinstance(files, dict) or any(n not in files for n in need):
        raise _refuse(index_dir, "the manifest lists no model, edges or persons file")
    seg_rels = sorted(set(files) - set(need))
    for rel in seg_rels:
        parts = Path(rel).parts
        if len(parts) != 3 or not _GEN.match(parts[0]) or parts[1] != RECORDS_DIR:
            raise _refuse(index_dir, f"the manifest lists {rel}, not a record segment")
    listed = set(seg_rels)
    # Only the generation in force is checked: it was renamed into place whole. An older
    # folder may still hold a segment this manifest no longer lists (compacted or rewritten
    # without a withdrawn record) when the clean-up after the commit did not finish; it is
    # never read, and remove_stale deletes it once the index is verified.
    for folder in [gen]:
        for p in sorted((index_dir / folder / RECORDS_DIR).glob("*.parquet")):
            rel = f"{folder}/{RECORDS_DIR}/{p.name}"
            if rel not in listed:
                raise _refuse(index_dir, f"{rel} is not in the manifest")
    data = _read_files(index_dir, m, index_dir)
    try:
        model = json.loads(data.pop(need[0]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refuse(index_dir, f"unreadable index file ({type(e).__name__})") from None
    edges = _parquet(index_dir, m, need[1], data.pop(need[1]))
    persons = _parquet(index_dir, m, need[2], data.pop(need[2]))
    ids = _parquet(index_dir, m, need[3], data.pop(need[3]))
    if edges.schema != EDGE_SCHEMA or persons.schema != PERSONS_SCHEMA or \
            ids.schema != PERSON_IDS_SCHEMA:  # fmt: skip
        raise _refuse(index_dir, "an edges or persons file has columns other than the format's")
    segments = [_segment(index_dir, m, rel, data.pop(rel)) for rel in seg_rels]
    rid = persons["rid"].to_numpy()
    if len(rid) > 1 and not bool(np.all(rid[1:] > rid[:-1])):
        raise _refuse(index_dir, f"{need[2]}: record ids are not strictly increasing")
    _check_rids(index_dir, m, segments, rid, edges, need[2])
    person = persons["person"].to_numpy().astype(np.int64)
    person_ids = ids["person_id"].to_numpy(zero_copy_only=False)
    if len(person) and (person.min() < 0 or person.max() >= len(person_ids)):
        raise _refuse(index_dir, f"{need[2]}: a person code outside {need[3]}")
    if pc.count_distinct(ids["person_id"]).as_py() != ids.num_rows:
        raise _refuse(index_dir, f"{need[3]}: a person id is listed twice")
    return IndexState(index_dir, m, model, segments, rid, person, person_ids, edges,
                      int(m["next_rid"]))  # fmt: skip


def _segment(index_dir: Path, m: dict[str, Any], rel: str, raw: bytes) -> Segment:
    """A record segment read from its verified bytes; its columns and dataset checked."""
    t = _parquet(index_dir, m, rel, raw)
    if t.column_names[:3] != list(SEGMENT_KEYS) or t.schema.field("rid").type != pa.int64() \
            or t["rid"].null_count:  # fmt: skip
        raise _refuse(index_dir, f"{rel} has columns other than the format's")
    ds = Path(rel).stem
    if m["files"][rel].get("dataset", ds) != ds:
        raise _refuse(index_dir, f"{rel}: the manifest names it a segment of another dataset")
    return Segment(ds, t, rel, str(m["files"][rel]["sha256"]))


def _check_rids(
    index_dir: Path,
    m: dict[str, Any],
    segments: list[Segment],
    rid: np.ndarray,
    edges: pa.Table,
    persons_rel: str,
) -> None:
    """Each record id stored once, below ``next_rid``; every record in the index (persons)
    and every edge end stored in a segment."""
    nxt = m["next_rid"]
    if not isinstance(nxt, int) or isinstance(nxt, bool):
        raise _refuse(index_dir, "next_rid is not an integer")
    parts = [s.table["rid"].to_numpy() for s in segments]
    stored = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    if len(stored) > 1 and not bool(np.all(stored[1:] > stored[:-1])):
        raise _refuse(index_dir, "a record id is stored twice (in the segments)")
    if len(stored) and (stored[0] < 0 or stored[-1] >= nxt):
        raise _refuse(index_dir, f"a stored record id is not in 0 .. next_rid ({nxt}) - 1")
    if len(rid) and bool((rid_positions(stored, rid) < 0).any()):
        raise _refuse(index_dir, f"{persons_rel}: a record id no segment holds")
    for col in ("rid_l", "rid_r"):
        if edges.num_rows and bool((rid_positions(rid, edges[col].to_numpy()) < 0).any()):
            raise _refuse(index_dir, f"{EDGES_NAME}: a record id not in the index")


def _read_v1(agreement: Agreement, index_dir: Path, m: dict[str, Any]) -> IndexState:
    """A format-1 index (every generation a full copy): records get rids in file order."""
    gen = index_dir / m["generation"]
    files = m["files"]
    if not isinstance(files, dict) or MODEL_NAME not in files or EDGES_NAME not in files:
        raise _refuse(index_dir, "the manifest lists no model or edges file")
    unlisted = sorted(
        f"{RECORDS_DIR}/{p.name}" for p in (gen / RECORDS_DIR).glob("*.parquet")
        if f"{RECORDS_DIR}/{p.name}" not in files
    )  # fmt: skip
    if unlisted:
        raise _refuse(index_dir, f"{m['generation']}/{unlisted[0]} is not in the manifest")
    data = _read_files(index_dir, m, gen)
    try:
        model = json.loads(data.pop(MODEL_NAME).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refuse(index_dir, f"unreadable index file ({type(e).__name__})") from None
    edges = _parquet(index_dir, m, EDGES_NAME, data.pop(EDGES_NAME))
    if edges.column_names != _V1_EDGE_COLUMNS:
        raise _refuse(index_dir, f"{EDGES_NAME} has columns other than the format's")
    segments, pids, keys = [], [], []
    start = 0
    for rel in sorted(data):
        t = _parquet(index_dir, m, rel, data[rel])
        ds = Path(rel).name[: -len(".parquet")]
        rid = pa.array(np.arange(start, start + t.num_rows, dtype=np.int64))
        pids.append(t["person_id"].to_numpy(zero_copy_only=False))
        keys.append(_keys(pa.array([ds] * t.num_rows, pa.string()), t["row_ref"]))
        t = t.drop_columns(["person_id"])
        segments.append(Segment(ds, t.add_column(0, "rid", rid)))
        start += t.num_rows
    codes, uniq = pd.factorize(np.concatenate(pids) if pids else np.zeros(0, dtype=object))
    all_keys = pa.concat_arrays(keys) if keys else pa.array([], pa.string())
    li = pc.index_in(_keys(edges["dataset_l"], edges["row_ref_l"]), value_set=all_keys)
    ri = pc.index_in(_keys(edges["dataset_r"], edges["row_ref_r"]), value_set=all_keys)
    ok = pc.and_(pc.is_valid(li), pc.is_valid(ri))
    dropped = edges.num_rows - pc.sum(pc.cast(ok, pa.int64())).as_py() if edges.num_rows else 0
    if dropped:  # an edge to a record no segment holds links nothing: said, not silent
        log.warning("format-1 index: %d edges to records the index no longer holds dropped "
                    "in the upgrade", dropped)  # fmt: skip
    v2_edges = pa.Table.from_arrays(
        [pc.filter(li, ok).cast(pa.int64()), pc.filter(ri, ok).cast(pa.int64()),
         pc.filter(edges["match_weight"], ok)],
        schema=EDGE_SCHEMA,
    )  # fmt: skip
    return IndexState(index_dir, m, model, segments, np.arange(start, dtype=np.int64),
                      codes.astype(np.int64), np.asarray(uniq, dtype=object), v2_edges, start)  # fmt: skip


def _keys(ds: Any, refs: Any) -> pa.Array:
    """``dataset <US> row_ref`` keys, for hash lookups of (dataset, row_ref) pairs."""

    def arr(v: Any) -> pa.Array:
        return v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v

    return pc.binary_join_element_wise(arr(ds), arr(refs), "\x1f")


@dataclass
class Generation:
    """A new generation written to disk but not yet committed (see :func:`commit`)."""

    index_dir: Path
    name: str
    manifest: dict[str, Any]


def _write(path: Path, table: pa.Table) -> dict[str, Any]:
    # Hashes and random ids do not compress: neither compression nor dictionaries pay.
    pq.write_table(table, path, compression="none", use_dictionary=False)
    return {"sha256": sha256_file(path), "rows": table.num_rows}


def write_generation(
    index_dir: Path,
    agreement: Agreement,
    *,
    key_check: str,
    deliveries: list[int],
    model: dict[str, Any],
    kept: list[Segment],
    new_segments: dict[str, pa.Table],
    persons: pa.Table,
    person_ids: pa.Array,
    edges: pa.Table,
    next_rid: int,
    index_id: str | None = None,
    extra: dict[str, Any],
) -> Generation:
    """Write a new generation folder (owner-only); :func:`commit` makes it the index.

    Args:
        kept: segments already on disk that the new generation lists again (a segment with
            ``rel`` None is written into the new generation).
        new_segments: dataset -> records to store in a new segment (``rid``, ``row_ref``,
            ``delivery``, tokens).
        persons: ``rid`` (increasing) and ``person`` (code into ``person_ids``) of every record
            in the index.
        index_id: the index's identity, kept for its life (None: a new index gets one).
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
        files[f"{name}/{MODEL_NAME}"] = {"sha256": sha256_file(model_path)}
        files[f"{name}/{EDGES_NAME}"] = _write(stage / EDGES_NAME, edges.cast(EDGE_SCHEMA))
        files[f"{name}/{PERSONS_NAME}"] = _write(stage / PERSONS_NAME,
                                                 persons.cast(PERSONS_SCHEMA))  # fmt: skip
        files[f"{name}/{PERSON_IDS_NAME}"] = _write(
            stage / PERSON_IDS_NAME, pa.Table.from_arrays([person_ids], schema=PERSON_IDS_SCHEMA)
        )
        fresh: dict[str, list[pa.Table]] = {}
        for seg in kept:
            if seg.rel is None:
                fresh.setdefault(seg.dataset, []).append(seg.table)
            else:  # verified when the index was read: not hashed again
                files[seg.rel] = {"sha256": seg.sha256, "rows": seg.table.num_rows,
                                  "dataset": seg.dataset}  # fmt: skip
        for ds, t in new_segments.items():
            fresh.setdefault(ds, []).append(t)
        for ds, tables in sorted(fresh.items()):
            table = pa.concat_tables(tables, promote_options="default")
            if table.num_rows == 0:
                continue
            rel = f"{RECORDS_DIR}/{ds}.parquet"
            files[f"{name}/{rel}"] = {**_write(stage / rel, table), "dataset": ds}
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
        "next_rid": int(next_rid),
        "index_id": index_id or secrets.token_hex(8),
        "files": dict(sorted(files.items())),
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
        write_json_atomic(path, gen.manifest, durable=True)  # the commit
    except BaseException:
        discard(gen)
        raise
    os.chmod(path, 0o600)
    _fsync(path)  # the commit is durable before the previous generation can be deleted
    _fsync(gen.index_dir)
    try:
        remove_stale(gen.index_dir, keep=gen.name)
    except OSError as e:  # committed: the next run deletes what is left
        log.warning("%s: old index files not all deleted (%s); the next run deletes them",
                    gen.index_dir, e.strerror)  # fmt: skip
    return path


def in_force(gen: Generation) -> bool:
    """Whether the manifest in force names ``gen`` (its commit happened)."""
    try:
        m = json.loads((gen.index_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and m.get("generation") == gen.name


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
    """Delete what the manifest in force does not list: generation folders other than
    ``keep`` and those holding its listed segments (old or half-written ones), and, in those,
    every file not listed (an old generation's model, edges, persons, compacted segments)."""
    if not index_dir.is_dir():
        return
    listed: set[str] = set()
    if keep is not None:
        try:
            m = json.loads((index_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            m = None
        if not isinstance(m, dict) or m.get("generation") != keep:
            # What the manifest in force lists is unknown: deleting other folders could
            # delete segments it lists. Leave everything to the next run.
            log.warning("%s: the manifest could not be read back; nothing deleted", index_dir)
            return
        if m.get("format_version", 1) >= 2:
            listed = set(m.get("files") or {})
    folders = {keep} | {Path(r).parts[0] for r in listed}
    for n in os.listdir(index_dir):
        if (_GEN.match(n) or _STAGING.match(n)) and n not in folders:
            shutil.rmtree(index_dir / n, ignore_errors=True)
        elif _MANIFEST_TMP.match(n):
            (index_dir / n).unlink(missing_ok=True)
    if not listed:
        return
    for n in sorted(folders - {keep}):
        for f in sorted((index_dir / n).rglob("*")):
            if f.is_file() and f.relative_to(index_dir).as_posix() not in listed:
                f.unlink()


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
    "PERSONS_SCHEMA",
    "PERSON_IDS_SCHEMA",
    "RECORD_KEYS",
    "SEGMENT_KEYS",
    "Segment",
    "rid_positions",
    "FORMAT_VERSION",
    "KIND",
    "MANIFEST_NAME",
    "IndexState",
    "Generation",
    "check_usable",
    "commit",
    "discard",
    "exists",
    "in_force",
    "locked",
    "read_index",
    "read_manifest",
    "remove_stale",
    "write_generation",
]
