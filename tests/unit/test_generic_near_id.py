"""A generic id with a typo: the near-id tokens (``idpc_<name>``: the id and its one-character
deletions, each with the postcode), its comparison level, blocking, u and household rule; and
the postcode's "dates differ" test when one record has no forename."""

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
    dates_differ_sql,
    plan_model,
    settings_creator,
)
from wmw_link.tokenise.composites import composite_inputs, id_deletions


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
    plan = plan_model(_present(), {"id_soc_sec_id": 1e-6, "idpc_soc_sec_id": 1e-7})
    s = settings_creator(plan, 1).get_settings("duckdb").as_dict()
    comp = {c["output_column_name"]: c for c in s["comparisons"]}["id_soc_sec_id"]
    labels = [lvl.get("label_for_charts") for lvl in comp["comparison_levels"]]
    assert labels[1] == "exact" and labels[2] == ID_NEAR_LEVEL
    near = comp["comparison_levels"][2]
    assert "list_has_any(idpc_soc_sec_id_l, idpc_soc_sec_id_r)" in near["sql_condition"]
    assert near["u_probability"] == 1e-7 and near["fix_u_probability"]
    assert comp["comparison_levels"][-1]["u_probability"] == pytest.approx(1 - 1e-6 - 1e-7)
    rules = [r["blocking_rule"] for r in s["blocking_rules_to_generate_predictions"]]
    assert any("idpc_soc_sec_id" in r for r in rules)
    # Without the near-id column the comparison is exact only.
    plan = plan_model(_present() - {"idpc_soc_sec_id", "idpc_pp"})
    s = settings_creator(plan, 1).get_settings("duckdb").as_dict()
    comp = {c["output_column_name"]: c for c in s["comparisons"]}["id_soc_sec_id"]
    assert ID_NEAR_LEVEL not in [lvl.get("label_for_charts") for lvl in comp["comparison_levels"]]


def test_household_rule_takes_a_near_id_only_beside_an_identity_level() -> None:
    from wmw_link.linkage.household import evidence_condition

    class _Linker:
        def __init__(self, plan):
            self._settings_obj = settings_creator(plan, 1).get_settings("duckdb")

    sql = evidence_condition(_Linker(plan_model(_present())))
    assert "gamma_id_soc_sec_id >= 2" in sql  # exact: always
    assert "(gamma_id_soc_sec_id = 1 AND gamma_identity > 0)" in sql  # near: not alone


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
