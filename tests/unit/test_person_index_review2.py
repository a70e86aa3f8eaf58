"""Adversarial review of the person index's storage format 2: segments listed again by later
generations, compaction, withdrawals, crash recovery, verification and rollback detection."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from index_fixtures import only_listed_files, rekeyed, resend, split, withdrawal
from linkage_fixtures import write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import VerificationError
from wmw_link.linkage.index import link_index, store

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture(scope="module")
def two(agreement: Agreement, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two deliveries of a small fixture; the index after the first (``snap1``)."""
    base = tmp_path_factory.mktemp("review2")
    write_fixture(agreement, base / "all", n_households=25, seed=7)
    folders = split(base / "all", base / "deliveries", 2)
    link_index(agreement, [folders[0]], base / "snap1", base / "out1", seed=1, report=False)
    return {"base": base, "folders": folders, "snap1": base / "snap1"}


def _clone(src: Path, tmp_path: Path, name: str = "index") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _live(idx: Path, agreement: Agreement, ds: str) -> list[str]:
    return store.read_index(agreement, idx).records[ds]["row_ref"].to_pylist()


def _traces(idx: Path, ref: str) -> list[str]:
    """Every file under the index holding ``ref`` (as a row_ref value, or its bytes)."""
    found = []
    for f in sorted(idx.rglob("*")):
        if not f.is_file():
            continue
        if ref.encode() in f.read_bytes():
            found.append(f.relative_to(idx).as_posix())
        elif f.suffix == ".parquet":
            t = pq.read_table(f)
            if "row_ref" in t.column_names and ref in t["row_ref"].to_pylist():
                found.append(f.relative_to(idx).as_posix())
    return found


