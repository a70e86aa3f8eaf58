"""Splink settings generated from the token schema the manifests carry (token schema v3).

Version 3 tokens are composites (docs/token-schema.md): names are hashed with the date of birth,
fuzzy dates with the phonetic full name, postcodes with the date of birth. A name token agreeing
therefore says "this name *and* this date agree". Modelled as separate name and date comparisons,
the date's evidence would be counted once per name token (Fellegi-Sunter assumes comparisons are
independent given match status, and these are not by construction). So names and date of birth
form one **identity** comparison whose levels are agreement patterns over the composites, from
the strongest to the weakest evidence, and EM learns each pattern's m and u. Postcode, NINo and
NHS number are separate comparisons.

Nothing here is written per dataset: levels and blocking rules are derived from which token
columns are present (the union over all inputs; a dataset without an identifier has those
columns as nulls), and a level or rule whose columns are absent everywhere is left out.

All SQL is written in the DuckDB dialect; Splink translates it for Spark with sqlglot (array
overlap, which sqlglot would translate wrongly, is written per dialect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wmw_link.token_schema import (
    BLOOM_SET_BITS,
    BY_NAME,
    bloom_columns,
    shared_bits_sql,
    text_filter,
)

#: Raw filter positions two names of the same date may differ in and still count as close
#: (about two per changed character), near (a transposition changes three bigrams each side)
#: and alike.
BLOOM_CLOSE = 4
BLOOM_NEAR = 6
BLOOM_ALIKE = 8

#: Identity levels that are no identity evidence on their own (household rule): the same name
#: at the same address with unrelated dates of birth is a father and son as often as one person.
NO_EVIDENCE_LEVELS = frozenset(
    {
        "same name at the same postcode, date differs",
        "same forename at the same postcode, date differs",
    }
)
#: Levels that look like twins: the date (or a date a day out: twins born either side of
#: midnight) and the surname (or a surname alike) agree, the forenames do not. With a shared postcode such a pair links only on a NINo or NHS number.
TWINS_LEVEL = "surname and date, forename differs"
SURNAME_ALIKE_LEVEL = "date, surname alike"
SURNAME_DAY_OUT_LEVEL = "surname, date a day out"
#: Twins' dates are equal or a day apart, never day and month swapped: a swapped date with the
#: same surname is one person's record, or a twin's with a swapped date (then the NINos differ).
SURNAME_SWAPPED_LEVEL = "surname, date swapped"
#: The date and any word of either name alike, in any place (swapped and misspelt names): weak,
#: and twins pass it too.
NAME_WORD_ALIKE_LEVEL = "date, a name word alike in either place"
#: The date and at least two Double Metaphone codes of the name words in common, in any place,
#: and every code of one record's names among the other's: both names alike but swapped (Yusef
#: Maryam, Miriam Yusuf), or the same names with a middle name more. Twins share one name (the
#: surname), which may have two codes (Smith: SM0, XMT), so two shared codes alone do not tell
#: them apart; a twin's other name is not among the other twin's codes.
NAME_WORDS_ALIKE_LEVEL = "date, two name words alike in either place"
#: The names, and the year of birth with the month or the day.
NAMES_DATE_PARTLY_LEVEL = "names, date partly (year-month or year-day)"
#: The names, the day and the month, the year differs: one person's year typo, or a father and
#: his junior, who share names and address and may share a birthday (then the NINos differ).
NAMES_DAY_MONTH_LEVEL = "names, day and month, year differs"
#: The names, the year of birth and the postcode district, the day and the month differ: a date
#: recorded as 1 January when only the year was known (NHS tracing guidance; refugees' and
#: asylum seekers' records) against the true date elsewhere, or a day and a month both mistyped.
#: A father and his junior differ in the year, twins share the whole date; but two children of
#: one household may share a name and a year (cousins, a junior's son): at a shared address it
#: links unless the NINos or NHS numbers differ (:data:`ALIKE_TWINS_LEVELS`).
NAMES_YEAR_LEVEL = "names, year and district, day and month differ"
#: Levels split off another for the strength of their evidence, by the level they were split
#: from: the household rule asks of them together whether ids differ within one person
#: (:func:`wmw_link.linkage.household.one_person_levels`), as it did before the split.
SPLIT_FROM = {
    NAME_WORDS_ALIKE_LEVEL: NAME_WORD_ALIKE_LEVEL,
    NAMES_DAY_MONTH_LEVEL: NAMES_DATE_PARTLY_LEVEL,
    SURNAME_SWAPPED_LEVEL: SURNAME_DAY_OUT_LEVEL,
}
#: A forename word in common (a middle name used as the forename) and the surname alike, with
#: the date: Saleh Marwan Mehmood and Marwan Mahmud. Twins share no forename. Alike by Double
#: Metaphone only: the Bloom filters of short surnames are alike within 8 positions too often
#: (Lee and Lewis, Cox and Lee).
FORENAME_WORD_SURNAME_ALIKE_LEVEL = "a forename word, surname alike, date"
#: Twins' names are often alike (Hasan and Hussain, Jayden and Jaden) or start alike.
FORENAME_ALIKE_LEVEL = "date, forename alike"
FORENAME_STARTS_LEVEL = "surname and date, forename starts alike"
TWINS_LEVELS = frozenset(
    {
        TWINS_LEVEL,
        SURNAME_ALIKE_LEVEL,
        SURNAME_DAY_OUT_LEVEL,
        NAME_WORD_ALIKE_LEVEL,
        FORENAME_STARTS_LEVEL,
    }
)
#: Twin-like too, but as often one person with a transliterated forename and another surname
#: (Begum for the family name): with a shared address such a pair links unless its NINos or NHS
#: numbers are both present and differ.
ALIKE_TWINS_LEVELS = frozenset(
    {
        FORENAME_ALIKE_LEVEL,
        NAME_WORDS_ALIKE_LEVEL,
        SURNAME_SWAPPED_LEVEL,
        NAMES_DAY_MONTH_LEVEL,
        NAMES_YEAR_LEVEL,
    }
)
#: The same first forename at the same postcode unit, with a date that agrees in part (swapped,
#: a day out, or two of year, month and day): where the date and the surname both vary, no
#: other postcode token can agree, and "postcode differs" would count against one person who
#: did not move.
SAME_UNIT_FORENAME_LEVEL = "same unit and forename, date close"
#: Postcode levels that say "same household" (with a shared surname).
SAME_PLACE_LEVELS = frozenset(
    {"same unit and date", "same unit and surname", "same sector and date", SAME_UNIT_FORENAME_LEVEL}
)

# An atom: ("eq", col) equal tokens; ("ov", col) token lists overlap (("ov", col, n): in at least
# n tokens, and every token of one list is in the other); ("bf", part, k) the
# part's Bloom filters differ in at most k raw positions; ("null", col) either side is null.
Atom = tuple[Any, ...]
#: A condition in disjunctive normal form: OR over AND-lists of atoms.
Dnf = list[list[Atom]]


@dataclass(frozen=True)
class ModelPlan:
    """Everything the run needs to build and train the Splink model."""

    comparisons: list[Any]
    blocking_rules: list[Any]
    em_blocks: list[Any]
    deterministic_rules: list[str]
    near_unique: dict[str, str] = field(default_factory=dict)  # comparison -> token column
    columns: list[str] = field(default_factory=list)


def _atom_columns(atom: Atom) -> list[str]:
    return bloom_columns(atom[1]) if atom[0] == "bf" else [atom[1]]


def _atom_sql(atom: Atom, dialect: str) -> str:
    kind, col = atom[0], atom[1]
    if kind == "eq":
        return f"{col}_l = {col}_r"
    if kind == "ov" and len(atom) > 2 and int(atom[2]) > 1:
        # Token lists hold distinct values, so the intersection's length counts shared tokens;
        # every token of the shorter list is shared when it equals that list's length.
        size, meet = ("size", "array_intersect") if dialect == "spark" else ("len", "list_intersect")
        shared = f"{size}({meet}({col}_l, {col}_r))"
        return (
            f"{shared} >= {int(atom[2])} AND {shared} = least({size}({col}_l), {size}({col}_r))"
        )
    if kind == "ov":
        fn = "arrays_overlap" if dialect == "spark" else "list_has_any"
        return f"{fn}({col}_l, {col}_r)"
    if kind == "bf":
        return f"{shared_bits_sql(bloom_columns(col))} >= {BLOOM_SET_BITS - atom[2]}"
    if kind == "null":
        return f"({col}_l IS NULL OR {col}_r IS NULL)"
    raise ValueError(f"unknown atom {atom!r}")


def _usable(dnf: Dnf, present: set[str]) -> Dnf:
    """The conjunctions whose every column is present."""
    return [conj for conj in dnf if all(set(_atom_columns(a)) <= present for a in conj)]


def dnf_sql(dnf: Dnf, dialect: str = "duckdb") -> str:
    """SQL for a condition over Splink's ``<col>_l`` / ``<col>_r`` columns."""
    return " OR ".join("(" + " AND ".join(_atom_sql(a, dialect) for a in c) + ")" for c in dnf)


