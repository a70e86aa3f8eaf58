"""Person-unique ids (NINo, NHS number, generic ids): placeholders and the u of agreement."""

from __future__ import annotations

from pathlib import Path

import pytest

from wmw_link.linkage.backends import open_backend
from wmw_link.linkage.id_u import PLACEHOLDER_MIN_RECORDS, placeholder_values
from wmw_link.linkage.run import near_unique_u


@pytest.fixture
def be(tmp_path: Path):
    b = open_backend("duckdb", tmp_path / "db")
    yield b
    b.close()


def _table(be, name: str, rows: list[tuple]) -> None:
    be.con.execute(f"CREATE TABLE {name} (unique_id BIGINT, nino BIGINT, fn_dob BIGINT)")
    be.con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?)", rows)


def test_a_value_many_people_share_is_a_placeholder(be) -> None:
    rows = [
        # 7: twelve records of twelve people (every fn_dob differs), in two tables
        *[(i, 7, 100 + i) for i in range(12)],
        # 8: one person's twelve records, ten sharing a name and date, two sharing nothing
        *[(20 + i, 8, 50 if i < 10 else 51 + i) for i in range(12)],
        # 9: nine records sharing nothing: too few to tell a placeholder from one person
        *[(40 + i, 9, 200 + i) for i in range(9)],
        # 6: twelve records without a date of birth (no composite): missing, not different
        *[(60 + i, 6, None) for i in range(12)],
        (80, None, 1),
    ]
    _table(be, "a", rows[:6] + rows[12:])
    _table(be, "b", rows[6:12])
    assert PLACEHOLDER_MIN_RECORDS == 10
    assert placeholder_values(be, ["a", "b"], "nino", ["nino", "fn_dob"]) == [7]
    be.null_tokens("a", "nino", [7])
    be.null_tokens("b", "nino", [7])
    left = be.rows("SELECT nino, COUNT(*) FROM (SELECT nino FROM a UNION ALL SELECT nino FROM b) "
                   "GROUP BY 1 ORDER BY 1 NULLS LAST")  # fmt: skip
    assert left == [(6, 12), (8, 12), (9, 9), (None, 13)]


def test_an_agreeing_nino_outweighs_a_prior_of_one_pair_in_many(be) -> None:
    # u is half a pair's worth among the records holding a NINo, not 1 / distinct values:
    # with 1 / distinct an agreeing NINo only cancels the prior against a pair, and one
    # person's records sharing nothing else stay unlinked.
    n = 1000
    _table(be, "t", [(i, i // 2, i) for i in range(n)] + [(n, None, 0)])
    u = near_unique_u(be, ["t"], "nino")
    assert u == pytest.approx(0.5 / (n * (n - 1) / 2))
    assert u < (1 / (n // 2)) / 1000
    assert near_unique_u(be, ["t"], "fn_dob") is not None
    be.con.execute("CREATE TABLE e (unique_id BIGINT, nino BIGINT)")
    assert near_unique_u(be, ["e"], "nino") is None
