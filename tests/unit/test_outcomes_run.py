"""measure_outcomes end to end on a small region: written tables, SDC markers, public tier,
manifest, bias warnings, refusals, and the journeys/outcomes commands."""

from __future__ import annotations

import json
import random
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from journey_fixtures import AGREEMENT_PATH, Builder, D, agreement, write_inputs

from wmw_link.agreement import DisclosureTier
from wmw_link.cli import main
from wmw_link.disclosure import protect, recoverable_cells
from wmw_link.errors import ConfigError, InputDataError, PolicyError, VerificationError
from wmw_link.journeys import build_journeys
from wmw_link.outcomes import measure_outcomes
from wmw_link.outcomes.bias import bias_measures, bias_warnings

AS_OF = D(2025, 3, 1)
LAS = ["Birmingham", "Coventry", "Dudley", "Sandwell"]


def _region(people=240, seed=3) -> Builder:
    rnd = random.Random(seed)
    b = Builder()
    for i in range(people):
        p = f"p{i}"
        start = D(2023, rnd.randint(1, 12), rnd.randint(1, 28))
        b.hub(p, la=LAS[i % 4], start=start, gender=rnd.choice(["Female", "Male"]),
              disability=rnd.choice(["Yes", "No", "No"]), birth_year=rnd.randint(1965, 2004))  # fmt: skip
        if rnd.random() < 0.6:
            b.job(p, D(2024, 1, 1), None, pay=rnd.uniform(900, 3000))
        if rnd.random() < 0.5:
            b.claim(p, D(2022, 6, 1), None if rnd.random() < 0.5 else D(2024, 2, 1))
    return b


@pytest.fixture(scope="module")
def journeys():
    res = build_journeys(agreement(), *_region().tables(), as_of=AS_OF)
    return res.events, res.persons


def test_writes_tables_public_tier_dashboards_and_manifest(tmp_path, journeys):
    res = measure_outcomes(agreement(), journeys, tmp_path, as_of=AS_OF, dashboards=False)
    tables = sorted(p.name for p in (tmp_path / "tables").glob("*.csv"))
    assert {"sustained_employment.csv", "employment_rate.csv", "linkage_bias.csv", "gaps.csv",
            "hub_supported.csv", "off_benefits.csv", "neet_16_17.csv"} <= set(tables)  # fmt: skip
    sus = pd.read_csv(
        tmp_path / "tables" / "sustained_employment.csv", dtype=str, keep_default_na=False
    )
    assert (sus["n"] == "c").any()  # small intersections are suppressed...
    assert not (sus["n"] == "0").any()  # ...and never shown as zero
    shown = sus.loc[sus["n"] != "c", "n"].astype(int)
    assert (shown % 5 == 0).all() and (shown >= 10).all()
    pub = pd.read_csv(
        tmp_path / "public" / "sustained_employment.csv", dtype=str, keep_default_na=False
    )
    assert not pub["breakdown"].str.contains(" x ").any()
    assert (pub.loc[pub["n"] != "c", "n"].astype(int) % 10 == 0).all()
    man = json.loads((tmp_path / "outcomes-manifest.json").read_text())
    assert man["rule"] == "dfe_5_of_6_months"
    assert man["disclosure"]["public"]["min_cell"] == 20
    assert set(man["outputs"]) == set(res.files)
    assert recoverable_cells(res.internal) == [] and recoverable_cells(res.public) == []


def test_headline_rule_choice_and_rates_hidden_below_min_denominator(tmp_path, journeys):
    res = measure_outcomes(agreement(), journeys, None, rule="whp_16h_nlw_26_weeks", as_of=AS_OF)
    assert res.rule == "whp_16h_nlw_26_weeks"
    assert "sustained_whp_16h_nlw_26_weeks_6m" in res.headline()
    assert "sustained_dfe_5_of_6_months_6m" in res.headline()  # every preset measured
    rates = res.internal[res.internal["kind"] == "rate"]
    assert rates.loc[rates["rate"].notna(), "n"].min() >= 10
    with pytest.raises(ConfigError):
        measure_outcomes(agreement(), journeys, None, rule="nonsense", as_of=AS_OF)


def test_gaps_only_from_shown_rates(journeys):
    res = measure_outcomes(agreement(), journeys, None, as_of=AS_OF)
    g = res.gaps
    assert not g.empty
    both = g["rate"].notna() & g["reference_rate"].notna()
    assert g.loc[both, "gap_pp"].notna().all()
    assert g.loc[~both, "gap_pp"].isna().all()
    one = g[(g["dim"] == "disability") & (g["la"] == "All") & (g["group"] == "Yes")].iloc[0]
    assert one["gap_pp"] == pytest.approx(one["rate"] - one["reference_rate"])


