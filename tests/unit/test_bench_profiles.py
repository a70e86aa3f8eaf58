"""The benchmarks' --profile knob: it reaches the generator and names the results files."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_linkage, bench_synth  # noqa: E402


def test_linkage_results_name_keeps_standard_results_apart() -> None:
    assert bench_linkage.results_name("standard") == "linkage"
    assert bench_linkage.results_name("hard") == "linkage-hard"
    assert bench_linkage.results_name("hard", "linkage_1m") == "linkage_1m"


def test_linkage_synth_stage_uses_the_profile(tmp_path: Path) -> None:
    out = bench_linkage.stage_synth(tmp_path, 200, "hard")
    assert out["profile"] == "hard"
    summary = json.loads((tmp_path / "synth" / "synth.json").read_text())
    assert summary["profile"]["name"] == "hard"


def test_linkage_bench_refuses_an_unknown_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_linkage.py", "--profile", "harder"])
    with pytest.raises(SystemExit) as e:
        bench_linkage.main()
    assert e.value.code == 2


def test_synth_bench_writes_hard_results_beside_standard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        bench_synth, "Bench", functools.partial(bench_synth.Bench, results_dir=tmp_path)
    )
    bench_synth.main(["--runs", "300:1", "--profile", "hard"])
    doc = json.loads((tmp_path / "synth-hard.json").read_text())
    assert doc["params"]["profile"] == "hard"
    assert (tmp_path / "synth-hard.md").is_file() and not (tmp_path / "synth.json").exists()


def test_linkage_reuse_needs_a_work_folder_with_records_and_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_linkage.py", "--reuse", "--people", "100"])
    with pytest.raises(SystemExit) as e:
        bench_linkage.main()
    assert e.value.code == 2  # no --work
    with pytest.raises(SystemExit, match="no synth/ and inbox/"):
        bench_linkage._reused_stage(tmp_path, "tokenise")
    (tmp_path / "synth" / "truth").mkdir(parents=True)
    (tmp_path / "inbox").mkdir()
    # A stage run by hand (its JSON without a wall time) or not recorded: figures unknown.
    (tmp_path / "tokenise.json").write_text('{"rows": {}, "peak_mib": 800.0}\n')
    assert bench_linkage._reused_stage(tmp_path, "tokenise")["wall_seconds"] is None
    assert bench_linkage._reused_stage(tmp_path, "tokenise")["peak_mib"] == 800.0
    assert bench_linkage._reused_stage(tmp_path, "synth") == {
        "wall_seconds": None,
        "peak_mib": None,
    }
