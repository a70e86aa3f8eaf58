"""A linkage run on a small token fixture: maps, accuracy, report, policy and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from linkage_fixtures import households, write_fixture

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.cli import main
from wmw_link.errors import PolicyError
from wmw_link.evaluate import score
from wmw_link.linkage import LinkResult, link

AGREEMENT = Path(__file__).parents[2] / "agreements" / "wmw-outcomes.yaml"
N_HOUSEHOLDS = 60


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(AGREEMENT)


@pytest.fixture(scope="module")
def fixture_dir(agreement: Agreement, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("tokens")
    truth = write_fixture(agreement, d, n_households=N_HOUSEHOLDS)
    return d, truth


@pytest.fixture(scope="module")
def result(agreement: Agreement, fixture_dir, tmp_path_factory) -> LinkResult:
    out = tmp_path_factory.mktemp("linked")
    return link(agreement, fixture_dir[0], out, seed=1, keep_pairs=out.parent / "pairs.parquet")


def _scoring_frame(result: LinkResult, truth: dict[tuple[str, str], int]) -> pd.DataFrame:
    hh = households(N_HOUSEHOLDS)
    rows = []
    for ds, path in result.maps.items():
        m = pd.read_parquet(path)
        for ref, pid in zip(m["row_ref"], m["person_id"], strict=True):
            rows.append((ds, pid, truth[(ds, ref)], hh[truth[(ds, ref)]]))
    return pd.DataFrame(rows, columns=["dataset", "pred", "true", "household"])


def test_maps_cover_every_input_row_exactly_once(result: LinkResult, fixture_dir) -> None:
    src = fixture_dir[0]
    assert set(result.maps) == {"hmrc_rti", "hub_birmingham", "nhs_referrals"}
    for ds, path in result.maps.items():
        m = pq.read_table(path)
        assert m.column_names == ["row_ref", "person_id"]
        refs = pq.read_table(src / f"{ds}.tokens.parquet")["row_ref"].to_pylist()
        got = m["row_ref"].to_pylist()
        assert got == refs  # every input row once, in the tokens file's order
        assert all(isinstance(p, str) and p.startswith("p") for p in m["person_id"].to_pylist())


def test_kept_pairs_name_rows_by_row_ref(result: LinkResult, fixture_dir) -> None:
    pairs = pd.read_parquet(result.out_dir.parent / "pairs.parquet")
    assert len(pairs) == result.comparisons
    refs = {
        (ds, r)
        for ds in result.maps
        for r in pq.read_table(fixture_dir[0] / f"{ds}.tokens.parquet")["row_ref"].to_pylist()
    }
    for side in ("l", "r"):
        got = set(zip(pairs[f"source_dataset_{side}"], pairs[f"unique_id_{side}"], strict=True))
        assert got <= refs
    assert pairs["linkable"].dtype == bool and pairs["linkable"].any()
    # The refs name the right records: pairs scored as near-certain are the same true person.
    truth = fixture_dir[1]
    sure = pairs[pairs["match_weight"] > 15]
    same = [
        truth[(a, x)] == truth[(b, y)]
        for a, x, b, y in zip(
            sure["source_dataset_l"], sure["unique_id_l"], sure["source_dataset_r"],
            sure["unique_id_r"], strict=True,
        )
    ]  # fmt: skip
    assert len(same) > 20 and sum(same) / len(same) > 0.98


def test_links_the_fixture_accurately_without_household_merges(
    result: LinkResult, fixture_dir
) -> None:
    ev = score(_scoring_frame(result, fixture_dir[1]))
    # The fixture's typos are harsher than the synthetic extracts' (one letter of a short
    # name in 15% of records), so recall is lower here than in the benchmark.
    assert ev.pairwise.f1 >= 0.95, ev.summary()
    assert ev.pairwise.precision >= 0.99, ev.summary()
    assert ev.within_source.recall >= 0.9, ev.summary()
    assert ev.household_false_merge["false_pairs_same_household"] == 0, ev.summary()
    assert result.threshold_method.startswith("maximum expected F1")


def test_report_and_manifest(result: LinkResult, fixture_dir) -> None:
    rep = result.report_dir
    for name in (
        "index.html",
        "match_weights.html",
        "m_u_parameters.html",
        "match_weights_histogram.html",
        "waterfall.html",
        "model.json",
        "quality.json",
    ):
        assert (rep / name).is_file(), name
    q = json.loads((rep / "quality.json").read_text())
    assert {r["source"] for r in q["unlinked"]} == set(result.maps)
    assert any(
        r["source"] == "hmrc_rti" and r["other"] == "nhs_referrals" and r["link_rate"] > 0
        for r in q["link_rates"]
    )
    assert q["sweep"] and q["comparisons_scored"] == result.comparisons
    assert sum(r["pairs_scored"] for r in q["blocking_rules"]) == result.comparisons
    assert q["blocking_rules"][0]["rule"] == 'l."nino" = r."nino"'
    model = json.loads((rep / "model.json").read_text())
    assert model["link_type"] == "link_and_dedupe"
    nino = next(c for c in model["comparisons"] if c["output_column_name"] == "nino")
    exact = next(lvl for lvl in nino["comparison_levels"] if lvl.get("label_for_charts") == "exact")
    assert exact["fix_u_probability"] and 0 < exact["u_probability"] < 0.05
    man = json.loads(result.manifest.read_text())
    assert man["counts"]["records"] == result.records
    assert set(man["outputs"]) == set(result.maps)
    assert man["inputs"]["hmrc_rti"]["tokens"]["sha256"]


def test_report_holds_no_token_values(result: LinkResult, fixture_dir) -> None:
    tokens = pq.read_table(
        fixture_dir[0] / "hmrc_rti.tokens.parquet", columns=["row_ref", "nino", "fn_dob"]
    )
    values = {str(v) for col in tokens.columns for v in col.to_pylist() if v}
    assert len(values) > 100
    for f in result.report_dir.iterdir():
        text = f.read_text(encoding="utf-8")
        found = set(re.findall(r"-?[0-9a-f]{8,}", text)) & values
        assert not found, f.name


def test_given_threshold_is_used(agreement: Agreement, fixture_dir, tmp_path: Path) -> None:
    r = link(agreement, fixture_dir[0], tmp_path, threshold=0.999, report=False)
    assert r.threshold_method == "given"
    assert r.threshold_probability == pytest.approx(0.999)


def test_only_the_ttp_may_link(agreement: Agreement, fixture_dir, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="rule 'roles'"):
        link(agreement, fixture_dir[0], tmp_path, party="insight-team")


def test_cli_link_and_evaluate_refuse_payload(fixture_dir, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for f in fixture_dir[0].iterdir():
        (inbox / f.name).write_bytes(f.read_bytes())
    (inbox / "hmrc_rti.payload.parquet").write_bytes(b"PAR1")
    res = CliRunner().invoke(
        main,
        [
            "link",
            "--agreement",
            str(AGREEMENT),
            "--inputs",
            str(inbox),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1
    assert "never a payload" in res.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.map.parquet"))


def test_cli_link(fixture_dir, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        [
            "link",
            "--agreement",
            str(AGREEMENT),
            "--inputs",
            str(fixture_dir[0]),
            "--out",
            str(tmp_path),
            "--no-report",
            "--threshold",
            "0.9",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "persons" in res.output
    assert len(list(tmp_path.glob("*.map.parquet"))) == 3


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _two_datasets(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for ds in ("hmrc_rti", "nhs_referrals"):
        for suffix in (".tokens.parquet", ".manifest.json"):
            (dest / f"{ds}{suffix}").write_bytes((src / f"{ds}{suffix}").read_bytes())
    return dest


def test_rerun_leaves_no_map_of_an_earlier_run(
    agreement: Agreement, fixture_dir, tmp_path: Path
) -> None:
    out = tmp_path / "linked"
    link(agreement, fixture_dir[0], out, threshold=0.9, report=False)
    assert (out / "hub_birmingham.map.parquet").is_file()
    two = _two_datasets(fixture_dir[0], tmp_path / "two")
    r = link(agreement, two, out, threshold=0.9, report=False)
    assert sorted(p.name for p in out.glob("*.map.parquet")) == [
        "hmrc_rti.map.parquet",
        "nhs_referrals.map.parquet",
    ]
    assert set(json.loads((out / "link-manifest.json").read_text())["outputs"]) == {
        "hmrc_rti",
        "nhs_referrals",
    }
    assert r.maps["hmrc_rti"] == out / "hmrc_rti.map.parquet" and r.maps["hmrc_rti"].is_file()
    assert r.manifest == out / "link-manifest.json"
    # No staging or scratch folder is left beside or inside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linked", "two"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_interrupted_run_keeps_the_previous_output(
    agreement: Agreement, fixture_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wmw_link.linkage import run as run_mod

    out = tmp_path / "linked"
    two = _two_datasets(fixture_dir[0], tmp_path / "two")
    link(agreement, two, out, threshold=0.9, report=False)
    before = _snapshot(out)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as SIGINT after the new maps were written

    monkeypatch.setattr(run_mod, "_link_manifest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        link(agreement, fixture_dir[0], out, threshold=0.5, report=False)
    # Not even the new third dataset's map: the interrupted run left nothing behind.
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linked", "two"]


def test_output_folder_with_other_files_refused_before_linking(
    agreement: Agreement, fixture_dir, tmp_path: Path
) -> None:
    from wmw_link.errors import ConfigError

    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="notes.txt"):
        link(agreement, fixture_dir[0], tmp_path, threshold=0.9, report=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not list(tmp_path.glob("*.map.parquet"))


def test_predictions_keep_levels_but_no_token_columns(
    agreement: Agreement, fixture_dir, tmp_path: Path
) -> None:
    """The household rule reads gamma_ columns; token values are not carried into predictions."""
    from wmw_link.linkage.backends import open_backend
    from wmw_link.linkage.run import _token_kinds, fit_and_cluster
    from wmw_link.linkage.settings import plan_model
    from wmw_link.linkage.verify import verify_inputs

    verified = verify_inputs(agreement, fixture_dir[0])
    kinds = _token_kinds(verified)
    be = open_backend("duckdb", tmp_path / "scratch")
    try:
        inputs = [
            be.load_tokens(v.dataset, v.tokens_path, kinds, set(v.token_columns) & set(kinds))
            for v in verified
        ]
        cl = fit_and_cluster(
            inputs, plan_model(set(kinds), {}), seed=1, n_records=sum(v.rows for v in verified)
        )
        cols = set(
            cl.linker.misc.query_sql(
                f"SELECT * FROM {cl.predictions.physical_name} LIMIT 1", output_type="pandas"
            ).columns
        )
        names = [c.output_column_name for c in cl.linker._settings_obj.comparisons]
        assert {f"gamma_{n}" for n in names} <= cols
        assert not cols & {f"{c}_{side}" for c in kinds for side in "lr"}
        assert "gamma_identity" in cl.evidence_sql
    finally:
        be.close()


def test_the_same_seed_gives_the_same_model_and_persons(
    result: LinkResult, agreement: Agreement, fixture_dir, tmp_path: Path
) -> None:
    again = link(agreement, fixture_dir[0], tmp_path / "again", seed=1)

    def levels(r: LinkResult) -> list[float]:
        model = json.loads((r.report_dir / "model.json").read_text())
        return [
            lvl.get(k, -1.0)
            for c in model["comparisons"]
            for lvl in c["comparison_levels"]
            for k in ("u_probability", "m_probability")
        ]

    def persons(r: LinkResult) -> set[frozenset[tuple[str, str]]]:
        allrec = pd.concat([pd.read_parquet(p).assign(ds=d) for d, p in r.maps.items()])
        groups = allrec.groupby("person_id")
        return {frozenset(zip(g["ds"], g["row_ref"], strict=True)) for _, g in groups}

    # Equal up to floating-point rounding: DuckDB sums in parallel, in no fixed order.
    assert levels(again) == pytest.approx(levels(result), rel=1e-9)
    assert persons(again) == persons(result)
    # Person ids are drawn fresh each run: the same persons, under other ids.
    first = set(pd.read_parquet(result.maps["hmrc_rti"])["person_id"])
    assert not first & set(pd.read_parquet(again.maps["hmrc_rti"])["person_id"])


@pytest.mark.parametrize("dedupe", [False, True])
def test_in_memory_clustering_gives_splinks_persons(
    agreement: Agreement, fixture_dir, tmp_path: Path, dedupe: bool
) -> None:
    """DuckDB runs cluster with scipy (linkage/components.py): the same persons as Splink's SQL
    connected components at the same threshold, linking several datasets or deduplicating one."""
    from wmw_link.linkage.backends import open_backend
    from wmw_link.linkage.run import _token_kinds, fit_and_cluster
    from wmw_link.linkage.settings import plan_model
    from wmw_link.linkage.verify import verify_inputs

    verified = verify_inputs(agreement, fixture_dir[0])
    if dedupe:
        verified = [max(verified, key=lambda v: v.rows)]
    kinds = _token_kinds(verified)

    def persons(splink_clustering: bool) -> tuple[set[frozenset[tuple[str, int]]], int]:
        be = open_backend("duckdb", tmp_path / f"scratch{splink_clustering}")
        try:
            inputs = [
                be.load_tokens(v.dataset, v.tokens_path, kinds, set(v.token_columns) & set(kinds))
                for v in verified
            ]
            cl = fit_and_cluster(
                inputs, plan_model(set(kinds), {}), seed=1,
                n_records=sum(v.rows for v in verified), splink_clustering=splink_clustering,
            )  # fmt: skip
            f = cl.frame
            assert len(f) == sum(v.rows for v in verified)
            groups = f.groupby("cluster_id", observed=True)
            return (
                {
                    frozenset(zip(g["source_dataset"].astype(str), g["unique_id"], strict=True))
                    for _, g in groups
                },
                int((f.groupby("cluster_id").size() > 1).sum()),
            )
        finally:
            be.close()

    ours, linked = persons(False)
    assert linked > 0  # the fixture links some records: the comparison is not vacuous
    assert ours == persons(True)[0]


def test_components_label_connected_records_alike() -> None:
    import numpy as np

    from wmw_link.linkage.components import components

    labels = components(6, np.array([0, 1, 4]), np.array([1, 2, 4]))
    assert labels[0] == labels[1] == labels[2]
    assert len({labels[0], labels[3], labels[4], labels[5]}) == 4
    assert components(0, np.array([]), np.array([])).size == 0


def test_union_input_gives_the_persons_of_separate_inputs(
    agreement: Agreement, fixture_dir, tmp_path: Path
) -> None:
    """DuckDB links every dataset as one deduplicated input with integer ids
    (linkage/union.py): the same scored pairs, threshold and persons as Splink linking the
    datasets as separate inputs, each record read back as its dataset and row number."""
    from wmw_link.linkage.backends import open_backend
    from wmw_link.linkage.run import _token_kinds, fit_and_cluster, prepare_plan
    from wmw_link.linkage.verify import verify_inputs

    verified = verify_inputs(agreement, fixture_dir[0])
    kinds = _token_kinds(verified)
    n = sum(v.rows for v in verified)

    def run(union: bool) -> tuple[set[frozenset[tuple[str, int]]], float, int, pd.DataFrame]:
        be = open_backend("duckdb", tmp_path / f"scratch{union}")
        try:
            files = [(v.dataset, v.tokens_path, set(v.token_columns) & set(kinds)) for v in verified]
            if union:
                sdf, ids = be.load_union(files, kinds)
                inputs = [sdf]
            else:
                inputs = [be.load_tokens(d, p, kinds, c) for d, p, c in files]
                ids = None
            plan = prepare_plan(be, [i.physical_name for i in inputs], kinds, 1, False)
            cl = fit_and_cluster(inputs, plan, seed=1, n_records=n, union=ids,
                                 splink_clustering=not union)  # fmt: skip
            f = cl.frame
            persons = {
                frozenset(zip(g["source_dataset"].astype(str), g["unique_id"], strict=True))
                for _, g in f.groupby("cluster_id", observed=True)
            }
            pairs = cl.linker.misc.query_sql(
                "SELECT source_dataset_l, unique_id_l, source_dataset_r, unique_id_r, "
                f"round(match_weight, 6) AS w FROM {cl.pairs_sql}",
                output_type="pandas",
            )
            # Each pair once, in either order (Splink orders the two records of a pair by id).
            a = pairs["source_dataset_l"] + ":" + pairs["unique_id_l"].astype(str)
            b = pairs["source_dataset_r"] + ":" + pairs["unique_id_r"].astype(str)
            pairs = pd.DataFrame({"a": a.where(a < b, b), "b": b.where(a < b, a), "w": pairs["w"]})
            return persons, cl.weight, len(f), pairs.sort_values(["a", "b"], ignore_index=True)
        finally:
            be.close()

    ours, weight, records, pairs = run(True)
    theirs, weight0, records0, pairs0 = run(False)
    assert records == records0 == n
    assert weight == weight0
    assert ours == theirs
    assert sum(len(p) > 1 for p in ours) > 0
    assert {d for p in ours for d, _ in p} == {v.dataset for v in verified}
    pd.testing.assert_frame_equal(pairs, pairs0, check_exact=False, atol=1e-4)


def test_pairs_scored_in_blocks_give_the_same_pairs_and_persons(
    agreement: Agreement, fixture_dir, result: LinkResult, tmp_path: Path, monkeypatch
) -> None:
    """Blocked pairs scored in 3 x 3 blocks (linkage/predict_blocks.py, chosen when a block of
    records must fit the memory limit) are the pairs, weights and persons of one predict."""
    monkeypatch.setenv("WMW_PREDICT_BLOCKS", "3")
    out = tmp_path / "blocks"
    got = link(agreement, fixture_dir[0], out, seed=1, keep_pairs=tmp_path / "pairs.parquet")
    assert json.loads(got.manifest.read_text())["predict_blocks"] == 3
    assert json.loads(result.manifest.read_text())["predict_blocks"] == 1

    def persons(r: LinkResult) -> set[frozenset[tuple[str, str]]]:
        rows = []
        for d, p in r.maps.items():
            t = pq.read_table(p, columns=["row_ref", "person_id"]).to_pydict()
            rows += [(d, ref, pid) for ref, pid in zip(t["row_ref"], t["person_id"], strict=True)]
        frame = pd.DataFrame(rows, columns=["d", "ref", "pid"])
        return {frozenset(zip(g["d"], g["ref"], strict=True)) for _, g in frame.groupby("pid")}

    assert persons(got) == persons(result)
    assert sum(len(p) > 1 for p in persons(got)) > 0

    def pairs(path: Path) -> pd.DataFrame:
        f = pd.read_parquet(path)
        keys = [c for c in f.columns if c != "match_weight"]
        return f.sort_values(keys, ignore_index=True)

    mine, theirs = pairs(tmp_path / "pairs.parquet"), pairs(result.out_dir.parent / "pairs.parquet")
    assert len(mine) == got.comparisons == result.comparisons > 0
    pd.testing.assert_frame_equal(mine, theirs, check_exact=False, atol=1e-9)


def test_blocks_follow_the_records_and_the_limit() -> None:
    from wmw_link.errors import ConfigError
    from wmw_link.linkage.predict_blocks import blocks_for

    # 1M people (2.07M records, 53 columns) scored in one block under 6 GB; 3M needs more.
    assert blocks_for(2_070_000, 53, 6 * 10**9, env={}) == 1
    assert blocks_for(6_200_000, 53, 6 * 10**9, env={}) == 3
    assert blocks_for(2_070_000, 53, 2 * 10**9, env={}) == 3
    assert blocks_for(10**9, 53, None, env={}) == 1
    assert blocks_for(10, 53, 10**8, env={"WMW_PREDICT_BLOCKS": "4"}) == 4
    with pytest.raises(ConfigError, match="WMW_PREDICT_BLOCKS"):
        blocks_for(10, 53, 10**8, env={"WMW_PREDICT_BLOCKS": "0"})