def _level(dnf: Dnf, label: str) -> Any:
    """A comparison level from a condition, written for whichever dialect Splink asks."""
    import splink.comparison_level_library as cll
    from splink.internals.comparison_level_creator import ComparisonLevelCreator

    class TokenAgreementLevel(ComparisonLevelCreator):
        def create_sql(self, sql_dialect: Any) -> str:
            name = sql_dialect.sql_dialect_str
            if name not in ("duckdb", "spark"):
                return cll.CustomLevel(dnf_sql(dnf), base_dialect_str="duckdb").create_sql(
                    sql_dialect
                )
            return dnf_sql(dnf, name)

        def create_label_for_charts(self) -> str:
            return label

    return TokenAgreementLevel()


def _null_level(cols: Sequence[str], extra: str = "") -> Any:
    import splink.comparison_level_library as cll

    side = [" AND ".join(f"{c}_{s} IS NULL" for c in cols) for s in ("l", "r")]
    sql = f"({side[0]}) OR ({side[1]})" + (f" OR ({extra})" if extra else "")
    return cll.CustomLevel(sql, "null", base_dialect_str="duckdb").configure(is_null_level=True)


def usable_levels(levels: list[tuple[str, Dnf]], present: set[str]) -> list[tuple[str, Dnf]]:
    """The levels with at least one conjunction whose columns are all present, reduced to
    those conjunctions."""
    out = [(label, _usable(dnf, present)) for label, dnf in levels]
    return [(label, dnf) for label, dnf in out if dnf]