def test_bias_table_and_warning():
    records = pd.DataFrame(
        {
            "source": ["hub_x"] * 200,
            "la": ["A"] * 100 + ["B"] * 100,
            "ethnicity": ["White"] * 200,
            "gender": ["Female"] * 200,
            "age_band": ["25-34"] * 200,
            "disability": ["No"] * 200,
            "linked": [True] * 90 + [False] * 10 + [True] * 60 + [False] * 40,
        }
    )
    prot = protect(bias_measures(records), DisclosureTier())
    la = prot[prot["breakdown"] == "la"].set_index("group1")
    assert la.loc["A", "rate"] == pytest.approx(90.0) and la.loc["B", "rate"] == pytest.approx(60.0)
    warns = bias_warnings(prot, threshold_pp=10)
    assert len(warns) == 1 and "local authority" in warns[0] and "30.0 points" in warns[0]
    assert bias_warnings(prot, threshold_pp=35) == []


def test_refuses_non_analysts_and_token_columns(journeys):
    with pytest.raises(PolicyError, match="rule 'roles'"):
        measure_outcomes(agreement(), journeys, None, party="dwp", as_of=AS_OF)
    events, persons = journeys
    bad = events.append_column("nino", pa.array(["x"] * events.num_rows))
    with pytest.raises(PolicyError, match="rule 'separation'"):
        measure_outcomes(agreement(), (bad, persons), None, as_of=AS_OF)


def test_refuses_token_file_in_journeys_dir(tmp_path, journeys):
    events, persons = journeys
    pq.write_table(events, tmp_path / "events.parquet")
    pq.write_table(persons, tmp_path / "persons.parquet")
    pq.write_table(pa.table({"row_ref": ["a"]}), tmp_path / "dwp_claims.tokens.parquet")
    with pytest.raises(PolicyError, match="never opens tokens"):
        measure_outcomes(agreement(), tmp_path, None)


def _write_inputs(tmp_path, b: Builder):
    return write_inputs(tmp_path, *b.tables())


def test_cli_journeys_then_outcomes(tmp_path):
    pdir, mdir = _write_inputs(tmp_path, _region(people=120))
    runner = CliRunner()
    r = runner.invoke(main, ["journeys", "--agreement", str(AGREEMENT_PATH), "--payloads", str(pdir),
                             "--maps", str(mdir), "--out", str(tmp_path / "j")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "events of 120 persons" in r.output
    r = runner.invoke(main, ["outcomes", "--agreement", str(AGREEMENT_PATH), "--journeys", str(tmp_path / "j"),
                             "--out", str(tmp_path / "o"), "--rule", "whp_16h_nlw_26_weeks"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "rule whp_16h_nlw_26_weeks" in r.output
    assert (tmp_path / "o" / "dashboard.html").stat().st_size > 1_000_000  # plotly.js inline
    assert (tmp_path / "o" / "dashboard-public.html").exists()
    r = runner.invoke(main, ["outcomes", "--agreement", str(AGREEMENT_PATH), "--journeys", str(tmp_path / "j"),
                             "--out", str(tmp_path / "o2"), "--as", "linkage-unit"])  # fmt: skip
    assert r.exit_code == 1 and "rule 'roles'" in r.output


def test_cli_rule_parameters(tmp_path):
    jdir = tmp_path / "j"
    build_journeys(agreement(), *_region(people=120).tables(), jdir, as_of=AS_OF)
    runner = CliRunner()
    args = ["outcomes", "--agreement", str(AGREEMENT_PATH), "--journeys", str(jdir)]
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "o"), "--rule-param", "min_months=3"])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "o" / "outcomes-manifest.json").read_text())
    assert man["rules"]["dfe_5_of_6_months"]["min_months"] == 3
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "o2"), "--rule-param", "colour=red"])
    assert r.exit_code == 1 and "colour" in r.output


