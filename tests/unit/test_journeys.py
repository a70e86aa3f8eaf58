"""Journeys: events and persons from payloads + maps, conflict rules, and refusals."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from journey_fixtures import AGREEMENT_PATH, Builder, D, agreement, write_inputs

from wmw_link.cli import main
from wmw_link.errors import ConfigError, InputDataError, PolicyError, VerificationError
from wmw_link.files import sha256_file
from wmw_link.journeys import age_band, build_journeys


def _persons(result) -> dict[str, dict]:
    return {r["person_id"]: r for r in result.persons.to_pylist()}


def test_events_have_one_row_per_linked_record_with_types():
    b = Builder().hub("p1").job("p1", D(2024, 2, 1), pay=1800.0).claim("p2", D(2023, 5, 1))
    b.add(
        "nhs_referrals",
        "p2",
        service="IPS",
        referral_date=D(2024, 3, 1),
        condition_category="mental_health",
    )
    res = build_journeys(agreement(), *b.tables())
    ev = res.events.to_pylist()
    assert len(ev) == 4
    kinds = {(e["person_id"], e["event_type"]) for e in ev}
    assert kinds == {
        ("p1", "hub_support"),
        ("p1", "employment"),
        ("p2", "benefit"),
        ("p2", "health_referral"),
    }
    job = next(e for e in ev if e["event_type"] == "employment")
    assert (
        job["start"] == D(2024, 2, 1)
        and job["monthly_pay"] == 1800.0
        and job["source"] == "hmrc_rti"
    )
    assert "row_ref" not in res.events.column_names
    assert res.events.schema.field("start").type == pa.date32()


def test_gender_ethnicity_hub_self_report_most_recent_stated_answer():
    b = Builder()
    b.hub("p1", start=D(2023, 1, 1), gender="Male", ethnicity="Asian")
    b.hub("p1", start=D(2024, 1, 1), gender="Prefer not to say", ethnicity="Black")
    b.hub("p2", start=D(2024, 1, 1), gender="Prefer not to say", ethnicity="Prefer not to say")
    b.job("p3", D(2024, 1, 1))
    p = _persons(build_journeys(agreement(), *b.tables()))
    assert p["p1"]["gender"] == "Male"  # a stated answer beats a later "prefer not to say"
    assert p["p1"]["ethnicity"] == "Black"  # the most recent stated answer
    assert p["p2"]["gender"] == "Prefer not to say"
    assert p["p3"]["gender"] == "Unknown" and p["p3"]["ethnicity"] == "Unknown"


def test_disability_hub_first_then_pip():
    b = Builder()
    b.hub("p1", disability="No").claim("p1", D(2023, 1, 1), benefit="PIP", regime="not_applicable")
    b.claim("p2", D(2023, 1, 1), benefit="PIP", regime="not_applicable")
    b.hub("p3", disability="Prefer not to say")
    b.job("p4", D(2024, 1, 1))
    p = _persons(build_journeys(agreement(), *b.tables()))
    assert (p["p1"]["disability"], p["p1"]["disability_source"]) == ("No", "hub self-report")
    assert (p["p2"]["disability"], p["p2"]["disability_source"]) == ("Yes", "PIP claim")
    assert (p["p3"]["disability"], p["p3"]["disability_source"]) == ("No", "no indicator")
    assert (p["p4"]["disability"], p["p4"]["disability_source"]) == ("No", "no indicator")


def test_local_authority_from_latest_district_then_hub_la():
    b = Builder()
    b.claim("p1", D(2022, 1, 1), postcode_district="CV1")  # Coventry, older
    b.hub("p1", la="Birmingham", start=D(2024, 1, 1), postcode_district="b15")  # newer: Birmingham
    b.hub("p2", la="Walsall")  # no district anywhere: the hub's LA
    b.claim("p3", D(2024, 1, 1), postcode_district="SW1A")  # outside the table
    b.job("p4", D(2024, 1, 1))
    p = _persons(build_journeys(agreement(), *b.tables()))
    assert p["p1"]["local_authority"] == "Birmingham"
    assert p["p2"]["local_authority"] == "Walsall"
    assert p["p3"]["local_authority"] == "Outside WMCA"
    assert p["p4"]["local_authority"] == "Unknown"


def test_birth_year_hub_first_and_age_band_at_as_of():
    b = Builder().hub("p1", birth_year=2000).claim("p1", D(2024, 6, 1), birth_year=1999)
    b.claim("p2", D(2020, 1, 1), birth_year=1980).claim("p2", D(2024, 6, 1), birth_year=1981)
    res = build_journeys(agreement(), *b.tables(), as_of=D(2025, 1, 1))
    p = _persons(res)
    assert p["p1"]["birth_year"] == 2000 and p["p1"]["age_band"] == "25-34"
    assert p["p2"]["birth_year"] == 1981  # most recent of the non-hub sources
    assert p["p2"]["age_band"] == "35-49"
    assert p["p1"]["n_sources"] == 2 and p["p1"]["sources"] == "dwp_claims,hub_birmingham"


@pytest.mark.parametrize(
    ("age", "band"),
    [(15, "under 16"), (16, "16-17"), (18, "18-24"), (24, "18-24"), (65, "65+"), (None, "Unknown")],
)
def test_age_band(age, band):
    assert age_band(age) == band


def test_health_condition_most_recent_nhs_referral():
    b = Builder()
    b.add(
        "nhs_referrals",
        "p1",
        service="IPS",
        referral_date=D(2023, 1, 1),
        condition_category="musculoskeletal",
    )
    b.add(
        "nhs_referrals",
        "p1",
        service="WorkWell",
        referral_date=D(2024, 1, 1),
        condition_category="mental_health",
    )
    b.job("p2", D(2024, 1, 1))
    p = _persons(build_journeys(agreement(), *b.tables()))
    assert p["p1"]["health_condition"] == "mental_health"
    assert p["p2"]["health_condition"] == "none_recorded"


def test_payload_rows_without_a_person_id_are_refused():
    pay, maps = Builder().job("p1", D(2024, 1, 1)).job("p2", D(2024, 2, 1)).tables()
    short = maps["hmrc_rti"].slice(0, 1)
    with pytest.raises(InputDataError, match=r"1 of 2 payload row\(s\) of hmrc_rti have no person"):
        build_journeys(agreement(), pay, {"hmrc_rti": short})
    # A null person id is no person id.
    null = maps["hmrc_rti"].set_column(1, "person_id", pa.array(["p1", None], pa.string()))
    with pytest.raises(InputDataError, match="every payload row must have one"):
        build_journeys(agreement(), pay, {"hmrc_rti": null})
    # Map rows the payload lacks are only counted, as a warning.
    one = {"hmrc_rti": pay["hmrc_rti"].slice(0, 1)}
    res = build_journeys(agreement(), one, maps)
    assert res.counts["datasets"]["hmrc_rti"] == {"rows": 1, "with_person_id": 1}
    assert any("1 map row(s) have no payload row" in w for w in res.warnings)


def test_refuses_token_columns_in_payload_or_map():
    pay, maps = Builder().job("p1", D(2024, 1, 1)).tables()
    bad = pay["hmrc_rti"].append_column("nino", pa.array(["ab" * 16]))
    with pytest.raises(PolicyError, match="rule 'separation'"):
        build_journeys(agreement(), {"hmrc_rti": bad}, maps)
    bad_map = maps["hmrc_rti"].append_column("fn_dob", pa.array(["cd" * 16]))
    with pytest.raises(PolicyError, match="rule 'separation'"):
        build_journeys(agreement(), pay, {"hmrc_rti": bad_map})


def test_refuses_withheld_and_unknown_payload_fields():
    pay, maps = Builder().hub("p1").tables()
    t = pay["hub_birmingham"].append_column("adviser_notes", pa.array(["x"]))
    with pytest.raises(PolicyError, match="to_analyst: false"):
        build_journeys(agreement(), {"hub_birmingham": t}, maps)
    t = pay["hub_birmingham"].append_column("phone", pa.array(["x"]))
    with pytest.raises(PolicyError, match="does not name"):
        build_journeys(agreement(), {"hub_birmingham": t}, maps)


def test_refuses_non_analyst_party_and_unknown_dataset():
    pay, maps = Builder().job("p1", D(2024, 1, 1)).tables()
    with pytest.raises(PolicyError, match="rule 'roles'"):
        build_journeys(agreement(), pay, maps, party="linkage-unit")
    with pytest.raises(PolicyError, match="not in agreement"):
        build_journeys(agreement(), {"payroll": pay["hmrc_rti"]}, maps)


def _write_dirs(tmp_path, pay, maps, version=1, agreement_id="wmw-outcomes", run="run-1"):
    return write_inputs(tmp_path, pay, maps, version=version, agreement_id=agreement_id, run=run)


def test_directories_round_trip_and_manifest(tmp_path):
    pay, maps = Builder().hub("p1").job("p1", D(2024, 2, 1)).tables()
    pdir, mdir = _write_dirs(tmp_path, pay, maps)
    res = build_journeys(agreement(), pdir, mdir, tmp_path / "out")
    assert pq.read_table(tmp_path / "out" / "events.parquet").num_rows == 2
    assert pq.read_table(tmp_path / "out" / "persons.parquet").num_rows == 1
    man = json.loads((tmp_path / "out" / "journeys-manifest.json").read_text())
    assert man["as_of"] == res.as_of.isoformat() == "2024-02-01"
    assert man["agreement"]["id"] == "wmw-outcomes"
    # Provenance: payloads with their manifests, maps with the link manifest, by hash.
    names = sorted(p.rsplit("/", 1)[1] for p in man["inputs"])
    assert "link-manifest.json" in names and "hmrc_rti.manifest.json" in names
    assert man["inputs"][str(mdir / "link-manifest.json")] == sha256_file(
        mdir / "link-manifest.json"
    )


def test_directories_refuse_other_version_tampering_and_token_files(tmp_path):
    pay, maps = Builder().job("p1", D(2024, 1, 1)).tables()
    pdir, mdir = _write_dirs(tmp_path, pay, maps, version=7)
    with pytest.raises(PolicyError, match="rule 'version'"):
        build_journeys(agreement(), pdir, mdir)
    (pdir / "hmrc_rti.manifest.json").unlink()
    with pytest.raises(VerificationError, match="no manifest"):
        build_journeys(agreement(), pdir, mdir)


def test_tampered_payload_and_token_file_refused(tmp_path):
    pay, maps = Builder().job("p1", D(2024, 1, 1)).tables()
    pdir, mdir = _write_dirs(tmp_path, pay, maps)
    pq.write_table(pay["hmrc_rti"].slice(0, 0), pdir / "hmrc_rti.payload.parquet")
    with pytest.raises(VerificationError, match="SHA-256"):
        build_journeys(agreement(), pdir, mdir)
    pdir2, mdir2 = (
        _write_dirs(tmp_path / "b", pay, maps) if (tmp_path / "b").mkdir() is None else (None, None)
    )
    pq.write_table(pa.table({"row_ref": ["x"]}), mdir2 / "hmrc_rti.tokens.parquet")
    with pytest.raises(PolicyError, match="never opens tokens"):
        build_journeys(agreement(), pdir2, mdir2)


def test_missing_map_is_an_input_error():
    pay, _ = Builder().job("p1", D(2024, 1, 1)).tables()
    with pytest.raises(InputDataError, match="no map for dataset hmrc_rti"):
        build_journeys(agreement(), pay, {})


def test_controller_local_files_refused(tmp_path):
    pay, maps = Builder().job("p1", D(2024, 1, 1)).tables()
    pdir, mdir = _write_dirs(tmp_path, pay, maps)
    pq.write_table(
        pa.table({"record_id": ["x"], "row_ref": ["y"]}), pdir / "hmrc_rti.crosswalk.parquet"
    )
    with pytest.raises(PolicyError, match="stays with its controller"):
        build_journeys(agreement(), pdir, mdir)


def test_accepts_duckdb_relations_and_pandas():
    import duckdb

    pay, maps = Builder().job("p1", D(2024, 1, 1)).hub("p1").tables()
    con = duckdb.connect()
    con.register("jobs", pay["hmrc_rti"])
    rel = {
        "hmrc_rti": con.sql("SELECT * FROM jobs"),
        "hub_birmingham": pay["hub_birmingham"].to_pandas(),
    }
    res = build_journeys(agreement(), rel, maps)
    assert res.events.num_rows == 2


def test_gender_falls_back_to_administrative_sex() -> None:
    """A hub's stated gender wins; without one, HMRC/DWP's recorded sex; 'Prefer not to say' last."""
    import pyarrow as pa

    from wmw_link.journeys import build_journeys as bj

    a = agreement()
    hmrc = pa.table({
        "row_ref": ["h1", "h2", "h3"], "employer_ref": ["E1"] * 3,
        "start_date": pa.array([D(2024, 1, 1)] * 3, pa.date32()), "end_date": pa.array([None] * 3, pa.date32()),
        "monthly_pay": [2000.0] * 3, "birth_year": pa.array([1990] * 3, pa.int16()),
        "postcode_district": ["B15"] * 3, "recorded_sex": ["F", "M", "F"],
    })  # fmt: skip
    hub = pa.table({
        "row_ref": ["b1", "b2"], "support_start": pa.array([D(2024, 2, 1)] * 2, pa.date32()),
        "support_type": ["employment_support"] * 2, "hub_la": ["Birmingham"] * 2,
        "gender": ["Male", "Prefer not to say"], "ethnicity": ["White"] * 2, "disability": ["No"] * 2,
        "birth_year": pa.array([1990] * 2, pa.int16()), "postcode_district": ["B15"] * 2,
    })  # fmt: skip
    maps = {
        "hmrc_rti": pa.table({"row_ref": ["h1", "h2", "h3"], "person_id": ["p1", "p2", "p3"]}),
        "hub_birmingham": pa.table({"row_ref": ["b1", "b2"], "person_id": ["p1", "p2"]}),
    }
    res = bj(a, {"hmrc_rti": hmrc, "hub_birmingham": hub}, maps, None, require_manifests=False)
    p = _persons(res)
    assert p["p1"]["gender"] == "Male"  # stated at the hub, over HMRC's F
    assert p["p2"]["gender"] == "Male"  # prefer not to say at the hub; HMRC records M
    assert p["p3"]["gender"] == "Female"  # HMRC only


# -- maps from the right linkage run (link-manifest.json) ------------------------------------


def _two_datasets():
    return Builder().hub("p1").job("p1", D(2024, 2, 1)).job("p2", D(2024, 3, 1)).tables()


def test_maps_need_the_link_manifest_beside_them(tmp_path):
    pdir, mdir = _write_dirs(tmp_path, *_two_datasets())
    (mdir / "link-manifest.json").unlink()
    with pytest.raises(VerificationError, match=r"maps/link-manifest\.json: not found"):
        build_journeys(agreement(), pdir, mdir)


def test_stale_map_from_an_earlier_run_is_refused(tmp_path):
    pay, maps = _two_datasets()
    pdir, mdir = _write_dirs(tmp_path, pay, maps)
    assert build_journeys(agreement(), pdir, mdir).counts["persons"] == 2
    # (a) a map the current run did not write, left in the folder from an earlier run
    extra = Builder().claim("q9", D(2023, 1, 1)).tables()[1]["dwp_claims"]
    pq.write_table(extra, mdir / "dwp_claims.map.parquet")
    with pytest.raises(VerificationError, match=r"dwp_claims\.map\.parquet: not listed in link"):
        build_journeys(agreement(), pdir, mdir)
    (mdir / "dwp_claims.map.parquet").unlink()
    # (b) a listed dataset's map replaced by an older one (another person-id space)
    old = maps["hmrc_rti"].set_column(1, "person_id", pa.array(["old1", "old2"], pa.string()))
    pq.write_table(old, mdir / "hmrc_rti.map.parquet")
    with pytest.raises(VerificationError, match=r"hmrc_rti\.map\.parquet: SHA-256 differs"):
        build_journeys(agreement(), pdir, mdir)


def test_maps_of_another_linkage_run_are_refused(tmp_path):
    pay, maps = _two_datasets()
    pdir, _ = _write_dirs(tmp_path / "a", pay, maps, run="run-a")
    _, mdir_b = _write_dirs(tmp_path / "b", pay, maps, run="run-b")
    with pytest.raises(
        VerificationError, match=r"dataset hmrc_rti: the maps come from another linkage run"
    ):
        build_journeys(agreement(), pdir, mdir_b)
    # The CLI says so with exit 1, instead of "0 events of 0 persons" and exit 0.
    r = CliRunner().invoke(main, ["journeys", "--agreement", str(AGREEMENT_PATH), "--payloads",
                                  str(pdir), "--maps", str(mdir_b), "--out", str(tmp_path / "j")])  # fmt: skip
    assert r.exit_code == 1 and "another linkage run" in r.output, r.output
    assert not (tmp_path / "j").exists()


def test_payloads_must_match_the_link_runs_inputs(tmp_path):
    pay, maps = _two_datasets()
    pdir, mdir = _write_dirs(tmp_path, pay, maps)
    link = json.loads((mdir / "link-manifest.json").read_text())
    del link["inputs"]["hub_birmingham"]
    (mdir / "link-manifest.json").write_text(json.dumps(link))
    with pytest.raises(VerificationError, match="lists no hub_birmingham input"):
        build_journeys(agreement(), pdir, mdir)
    pdir, mdir = _write_dirs(tmp_path / "b", pay, maps)
    man = json.loads((pdir / "hmrc_rti.manifest.json").read_text())
    del man["files"]["tokens"]
    (pdir / "hmrc_rti.manifest.json").write_text(json.dumps(man))
    with pytest.raises(VerificationError, match=r"records no files\.tokens\.sha256"):
        build_journeys(agreement(), pdir, mdir)


def test_link_manifest_of_another_agreement_version_refused(tmp_path):
    pay, maps = _two_datasets()
    pdir, mdir = _write_dirs(tmp_path, pay, maps)
    link = json.loads((mdir / "link-manifest.json").read_text())
    link["agreement"]["version"] = 7
    (mdir / "link-manifest.json").write_text(json.dumps(link))
    with pytest.raises(PolicyError, match=r"rule 'version': link-manifest\.json"):
        build_journeys(agreement(), pdir, mdir)


def test_a_file_given_for_a_directory_is_named_as_such(tmp_path):
    pdir, mdir = _write_dirs(tmp_path, *_two_datasets())
    f = pdir / "hmrc_rti.payload.parquet"
    with pytest.raises(InputDataError, match=r"is a file, not a directory; expected the payload"):
        build_journeys(agreement(), f, mdir)
    with pytest.raises(InputDataError, match=r"is a file, not a directory; expected the map"):
        build_journeys(agreement(), pdir, mdir / "hmrc_rti.map.parquet")
    with pytest.raises(InputDataError, match="payload directory not found"):
        build_journeys(agreement(), tmp_path / "nowhere", mdir)


# -- output written whole --------------------------------------------------------------------


def test_outputs_appear_together_or_not_at_all(tmp_path, monkeypatch):
    import wmw_link.journeys.build as jmod

    pdir, mdir = _write_dirs(tmp_path, *_two_datasets())
    out = tmp_path / "j"

    def fail(path, obj):
        raise PermissionError(13, "Permission denied", str(path))

    with monkeypatch.context() as m:
        m.setattr(jmod, "write_json_atomic", fail)
        with pytest.raises(ConfigError, match=r"j/journeys-manifest\.json: cannot write"):
            build_journeys(agreement(), pdir, mdir, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps", "payloads"]  # no staging left
    build_journeys(agreement(), pdir, mdir, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"events.parquet", "persons.parquet", "journeys-manifest.json"}
    # A failed rerun keeps the previous output, whole.
    with monkeypatch.context() as m:
        m.setattr(jmod, "write_json_atomic", fail)
        r = CliRunner().invoke(main, ["journeys", "--agreement", str(AGREEMENT_PATH), "--payloads",
                                      str(pdir), "--maps", str(mdir), "--out", str(out)])  # fmt: skip
    assert r.exit_code == 1 and "cannot write" in r.output and "Traceback" not in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # A successful rerun replaces it.
    build_journeys(agreement(), pdir, mdir, out)
    assert set(p.name for p in out.iterdir()) == set(before)


def test_out_folder_with_other_files_is_not_replaced(tmp_path):
    pdir, mdir = _write_dirs(tmp_path, *_two_datasets())
    with pytest.raises(ConfigError, match="not part of a previous journeys output"):
        build_journeys(agreement(), pdir, mdir, pdir)  # would delete the payloads
    assert (pdir / "hmrc_rti.payload.parquet").exists()