def _comparison(name: str, null_cols: Sequence[str], levels: list[tuple[str, Dnf]],
                present: set[str], description: str,
                u: Mapping[str, float] | None = None, null_sql: str = "") -> Any | None:  # fmt: skip
    """A comparison of the levels usable with the present columns (None if none is).

    With ``u`` for every level (counted by :mod:`wmw_link.linkage.level_u`), the u
    probabilities are fixed, the else level's too; otherwise Splink samples them.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    usable = usable_levels(levels, present)
    nulls = [c for c in null_cols if c in present]
    if not usable or not nulls:
        return None
    built = [_level(dnf, label) for label, dnf in usable]
    other = cll.ElseLevel()
    if u and all(label in u for label, _ in usable):
        for lvl, (label, _) in zip(built, usable, strict=True):
            lvl.configure(u_probability=u[label], fix_u_probability=True)
        rest = max(1.0 - sum(u[label] for label, _ in usable), 0.5)
        other = other.configure(u_probability=rest, fix_u_probability=True)
    return cl.CustomComparison(
        comparison_levels=[_null_level(nulls, null_sql), *built, other],
        output_column_name=name,
        comparison_description=description,
    )


def _eq(c: str) -> Atom:
    return ("eq", c)


def _ov(c: str, n: int = 1) -> Atom:
    return ("ov", c) if n == 1 else ("ov", c, n)


def _bf(part: str, k: int) -> Atom:
    return ("bf", part, k)


_FN, _SN = "forename", "surname"
_FN_SAME = [[_eq("fn1_dob")], [_ov("fnnick_dob")]]  # first forename or nickname, same date

#: Identity levels, strongest first: (label, condition). Every name token carries the date of
#: birth, so the levels on name tokens imply the same date; the levels on date tokens (swapped,
#: a day out, partly) and on the postcode are for a date that differs.
IDENTITY_LEVELS: list[tuple[str, Dnf]] = [
    ("names and date", [[_eq("fn_dob"), _eq("sn_dob")]]),
    ("first forename, surname, date", [[_eq("fn1_dob"), _eq("sn_dob")]]),
    ("names swapped, date", [[_eq("names_dob")]]),
    ("nickname, surname, date", [[_ov("fnnick_dob"), _eq("sn_dob")]]),
    ("forename close, surname, date", [[_bf(_FN, BLOOM_CLOSE), _eq("sn_dob")]]),
    (
        "forename, surname close, date",
        [[*f, s] for f in _FN_SAME for s in (_ov("snw_dob"), _bf(_SN, BLOOM_CLOSE))],
    ),
    (
        "names alike, date",
        [
            [_eq("nameph_dob")],
            [_bf(_FN, BLOOM_CLOSE), _bf(_SN, BLOOM_CLOSE)],
            [_bf(_FN, BLOOM_CLOSE), _ov("snw_dob")],
            [_ov("fndm_dob"), _ov("sndm_dob")],
            [*_FN_SAME[0], _bf(_SN, BLOOM_ALIKE)],
        ],
    ),
    ("forename and date, surname differs", _FN_SAME),
    ("surname and date, no forename", [[_eq("sn_dob"), ("null", "fn1_dob")]]),
    (
        FORENAME_STARTS_LEVEL,
        [[_eq("sn_dob"), _eq("fn3_dob")], [_eq("sn_dob"), _bf(_FN, BLOOM_NEAR)]],
    ),
    (
        "a forename word and surname, date",
        [[_ov("fnw_dob"), _eq("sn_dob")], [_ov("fnw_dob"), _ov("snw_dob")]],
    ),
    (
        FORENAME_WORD_SURNAME_ALIKE_LEVEL,
        [[_ov("fnw_dob"), _ov("sndm_dob")]],
    ),
    (TWINS_LEVEL, [[_eq("sn_dob")], [_ov("snw_dob")]]),
    (
        "names, date swapped or a day out",
        [[_eq("dobsw_nph")], [_eq("dobb0_nph")], [_eq("dobb1_nph")]],
    ),
    (NAMES_DATE_PARTLY_LEVEL, [[_eq("dobym_nph")], [_eq("dobyd_nph")]]),
    (NAMES_DAY_MONTH_LEVEL, [[_eq("dobmd_nph")]]),
    (NAMES_YEAR_LEVEL, [[_eq("dobypd_nph")]]),
    (SURNAME_SWAPPED_LEVEL, [[_eq("dobsw_sn")]]),
    (SURNAME_DAY_OUT_LEVEL, [[_eq("dobb0_sn")], [_eq("dobb1_sn")]]),
    (
        "forename, date swapped or a day out",
        [[_eq("dobsw_fn")], [_eq("dobb0_fn")], [_eq("dobb1_fn")]],
    ),
    ("same name at the same postcode, date differs", [[_eq("name_pc")]]),
    ("same forename at the same postcode, date differs", [[_eq("fn_pc")]]),
    (FORENAME_ALIKE_LEVEL, [[_ov("fndm_dob")], [_bf(_FN, BLOOM_ALIKE)]]),
    (SURNAME_ALIKE_LEVEL, [[_ov("sndm_dob")], [_bf(_SN, BLOOM_ALIKE)]]),
    (NAME_WORDS_ALIKE_LEVEL, [[_ov("namesdm_dob", 2)]]),
    (NAME_WORD_ALIKE_LEVEL, [[_ov("namesdm_dob")]]),
]
IDENTITY_NULL_COLUMNS = ("fn1_dob", "sn_dob", "name_pc", "dobym_nph")

POSTCODE_LEVELS: list[tuple[str, Dnf]] = [
    ("same unit and date", [[_eq("pc_dob")]]),
    ("same unit and surname", [[_eq("pc_sn")]]),
    ("same sector and date", [[_eq("pcs_dob")]]),
    (
        SAME_UNIT_FORENAME_LEVEL,
        [
            [_eq("fn_pc"), _eq(c)]
            for c in (
                *(f"dob{e}_fn" for e in ("sw", "b0", "b1")),
                *(f"dob{e}_nph" for e in ("sw", "b0", "b1", "ym", "yd", "md")),
            )
        ],
    ),
]


#: The level of a generic id whose near-id tokens overlap (the id within one character at the
#: same postcode) but whose exact tokens differ.
ID_NEAR_LEVEL = "within one character, same postcode"


#: Household-rule patterns without an identity level (``gamma_identity`` null or else), judged
#: like the refused levels (:func:`wmw_link.linkage.household.one_person_levels`): such a pair at a
#: shared place (the same date and address, names that differ) ...
NO_IDENTITY_AT_PLACE = "no identity level, at a shared place"


#: The level of a generic id whose near-id-with-names tokens overlap (the id within one
#: character, and the same first forename and surname) and no stronger id level holds.
ID_NEAR_NAMES_LEVEL = "within one character, same names"


def near_id_alone(col: str) -> str:
    """... and a generic id within one character at the same postcode with no identity level
    (a date of birth missing, or names and date both corrupted): the pattern's label."""
    return f"{col}: {ID_NEAR_LEVEL}, no identity level"


