"""Any partner's extract: generic identifier types (identifier, text, postcode of any country),
a Parquet date column as date of birth, and one register deduplicated through the CLI."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from wmw_link import token_schema as ts
from wmw_link.agreement import load_agreement, parse_agreement
from wmw_link.cli import main
from wmw_link.evaluate import score
from wmw_link.linkage.settings import plan_model

_AGREEMENT = {
    "schema_version": 1,
    "id": "generic-test",
    "version": 1,
    "title": "One register with generic identifiers",
    "purpose": "test",
    "lawful_basis": "test",
    "valid_from": "2020-01-01",
    "valid_until": "2099-12-31",
    "parties": [
        {"id": "council", "name": "A council", "role": "controller"},
        {"id": "ttp", "name": "Linkage unit", "role": "ttp"},
        {"id": "analysts", "name": "Analysts", "role": "analyst"},
    ],
    "datasets": [
        {
            "id": "register",
            "controller": "council",
            "record_id": "rec_id",
            "identifiers": [
                {"column": "given_name", "type": "forename"},
                {"column": "surname", "type": "surname"},
                # A Parquet date column: no format needed.
                {"column": "dob", "type": "date_of_birth"},
                {"column": "Soc Sec ID", "type": "identifier"},
                {"column": "passport", "type": "identifier", "name": "pp"},
                {"column": "address_1", "type": "text"},
                {"column": "suburb", "type": "text"},
                {"column": "postcode", "type": "postcode", "country": "any"},
            ],
        }
    ],
}

_FORENAMES = ["james", "olivia", "liam", "ava", "noah", "mia", "jack", "zoe", "leo", "ella"]
_SURNAMES = ["nguyen", "smith", "brown", "wilson", "taylor", "white", "martin", "lee"]
_STREETS = ["wattle street", "banksia road", "ocean parade", "kurrajong avenue", "main road"]
_SUBURBS = ["sunnybrae", "ashfield", "bondi", "glebe", "marrickville", "newtown"]


def _typo(rng: random.Random, s: str) -> str:
    i = rng.randrange(len(s))
    return s[:i] + rng.choice("aeioumnrst") + s[i + 1 :]


def _register(n_people: int, seed: int) -> tuple[pa.Table, dict[str, int]]:
    """A register with one to three records per person (typos, missing and reformatted ids)."""
    rng = random.Random(seed)
    rows, truth = [], {}
    for p in range(n_people):
        person = {
            "given_name": rng.choice(_FORENAMES),
            "surname": rng.choice(_SURNAMES),
            "dob": dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(25_000)),
            "Soc Sec ID": f"{rng.randrange(10**6, 10**7)}",
            "passport": f"PA{rng.randrange(10**6, 10**7)}",
            "address_1": f"{rng.randrange(1, 200)} {rng.choice(_STREETS)}",
            "suburb": rng.choice(_SUBURBS),
            "postcode": f"{rng.randrange(2000, 2999)}",
        }
        for k in range(rng.choice((1, 1, 2, 3))):
            r = dict(person)
            if k:
                field = rng.choice(["given_name", "surname", "address_1", "Soc Sec ID", "dob"])
                if field == "dob":
                    r["dob"] = r["dob"] + dt.timedelta(days=1)
                elif field == "Soc Sec ID":
                    r[field] = None
                else:
                    r[field] = _typo(rng, r[field])
                r["passport"] = r["passport"].lower()[:2] + "-" + r["passport"][2:]
            rec = f"R{len(rows):05d}"
            truth[rec] = p
            rows.append({"rec_id": rec, **r})
    table = pa.Table.from_pylist(rows)
    assert table.schema.field("dob").type == pa.date32()
    return table, truth


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int], CliRunner]:
    d = tmp_path_factory.mktemp("generic")
    (d / "agreement.yaml").write_text(yaml.safe_dump(_AGREEMENT))
    table, truth = _register(150, seed=3)
    pq.write_table(table, d / "register.parquet")
    cli = CliRunner()
    for args in (
        ["keys", "new", "--out", str(d / "link.key")],
        ["keys", "new", "--out", str(d / "ref.key")],
        ["tokenise", "--agreement", str(d / "agreement.yaml"), "--dataset", "register",
         "--input", str(d / "register.parquet"), "--key", str(d / "link.key"),
         "--ref-key", str(d / "ref.key"), "--out", str(d / "ctl")],
    ):  # fmt: skip
        res = cli.invoke(main, args)
        assert res.exit_code == 0, res.output
    inbox = d / "inbox"
    inbox.mkdir()
    for suffix in (".tokens.parquet", ".manifest.json"):
        (inbox / f"register{suffix}").write_bytes((d / "ctl" / f"register{suffix}").read_bytes())
    return d, truth, cli


def test_generic_fields_make_their_own_token_columns(run) -> None:
    d, _, _ = run
    cols = set(pq.read_schema(d / "ctl" / "register.tokens.parquet").names)
    assert {"id_soc_sec_id", "id_pp", "tx_address_1_dob", "tx_suburb_dob", "pc_dob"} <= cols
    assert set(ts.bloom_columns(ts.text_filter("address_1"))) <= cols
    # A postcode of any country has no sector, and no composite with one name only.
    assert not {"pcs_dob", "pc_sn", "fn_pc"} & cols
    tokens = pq.read_table(d / "ctl" / "register.tokens.parquet")
    # The date32 column was read without a format: date tokens are there.
    assert tokens["fn_dob"].null_count == 0
    assert tokens["tx_address_1_dob"].null_count == 0


def test_each_generic_column_has_its_own_domain() -> None:
    a = parse_agreement(_AGREEMENT)
    cols = ts.columns_for_dataset(a.datasets[0])
    domains = [c.domain for c in cols if c.kind != "bloom_word"]
    assert len(domains) == len(set(domains))
    assert {"v3:id_soc_sec_id", "v3:id_pp", "v3:tx_suburb_bf_dob"} <= {c.domain for c in cols}


def test_one_register_is_deduplicated_through_the_cli(run) -> None:
    d, truth, cli = run
    res = cli.invoke(
        main,
        ["link", "--agreement", str(d / "agreement.yaml"), "--inputs", str(d / "inbox"),
         "--out", str(d / "linked"), "--no-report"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    m = pd.read_parquet(d / "linked" / "register.map.parquet")
    xw = pd.read_parquet(d / "ctl" / "register.crosswalk.parquet")
    m = m.merge(xw, on="row_ref")
    assert len(m) == len(truth)
    frame = pd.DataFrame(
        {"dataset": "register", "pred": m["person_id"], "true": m["record_id"].map(truth)}
    )
    s = score(frame)
    assert s.pairwise.actual > 50
    assert s.pairwise.precision >= 0.95 and s.pairwise.recall >= 0.95, s.pairwise


def test_linkage_compares_generic_columns() -> None:
    a = parse_agreement(_AGREEMENT)
    present = {c.name for c in ts.columns_for_dataset(a.datasets[0])}
    plan = plan_model(present)
    names = {c.get_comparison("duckdb").output_column_name for c in plan.comparisons}
    assert {"id_soc_sec_id", "id_pp", "text_address_1", "text_suburb"} <= names
    rules = {r.get_blocking_rule("duckdb").blocking_rule_sql for r in plan.blocking_rules}
    assert any("id_soc_sec_id" in r for r in rules)
    assert any("tx_address_1_dob" in r for r in rules)


def test_load_agreement_reads_the_yaml(run) -> None:
    d, _, _ = run
    ds = load_agreement(d / "agreement.yaml").datasets[0]
    assert [f.token_name for f in ds.identifiers if f.type.value == "identifier"] == [
        "soc_sec_id",
        "pp",
    ]


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (lambda cols: cols.update(id_other={**cols["id_pp"], "name": "id_other"}), "tokens only"),
        (lambda cols: cols["id_pp"].update(domain="v3:nino"), "token schema"),
        (lambda cols: cols["tx_suburb_bf_dob3"].update(parts=[["text:other", "bigrams"]]),
         "token schema"),
    ],
)  # fmt: skip
def test_verify_checks_generic_columns_against_the_agreement(run, tmp_path: Path, edit, rule):
    import json

    from wmw_link.errors import VerificationError
    from wmw_link.linkage.verify import verify_inputs

    d, _, _ = run
    a = load_agreement(d / "agreement.yaml")
    assert {"id_pp", "tx_suburb_bf_dob3"} <= set(verify_inputs(a, d / "inbox")[0].token_columns)
    for f in (d / "inbox").iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    m = json.loads((tmp_path / "register.manifest.json").read_text())
    edit(m["token_schema"]["columns"])
    (tmp_path / "register.manifest.json").write_text(json.dumps(m))
    with pytest.raises(VerificationError, match=f"rule '{rule}'"):
        verify_inputs(a, tmp_path)


# -- u of generic ids and texts ----------------------------------------------------------------


def _backend(tmp_path: Path):
    from wmw_link.linkage.backends import open_backend

    return open_backend("duckdb", tmp_path / "db")


def test_generic_id_u_counts_pairs_sharing_the_id_and_nothing_else(tmp_path: Path) -> None:
    from wmw_link.linkage.id_u import generic_id_u

    be = _backend(tmp_path)
    try:
        rows = [  # (unique_id, id_x, fn_dob): ids 1 and 2 shared; only id 2's pair shares no name
            (0, 1, 10), (1, 1, 10), (2, 2, 20), (3, 2, 21), (4, 3, 30), (5, None, 40),
        ]  # fmt: skip
        be.con.execute("CREATE TABLE t (unique_id BIGINT, id_x BIGINT, fn_dob BIGINT)")
        be.con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        n = 5  # records holding the id
        assert generic_id_u(be, ["t"], "id_x", ["id_x", "fn_dob"]) == pytest.approx(
            1 / (n * (n - 1) / 2)
        )
        # Without another token every shared id counts: an upper bound.
        assert generic_id_u(be, ["t"], "id_x", []) == pytest.approx(2 / 10)
    finally:
        be.close()


def _text_u_of(rows: list[dict], tmp_path: Path) -> dict:
    """Text levels' u counted from the tokens of ``rows`` (one register, tokenised for real)."""
    from wmw_link.keys import new_key
    from wmw_link.linkage.text_u import text_u
    from wmw_link.tokenise import tokenise

    a = parse_agreement(_AGREEMENT)
    key, ref = new_key(tmp_path / "k"), new_key(tmp_path / "r")
    res = tokenise(a, "register", pa.Table.from_pylist(rows), key, ref, tmp_path / "out", workers=1)
    present = set(pq.read_schema(res.tokens).names) - {"row_ref"}
    be = _backend(tmp_path)
    try:
        kinds = {c.name: c.kind for c in ts.columns_for_dataset(a.datasets[0])}
        table = be.load_tokens("register", res.tokens, kinds, present)
        u = text_u(be, [table.physical_name], present)
    finally:
        be.close()
    return u


