"""The link's candidate pairs (linkage/predict_blocks.blocked_pairs_sql) are Splink's: the same
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


def _compare_with_splink(monkeypatch) -> list[tuple[set, set]]:
    """Patch blocked_pairs_sql so that each link also asks Splink for its pairs."""
    seen: list[tuple[set, set]] = []
    original = predict_blocks.blocked_pairs_sql

    def both(linker: Any) -> str:
        sql = original(linker)
        con = linker._db_api._con
        ours = set(con.execute(f"SELECT match_key, join_key_l, join_key_r FROM ({sql})").fetchall())
        theirs_df = linker.inference.compute_blocked_pairs_for_predict()
        theirs = set(
            con.execute(
                f"SELECT match_key, join_key_l, join_key_r FROM {theirs_df.physical_name}"
            ).fetchall()
        )
        from splink.internals.chunking import _blocked_pairs_cache_key

        linker._intermediate_table_cache.pop(_blocked_pairs_cache_key(), None)
        theirs_df.drop_table_from_database_and_remove_from_cache()
        seen.append((ours, theirs))
        return sql

    monkeypatch.setattr(predict_blocks, "blocked_pairs_sql", both)
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
    ours, theirs = seen[0]
    assert len(theirs) > 20
    assert ours == theirs  # every pair once, with the first rule that finds it
    assert len({k for k, _, _ in ours}) >= 3  # several rules contribute
