"""A generic id with a typo: the near-id tokens (``idpc_<name>``: the id and its one-character
deletions, each with the postcode; ``idnm_<name>``: each with both names), their comparison
levels, blocking, u and household rule; and the postcode's "dates differ" test when one record
has no forename."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_generic_fields import _AGREEMENT, _register

from wmw_link import token_schema as ts
from wmw_link.agreement import parse_agreement
from wmw_link.linkage.settings import (
    ID_NEAR_LEVEL,
    ID_NEAR_NAMES_LEVEL,
    dates_differ_sql,
    plan_model,
    settings_creator,
)
from wmw_link.tokenise.composites import composite_inputs, id_deletions

ID = "id_soc_sec_id"


def _near(ids: list[str | None], postcodes: list[str | None]) -> list[set[str] | None]:
    col = ts.identifier_near_columns("x")[0]
    fields = {ts.identifier_source("x"): pa.array(ids, pa.string()),
              ts.POSTCODE: pa.array(postcodes, pa.string())}  # fmt: skip
    out = composite_inputs(fields, [col])[col.name].to_pylist()
    return [None if v is None else set(v) for v in out]


def test_ids_one_edit_apart_at_one_postcode_share_a_near_token() -> None:
    base, sub, swap, drop, other = "8520720", "8529720", "8502720", "852720", "4383145"
    a, b, c, d, e, f = _near([base, sub, swap, drop, other, base], ["2000"] * 5 + ["3000"])
    assert a & b and a & c and a & d  # substitution, adjacent transposition, deletion
    assert not a & e  # another person's id
    assert not a & f  # the same id at another postcode: the context differs
    assert _near([None, base], ["2000", None]) == [None, None]  # null stays null


def test_short_ids_give_only_themselves() -> None:
    assert id_deletions("AB12") == ["AB12"]
    assert len(id_deletions("1234567")) == 8
    assert id_deletions("11111") == ["11111", "1111"]  # distinct deletions only


def test_near_id_column_is_made_with_a_postcode_only() -> None:
    a = parse_agreement(_AGREEMENT)
    cols = {c.name: c for c in ts.columns_for_dataset(a.datasets[0])}
    assert cols["idpc_soc_sec_id"].kind == "hmac_list"
    assert cols["idpc_soc_sec_id"].domain.endswith("v3:idpc_soc_sec_id")
    assert ts.is_token_column("idpc_soc_sec_id")
    # Its own subkey: no two columns share a domain.
    domains = [c.domain for c in cols.values() if c.kind != "bloom_word"]
    assert len(domains) == len(set(domains))
    without = [f for f in a.datasets[0].identifiers if f.type.value != "postcode"]
    names = {c.name for c in ts.columns_for_fields(ts.field_refs(without))}
    assert "id_soc_sec_id" in names and "idpc_soc_sec_id" not in names


def _present() -> set[str]:
    return {c.name for c in ts.columns_for_dataset(parse_agreement(_AGREEMENT).datasets[0])}


def test_id_comparison_has_a_near_level_and_the_near_id_is_blocked_on() -> None:
    u = {"id_soc_sec_id": 1e-6, "idpc_soc_sec_id": 1e-7, "idnm_soc_sec_id": 1e-9}
    plan = plan_model(_present(), u)
    s = settings_creator(plan, 1).get_settings("duckdb").as_dict()
    comp = {c["output_column_name"]: c for c in s["comparisons"]}["id_soc_sec_id"]
    labels = [lvl.get("label_for_charts") for lvl in comp["comparison_levels"]]
    assert labels[1:4] == ["exact", ID_NEAR_LEVEL, ID_NEAR_NAMES_LEVEL]
    near, named = comp["comparison_levels"][2], comp["comparison_levels"][3]
    assert "list_has_any(idpc_soc_sec_id_l, idpc_soc_sec_id_r)" in near["sql_condition"]
    assert "list_has_any(idnm_soc_sec_id_l, idnm_soc_sec_id_r)" in named["sql_condition"]
    assert near["u_probability"] == 1e-7 and near["fix_u_probability"]
    assert named["u_probability"] == 1e-9 and named["fix_u_probability"]
    assert comp["comparison_levels"][-1]["u_probability"] == pytest.approx(1 - 1e-6 - 1e-7 - 1e-9)
    rules = [r["blocking_rule"] for r in s["blocking_rules_to_generate_predictions"]]
    assert any("idpc_soc_sec_id" in r for r in rules)
    assert any("idnm_soc_sec_id" in r for r in rules)
    # Without the near-id columns the comparison is exact only.
    plan = plan_model(_present() - {"idpc_soc_sec_id", "idpc_pp", "idnm_soc_sec_id", "idnm_pp"})
    s = settings_creator(plan, 1).get_settings("duckdb").as_dict()
    comp = {c["output_column_name"]: c for c in s["comparisons"]}["id_soc_sec_id"]
    assert ID_NEAR_LEVEL not in [lvl.get("label_for_charts") for lvl in comp["comparison_levels"]]


def test_household_rule_takes_a_near_id_only_beside_an_identity_level() -> None:
    from wmw_link.linkage.household import evidence_condition

    class _Linker:
        def __init__(self, plan):
            self._settings_obj = settings_creator(plan, 1).get_settings("duckdb")

    lk = _Linker(plan_model(_present()))
    sql = evidence_condition(lk)
    comp = next(c for c in lk._settings_obj.comparisons if c.output_column_name == ID)
    g = {lvl.label_for_charts: lvl.comparison_vector_value for lvl in comp.comparison_levels}

    def passes(id_level: int, identity: int) -> bool:
        row = (f"SELECT {id_level} AS gamma_{ID}, {identity} AS gamma_identity, "
               "-1 AS gamma_postcode, -1 AS gamma_id_pp")  # fmt: skip
        return bool(duckdb.connect().execute(f"SELECT ({sql}) FROM ({row})").fetchall()[0][0])

    assert passes(g["exact"], -1)  # the id: always
    assert passes(g[ID_NEAR_NAMES_LEVEL], -1)  # within one character with both names: alone
    assert not passes(g[ID_NEAR_LEVEL], -1)  # within one character at the address: not alone
    assert passes(g[ID_NEAR_LEVEL], 1)
    assert not passes(0, -1)  # ids that differ


def _named(rows: list[tuple[str | None, str | None, str | None]]) -> list[set[str] | None]:
    col = ts.identifier_name_columns("x")[0]
    ids, fore, sur = (list(c) for c in zip(*rows, strict=True))
    fields = {ts.identifier_source("x"): pa.array(ids, pa.string()),
              ts.FORENAME: pa.array(fore, pa.string()),
              ts.SURNAME: pa.array(sur, pa.string())}  # fmt: skip
    out = composite_inputs(fields, [col])[col.name].to_pylist()
    return [None if v is None else set(v) for v in out]


def test_ids_one_edit_apart_with_both_names_share_a_near_names_token() -> None:
    # FEBRL 3's rec-1726: no date of birth, postcode digits swapped, the id mistyped.
    a, b, c, d, e, f = _named(
        [
            ("3790888", "thomas", "alagich"),
            ("3790868", "thomas", "alagich"),  # a typo in the id
            ("3790868", "thomas", "smith"),  # another surname
            ("3790868", "tom", "alagich"),  # another forename
            ("4383145", "thomas", "alagich"),  # another id
            ("3790888", None, "alagich"),  # no forename: no token
        ]
    )
    assert a is not None and b is not None and a & b
    assert not a & c and not a & d and not a & e
    assert f is None
    cols = {c.name for c in ts.columns_for_fields(ts.field_refs(
        parse_agreement(_AGREEMENT).datasets[0].identifiers))}  # fmt: skip
    assert "idnm_soc_sec_id" in cols and ts.is_token_column("idnm_soc_sec_id")


def test_near_id_u_counts_pairs_of_close_ids_and_nothing_else(tmp_path: Path) -> None:
    from wmw_link.linkage.backends import open_backend
    from wmw_link.linkage.id_u import generic_id_near_u

    be = open_backend("duckdb", tmp_path / "db")
    try:
        be.con.execute(
            "CREATE TABLE t (unique_id BIGINT, id_x BIGINT, idpc_x BIGINT[], fn_dob BIGINT)"
        )
        rows = [  # 0-1 close ids, nothing else; 2-3 close ids, same name; 4-5 same id
            (0, 1, [1, 11, 12], 10), (1, 2, [2, 12, 13], 20), (2, 3, [3, 31], 30),
            (3, 4, [4, 31], 30), (4, 5, [5, 51], 50), (5, 5, [5, 51], 60), (6, None, None, 70),
        ]  # fmt: skip
        be.con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
        n = 6
        u = generic_id_near_u(be, ["t"], "id_x", "idpc_x", ["id_x", "fn_dob"])
        assert u == pytest.approx(1 / (n * (n - 1) / 2))
    finally:
        be.close()


def test_dates_differ_reads_the_surname_filter_when_a_forename_is_missing() -> None:
    """A record without a forename has no forename filter; its surname's filter still tells
    that the dates differ (else its postcode would count as 'differs' for a date typo)."""
    words = [*ts.bloom_columns("forename"), *ts.bloom_columns("surname")]
    sql = dates_differ_sql({*words, "pc_dob", "name_pc"})
    # Surname filters: all bits set on one side, none on the other: 0 shared (dates differ).
    con = duckdb.connect()
    cols = ", ".join(f"{w}_{s} BIGINT" for w in words for s in "lr")
    con.execute(f"CREATE TABLE p ({cols})")
    # Forename missing on one side; surname filters share half their bits (different dates).
    vals = []
    for w in words:
        fore = w.startswith("fn")
        vals += [None if fore else -1, None if fore else 0]
    vals_sql = ", ".join("NULL" if v is None else str(v) for v in vals)
    con.execute(f"INSERT INTO p VALUES ({vals_sql})")
    assert con.execute(f"SELECT {sql} FROM p").fetchone()[0] is True


def _record(rid: str, fn: str, sn: str, dob: dt.date, ssn: str, addr: str, pc: str) -> dict:
    return {"rec_id": rid, "given_name": fn, "surname": sn, "dob": dob, "Soc Sec ID": ssn,
            "passport": f"PA{ssn}", "address_1": addr, "suburb": "glebe", "postcode": pc}  # fmt: skip


def test_a_typo_in_the_id_links_a_twin_like_pair_and_twins_stay_apart(tmp_path: Path) -> None:
    """Same surname, date and address, forenames unrelated: twins when their ids are unrelated,
    one person (a forename replaced) when the ids are one typo apart."""
    from wmw_link.keys import new_key
    from wmw_link.linkage import link
    from wmw_link.tokenise import tokenise

    table, _ = _register(150, seed=3)  # background people for the model to train on
    rows = table.to_pylist()
    day = dt.date(1984, 3, 9)
    rows += [
        _record("T1", "madeline", "lowe", day, "8520720", "272 fergusson crescent", "2066"),
        _record("T2", "beau", "lowe", day, "8529720", "272 fergusson crescent", "2066"),
        _record("W1", "hasan", "khan", day, "5103771", "9 ocean parade", "2077"),
        _record("W2", "omar", "khan", day, "6248190", "9 ocean parade", "2077"),
    ]
    a = parse_agreement(_AGREEMENT)
    key, ref = new_key(tmp_path / "k"), new_key(tmp_path / "r")
    res = tokenise(a, "register", pa.Table.from_pylist(rows), key, ref, tmp_path / "ctl", workers=1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for f in (res.tokens, res.manifest):
        (inbox / Path(f).name).write_bytes(Path(f).read_bytes())
    link(a, inbox, tmp_path / "linked", report=False)
    m = pd.read_parquet(tmp_path / "linked" / "register.map.parquet").merge(
        pq.read_table(res.crosswalk).to_pandas(), on="row_ref"
    )
    person = dict(zip(m["record_id"], m["person_id"], strict=True))
    assert person["T1"] == person["T2"]
    assert person["W1"] != person["W2"]


def test_near_names_level_takes_half_a_pair_as_u(tmp_path: Path) -> None:
    """u of "within one character, same names" is fixed at half a pair, like the NINo's exact
    level, not counted: the count is made of the one-person typos the level exists for."""
    from wmw_link.linkage.backends import open_backend
    from wmw_link.linkage.run import prepare_plan

    be = open_backend("duckdb", tmp_path / "db")
    try:
        be.con.execute(
            "CREATE TABLE t (unique_id BIGINT, id_x BIGINT, idnm_x BIGINT[], fn_dob BIGINT)"
        )
        # 0-1: close ids with the names; 3-4: the same id and nothing else (what the exact
        # level's u counts: 1 pair, not half of one).
        rows = [(0, 1, [1, 11], 10), (1, 2, [2, 11], 20), (2, 3, [3, 31], 30),
                (3, 4, [4, 41], 40), (4, 4, [4, 41], 50), (5, None, None, 60)]  # fmt: skip
        be.con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
        kinds = {"id_x": "hmac", "idnm_x": "hmac_list", "fn_dob": "hmac"}
        plan = prepare_plan(be, ["t"], kinds, 1, False)
    finally:
        be.close()
    s = settings_creator(plan, 1).get_settings("duckdb").as_dict()
    comp = {c["output_column_name"]: c for c in s["comparisons"]}["id_x"]
    named = next(lv for lv in comp["comparison_levels"]
                 if lv.get("label_for_charts") == ID_NEAR_NAMES_LEVEL)  # fmt: skip
    exact = next(lv for lv in comp["comparison_levels"] if lv.get("label_for_charts") == "exact")
    n = 5  # records holding the id
    assert named["u_probability"] == pytest.approx(0.5 / (n * (n - 1) / 2))
    assert named["fix_u_probability"]
    assert exact["u_probability"] == pytest.approx(1 / (n * (n - 1) / 2))  # counted: 1 pair


def test_a_near_level_without_a_u_is_left_out() -> None:
    u = {"id_soc_sec_id": 1e-6, "idnm_soc_sec_id": 1e-9}  # no u for idpc (too few records)
    s = settings_creator(plan_model(_present(), u), 1).get_settings("duckdb").as_dict()
    comp = {c["output_column_name"]: c for c in s["comparisons"]}["id_soc_sec_id"]
    levels = {lv.get("label_for_charts"): lv for lv in comp["comparison_levels"]}
    assert ID_NEAR_LEVEL not in levels
    assert levels["exact"]["u_probability"] == 1e-6 and levels["exact"]["fix_u_probability"]
    assert levels[ID_NEAR_NAMES_LEVEL]["u_probability"] == 1e-9
