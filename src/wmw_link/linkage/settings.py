"""Splink settings generated from the token schema the manifests carry.

Nothing here is written per dataset: the comparisons, their levels, the blocking rules and the
training blocks are derived from which token columns are present (the union over all inputs;
a dataset without an identifier has those columns as nulls). Levels run from the strongest to
the weakest evidence. Low-entropy tokens (initials, years, districts, sex) appear only as lower
comparison levels or as parts of multi-column blocks, never as a block on their own.

All SQL is written in the DuckDB dialect; Splink translates it for Spark with sqlglot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wmw_link.linkage.dice import dice_at_least_sql
from wmw_link.token_schema import bloom_columns

#: Dice thresholds on the name Bloom filters (strong and weak fuzzy agreement).
DICE_HIGH = 0.88
DICE_LOW = 0.70

#: Comparisons that carry identity evidence beyond a shared surname and address: a pair with
#: none of them at a non-"else" level cannot be clustered together (household rule).
IDENTITY_EVIDENCE = ("forename", "dob", "nino", "nhs")
#: Levels too weak to count as identity evidence on their own (low-entropy agreements).
WEAK_LEVELS = frozenset({"same initial", "same year"})


@dataclass(frozen=True)
class ModelPlan:
    """Everything the run needs to build and train the Splink model."""

    comparisons: list[Any]
    blocking_rules: list[Any]
    em_blocks: list[Any]
    deterministic_rules: list[str]
    near_unique: dict[str, str] = field(default_factory=dict)  # comparison -> token column
    columns: list[str] = field(default_factory=list)


def _custom(sql: str, label: str) -> Any:
    """A custom level written in DuckDB SQL (Splink translates it for Spark)."""
    import splink.comparison_level_library as cll

    return cll.CustomLevel(sql, label, base_dialect_str="duckdb")


def _overlap(col: str, label: str) -> Any:
    """Level: the two token lists share at least one token."""
    from splink.internals.comparison_level_creator import ComparisonLevelCreator

    class ArraysOverlapLevel(ComparisonLevelCreator):
        # Splink's ArrayIntersectLevel builds the intersection list for every pair; testing
        # for overlap allocates nothing and was three times faster in DuckDB (list_has_any).
        # Spark's equivalent is arrays_overlap; sqlglot would write DuckDB's `&&` there.
        def create_sql(self, sql_dialect: Any) -> str:
            name = sql_dialect.sql_dialect_str
            if name == "spark":
                return f"arrays_overlap({col}_l, {col}_r)"
            if name == "duckdb":
                return f"list_has_any({col}_l, {col}_r)"
            import splink.comparison_level_library as cll

            return cll.ArrayIntersectLevel(col, 1).create_sql(sql_dialect)

        def create_label_for_charts(self) -> str:
            return label

    return ArraysOverlapLevel()


def _q(col: str, side: str) -> str:
    return f"{col}_{side}"


def _eq(a: str, b: str | None = None) -> str:
    b = b or a
    return f"{_q(a, 'l')} = {_q(b, 'r')}"


def _null(col: str) -> str:
    return f"{_q(col, 'l')} IS NULL OR {_q(col, 'r')} IS NULL"


def _name_comparison(part: str, other: str | None, present: set[str]) -> Any:
    """Levels for a forename or surname from its tokens, strongest first."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    exact = f"{part}_exact"
    levels: list[Any] = [
        _custom(_null(exact), "null").configure(is_null_level=True),
        cll.ExactMatchLevel(exact, term_frequency_adjustments=True).configure(
            label_for_charts="exact name"
        ),
    ]
    if other and f"{other}_exact" in present:
        # Forename and surname share one token domain, so swapped names still meet.
        levels.append(
            _custom(
                f"{_eq(exact, f'{other}_exact')} AND {_eq(f'{other}_exact', exact)}",
                "swapped with the other name part",
            )
        )
    if f"{part}_first" in present and part == "forename":
        levels.append(_custom(_eq(f"{part}_first"), "same first word"))
    if f"{part}_nick" in present:
        levels.append(_overlap(f"{part}_nick", "nickname"))
    words, pop = bloom_columns(part)
    has_bloom = all(w in present for w in words) and pop in present
    if has_bloom:
        levels.append(_custom(dice_at_least_sql(words, pop, DICE_HIGH), f"Dice >= {DICE_HIGH}"))
    if f"{part}_words" in present:
        levels.append(_overlap(f"{part}_words", "a word in common"))
    if f"{part}_dm" in present:
        levels.append(_overlap(f"{part}_dm", "Double Metaphone"))
    if has_bloom:
        levels.append(_custom(dice_at_least_sql(words, pop, DICE_LOW), f"Dice >= {DICE_LOW}"))
    if f"{part}_initial" in present:
        levels.append(_custom(_eq(f"{part}_initial"), "same initial"))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name=part,
        comparison_description=f"{part} tokens: exact, swapped, variants, Bloom Dice",
    )


