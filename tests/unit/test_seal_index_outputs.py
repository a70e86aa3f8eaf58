"""A person-index run's outputs travel sealed to the analysts: maps with their delivery column,
id-changes.parquet and the index link manifest (seal's flows, fields and manifest checks)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from index_fixtures import split
from linkage_fixtures import write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.errors import PolicyError, VerificationError
from wmw_link.files import sha256_file, write_json_atomic
from wmw_link.linkage.index import link_index
from wmw_link.party_keys import new_keyring
from wmw_link.seal import FileKind, classify, seal_file, unseal_all

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture(scope="module")
def runs(agreement: Agreement, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("sealidx")
    # A real key check is 32 hex characters (the fixture default is a label).
    write_fixture(agreement, base / "all", n_households=30, key_check="0f" * 16)
    folders = split(base / "all", base / "deliveries", 2)
    return [
        link_index(agreement, [f], base / "index", base / f"out{i}", seed=1, report=False).out_dir
        for i, f in enumerate(folders, start=1)
    ]


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    secrets = new_keyring(["linkage-unit", "insight-team", "dwp"], tmp_path / "s", tmp_path / "r")
    return {**secrets, "ring": tmp_path / "r"}


def _seal_run(agreement, run: Path, keys, dest: Path, delivery: int) -> None:
    for f in sorted(run.iterdir()):
        if f.is_file():
            seal_file(f, agreement=agreement, secret=keys["linkage-unit"],
                      recipient="insight-team", keyring=keys["ring"],
                      out=dest / f"{f.name}.sealed", delivery=delivery)  # fmt: skip


def test_index_outputs_seal_and_unseal_whole(agreement, runs, keys, tmp_path) -> None:
    assert classify("id-changes.parquet") == (FileKind.ID_CHANGES, None)
    run = runs[1]
    _seal_run(agreement, run, keys, tmp_path / "sealed", 2)
    got = unseal_all(tmp_path / "sealed", agreement=agreement, secret=keys["insight-team"],
                     keyring=keys["ring"], out_dir=tmp_path / "in",
                     state=tmp_path / "state.json")  # fmt: skip
    files = [f for f in run.iterdir() if f.is_file()]
    assert len(got) == len(files) and "id-changes.parquet" in {f.name for f in files}
    for f in files:
        assert (tmp_path / "in" / f.name).read_bytes() == f.read_bytes(), f.name


def test_id_changes_only_from_the_ttp_to_the_analysts(agreement, runs, keys, tmp_path) -> None:
    with pytest.raises(PolicyError, match="flows"):
        seal_file(runs[0] / "id-changes.parquet", agreement=agreement, secret=keys["dwp"],
                  recipient="insight-team", keyring=keys["ring"], out=tmp_path / "x.sealed")  # fmt: skip


def test_id_changes_with_another_column_are_refused(agreement, runs, keys, tmp_path) -> None:
    t = pq.read_table(runs[1] / "id-changes.parquet")
    bad = tmp_path / "id-changes.parquet"
    pq.write_table(t.append_column("nino", pa.array(["x"] * t.num_rows, pa.string())), bad)
    with pytest.raises(PolicyError, match="rule 'fields'.*nino"):
        seal_file(bad, agreement=agreement, secret=keys["linkage-unit"],
                  recipient="insight-team", keyring=keys["ring"], out=tmp_path / "x.sealed")  # fmt: skip


def test_an_altered_id_changes_file_is_refused_at_unseal(agreement, runs, keys, tmp_path) -> None:
    run = shutil.copytree(runs[1], tmp_path / "run")
    t = pq.read_table(run / "id-changes.parquet")
    extra = pa.table({c: pa.array(["p"] if c != "delivery" else [2], t.schema.field(c).type)
                      for c in t.column_names})  # fmt: skip
    pq.write_table(pa.concat_tables([t, extra]), run / "id-changes.parquet")
    _seal_run(agreement, run, keys, tmp_path / "sealed", 2)
    with pytest.raises(VerificationError, match="id-changes.parquet"):
        unseal_all(tmp_path / "sealed", agreement=agreement, secret=keys["insight-team"],
                   keyring=keys["ring"], out_dir=tmp_path / "in")  # fmt: skip
    assert not (tmp_path / "in" / "id-changes.parquet").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["index"].update(secret="x"), "'index' has 1 key"),
        (lambda m: m["index"].update(mode="sideways"), "index.mode"),
        (lambda m: m["counts"].update(map_rows=m["counts"]["map_rows"] + 1), "map_rows"),
        (lambda m: m["id_changes"].update(name="other.parquet"), "id_changes.name"),
        (lambda m: m.update(notes="free text"), "(top level)"),
    ],
)
def test_index_link_manifest_must_be_what_the_writer_makes(
    agreement, runs, keys, tmp_path, edit, message
) -> None:
    man = json.loads((runs[1] / "link-manifest.json").read_text())
    edit(man)
    path = tmp_path / "link-manifest.json"
    write_json_atomic(path, man)
    with pytest.raises(PolicyError, match="rule 'fields'") as e:
        seal_file(path, agreement=agreement, secret=keys["linkage-unit"],
                  recipient="insight-team", keyring=keys["ring"], out=tmp_path / "x.sealed")  # fmt: skip
    assert message in str(e.value)
    assert sha256_file(runs[1] / "link-manifest.json")  # the real one is untouched
