"""How the person index stores records (format 2): each record written once, in the segment of
the run that brought it; compaction; reading and upgrading a format-1 index."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from index_fixtures import only_listed_files, resend, split
from linkage_fixtures import write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import VerificationError
from wmw_link.linkage.index import link_index, run, store

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture(scope="module")
def two(agreement: Agreement, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two deliveries; the index after the first (``snap1``) and after the second (``snap2``)."""
    base = tmp_path_factory.mktemp("storage")
    write_fixture(agreement, base / "all", n_households=40)
    folders = split(base / "all", base / "deliveries", 2)
    link_index(agreement, [folders[0]], base / "index", base / "out1", seed=1, report=False)
    shutil.copytree(base / "index", base / "snap1")
    r2 = link_index(agreement, [folders[1]], base / "index", base / "out2", seed=1, report=False)
    shutil.copytree(base / "index", base / "snap2")
    return {"base": base, "folders": folders, "r2": r2}


def _files(idx: Path) -> dict[str, dict]:
    return json.loads((idx / store.MANIFEST_NAME).read_text())["files"]


def _segments(idx: Path) -> dict[str, dict]:
    return {rel: e for rel, e in _files(idx).items() if f"/{store.RECORDS_DIR}/" in rel}


def _persons(idx: Path, agreement: Agreement) -> pd.DataFrame:
    state = store.read_index(agreement, idx)
    parts = [t.select(["row_ref", "person_id", "delivery"]).to_pandas().assign(dataset=ds)
             for ds, t in state.records.items()]  # fmt: skip
    return pd.concat(parts, ignore_index=True).sort_values(["dataset", "row_ref"])


