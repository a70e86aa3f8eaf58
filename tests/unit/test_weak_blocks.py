"""Weak prediction rules (a date variant or part with one name or the phonetic names, one name
code and the date) do not pair records whose NINos or NHS numbers are both present and differ;
the strong rules do (linkage/settings.py, WEAK_BLOCKS)."""

from __future__ import annotations

import duckdb
import pytest

from wmw_link import token_schema as ts
from wmw_link.linkage.settings import WEAK_BLOCKS, plan_model, predict_blocks

# id, the weak and the strong rule's token (shared by all), NINo, NHS number.
_ROWS = [
    (1, 7, 9, 100, None),
    (2, 7, 9, 200, None),  # NINo differs from 1's: kept apart by the weak rule
    (3, 7, 9, None, None),  # no NINo: meets everyone
    (4, 7, 9, None, 5),
    (5, 7, 9, None, 6),  # NHS number differs from 4's
    (6, 7, 9, 100, 5),  # 1's NINo: the same person as far as the ids say
]
_ALL = {(a, b) for a in range(1, 7) for b in range(a + 1, 7)}


def _rules(present: set[str]) -> dict[str, str]:
    plan = plan_model(present)
    sqls = [r.get_blocking_rule("duckdb").blocking_rule_sql for r in plan.blocking_rules]
    return dict(zip(predict_blocks(present), sqls, strict=False))


def _pairs(rule_sql: str, weak: str, strong: str) -> set[tuple[int, int]]:
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE t (id INT, {weak} BIGINT[], {strong} BIGINT, nino BIGINT, nhs BIGINT)"
    )
    for i, w, s, nino, nhs in _ROWS:
        con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [i, [w, i + 50], s, nino, nhs])
    side = f"(SELECT * REPLACE (UNNEST({weak}) AS {weak}) FROM t)"
    sql = f"SELECT DISTINCT l.id, r.id FROM {side} l JOIN {side} r ON {rule_sql} WHERE l.id < r.id"
    return set(con.execute(sql).fetchall())


def test_weak_rules_keep_records_with_different_ids_apart() -> None:
    present = set(ts.BY_NAME)
    rules = _rules(present)
    assert "namesdm_dob" in WEAK_BLOCKS and "names_dob" not in WEAK_BLOCKS
    # One whole name and the date: chance pairs of people born on one day (3M: 6.1M of them).
    assert {"fn1_dob", "sn_dob"} <= WEAK_BLOCKS
    # The phonetic names, the year and the district (a 1 January placeholder): people of one
    # name born in one year meet there, more than on a whole date.
    assert "dobypd_nph" in WEAK_BLOCKS and "dobypd_nph" in rules
    got = _pairs(rules["namesdm_dob"], "namesdm_dob", "names_dob")
    assert got == _ALL - {(1, 2), (2, 6), (4, 5), (5, 6)}
    # A strong rule pairs them all: a NINo typo is met there.
    assert _pairs(rules["names_dob"], "namesdm_dob", "names_dob") == _ALL
    for col in WEAK_BLOCKS:
        assert "nino" in rules[col] and "nhs" in rules[col], col
    for col in set(rules) - WEAK_BLOCKS:
        assert "nino" not in rules[col] or col == "nino", col


@pytest.mark.parametrize("ids", [set(), {"nhs"}])
def test_without_the_ids_a_weak_rule_is_the_plain_equality(ids: set[str]) -> None:
    present = (set(ts.BY_NAME) - {"nino", "nhs"}) | ids
    rule = _rules(present)["dobb0_sn"]
    assert "nino" not in rule
    assert ("nhs" in rule) == bool(ids)
    if not ids:
        assert rule == 'l."dobb0_sn" = r."dobb0_sn"'
