"""Whole-extract checks decided after the run, before any shareable output is put in place.

A column where most non-empty values fail validation, or an extract where no row can be
tokenised, is almost always a wrong format in the agreement or the wrong file: tokenising it
would send the TTP nulls and the analysts nothing. :func:`refusals` says what is wrong (file,
column, rule, share, reason labels: never a value).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from wmw_link.agreement import Dataset, IdentifierType, PayloadType
from wmw_link.normalise._base import MISSING
from wmw_link.normalise.sex import NOT_KNOWN

#: Default for ``max_invalid_share``: refuse when more than half a column's values are invalid.
DEFAULT_MAX_INVALID_SHARE = 0.5

# Reasons that say "no value given", not "a wrong value": they never count as invalid.
_NOT_INVALID = frozenset({MISSING, NOT_KNOWN})

_NAMES = "names with letters"
_IDENTIFIER_RULES = {
    IdentifierType.FORENAME: _NAMES,
    IdentifierType.SURNAME: _NAMES,
    IdentifierType.FULL_NAME: _NAMES,
    IdentifierType.POSTCODE: "the UK postcode format",
    IdentifierType.NINO: "the National Insurance number format",
    IdentifierType.NHS_NUMBER: "the NHS number format and check digit",
    IdentifierType.SEX: "the sex codes (f/m/x, female/male/other, 1/2/3)",
    IdentifierType.IDENTIFIER: "ids with letters or digits",
    IdentifierType.TEXT: "text with letters or digits",
}
_PAYLOAD_RULES = {
    PayloadType.INTEGER: "the integer format",
    PayloadType.NUMBER: "the number format",
    PayloadType.BOOLEAN: "the true/false format (true/false, yes/no, y/n, 1/0)",
    PayloadType.CATEGORY: "the agreement's list of categories",
    PayloadType.POSTCODE_DISTRICT: "the UK postcode format",
}


@dataclass(frozen=True)
class ColumnCheck:
    """One checked column: its label in the counts, its input column, and what it must match."""

    label: str
    column: str
    expects: str
    payload_name: str | None = None


def column_checks(dataset: Dataset) -> list[ColumnCheck]:
    """The columns whose invalid share is checked: identifiers, then analyst payload fields."""
    out: list[ColumnCheck] = []
    for f in dataset.identifiers:
        if f.type == IdentifierType.DATE_OF_BIRTH:
            # Without a format the agreement reads ISO dates: say so, the usual cause of a refusal.
            expects = f"format {f.format}" if f.format else (
                f"format {f.date_format} (the agreement gives no 'format', so ISO is assumed)"
            )
        elif f.type == IdentifierType.POSTCODE and f.country != "gb":
            expects = "postcodes with letters or digits"
        else:
            expects = _IDENTIFIER_RULES[f.type]
        # A full name is usable when its surname part is (a one-word name has no forename).
        label = f"{f.column}/surname" if f.type == IdentifierType.FULL_NAME else f.column
        out.append(ColumnCheck(label, f.column, expects))
    for p in dataset.analyst_payload():
        if p.type in (PayloadType.DATE, PayloadType.YEAR):
            expects = f"format {p.format}"
        elif p.type in _PAYLOAD_RULES:
            expects = _PAYLOAD_RULES[p.type]
        else:
            continue  # free strings cannot be invalid
        out.append(ColumnCheck(f"payload.{p.name}", p.column, expects, p.name))
    return out


def _pct(share: float) -> str:
    return f"{100 * share:.1f}".removesuffix(".0")


def invalid_columns(
    dataset: Dataset, nulled: Counter[str], non_empty: Counter[str], max_share: float
) -> list[str]:
    """One sentence per column whose invalid share of non-empty values exceeds ``max_share``.

    Args:
        dataset: the agreement's dataset.
        nulled: counts by ``label:reason`` over every input row.
        non_empty: non-empty values by label over every input row.
        max_share: the largest share of invalid values allowed (0 to 1).
    """
    problems: list[str] = []
    failed_columns: set[str] = set()
    for check in column_checks(dataset):
        # A payload field read from an identifier column that already failed says nothing new.
        if check.payload_name is not None and check.column in failed_columns:
            continue
        reasons = {
            key.rsplit(":", 1)[1]: n
            for key, n in nulled.items()
            if key.rsplit(":", 1)[0] == check.label and key.rsplit(":", 1)[1] not in _NOT_INVALID
        }
        n_invalid = sum(reasons.values())
        n = non_empty.get(check.label, 0)
        if n == 0 or n_invalid == 0 or n_invalid / n <= max_share:
            continue
        failed_columns.add(check.column)
        field = f" (payload field '{check.payload_name}')" if check.payload_name else ""
        why = ", ".join(f"{r}: {k}" for r, k in sorted(reasons.items()))
        problems.append(
            f"rule 'format': {_pct(n_invalid / n)}% of the {n} non-empty values of column "
            f"'{check.column}'{field} fail {check.expects} ({why})"
        )
    return problems


def refusals(
    dataset: Dataset,
    *,
    rows_input: int,
    rows_tokens: int,
    rejected: Counter[str],
    nulled: Counter[str],
    non_empty: Counter[str],
    max_share: float,
) -> list[str]:
    """Why the run's outputs must not be shared (empty: they may).

    Returns:
        ``rule 'format'`` sentences for columns with too many invalid values (see
        :func:`invalid_columns`), then a ``rule 'usable_rows'`` sentence when no row could be
        tokenised.
    """
    problems = invalid_columns(dataset, nulled, non_empty, max_share)
    if problems:
        problems[-1] += (
            "; check the agreement's format or the extract (or raise --max-invalid-share, "
            f"now {max_share:g})"
        )
    if rows_tokens == 0:
        top = ", ".join(f"{r}: {n}" for r, n in rejected.most_common(3))
        problems.append(
            f"rule 'usable_rows': none of the {rows_input} rows could be tokenised "
            f"(rejected {top}); check that this is the right file for dataset '{dataset.id}'"
        )
    return problems