def test_a_withdrawn_record_corrected_earlier_leaves_no_trace(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """A record re-sent in delivery 2 keeps its first version in delivery 1's segment (not
    compacted: most of that segment is still in the index). Withdrawing it in delivery 3 must
    remove that earlier version too: docs say no withdrawn token stays on disk."""
    idx = _clone(two["snap1"], tmp_path)
    ds = "hmrc_rti"
    ref = _live(idx, agreement, ds)[0]
    resend(two["folders"][0], tmp_path / "d2", ds, [ref], [ref])
    link_index(agreement, [tmp_path / "d2"], idx, tmp_path / "o2", seed=1, report=False)
    assert len(_traces(idx, ref)) == 2  # the first version and the correction
    r = link_index(agreement, [], idx, tmp_path / "o3", withdrawals=[withdrawal(ds, [ref])],
                   seed=1, report=False)  # fmt: skip
    assert r.withdrawn == 1
    assert ref not in _live(idx, agreement, ds)
    assert _traces(idx, ref) == []
    assert only_listed_files(idx)


def _generation(idx: Path) -> str:
    return str(json.loads((idx / store.MANIFEST_NAME).read_text())["generation"])


def test_a_crash_between_commit_and_clean_up_does_not_brick_the_index(
    two: dict, agreement: Agreement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A withdrawal rewrites delivery 1's segment of one dataset into the new generation; the
    first generation's folder stays (its other segments are listed). If the process dies after
    the manifest is replaced but before the clean-up, the old segment file is left, unlisted,
    in a folder the manifest uses: the next run must clean it up, not refuse the index."""
    idx = _clone(two["snap1"], tmp_path)
    ds = "hmrc_rti"
    ref = _live(idx, agreement, ds)[0]
    gen1 = _generation(idx)
    monkeypatch.setattr(store, "remove_stale", lambda *a, **k: None)  # the power cut
    link_index(agreement, [], idx, tmp_path / "o2", withdrawals=[withdrawal(ds, [ref])],
               seed=1, report=False)  # fmt: skip
    monkeypatch.undo()
    assert _generation(idx) != gen1
    assert (idx / gen1 / store.RECORDS_DIR / f"{ds}.parquet").exists()  # left behind
    r = link_index(agreement, [two["folders"][1]], idx, tmp_path / "o3", seed=1, report=False)
    assert r.mode == "incremental" and r.delivery == 3
    assert _traces(idx, ref) == []
    assert only_listed_files(idx)


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), KeyboardInterrupt()])
def test_a_clean_up_failure_after_the_commit_keeps_the_committed_delivery_outputs(
    two: dict,
    agreement: Agreement,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
) -> None:
    """Once the manifest names the new generation the delivery is in the index (a rerun is
    refused as not new): its maps and id changes must not be deleted because deleting an old
    generation's file failed."""
    idx = _clone(two["snap1"], tmp_path)
    real = store.remove_stale
    gen1 = _generation(idx)

    def failing(index_dir: Path, keep: str | None) -> None:
        if keep != gen1:  # the clean-up after the commit
            raise error
        real(index_dir, keep)

    monkeypatch.setattr(store, "remove_stale", failing)
    try:
        link_index(agreement, [two["folders"][1]], idx, tmp_path / "o2", seed=1, report=False)
    except type(error):
        pass
    monkeypatch.undo()
    assert store.read_manifest(agreement, idx)["deliveries"] == [1, 2]
    assert (tmp_path / "o2" / "link-manifest.json").is_file()
    assert (tmp_path / "o2" / "id-changes.parquet").is_file()


def test_a_re_key_may_come_with_a_withdrawal(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """A withdrawn record need not be re-sent under the new key (format 1 allowed this): the
    re-key's "every index record re-sent" rule is about the records that stay."""
    idx = _clone(two["snap1"], tmp_path)
    ds = "hmrc_rti"
    ref = _live(idx, agreement, ds)[0]
    rekeyed(two["folders"][0], tmp_path / "rk", "kc-rotated")
    r = link_index(agreement, [tmp_path / "rk"], idx, tmp_path / "o2", rekey=True,
                   withdrawals=[withdrawal(ds, [ref])], seed=1, report=False)  # fmt: skip
    assert (r.mode, r.withdrawn) == ("rekey", 1)
    assert ref not in _live(idx, agreement, ds)
    assert _traces(idx, ref) == []


def _relist(idx: Path, rel: str, table: pa.Table | None = None, **entry: object) -> None:
    """Write ``table`` to ``rel`` (if given) and list it in the manifest with a fresh hash."""
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    if table is not None:
        (idx / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, idx / rel)
    data = (idx / rel).read_bytes()
    m["files"][rel] = {**m["files"].get(rel, {}), **entry,
                       "sha256": hashlib.sha256(data).hexdigest(),
                       "rows": pq.read_metadata(idx / rel).num_rows}  # fmt: skip
    (idx / store.MANIFEST_NAME).write_text(json.dumps(m))


def _segment_rels(idx: Path) -> list[str]:
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    return sorted(r for r in m["files"] if f"/{store.RECORDS_DIR}/" in r)


def test_a_record_id_stored_twice_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """Two listed segments holding the same record ids (one copied under another dataset's
    name): every file matches its hash, but the records would be linked twice."""
    idx = _clone(two["snap1"], tmp_path)
    rel = _segment_rels(idx)[0]
    gen = _generation(idx)
    other = next(d.id for d in agreement.datasets if d.id not in {Path(r).stem for r in
                                                                  _segment_rels(idx)})  # fmt: skip
    copy = f"{gen}/{store.RECORDS_DIR}/{other}.parquet"
    shutil.copy(idx / rel, idx / copy)
    _relist(idx, copy, dataset=other)
    with pytest.raises(VerificationError, match="record id"):
        store.read_index(agreement, idx)


def test_a_segment_listed_twice_under_two_spellings_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """``gen/./records/x.parquet`` names the same file as ``gen/records/x.parquet``: read
    twice, its records would be linked twice."""
    idx = _clone(two["snap1"], tmp_path)
    rel = _segment_rels(idx)[0]
    folder, _, name = rel.split("/")
    _relist(idx, f"{folder}/./{store.RECORDS_DIR}/{name}", dataset=Path(name).stem)
    with pytest.raises(VerificationError, match="record id"):
        store.read_index(agreement, idx)


def test_a_next_record_id_below_the_stored_ones_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """New records would take record ids already stored: persons and edges mixed up."""
    idx = _clone(two["snap1"], tmp_path)
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    m["next_rid"] = 3
    (idx / store.MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(VerificationError, match="next_rid"):
        store.read_index(agreement, idx)


def test_a_person_row_without_a_stored_record_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """persons.parquet lists a record id no segment holds: that record (and its person) would
    silently drop out of the next run with no id change."""
    idx = _clone(two["snap1"], tmp_path)
    gen = _generation(idx)
    rel = f"{gen}/{store.PERSONS_NAME}"
    t = pq.read_table(idx / rel)
    rid = t["rid"].to_numpy().copy()
    rid[-1] = rid[-1] + 1_000  # still increasing, in no segment
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    m["next_rid"] = int(rid[-1]) + 1
    (idx / store.MANIFEST_NAME).write_text(json.dumps(m))
    _relist(idx, rel, t.set_column(0, store.PERSONS_SCHEMA.field("rid"), pa.array(rid)))
    with pytest.raises(VerificationError, match="record id"):
        store.read_index(agreement, idx)


def _partition(idx: Path, agreement: Agreement) -> tuple[list[tuple], list[int]]:
    """The index's records (dataset, row_ref, delivery), sorted, and their persons as codes
    in order of first appearance (ids differ between indexes: new ids are random)."""
    recs = []
    for ds, t in store.read_index(agreement, idx).records.items():
        for ref, pid, d in zip(t["row_ref"].to_pylist(), t["person_id"].to_pylist(),
                               t["delivery"].to_pylist(), strict=True):  # fmt: skip
            recs.append((ds, ref, d, pid))
    recs.sort()
    codes: dict[str, int] = {}
    return [r[:3] for r in recs], [codes.setdefault(r[3], len(codes)) for r in recs]


def test_compaction_never_changes_persons_over_corrections_withdrawals_and_retrain(
    two: dict, agreement: Agreement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same sequence on two copies, one compacting every segment every run, one never:
    the records, their deliveries, persons and id changes must be the same after each run."""
    from wmw_link.linkage.index import run

    ds = "hmrc_rti"
    refs = _live(two["snap1"], agreement, ds)
    resend(two["folders"][0], tmp_path / "corr", ds, refs[:4], refs[4:8])  # new identifiers
    steps = [
        ({"inputs": [two["folders"][1], tmp_path / "corr"]}),
        ({"inputs": [], "withdrawals": [withdrawal(ds, [refs[0], refs[9]])]}),
        ({"inputs": [], "retrain": True}),
    ]
    results: dict[float, list] = {}
    for below in (0.0, 1.01):
        idx = _clone(two["snap1"], tmp_path, f"index-{below}")
        monkeypatch.setattr(run, "COMPACT_BELOW", below)
        seen = []
        for i, step in enumerate(steps):
            kw = dict(step)
            r = link_index(agreement, kw.pop("inputs"), idx, tmp_path / f"o-{below}-{i}",
                           seed=1, report=False, **kw)  # fmt: skip
            changes = pq.read_table(r.id_changes)["reason"].to_pylist()
            seen.append((r.records, r.persons, r.corrected, r.withdrawn, sorted(changes),
                         _partition(idx, agreement)))  # fmt: skip
            assert only_listed_files(idx)
        results[below] = seen
        assert _traces(idx, refs[0]) == [] and _traces(idx, refs[9]) == []
    assert results[0.0] == results[1.01]


def test_a_first_run_killed_while_writing_its_manifest_can_be_run_again(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """A kill during the commit's manifest write leaves its temporary file (never renamed) in
    a folder with no manifest yet: the docs promise the delivery can always be run again."""
    idx = tmp_path / "index"
    idx.mkdir()
    (idx / ".gen-0001-0badcafe.tmp").mkdir()  # the staging folder, also left behind
    (idx / ".index-manifest.json.k2j4h5.tmp").write_text('{"kind": "wmw-link/pers')
    r = link_index(agreement, [two["folders"][0]], idx, tmp_path / "o1", seed=1, report=False)
    assert r.mode == "full"
    assert only_listed_files(idx)


def test_a_format_1_backup_put_back_after_the_upgrade_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """A format-1 index has no index_id: restoring the pre-upgrade backup must still be seen
    as a roll-back (the upgrading run committed a delivery it does not hold)."""
    from test_person_index_storage import _as_format_1

    idx, state = tmp_path / "index", tmp_path / "ttp-state.json"
    _as_format_1(two["snap1"], tmp_path / "backup", agreement)
    shutil.copytree(tmp_path / "backup", idx)
    r = link_index(agreement, [two["folders"][1]], idx, tmp_path / "o2", seed=1, report=False,
                   state=state)  # fmt: skip
    assert r.delivery == 2 and store.read_manifest(agreement, idx)["format_version"] == 2
    shutil.rmtree(idx)
    shutil.copytree(tmp_path / "backup", idx)
    with pytest.raises(VerificationError, match="rolled back"):
        link_index(agreement, [two["folders"][1]], idx, tmp_path / "o3", seed=1, report=False,
                   state=state)  # fmt: skip


def test_clean_up_deletes_nothing_when_it_cannot_read_the_manifest_in_force(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """remove_stale re-reads the manifest to learn which older folders still hold listed
    segments; if that read fails it must not fall back to deleting every other folder."""
    idx = _clone(two["snap1"], tmp_path)
    link_index(agreement, [two["folders"][1]], idx, tmp_path / "o2", seed=1, report=False)
    gen = _generation(idx)
    older = sorted({Path(r).parts[0] for r in _segment_rels(idx)} - {gen})
    assert older  # delivery 1's segments are listed again from their own folder
    good = (idx / store.MANIFEST_NAME).read_bytes()
    (idx / store.MANIFEST_NAME).write_bytes(good[: len(good) // 2])  # a failed read
    store.remove_stale(idx, keep=gen)
    (idx / store.MANIFEST_NAME).write_bytes(good)
    assert all((idx / f).is_dir() for f in older)
    store.read_index(agreement, idx)
