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

from wmw_link import token_schema as ts
from wmw_link._version import __version__
from wmw_link.agreement import Agreement, Role
from wmw_link.errors import ConfigError, InputDataError, VerificationError
from wmw_link.files import restrict_tree, sha256_file, write_json_atomic, write_parquet_atomic
from wmw_link.linkage import threshold as thr
from wmw_link.linkage.backends import open_backend
from wmw_link.linkage.index import incremental, persons, store
from wmw_link.linkage.maps import write_maps
from wmw_link.linkage.run import LINK_MANIFEST_NAME, link_output_names
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
    """Every record of this run, old (kept) first, then new; position = Splink unique_id."""

    ds_names: list[str]  # datasets, sorted
    ds_code: np.ndarray  # int32: each record's dataset, an index into ds_names
    row_ref: pa.Array  # string
    old_pid: np.ndarray  # object, None for records new to the index
    delivery: np.ndarray  # int32
    tokens: dict[str, pa.Table]  # dataset -> gid + token columns (of that dataset)
    new_from: int
    corrected_persons: set[str]
    gone: dict[str, int]  # withdrawn records' old person id -> count
    n_corrected: int
    n_withdrawn: int  # index records removed
    n_unmatched: int  # withdrawn row refs that matched no record (index or this delivery)

    def datasets(self, positions: np.ndarray) -> pa.Array:
        """The dataset names of the records at ``positions``."""
        return pa.array(self.ds_names, pa.string()).take(pa.array(self.ds_code[positions]))


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
    old = state.records if state else {}
    parts_old, parts_new = [], []
    corrected_persons: set[str] = set()
    gone: dict[str, int] = {}
    n_corr = n_wd = unmatched = 0
    for ds in sorted(set(old) | set(new)):
        wd = pa.array(sorted(withdrawn.get(ds, ())), pa.string())
        o = old.get(ds)
        n = new.get(ds)
        matched: set[str] = set()
        if n is not None and len(wd):
            drop = pc.is_in(n["row_ref"], value_set=wd)
            matched.update(n.filter(drop)["row_ref"].to_pylist())
            n = _without(n, drop)
        if o is not None:
            if len(wd):
                out = pc.is_in(o["row_ref"], value_set=wd)
                for pid in o.filter(out)["person_id"].to_pylist():
                    gone[pid] = gone.get(pid, 0) + 1
                matched.update(o.filter(out)["row_ref"].to_pylist())
                n_wd += int(pc.sum(out).as_py() or 0)
                o = _without(o, out)
            resent = (
                pc.is_in(o["row_ref"], value_set=n["row_ref"].combine_chunks())
                if n is not None
                else pa.array(np.zeros(o.num_rows, dtype=bool))
            )
            corr = o.filter(resent)
            corrected_persons.update(corr["person_id"].to_pylist())
            n_corr += corr.num_rows
            n_del = np.full(n.num_rows if n is not None else 0, delivery, dtype=np.int32)
            if n is not None and corr.num_rows:
                # The re-sent row takes its former person id into the reconciliation.
                refs = n["row_ref"].to_pylist()
                before = dict(zip(corr["row_ref"].to_pylist(), corr["person_id"].to_pylist(),
                                  strict=True))  # fmt: skip
                n_old = np.array([before.get(r) for r in refs], dtype=object)
                if rekey:  # the same records under a new key: they keep their delivery
                    when = dict(zip(corr["row_ref"].to_pylist(), corr["delivery"].to_pylist(),
                                    strict=True))  # fmt: skip
                    n_del = np.array([when.get(r, delivery) for r in refs], dtype=np.int32)
            else:
                n_old = np.full(n.num_rows if n is not None else 0, None, dtype=object)
            if rekey and corr.num_rows < o.num_rows:
                raise VerificationError(
                    f"dataset '{ds}': {o.num_rows - corr.num_rows} index record(s) were not "
                    "re-sent under the new linkage key; a re-key needs every controller's whole "
                    "history re-tokenised (tokens under the old key cannot be compared)"
                )
            o = _without(o, resent)
            parts_old.append((ds, o, o["person_id"].to_numpy(zero_copy_only=False).astype(object),
                              o["delivery"].to_numpy()))  # fmt: skip
        else:
            n_old = np.full(n.num_rows if n is not None else 0, None, dtype=object)
            n_del = np.full(n.num_rows if n is not None else 0, delivery, dtype=np.int32)
        if n is not None:
            parts_new.append((ds, n, n_old, n_del))
        unmatched += len(withdrawn.get(ds, ())) - len(matched)
    new_from = sum(p[1].num_rows for p in parts_old)
    tables: dict[str, list[pa.Table]] = {}
    names = sorted(set(old) | set(new))
    ds_col, ref_col, pid_col, del_col = [], [], [], []
    pos = 0
    for ds, t, pids, dels in [*parts_old, *parts_new]:
        tok = t.drop_columns([c for c in store.RECORD_KEYS if c in t.column_names and
                              c != "row_ref"])  # fmt: skip
        tok = tok.drop_columns(["row_ref"]).append_column(
            "gid", pa.array(np.arange(pos, pos + t.num_rows, dtype=np.int64))
        )
        tables.setdefault(ds, []).append(tok)
        ds_col.append(np.full(t.num_rows, names.index(ds), dtype=np.int32))
        ref_col.extend(t["row_ref"].cast(pa.string()).chunks)
        pid_col.append(pids)
        del_col.append(np.asarray(dels, dtype=np.int32))
        pos += t.num_rows
    if pos == 0:
        raise InputDataError("no records to link: the index is empty and no tokens were given")

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    return _Current(
        ds_names=names,
        ds_code=cat(ds_col, np.int32),
        row_ref=pa.chunked_array(ref_col, pa.string()).combine_chunks(),
        old_pid=cat(pid_col, object),
        delivery=cat(del_col, np.int32),
        tokens={ds: pa.concat_tables(ts_, promote_options="default") for ds, ts_ in tables.items()},
        new_from=new_from,
        corrected_persons=corrected_persons,
        gone=gone,
        n_corrected=n_corr,
        n_withdrawn=n_wd,
        n_unmatched=unmatched
        + sum(len(v) for k, v in withdrawn.items() if k not in old and k not in new),  # fmt: skip
    )