def test_text_u_is_counted_on_same_date_pairs_of_two_people(tmp_path: Path) -> None:
    rng = random.Random(5)
    rows = [
        {
            "rec_id": f"R{i}",
            "given_name": rng.choice(_FORENAMES),
            "surname": rng.choice(_SURNAMES),
            # Three dates for 300 people: many same-date pairs of different people.
            "dob": dt.date(1980, 1, 1) + dt.timedelta(days=i % 3),
            "Soc Sec ID": str(1_000_000 + i),
            "passport": None,
            "address_1": f"{rng.randrange(1, 400)} {rng.choice(_STREETS)}",
            "suburb": rng.choice(_SUBURBS),
            "postcode": "2000",
        }
        for i in range(300)
    ]
    u = _text_u_of(rows, tmp_path)
    # Six suburbs: about one same-date pair of two people in six has the same suburb.
    assert 0.08 < u["text_suburb"]["same text and date"] < 0.3
    # Street addresses almost never agree between two people.
    assert u["text_address_1"]["same text and date"] < 0.02


def test_text_u_takes_off_one_persons_records_whose_ids_differ(tmp_path: Path) -> None:
    """In a small register most same-date pairs are one person: those whose ids differ (a
    typo) would make an agreeing address look common among two people."""
    rows = []
    for i in range(150):  # three records each, one date per person, one address each
        dob = dt.date(1950, 1, 1) + dt.timedelta(days=7 * i)
        for k in range(3):
            # Every third person has a record whose id was mistyped (onto a new value).
            sid = 5_000_000 + i if not (i % 3 == 0 and k == 2) else 7_000_000 + i
            rows.append({"rec_id": f"P{i}-{k}", "given_name": _FORENAMES[i % 10],
                         "surname": _SURNAMES[i % 8], "dob": dob, "Soc Sec ID": str(sid),
                         "passport": None, "address_1": f"{i + 1} {_STREETS[i % 5]}",
                         "suburb": _SUBURBS[i % 6], "postcode": "2000"})  # fmt: skip
        # Another person born the same day, living elsewhere.
        rows.append({"rec_id": f"Q{i}", "given_name": "zebedee", "surname": "quartermaine",
                     "dob": dob, "Soc Sec ID": str(9_000_000 + i), "passport": None,
                     "address_1": f"{i + 1} far away lane", "suburb": "outback",
                     "postcode": "9999"})  # fmt: skip
    u = _text_u_of(rows, tmp_path)
    # Of the same-date pairs with different ids, 100 are one person (same address) and 450
    # two people (never the same address): counted as they come, u would be 100 / 550.
    assert u["text_address_1"]["same text and date"] < 0.01
    assert u["text_suburb"]["same text and date"] < 0.01