@pytest.fixture(scope="module")
def journeys_dir(tmp_path_factory):
    jdir = tmp_path_factory.mktemp("jdir") / "j"
    build_journeys(agreement(), *_region(people=120).tables(), jdir, as_of=AS_OF)
    return jdir


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_outcomes_require_the_journeys_manifest(tmp_path, journeys_dir):
    jdir = _copy(journeys_dir, tmp_path / "j")
    (jdir / "journeys-manifest.json").unlink()
    with pytest.raises(InputDataError, match=r"j/journeys-manifest\.json: not found"):
        measure_outcomes(agreement(), jdir, None)
    r = CliRunner().invoke(main, ["outcomes", "--agreement", str(AGREEMENT_PATH), "--journeys",
                                  str(jdir), "--out", str(tmp_path / "o")])  # fmt: skip
    assert r.exit_code == 1 and "journeys-manifest.json: not found" in r.output
    assert not (tmp_path / "o").exists()


def test_journeys_manifest_must_vouch_for_both_tables(tmp_path, journeys_dir):
    jdir = _copy(journeys_dir, tmp_path / "j")
    man = json.loads((jdir / "journeys-manifest.json").read_text())
    del man["files"]["persons.parquet"]
    (jdir / "journeys-manifest.json").write_text(json.dumps(man))
    with pytest.raises(VerificationError, match=r"lists no SHA-256 for persons\.parquet"):
        measure_outcomes(agreement(), jdir, None)
    jdir = _copy(journeys_dir, tmp_path / "j2")
    ev = pq.read_table(jdir / "events.parquet")
    pq.write_table(ev.slice(1), jdir / "events.parquet")
    with pytest.raises(VerificationError, match=r"events\.parquet: SHA-256 differs"):
        measure_outcomes(agreement(), jdir, None)


def test_journeys_argument_that_is_a_file(journeys_dir):
    with pytest.raises(InputDataError, match="is a file, not a directory; expected the journeys"):
        measure_outcomes(agreement(), journeys_dir / "events.parquet", None)


def _tree(root):
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_failed_write_leaves_no_half_output(tmp_path, journeys_dir, monkeypatch):
    import wmw_link.outcomes.run as run

    real = run.write_bytes_atomic

    def public_fails(path, data, mode=None):
        if "public" in path.parts:
            raise PermissionError(13, "Permission denied", str(path))
        real(path, data, mode)

    out = tmp_path / "o"
    with monkeypatch.context() as m:
        m.setattr(run, "write_bytes_atomic", public_fails)
        with pytest.raises(ConfigError, match=r"o/public/\S+\.csv: cannot write the outcomes"):
            measure_outcomes(agreement(), journeys_dir, out, dashboards=False)
    assert not out.exists()  # no tables/ without public/, dashboards and manifest
    assert list(tmp_path.iterdir()) == []  # nor a staging folder
    measure_outcomes(agreement(), journeys_dir, out, dashboards=False)
    before = _tree(out)
    assert {"outcomes-manifest.json", "public/gaps.csv", "tables/gaps.csv"} <= set(before)
    # The CLI: a one-line error, exit 1, no traceback, the previous output untouched.
    with monkeypatch.context() as m:
        m.setattr(run, "write_bytes_atomic", public_fails)
        r = CliRunner().invoke(main, ["outcomes", "--agreement", str(AGREEMENT_PATH), "--journeys",
                                      str(journeys_dir), "--out", str(out)])  # fmt: skip
    assert r.exit_code == 1 and "cannot write the outcomes output" in r.output, r.output
    assert "Traceback" not in r.output
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_rerun_replaces_output_and_refuses_foreign_folders(tmp_path, journeys_dir):
    out = tmp_path / "o"
    measure_outcomes(agreement(), journeys_dir, out, dashboards=False)
    (out / "tables" / "stale_table.csv").write_text("old")  # inside a previous output: replaced
    measure_outcomes(agreement(), journeys_dir, out, dashboards=False)
    assert not (out / "tables" / "stale_table.csv").exists()
    man = json.loads((out / "outcomes-manifest.json").read_text())
    assert set(man["outputs"]) == {str(p.relative_to(out)) for p in out.rglob("*.csv")}
    with pytest.raises(ConfigError, match="not part of a previous outcomes output"):
        measure_outcomes(agreement(), journeys_dir, journeys_dir, dashboards=False)
    assert (journeys_dir / "events.parquet").exists()


def test_empty_journeys_are_an_error_not_an_all_suppressed_dashboard(tmp_path, journeys):
    events, persons = journeys
    with pytest.raises(InputDataError, match="hold no events or no persons"):
        measure_outcomes(agreement(), (events.slice(0, 0), persons.slice(0, 0)), tmp_path / "o")
    assert not (tmp_path / "o").exists()
