"""Agreement models: the shipped agreement, invalid files, policy checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner

from wmw_link.agreement import IdentifierType, Role, load_agreement, parse_agreement, summarise
from wmw_link.cli import main
from wmw_link.errors import AgreementError, PolicyError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "agreements" / "wmw-outcomes.yaml"
LAS = ["birmingham", "coventry", "dudley", "sandwell", "solihull", "walsall", "wolverhampton"]


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(SHIPPED.read_text())


def test_shipped_agreement_names_every_partner_and_role() -> None:
    a = load_agreement(SHIPPED)
    roles = {p.id: p.role for p in a.parties}
    for party in ["hmrc", "dwp", "nhs-icb", "wmca-skills", *[f"hub-{la}" for la in LAS]]:
        assert roles[party] == Role.CONTROLLER
    assert [p.id for p in a.parties_with_role(Role.TTP)] == ["linkage-unit"]
    assert [p.id for p in a.parties_with_role(Role.ANALYST)] == ["insight-team"]
    assert {d.id for d in a.datasets} >= {
        "hmrc_rti",
        "dwp_claims",
        "nhs_referrals",
        "skills_enrolments",
    }
    assert {d.id for d in a.datasets if d.id.startswith("hub_")} == {f"hub_{la}" for la in LAS}


def test_hub_datasets_share_one_minimum_data_set() -> None:
    a = load_agreement(SHIPPED)
    hubs = [d for d in a.datasets if d.id.startswith("hub_")]
    assert len({(tuple(d.identifiers), tuple(d.payload)) for d in hubs}) == 1
    assert hubs[0].identifier(IdentifierType.DATE_OF_BIRTH).format == "%d/%m/%Y"


def test_withheld_fields_never_reach_the_analyst() -> None:
    a = load_agreement(SHIPPED)
    nhs = a.dataset("nhs_referrals")
    assert "gp_practice" not in {f.name for f in nhs.analyst_payload()}
    assert "gp_practice" in {f.name for f in nhs.payload}


def test_hash_ignores_layout_but_not_content(raw: dict, tmp_path: Path) -> None:
    a = load_agreement(SHIPPED)
    relaid = tmp_path / "relaid.yaml"
    raw_no_anchors = {k: v for k, v in raw.items() if not k.startswith("x-")}
    relaid.write_text(yaml.safe_dump(raw_no_anchors, sort_keys=True))
    assert load_agreement(relaid).hash == a.hash
    raw_no_anchors["purpose"] = "something else"
    relaid.write_text(yaml.safe_dump(raw_no_anchors))
    assert load_agreement(relaid).hash != a.hash


def test_every_problem_is_reported_at_once_with_its_field(raw: dict) -> None:
    raw["parties"][0]["role"] = "boss"
    raw["datasets"][1]["identifiers"][0]["type"] = "shoe_size"
    raw["datasets"][2]["controller"] = "nobody"
    raw["valid_until"] = "2020-01-01"
    with pytest.raises(AgreementError) as e:
        parse_agreement(raw, source="bad.yaml")
    msg = str(e.value)
    assert msg.startswith("bad.yaml:")
    assert "parties[0] (hmrc).role" in msg
    assert "datasets[1] (dwp_claims).identifiers[0] (nino).type" in msg


def test_cross_field_rules(raw: dict) -> None:
    raw["datasets"][2]["controller"] = "linkage-unit"
    raw["valid_until"] = "2020-01-01"
    raw["compatible_with"] = [3]
    with pytest.raises(AgreementError) as e:
        parse_agreement(raw)
    msg = str(e.value)
    assert "valid_until must be after valid_from" in msg
    assert "has role 'ttp', not 'controller'" in msg
    assert "compatible_with may only name earlier versions" in msg


def test_date_of_birth_without_format_reads_iso(raw: dict) -> None:
    # A Parquet date column reads as ISO text: it needs no format.
    del raw["datasets"][0]["identifiers"][3]["format"]
    dob = parse_agreement(raw).datasets[0].identifiers[3]
    assert dob.format is None and dob.date_format == "%Y-%m-%d"
    raw["datasets"][0]["identifiers"][0]["format"] = "%Y"
    with pytest.raises(AgreementError, match="'format' is only allowed on a date_of_birth"):
        parse_agreement(raw)


def test_unknown_keys_and_schema_versions_are_refused(raw: dict) -> None:
    raw["datasets"][0]["secret_sauce"] = 1
    with pytest.raises(AgreementError, match="secret_sauce"):
        parse_agreement(raw)
    raw2 = yaml.safe_load(SHIPPED.read_text())
    raw2["schema_version"] = 99
    with pytest.raises(AgreementError, match="schema_version 99 is not supported"):
        parse_agreement(raw2)


def test_public_tier_must_be_stricter(raw: dict) -> None:
    raw["disclosure"]["public"]["min_cell"] = 3
    with pytest.raises(AgreementError, match="public tier must be at least as strict"):
        parse_agreement(raw)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(AgreementError, match="not found"):
        load_agreement(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(AgreementError, match="not valid YAML at line"):
        load_agreement(bad)


def test_policy_checks() -> None:
    a = load_agreement(SHIPPED)
    a.require_in_force(dt.date(2027, 1, 1))
    with pytest.raises(PolicyError, match="rule 'validity'.*expired on 2029-03-31"):
        a.require_in_force(dt.date(2030, 1, 1))
    with pytest.raises(PolicyError, match="not in force until"):
        a.require_in_force(dt.date(2025, 1, 1))
    with pytest.raises(PolicyError, match="rule 'roles'.*only a 'ttp' may run linkage"):
        a.require_role("hmrc", Role.TTP, "run linkage")
    with pytest.raises(PolicyError, match="rule 'controller'.*belongs to 'hmrc'"):
        a.require_controller_of("dwp", "hmrc_rti")
    with pytest.raises(PolicyError, match="party 'mi5' is not in agreement"):
        a.party("mi5")
    with pytest.raises(PolicyError, match="dataset 'census' is not in agreement"):
        a.dataset("census")
    assert a.default_party(Role.TTP) == "linkage-unit"
    with pytest.raises(PolicyError, match="say which one you are with --as"):
        a.default_party(Role.CONTROLLER)
    assert a.accepts_version(1) and not a.accepts_version(2)


def test_summary_says_who_sends_what_to_whom() -> None:
    text = summarise(load_agreement(SHIPPED))
    assert "hmrc_rti from hmrc" in text
    assert "to linkage-unit as tokens: NINO (nino)" in text
    assert "withheld from everyone: GP_PRACTICE" in text


def test_cli_check_ok_and_error_without_traceback(raw: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["agreement", "check", str(SHIPPED)])
    assert ok.exit_code == 0, ok.output
    assert "OK: the agreement is valid and in force today." in ok.output
    raw["parties"][0]["role"] = "boss"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    res = runner.invoke(main, ["agreement", "check", str(bad)])
    assert res.exit_code == 1
    assert "parties[0] (hmrc).role" in res.output
    assert "Traceback" not in res.output


def test_payload_may_not_pass_an_identifier_to_the_analysts(raw: dict) -> None:
    dwp = raw["datasets"][1]
    dwp["payload"].append({"column": "nino", "name": "case_ref", "type": "string"})
    dwp["payload"].append(
        {"column": "dob", "name": "dob_full", "type": "date", "format": "%d/%m/%Y"}
    )
    dwp["payload"].append({"column": "claim_ref", "name": "claim", "type": "string"})
    with pytest.raises(AgreementError) as e:
        parse_agreement(raw)
    msg = str(e.value)
    assert "rule 'separation': payload field 'case_ref' would pass identifier column 'nino'" in msg


def test_coarsened_identifiers_and_recorded_sex_are_allowed() -> None:
    dwp = load_agreement(SHIPPED).dataset("dwp_claims")
    kinds = {f.name: f.type.value for f in dwp.payload}
    assert kinds["birth_year"] == "year" and kinds["postcode_district"] == "postcode_district"
    assert kinds["recorded_sex"] == "category"


@pytest.mark.parametrize("fmt", ["%Q/%m", "%m/%Y", "%d/%m", "nonsense"])
def test_date_formats_must_describe_a_whole_date(raw: dict, fmt: str) -> None:
    raw["datasets"][1]["identifiers"][3]["format"] = fmt
    with pytest.raises(AgreementError, match="format"):
        parse_agreement(raw)


def test_impossible_yaml_dates_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SHIPPED.read_text().replace("valid_until: 2029-03-31", "valid_until: 2025-99-31")
    )
    with pytest.raises(AgreementError, match="not valid YAML"):
        load_agreement(bad)


def test_cli_check_says_when_an_agreement_is_not_in_force(raw: dict, tmp_path: Path) -> None:
    raw["valid_from"], raw["valid_until"] = "2020-01-01", "2021-01-01"
    expired = tmp_path / "expired.yaml"
    expired.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(main, ["agreement", "check", str(expired)])
    assert res.exit_code == 1
    assert "valid but not in force" in res.output and "expired on 2021-01-01" in res.output


def _check(raw: dict, tmp_path: Path):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(raw))
    return CliRunner().invoke(main, ["agreement", "check", str(path)])


def test_fields_writing_the_same_tokens_are_refused_naming_both(
    raw: dict, tmp_path: Path
) -> None:
    ids = raw["datasets"][0]["identifiers"]  # hmrc_rti: NINO, FORENAMES, SURNAME, ...
    ids.append({"column": "FULL_NAME", "type": "full_name"})
    res = _check(raw, tmp_path)
    assert res.exit_code == 1
    assert (
        "identifier fields 'FORENAMES' (forename) and 'FULL_NAME' (full_name) would both write "
        "the forename tokens" in res.output
    )
    assert "'SURNAME' (surname) and 'FULL_NAME' (full_name)" in res.output
    assert "rule 'one field per token'" in res.output


def test_two_fields_of_one_single_valued_type_are_refused(raw: dict, tmp_path: Path) -> None:
    raw["datasets"][0]["identifiers"].append({"column": "NINO2", "type": "nino"})
    res = _check(raw, tmp_path)
    assert res.exit_code == 1
    assert "'NINO' (nino) and 'NINO2' (nino) would both write the nino tokens" in res.output


def test_generic_fields_may_repeat_but_not_share_a_name(raw: dict, tmp_path: Path) -> None:
    ids = raw["datasets"][0]["identifiers"]
    ids += [
        {"column": "Passport No", "type": "identifier"},
        {"column": "address_1", "type": "text"},
        {"column": "address_2", "type": "text"},
    ]
    assert _check(raw, tmp_path).exit_code == 0
    ids.append({"column": "passport-no", "type": "identifier"})
    res = _check(raw, tmp_path)
    assert res.exit_code == 1
    assert (
        "'Passport No' (identifier) and 'passport-no' (identifier) would both write the "
        "identifier tokens named 'passport_no' (give one a 'name')" in res.output
    )
    ids[-1]["name"] = "passport_2"
    assert _check(raw, tmp_path).exit_code == 0


def test_generic_options_only_where_they_apply(raw: dict) -> None:
    ids = raw["datasets"][0]["identifiers"]
    ids[0]["country"] = "any"  # NINO
    ids[1]["name"] = "x"  # FORENAMES
    ids.append({"column": "___", "type": "text"})
    with pytest.raises(AgreementError) as e:
        parse_agreement(raw)
    msg = str(e.value)
    assert "'country' is only allowed on a postcode identifier" in msg
    assert "'name' is only allowed on identifier and text fields" in msg
    assert "column '___' gives no usable token name: give the field a 'name'" in msg


def test_no_postcode_district_from_a_postcode_of_any_country(raw: dict) -> None:
    ds = raw["datasets"][0]
    pc = next(f for f in ds["identifiers"] if f["type"] == "postcode")
    pc["country"] = "any"
    ds["payload"].append(
        {"column": pc["column"], "name": "district_x", "type": "postcode_district"}
    )
    with pytest.raises(AgreementError, match="postcode district is derived by the UK format"):
        parse_agreement(raw)


def test_tokenise_refuses_clashing_fields_before_reading_anything(
    raw: dict, tmp_path: Path
) -> None:
    raw["datasets"][0]["identifiers"].append({"column": "FULL_NAME", "type": "full_name"})
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(
        main,
        ["tokenise", "--agreement", str(path), "--dataset", "hmrc_rti",
         "--input", str(tmp_path / "absent.csv"), "--key", str(tmp_path / "k"),
         "--ref-key", str(tmp_path / "r"), "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "'FORENAMES' (forename) and 'FULL_NAME' (full_name)" in res.output
    assert not (tmp_path / "out").exists()


def test_new_field_options_at_their_defaults_keep_the_agreement_hash(raw: dict) -> None:
    before = parse_agreement(raw).hash
    ids = raw["datasets"][0]["identifiers"]
    for f in ids:
        if f["type"] == "postcode":
            f["country"] = "gb"
        if f["type"] == "date_of_birth":
            f["max_age"] = 120
    assert parse_agreement(raw).hash == before
    next(f for f in ids if f["type"] == "date_of_birth")["max_age"] = 130
    assert parse_agreement(raw).hash != before


def test_max_age_moves_the_oldest_valid_date_of_birth() -> None:
    from wmw_link.normalise import Dates

    today = dt.date(2026, 6, 1)
    raw = ["19050101", "19300101"]
    assert Dates("%Y%m%d", today)(pa.array(raw)).reasons.to_pylist() == ["age_out_of_range", None]
    assert Dates("%Y%m%d", today, max_age=130)(pa.array(raw)).reasons.to_pylist() == [None, None]