def test_postcode_of_any_country_is_not_compared_when_dates_differ() -> None:
    def null_sql(present: set[str]) -> str:
        comps = {c.get_comparison("duckdb").output_column_name: c.get_comparison("duckdb")
                 for c in plan_model(present).comparisons}  # fmt: skip
        return comps["postcode"].comparison_levels[0].sql_condition

    a = parse_agreement(_AGREEMENT)
    any_country = {c.name for c in ts.columns_for_dataset(a.datasets[0])}
    assert "bit_count" in null_sql(any_country)  # dates differ: the filters tell
    uk = ts.columns_for_identifiers(["forename", "surname", "date_of_birth", "postcode"])
    assert "bit_count" not in null_sql({c.name for c in uk})  # UK postcodes unchanged


def test_token_named_columns_are_refused_as_payload_and_by_the_analysts(tmp_path: Path) -> None:
    from wmw_link.errors import AgreementError, PolicyError
    from wmw_link.journeys.inputs import _refuse_tokens

    data = {**_AGREEMENT, "datasets": [{**_AGREEMENT["datasets"][0], "payload": [
        {"column": "x", "name": "id_verified", "type": "string"}]}]}  # fmt: skip
    with pytest.raises(AgreementError, match="payload names id_verified are token column names"):
        parse_agreement(data)
    for column in ("id_soc_sec_id", "tx_suburb_dob", "tx_suburb_bf_dob5", "fn_dob"):
        with pytest.raises(PolicyError, match="rule 'separation'"):
            _refuse_tokens("register", "payload", ["row_ref", column])
    _refuse_tokens("register", "payload", ["row_ref", "start_date", "identity"])
