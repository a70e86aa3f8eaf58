"""Splink settings generated from the token schema."""

from __future__ import annotations

import re

from wmw_link.linkage.settings import plan_model, settings_creator
from wmw_link.token_schema import BY_NAME, TOKEN_COLUMNS

ALL = {c.name for c in TOKEN_COLUMNS}


def _settings(plan, dialect: str = "duckdb") -> dict:
    return settings_creator(plan).get_settings(dialect).as_dict()


def _rule_columns(sql: str) -> set[str]:
    return set(re.findall(r'[lr]\."?([a-z_0-9]+)"?', sql))


def test_full_schema_gives_levels_strongest_first() -> None:
    s = _settings(plan_model(ALL, {"nino": 1e-6, "nhs": 1e-6}))
    comps = {c["output_column_name"]: c for c in s["comparisons"]}
    assert list(comps) == ["forename", "surname", "dob", "postcode", "nino", "nhs", "sex"]
    fore = [lvl.get("label_for_charts") for lvl in comps["forename"]["comparison_levels"]]
    assert fore[1] == "exact name" and fore[-1] == "All other comparisons"
    assert fore.index("Dice >= 0.88") < fore.index("Dice >= 0.7")
    dob = [lvl.get("label_for_charts") for lvl in comps["dob"]["comparison_levels"]]
    assert dob[1:4] == ["exact date", "day and month swapped", "a day out"]
    nino_exact = comps["nino"]["comparison_levels"][1]
    assert nino_exact["u_probability"] == 1e-6 and nino_exact["fix_u_probability"]
    tf = [
        lvl
        for c in s["comparisons"]
        for lvl in c["comparison_levels"]
        if lvl.get("tf_adjustment_column")
    ]
    assert {lvl["tf_adjustment_column"] for lvl in tf} == {
        "forename_exact",
        "surname_exact",
        "pc_unit",
    }


def test_no_block_on_low_entropy_tokens_alone() -> None:
    plan = plan_model(ALL)
    s = _settings(plan)
    for rule in s["blocking_rules_to_generate_predictions"]:
        cols = _rule_columns(rule["blocking_rule"])
        assert cols, rule
        assert not all(BY_NAME[c].low_entropy for c in cols), rule


def test_dataset_without_nino_or_nhs() -> None:
    present = ALL - {"nino", "nhs"}
    plan = plan_model(present)
    s = _settings(plan)
    names = [c["output_column_name"] for c in s["comparisons"]]
    assert "nino" not in names and "nhs" not in names
    for rule in s["blocking_rules_to_generate_predictions"]:
        assert "nino" not in rule["blocking_rule"]
    assert plan.em_blocks  # still trainable without a NINo


def test_exact_only_contrast_has_no_fuzzy_levels() -> None:
    s = _settings(plan_model(ALL, exact_only=True))
    for c in s["comparisons"]:
        assert len(c["comparison_levels"]) == 3, c["output_column_name"]


def test_the_model_reads_every_token_column_the_schema_ships() -> None:
    """Data minimisation: no token column is made and shared that linkage does not compare."""
    s = _settings(plan_model(ALL))
    sql = " ".join(lvl["sql_condition"] for c in s["comparisons"] for lvl in c["comparison_levels"])
    sql += " " + " ".join(r["blocking_rule"] for r in s["blocking_rules_to_generate_predictions"])
    read = set(re.findall(r"\b([a-z_0-9]+)_[lr]\b", sql)) | _rule_columns(sql)
    assert ALL - read == set()


def test_spark_dialect_sql() -> None:
    s = _settings(plan_model(ALL), "spark")
    sql = " ".join(lvl["sql_condition"] for c in s["comparisons"] for lvl in c["comparison_levels"])
    assert "BIT_COUNT(forename_bf0_l & forename_bf0_r)" in sql
    assert "arrays_overlap(forename_nick_l, forename_nick_r)" in sql
    assert '"' not in sql  # a double-quoted name would be a string literal in Spark
