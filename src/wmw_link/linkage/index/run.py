"""A linkage run against the persistent person index (``wmw-link link --index DIR``).

Modes: ``full`` (first run over an empty index: today's full run, then stored), ``incremental``
(the stored model scores only pairs touching this delivery's records; stored accepted edges
stand for the rest), ``retrain`` (a new model over every record; ids carried over by maximum
overlap), ``rekey`` (the same over every record re-tokenised under a new linkage key).
Withdrawals remove records before anything is scored. See docs/person-index.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wmw_link import freshness
from wmw_link import token_schema as ts
from wmw_link._version import __version__
from wmw_link.agreement import Agreement, Role
from wmw_link.errors import ConfigError, InputDataError, VerificationError
from wmw_link.files import restrict_tree, sha256_file, write_json_atomic, write_parquet_atomic
from wmw_link.linkage import threshold as thr
from wmw_link.linkage.backends import open_backend
from wmw_link.linkage.components import key_arrays, key_columns_sql, split_conflicts
from wmw_link.linkage.index import incremental, persons, store
from wmw_link.linkage.maps import write_maps
from wmw_link.linkage.run import LINK_MANIFEST_NAME, link_output_names
from wmw_link.linkage.settings import keep_apart_ids, tie_key_columns
from wmw_link.linkage.verify import VerifiedInput, in_delivery_order, verify_inputs
from wmw_link.outdir import staged_dir
from wmw_link.resources import parse_size

log = logging.getLogger("wmw_link.linkage.index")

ID_CHANGES_NAME = "id-changes.parquet"
INDEX_MAP_SCHEMA = pa.schema(
    [
        pa.field("row_ref", pa.string(), nullable=False),
        ("person_id", pa.string()),
        ("delivery", pa.int32()),
    ]
)


@dataclass
class IndexResult:
    """What an index run produced."""

    out_dir: Path
    maps: dict[str, Path]
    id_changes: Path
    manifest: Path
    index_manifest: Path
    mode: str
    delivery: int
    records: int
    new_records: int
    corrected: int
    withdrawn: int
    persons: int
    map_rows: int
    changes: int
    comparisons: int
    threshold_match_weight: float
    timings: dict[str, float] = field(default_factory=dict, repr=False)
    #: The index generation this run wrote, committed once the outputs are in place.
    generation: Any = field(default=None, repr=False)


@dataclass
class _Current:
    """Every record of this run, numbered: the index's records that stay (by record id) from
    position 0, then this run's new and re-sent records from ``new_from``. Positions are the
    Splink ``unique_id`` of the run."""

    ds_names: list[str]  # datasets, sorted
    #: dataset -> gid (position; -1: a stored row not in this run), rid, row_ref, delivery,
    #: tokens: the dataset's stored segments, then this run's records
    tables: dict[str, pa.Table]
    new_from: int
    pos_rid: np.ndarray  # int64: each position's record id (increasing)
    old_code: np.ndarray  # int64: each position's person before the run (-1: new)
    old_ids: np.ndarray  # object: the persons' ids before the run
    delivery: np.ndarray  # int32: each position's delivery
    kept: list[store.Segment]  # stored segments the next generation lists again
    #: dataset -> records for the next generation's new segment (rid, row_ref, delivery,
    #: tokens): this run's, and those of stored segments compacted by this run
    to_store: dict[str, list[pa.Table]]
    next_rid: int
    corrected: set[int]  # old person codes that held a re-sent record
    gone: dict[int, int]  # withdrawn records' old person code -> count
    n_corrected: int
    n_withdrawn: int  # index records removed
    n_unmatched: int  # withdrawn row refs that matched no record (index or this delivery)

    @property
    def n(self) -> int:
        return len(self.pos_rid)


def read_inputs(
    agreement: Agreement, inputs: Sequence[str | Path]
) -> tuple[list[VerifiedInput], dict[str, pa.Table]]:
    """Verify every ``--inputs`` item; one tokens table per dataset (a later item's row wins
    over an earlier one's with the same row_ref: a re-sent, corrected record).

    Raises:
        VerificationError: a failed check, or inputs made with different linkage keys.
    """
    verified: list[VerifiedInput] = []
    groups: dict[str, list[VerifiedInput]] = {}
    for item in inputs:
        for v in verify_inputs(agreement, item):
            verified.append(v)
            groups.setdefault(v.dataset, []).append(v)
    tables: dict[str, pa.Table] = {}
    for ds, vs in groups.items():
        for v in in_delivery_order(vs):  # by delivery number, not by the order of --inputs
            t = pq.read_table(v.tokens_path)
            if ds in tables:
                prev = tables[ds]
                resent = pc.is_in(prev["row_ref"], value_set=t["row_ref"].combine_chunks())
                t = pa.concat_tables([prev.filter(pc.invert(resent)), t], promote_options="default")
            tables[ds] = t
    checks = sorted({v.manifest["key_check"] for v in verified})
    if len(checks) > 1:
        raise VerificationError(
            "rule 'key check': the inputs were tokenised with different linkage keys "
            f"({len(checks)} key check values over {len(inputs)} input folder(s))"
        )
    return verified, tables


def _read_withdrawals(
    agreement: Agreement, paths: Sequence[Any], keyring: Any
) -> dict[str, set[str]]:
    """Dataset -> withdrawn row refs, from withdrawal list files (verified by
    :func:`wmw_link.withdrawals.read_withdrawals`) or already-read ``Withdrawals``.

    A list's key check is that of the controller's row-reference key, not comparable with the
    linkage key's check of the index; a list made with another row-reference key simply
    matches no record (the run counts withdrawals that matched nothing).
    """
    out: dict[str, set[str]] = {}
    for p in paths:
        if isinstance(p, (str, Path)):
            from wmw_link.withdrawals import read_withdrawals

            w = read_withdrawals(agreement, p, keyring=keyring)
        else:  # already read and verified (a Withdrawals object)
            w = p
        out.setdefault(w.dataset, set()).update(w.row_refs.to_pylist())
    return out


def _without(table: pa.Table, mask: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` without the rows where ``mask`` is true (no copy when there are none)."""
    return table.filter(pc.invert(mask)) if pc.any(mask).as_py() else table


#: A stored segment is rewritten (compacted) once fewer than this share of its rows are still
#: in the index (earlier versions of re-sent records make up the rest).
COMPACT_BELOW = 0.5


@dataclass
class _Tally:
    """What :func:`_current` learns from the stored records, dataset by dataset."""

    stored: list[tuple[store.Segment, np.ndarray]] = field(default_factory=list)  # stays
    kept: list[store.Segment] = field(default_factory=list)
    to_store: dict[str, list[pa.Table]] = field(default_factory=dict)
    corrected: set[int] = field(default_factory=set)
    gone: dict[int, int] = field(default_factory=dict)
    n_corrected: int = 0
    n_withdrawn: int = 0


def _stored(
    state: store.IndexState,
    segments: list[store.Segment],
    wd: pa.Array,
    new_refs: pa.Array | None,
    tally: _Tally,
    matched: set[str],
) -> tuple[dict[str, tuple[int, int]], int]:
    """Sort one dataset's stored rows into those that stay and those this run withdraws or
    replaces (re-sent); choose the segments to keep or compact.

    Returns:
        re-sent row ref -> (old person code, delivery); the dataset's records in the index
        that this run does not withdraw.
    """
    before: dict[str, tuple[int, int]] = {}
    live_rows = 0
    for seg in segments:
        pos = state.live(seg)
        live = pos >= 0
        refs = seg.table["row_ref"]
        leaving = np.zeros(len(pos), dtype=bool)
        # Every row of a withdrawn ref, also an earlier version a correction superseded: the
        # segment is rewritten without any of them.
        w_any = _mask(pc.is_in(refs, value_set=wd)) if len(wd) else leaving
        w = w_any & live
        live_rows += int((live & ~w).sum())  # withdrawn records need not be re-sent
        if w.any():
            for code in state.person[pos[w]].tolist():
                tally.gone[code] = tally.gone.get(code, 0) + 1
            matched.update(refs.filter(pa.array(w)).to_pylist())
            tally.n_withdrawn += int(w.sum())
            leaving = leaving | w
        if new_refs is not None and len(new_refs):
            r = _mask(pc.is_in(refs, value_set=new_refs)) & live
            if r.any():
                codes = state.person[pos[r]]
                dels = seg.table["delivery"].filter(pa.array(r)).to_numpy()
                before.update(zip(refs.filter(pa.array(r)).to_pylist(),
                                  zip(codes.tolist(), dels.tolist(), strict=True),
                                  strict=True))  # fmt: skip
                tally.corrected.update(codes.tolist())
                tally.n_corrected += int(r.sum())
                leaving = leaving | r
        stays = live & ~leaving
        tally.stored.append((seg, stays))
        # A withdrawn record must leave no trace: its segment is rewritten without it.
        if seg.rel is None or w_any.any() or stays.sum() < COMPACT_BELOW * len(stays):
            if stays.any():
                tally.to_store.setdefault(seg.dataset, []).append(
                    seg.table.filter(pa.array(stays))
                )
        else:
            tally.kept.append(seg)
    return before, live_rows


def _current(
    state: store.IndexState | None,
    new: dict[str, pa.Table],
    withdrawn: dict[str, set[str]],
    delivery: int,
    rekey: bool = False,
) -> _Current:
    """Every record of the run: the index's (less withdrawn and re-sent ones), then this
    delivery's. With ``rekey`` every index record must be re-sent (new tokens, same row ref)
    and keeps its delivery number.

    Raises:
        VerificationError: a re-key whose inputs leave index records out.
    """
    segments: dict[str, list[store.Segment]] = {}
    for seg in state.segments if state else []:
        segments.setdefault(seg.dataset, []).append(seg)
    names = sorted(set(segments) | set(new))
    tally = _Tally()
    fresh: dict[str, tuple[pa.Table, np.ndarray, np.ndarray]] = {}  # rows, old code, delivery
    unmatched = 0
    for ds in names:
        wd = pa.array(sorted(withdrawn.get(ds, ())), pa.string())
        n = new.get(ds)
        matched: set[str] = set()
        if n is not None and len(wd):
            drop = pc.is_in(n["row_ref"], value_set=wd)
            matched.update(n.filter(drop)["row_ref"].to_pylist())
            n = _without(n, drop)
        before, live_rows = ({}, 0) if state is None else _stored(
            state, segments.get(ds, []), wd,
            n["row_ref"].combine_chunks() if n is not None else None, tally, matched,
        )  # fmt: skip
        if rekey and len(before) < live_rows:
            raise VerificationError(
                f"dataset '{ds}': {live_rows - len(before)} index record(s) were not "
                "re-sent under the new linkage key; a re-key needs every controller's whole "
                "history re-tokenised (tokens under the old key cannot be compared)"
            )
        if n is not None:
            refs = n["row_ref"].to_pylist() if before else []
            old = [before[r][0] if r in before else -1 for r in refs]
            n_old = np.array(old, dtype=np.int64) if before else np.full(n.num_rows, -1)
            n_del = np.full(n.num_rows, delivery, dtype=np.int32)
            if rekey and before:  # the same records under a new key: they keep their delivery
                n_del = np.array([before[r][1] if r in before else delivery for r in refs],
                                 dtype=np.int32)  # fmt: skip
            fresh[ds] = (n, n_old, n_del)
        unmatched += len(withdrawn.get(ds, ())) - len(matched)
    unmatched += sum(len(v) for k, v in withdrawn.items() if k not in names)
    return _number(state, names, tally, fresh, unmatched)


def _number(
    state: store.IndexState | None,
    names: list[str],
    tally: _Tally,
    fresh: dict[str, tuple[pa.Table, np.ndarray, np.ndarray]],
    unmatched: int,
) -> _Current:
    """Positions: the stored records that stay, by record id, then the new ones by dataset;
    new records take new record ids."""
    stay_rids = [seg.table["rid"].filter(pa.array(st)).to_numpy() for seg, st in tally.stored]
    kept_rids = np.sort(np.concatenate(stay_rids)) if stay_rids else np.zeros(0, np.int64)
    new_from = len(kept_rids)
    n_new = sum(t.num_rows for t, _, _ in fresh.values())
    if new_from + n_new == 0:
        raise InputDataError("no records to link: the index is empty and no tokens were given")
    next_rid = state.next_rid if state else 0
    pos_rid = np.concatenate([kept_rids, np.arange(next_rid, next_rid + n_new, dtype=np.int64)])
    old_code = np.full(len(pos_rid), -1, dtype=np.int64)
    dels = np.zeros(len(pos_rid), dtype=np.int32)
    if state is not None and new_from:
        old_code[:new_from] = state.person[store.rid_positions(state.rid, kept_rids)]
    parts: dict[str, list[pa.Table]] = {}
    for seg, st in tally.stored:
        gid = np.where(st, store.rid_positions(kept_rids, seg.table["rid"].to_numpy()), -1)
        dels[gid[st]] = seg.table["delivery"].to_numpy()[st]
        parts.setdefault(seg.dataset, []).append(seg.table.add_column(0, "gid", pa.array(gid)))
    pos = new_from
    for ds in sorted(fresh):
        t, n_old, n_del = fresh[ds]
        k = t.num_rows
        rec = t.drop_columns([c for c in (*store.SEGMENT_KEYS, "gid") if c in t.column_names
                              and c != "row_ref"])  # fmt: skip
        rec = rec.select(["row_ref", *[c for c in rec.column_names if c != "row_ref"]])
        rec = rec.add_column(0, "rid", pa.array(pos_rid[pos : pos + k]))
        rec = rec.add_column(2, "delivery", pa.array(n_del, pa.int32()))
        tally.to_store.setdefault(ds, []).insert(0, rec)
        old_code[pos : pos + k] = n_old
        dels[pos : pos + k] = n_del
        parts.setdefault(ds, []).append(
            rec.add_column(0, "gid", pa.array(np.arange(pos, pos + k, dtype=np.int64)))
        )
        pos += k
    return _Current(
        ds_names=names,
        tables={ds: pa.concat_tables(ps, promote_options="default") for ds, ps in parts.items()},
        new_from=new_from,
        pos_rid=pos_rid,
        old_code=old_code,
        old_ids=state.person_ids if state else np.zeros(0, dtype=object),
        delivery=dels,
        kept=tally.kept,
        to_store=tally.to_store,
        next_rid=next_rid + n_new,
        corrected=tally.corrected,
        gone=tally.gone,
        n_corrected=tally.n_corrected,
        n_withdrawn=tally.n_withdrawn,
        n_unmatched=unmatched,
    )


def _mask(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array (no nulls) as numpy."""
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=bool)


def _stored_edges(state: store.IndexState, cur: _Current) -> tuple[np.ndarray, ...]:
    """The stored accepted edges between records still in the index and not re-sent."""
    e = state.edges
    if e.num_rows == 0 or cur.new_from == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    kept = cur.pos_rid[: cur.new_from]
    li = store.rid_positions(kept, e["rid_l"].to_numpy())
    ri = store.rid_positions(kept, e["rid_r"].to_numpy())
    ok = (li >= 0) & (ri >= 0)
    return li[ok], ri[ok], e["match_weight"].to_numpy()[ok]


def _edges_table(cur: _Current, left: np.ndarray, right: np.ndarray, w: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(cur.pos_rid[left]), pa.array(cur.pos_rid[right]), pa.array(w, pa.float64())],
        schema=store.EDGE_SCHEMA,
    )


def _maps(
    cur: _Current,
    assigned: persons.Assignment,
    delivery: int,
    datasets: Sequence[str],
) -> dict[str, pa.Table]:
    """This delivery's records, and every record of a person an id change names as old.

    That includes every record whose id changed, and also the records of a split person that
    kept its id: analysts apply ``old -> new`` to all earlier rows, then this run's map rows,
    so the rows of every record of a changed person must be here to come out right.
    """
    want = (cur.delivery == delivery) | np.isin(cur.old_code, assigned.changed)
    out = {}
    for ds in datasets:
        t = cur.tables.get(ds)
        if t is None:
            sel, refs = np.zeros(0, np.int64), pa.array([], pa.string())
        else:
            gid = t["gid"].to_numpy()
            rows = np.flatnonzero((gid >= 0) & want[np.maximum(gid, 0)])
            rows = rows[np.argsort(gid[rows], kind="stable")]
            sel = gid[rows]
            refs = t["row_ref"].take(pa.array(rows, pa.int64()))
        out[ds] = pa.Table.from_arrays(
            [
                refs,
                pa.array(assigned.person_ids[assigned.person[sel]], pa.string()),
                pa.array(np.full(len(sel), delivery, dtype=np.int32), pa.int32()),
            ],
            schema=INDEX_MAP_SCHEMA,
        )
    return out


def link_index(
    agreement: Agreement,
    inputs: Sequence[str | Path],
    index_dir: str | Path,
    out_dir: str | Path,
    *,
    delivery: int | None = None,
    retrain: bool = False,
    rekey: bool = False,
    withdrawals: Sequence[Any] = (),
    keyring: Any = None,
    backend: str = "duckdb",
    threshold: float | None = None,
    party: str | None = None,
    seed: int = 42,
    exact_only: bool = False,
    threads: int | None = None,
    report: bool = True,
    memory_limit: str | int | None = None,
    temp_dir: str | Path | None = None,
    state: str | Path | None = None,
) -> IndexResult:
    """Link one delivery against the person index in ``index_dir`` and update it.

    Args:
        agreement: the agreement the TTP acts under.
        inputs: folders (or files) of tokens + manifests: this delivery. May be empty when
            the run only applies withdrawals.
        index_dir: the index folder (absent or empty: a first, full run creates it).
        out_dir: maps, ``id-changes.parquet``, ``link-manifest.json`` (replaced as a whole).
        delivery: this delivery's number (default: one more than the index's last).
        retrain: train a new model on every record (index + new) and carry ids over.
        rekey: the inputs are every controller's whole history re-tokenised under a new
            linkage key (same row refs): train a new model on them, carry ids over by row ref
            (reason ``rekey``), and keep the new key check.
        withdrawals: withdrawal lists to apply: paths of ``<dataset>.withdrawals.parquet``
            files, or ``wmw_link.withdrawals.Withdrawals`` already read.
        keyring: party keys to check the withdrawal lists' signatures with.
        backend: only ``duckdb`` keeps an index.
        threshold: match probability for a full or re-trained model (default: label-free).
        party, seed, exact_only, threads, report, memory_limit, temp_dir: as for
            :func:`wmw_link.linkage.link`.
        state: the TTP's state file (``link --state``): it remembers the last delivery this
            TTP committed to each index, so an index rolled back to an older copy is refused.

    Raises:
        VerificationError: an input, withdrawal list or the index failed verification
            (corrupted, foreign, newer format, another linkage key, older than the last
            delivery ``state`` says was committed to it).
        ConfigError: the index is locked by another run, a delivery number is not new, or the
            output folder cannot be replaced.
    """
    agreement.require_in_force()
    party = party or agreement.default_party(Role.TTP)
    agreement.require_role(party, Role.TTP, "run linkage")
    if backend != "duckdb":
        raise ConfigError("--index works with the duckdb backend only")
    if memory_limit is not None:
        parse_size(memory_limit)  # refuse a malformed size before reading anything
    index_dir, out = Path(index_dir), Path(out_dir)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    verified, new = read_inputs(agreement, inputs) if inputs else ([], {})
    store.check_usable(index_dir)
    with store.locked(index_dir):
        idx = store.read_index(agreement, index_dir) if store.exists(index_dir) else None
        _check_not_rolled_back(index_dir, idx, state)
        store.remove_stale(index_dir, keep=idx.manifest["generation"] if idx else None)
        key_check = _key_check(index_dir, idx, verified, rekey)
        number = _delivery_number(idx, delivery)
        withdrawn = _read_withdrawals(agreement, withdrawals, keyring)
        unknown = sorted(set(withdrawn) - {d.id for d in agreement.datasets})
        if unknown:
            raise VerificationError(f"withdrawals for dataset '{unknown[0]}', not in agreement "
                                    f"{agreement.id}")  # fmt: skip
        cur = _current(idx, new, withdrawn, number, rekey=rekey)
        mode = _mode(idx, rekey=rekey, retrain=retrain, threshold=threshold,
                     exact_only=exact_only)  # fmt: skip
        timings["prepare"] = time.perf_counter() - t_start
        produces = link_output_names(agreement) | {ID_CHANGES_NAME}
        result: IndexResult | None = None
        try:
            with staged_dir(out, produces, "link") as stage:
                tmp = Path(tempfile.mkdtemp(prefix=".wmw-link-", dir=stage))
                be = open_backend(
                    backend, tmp, threads, memory_limit=memory_limit,
                    temp_dir=Path(temp_dir) if temp_dir is not None else None,
                )  # fmt: skip
                try:
                    result = _link(
                        agreement, idx, cur, verified, be, stage, index_dir,
                        mode=mode, number=number, key_check=key_check, seed=seed,
                        threshold=threshold, exact_only=exact_only, report=report,
                        timings=timings, t_start=t_start,
                    )  # fmt: skip
                finally:
                    be.close()
                    shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            if result is not None:  # written, never committed
                store.discard(result.generation)
            raise
        # The outputs are in place: now commit the index. In this order a failure leaves the
        # previous index in force and no outputs of a delivery it does not hold (a rerun
        # repeats the delivery); the other order could commit a delivery whose outputs were
        # lost, and a rerun would be refused as not new.
        try:
            store.commit(result.generation)
        except BaseException:
            if not store.in_force(result.generation):  # once committed, the outputs stay
                shutil.rmtree(out, ignore_errors=True)
            raise
        _record_committed(state, result.generation.manifest, index_dir, number)
    restrict_tree(out)
    return _relocate(result, out)


def _key_check(
    index_dir: Path, idx: store.IndexState | None, verified: list[VerifiedInput], rekey: bool
) -> str:
    """The linkage key check of the run: the index's, or (re-key, first run) the inputs'.

    Raises:
        ConfigError: a re-key without an index or without inputs under a new key.
        VerificationError: inputs under another linkage key than the index's.
        InputDataError: nothing to link and no index.
    """
    key_check = verified[0].manifest["key_check"] if verified else None
    if rekey and (idx is None or key_check is None or key_check == idx.key_check):
        raise ConfigError(
            "--rekey needs an existing index and inputs re-tokenised under a new linkage "
            "key (their key check must differ from the index's)"
        )
    if not rekey and idx is not None and key_check not in (None, idx.key_check):
        raise VerificationError(
            f"{index_dir / store.MANIFEST_NAME}: refused: a foreign index for these "
            "inputs: its key check differs from the inputs' (another linkage key; after a "
            "key rotation, re-key the index with --rekey and every controller's history)"
        )
    key_check = idx.key_check if idx and not rekey else key_check
    if key_check is None:
        raise InputDataError("no tokens given and no index to apply withdrawals to")
    return str(key_check)


def _delivery_number(idx: store.IndexState | None, delivery: int | None) -> int:
    """This run's delivery number: ``delivery``, or one more than the index's last.

    Raises:
        ConfigError: a number the index already holds or has passed.
    """
    last = max(idx.deliveries) if idx else 0
    number = delivery if delivery is not None else last + 1
    if number <= last:
        raise ConfigError(
            f"--delivery {number}: the index already holds deliveries up to {last}; a "
            "delivery number must be new and increasing"
        )
    return number


def _mode(
    idx: store.IndexState | None,
    *,
    rekey: bool,
    retrain: bool,
    threshold: float | None,
    exact_only: bool,
) -> str:
    """``full``, ``rekey``, ``retrain`` or ``incremental``.

    Raises:
        ConfigError: a new model asked of an incremental run.
    """
    mode = (
        "full" if idx is None else "rekey" if rekey else "retrain" if retrain else "incremental"
    )
    if mode == "incremental" and (threshold is not None or exact_only):
        raise ConfigError(
            "--threshold and --exact-only choose a new model: an incremental run scores "
            "with the stored model and threshold; add --retrain to train a new one"
        )
    return mode


def _series(manifest: dict[str, Any]) -> str:
    """The index's entry in the TTP's state file."""
    return f"person-index {manifest['index_id']}"


def _record_committed(
    state: str | Path | None, manifest: dict[str, Any], index_dir: Path, number: int
) -> None:
    """Remember in the TTP's state that ``number`` was committed to this index (and folder)."""
    if state is not None:
        for series in (_series(manifest), _folder_series(index_dir)):
            freshness.record_issued(Path(state), series, number, freshness.STATE_KIND)


def _folder_series(index_dir: Path) -> str:
    """The index folder's entry in the TTP's state file: a format-1 index has no index_id."""
    return f"person-index-folder {index_dir.resolve()}"


def _check_not_rolled_back(
    index_dir: Path, idx: store.IndexState | None, state: str | Path | None
) -> None:
    """Refuse an index older than the last delivery this TTP committed to it.

    A restored backup or a copied-back folder verifies (its files match its manifest) but has
    lost the deliveries since: linking on would re-issue their person ids and lose their id
    changes for the analysts. A format-1 index (no index_id: a backup from before the upgrade)
    is compared with the last delivery committed to its folder.
    """
    if state is None or idx is None:
        return
    series = _series(idx.manifest) if "index_id" in idx.manifest else _folder_series(index_dir)
    last = freshness.last_issued(Path(state), series, freshness.STATE_KIND)
    have = max(idx.deliveries)
    if have < last:
        raise VerificationError(
            f"{index_dir / store.MANIFEST_NAME}: refused: the index holds deliveries up to "
            f"{have}, but delivery {last} was committed to it (state {state}): it was rolled "
            "back to an older copy. Restore the latest backup, or re-link every delivery "
            "into a new index"
        )


def _relocate(result: IndexResult, out: Path) -> IndexResult:
    """The result with paths in ``out`` (the staged folder has been swapped in)."""
    result.out_dir = out
    result.maps = {d: out / p.name for d, p in result.maps.items()}
    result.id_changes = out / result.id_changes.name
    result.manifest = out / result.manifest.name
    return result


def _person_labels(
    be: Any,
    cur: _Current,
    kinds: dict[str, str],
    left: np.ndarray,
    right: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """Each record's person, ``0 .. k - 1``: connected components of the accepted edges, with
    records of different NINos or NHS numbers kept apart as a link's clustering keeps them
    (:func:`wmw_link.linkage.components.split_conflicts`; ids read from the loaded records,
    placeholders nulled). Ties in weight fall to the records' tokens, as in a link."""
    labels = persons.components(cur.n, left, right)
    ids = keep_apart_ids(kinds)
    if not ids or not len(left):
        return labels
    codes = []
    for col in ids:
        values = np.zeros(cur.n, dtype=np.int64)
        missing = np.ones(cur.n, dtype=bool)
        for ds in cur.tables:
            got = be.con.execute(
                f"SELECT unique_id, coalesce({col}, 0) AS v, {col} IS NULL AS m "
                f"FROM wmw_tokens_{ds}"
            ).fetchnumpy()
            at = np.asarray(got["unique_id"], dtype=np.int64)
            values[at] = np.asarray(got["v"], dtype=np.int64)
            missing[at] = np.asarray(got["m"], dtype=bool)
        codes.append((values, missing))
    keys = tie_key_columns(kinds)

    def keys_of(nodes: np.ndarray) -> list[np.ndarray]:
        # The same content keys as a link's clustering: ties fall alike in both.
        listed = ", ".join(map(str, nodes.tolist()))
        got = pd.concat(
            [
                be.con.execute(
                    f"SELECT t.unique_id AS node, '{ds}' AS source_dataset, "
                    f"CAST(t.unique_id AS VARCHAR) AS unique_id{key_columns_sql(keys, 't')} "
                    f"FROM wmw_tokens_{ds} t JOIN (SELECT unnest([{listed}]) AS node) s "
                    "ON s.node = t.unique_id"
                ).df()
                for ds in sorted(cur.tables)
            ]
        )
        return key_arrays(got.set_index("node").loc[nodes], len(keys))

    labels, refused = split_conflicts(labels, left, right, weight, codes, keys_of)
    if refused:
        log.info("persons: %d linked pair(s) not followed: they would join different %s", refused,
                 " or ".join(ids))  # fmt: skip
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _link(
    agreement: Agreement,
    state: store.IndexState | None,
    cur: _Current,
    verified: list[VerifiedInput],
    be: Any,
    stage: Path,
    index_dir: Path,
    *,
    mode: str,
    number: int,
    key_check: str,
    seed: int,
    threshold: float | None,
    exact_only: bool,
    report: bool,
    timings: dict[str, float],
    t_start: float,
) -> IndexResult:
    t0 = time.perf_counter()
    n = cur.n  # records
    if mode == "incremental":
        assert state is not None
        kinds = dict(state.model["token_kinds"])
        model = state.model
        sl, sr, sw = _stored_edges(state, cur)
        if cur.new_from < n:
            inputs = incremental.load(be, cur.tables, kinds, copy=False)
            scored = incremental.score_new(be, inputs, model, cur.new_from)
            left = np.concatenate([sl, scored.left])
            right = np.concatenate([sr, scored.right])
            weight = np.concatenate([sw, scored.weight])
            comparisons = scored.comparisons
            timings.update(scored.timings)
        else:  # withdrawals only: nothing new to score (records loaded for their ids)
            incremental.load(be, cur.tables, kinds, copy=False)
            left, right, weight, comparisons = sl, sr, sw, 0
        scored_full = None
    else:
        kinds = _kinds(verified, None if mode == "rekey" else state)
        inputs = incremental.load(be, cur.tables, kinds)
        scored_full = incremental.fit(
            be, inputs, kinds, seed=seed, n_records=n, threshold=threshold, exact_only=exact_only
        )
        model = {**scored_full.model, "trained_delivery": number}
        left, right, weight = scored_full.left, scored_full.right, scored_full.weight
        comparisons = scored_full.comparisons
        timings.update(scored_full.timings)
    timings["score"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = _person_labels(be, cur, kinds, left, right, weight)
    assigned = persons.assign(
        labels,
        cur.old_code,
        cur.old_ids,
        gone=cur.gone,
        corrected=cur.corrected,
        reason=mode if mode in ("retrain", "rekey") else None,
    )
    timings["persons"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    datasets = sorted(set(cur.tables) | (set(state.datasets) if state else set()))
    maps = _maps(cur, assigned, number, datasets)
    map_paths = write_maps(maps, stage)
    changes = persons.changes_table(assigned.changes, number)
    changes_path = stage / ID_CHANGES_NAME
    write_parquet_atomic(changes_path, changes)
    if report and scored_full is not None:
        from wmw_link.linkage.report import write_report

        cl = scored_full.clustering
        write_report(
            stage / "report", linker=cl.linker, predictions=cl.predictions,
            linkable=cl.linkable, maps={d: t.to_pandas() for d, t in maps.items()},
            points=cl.points, chosen_weight=cl.weight, method=cl.method,
            plan=scored_full.plan, comparisons=cl.comparisons, evidence_sql=cl.evidence_sql,
        )  # fmt: skip
    timings["write_outputs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    deliveries = [*(state.deliveries if state else []), number]
    n_persons = len(assigned.person_ids)
    generation = store.write_generation(
        index_dir,
        agreement,
        key_check=key_check,
        deliveries=deliveries,
        model=model,
        kept=cur.kept,
        new_segments={ds: pa.concat_tables(ts_, promote_options="default")
                      for ds, ts_ in cur.to_store.items()},
        persons=pa.Table.from_arrays([pa.array(cur.pos_rid), pa.array(assigned.person,
                                      pa.int32())], schema=store.PERSONS_SCHEMA),
        person_ids=pa.array(assigned.person_ids, pa.string()),
        edges=_edges_table(cur, left, right, weight),
        next_rid=cur.next_rid,
        index_id=state.manifest.get("index_id") if state else None,
        extra={"counts": {"records": n, "persons": n_persons, "edges": int(len(left))}},
    )
    index_manifest = index_dir / store.MANIFEST_NAME  # once committed
    timings["write_index"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    weight_t = float(model["threshold_match_weight"])
    manifest_path = stage / LINK_MANIFEST_NAME
    try:
        write_json_atomic(manifest_path, {
            "kind": "wmw-link/link-manifest",
            "tool_version": __version__,
            "agreement": {
                "id": agreement.id,
                "version": agreement.version,
                "hash": agreement.hash,
            },  # fmt: skip
            "backend": be.name,
            "seed": model.get("seed", seed),
            "model": model.get("model", "full"),
            "inputs": _inputs_entry(verified),
            "outputs": {
                d: {"name": p.name, "sha256": sha256_file(p), "rows": maps[d].num_rows}
                for d, p in map_paths.items()
            },
            "id_changes": {
                "name": ID_CHANGES_NAME,
                "sha256": sha256_file(changes_path),
                "rows": changes.num_rows,
            },  # fmt: skip
            "index": {
                "delivery": number,
                "mode": mode,
                "as_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "deliveries": deliveries,
                "model_trained_delivery": model.get("trained_delivery"),
            },
            "threshold": {
                "match_weight": weight_t,
                "match_probability": thr.weight_to_probability(weight_t),
                "method": model.get("threshold_method"),
                "household_rule": "a link needs forename, date-of-birth, NINo or NHS-number "
                "evidence; surname and address alone never link",
            },
            "counts": {
                "records": n,
                "new_records": int((cur.delivery == number).sum()),
                "corrected": cur.n_corrected,
                "withdrawn": cur.n_withdrawn,
                "withdrawals_unmatched": cur.n_unmatched,
                "persons": n_persons,
                "comparisons_scored": comparisons,
                "map_rows": sum(t.num_rows for t in maps.values()),
                "id_changes": changes.num_rows,
            },
            "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        })  # fmt: skip
    except BaseException:
        store.discard(generation)  # written, never to be committed
        raise
    return IndexResult(
        out_dir=stage, maps=map_paths, id_changes=changes_path, manifest=manifest_path,
        index_manifest=index_manifest, mode=mode, delivery=number, records=n,
        new_records=int((cur.delivery == number).sum()), corrected=cur.n_corrected,
        withdrawn=cur.n_withdrawn, persons=n_persons,
        map_rows=sum(t.num_rows for t in maps.values()), changes=changes.num_rows,
        comparisons=comparisons, threshold_match_weight=weight_t, timings=timings,
        generation=generation,
    )  # fmt: skip


def _kinds(verified: list[VerifiedInput], state: store.IndexState | None) -> dict[str, str]:
    kinds: dict[str, str] = dict(state.model["token_kinds"]) if state else {}
    for v in verified:
        for col, spec in v.token_columns.items():
            kinds[col] = spec["kind"]
    if state:  # token columns of datasets only in the index
        for seg in state.segments:
            for c in seg.table.column_names:
                if c not in store.SEGMENT_KEYS and c not in kinds:
                    spec = ts.BY_NAME.get(c)
                    if spec is not None:
                        kinds[c] = spec.kind
    return kinds


def _inputs_entry(verified: list[VerifiedInput]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in verified:
        entry = {
            "party": v.party,
            "tokens": {"name": v.tokens_path.name, "sha256": v.sha256, "rows": v.rows},
            "manifest": {"name": v.manifest_path.name, "sha256": sha256_file(v.manifest_path)},
            "key_check": v.manifest["key_check"],
        }
        if v.dataset in out:  # several input folders carry this dataset: keep them all
            first = out[v.dataset]
            first.setdefault("also", []).append(entry)
        else:
            out[v.dataset] = entry
    return out


__all__ = ["ID_CHANGES_NAME", "INDEX_MAP_SCHEMA", "IndexResult", "link_index", "read_inputs"]