def near_id_column(col: str) -> str:
    """The near-id column (``idpc_<name>``) of a generic id column ``id_<name>``."""
    return f"idpc_{col[3:]}"


def near_names_column(col: str) -> str:
    """The near-id-with-names column (``idnm_<name>``) of a generic id column ``id_<name>``."""
    return f"idnm_{col[3:]}"


def near_columns(col: str, present: set[str]) -> list[str]:
    """The near-id columns of a generic id column that are present (none for the NINo)."""
    if not col.startswith("id_"):
        return []
    return [c for c in (near_id_column(col), near_names_column(col)) if c in present]


def _exact_comparison(
    col: str,
    name: str,
    u: float | None = None,
    near: Sequence[tuple[str, str, float | None]] = (),
) -> Any:
    """Exact agreement on a near-unique id; with ``near`` (a generic id's near-id columns:
    (column, label, u)), a level for each, in order: ids within one character at the same
    postcode, then with the same names (a typo in the id)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    exact = cll.ExactMatchLevel(col).configure(label_for_charts="exact")
    if u is not None:
        # A near level whose u could not be counted (too few records hold it) is left out
        # rather than leaving every u of the id to random sampling.
        near = [n for n in near if n[2] is not None]
    close = [(_level([[_ov(c)]], label), u_c) for c, label, u_c in near]
    other = cll.ElseLevel()
    if u is not None:
        # Near-unique identifier: u of half a pair (NINo, NHS number) or counted pairs
        # (generic ids), fixed (see run.near_unique_u, linkage.id_u); every near level left
        # has its u (filtered above).
        exact = exact.configure(u_probability=u, fix_u_probability=True)
        rest = 1.0 - u
        for level, u_c in close:
            level.configure(u_probability=u_c, fix_u_probability=True)
            rest -= float(u_c)
        other = other.configure(u_probability=rest, fix_u_probability=True)
    return cl.CustomComparison(
        comparison_levels=[_null_level([col]), exact, *(lv for lv, _ in close), other],
        output_column_name=name,
        comparison_description=f"{name} token: exact"
        + "".join(f" or {label}" for _, label, _ in near),
    )


def present_columns(token_columns: Iterable[Mapping[str, Any]]) -> set[str]:
    """The union of token column names over all inputs."""
    out: set[str] = set()
    for cols in token_columns:
        out |= set(cols)
    return out


def model_levels(exact_only: bool = False) -> dict[str, list[tuple[str, Dnf]]]:
    """The levels of the identity and postcode comparisons (the strongest only for the naive
    exact-only contrast)."""
    if exact_only:
        return {"identity": IDENTITY_LEVELS[:1], "postcode": POSTCODE_LEVELS[:1]}
    return {"identity": IDENTITY_LEVELS, "postcode": POSTCODE_LEVELS}


def _comparisons(
    present: set[str],
    near_unique_u: Mapping[str, float],
    exact_only: bool,
    level_u: Mapping[str, Mapping[str, float]],
) -> tuple[list[Any], dict[str, str]]:
    levels = model_levels(exact_only)
    identity, postcode = levels["identity"], levels["postcode"]
    comparisons = [
        c
        for c in (
            _comparison(
                "identity",
                IDENTITY_NULL_COLUMNS,
                identity,
                present,
                "names and date of birth: agreement patterns of the composite tokens",
                level_u.get("identity"),
            ),
            _comparison(
                "postcode",
                ("pc_dob", "pcs_dob", "pc_sn"),
                postcode,
                present,
                "postcode unit or sector (hashed with the date of birth or the surname)",
                level_u.get("postcode"),
                null_sql=dates_differ_sql(present) if "pc_sn" not in present else "",
            ),
        )
        if c is not None
    ]
    near_unique: dict[str, str] = {}
    labels = {"idpc": ID_NEAR_LEVEL, "idnm": ID_NEAR_NAMES_LEVEL}
    for col in unique_id_columns(present):
        near = [] if exact_only else near_columns(col, present)
        comparisons.append(
            _exact_comparison(
                col,
                col,
                near_unique_u.get(col),
                [(c, labels[c[:4]], near_unique_u.get(c)) for c in near],
            )
        )
        near_unique[col] = col
    if not exact_only:
        comparisons += generic_comparisons(present, level_u)
    return comparisons, near_unique


# -- generic fields of any partner's extract (identifier, text) -----------------------------
#
# An ``identifier`` field is one exact column ``id_<name>``, compared and blocked on like the
# NINo. A ``text`` field is ``tx_<name>_dob`` (the text with the date of birth) and a Bloom
# filter salted with the date of birth: its own comparison, with levels on shared bits as for
# names. Texts are longer than names, so "alike" allows more differing positions.
TEXT_CLOSE = 4
TEXT_ALIKE = 10
#: Filters of one salt (date of birth) share at least ``BLOOM_SET_BITS`` minus the positions
#: their texts differ in (rarely below 200); filters of different salts share about half that
#: (128). Below this, the dates differ and the texts were not compared: no evidence either way
#: (a null level), not "text differs".
SAME_SALT_MIN_BITS = 192


def unique_id_columns(present: set[str]) -> list[str]:
    """Exact near-unique identifiers present: NINo, NHS number, then ``id_<name>`` columns."""
    fixed = [c for c in ("nino", "nhs") if c in present]
    return fixed + sorted(c for c in present if c.startswith("id_"))


def text_names(present: set[str]) -> list[str]:
    """Names of the text fields whose columns are present."""
    return sorted(c[3:-4] for c in present if c.startswith("tx_") and c.endswith("_dob"))


def dates_differ_sql(present: set[str]) -> str:
    """SQL true when a pair's dates of birth differ, told by a Bloom filter salted with them
    (shared bits of different salts are about half); empty when no filter is present.

    A postcode of ``country: any`` has only ``pc_dob``: without this, a pair whose dates
    differ would count as "postcode differs".
    """
    # Any filter tells: the first one both records hold (a record without a forename still
    # has its surname's filter), so a missing forename does not read as "same date".
    shared = [
        shared_bits_sql(bloom_columns(part))
        for part in ("forename", "surname", *[text_filter(n) for n in text_names(present)])
        if set(bloom_columns(part)) <= present
    ]
    if not shared:
        return ""
    if len(shared) == 1:
        return f"{shared[0]} < {SAME_SALT_MIN_BITS}"
    return f"COALESCE({', '.join(shared)}) < {SAME_SALT_MIN_BITS}"


def text_levels(name: str) -> list[tuple[str, Dnf]]:
    """The levels of one text field's comparison, strongest first (all within one date)."""
    filt = text_filter(name)
    return [
        ("same text and date", [[_eq(f"tx_{name}_dob")]]),
        ("text close, same date", [[_bf(filt, TEXT_CLOSE)]]),
        ("text alike, same date", [[_bf(filt, TEXT_ALIKE)]]),
    ]