def test_a_refresh_writes_only_its_own_records(two: dict, agreement: Agreement) -> None:
    base = two["base"]
    first, second = _segments(base / "snap1"), _segments(base / "snap2")
    # Every segment of the first run is listed again, unchanged on disk.
    for rel, entry in first.items():
        assert second[rel] == entry
        data = (base / "snap2" / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    gen2 = json.loads((base / "snap2" / store.MANIFEST_NAME).read_text())["generation"]
    added = {rel: e for rel, e in second.items() if rel not in first}
    assert added and all(rel.startswith(f"{gen2}/") for rel in added)
    # The new segments hold exactly the second delivery's records.
    rows = pa.concat_tables(
        [pq.read_table(base / "snap2" / rel, columns=["delivery"]) for rel in added]
    )
    assert rows.num_rows == two["r2"].new_records
    assert set(rows["delivery"].to_pylist()) == {2}
    assert only_listed_files(base / "snap2")


def test_a_corrupted_segment_of_an_earlier_run_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = tmp_path / "index"
    shutil.copytree(two["base"] / "snap2", idx)
    gen2 = json.loads((idx / store.MANIFEST_NAME).read_text())["generation"]
    rel = next(r for r in _segments(idx) if not r.startswith(gen2))
    data = bytearray((idx / rel).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (idx / rel).write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=f"{rel}: SHA-256 differs"):
        store.read_index(agreement, idx)


def test_a_re_sent_record_replaces_its_stored_row(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = tmp_path / "index"
    shutil.copytree(two["base"] / "snap2", idx)
    before = _persons(idx, agreement)
    first = before[(before["dataset"] == "hmrc_rti") & (before["delivery"] == 1)]
    refs = first["row_ref"].iloc[:3].tolist()
    resend(two["folders"][0], tmp_path / "d3", "hmrc_rti", refs, refs)  # same tokens again
    r = link_index(agreement, [tmp_path / "d3"], idx, tmp_path / "o", seed=1)
    assert r.corrected == 3
    after = _persons(idx, agreement)
    assert len(after) == len(before)  # replaced, not added
    assert after.set_index(["dataset", "row_ref"]).loc[[("hmrc_rti", x) for x in refs],
                                                       "delivery"].tolist() == [3, 3, 3]
    # Same tokens: every record keeps its person.
    assert (after["person_id"].to_numpy() == before["person_id"].to_numpy()).all()


def test_compaction_rewrites_segments_and_keeps_every_person(
    two: dict, agreement: Agreement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, compacted = tmp_path / "plain", tmp_path / "compacted"
    shutil.copytree(two["base"] / "snap1", plain)
    shutil.copytree(two["base"] / "snap1", compacted)
    link_index(agreement, [two["folders"][1]], plain, tmp_path / "o1", seed=1)
    monkeypatch.setattr(run, "COMPACT_BELOW", 1.01)  # every stored segment is rewritten
    link_index(agreement, [two["folders"][1]], compacted, tmp_path / "o2", seed=1)
    gen = json.loads((compacted / store.MANIFEST_NAME).read_text())["generation"]
    assert all(rel.startswith(f"{gen}/") for rel in _segments(compacted))
    assert only_listed_files(compacted)
    a, b = _persons(plain, agreement), _persons(compacted, agreement)
    assert a[["dataset", "row_ref", "delivery"]].values.tolist() == \
        b[["dataset", "row_ref", "delivery"]].values.tolist()  # fmt: skip
    old = a["delivery"].to_numpy() == 1  # ids of stored persons kept in both
    assert (a["person_id"].to_numpy()[old] == b["person_id"].to_numpy()[old]).all()
    # The same partition of the new records.
    pa_, pb = pd.factorize(a["person_id"])[0], pd.factorize(b["person_id"])[0]
    assert (pa_ == pb).all()


def _as_format_1(src: Path, dst: Path, agreement: Agreement, stale_edges: int = 0) -> None:
    """``src`` (format 2) rewritten as format 1: one generation holding every record, plus
    ``stale_edges`` edges to a record it no longer holds."""
    state = store.read_index(agreement, src)
    gen_name = "gen-0001-0000abcd"
    gen = dst / gen_name
    (gen / store.RECORDS_DIR).mkdir(parents=True)
    files: dict[str, dict] = {}
    (gen / store.MODEL_NAME).write_text(json.dumps(state.model))
    files[store.MODEL_NAME] = {"sha256": hashlib.sha256((gen / store.MODEL_NAME)
                                                        .read_bytes()).hexdigest()}  # fmt: skip
    where: dict[int, tuple[str, str]] = {}
    for seg in state.segments:
        for rid, ref in zip(seg.table["rid"].to_pylist(), seg.table["row_ref"].to_pylist(),
                            strict=True):  # fmt: skip
            where[rid] = (seg.dataset, ref)
    e = state.edges
    left = [where[x] for x in e["rid_l"].to_pylist()]
    right = [where[x] for x in e["rid_r"].to_pylist()]
    left += [left[0]] * stale_edges
    right += [(right[0][0], "withdrawn-ref")] * stale_edges
    weights = e["match_weight"].to_pylist() + [9.0] * stale_edges
    edges = pa.table({"dataset_l": [x[0] for x in left], "row_ref_l": [x[1] for x in left],
                      "dataset_r": [x[0] for x in right], "row_ref_r": [x[1] for x in right],
                      "match_weight": pa.array(weights, pa.float64())})  # fmt: skip
    for rel, table in [(store.EDGES_NAME, edges), *[(f"{store.RECORDS_DIR}/{ds}.parquet", t)
                                                     for ds, t in state.records.items()]]:  # fmt: skip
        pq.write_table(table, gen / rel)
        files[rel] = {"sha256": hashlib.sha256((gen / rel).read_bytes()).hexdigest(),
                      "rows": table.num_rows}  # fmt: skip
    m = dict(state.manifest)
    for key in ("next_rid", "index_id"):
        m.pop(key)
    (dst / store.MANIFEST_NAME).write_text(
        json.dumps({**m, "format_version": 1, "generation": gen_name, "files": files})
    )


def test_a_format_1_index_is_read_and_upgraded(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    _as_format_1(two["base"] / "snap1", v1, agreement)
    shutil.copytree(two["base"] / "snap1", v2)
    # Read as format 1, the index holds the same records and persons.
    assert _persons(v1, agreement).values.tolist() == _persons(v2, agreement).values.tolist()
    r1 = link_index(agreement, [two["folders"][1]], v1, tmp_path / "o1", seed=1)
    r2 = link_index(agreement, [two["folders"][1]], v2, tmp_path / "o2", seed=1)
    assert (r1.mode, r1.records, r1.persons, r1.changes) == \
        (r2.mode, r2.records, r2.persons, r2.changes)  # fmt: skip
    assert json.loads((v1 / store.MANIFEST_NAME).read_text())["format_version"] == 2
    assert only_listed_files(v1) and not list(v1.glob("gen-0001-0000abcd"))
    a, b = _persons(v1, agreement), _persons(v2, agreement)
    old = a["delivery"].to_numpy() == 1
    assert (a["person_id"].to_numpy()[old] == b["person_id"].to_numpy()[old]).all()
    assert (pd.factorize(a["person_id"])[0] == pd.factorize(b["person_id"])[0]).all()
    assert np.array_equal(a["delivery"].to_numpy(), b["delivery"].to_numpy())


def test_format_1_edges_to_records_no_longer_held_are_dropped_and_counted(
    two: dict, agreement: Agreement, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v1 = tmp_path / "v1"
    _as_format_1(two["base"] / "snap1", v1, agreement, stale_edges=3)
    clean = store.read_index(agreement, two["base"] / "snap1")
    with caplog.at_level("WARNING", logger="wmw_link.linkage.index"):
        state = store.read_index(agreement, v1)
    assert state.edges.num_rows == clean.edges.num_rows
    assert "3 edges to records the index no longer holds dropped" in caplog.text
    assert "withdrawn-ref" not in caplog.text


def test_an_index_rolled_back_to_an_older_copy_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx, state = tmp_path / "index", tmp_path / "ttp-state.json"
    link_index(agreement, [two["folders"][0]], idx, tmp_path / "o1", seed=1, state=state)
    backup = tmp_path / "backup"
    shutil.copytree(idx, backup)
    link_index(agreement, [two["folders"][1]], idx, tmp_path / "o2", seed=1, state=state)
    shutil.rmtree(idx)
    shutil.copytree(backup, idx)  # restored from last month's backup: it verifies
    store.read_index(agreement, idx)
    with pytest.raises(VerificationError, match="holds deliveries up to 1, but delivery 2 was "
                       "committed to it .* rolled back"):  # fmt: skip
        link_index(agreement, [], idx, tmp_path / "o3", retrain=True, state=state)
    # Without the state (or for another index) nothing is known: the run goes ahead.
    r = link_index(agreement, [], idx, tmp_path / "o4", retrain=True,
                   state=tmp_path / "other-state.json")  # fmt: skip
    assert r.delivery == 2


def _rewrite(idx: Path, rel: str, table: pa.Table) -> None:
    """Replace an index file and its manifest entry (a well-formed but wrong index)."""
    pq.write_table(table, idx / rel)
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    m["files"][rel] = {**m["files"][rel], "rows": table.num_rows,
                       "sha256": hashlib.sha256((idx / rel).read_bytes()).hexdigest()}  # fmt: skip
    (idx / store.MANIFEST_NAME).write_text(json.dumps(m))


def test_a_person_id_listed_twice_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = tmp_path / "index"
    shutil.copytree(two["base"] / "snap2", idx)
    gen = json.loads((idx / store.MANIFEST_NAME).read_text())["generation"]
    rel = f"{gen}/{store.PERSON_IDS_NAME}"
    ids = pq.read_table(idx / rel)["person_id"].to_pylist()
    ids[1] = ids[0]  # two persons would share an id
    _rewrite(idx, rel, pa.Table.from_arrays([pa.array(ids)], schema=store.PERSON_IDS_SCHEMA))
    with pytest.raises(VerificationError, match="a person id is listed twice"):
        store.read_index(agreement, idx)


def test_a_segment_named_for_another_dataset_is_refused(
    two: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = tmp_path / "index"
    shutil.copytree(two["base"] / "snap2", idx)
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    rel = next(r for r in _segments(idx) if r.endswith("/hmrc_rti.parquet"))
    m["files"][rel]["dataset"] = "dwp_claims"
    (idx / store.MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(VerificationError, match="a segment of another dataset"):
        store.read_index(agreement, idx)
