"""The person index end to end on a small token fixture split into three deliveries."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from index_fixtures import only_listed_files, rekeyed, resend, split, withdrawal, write_tokens
from linkage_fixtures import FORENAMES, POSTCODES, SURNAMES, write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.cli import main
from wmw_link.errors import ConfigError, VerificationError
from wmw_link.linkage.backends import open_backend
from wmw_link.linkage.index import IndexResult, incremental, link_index, persons, store

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture(scope="module")
def chain(agreement: Agreement, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three deliveries linked through one index; a snapshot of the index after each."""
    base = tmp_path_factory.mktemp("index")
    truth = write_fixture(agreement, base / "all", n_households=60)
    folders = split(base / "all", base / "deliveries", 3)
    results: list[IndexResult] = []
    snaps: list[Path] = []
    for i, folder in enumerate(folders, start=1):
        results.append(
            link_index(agreement, [folder], base / "index", base / f"out{i}", seed=1, report=False)
        )
        snaps.append(base / f"snap{i}")
        shutil.copytree(base / "index", snaps[-1])
    return {"base": base, "truth": truth, "folders": folders, "results": results, "snaps": snaps}


def _clone(snap: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(snap, dst)
    return dst


def _index_persons(index_dir: Path, agreement: Agreement) -> pd.DataFrame:
    state = store.read_index(agreement, index_dir)
    frames = [
        pd.DataFrame(
            {"dataset": ds, "row_ref": t["row_ref"].to_pylist(),
             "person_id": t["person_id"].to_pylist(), "delivery": t["delivery"].to_pylist()}
        )
        for ds, t in state.records.items()
    ]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _pairs(groups: pd.Series) -> set[tuple[int, int]]:
    out = set()
    for members in groups.groupby(groups).groups.values():
        m = sorted(members)
        out.update((a, b) for i, a in enumerate(m) for b in m[i + 1 :])
    return out


def test_first_run_is_a_full_run_over_every_record(chain: dict) -> None:
    first = chain["results"][0]
    assert first.mode == "full" and first.delivery == 1 and first.changes == 0
    folder = chain["folders"][0]
    for ds, path in first.maps.items():
        m = pq.read_table(path)
        assert m.schema.names == ["row_ref", "person_id", "delivery"]
        assert m.schema.field("delivery").type == pa.int32()
        refs = pq.read_table(folder / f"{ds}.tokens.parquet")["row_ref"].to_pylist()
        assert sorted(m["row_ref"].to_pylist()) == sorted(refs)
        assert set(m["delivery"].to_pylist()) == {1}
    assert pq.read_table(first.id_changes).num_rows == 0
    man = json.loads(first.manifest.read_text())
    assert man["index"]["mode"] == "full" and man["index"]["deliveries"] == [1]
    assert man["id_changes"]["rows"] == 0


def test_incremental_runs_keep_every_existing_id(chain: dict, agreement: Agreement) -> None:
    before = _index_persons(chain["snaps"][0], agreement)
    for i, r in enumerate(chain["results"][1:], start=2):
        assert r.mode == "incremental" and r.delivery == i
        after = _index_persons(chain["snaps"][i - 1], agreement)
        changes = pq.read_table(r.id_changes).to_pandas()
        joined = before.merge(after, on=["dataset", "row_ref"], suffixes=("_b", "_a"))
        assert len(joined) == len(before)  # no record lost
        moved = joined[joined["person_id_b"] != joined["person_id_a"]]
        # Every id that changed is in id-changes and in this run's maps.
        listed = set(zip(changes["old_person_id"], changes["new_person_id"], strict=True))
        assert set(zip(moved["person_id_b"], moved["person_id_a"], strict=True)) <= listed
        maps = pd.concat([pd.read_parquet(p).assign(dataset=d) for d, p in r.maps.items()])
        new = after[after["delivery"] == i]
        assert len(new) == r.new_records > 0
        got = set(zip(maps["dataset"], maps["row_ref"], strict=True))
        assert got >= set(zip(new["dataset"], new["row_ref"], strict=True)) | set(
            zip(moved["dataset"], moved["row_ref"], strict=True)
        )
        named = before[before["person_id"].isin(set(changes["old_person_id"]))]
        assert got == set(zip(new["dataset"], new["row_ref"], strict=True)) | set(
            zip(named["dataset"], named["row_ref"], strict=True)
        )
        assert (maps["delivery"] == i).all()
        before = after


def _replay(view: pd.DataFrame | None, result: IndexResult) -> pd.DataFrame:
    """The analysts' view after one refresh: every old -> new id applied to all earlier rows,
    then this run's map rows replace earlier rows (docs/person-index.md)."""
    maps = pd.concat([pd.read_parquet(p).assign(dataset=d) for d, p in result.maps.items()])
    maps = maps[["dataset", "row_ref", "person_id"]]
    if view is None:
        return maps.reset_index(drop=True)
    changes = pd.read_parquet(result.id_changes)
    mapping = dict(zip(changes["old_person_id"], changes["new_person_id"], strict=True))
    listed = view["person_id"].isin(mapping.keys())
    view = view.assign(person_id=view["person_id"].map(mapping).where(listed, view["person_id"]))
    view = view[view["person_id"].notna()]
    out = pd.concat([view, maps]).drop_duplicates(["dataset", "row_ref"], keep="last")
    return out.reset_index(drop=True)


def _same_view(view: pd.DataFrame, index_dir: Path, agreement: Agreement) -> None:
    """The analysts' view holds exactly the index's records with the index's person ids."""
    want = _index_persons(index_dir, agreement).set_index(["dataset", "row_ref"])["person_id"]
    got = view.set_index(["dataset", "row_ref"])["person_id"]
    assert got.sort_index().equals(want.sort_index())


def test_analysts_replaying_the_refreshes_get_the_index(chain: dict, agreement: Agreement) -> None:
    view = None
    for r, snap in zip(chain["results"], chain["snaps"], strict=True):
        view = _replay(view, r)
        _same_view(view, snap, agreement)


def test_incremental_persons_equal_a_full_rescoring_with_the_same_model(
    chain: dict, agreement: Agreement, tmp_path: Path
) -> None:
    state = store.read_index(agreement, chain["snaps"][-1])
    kinds = state.model["token_kinds"]
    tables, keys, pids = {}, [], []
    for ds, t in sorted(state.records.items()):
        n0 = len(keys)
        tok = t.drop_columns(["row_ref", "person_id", "delivery"])
        tables[ds] = tok.append_column("gid", pa.array(np.arange(n0, n0 + t.num_rows)))
        keys += [(ds, r) for r in t["row_ref"].to_pylist()]
        pids += t["person_id"].to_pylist()
    be = open_backend("duckdb", tmp_path / "db")
    try:
        scored = incremental.score_new(be, incremental.load(be, tables, kinds), state.model, 0)
    finally:
        be.close()
    full = persons.components(len(keys), scored.left, scored.right)
    got = pd.Series(pids)
    assert _pairs(pd.Series(full)) == _pairs(got)
    assert len(_pairs(got)) > 50  # the fixture links something


def test_delivery_number_must_be_new(chain: dict, agreement: Agreement, tmp_path: Path) -> None:
    idx = _clone(chain["snaps"][1], tmp_path)
    with pytest.raises(ConfigError, match="--delivery 2: the index already holds deliveries"):
        link_index(agreement, [chain["folders"][2]], idx, tmp_path / "o", delivery=2)
    r = link_index(agreement, [chain["folders"][2]], idx, tmp_path / "o", delivery=5)
    assert r.delivery == 5
    assert store.read_manifest(agreement, idx)["deliveries"] == [1, 2, 5]


def test_correction_moves_the_record_and_records_the_change(
    chain: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = _clone(chain["snaps"][2], tmp_path)
    before = _index_persons(idx, agreement)
    hm = before[before["dataset"] == "hmrc_rti"]
    sizes = before["person_id"].value_counts()
    # A record of a person with 3+ records is re-sent with another person's identifiers.
    big = hm[hm["person_id"].map(sizes) >= 3].iloc[0]
    donor = hm[(hm["person_id"].map(sizes) >= 2) & (hm["person_id"] != big["person_id"])].iloc[0]
    resend(chain["base"] / "all", tmp_path / "d4", "hmrc_rti", [big["row_ref"]], [donor["row_ref"]])
    r = link_index(agreement, [tmp_path / "d4"], idx, tmp_path / "o", seed=1)
    assert r.corrected == 1 and r.new_records == 1
    after = _index_persons(idx, agreement).set_index(["dataset", "row_ref"])
    moved = after.loc[("hmrc_rti", big["row_ref"]), "person_id"]
    assert moved == donor["person_id"]  # now with the donor's person
    rest = before[(before["person_id"] == big["person_id"]) & (before["row_ref"] != big["row_ref"])]
    kept = after.loc[list(zip(rest["dataset"], rest["row_ref"], strict=True)), "person_id"]
    assert set(kept) == {big["person_id"]}  # the larger part keeps the id
    changes = pq.read_table(r.id_changes).to_pylist()
    assert {"old_person_id": big["person_id"], "new_person_id": donor["person_id"],
            "reason": "correction", "delivery": 4} in changes  # fmt: skip
    m = pq.read_table(r.maps["hmrc_rti"]).to_pylist()
    assert {"row_ref": big["row_ref"], "person_id": donor["person_id"], "delivery": 4} in m
    assert after.index.is_unique  # the re-sent record replaced the old one
    view = _replay(_index_persons(chain["snaps"][2], agreement)[["dataset", "row_ref",
                                                                  "person_id"]], r)  # fmt: skip
    _same_view(view, idx, agreement)


def test_a_bridging_record_merges_two_persons(agreement: Agreement, tmp_path: Path) -> None:
    truth = write_fixture(agreement, tmp_path / "all", n_households=40, seed=3)
    src = tmp_path / "all"
    manifest = json.loads((src / "hmrc_rti.manifest.json").read_text())
    table = pq.read_table(src / "hmrc_rti.tokens.parquet")
    bridge = table.slice(next(i for i in range(table.num_rows) if table["nino"][i].is_valid), 1)
    ref0 = bridge["row_ref"][0].as_py()
    place = ["name_pc", "fn_pc", "pc_dob", "pcs_dob", "pc_sn"]
    names = [c for c in table.column_names if c.startswith(("fn", "sn", "name"))]
    rest_cols = [c for c in table.column_names if c != "row_ref" and c not in names]

    def only(cols: list[str], ref: str) -> pa.Table:
        t = bridge.set_column(0, "row_ref", pa.array([ref], pa.string()))
        for c in t.column_names:
            if c != "row_ref" and c not in cols:
                i = t.column_names.index(c)
                t = t.set_column(i, t.schema.field(c), pa.nulls(1, t.schema.field(c).type))
        return t.cast(table.schema)

    # Delivery 1: two halves of the bridge record (names + postcode; NINo + postcode + date
    # composites), too little in common to link, and everyone else's records (the bridge's
    # person left out). Delivery 2: the whole record, which links to both halves.
    others = pa.array([truth[("hmrc_rti", r)] != truth[("hmrc_rti", ref0)]
                       for r in table["row_ref"].to_pylist()])  # fmt: skip
    halves = [only(names + place, "a" * 32), only(rest_cols, "b" * 32)]
    write_tokens(tmp_path / "d1", manifest, pa.concat_tables([table.filter(others), *halves]))
    write_tokens(tmp_path / "d2", manifest, bridge)
    first = link_index(agreement, [tmp_path / "d1"], tmp_path / "idx", tmp_path / "o1", seed=1)
    before = _index_persons(tmp_path / "idx", agreement).set_index("row_ref")["person_id"]
    pa_, pb = before["a" * 32], before["b" * 32]
    assert pa_ != pb
    r = link_index(agreement, [tmp_path / "d2"], tmp_path / "idx", tmp_path / "o2", seed=1)
    after = _index_persons(tmp_path / "idx", agreement).set_index("row_ref")["person_id"]
    assert after["a" * 32] == after["b" * 32] == after[ref0]
    survivor = after[ref0]
    gone = ({pa_, pb} - {survivor}).pop()
    changes = pq.read_table(r.id_changes).to_pylist()
    assert {"old_person_id": gone, "new_person_id": survivor, "reason": "merge",
            "delivery": 2} in changes  # fmt: skip
    m = pq.read_table(r.maps["hmrc_rti"]).to_pandas().set_index("row_ref")["person_id"]
    assert m[ref0] == survivor
    moved = "a" * 32 if pa_ == gone else "b" * 32
    assert m[moved] == survivor  # the merged person's record gets a map row
    view = _replay(_replay(None, first), r)
    _same_view(view, tmp_path / "idx", agreement)


def _all_strings(path: Path) -> set[str]:
    """Every string value of every Parquet column under ``path``."""
    out: set[str] = set()
    for f in path.rglob("*.parquet"):
        t = pq.read_table(f)
        for col in t.columns:
            if pa.types.is_string(col.type):
                out.update(v for v in col.to_pylist() if v is not None)
    return out


def test_withdrawal_leaves_no_trace(chain: dict, agreement: Agreement, tmp_path: Path) -> None:
    idx = _clone(chain["snaps"][2], tmp_path)
    before = _index_persons(idx, agreement)
    sizes = before["person_id"].value_counts()
    # One person withdrawn entirely, and one record of a person with 3+ records.
    whole = before[before["person_id"].map(sizes) == 2]["person_id"].iloc[0]
    gone = before[before["person_id"] == whole]
    part = before[(before["person_id"].map(sizes) >= 3) & (before["dataset"] == "hmrc_rti")].iloc[0]
    lists = [withdrawal(ds, g["row_ref"].tolist()) for ds, g in gone.groupby("dataset")]
    lists.append(withdrawal("hmrc_rti", [part["row_ref"]]))
    refs = {*gone["row_ref"], part["row_ref"]}
    r = link_index(agreement, [], idx, tmp_path / "o", withdrawals=lists, seed=1)
    assert r.withdrawn == len(refs) and r.new_records == 0
    # No trace in the new index generation (values, and raw bytes of every file) or the maps.
    assert not refs & _all_strings(idx)
    assert not refs & _all_strings(tmp_path / "o")
    for f in [*idx.rglob("*"), *(tmp_path / "o").rglob("*")]:
        if f.is_file():
            data = f.read_bytes()
            assert not any(ref.encode() in data for ref in refs), f
    # Of earlier generations only the record segments the manifest lists are left.
    assert only_listed_files(idx)
    after = _index_persons(idx, agreement)
    assert len(after) == len(before) - len(refs)
    changes = pq.read_table(r.id_changes).to_pylist()
    assert {"old_person_id": whole, "new_person_id": None, "reason": "withdrawal",
            "delivery": 4} in changes  # fmt: skip
    assert all(c["reason"] in ("withdrawal", "split") for c in changes)
    # The analysts drop the withdrawn rows themselves (journeys --withdrawals), then replay.
    view = before[~before["row_ref"].isin(refs)][["dataset", "row_ref", "person_id"]]
    _same_view(_replay(view, r), idx, agreement)


def test_withdrawal_of_unknown_refs_is_counted(
    chain: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = _clone(chain["snaps"][0], tmp_path)
    r = link_index(agreement, [], idx, tmp_path / "o",
                   withdrawals=[withdrawal("hmrc_rti", ["0" * 32, "1" * 32])])  # fmt: skip
    assert r.withdrawn == 0 and r.changes == 0 and r.map_rows == 0
    assert json.loads(r.manifest.read_text())["counts"]["withdrawals_unmatched"] == 2


def test_newer_format_refused(chain: dict, agreement: Agreement, tmp_path: Path) -> None:
    idx = _clone(chain["snaps"][0], tmp_path)
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    m["format_version"] = store.FORMAT_VERSION + 1
    (idx / store.MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=f"format version {store.FORMAT_VERSION + 1} is newer"):
        link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_corrupted_index_refused(chain: dict, agreement: Agreement, tmp_path: Path) -> None:
    idx = _clone(chain["snaps"][0], tmp_path)
    gen = json.loads((idx / store.MANIFEST_NAME).read_text())["generation"]
    edges = idx / gen / "edges.parquet"
    data = bytearray(edges.read_bytes())
    data[len(data) // 2] ^= 0xFF
    edges.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="SHA-256 differs .* corrupted"):
        link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o")
    shutil.copy(chain["snaps"][0] / gen / "edges.parquet", edges)
    store.read_index(agreement, idx)  # restored: verifies again
    (idx / gen / "records" / "hmrc_rti.parquet").unlink()
    with pytest.raises(VerificationError, match="records/hmrc_rti.parquet is missing"):
        store.read_index(agreement, idx)


def test_foreign_index_refused(chain: dict, agreement: Agreement, tmp_path: Path) -> None:
    idx = _clone(chain["snaps"][0], tmp_path)
    m = json.loads((idx / store.MANIFEST_NAME).read_text())
    m["agreement"]["id"] = "another-agreement"
    (idx / store.MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(VerificationError, match="foreign index: made under agreement"):
        link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o")
    # Inputs tokenised with another linkage key than the index's.
    idx2 = tmp_path / "idx2"
    shutil.copytree(chain["snaps"][0], idx2)
    other = tmp_path / "other"
    write_fixture(agreement, other, n_households=5, key_check="kc-other")
    with pytest.raises(VerificationError, match="foreign index for these inputs: its key check"):
        link_index(agreement, [other], idx2, tmp_path / "o")


def test_not_an_index_folder_refused(agreement: Agreement, chain: dict, tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a person index"):
        link_index(agreement, [chain["folders"][0]], tmp_path / "idx", tmp_path / "o")


def test_concurrent_run_refused_by_the_lock(
    chain: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = _clone(chain["snaps"][0], tmp_path)
    held = f"locked by another run \\(pid {os.getpid()} on"
    with store.locked(idx), pytest.raises(ConfigError, match=held):
        link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o")
    # Released: the run goes ahead.
    assert link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o").delivery == 2


def test_interrupted_run_leaves_the_index_intact(
    chain: dict, agreement: Agreement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = _clone(chain["snaps"][0], tmp_path)
    manifest = (idx / store.MANIFEST_NAME).read_bytes()

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    # Dies in the middle of writing the new generation, then (another run) at the commit.
    monkeypatch.setattr(store, "restrict_tree", boom)
    with pytest.raises(KeyboardInterrupt):
        link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o")
    monkeypatch.undo()
    monkeypatch.setattr(store, "write_json_atomic", boom)
    with pytest.raises(KeyboardInterrupt):
        link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o")
    monkeypatch.undo()
    assert (idx / store.MANIFEST_NAME).read_bytes() == manifest
    store.read_index(agreement, idx)  # still verifies
    assert not (tmp_path / "o").exists()  # no outputs of a delivery the index does not hold
    assert only_listed_files(idx) and not list(idx.glob(".gen-*"))
    r = link_index(agreement, [chain["folders"][1]], idx, tmp_path / "o")
    assert r.delivery == 2 and only_listed_files(idx)


def test_retrain_keeps_most_ids(chain: dict, agreement: Agreement, tmp_path: Path) -> None:
    idx = _clone(chain["snaps"][2], tmp_path)
    before = _index_persons(idx, agreement)
    r = link_index(agreement, [], idx, tmp_path / "o", retrain=True, seed=2)
    assert r.mode == "retrain" and r.new_records == 0
    after = _index_persons(idx, agreement)
    j = before.merge(after, on=["dataset", "row_ref"], suffixes=("_b", "_a"))
    kept = set(before["person_id"]) & set(after["person_id"])
    assert len(kept) >= 0.9 * before["person_id"].nunique()
    changes = pq.read_table(r.id_changes).to_pandas()
    assert set(changes["reason"]) <= {"retrain"}
    moved = j[j["person_id_b"] != j["person_id_a"]]
    assert set(zip(moved["person_id_b"], moved["person_id_a"], strict=True)) <= set(
        zip(changes["old_person_id"], changes["new_person_id"], strict=True)
    )
    man = json.loads(r.manifest.read_text())
    assert man["index"]["mode"] == "retrain" and man["index"]["model_trained_delivery"] == 4
    _same_view(_replay(before[["dataset", "row_ref", "person_id"]], r), idx, agreement)


def test_index_files_owner_only_and_free_of_plaintext(chain: dict) -> None:
    idx = chain["base"] / "index"
    for f in [idx, *idx.rglob("*")]:
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode == (0o700 if f.is_dir() else 0o600), f
    words = {w for w in FORENAMES + SURNAMES} | {p.replace(" ", "") for p in POSTCODES}
    words |= {p.lower() for p in POSTCODES}
    found = _all_strings(idx) | _all_strings(chain["base"] / "out3")
    assert not {s for s in found if any(w in s.lower() for w in words) and len(s) < 20}
    for f in idx.rglob("*"):
        if f.is_file():
            text = f.read_bytes().lower()
            assert not any(w.encode() in text for w in words if len(w) > 4), f


def test_cli_link_index(chain: dict, tmp_path: Path) -> None:
    idx = _clone(chain["snaps"][1], tmp_path)
    runner = CliRunner()
    res = runner.invoke(main, ["link", "--agreement", str(AGREEMENT), "--index", str(idx),
                               "--inputs", str(chain["folders"][2]), "--out",
                               str(tmp_path / "o"), "--state", str(tmp_path / "state.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "delivery 3 (incremental)" in res.output
    assert {p.name for p in (tmp_path / "o").iterdir()} >= {
        "hmrc_rti.map.parquet", "id-changes.parquet", "link-manifest.json"
    }  # fmt: skip
    res = runner.invoke(main, ["link", "--agreement", str(AGREEMENT), "--retrain", "--inputs",
                               str(chain["folders"][2]), "--out", str(tmp_path / "o2")])  # fmt: skip
    assert res.exit_code != 0 and "--retrain, --rekey and --withdrawals need --index" in res.output


def test_first_index_run_gives_the_persons_of_a_plain_link(
    chain: dict, agreement: Agreement, tmp_path: Path
) -> None:
    # Both over every delivery folder at once (one dataset in several folders is merged).
    from wmw_link.linkage import link

    plain = link(agreement, chain["folders"], tmp_path / "plain", seed=1, report=False)
    first = link_index(agreement, chain["folders"], tmp_path / "idx", tmp_path / "o", seed=1,
                       report=False)  # fmt: skip

    def frame(maps: dict[str, Path]) -> pd.Series:
        return pd.concat(
            [pd.read_parquet(p).assign(ds=d) for d, p in maps.items()]
        ).set_index(["ds", "row_ref"])["person_id"]

    a, b = frame(plain.maps), frame(first.maps)
    assert len(a) == len(b) == len(chain["truth"])
    joined = pd.concat([a, b], axis=1, keys=["a", "b"])
    assert joined.notna().all().all()
    assert joined.groupby(["a", "b"]).ngroups == joined["a"].nunique() == joined["b"].nunique()


def test_a_dataset_twice_in_one_verification_is_refused(chain: dict, agreement: Agreement) -> None:
    from wmw_link.linkage.verify import verify_inputs

    f = chain["folders"]
    with pytest.raises(VerificationError, match="dataset file given twice"):
        verify_inputs(agreement, [f[0], f[1]])


def test_rekey_keeps_ids_and_switches_the_key(
    chain: dict, agreement: Agreement, tmp_path: Path
) -> None:
    idx = _clone(chain["snaps"][2], tmp_path)
    before = _index_persons(idx, agreement)
    new = [tmp_path / f"rk{i}" for i in range(3)]
    for f, d in zip(chain["folders"], new, strict=True):
        rekeyed(f, d, "kc-new")
    # The whole history is needed: two of three deliveries are refused.
    with pytest.raises(VerificationError, match="not re-sent under the new linkage key"):
        link_index(agreement, new[:2], idx, tmp_path / "o", rekey=True, seed=1)
    with pytest.raises(ConfigError, match="--rekey needs .* key check must differ"):
        link_index(agreement, chain["folders"], idx, tmp_path / "o", rekey=True, seed=1)
    r = link_index(agreement, new, idx, tmp_path / "o", rekey=True, seed=1)
    assert r.mode == "rekey" and r.new_records == 0 and r.corrected == len(before)
    after = _index_persons(idx, agreement)
    assert store.read_manifest(agreement, idx)["key_check"] == "kc-new"
    # Every record keeps its delivery; ids carried over (the same model structure, so the
    # same persons here); any change is recorded as 'rekey'.
    j = before.merge(after, on=["dataset", "row_ref"], suffixes=("_b", "_a"))
    assert len(j) == len(before) and (j["delivery_b"] == j["delivery_a"]).all()
    assert (j["person_id_b"] == j["person_id_a"]).mean() >= 0.95
    assert set(pq.read_table(r.id_changes)["reason"].to_pylist()) <= {"rekey"}
    _same_view(_replay(before[["dataset", "row_ref", "person_id"]], r), idx, agreement)
    # Tokens under the old key are now foreign to the index.
    with pytest.raises(VerificationError, match="its key check differs"):
        link_index(agreement, [chain["folders"][0]], idx, tmp_path / "o2")


def test_blocked_pairs_are_splinks_restricted_to_new_records(
    chain: dict, agreement: Agreement, tmp_path: Path
) -> None:
    import logging

    from splink import Linker

    state = store.read_index(agreement, chain["snaps"][-1])
    kinds = state.model["token_kinds"]
    tables, n = {}, 0
    for ds, t in sorted(state.records.items()):
        tok = t.drop_columns(["row_ref", "person_id", "delivery"])
        tables[ds] = tok.append_column("gid", pa.array(np.arange(n, n + t.num_rows)))
        n += t.num_rows
    be = open_backend("duckdb", tmp_path / "db")
    try:
        inputs = incremental.load(be, tables, kinds)
        settings = incremental.settings_for(state.model["splink"], len(inputs))
        linker = Linker(inputs, settings, log_level=logging.ERROR)
        theirs = linker.inference.compute_blocked_pairs_for_predict()
        cols = "match_key, join_key_l, join_key_r"
        splink_pairs = be.con.execute(f"SELECT {cols} FROM {theirs.physical_name}").fetchall()

        def ours(new_from: int) -> list[tuple]:
            rules = settings["blocking_rules_to_generate_predictions"]
            return be.con.execute(incremental.blocked_pairs_sql(inputs, rules, new_from)).fetchall()

        def unordered(pairs: list[tuple]) -> set[tuple]:
            return {(int(k), *sorted((a, b))) for k, a, b in pairs}

        everything = ours(0)
        assert unordered(everything) == unordered(splink_pairs) and len(everything) > 100
        # From record n // 2 on: exactly Splink's pairs with at least one such record.
        half = n // 2

        def touches(p: tuple) -> bool:
            return any(int(str(x).rsplit("-__-", 1)[-1]) >= half for x in p[1:])

        assert unordered(ours(half)) == unordered([p for p in splink_pairs if touches(p)])
    finally:
        be.close()


def test_index_outputs_travel_sealed_to_the_analysts(agreement: Agreement, tmp_path: Path) -> None:
    from wmw_link.party_keys import new_keyring
    from wmw_link.seal import unseal_all

    secrets = new_keyring(["linkage-unit", "insight-team"], tmp_path / "secrets", tmp_path / "ring")
    write_fixture(agreement, tmp_path / "all", n_households=20, key_check="ab" * 16)
    folders = split(tmp_path / "all", tmp_path / "deliveries", 2)
    runner = CliRunner()
    for n, folder in enumerate(folders, start=1):
        out = tmp_path / f"out{n}"
        res = runner.invoke(main, [
            "link", "--agreement", str(AGREEMENT), "--index", str(tmp_path / "idx"),
            "--inputs", str(folder), "--out", str(out), "--state", str(tmp_path / "ttp.json"),
            "--no-report", "--seal-to", "insight-team",
            "--party-secret", str(secrets["linkage-unit"]), "--keyring", str(tmp_path / "ring"),
        ])  # fmt: skip
        assert res.exit_code == 0, res.output
        got = unseal_all(
            out / "sealed" / "insight-team", agreement=agreement, keyring=tmp_path / "ring",
            secret=secrets["insight-team"], out_dir=tmp_path / f"analyst{n}",
            state=tmp_path / "analyst.json",
        )  # fmt: skip
        names = {r.path.name for r in got}
        assert {"link-manifest.json", "id-changes.parquet", "hmrc_rti.map.parquet"} <= names
        m = pq.read_table(tmp_path / f"analyst{n}" / "hmrc_rti.map.parquet")
        assert m.schema.names == ["row_ref", "person_id", "delivery"]
        assert set(m["delivery"].to_pylist()) == {n}
    # The index variant of the link manifest is checked as strictly as the plain one.
    from wmw_link.errors import PolicyError
    from wmw_link.manifest_check import check_manifest

    path = tmp_path / "out2" / "link-manifest.json"
    check_manifest(agreement, path, "link-manifest.json", None)
    original = json.loads(path.read_text())
    forged = [
        lambda m: m["index"].update(mode="bogus"),
        lambda m: m.update(extra=1),
        lambda m: m["counts"].update(map_rows=m["counts"]["map_rows"] + 1),
        lambda m: m["id_changes"].update(name="other.parquet"),
    ]
    for change in forged:
        m = json.loads(json.dumps(original))
        change(m)
        path.write_text(json.dumps(m))
        with pytest.raises(PolicyError, match="rule 'fields'"):
            check_manifest(agreement, path, "link-manifest.json", None)


def test_a_dataset_first_delivered_later_links_to_the_index(
    agreement: Agreement, tmp_path: Path
) -> None:
    # Delivery 1 deduplicates one register (Splink dedupe_only); delivery 2 brings two more
    # datasets, linked with the stored model (link_and_dedupe).
    truth = write_fixture(agreement, tmp_path / "all", n_households=30)
    for f in (tmp_path / "all").iterdir():
        dst = tmp_path / ("d1" if f.name.startswith("hmrc_rti") else "d2")
        dst.mkdir(exist_ok=True)
        shutil.copy(f, dst / f.name)
    link_index(agreement, [tmp_path / "d1"], tmp_path / "idx", tmp_path / "o1", seed=1,
               report=False)  # fmt: skip
    r = link_index(agreement, [tmp_path / "d2"], tmp_path / "idx", tmp_path / "o2", seed=1)
    assert r.mode == "incremental" and r.comparisons > 0
    got = _index_persons(tmp_path / "idx", agreement)
    assert set(got["dataset"]) == {"hmrc_rti", "nhs_referrals", "hub_birmingham"}
    # Records of one true person in hmrc_rti and another dataset mostly share a person id.
    got["true"] = [truth[(d, r)] for d, r in zip(got["dataset"], got["row_ref"], strict=True)]
    cross = got.groupby("true").filter(lambda g: g["dataset"].nunique() > 1)
    same = cross.groupby("true")["person_id"].nunique() == 1
    assert len(same) > 10 and same.mean() > 0.8


def test_an_incremental_run_reads_placeholder_ids_as_null(tmp_path: Path) -> None:
    """A full fit nulls placeholder NINos before blocking; an incremental run's views over the
    stored records read them as null too (else the NINo rule pairs the strangers sharing one,
    and the weak rules keep one person's records apart)."""
    import pyarrow as pa

    from wmw_link.linkage.backends import open_backend

    strangers = 12  # placeholder_values needs 10 records of one value
    table = pa.table({
        "gid": pa.array(range(strangers + 2), pa.int64()),
        "nino": pa.array([7] * strangers + [9, 9], pa.int64()),
        "fn_dob": pa.array([100 + i for i in range(strangers)] + [5, 5], pa.int64()),
    })  # fmt: skip
    kinds = {"nino": "hmac", "fn_dob": "hmac"}
    be = open_backend("duckdb", tmp_path)
    try:
        (view,) = incremental.load(be, {"a": table}, kinds, copy=False)
        got = be.con.execute(f"SELECT nino, COUNT(*) FROM {view.physical_name} GROUP BY ALL")
        assert sorted(got.fetchall(), key=str) == sorted([(None, strangers), (9, 2)], key=str)
        (copied,) = incremental.load(be, {"b": table}, kinds)  # a fit nulls its own tables
        got = be.con.execute(f"SELECT COUNT(*) FROM {copied.physical_name} WHERE nino = 7")
        assert got.fetchone()[0] == strangers
    finally:
        be.close()