def _keys(ds: Any, refs: Any) -> pa.Array:
    """``dataset <US> row_ref`` keys, for hash lookups of (dataset, row_ref) pairs."""

    def arr(v: Any) -> pa.Array:
        if isinstance(v, pa.ChunkedArray):
            return v.combine_chunks()
        return v if isinstance(v, pa.Array) else pa.array(v, pa.string())

    return pc.binary_join_element_wise(arr(ds), arr(refs), "\x1f")


def _stored_edges(state: store.IndexState, cur: _Current) -> tuple[np.ndarray, ...]:
    """The stored accepted edges between records still in the index and not re-sent."""
    e = state.edges
    if e.num_rows == 0 or cur.new_from == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    kept = _keys(cur.datasets(np.arange(cur.new_from)), cur.row_ref.slice(0, cur.new_from))
    li = pc.index_in(_keys(e["dataset_l"], e["row_ref_l"]), value_set=kept)
    ri = pc.index_in(_keys(e["dataset_r"], e["row_ref_r"]), value_set=kept)
    ok = pc.and_(pc.is_valid(li), pc.is_valid(ri))
    return (
        pc.filter(li, ok).to_numpy().astype(np.int64),
        pc.filter(ri, ok).to_numpy().astype(np.int64),
        pc.filter(e["match_weight"], ok).to_numpy(),
    )


