"""The plaintext Splink baseline is given the token model's blocking: one rule per token
blocking rule, on the plaintext that token hashes."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import linkage_baselines as lb  # noqa: E402
from wmw_link import token_schema as ts  # noqa: E402
from wmw_link.linkage.settings import WEAK_BLOCKS, plan_model, predict_blocks  # noqa: E402
from wmw_link.tokenise.composites import SEP  # noqa: E402


def test_plaintext_rules_are_the_token_rules_in_order() -> None:
    token_rules = predict_blocks(set(ts.BY_NAME))
    assert lb.token_block_rules() == [f"blk_{c}" for c in token_rules]
    plan = lb._plain_plan({})
    sqls = [r.get_blocking_rule("duckdb").blocking_rule_sql for r in plan.blocking_rules]
    assert len(sqls) == len(plan_model(set(ts.BY_NAME)).blocking_rules) == len(token_rules)
    for col, sql in zip(token_rules, sqls, strict=True):
        assert f'l."blk_{col}" = r."blk_{col}"' in sql
        # A weak rule keeps different NINos and NHS numbers apart, as the token rule does.
        assert ('coalesce(l."nino" <> r."nino", false)' in sql) == (col in WEAK_BLOCKS), col
    own = lb._plain_plan({}, "own").blocking_rules
    assert len(own) == 8
    with pytest.raises(ValueError, match="blocking"):
        lb._plain_plan({}, "other")


def test_block_columns_hold_what_the_tokens_hash() -> None:
    cols = {
        "forename": pa.array(["anna maria", None]),
        "surname": pa.array(["de souza", "smith"]),
        "dob": pa.array(["1980-01-02", "1975-12-31"]),
        "pc_unit": pa.array(["B15 2TT", "B1 1AA"]),
        "nino": pa.array(["AB123456", None]),
    }
    out = lb._block_composites(cols, 2)
    assert set(out) == {f"blk_{c}" for c in lb.TOKEN_BLOCKS}
    assert out["blk_fn1_dob"].to_pylist() == [f"anna{SEP}1980-01-02", None]
    assert out["blk_sn_dob"].to_pylist()[1] == f"smith{SEP}1975-12-31"
    assert out["blk_nino"].to_pylist() == ["AB123456", None]
    assert out["blk_nhs"].null_count == 2  # no NHS number in this extract
    # The list column: one code per name word with the date; null when a name is missing.
    codes = out["blk_namesdm_dob"].to_pylist()
    assert codes[1] is None and len(codes[0]) >= 3
    assert all(c.endswith(f"{SEP}1980-01-02") for c in codes[0])


def test_the_plaintext_baseline_nulls_placeholder_ninos(tmp_path) -> None:
    """As the token link does before blocking: a NINo on many strangers' records is nulled
    (with its blocking column); one person's shared NINo is kept."""
    from wmw_link.linkage.backends import open_backend

    n = 14
    rows = {
        "unique_id": [str(i) for i in range(n + 2)],
        # 14 strangers share a placeholder; records 14 and 15 are one person.
        "nino": ["AB123456"] * n + ["JK654321"] * 2,
        "blk_nino": ["AB123456"] * n + ["JK654321"] * 2,
        "nhs": [None] * (n + 2),
        "blk_fn1_dob": [f"name{i}|1980-01-{i % 28 + 1:02d}" for i in range(n)] + ["ann|1990"] * 2,
        "blk_sn_dob": [f"sur{i}|1980-01-{i % 28 + 1:02d}" for i in range(n)] + ["lee|1990"] * 2,
    }
    be = open_backend("duckdb", tmp_path)
    try:
        lb.register_plain_tables(be, {"a": pa.table(rows)})
        assert lb.null_placeholders(be, ["plain_a"]) == {"nino": 1, "nhs": 0}
        got = be.con.execute("SELECT nino, blk_nino, COUNT(*) FROM plain_a GROUP BY ALL").fetchall()
        assert sorted(got, key=str) == sorted([(None, None, n), ("JK654321", "JK654321", 2)], key=str)
    finally:
        be.close()
