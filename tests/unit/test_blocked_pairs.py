"""The link's candidate pairs (linkage/predict_blocks.blocked_pairs) are Splink's: the same
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


def _compare_with_splink(monkeypatch) -> list[tuple[set, set, set]]:
    """Patch blocked_pairs so that each link also asks Splink for its pairs, and makes its own
    with a list rule's values in 3 parts."""
    seen: list[tuple[set, set, set]] = []
    original = predict_blocks.blocked_pairs

    def rows(linker: Any, table: Any) -> set:
        sql = f"SELECT match_key, join_key_l, join_key_r FROM {table.physical_name}"
        return set(linker._db_api._con.execute(sql).fetchall())

    def both(linker: Any, partitions: int = 1) -> Any:
        from splink.internals.chunking import _blocked_pairs_cache_key

        theirs = linker.inference.compute_blocked_pairs_for_predict()
        linker._intermediate_table_cache.pop(_blocked_pairs_cache_key(), None)
        in_parts = original(linker, partitions=3)
        seen.append((rows(linker, theirs), rows(linker, in_parts), set()))
        theirs.drop_table_from_database_and_remove_from_cache()
        in_parts.drop_table_from_database_and_remove_from_cache()
        ours = original(linker, partitions)
        seen[-1][2].update(rows(linker, ours))
        return ours

    monkeypatch.setattr(predict_blocks, "blocked_pairs", both)
    return seen


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
    theirs, in_parts, ours = seen[0]
    assert len(theirs) > 20
    assert ours == theirs  # every pair once, with the first rule that finds it
    assert in_parts == theirs  # a list rule's values joined in parts: the same pairs
    assert len({k for k, _, _ in ours}) >= 3  # several rules contribute
