"""Adversarial review of the person index: failure ordering, durability, replay by analysts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet  # noqa: F401 - pa.parquet
import pytest
from index_fixtures import only_listed_files, split
from linkage_fixtures import write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.linkage.index import link_index, run, store

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture(scope="module")
def small(agreement: Agreement, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two deliveries of a small fixture; the index after the first."""
    base = tmp_path_factory.mktemp("review")
    write_fixture(agreement, base / "all", n_households=25, seed=5)
    folders = split(base / "all", base / "deliveries", 2)
    link_index(agreement, [folders[0]], base / "index", base / "out1", seed=1, report=False)
    return {"base": base, "folders": folders, "snap": base / "index"}


def _clone(snap: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(snap, dst)
    return dst


def test_index_not_committed_when_the_run_outputs_cannot_be_written(
    small: dict, agreement: Agreement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id changes and maps of a delivery exist only in the run's outputs: if they are lost,
    the index must not have moved on (else analysts can never replay that delivery)."""
    idx = _clone(small["snap"], tmp_path)
    before = (idx / store.MANIFEST_NAME).read_bytes()

    def boom(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "write_json_atomic", boom)  # the link manifest cannot be written
    with pytest.raises(Exception, match="No space left|cannot write"):
        link_index(agreement, [small["folders"][1]], idx, tmp_path / "o", seed=1)
    monkeypatch.undo()
    assert not (tmp_path / "o").exists()
    assert (idx / store.MANIFEST_NAME).read_bytes() == before  # delivery 2 not recorded
    assert store.read_manifest(agreement, idx)["deliveries"] == [1]
    # The delivery can simply be run again, as delivery 2.
    r = link_index(agreement, [small["folders"][1]], idx, tmp_path / "o", seed=1)
    assert r.delivery == 2 and r.corrected == 0 and only_listed_files(idx)
    assert json.loads(r.manifest.read_text())["index"]["deliveries"] == [1, 2]


def test_index_put_back_when_the_outputs_cannot_be_swapped_in(
    small: dict, agreement: Agreement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit is the run's last step; if the output folder then cannot replace the old
    one, the index goes back to the previous generation (still on disk until then)."""
    from wmw_link import outdir

    idx = _clone(small["snap"], tmp_path)
    before = (idx / store.MANIFEST_NAME).read_bytes()
    gens = sorted(p.name for p in idx.glob("gen-*"))

    def boom(stage: Path, target: Path) -> None:
        raise OSError(13, "Permission denied", str(target))

    monkeypatch.setattr(outdir, "_swap", boom)
    with pytest.raises(Exception, match="Permission denied"):
        link_index(agreement, [small["folders"][1]], idx, tmp_path / "o", seed=1)
    monkeypatch.undo()
    assert (idx / store.MANIFEST_NAME).read_bytes() == before
    assert sorted(p.name for p in idx.glob("gen-*")) == gens  # the new one discarded
    store.read_index(agreement, idx)  # verifies


def _index_view(agreement: Agreement, idx: Path) -> dict[tuple[str, str], str]:
    state = store.read_index(agreement, idx)
    return {
        (ds, r): p
        for ds, t in state.records.items()
        for r, p in zip(t["row_ref"].to_pylist(), t["person_id"].to_pylist(), strict=True)
    }


def test_journeys_replay_of_real_index_runs_gives_the_index(
    small: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """The analysts' own code (journeys.refresh) over the TTP's real outputs: incremental,
    correction + withdrawals, retrain; after every refresh the persons are the index's."""
    import pyarrow.compute as pc
    from index_fixtures import resend, withdrawal

    from wmw_link.journeys import refresh

    idx = _clone(small["snap"], tmp_path)
    outs = [small["base"] / "out1"]
    withdrawn: dict[str, set[str]] = {}
    r2 = link_index(agreement, [small["folders"][1]], idx, tmp_path / "o2", seed=1)
    outs.append(r2.out_dir)
    view = _index_view(agreement, idx)
    views = [{}, view]
    by_person: dict[str, list[tuple[str, str]]] = {}
    for k, p in view.items():
        by_person.setdefault(p, []).append(k)
    big = sorted((v for v in by_person.values() if len(v) >= 3), key=len)[-1]
    pair = next(v for v in by_person.values() if len(v) == 2)
    other = next(v for v in by_person.values() if len(v) >= 2 and v not in (big, pair))
    # Run 3: one record of the biggest person re-sent with another person's tokens, one more
    # of it withdrawn, and a two-record person withdrawn whole.
    moved_ds, moved_ref = big[0]
    donor_ds, donor_ref = next(k for k in other if k[0] == moved_ds) if any(
        k[0] == moved_ds for k in other) else (moved_ds, None)  # fmt: skip
    lists = [withdrawal(big[1][0], [big[1][1]])]
    lists += [withdrawal(ds, [r]) for ds, r in pair]
    for w in lists:
        withdrawn.setdefault(w.dataset, set()).update(w.row_refs.to_pylist())
    inputs = []
    if donor_ref is not None:
        resend(small["base"] / "all", tmp_path / "d3", moved_ds, [moved_ref], [donor_ref])
        inputs = [tmp_path / "d3"]
    r3 = link_index(agreement, inputs, idx, tmp_path / "o3", withdrawals=lists, seed=1)
    assert r3.withdrawn == 3
    outs.append(r3.out_dir)
    views.append(_index_view(agreement, idx))
    r4 = link_index(agreement, [], idx, tmp_path / "o4", retrain=True, seed=3, report=False)
    outs.append(r4.out_dir)
    views.append(_index_view(agreement, idx))
    for n in range(2, len(outs) + 1):
        runs = refresh._order_runs([refresh._load_run(agreement, d) for d in outs[:n]])
        acc = refresh.Accumulated(refresh._Inputs({}), refresh._Inputs({}))
        maps = refresh._accumulate_maps(runs, acc)
        got = {}
        for ds, t in maps.items():
            wd = pa.array(sorted(withdrawn.get(ds, set())) if n >= 3 else [], pa.string())
            t = t.filter(pc.invert(pc.is_in(t["row_ref"], value_set=wd)))
            got.update(zip([(ds, r) for r in t["row_ref"].to_pylist()],
                           t["person_id"].to_pylist(), strict=True))  # fmt: skip
        assert got == views[n - 1], f"after refresh {n}"


def test_generation_is_on_disk_before_the_manifest_names_it(
    agreement: Agreement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut after the commit must not leave a manifest naming files whose data never
    reached the disk (the previous generation is deleted right after): every file of the new
    generation is fsynced before the manifest is replaced, the manifest before the previous
    generation is deleted."""
    import os

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    events: list[tuple[str, set[str]]] = []
    real_write, real_stale = store.write_json_atomic, store.remove_stale

    def write(path: Path, obj: object, durable: bool = False) -> None:
        events.append(("commit", set(synced)))
        real_write(path, obj, durable=durable)

    def stale(index_dir: Path, keep: str | None) -> None:
        events.append(("remove_stale", set(synced)))
        real_stale(index_dir, keep)

    monkeypatch.setattr(store.os, "fsync", spy)
    monkeypatch.setattr(store, "write_json_atomic", write)
    monkeypatch.setattr(store, "remove_stale", stale)
    edges = pa.Table.from_pylist([], schema=store.EDGE_SCHEMA)
    recs = {"hmrc_rti": pa.table({"rid": pa.array([0], pa.int64()), "row_ref": ["a" * 32],
                                  "delivery": pa.array([1], pa.int32())})}  # fmt: skip
    persons = pa.table({"rid": pa.array([0], pa.int64()), "person": pa.array([0], pa.int32())})
    idx = tmp_path / "idx"
    written = store.write_generation(
        idx, agreement, key_check="kc", deliveries=[1], model={"m": 1}, kept=[],
        new_segments=recs, persons=persons, person_ids=pa.array(["p1"]), edges=edges,
        next_rid=1, extra={},
    )  # fmt: skip
    store.commit(written)
    gen = idx / store.read_manifest(agreement, idx)["generation"]
    files = {str(p.relative_to(gen)) for p in gen.rglob("*") if p.is_file()}
    (kind, at_commit), (kind2, at_removal) = events
    assert kind == "commit" and kind2 == "remove_stale"

    def in_gen(paths: set[str]) -> set[str]:  # written in the staging folder, then renamed
        names = (gen.name, f".{gen.name}.tmp")
        return {"/".join(Path(x).parts[Path(x).parts.index(n) + 1 :])
                for x in paths for n in names if n in Path(x).parts}  # fmt: skip

    assert files <= in_gen(at_commit), "generation files not fsynced before the commit"
    assert str(idx.resolve()) in at_commit  # the renamed folder's entry
    assert str((idx / store.MANIFEST_NAME).resolve()) in at_removal
    # The new manifest's bytes reached the disk before the rename made it the manifest (a
    # power cut must not leave an empty one).
    tmp_name = f".{store.MANIFEST_NAME}."
    assert any(Path(x).name.startswith(tmp_name) and x.endswith(".tmp") for x in at_removal)


def test_a_correction_wins_over_the_earlier_delivery_whatever_the_order_of_inputs(
    agreement: Agreement, tmp_path: Path
) -> None:
    """`--inputs inbox-*` lists inbox-10 before inbox-2: the merge must follow the deliveries'
    numbers (their manifests), not the command line, or a correction is silently undone."""
    import pyarrow.parquet as pq
    from index_fixtures import write_tokens

    from wmw_link.linkage.verify import verify_deliveries

    write_fixture(agreement, tmp_path / "all", n_households=4, seed=5)
    m = json.loads((tmp_path / "all" / "hmrc_rti.manifest.json").read_text())
    t = pq.read_table(tmp_path / "all" / "hmrc_rti.tokens.parquet")
    first = t.slice(0, 2)
    fixed = t.slice(2, 1).set_column(0, "row_ref", first.slice(0, 1)["row_ref"])  # re-sent
    write_tokens(tmp_path / "inbox-2", {**m, "delivery": 2}, first)
    write_tokens(tmp_path / "inbox-10", {**m, "delivery": 10}, fixed)
    order = [tmp_path / "inbox-10", tmp_path / "inbox-2"]  # as a shell glob sorts them
    ref0 = first["row_ref"][0].as_py()
    want = fixed.slice(0, 1).drop_columns(["row_ref"]).to_pylist()

    _, tables = run.read_inputs(agreement, order)  # link --index
    got = tables["hmrc_rti"]
    row = got.filter(pa.compute.equal(got["row_ref"], ref0)).drop_columns(["row_ref"])
    assert got.num_rows == 2 and row.to_pylist() == want

    (plain,) = [v for v in verify_deliveries(agreement, order, tmp_path / "tmp")
                if v.dataset == "hmrc_rti"]  # fmt: skip  # plain link
    got = pq.read_table(plain.tokens_path)
    row = got.filter(pa.compute.equal(got["row_ref"], ref0)).drop_columns(["row_ref"])
    assert got.num_rows == 2 and row.to_pylist() == want
    assert plain.manifest["delivery"] == 10  # the merged input stands for the latest delivery


def test_link_over_every_delivery_passes_the_freshness_check(
    agreement: Agreement, tmp_path: Path
) -> None:
    """docs/person-index.md: one plain `link` re-links every delivery (--inputs repeated). The
    TTP's state has accepted the latest delivery; the earlier ones given with it are history,
    not a replay. An earlier delivery given alone is still refused."""
    from index_fixtures import write_tokens

    from wmw_link import freshness
    from wmw_link.errors import VerificationError
    from wmw_link.files import sha256_file

    write_fixture(agreement, tmp_path / "all", n_households=4, seed=5)
    m = json.loads((tmp_path / "all" / "hmrc_rti.manifest.json").read_text())
    t = pa.parquet.read_table(tmp_path / "all" / "hmrc_rti.tokens.parquet")
    write_tokens(tmp_path / "inbox-2", {**m, "delivery": 2}, t.slice(0, 2))
    write_tokens(tmp_path / "inbox-10", {**m, "delivery": 10}, t.slice(2, 2))
    state = tmp_path / "state.json"
    latest = tmp_path / "inbox-10" / "hmrc_rti.manifest.json"
    freshness.commit(state, [freshness.Acceptance(freshness.Delivery("hmrc_rti", 10),
                                                  latest.name, sha256_file(latest), False)])  # fmt: skip
    old = tmp_path / "inbox-2" / "hmrc_rti.manifest.json"
    freshness.check_inputs(state, [old, latest])  # every delivery, the latest included
    with pytest.raises(VerificationError, match="rule 'freshness'"):
        freshness.check_inputs(state, [old])


def test_lock_of_a_folder_made_meanwhile_by_another_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first runs on an absent index: the second sees no folder, the first makes it; the
    second must then get the lock question (held or free), not a FileExistsError traceback."""
    idx = tmp_path / "idx"
    real = Path.is_dir

    def racing(self: Path) -> bool:
        if self == idx and not real(self):
            idx.mkdir(mode=0o700)  # the other run makes it just after this check
            return False
        return real(self)

    monkeypatch.setattr(Path, "is_dir", racing)
    with store.locked(idx):
        assert (idx / store.LOCK_NAME).is_file()


def test_index_outputs_can_be_sealed_to_the_analysts(
    small: dict, agreement: Agreement, tmp_path: Path
) -> None:
    """`link --index --seal-to insight-team`: the analysts need the maps, the link manifest and
    id-changes.parquet (journeys refuse a run whose listed id changes are missing)."""
    from wmw_link.journeys import refresh
    from wmw_link.party_keys import new_keyring
    from wmw_link.seal import seal_outputs, unseal_all

    secrets = new_keyring(["linkage-unit", "insight-team"], tmp_path / "s", tmp_path / "ring")
    # A key check value as tokenise writes it (32 hex characters).
    write_fixture(agreement, tmp_path / "all", n_households=12, seed=5, key_check="ab" * 16)
    d1, d2 = split(tmp_path / "all", tmp_path / "d", 2)
    for i, folder in enumerate([d1, d2], start=1):
        r = link_index(agreement, [folder], tmp_path / "idx", tmp_path / f"o{i}", seed=1,
                       report=False)  # fmt: skip
        outputs = [*r.maps.values(), r.id_changes, r.manifest]
        sealed = seal_outputs(outputs, agreement=agreement, secret=secrets["linkage-unit"],
                              recipients=["insight-team"], keyring=tmp_path / "ring",
                              out_dir=tmp_path / f"sealed{i}", delivery=i)  # fmt: skip
        names = {Path(s.path).name for s in sealed}
        assert {"id-changes.parquet.sealed", "link-manifest.json.sealed",
                "hmrc_rti.map.parquet.sealed"} <= names  # fmt: skip
        # The analysts unseal them and journeys read the run, id changes included.
        unseal_all(tmp_path / f"sealed{i}" / "insight-team", agreement=agreement,
                   secret=secrets["insight-team"], keyring=tmp_path / "ring",
                   out_dir=tmp_path / f"in{i}")  # fmt: skip
        run_ = refresh._load_run(agreement, tmp_path / f"in{i}")
        assert run_.delivery == i and run_.changes is not None