def _dob_comparison(present: set[str]) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels: list[Any] = [
        _custom(_null("dob_exact"), "null").configure(is_null_level=True),
        cll.ExactMatchLevel("dob_exact").configure(label_for_charts="exact date"),
    ]
    if "dob_swap" in present:
        levels.append(
            _custom(
                f"{_eq('dob_swap', 'dob_exact')} OR {_eq('dob_exact', 'dob_swap')}",
                "day and month swapped",
            )
        )
    if "dob_prev" in present and "dob_next" in present:
        levels.append(
            _custom(
                f"{_eq('dob_prev', 'dob_exact')} OR {_eq('dob_next', 'dob_exact')}", "a day out"
            )
        )
    for col, label in (
        ("dob_ym", "same year and month"),
        ("dob_yd", "same year and day"),
        ("dob_md", "same month and day"),
        ("dob_year", "same year"),
    ):
        if col in present:
            levels.append(_custom(_eq(col), label))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name="dob",
        comparison_description="date of birth tokens: exact, swapped, a day out, parts",
    )


def _postcode_comparison(present: set[str]) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels: list[Any] = [
        _custom(_null("pc_unit"), "null").configure(is_null_level=True),
        cll.ExactMatchLevel("pc_unit", term_frequency_adjustments=True).configure(
            label_for_charts="same unit"
        ),
    ]
    for col, label in (("pc_sector", "same sector"), ("pc_district", "same district")):
        if col in present:
            levels.append(_custom(_eq(col), label))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name="postcode",
        comparison_description="postcode tokens: unit, sector, district",
    )


def _exact_comparison(col: str, name: str, u: float | None = None) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    exact = cll.ExactMatchLevel(col).configure(label_for_charts="exact")
    other = cll.ElseLevel()
    if u is not None:
        # Near-unique identifier: u from token frequencies, fixed (see run.near_unique_u).
        exact = exact.configure(u_probability=u, fix_u_probability=True)
        other = other.configure(u_probability=1.0 - u, fix_u_probability=True)
    return cl.CustomComparison(
        comparison_levels=[
            _custom(_null(col), "null").configure(is_null_level=True),
            exact,
            other,
        ],
        output_column_name=name,
        comparison_description=f"{name} token: exact",
    )


def present_columns(token_columns: Iterable[Mapping[str, Any]]) -> set[str]:
    """The union of token column names over all inputs."""
    out: set[str] = set()
    for cols in token_columns:
        out |= set(cols)
    return out


def _comparisons(
    present: set[str], near_unique_u: Mapping[str, float], exact_only: bool
) -> tuple[list[Any], dict[str, str]]:
    comparisons: list[Any] = []
    builders = (
        ("forename_exact", "forename", lambda: _name_comparison("forename", "surname", present)),
        ("surname_exact", "surname", lambda: _name_comparison("surname", "forename", present)),
        ("dob_exact", "dob", lambda: _dob_comparison(present)),
        ("pc_unit", "postcode", lambda: _postcode_comparison(present)),
    )
    for col, name, full in builders:
        if col in present:
            comparisons.append(_exact_comparison(col, name) if exact_only else full())
    near_unique: dict[str, str] = {}
    for col in ("nino", "nhs"):
        if col in present:
            comparisons.append(_exact_comparison(col, col, near_unique_u.get(col)))
            near_unique[col] = col
    if "sex" in present:
        comparisons.append(_exact_comparison("sex", "sex"))
    return comparisons, near_unique


