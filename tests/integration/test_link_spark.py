"""DuckDB and Spark give the same persons on the same small token fixture."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from linkage_fixtures import write_fixture  # noqa: E402

from wmw_link.agreement import load_agreement  # noqa: E402

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"

pytestmark = [
    pytest.mark.spark,
    pytest.mark.integration,
    # CI installs Java (.ci/run); a developer machine without it skips rather than fails.
    pytest.mark.skipif(
        shutil.which("java") is None and not os.environ.get("CI"), reason="Spark needs Java"
    ),
]

#: Spark settings for a tiny local run. The run's cost is Spark's per-query overhead (planning
#: and compiling Splink's wide SQL), not the data: two partitions, no adaptive re-planning and
#: no code generation (interpreted expressions start at once; the generated code for Splink's
#: comparison vectors is too large to compile anyway). The UI is disabled by the back end.
SPARK_SUBMIT_ARGS = (
    "--conf spark.sql.codegen.wholeStage=false --conf spark.sql.codegen.factoryMode=NO_CODEGEN "
    "--conf spark.sql.adaptive.enabled=false pyspark-shell"
)


def _partition(out: Path) -> set[frozenset[tuple[str, str]]]:
    """The clustering as a set of groups of (dataset, row_ref), independent of id values."""
    frames = [
        pd.read_parquet(p).assign(dataset=p.name.removesuffix(".map.parquet"))
        for p in sorted(out.glob("*.map.parquet"))
    ]
    allrec = pd.concat(frames, ignore_index=True)
    return {
        frozenset(zip(g["dataset"], g["row_ref"], strict=True))
        for _, g in allrec.groupby("person_id")
    }


def test_duckdb_and_spark_give_the_same_persons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark")
    from wmw_link.linkage import link

    # Shuffle partitions and default parallelism (read by the back end when Spark starts).
    monkeypatch.setenv("WMW_SPARK_PARTITIONS", "2")
    if "PYSPARK_SUBMIT_ARGS" not in os.environ:  # a configured cluster wins
        monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", SPARK_SUBMIT_ARGS)
    agreement = load_agreement(AGREEMENT)
    inbox = tmp_path / "in"
    # 15 households (about 60 records over three sources): duplicates within sources, links
    # across them and households the rule must keep apart, at a fraction of the Spark time.
    write_fixture(agreement, inbox, n_households=15, seed=3)
    duck = link(agreement, inbox, tmp_path / "duck", backend="duckdb", seed=5, report=False)
    spark = link(agreement, inbox, tmp_path / "spark", backend="spark", seed=5, report=False)
    assert duck.records == spark.records
    assert duck.comparisons == spark.comparisons
    duck_groups = _partition(tmp_path / "duck")
    # The fixture must exercise linkage: some persons have several records, across sources.
    assert any(len(g) > 1 for g in duck_groups)
    assert any(len({ds for ds, _ in g}) > 1 for g in duck_groups)
    assert duck_groups == _partition(tmp_path / "spark")
    assert duck.persons == spark.persons


def test_placeholder_ids_are_found_and_nulled_on_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark")
    from wmw_link.linkage.backends import open_backend
    from wmw_link.linkage.id_u import placeholder_values

    monkeypatch.setenv("WMW_SPARK_PARTITIONS", "2")
    if "PYSPARK_SUBMIT_ARGS" not in os.environ:
        monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", SPARK_SUBMIT_ARGS)
    be = open_backend("spark", tmp_path / "spark")
    try:
        # 7: twelve people's records (no name and date shared); 8: one person's twelve records.
        rows = [(i, 7, 100 + i) for i in range(12)] + [(20 + i, 8, 50) for i in range(12)]
        # Built in SQL, not createDataFrame: a session an earlier link in this process left
        # running keeps that run's (removed) local folder for the files parallelize writes.
        values_sql = ", ".join(f"({a}L, {b}L, {c}L)" for a, b, c in rows)
        df = be.spark.sql(f"SELECT * FROM VALUES {values_sql} AS t(unique_id, nino, fn_dob)")
        name = be.db_api.register(df, dataset_display_name="t").physical_name
        values = placeholder_values(be, [name], "nino", ["nino", "fn_dob"])
        assert values == [7]
        be.null_tokens(name, "nino", values)
        assert sorted(be.rows(f"SELECT nino, COUNT(*) FROM {name} GROUP BY nino"),
                      key=str) == [(8, 12), (None, 12)]  # fmt: skip
    finally:
        be.close()
