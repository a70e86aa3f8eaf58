"""Journeys over refreshes: several payload deliveries and link runs, applied in order.

Partners deliver every month and the TTP links each delivery against its person index
(``link --index``), so an analyst holds one payload folder per delivery and one maps folder per
link run. :func:`accumulate` turns them into the one payload table and one map per dataset that
:func:`~wmw_link.journeys.build.build_journeys` joins, with these rules:

* **matching**: each payload manifest is matched to the maps folder whose ``link-manifest.json``
  linked its tokens (the tokens SHA-256, as for one folder); a payload no maps folder linked is
  refused, and so is every check a single folder gets (manifests, hashes, agreement, tokens);
* **order**: maps folders are applied in delivery order (``index.delivery`` of the link
  manifest; two folders for one delivery are refused). A link output without an index is a
  full re-link with its own person ids: it must come alone; so must a ``full`` index run come
  first (a new index, e.g. after a key rotation, gives everyone new ids), and no run of the
  index may be missing between the first and the last (``index.deliveries``);
* **maps**: a later map row for a row ref replaces earlier ones; the ``id-changes.parquet`` of a
  later run (listed, with its SHA-256, in its link manifest) moves earlier rows from
  ``old_person_id`` to ``new_person_id``, and a null new id drops the person's rows. A change
  that moves only *some* of a person's records (a split, or one old id with several new ones, or
  an old id that still holds records after the run) is not applied to every earlier row: the
  later run's map lists each record that moved, and those rows say where each one went;
* **payloads**: a row re-sent in a later delivery (same dataset and row ref) replaces the earlier
  one (payload folders in the order of their maps folders, then the manifest's delivery number);
* **withdrawals**: every row ref a withdrawal list names is dropped from payloads and maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wmw_link.agreement import Agreement
from wmw_link.errors import InputDataError, VerificationError
from wmw_link.files import sha256_file
from wmw_link.journeys.inputs import (
    LINK_MANIFEST,
    MANIFEST_SUFFIX,
    MAP_SUFFIX,
    PAYLOAD_SUFFIX,
    _check_payload_columns,
    _Inputs,
    _load_dir,
)

ID_CHANGES = "id-changes.parquet"
_MAP_SCHEMA = pa.schema([("row_ref", pa.string()), ("person_id", pa.string())])


@dataclass
class _Run:
    """One maps folder: its maps, link manifest, index section and id changes."""

    directory: Path
    maps: _Inputs
    index: dict[str, Any] | None
    changes: pa.Table | None = None
    changes_path: Path | None = None

    @property
    def delivery(self) -> int | None:
        return self.index.get("delivery") if self.index else None

    def describe(self) -> dict[str, Any]:
        idx = self.index or {}
        return {
            "delivery": idx.get("delivery"),
            "as_at": idx.get("as_at"),
            "mode": idx.get("mode", "full"),
            "deliveries": idx.get("deliveries"),
            "maps": str(self.directory),
            "id_changes": self.changes.num_rows if self.changes is not None else 0,
        }


@dataclass
class Accumulated:
    """Payloads and maps after every refresh, ready to join, and what was applied."""

    payloads: _Inputs
    maps: _Inputs
    refreshes: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)  # every file read, for the manifest
    # Row refs of persons an id change removed (null new id), per dataset.
    dropped_refs: dict[str, list[pa.ChunkedArray]] = field(default_factory=dict)


def refresh_of(link_manifest: dict[str, Any] | None, directory: Path | None) -> dict[str, Any]:
    """What a single maps folder says about its refresh (delivery, as_at, mode)."""
    idx = (link_manifest or {}).get("index") or {}
    return {
        "delivery": idx.get("delivery"),
        "as_at": idx.get("as_at"),
        "mode": idx.get("mode", "full"),
        "deliveries": idx.get("deliveries"),
        "maps": str(directory) if directory else None,
        "id_changes": 0,
    }


def _linked_tokens(link_man: dict[str, Any], ds_id: str) -> set[str]:
    """Every tokens SHA-256 a link run read for ``ds_id`` (several input folders: ``also``)."""
    entry = (link_man.get("inputs") or {}).get(ds_id)
    entries = [entry] if isinstance(entry, dict) else list(entry or [])
    if isinstance(entry, dict):
        entries += list(entry.get("also") or [])
    return {
        e["tokens"]["sha256"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("tokens"), dict) and e["tokens"].get("sha256")
    }


def _load_run(agreement: Agreement, directory: Path) -> _Run:
    maps = _load_dir(agreement, directory, MAP_SUFFIX, "map", False)
    man, link_path = maps.link_manifest or {}, maps.link_path
    index = man.get("index") if isinstance(man.get("index"), dict) else None
    run = _Run(directory, maps, index)
    if index is not None and not isinstance(index.get("delivery"), int):
        raise VerificationError(f"{link_path}: index.delivery is not a delivery number")
    listed = man.get("id_changes")
    path = directory / ID_CHANGES
    if isinstance(listed, dict):
        if not path.is_file():
            raise VerificationError(f"{path}: not found; {LINK_MANIFEST} lists it")
        if listed.get("sha256") != sha256_file(path):
            raise VerificationError(
                f"{path}: SHA-256 differs from {LINK_MANIFEST}; the id changes come from another "
                "linkage run, or were altered"
            )
        try:
            t = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as e:
            raise InputDataError(
                f"{path}: not a readable Parquet file ({type(e).__name__})"
            ) from None
        missing = [c for c in ("old_person_id", "new_person_id") if c not in t.column_names]
        if missing:
            raise InputDataError(f"{path}: lacks column(s) {', '.join(missing)}")
        run.changes = t.select(["old_person_id", "new_person_id"]).cast(
            pa.schema([("old_person_id", pa.string()), ("new_person_id", pa.string())])
        )
        run.changes_path = path
    elif path.exists():
        raise VerificationError(
            f"{path}: not listed in {LINK_MANIFEST}; id changes left from another linkage run? "
            "Remove this file"
        )
    return run


def _order_runs(runs: list[_Run]) -> list[_Run]:
    plain = [r for r in runs if r.index is None]
    if plain and len(runs) > 1:
        raise InputDataError(
            f"{plain[0].directory}: a link output without a person index is a full re-link with "
            "its own person ids; give it as the only --maps folder, or give only the link "
            "outputs of one person index (link --index)"
        )
    seen: dict[int, Path] = {}
    for r in runs:
        d = r.delivery
        if d is not None and d in seen:
            raise InputDataError(
                f"{r.directory} and {seen[d]}: two maps folders for delivery {d}; give each link "
                "run once"
            )
        if d is not None:
            seen[d] = r.directory
    ordered = sorted(runs, key=lambda r: r.delivery or 0)
    for r in ordered[1:]:
        if (r.index or {}).get("mode") == "full":
            # A full run is a new index's first: its person ids are new for everyone, and the
            # earlier runs' ids mean nothing in it (rows left under them would count twice).
            raise InputDataError(
                f"{r.directory}: the link run of delivery {r.delivery} is a full run (a new "
                "person index, with new ids for everyone) but comes after other link runs; "
                "give it and the later runs of its index only"
            )
    _require_every_run(ordered)
    return ordered


def _require_every_run(ordered: list[_Run]) -> None:
    """Refuse a gap: the last run's ``index.deliveries`` names every run of its index, and each
    one from the first given on must be here (a missing run's id changes would be lost)."""
    if len(ordered) < 2 or ordered[-1].index is None:
        return
    listed = ordered[-1].index.get("deliveries")
    if not isinstance(listed, list) or not all(isinstance(d, int) for d in listed):
        return  # an older link manifest: nothing to check against
    first = ordered[0].delivery or 0
    given = {r.delivery for r in ordered}
    missing = [d for d in listed if d >= first and d not in given]
    if missing:
        raise InputDataError(
            f"{ordered[-1].directory}: the person index linked delivery {missing[0]} between "
            f"these link runs, but no --maps folder of delivery {missing[0]} is given; its id "
            "changes would be lost (give the maps of every link run, in any order)"
        )


def _applicable(run: _Run) -> tuple[dict[str, str], set[str], int]:
    """The id changes that move *every* earlier row of a person: (old -> new, dropped, partial)."""
    if run.changes is None or run.changes.num_rows == 0:
        return {}, set(), 0
    old = run.changes.column("old_person_id").to_pylist()
    new = run.changes.column("new_person_id").to_pylist()
    still = {p for p in new if p is not None}
    for t in run.maps.tables.values():
        if "person_id" in t.column_names:
            still |= set(pc.unique(t.column("person_id").cast(pa.string())).to_pylist())
    counts: dict[str, int] = {}
    for o in old:
        counts[o] = counts.get(o, 0) + 1
    moves: dict[str, str] = {}
    dropped: set[str] = set()
    partial = 0
    for o, n in zip(old, new, strict=True):
        if o is None:
            continue
        if counts[o] > 1 or o in still:  # a split: the run's map rows say where each went
            partial += 1
        elif n is None:
            dropped.add(o)
        else:
            moves[o] = n
    return moves, dropped, partial


def _without(table: pa.Table, refs: pa.Array | pa.ChunkedArray) -> pa.Table:
    if table.num_rows == 0 or len(refs) == 0:
        return table
    return table.filter(pc.invert(pc.is_in(table.column("row_ref"), value_set=refs)))


def _map_table(t: pa.Table, where: str) -> pa.Table:
    missing = [c for c in ("row_ref", "person_id") if c not in t.column_names]
    if missing:
        raise InputDataError(f"{where}: lacks column(s) {', '.join(missing)}")
    return t.select(["row_ref", "person_id"]).cast(_MAP_SCHEMA)


def _apply_changes(maps: dict[str, pa.Table], run: _Run, acc: Accumulated) -> set[str]:
    """Move earlier rows by the run's id changes; return the persons dropped (null new id)."""
    moves, dropped, partial = _applicable(run)
    acc.counts["id_changes_partial"] = acc.counts.get("id_changes_partial", 0) + partial
    if not moves and not dropped:
        return dropped
    keys = pa.array(list(moves), pa.string())
    values = pa.array(list(moves.values()), pa.string())
    gone = pa.array(sorted(dropped), pa.string())
    for ds, t in maps.items():
        pid = t.column("person_id")
        pos = pc.index_in(pid, value_set=keys)
        hit = pc.is_valid(pos)
        n_moved = pc.sum(hit).as_py() or 0
        if n_moved:
            moved = pc.take(values, pc.fill_null(pos, 0))
            t = t.set_column(1, "person_id", pc.if_else(hit, moved, pid))
            acc.counts["rows_moved_by_id_changes"] = (
                acc.counts.get("rows_moved_by_id_changes", 0) + n_moved
            )
        if len(gone):
            drop = pc.is_in(t.column("person_id"), value_set=gone)
            acc.counts["rows_dropped_by_id_changes"] = acc.counts.get(
                "rows_dropped_by_id_changes", 0
            ) + (pc.sum(drop).as_py() or 0)
            acc.dropped_refs.setdefault(ds, []).append(t.filter(drop).column("row_ref"))
            t = t.filter(pc.invert(drop))
        maps[ds] = t
    return dropped


def _payload_key(pay: _Inputs, ds_id: str, runs: list[_Run], position: int) -> tuple[int, int, int]:
    """The run that linked this payload (its order), then the manifest's delivery number."""
    man = pay.manifests.get(ds_id)
    where = pay.paths[ds_id]
    if man is None:
        raise VerificationError(
            f"{where}: no manifest beside it; payloads of several deliveries are matched to "
            "their link runs by the tokens SHA-256 their manifests record"
        )
    want = ((man.get("files") or {}).get("tokens") or {}).get("sha256")
    if not want:
        raise VerificationError(
            f"{where.with_name(ds_id + MANIFEST_SUFFIX)}: records no files.tokens.sha256, so the "
            f"payload of {ds_id} cannot be matched to the linkage run that made its map"
        )
    for i, run in enumerate(runs):
        if run.maps.link_manifest and want in _linked_tokens(run.maps.link_manifest, ds_id):
            number = man.get("delivery")
            return i, number if isinstance(number, int) else 0, position
    raise VerificationError(
        f"{where}: no --maps folder linked these {ds_id} tokens (no {LINK_MANIFEST} lists the "
        f"tokens SHA-256 its manifest records); give the maps of the link run of every delivery"
    )


def read_withdrawal_lists(
    agreement: Agreement, paths: Sequence[str | Path], keyring: Any = None
) -> tuple[dict[str, pa.Array], list[dict[str, Any]]]:
    """Dataset -> withdrawn row refs from verified withdrawal lists, and what each list was.

    The call site of :func:`wmw_link.withdrawals.read_withdrawals` (docs/withdrawals.md): it
    verifies each list (manifest, SHA-256, agreement, and with a keyring the controller's
    signature) and raises the library's errors with the file and rule named.
    """
    if not paths:
        return {}, []
    from wmw_link.withdrawals import read_withdrawals

    refs: dict[str, list[pa.Array]] = {}
    info: list[dict[str, Any]] = []
    for p in paths:
        w = read_withdrawals(agreement, p, keyring=keyring)
        refs.setdefault(w.dataset, []).append(pa.array(w.row_refs, pa.string()))
        info.append(
            {
                "dataset": w.dataset,
                "file": str(p),
                "rows": len(w.row_refs),
                "sha256": w.manifest.get("sha256")
                or ((w.manifest.get("files") or {}).get("withdrawals") or {}).get("sha256"),
                "delivery": w.manifest.get("delivery"),
                "created": w.manifest.get("created"),
                "signed": w.manifest.get("signature") is not None,
                "signature_checked": keyring is not None,
            }
        )
    return {ds: pa.concat_arrays(parts) for ds, parts in refs.items()}, info


def _accumulate_maps(runs: list[_Run], acc: Accumulated) -> dict[str, pa.Table]:
    """The maps after every run: id changes applied to earlier rows, later rows replacing."""
    maps: dict[str, pa.Table] = {}
    for run in runs:
        _apply_changes(maps, run, acc)
        for ds_id, t in run.maps.tables.items():
            later = _map_table(t, str(run.maps.paths.get(ds_id, ds_id)))
            later = later.filter(pc.is_valid(later.column("person_id")))
            earlier = maps.get(ds_id)
            maps[ds_id] = (
                later
                if earlier is None
                else pa.concat_tables([_without(earlier, later.column("row_ref")), later])
            )
        acc.refreshes.append(run.describe())
        acc.inputs += [*run.maps.paths.values()]
        acc.inputs += [p for p in (run.maps.link_path, run.changes_path) if p is not None]
    return maps


def _accumulate_payloads(
    pays: list[_Inputs], runs: list[_Run], acc: Accumulated
) -> dict[str, pa.Table]:
    """Each dataset's payload rows: a later delivery's row replaces one with its row ref."""
    parts: dict[str, list[tuple[tuple[int, int, int], pa.Table]]] = {}
    for position, pay in enumerate(pays):
        for ds_id, t in pay.tables.items():
            key = _payload_key(pay, ds_id, runs, position)
            parts.setdefault(ds_id, []).append((key, t))
            acc.inputs.append(pay.paths[ds_id])
            acc.inputs.append(pay.paths[ds_id].with_name(ds_id + MANIFEST_SUFFIX))
    payloads: dict[str, pa.Table] = {}
    resent = 0
    for ds_id, items in parts.items():
        items.sort(key=lambda kv: kv[0])
        out = items[0][1]
        for _, t in items[1:]:
            before = out.num_rows
            out = _without(out, t.column("row_ref"))
            resent += before - out.num_rows
            out = pa.concat_tables([out, t], promote_options="default")
        payloads[ds_id] = out
    acc.counts["payload_rows_replaced_by_later_deliveries"] = resent
    return payloads


def accumulate_maps(agreement: Agreement, map_dirs: Sequence[str | Path]) -> dict[str, pa.Table]:
    """Each dataset's map (row_ref, person_id) after every link run, applied in delivery order
    with their id changes: the person of every record as of the last refresh."""
    acc = Accumulated(_Inputs({}), _Inputs({}))
    return _accumulate_maps(_order_runs([_load_run(agreement, Path(d)) for d in map_dirs]), acc)


def accumulate(
    agreement: Agreement,
    payload_dirs: Sequence[str | Path],
    map_dirs: Sequence[str | Path],
    *,
    withdrawals: Sequence[str | Path] = (),
    keyring: Any = None,
    require_manifests: bool = True,
) -> Accumulated:
    """Apply refreshes in delivery order (module docstring): payloads and maps to join.

    Raises:
        InputDataError: a folder is missing, two maps folders are for one delivery, a plain
            link output is mixed with index outputs.
        VerificationError: a payload no maps folder linked, a map, link manifest or id-changes
            file that does not match, a withdrawal list that fails its checks.
        PolicyError: the single-folder rules (tokens, withheld fields, agreement).
    """
    runs = _order_runs([_load_run(agreement, Path(d)) for d in map_dirs])
    pays = [
        _load_dir(agreement, Path(d), PAYLOAD_SUFFIX, "payload", require_manifests)
        for d in payload_dirs
    ]
    withdrawn, w_info = read_withdrawal_lists(agreement, withdrawals, keyring)
    acc = Accumulated(_Inputs({}), _Inputs({}), withdrawals=w_info)
    for d, pay in zip(payload_dirs, pays, strict=True):
        if not pay.tables:
            raise InputDataError(f"{d}: no *{PAYLOAD_SUFFIX} files")
        for ds_id, t in pay.tables.items():  # checked file by file, before any is combined
            _check_payload_columns(agreement.dataset(ds_id), str(pay.paths[ds_id]), t.column_names)

    maps = _accumulate_maps(runs, acc)
    payloads = _accumulate_payloads(pays, runs, acc)

    # Persons an id change removed, then withdrawals: gone from payloads and maps alike.
    for ds_id, refs in acc.dropped_refs.items():
        if ds_id in payloads:
            payloads[ds_id] = _without(payloads[ds_id], pa.chunked_array(refs, pa.string()))
    n_withdrawn = 0
    for ds_id, refs in withdrawn.items():
        if ds_id in payloads:
            before = payloads[ds_id].num_rows
            payloads[ds_id] = _without(payloads[ds_id], refs)
            n_withdrawn += before - payloads[ds_id].num_rows
        if ds_id in maps:
            maps[ds_id] = _without(maps[ds_id], refs)
    acc.counts["payload_rows_withdrawn"] = n_withdrawn
    for info in acc.withdrawals:
        acc.inputs.append(Path(info["file"]))
    acc.payloads = _Inputs(payloads, {ds: Path(f"{ds}{PAYLOAD_SUFFIX} (all deliveries)")
                                      for ds in payloads})  # fmt: skip
    acc.maps = _Inputs(maps, {ds: Path(f"{ds}{MAP_SUFFIX} (all link runs)") for ds in maps})
    return acc
