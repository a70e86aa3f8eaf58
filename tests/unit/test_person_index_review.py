"""Adversarial review of the person index: failure ordering, durability, replay by analysts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from index_fixtures import split
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
    assert r.delivery == 2 and r.corrected == 0 and len(list(idx.glob("gen-*"))) == 1
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
