"""DuckDB and Spark give the same persons on the same small token fixture."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from linkage_fixtures import write_fixture  # noqa: E402

from wmw_link.agreement import load_agreement  # noqa: E402

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"

pytestmark = [pytest.mark.spark, pytest.mark.integration]


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


def test_duckdb_and_spark_give_the_same_persons(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    from wmw_link.linkage import link

    agreement = load_agreement(AGREEMENT)
    inbox = tmp_path / "in"
    write_fixture(agreement, inbox, n_households=25, seed=3)
    duck = link(agreement, inbox, tmp_path / "duck", backend="duckdb", seed=5, report=False)
    spark = link(agreement, inbox, tmp_path / "spark", backend="spark", seed=5, report=False)
    assert duck.records == spark.records
    assert duck.comparisons == spark.comparisons
    assert _partition(tmp_path / "duck") == _partition(tmp_path / "spark")
    assert duck.persons == spark.persons
