"""The link's candidate pairs (linkage/predict_blocks.rule_pair_tables, first_rule_pairs) are Splink's: the same
pairs and the same match keys as ``compute_blocked_pairs_for_predict``, for several datasets
(one union input) and for one dataset deduplicated."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from linkage_fixtures import write_fixture

from wmw_link.agreement import load_agreement
from wmw_link.linkage import link, predict_blocks

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"


def _compare_with_splink(monkeypatch) -> list[dict[str, set]]:
    """Patch rule_pair_tables so that each link also gets Splink's pairs and ours made three
    ways: all at once, with a list rule's values in 3 parts, and grouped by left part."""
    seen: list[dict[str, set]] = []
    original = predict_blocks.rule_pair_tables

    def rows(linker: Any, table: Any) -> set:
        sql = f"SELECT match_key, join_key_l, join_key_r FROM {table.physical_name}"
        out = set(linker._db_api._con.execute(sql).fetchall())
        table.drop_table_from_database_and_remove_from_cache()
        return out

    def both(linker: Any, partitions: int = 1) -> list[Any]:
        from splink.internals.chunking import _blocked_pairs_cache_key

        got = {"splink": rows(linker, linker.inference.compute_blocked_pairs_for_predict())}
        linker._intermediate_table_cache.pop(_blocked_pairs_cache_key(), None)
        for way, parts in (("ours", 1), ("list in parts", 3)):
            tables = original(linker, parts)
            if parts == 1:  # later rules leave out the first rule's pairs (fewer rows to group)
                got["repeated first-rule pairs"] = _repeats_of_first_rule(linker, tables)
            got[way] = rows(linker, predict_blocks.first_rule_pairs(linker, tables, 1, 0))
            for t in tables:
                t.drop_table_from_database_and_remove_from_cache()
        tables = original(linker, partitions)
        got["by left part"] = set().union(
            *(rows(linker, predict_blocks.first_rule_pairs(linker, tables, 3, i)) for i in range(3))
        )
        seen.append(got)
        return tables

    monkeypatch.setattr(predict_blocks, "rule_pair_tables", both)
    return seen


def _repeats_of_first_rule(linker: Any, tables: list[Any]) -> set:
    """Pairs of the first rule's table that a later rule's table holds again."""
    first = f"SELECT join_key_l, join_key_r FROM {tables[0].physical_name}"
    later = " UNION ALL ".join(
        f"SELECT join_key_l, join_key_r FROM {t.physical_name}" for t in tables[1:]
    )
    con = linker._db_api._con
    assert con.execute(f"SELECT COUNT(*) FROM ({first})").fetchone()[0] > 0
    return set(con.execute(f"{first} INTERSECT (SELECT * FROM ({later}))").fetchall())


@pytest.mark.parametrize("datasets", ["all", "one"])
def test_our_blocked_pairs_are_splinks(datasets: str, tmp_path: Path, monkeypatch) -> None:
    agreement = load_agreement(AGREEMENT)
    src = tmp_path / "tokens"
    write_fixture(agreement, src, n_households=40)
    if datasets == "one":
        one = tmp_path / "one"
        one.mkdir()
        for f in src.glob("hmrc_rti.*"):
            shutil.copy(f, one)
        src = one
    seen = _compare_with_splink(monkeypatch)
    link(agreement, src, tmp_path / "out", seed=1)
    assert len(seen) == 1
    got = seen[0]
    assert len(got["splink"]) > 20
    # every pair once, with the first rule that finds it, however it is made
    for way in ("ours", "list in parts", "by left part"):
        assert got[way] == got["splink"], way
    assert got["repeated first-rule pairs"] == set()
    assert len({k for k, _, _ in got["ours"]}) >= 3  # several rules contribute
