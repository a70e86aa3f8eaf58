"""benchmarks/same_persons.py: two link outputs compared by the records their persons gather."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.same_persons import compare_links  # noqa: E402


def _maps(folder: Path, persons: dict[str, list[str]]) -> Path:
    folder.mkdir()
    for ds, ids in persons.items():
        refs = [f"{ds}-{i}" for i in range(len(ids))]
        pq.write_table(pa.table({"row_ref": refs, "person_id": ids}), folder / f"{ds}.map.parquet")
    return folder


def test_same_clusters_under_other_names_are_identical(tmp_path: Path) -> None:
    a = _maps(tmp_path / "a", {"x": ["p1", "p1", "p2"], "y": ["p2", "p3"]})
    b = _maps(tmp_path / "b", {"x": ["q9", "q9", "q8"], "y": ["q8", "q7"]})
    got = compare_links(a, b)
    assert got["records_in_both"] == 5
    assert got["identical_persons"] == 3 and got["identical_record_share"] == 1.0
    assert got["pairs_first"] == got["pairs_second"] == got["pairs_in_both"] == 2
    assert got["pair_f1"] == 1.0


def test_a_split_person_is_counted(tmp_path: Path) -> None:
    # The second run splits p1's three records 2 + 1 and keeps p2.
    a = _maps(tmp_path / "a", {"x": ["p1", "p1", "p1", "p2", "p2"]})
    b = _maps(tmp_path / "b", {"x": ["q1", "q1", "q3", "q2", "q2"]})
    got = compare_links(a, b)
    assert got["persons_first"] == 2 and got["persons_second"] == 3
    assert got["identical_persons"] == 1  # only p2 = q2
    assert got["records_with_identical_person"] == 2
    assert got["pairs_first"] == 4 and got["pairs_second"] == 2 and got["pairs_in_both"] == 2
    assert abs(got["pair_f1"] - 2 * 2 / (4 + 2)) < 1e-12
