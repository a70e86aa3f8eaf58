"""Scoring in DuckDB equals counting every pair one by one (the definition), on random data."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import pandas as pd
import pyarrow as pa
import pytest

from wmw_link import equity
from wmw_link.errors import InputDataError
from wmw_link.evaluate import pair_counts, score, score_pairs
from wmw_link.resources import close_duckdb, open_duckdb

GROUPS = {"ethnic_group": ["A", "B", "W", None], "sex": ["F", "M"], "age_band": ["16-24", None]}


def _random_frame(seed: int, n: int = 160) -> pd.DataFrame:
    """Persons of 1-4 records over 3 datasets, clusters split and merged, many singletons;
    households (some unknown) and groups (some null) are person-level."""
    rng = random.Random(seed)
    rows, person = [], 0
    while len(rows) < n:
        size = rng.choice([1, 1, 1, 2, 2, 3, 4])
        house = None if rng.random() < 0.15 else person // 3
        attrs = {c: rng.choice(v) for c, v in GROUPS.items()}
        for _ in range(size):
            # Mostly the person's own cluster; sometimes a split or a merge with a neighbour.
            r = rng.random()
            pred = person if r < 0.8 else person + 10_000 if r < 0.9 else max(person - 1, 0)
            rows.append(
                {
                    "dataset": rng.choice("xyz"),
                    "pred": f"c{pred}",
                    "true": person,
                    "household": house,
                    **attrs,
                }  # fmt: skip
            )
        person += 1
    return pd.DataFrame(rows)


def _brute(frame: pd.DataFrame) -> dict[str, object]:
    """Every figure by listing every pair of records."""
    recs = frame.to_dict("records")
    c = defaultdict(int)
    for a, b in itertools.combinations(recs, 2):
        same_p, same_t, same_ds = (
            a["pred"] == b["pred"],
            a["true"] == b["true"],
            a["dataset"] == b["dataset"],
        )
        c["predicted"] += same_p
        c["actual"] += same_t
        c["tp"] += same_p and same_t
        c["w_predicted"] += same_p and same_ds
        c["w_actual"] += same_t and same_ds
        c["w_tp"] += same_p and same_t and same_ds
        fam = a["household"] is not None and a["household"] == b["household"]
        c["house_pairs"] += fam and not same_t
        c["house_false"] += fam and same_p and not same_t
        for col in GROUPS:
            for v in {a[col], b[col]} - {None}:
                both = a[col] == b[col] == v
                c[(col, v, "touch")] += same_p
                c[(col, v, "tp")] += same_p and same_t and both
                c[(col, v, "true")] += same_t and both
    preds: dict[str, set[int]] = defaultdict(set)
    trues: dict[int, set[str]] = defaultdict(set)
    sizes: dict[str, int] = defaultdict(int)
    for r in recs:
        preds[r["pred"]].add(r["true"])
        trues[r["true"]].add(r["pred"])
        sizes[r["pred"]] += 1
    c["exact"] = sum(1 for t, ps in trues.items() if len(ps) == 1 and preds[next(iter(ps))] == {t})
    c["split"] = sum(len(ps) > 1 for ps in trues.values())
    c["merging"] = sum(len(ts) > 1 for ts in preds.values())
    c["singletons"] = sum(n == 1 for n in sizes.values())
    c["n_pred"], c["n_true"] = len(preds), len(trues)
    return c


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_score_counts_every_figure_as_listing_pairs(seed: int) -> None:
    frame = _random_frame(seed)
    want = _brute(frame)
    ev = score(frame)
    assert ev.records == len(frame)
    assert (ev.pairwise.true_positive, ev.pairwise.predicted, ev.pairwise.actual) == (
        want["tp"], want["predicted"], want["actual"]
    )  # fmt: skip
    assert (ev.within_source.true_positive, ev.within_source.predicted,
            ev.within_source.actual) == (want["w_tp"], want["w_predicted"], want["w_actual"])  # fmt: skip
    assert ev.across_source.true_positive == want["tp"] - want["w_tp"]
    assert ev.across_source.true_positive > 0 and ev.within_source.true_positive > 0
    h = ev.household_false_merge
    assert h["household_pairs"] == want["house_pairs"]
    assert h["false_pairs_same_household"] == want["house_false"]
    assert h["false_pairs"] == want["predicted"] - want["tp"]
    cl = ev.clusters
    assert cl["exactly_recovered_persons"] == want["exact"]
    assert cl["persons_split"] == want["split"] and want["split"] > 0
    assert cl["clusters_merging_persons"] == want["merging"] and want["merging"] > 0
    assert cl["singleton_clusters"] == want["singletons"] and want["singletons"] > 0
    assert (cl["predicted_clusters"], cl["true_persons"]) == (want["n_pred"], want["n_true"])
    for col, values in GROUPS.items():
        got = {g["group"]: g for g in ev.by_group[col]}
        assert sorted(got) == sorted(v for v in values if v is not None)  # nulls left out
        for v, g in got.items():
            assert g["records"] == int((frame[col] == v).sum())
            assert g["predicted_pairs_touching"] == want[(col, v, "touch")]
            assert g["true_positive"] == want[(col, v, "tp")]
            assert g["true_pairs"] == want[(col, v, "true")]


def test_labels_as_text_integers_or_arrow_score_alike() -> None:
    frame = _random_frame(4)
    as_text = score(frame.assign(true=frame["true"].astype(str)))
    as_arrow = score(pa.Table.from_pandas(frame, preserve_index=False))
    assert as_text.to_dict() == score(frame).to_dict() == as_arrow.to_dict()


def test_pair_counts_and_by_group_on_a_shared_connection() -> None:
    frame = _random_frame(5)
    want = _brute(frame)
    con, spill = open_duckdb("200MB")
    try:
        pc = pair_counts(frame, con=con)
        groups = equity.by_group(frame, "sex", con=con)
        # Temporary tables are dropped after each call.
        assert (
            con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0
        )
    finally:
        close_duckdb(con, spill)
    assert (pc.true_positive, pc.predicted, pc.actual) == (
        want["tp"],
        want["predicted"],
        want["actual"],
    )
    assert {g.group: g.predicted_touching for g in groups} == {
        v: want[("sex", v, "touch")] for v in ("F", "M")
    }


def test_empty_frame_and_empty_labels() -> None:
    empty = pd.DataFrame({"dataset": pd.Series([], dtype=object), "pred": pd.Series([], dtype=object),
                          "true": pd.Series([], dtype="int64")})  # fmt: skip
    ev = score(empty)
    assert ev.records == 0 and ev.pairwise.f1 == 1.0 and ev.clusters["exact_person_rate"] == 1.0
    frame = _random_frame(6)
    frame.loc[3, "pred"] = None
    with pytest.raises(InputDataError, match="column pred is empty in 1 row"):
        score(frame)


def test_score_pairs_gives_the_sweeps_figures_of_score() -> None:
    frame = _random_frame(7)
    full = score(frame)
    total, house = score_pairs(frame)
    assert total == full.pairwise
    assert house == full.household_false_merge
    assert score_pairs(frame.drop(columns="household"))[1] is None


def test_numeric_group_column_scores_as_its_text_twin() -> None:
    frame = _random_frame(8)
    as_number = frame.assign(ethnic_group=frame["ethnic_group"].map({"A": 1, "B": 2, "W": 3}))
    assert as_number["ethnic_group"].dtype == float  # nulls make it float with NaN
    text = score(frame).by_group["ethnic_group"]
    number = score(as_number).by_group["ethnic_group"]
    assert [g["group"] for g in number] == ["1.0", "2.0", "3.0"]
    strip = [{k: v for k, v in g.items() if k != "group"} for g in text]
    assert [{k: v for k, v in g.items() if k != "group"} for g in number] == strip


def test_by_group_needs_no_dataset_column() -> None:
    frame = _random_frame(9)
    with_ds = equity.by_group(frame, "sex")
    assert equity.by_group(frame.drop(columns="dataset"), "sex") == with_ds


def test_columns_that_vary_within_a_person_score_as_listing_pairs() -> None:
    """Household and groups are person-level in practice; counting must not rely on it (a
    person's records then fall in several rows of the cells without ``ds``)."""
    frame = _random_frame(10, n=200)
    rng = random.Random(10)
    frame["household"] = [rng.choice([None, 1, 2, 3]) for _ in range(len(frame))]
    frame["sex"] = [rng.choice(GROUPS["sex"]) for _ in range(len(frame))]
    want = _brute(frame)
    ev = score(frame)
    # The household figures' own formulas (pairs by household minus pairs by person), as
    # grouped counts over the records.
    fam = frame[frame["household"].notna()]

    def pairs(by: list[str]) -> int:
        return int(sum(k * (k - 1) // 2 for k in fam.groupby(by).size()))

    h, cl = ev.household_false_merge, ev.clusters
    assert (h["household_pairs"], h["false_pairs_same_household"]) == (
        pairs(["household"]) - pairs(["true"]),
        pairs(["pred", "household"]) - pairs(["pred", "true"]),
    )
    assert (cl["exactly_recovered_persons"], cl["persons_split"], cl["clusters_merging_persons"],
            cl["singleton_clusters"], cl["predicted_clusters"], cl["true_persons"]) == (
        want["exact"], want["split"], want["merging"], want["singletons"], want["n_pred"],
        want["n_true"])  # fmt: skip
    assert want["exact"] > 0
    got = {g["group"]: g for g in ev.by_group["sex"]}
    for v in GROUPS["sex"]:
        assert got[v]["predicted_pairs_touching"] == want[("sex", v, "touch")]
        assert got[v]["true_positive"] == want[("sex", v, "tp")]
        assert got[v]["true_pairs"] == want[("sex", v, "true")]