def generic_comparisons(
    present: set[str], level_u: Mapping[str, Mapping[str, float]] | None = None
) -> list[Any]:
    """A comparison per text field; u fixed where counted (``linkage.text_u``), else
    sampled by Splink."""
    out = []
    for name in text_names(present):
        filt = text_filter(name)
        comp = _comparison(
            f"text_{name}",
            (f"tx_{name}_dob",),
            text_levels(name),
            present,
            f"'{name}' text: equal or alike (shared Bloom bits) with the same date of birth",
            (level_u or {}).get(f"text_{name}"),
            null_sql=f"{shared_bits_sql(bloom_columns(filt))} < {SAME_SALT_MIN_BITS}"
            if set(bloom_columns(filt)) <= present
            else "",
        )
        if comp is not None:
            out.append(comp)
    return out


def generic_blocks(present: set[str]) -> list[str]:
    """Prediction blocks of generic fields: each id, each near id (a list: exploded), and
    each text with the date of birth (a changed name at the same address and date)."""
    ids = [c for c in unique_id_columns(present) if c.startswith("id_")]
    near = [n for c in ids for n in near_columns(c, present)]
    return ids + near + [f"tx_{n}_dob" for n in text_names(present)]


#: Blocking rules for prediction, each used when its column is present. Every token is a
#: composite (or a NINo / NHS number), so every block is high-entropy on its own. Together they
#: reach pairs with a variant in either name (the other name and the date), swapped names, a
#: wrong date (the phonetic name with a date part, or the name at the same address) and a
#: changed name with the same address and date.
_PREDICT_BLOCKS: tuple[str, ...] = (
    "nino",
    "nhs",
    "fn1_dob",
    "sn_dob",
    "names_dob",
    "nameph_dob",
    "dobsw_nph",
    "dobb0_nph",
    "dobb1_nph",
    "dobym_nph",
    "dobyd_nph",
    "dobmd_nph",
    "dobypd_nph",
    "dobsw_sn",
    "dobb0_sn",
    "dobb1_sn",
    "dobsw_fn",
    "dobb0_fn",
    "dobb1_fn",
    "name_pc",
    "fn_pc",
    "pc_dob",
    "namesdm_dob",
)
#: Prediction rules on weak evidence: a date variant or a part of the date with one name or the
#: phonetic names, one name code and the date, or one whole name and the date. Strangers meet on
#: them in numbers that grow with the square of the people born on each date (at 3,000,000
#: people they made 38 of the 45.2 million candidate pairs, a few thousand of them true), and
#: about nine in ten such pairs hold NINos (or NHS numbers) that are both present and differ:
#: with nothing else in common they cannot reach the threshold. So these rules do not pair
#: records whose NINos or NHS numbers are both present and differ (:func:`ids_may_agree`); the
#: strong rules (both names, or a name and the address) still do, so a typo in a NINo (the hard
#: profile's) is met there. Generic ``identifier`` fields do not take part: their error rates
#: are the partner's, unmeasured here.
WEAK_BLOCKS: frozenset[str] = frozenset(
    {
        "dobym_nph",
        "dobyd_nph",
        "dobmd_nph",
        "dobypd_nph",
        *(f"dob{e}_{n}" for e in ("sw", "b0", "b1") for n in ("sn", "fn")),
        "namesdm_dob",
        "fn1_dob",
        "sn_dob",
    }
)
#: The identifiers whose disagreement keeps records apart in the weak rules.
_KEEP_APART_IDS: tuple[str, ...] = ("nino", "nhs")