def _edges_table(cur: _Current, left: np.ndarray, right: np.ndarray, w: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays(
        [
            cur.datasets(left),
            cur.row_ref.take(pa.array(left)),
            cur.datasets(right),
            cur.row_ref.take(pa.array(right)),
            pa.array(w, pa.float64()),
        ],
        schema=store.EDGE_SCHEMA,
    )


def _records_tables(cur: _Current, person_ids: np.ndarray) -> dict[str, pa.Table]:
    """Per dataset: row_ref, person_id, delivery, then the dataset's token columns."""
    out = {}
    for ds, tok in cur.tokens.items():
        gid = tok["gid"].to_numpy()
        cols = [c for c in tok.column_names if c != "gid"]
        out[ds] = pa.Table.from_arrays(
            [
                cur.row_ref.take(pa.array(gid)),
                pa.array(person_ids[gid], pa.string()),
                pa.array(cur.delivery[gid], pa.int32()),
                *[tok[c] for c in cols],
            ],
            names=[*store.RECORD_KEYS, *cols],
        )
    return out


def _maps(
    cur: _Current,
    person_ids: np.ndarray,
    delivery: int,
    datasets: Sequence[str],
    changed_ids: set[str],
) -> dict[str, pa.Table]:
    """This delivery's records, and every record of a person an id change names as old.

    That includes every record whose id changed, and also the records of a split person that
    kept its id: analysts apply ``old -> new`` to all earlier rows, then this run's map rows,
    so the rows of every record of a changed person must be here to come out right.
    """
    touched = pd.Series(cur.old_pid, dtype=object).isin(changed_ids).to_numpy()
    rows = (cur.delivery == delivery) | touched
    out = {}
    for ds in datasets:
        code = cur.ds_names.index(ds) if ds in cur.ds_names else -1
        sel = np.flatnonzero(rows & (cur.ds_code == code))
        out[ds] = pa.Table.from_arrays(
            [
                cur.row_ref.take(pa.array(sel, pa.int64())),
                pa.array(person_ids[sel], pa.string()),
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

    Raises:
        VerificationError: an input, withdrawal list or the index failed verification
            (corrupted, foreign, newer format, another linkage key).
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
        state = store.read_index(agreement, index_dir) if store.exists(index_dir) else None
        store.remove_stale(index_dir, keep=state.manifest["generation"] if state else None)
        key_check = verified[0].manifest["key_check"] if verified else None
        if rekey and (state is None or key_check is None or key_check == state.key_check):
            raise ConfigError(
                "--rekey needs an existing index and inputs re-tokenised under a new linkage "
                "key (their key check must differ from the index's)"
            )
        if not rekey and state is not None and key_check not in (None, state.key_check):
            raise VerificationError(
                f"{index_dir / store.MANIFEST_NAME}: refused: a foreign index for these "
                "inputs: its key check differs from the inputs' (another linkage key; after a "
                "key rotation, re-key the index with --rekey and every controller's history)"
            )
        key_check = state.key_check if state and not rekey else key_check
        if key_check is None:
            raise InputDataError("no tokens given and no index to apply withdrawals to")
        last = max(state.deliveries) if state else 0
        number = delivery if delivery is not None else last + 1
        if number <= last:
            raise ConfigError(
                f"--delivery {number}: the index already holds deliveries up to {last}; a "
                "delivery number must be new and increasing"
            )
        withdrawn = _read_withdrawals(agreement, withdrawals, keyring)
        unknown = sorted(set(withdrawn) - {d.id for d in agreement.datasets})
        if unknown:
            raise VerificationError(f"withdrawals for dataset '{unknown[0]}', not in agreement "
                                    f"{agreement.id}")  # fmt: skip
        cur = _current(state, new, withdrawn, number, rekey=rekey)
        mode = (
            "full" if state is None else "rekey" if rekey else "retrain" if retrain
            else "incremental"
        )  # fmt: skip
        if mode == "incremental" and (threshold is not None or exact_only):
            raise ConfigError(
                "--threshold and --exact-only choose a new model: an incremental run scores "
                "with the stored model and threshold; add --retrain to train a new one"
            )
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
                        agreement, state, cur, verified, be, stage, index_dir,
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
            shutil.rmtree(out, ignore_errors=True)
            raise
    restrict_tree(out)
    return _relocate(result, out)


def _relocate(result: IndexResult, out: Path) -> IndexResult:
    """The result with paths in ``out`` (the staged folder has been swapped in)."""
    result.out_dir = out
    result.maps = {d: out / p.name for d, p in result.maps.items()}
    result.id_changes = out / result.id_changes.name
    result.manifest = out / result.manifest.name
    return result


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
    n = len(cur.row_ref)  # records
    if mode == "incremental":
        assert state is not None
        kinds = dict(state.model["token_kinds"])
        model = state.model
        sl, sr, sw = _stored_edges(state, cur)
        if cur.new_from < n:
            inputs = incremental.load(be, cur.tokens, kinds, copy=False)
            scored = incremental.score_new(be, inputs, model, cur.new_from)
            left = np.concatenate([sl, scored.left])
            right = np.concatenate([sr, scored.right])
            weight = np.concatenate([sw, scored.weight])
            comparisons = scored.comparisons
            timings.update(scored.timings)
        else:  # withdrawals only: nothing new to score
            left, right, weight, comparisons = sl, sr, sw, 0
        scored_full = None
    else:
        kinds = _kinds(verified, None if mode == "rekey" else state)
        inputs = incremental.load(be, cur.tokens, kinds)
        scored_full = incremental.fit(
            be, inputs, kinds, seed=seed, n_records=n, threshold=threshold, exact_only=exact_only
        )
        model = {**scored_full.model, "trained_delivery": number}
        left, right, weight = scored_full.left, scored_full.right, scored_full.weight
        comparisons = scored_full.comparisons
        timings.update(scored_full.timings)
    timings["score"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = persons.components(n, left, right)
    assigned = persons.assign(
        labels,
        cur.old_pid,
        gone=cur.gone,
        corrected_persons=cur.corrected_persons,
        reason=mode if mode in ("retrain", "rekey") else None,
    )
    pids = assigned.person_ids
    timings["persons"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    datasets = sorted(set(cur.tokens) | (set(state.records) if state else set()))
    old_named = set(assigned.changes["old_person_id"].dropna())
    maps = _maps(cur, pids, number, datasets, old_named)
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
    n_persons = len(pd.unique(pids)) if n else 0
    generation = store.write_generation(
        index_dir,
        agreement,
        key_check=key_check,
        deliveries=deliveries,
        model=model,
        records=_records_tables(cur, pids),
        edges=_edges_table(cur, left, right, weight),
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
        for t in state.records.values():
            for c in t.column_names:
                if c not in store.RECORD_KEYS and c not in kinds:
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
