"""Equity report: figures by group on hand-built examples, flags, and through `evaluate`."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wmw_link import equity
from wmw_link.errors import InputDataError
from wmw_link.evaluate import evaluate, score

# Person 1 (group P) has 3 records, person 2 (group W) 2, person 3 (group W) 1.
# Cluster x wrongly merges person 2's first record into person 1; person 2's second record
# stands alone (so person 2 is also split).
FRAME = pd.DataFrame(
    {
        "dataset": ["a", "a", "b", "a", "b", "b"],
        "true": [1, 1, 1, 2, 2, 3],
        "pred": ["x", "x", "x", "x", "y", "z"],
        "ethnic_group": ["P", "P", "P", "W", "W", "W"],
    }
)


def test_group_figures_by_hand() -> None:
    groups = {g.group: g for g in equity.by_group(FRAME, "ethnic_group")}
    p, w = groups["P"], groups["W"]
    # P: 3 true pairs, all found; cluster x (4 records, 3 of P) has 6 pairs, all touching P.
    assert (p.true_pairs, p.true_positive, p.predicted_touching) == (3, 3, 6)
    assert p.precision == pytest.approx(0.5) and p.recall == 1.0
    # W: 1 true pair (person 2), not found; cluster x has 3 pairs touching W's one record.
    assert (w.true_pairs, w.true_positive, w.predicted_touching) == (1, 0, 3)
    assert w.precision == 0.0 and w.recall == 0.0
    assert (p.records, w.records) == (3, 3)


def test_a_cross_group_false_merge_counts_against_both_groups() -> None:
    # Scoring each group's records alone would hide the merge from both groups.
    groups = {g.group: g for g in equity.by_group(FRAME, "ethnic_group")}
    assert groups["P"].precision < 1.0 and groups["W"].predicted_touching > 0


def test_null_group_values_are_left_out() -> None:
    frame = FRAME.assign(ethnic_group=["P", "P", "P", None, None, None])
    assert [g.group for g in equity.by_group(frame, "ethnic_group")] == ["P"]


def test_flags_only_groups_clearly_below_and_large_enough() -> None:
    big = equity.GroupFigures(
        "Big", 100, true_positive=900, predicted_touching=1000, true_pairs=1000
    )
    fine = equity.GroupFigures(
        "Fine", 100, true_positive=985, predicted_touching=1000, true_pairs=1000
    )
    small = equity.GroupFigures("Small", 5, true_positive=0, predicted_touching=10, true_pairs=5)
    out = equity.flags([big, fine, small], precision=0.99, recall=0.99)
    assert len(out) == 2 and all(f.startswith("Big: ") for f in out)
    assert "precision 0.9000 is 9.0 points below the overall 0.9900" in out[0]


def test_age_bands() -> None:
    bands = equity.age_band(pd.Series([15, 16, 24, 25, 49, 64, 65, 90]))
    assert bands.tolist() == [pd.NA, "16-24", "16-24", "25-34", "35-49", "50-64", "65+", "65+"]


def test_score_reports_groups_and_flags() -> None:
    ev = score(FRAME)
    assert [g["group"] for g in ev.by_group["ethnic_group"]] == ["P", "W"]
    assert ev.equity_flags == []  # both groups have fewer true pairs than the minimum
    assert "by ethnic_group:" in ev.summary()
    assert "by ethnic_group" not in score(FRAME.drop(columns="ethnic_group")).summary()


def _write(path, df: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def _files(tmp_path, truth: pd.DataFrame | None = None):
    maps, xws = tmp_path / "maps", tmp_path / "xw"
    maps.mkdir()
    xws.mkdir()
    rec = FRAME.assign(record_id=[f"R{i}" for i in range(len(FRAME))])
    for ds, grp in rec.groupby("dataset"):
        refs = ["ref-" + r for r in grp["record_id"]]
        _write(
            maps / f"{ds}.map.parquet", pd.DataFrame({"row_ref": refs, "person_id": grp["pred"]})
        )
        _write(
            xws / f"{ds}.crosswalk.parquet",
            pd.DataFrame({"record_id": grp["record_id"], "row_ref": refs}),
        )
    path = tmp_path / "truth.parquet"
    if truth is None:
        truth = rec.rename(columns={"true": "person_id"})[["dataset", "record_id", "person_id"]]
    _write(path, truth)
    return maps, xws, path, rec


def test_evaluate_reads_groups_from_people(tmp_path) -> None:
    maps, xws, truth, _ = _files(tmp_path)
    people = tmp_path / "people.parquet"
    _write(
        people,
        pd.DataFrame(
            {
                "person_id": [1, 2, 3],
                "household_id": [1, 2, 3],
                "ethnicity": ["P", "W", "W"],
                "sex": ["F", "M", "M"],
                "age_at_2024_01_01": [20, 40, 70],
            }
        ),
    )
    ev = evaluate(maps, truth, xws, people=people)
    assert set(ev.by_group) == {"ethnic_group", "sex", "age_band"}
    assert {g["group"] for g in ev.by_group["age_band"]} == {"16-24", "35-49", "65+"}
    sexes = {g["group"]: g for g in ev.by_group["sex"]}
    assert sexes["F"]["precision"] == pytest.approx(0.5)


def test_text_person_ids_in_truth_and_people(tmp_path) -> None:
    maps, xws, truth, rec = _files(tmp_path)
    t = rec.rename(columns={"true": "person_id"})[["dataset", "record_id", "person_id"]]
    _write(truth, t.assign(person_id="P-" + t["person_id"].astype(str)))
    people = tmp_path / "people.parquet"
    _write(people, pd.DataFrame({"person_id": ["P-1", "P-2", "P-3"], "sex": ["F", "M", "M"]}))
    ev = evaluate(maps, truth, xws, people=people)
    assert ev.pairwise.true_positive == 3
    assert {g["group"] for g in ev.by_group["sex"]} == {"F", "M"}


def test_truth_with_other_column_names_is_named(tmp_path) -> None:
    bad = pd.DataFrame({"source": ["a"], "rec_id": [1], "person_id": [1]})
    maps, xws, truth, _ = _files(tmp_path, truth=bad)
    with pytest.raises(InputDataError) as e:
        evaluate(maps, truth, xws)
    msg = str(e.value)
    assert "missing column(s) dataset, record_id" in msg
    assert "record_id (the extract's record id, text or integer)" in msg
    assert "columns found: source, rec_id, person_id" in msg


def test_truth_with_empty_person_ids_names_the_rows(tmp_path) -> None:
    maps, xws, truth, rec = _files(tmp_path)
    t = rec.rename(columns={"true": "person_id"})[["dataset", "record_id", "person_id"]]
    _write(truth, t.assign(person_id=[1.0, None, 1.0, 2.0, 2.0, 3.0]))
    with pytest.raises(InputDataError, match=r"person_id is empty in 1 row\(s\) \(first: row 2\)"):
        evaluate(maps, truth, xws)


def test_truth_not_parquet_or_missing(tmp_path) -> None:
    maps, xws, truth, _ = _files(tmp_path)
    truth.write_text("dataset,record_id,person_id\n")
    with pytest.raises(InputDataError, match="not a readable Parquet file"):
        evaluate(maps, truth, xws)
    with pytest.raises(InputDataError, match="truth file not found"):
        evaluate(maps, tmp_path / "nope.parquet", xws)


def test_evaluate_command_names_a_bad_truth_without_traceback(tmp_path) -> None:
    from click.testing import CliRunner

    from wmw_link.cli import main

    bad = pd.DataFrame({"dataset": ["a"], "record_id": [1]})
    maps, xws, truth, _ = _files(tmp_path, truth=bad)
    res = CliRunner().invoke(
        main, ["evaluate", "--maps", str(maps), "--truth", str(truth), "--crosswalks", str(xws)]
    )
    assert res.exit_code != 0
    assert "missing column(s) person_id" in res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
