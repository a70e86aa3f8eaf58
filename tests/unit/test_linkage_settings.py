"""Splink settings generated from the token schema."""

from __future__ import annotations

import re

from wmw_link.linkage.settings import (
    TWINS_LEVEL,
    model_levels,
    plan_model,
    settings_creator,
    usable_levels,
)
from wmw_link.token_schema import BY_NAME, TOKEN_COLUMNS

ALL = {c.name for c in TOKEN_COLUMNS}


def _settings(plan, dialect: str = "duckdb") -> dict:
    return settings_creator(plan).get_settings(dialect).as_dict()


def _rule_columns(sql: str) -> set[str]:
    return set(re.findall(r'[lr]\."?([a-z_0-9]+)"?', sql))


def test_full_schema_gives_levels_strongest_first() -> None:
    s = _settings(plan_model(ALL, {"nino": 1e-6, "nhs": 1e-6}))
    comps = {c["output_column_name"]: c for c in s["comparisons"]}
    assert list(comps) == ["identity", "postcode", "nino", "nhs"]
    ident = [lvl.get("label_for_charts") for lvl in comps["identity"]["comparison_levels"]]
    assert ident[0] == "null" and ident[1] == "names and date"
    assert ident[-1] == "All other comparisons"
    assert ident.index("names and date") < ident.index("forename close, surname, date")
    assert ident.index(TWINS_LEVEL) < ident.index("names, date swapped or a day out")
    nino_exact = comps["nino"]["comparison_levels"][1]
    assert nino_exact["u_probability"] == 1e-6 and nino_exact["fix_u_probability"]
    # Composite tokens are near-unique: no term-frequency adjustment has anything to adjust.
    assert not [
        lvl for c in s["comparisons"] for lvl in c["comparison_levels"]
        if lvl.get("tf_adjustment_column")
    ]  # fmt: skip


def test_counted_level_u_is_fixed_with_the_else_level() -> None:
    present = ALL
    levels = {n: usable_levels(lv, present) for n, lv in model_levels().items()}
    u = {n: {label: 1e-7 * (i + 1) for i, (label, _) in enumerate(lv)} for n, lv in levels.items()}
    s = _settings(plan_model(present, level_u=u))
    ident = s["comparisons"][0]["comparison_levels"]
    assert all(lvl["fix_u_probability"] for lvl in ident[1:])
    assert ident[1]["u_probability"] == 1e-7
    assert abs(ident[-1]["u_probability"] - (1 - sum(u["identity"].values()))) < 1e-12


def test_blocks_are_composites_or_unique_identifiers() -> None:
    plan = plan_model(ALL)
    s = _settings(plan)
    for rule in s["blocking_rules_to_generate_predictions"]:
        cols = _rule_columns(rule["blocking_rule"])
        assert cols, rule
        for c in cols:
            assert c in ("nino", "nhs") or len(BY_NAME[c].sources) >= 2, rule


def test_household_rule_reads_the_identity_level() -> None:
    from wmw_link.linkage.household import evidence_condition

    class _Linker:
        def __init__(self, plan):
            self._settings_obj = settings_creator(plan).get_settings("duckdb")

    sql = evidence_condition(_Linker(plan_model(ALL, {"nino": 1e-6, "nhs": 1e-6})))
    assert "gamma_nino IN (1)" in sql and "gamma_identity IN (" in sql
    assert "AND NOT (gamma_identity IN (" in sql and "gamma_postcode IN (" in sql


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
    assert s["comparisons"][0]["comparison_levels"][1]["label_for_charts"] == "names and date"


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
    assert "bit_count(fnbf_dob0_l & fnbf_dob0_r)" in sql
    assert "arrays_overlap(fnnick_dob_l, fnnick_dob_r)" in sql
    duck = " ".join(
        lvl["sql_condition"]
        for c in _settings(plan_model(ALL))["comparisons"]
        for lvl in c["comparison_levels"]
    )
    assert "list_has_any(fnnick_dob_l, fnnick_dob_r)" in duck
    assert '"' not in sql  # a double-quoted name would be a string literal in Spark