def keep_apart_ids(columns: Iterable[str]) -> list[str]:
    """The identifiers among ``columns`` whose disagreement keeps records apart: in the weak
    blocking rules, and in clustering (:func:`wmw_link.linkage.components.split_conflicts`)."""
    have = set(columns)
    return [c for c in _KEEP_APART_IDS if c in have]


#: Token columns that order records alike on every backend, breaking ties in weight when the
#: clustering splits components (the ``unique_id`` is the row number on DuckDB and the row
#: reference on Spark, so it cannot).
_TIE_KEYS: tuple[str, ...] = ("nino", "nhs", "names_dob", "fn_dob", "sn_dob", "pc_dob", "name_pc")


def tie_key_columns(columns: Iterable[str]) -> list[str]:
    """The token columns among ``columns`` that break ties in the clustering split."""
    have = set(columns)
    return [c for c in _TIE_KEYS if c in have]


def ids_may_agree(present: set[str]) -> str:
    """SQL: the pair's NINos and NHS numbers (those present in the inputs) are not both present
    and different ("" when the inputs hold neither)."""
    differ = [f'coalesce(l."{c}" <> r."{c}", false)' for c in keep_apart_ids(present)]
    return f"NOT ({' OR '.join(differ)})" if differ else ""


def predict_rule(col: str, present: set[str], column: str | None = None) -> Any:
    """Splink's prediction rule for token column ``col``: equality of ``column`` (default
    ``col``; the plaintext baseline blocks on the plaintext each token hashes), exploded for a
    list, and for a weak rule the ids of ``present`` not both present and different."""
    from splink import block_on
    from splink.blocking_rule_library import CustomRule

    name = column or col
    explode = [name] if BY_NAME[col].kind == "hmac_list" else None
    apart = ids_may_agree(present) if col in WEAK_BLOCKS else ""
    if not apart:
        return block_on(name, arrays_to_explode=explode)
    return CustomRule(
        f'l."{name}" = r."{name}" AND {apart}', sql_dialect="duckdb", arrays_to_explode=explode
    )