#: Blocking rules for prediction, each used when all its columns are present. Every rule has a
#: high-entropy part, so no block is a low-entropy token on its own.
_PREDICT_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("nino",),
    ("nhs",),
    ("dob_exact", "surname_nysiis"),
    ("dob_exact", "forename_nysiis"),
    ("forename_nysiis", "surname_nysiis", "dob_year"),
    ("forename_initial", "surname_nysiis", "pc_unit"),
)
#: Rules across comparable columns: a day/month swap, and swapped forename and surname.
_CROSS_BLOCKS: tuple[tuple[set[str], str], ...] = (
    (
        {"dob_swap", "dob_exact", "surname_nysiis"},
        "l.dob_swap = r.dob_exact AND l.surname_nysiis = r.surname_nysiis",
    ),
    (
        {"forename_exact", "surname_exact"},
        "l.forename_exact = r.surname_exact AND l.surname_exact = r.forename_exact",
    ),
)
#: EM training blocks: pairs sharing a NINo, or a date of birth and forename and surname codes.
#: Neither is dominated by members of one household (they share surname and address, not
#: these), so EM does not learn "same household" as "same person". The second block includes
#: the surname code because, at a million people, pairs sharing only a date of birth and a
#: forename are mostly namesakes: EM then learned their surname disagreement as typical of
#: matches, and F1 at the default threshold fell from 0.997 to 0.990.
_EM_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("nino",),
    ("dob_exact", "forename_nysiis", "surname_nysiis"),
)


def plan_model(
    present: set[str],
    near_unique_u: Mapping[str, float] | None = None,
    exact_only: bool = False,
) -> ModelPlan:
    """Comparisons, blocking rules and training blocks for the token columns present.

    Args:
        present: token column names found in at least one input.
        near_unique_u: u for the exact level of near-unique identifiers, by token column
            (``nino``, ``nhs``), computed from token frequencies.
        exact_only: a naive contrast model: exact-token levels only, no fuzzy levels.

    Returns:
        The plan.
    """
    from splink import block_on

    comparisons, near_unique = _comparisons(present, dict(near_unique_u or {}), exact_only)
    rules: list[Any] = [block_on(*cols) for cols in _PREDICT_BLOCKS if set(cols) <= present]
    rules += [sql for cols, sql in _CROSS_BLOCKS if cols <= present]
    em_blocks: list[Any] = [block_on(*cols) for cols in _EM_BLOCKS if set(cols) <= present]
    if not em_blocks and {"dob_exact", "surname_nysiis"} <= present:
        em_blocks.append(block_on("dob_exact", "surname_nysiis"))
    deterministic: list[str] = []
    if "nino" in present:
        deterministic.append("l.nino = r.nino")
    if {"forename_exact", "surname_exact", "dob_exact"} <= present:
        deterministic.append(
            "l.forename_exact = r.forename_exact AND l.surname_exact = r.surname_exact "
            "AND l.dob_exact = r.dob_exact"
        )
    return ModelPlan(
        comparisons=comparisons,
        blocking_rules=rules,
        em_blocks=em_blocks,
        deterministic_rules=deterministic,
        near_unique=near_unique,
        columns=sorted(present),
    )


def settings_creator(plan: ModelPlan) -> Any:
    """A Splink ``SettingsCreator`` for the plan (link and dedupe all inputs at once).

    Predictions keep each comparison's level and weights but not the compared token columns
    (:func:`wmw_link.linkage.run.keep_levels_in_predictions`): the household rule reads the
    levels, and nothing reads the token values after blocking.
    """
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="link_and_dedupe",
        unique_id_column_name="unique_id",
        comparisons=plan.comparisons,
        blocking_rules_to_generate_predictions=plan.blocking_rules,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=True,
        max_iterations=20,
        em_convergence=0.001,
    )


__all__ = [
    "IDENTITY_EVIDENCE",
    "WEAK_LEVELS",
    "ModelPlan",
    "plan_model",
    "present_columns",
    "settings_creator",
]
