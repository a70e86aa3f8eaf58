"""Evaluation arithmetic on a hand-built example, and the file-based entry point."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wmw_link.errors import InputDataError
from wmw_link.evaluate import PairCounts, evaluate, pair_counts, score

# Person 1 has two records in source a and one in b; person 2 one in b; person 3 one in a.
# The prediction merges person 2 into person 1 (one false merge, same household).
RECORDS = pd.DataFrame(
    {
        "record_id": ["A1", "A2", "B1", "B2", "A3"],
        "dataset": ["a", "a", "b", "b", "a"],
        "true": [1, 1, 1, 2, 3],
        "pred": ["x", "x", "x", "x", "y"],
        "household": [10, 10, 10, 10, 20],
    }
)


def test_pairwise_counts_by_hand() -> None:
    ev = score(RECORDS)
    # cluster x holds 4 records = 6 pairs; person 1 = 3 pairs, all inside x.
    assert ev.pairwise == PairCounts(true_positive=3, predicted=6, actual=3)
    assert ev.pairwise.precision == pytest.approx(0.5)
    assert ev.pairwise.recall == pytest.approx(1.0)
    assert ev.pairwise.f1 == pytest.approx(2 / 3)


def test_within_and_across_sources_by_hand() -> None:
    ev = score(RECORDS)
    # within a: A1-A2 predicted and true; within b: B1-B2 predicted, not true.
    assert ev.within_source == PairCounts(true_positive=1, predicted=2, actual=1)
    # across: A1-B1, A2-B1 true and predicted; A1-B2, A2-B2 predicted only.
    assert ev.across_source == PairCounts(true_positive=2, predicted=4, actual=2)
    assert ev.across_source.precision == pytest.approx(0.5)


def test_cluster_figures_by_hand() -> None:
    c = score(RECORDS).clusters
    assert c["true_persons"] == 3
    assert c["predicted_clusters"] == 2
    assert c["exactly_recovered_persons"] == 1  # only person 3
    assert c["persons_split"] == 0
    assert c["clusters_merging_persons"] == 1
    assert c["singleton_clusters"] == 1


def test_household_false_merges_by_hand() -> None:
    h = score(RECORDS).household_false_merge
    assert h is not None
    # household 10: 4 records, 6 pairs, 3 of them the same person -> 3 household pairs,
    # all three predicted together, all false.
    assert h["household_pairs"] == 3
    assert h["false_pairs"] == 3
    assert h["false_pairs_same_household"] == 3
    assert h["household_false_merge_rate"] == pytest.approx(1.0)


def test_split_person_lowers_recall_not_precision() -> None:
    frame = pd.DataFrame({"dataset": ["a", "b", "b"], "true": [1, 1, 1], "pred": ["p", "q", "q"]})
    pc = pair_counts(frame)
    assert (pc.true_positive, pc.predicted, pc.actual) == (1, 1, 3)
    assert pc.precision == 1.0
    assert pc.recall == pytest.approx(1 / 3)
    assert score(frame).clusters["persons_split"] == 1


def test_empty_predictions_have_precision_one_recall_zero() -> None:
    frame = pd.DataFrame({"dataset": ["a", "a"], "true": [1, 1], "pred": ["p", "q"]})
    pc = pair_counts(frame)
    assert pc.precision == 1.0 and pc.recall == 0.0 and pc.f1 == 0.0


def _write(path, df: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def test_evaluate_files_through_crosswalks(tmp_path) -> None:
    maps, xws = tmp_path / "maps", tmp_path / "xw"
    maps.mkdir()
    xws.mkdir()
    for ds, grp in RECORDS.groupby("dataset"):
        refs = ["ref-" + r for r in grp["record_id"]]
        _write(
            maps / f"{ds}.map.parquet", pd.DataFrame({"row_ref": refs, "person_id": grp["pred"]})
        )
        _write(
            xws / f"{ds}.crosswalk.parquet",
            pd.DataFrame({"record_id": grp["record_id"], "row_ref": refs}),
        )
    truth = tmp_path / "truth.parquet"
    extra = pd.DataFrame({"dataset": ["a"], "record_id": ["REJECTED"], "person_id": [9]})
    _write(
        truth,
        pd.concat(
            [
                RECORDS.rename(columns={"true": "person_id"})[
                    ["dataset", "record_id", "person_id"]
                ],
                extra,
            ]
        ),
    )
    people = tmp_path / "people.parquet"
    _write(people, pd.DataFrame({"person_id": [1, 2, 3, 9], "household_id": [10, 10, 20, 30]}))
    ev = evaluate(maps, truth, xws, people=people)
    assert ev.records == 5
    assert ev.pairwise.f1 == pytest.approx(2 / 3)
    assert ev.household_false_merge["false_pairs_same_household"] == 3
    assert ev.coverage["truth_rows"] == 6
    assert ev.coverage["map_rows_without_crosswalk"] == 0
    assert "F1 0.6667" in ev.summary()


def test_evaluate_refuses_empty_maps_dir(tmp_path) -> None:
    with pytest.raises(InputDataError, match="no \\*.map.parquet"):
        evaluate(tmp_path, tmp_path / "t.parquet", tmp_path)


def test_evaluate_command_prints_and_writes_json(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from wmw_link.cli import main

    maps, xws = tmp_path / "maps", tmp_path / "xw"
    maps.mkdir()
    xws.mkdir()
    for ds, grp in RECORDS.groupby("dataset"):
        refs = ["ref-" + r for r in grp["record_id"]]
        _write(
            maps / f"{ds}.map.parquet", pd.DataFrame({"row_ref": refs, "person_id": grp["pred"]})
        )
        _write(
            xws / f"{ds}.crosswalk.parquet",
            pd.DataFrame({"record_id": grp["record_id"], "row_ref": refs}),
        )
    truth = tmp_path / "truth.parquet"
    _write(
        truth, RECORDS.rename(columns={"true": "person_id"})[["dataset", "record_id", "person_id"]]
    )
    out = tmp_path / "scores.json"
    res = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--maps",
            str(maps),
            "--truth",
            str(truth),
            "--crosswalks",
            str(xws),
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "precision 0.5000" in res.output
    assert json.loads(out.read_text())["pairwise"]["f1"] == pytest.approx(2 / 3)


def _files(tmp_path, refs_prefix: str = "ref-", truth_ids: str = "") -> tuple:
    """Maps, crosswalks (row refs with ``refs_prefix``) and truth (record ids + ``truth_ids``)."""
    maps, xws = tmp_path / "maps", tmp_path / "xw"
    maps.mkdir(exist_ok=True)
    xws.mkdir(exist_ok=True)
    for ds, grp in RECORDS.groupby("dataset"):
        refs = ["ref-" + r for r in grp["record_id"]]
        _write(
            maps / f"{ds}.map.parquet", pd.DataFrame({"row_ref": refs, "person_id": grp["pred"]})
        )
        _write(
            xws / f"{ds}.crosswalk.parquet",
            pd.DataFrame(
                {
                    "record_id": grp["record_id"],
                    "row_ref": [refs_prefix + r for r in grp["record_id"]],
                }
            ),
        )
    truth = tmp_path / "truth.parquet"
    t = RECORDS.rename(columns={"true": "person_id"})[["dataset", "record_id", "person_id"]]
    _write(truth, t.assign(record_id=t["record_id"] + truth_ids))
    return maps, xws, truth


def test_crosswalks_of_another_run_refused(tmp_path) -> None:
    maps, xws, truth = _files(tmp_path, refs_prefix="other-run-")
    with pytest.raises(InputDataError) as e:
        evaluate(maps, truth, xws)
    msg = str(e.value)
    assert "join maps -> crosswalks" in msg and "too few map row_refs" in msg
    assert "a 0 of 3 (0.0%)" in msg and "b 0 of 2 (0.0%)" in msg
    assert "not those of the tokenise run" in msg


def test_wrong_truth_refused(tmp_path) -> None:
    maps, xws, truth = _files(tmp_path, truth_ids="-elsewhere")
    with pytest.raises(InputDataError) as e:
        evaluate(maps, truth, xws)
    msg = str(e.value)
    assert "join crosswalks -> truth" in msg and str(truth) in msg
    assert "a 0 of 3 (0.0%)" in msg


def test_partial_join_below_min_refused_and_threshold_adjustable(tmp_path) -> None:
    maps, xws, truth = _files(tmp_path)
    # One of dataset a's three crosswalk rows belongs to another run: 67% join in a.
    xw = pd.read_parquet(xws / "a.crosswalk.parquet")
    xw.loc[0, "row_ref"] = "other-run"
    _write(xws / "a.crosswalk.parquet", xw)
    with pytest.raises(InputDataError, match=r"a 2 of 3 \(66.7%\)"):
        evaluate(maps, truth, xws)
    ev = evaluate(maps, truth, xws, min_join=0.5)
    assert ev.records == 4
    assert ev.coverage["map_rows_without_crosswalk"] == 1


def test_evaluate_command_refuses_mismatched_inputs(tmp_path) -> None:
    from click.testing import CliRunner

    from wmw_link.cli import main

    maps, xws, truth = _files(tmp_path, refs_prefix="other-run-")
    res = CliRunner().invoke(
        main, ["evaluate", "--maps", str(maps), "--truth", str(truth), "--crosswalks", str(xws)]
    )
    assert res.exit_code != 0
    assert "join maps -> crosswalks" in res.output
    assert "F1" not in res.output