#: EM training blocks: pairs sharing a NINo (trains identity and postcode), and pairs sharing
#: phonetic names and date (trains postcode and the identifiers). Neither is dominated by one
#: household's members, so EM does not learn "same household" as "same person".
_EM_BLOCKS: tuple[str, ...] = ("nino", "nameph_dob")


def predict_blocks(present: set[str]) -> list[str]:
    """The token columns blocked on for prediction, in order (Splink's ``match_key`` indexes
    this list: the first rule that produced a pair)."""
    return [c for c in _PREDICT_BLOCKS if c in present]


def _columns_read(present: set[str], exact_only: bool) -> dict[str, set[str]]:
    """Comparison name -> the token columns its levels read (present ones)."""
    out: dict[str, set[str]] = {}
    for name, levels in model_levels(exact_only).items():
        cols = {c for _, dnf in usable_levels(levels, present) for conj in dnf for a in conj
                for c in _atom_columns(a)}  # fmt: skip
        if cols:
            out[name] = cols
    for c in unique_id_columns(present):
        out[c] = {c, *near_columns(c, present)}
    for name in text_names(present) if not exact_only else []:
        out[f"text_{name}"] = {c for _, dnf in usable_levels(text_levels(name), present)
                               for conj in dnf for a in conj for c in _atom_columns(a)}  # fmt: skip
    return out


