"""bench_linkage's own scoring in DuckDB: maps joined to crosswalks, by position or by row_ref."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_linkage  # noqa: E402

from wmw_link.resources import close_duckdb, open_duckdb  # noqa: E402


def _write(path: Path, **cols: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)


@pytest.mark.parametrize("shuffled", [False, True])
def test_token_nodes_join_each_map_row_to_its_crosswalk_row(tmp_path: Path, shuffled: bool) -> None:
    refs = [f"r{i}" for i in range(6)]
    _write(
        tmp_path / "link" / "a.map.parquet",
        row_ref=refs,
        person_id=[f"p{i // 2}" for i in range(6)],
    )
    xw = list(zip([f"A{i}" for i in range(6)], refs, strict=True))
    if shuffled:  # a crosswalk in another order: the rows must still meet by row_ref
        xw = xw[::-1]
    _write(
        tmp_path / "crosswalks" / "a.crosswalk.parquet",
        record_id=[r for r, _ in xw],
        row_ref=[f for _, f in xw],
    )
    _write(tmp_path / "link" / "b.map.parquet", row_ref=["s0"], person_id=["p9"])  # no crosswalk
    con, spill = open_duckdb("200MB")
    try:
        con.execute("CREATE TYPE wmw_dataset AS ENUM ('a', 'b')")
        table = bench_linkage._token_nodes(con, tmp_path, "link")
        got = con.execute(
            f"SELECT CAST(dataset AS VARCHAR), record_id, uid, pred FROM {table} ORDER BY uid"
        ).fetchall()
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    finally:
        close_duckdb(con, spill)
    assert got == [("a", f"A{i}", f"r{i}", f"p{i // 2}") for i in range(6)]
    assert columns == ["dataset", "record_id", "uid", "pred"]


def test_token_nodes_need_a_map_with_a_crosswalk(tmp_path: Path) -> None:
    _write(tmp_path / "link" / "a.map.parquet", row_ref=["r0"], person_id=["p0"])
    con, spill = open_duckdb("200MB")
    try:
        with pytest.raises(SystemExit, match="no maps with a crosswalk"):
            bench_linkage._token_nodes(con, tmp_path, "link")
    finally:
        close_duckdb(con, spill)