def plan_model(
    present: set[str],
    near_unique_u: Mapping[str, float] | None = None,
    exact_only: bool = False,
    level_u: Mapping[str, Mapping[str, float]] | None = None,
) -> ModelPlan:
    """Comparisons, blocking rules and training blocks for the token columns present.

    Args:
        present: token column names found in at least one input.
        near_unique_u: u for the exact level of near-unique identifiers, by token column
            (``nino``, ``nhs``), computed from token frequencies.
        exact_only: a naive contrast model: only the strongest level of each comparison.
        level_u: u of the identity and postcode levels by comparison and label
            (:func:`wmw_link.linkage.level_u.level_u`); fixed when given for every level.

    Returns:
        The plan.
    """
    from splink import block_on

    comparisons, near_unique = _comparisons(
        present, dict(near_unique_u or {}), exact_only, dict(level_u or {})
    )
    rules: list[Any] = [predict_rule(c, present) for c in predict_blocks(present)]
    rules += [
        block_on(c, arrays_to_explode=[c] if c.startswith(("idpc_", "idnm_")) else None)
        for c in generic_blocks(present)
    ]
    # A training block leaves out every comparison that reads its column (Splink cannot
    # estimate m on pairs chosen by agreeing on it): keep only blocks that train something.
    reads = _columns_read(present, exact_only)
    candidates = [c for c in _EM_BLOCKS if c in present] or [c for c in ("pc_dob",) if c in present]
    if "nino" not in present:  # a generic id trains what the NINo would
        candidates += [c for c in unique_id_columns(present) if c.startswith("id_")]
    em_blocks: list[Any] = [
        block_on(c) for c in candidates if any(c not in cols for cols in reads.values())
    ]
    deterministic: list[str] = []
    if "nino" in present:
        deterministic.append("l.nino = r.nino")
    elif ids := [c for c in unique_id_columns(present) if c.startswith("id_")]:
        deterministic.append(f"l.{ids[0]} = r.{ids[0]}")
    if {"fn_dob", "sn_dob"} <= present:
        deterministic.append("l.fn_dob = r.fn_dob AND l.sn_dob = r.sn_dob")
    return ModelPlan(
        comparisons=comparisons,
        blocking_rules=rules,
        em_blocks=em_blocks,
        deterministic_rules=deterministic,
        near_unique=near_unique,
        columns=sorted(present),
    )


def settings_creator(plan: ModelPlan, n_inputs: int = 2) -> Any:
    """A Splink ``SettingsCreator`` for the plan: link and dedupe all inputs at once, or dedupe
    only when there is one input (one register deduplicated).

    Predictions keep each comparison's level and weights but not the compared token columns
    (:func:`wmw_link.linkage.run.keep_levels_in_predictions`): the household rule reads the
    levels, and nothing reads the token values after blocking.
    """
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="link_and_dedupe" if n_inputs > 1 else "dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=plan.comparisons,
        blocking_rules_to_generate_predictions=plan.blocking_rules,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=True,
        max_iterations=20,
        em_convergence=0.001,
    )


__all__ = [
    "IDENTITY_LEVELS",
    "ID_NEAR_LEVEL",
    "ID_NEAR_NAMES_LEVEL",
    "NO_EVIDENCE_LEVELS",
    "NO_IDENTITY_AT_PLACE",
    "POSTCODE_LEVELS",
    "SAME_PLACE_LEVELS",
    "TWINS_LEVEL",
    "TWINS_LEVELS",
    "ModelPlan",
    "dnf_sql",
    "generic_blocks",
    "ids_may_agree",
    "predict_rule",
    "WEAK_BLOCKS",
    "keep_apart_ids",
    "tie_key_columns",
    "generic_comparisons",
    "model_levels",
    "near_id_alone",
    "near_columns",
    "near_id_column",
    "near_names_column",
    "plan_model",
    "present_columns",
    "settings_creator",
    "text_levels",
    "text_names",
    "unique_id_columns",
    "usable_levels",
]
