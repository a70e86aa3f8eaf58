"""The household rule: a scored pair may link only on identity evidence.

People at one address share a surname, a postcode and often a date of birth (twins), so a pair
that agrees on those alone is refused (:func:`evidence_condition`). Whether a refused pattern is
in fact one person's records in these data is measured on the scored pairs
(:func:`one_person_levels`), from how often one person's ids differ.
"""

from __future__ import annotations

import logging
from typing import Any

from wmw_link.linkage.settings import (
    ALIKE_TWINS_LEVELS,
    ID_NEAR_LEVEL,
    IDENTITY_LEVELS,
    NO_EVIDENCE_LEVELS,
    NO_IDENTITY_AT_PLACE,
    SAME_PLACE_LEVELS,
    SPLIT_FROM,
    TWINS_LEVELS,
    near_id_alone,
    unique_id_columns,
)

log = logging.getLogger("wmw_link.linkage")


def agreement_gammas(comp: Any) -> dict[str, int]:
    """Label -> gamma of a comparison's levels other than null and else."""
    return {
        (lvl.label_for_charts or ""): lvl.comparison_vector_value
        for lvl in comp.comparison_levels
        if not lvl.is_null_level and lvl.comparison_vector_value > 0
    }


#: A refused pattern of the household rule is lifted for pairs whose reference id is on both
#: records when at least this share of its pairs whose ids differ is estimated to be one person
#: (one person's records whose ids differ) ...
ONE_PERSON_SHARE = 0.85
#: ... and it has at least this many pairs with the id on both records.
MIN_REFERENCE_PAIRS = 20
#: A near id without an identity level leaves the model nothing else to weigh (no name or
#: date agrees, and texts and a ``country: any`` postcode are not compared across dates): a
#: lift links every such pair, so one person must account for all of them, not a share.
NEAR_ALONE_SHARE = 1.0


def one_person_levels(linker: Any, predictions: Any) -> frozenset[str]:
    """Identity levels the household rule refuses whose pairs with *different* reference ids
    the data say are one person.

    The rule refuses patterns that are as often two people of one household as one person:
    twin-like levels at a shared postcode, "same (fore)name at the same postcode, date
    differs". A pair of such a pattern whose reference ids (the NINo, else the NHS number,
    else a generic id) are equal passes anyway; one whose ids differ is two people, unless the
    data make ids differ within one person often. That is measured on the scored pairs: of a
    pattern's pairs with equal ids (one person), ``equal * odds`` more of one person's pairs
    have ids that differ, ``odds`` being the odds that one person's two records differ in the id,
    measured on the strongest level (whole names and exact date: one person); a near id (one
    character apart) counts as neither. When these account for at least
    :data:`ONE_PERSON_SHARE` of the pattern's pairs whose ids differ, its pairs with the id on
    both records are left to the model (pairs without it stay refused: nothing says what they
    are, and in the standard synthetic profile twins are exactly the pairs without a NINo).
    On the hard synthetic profile, where twins and juniors share an address, nothing is lifted
    (the highest share is 0.69: "surname and date, forename starts alike"); FEBRL, which
    replaces a duplicate's forename and its id independently (ids differ in one person's
    records at odds 0.10), lifts the twin-like levels (1.6 for "surname and date, forename
    differs") and "same name at the same postcode, date differs" (1.3).

    Two patterns without an identity level are judged too: a pair at a shared place (same
    address and date, names that differ: :data:`NO_IDENTITY_AT_PLACE`), the same way; and a
    generic id within one character at the same postcode (:func:`near_id_alone`), by
    :func:`_near_id_patterns`.
    """
    comps = {c.output_column_name: c for c in linker._settings_obj.comparisons}
    refs = unique_id_columns(set(comps))
    if "identity" not in comps or not refs:
        return frozenset()
    near_lifted = _near_id_patterns(linker, predictions, comps)
    ref = refs[0]
    ids = agreement_gammas(comps[ref])
    exact = ids["exact"]
    # Ids equal or plainly different: a near id at the same postcode is neither. A near id
    # with the same names counts as different, as it did before it had a level: on the
    # strongest level (names and date) every typo in the id is such a pair, and the odds are
    # of one person's ids differing at all.
    near = f" AND gamma_{ref} <> {ids[ID_NEAR_LEVEL]}" if ID_NEAR_LEVEL in ids else ""
    levels = agreement_gammas(comps["identity"])
    place = agreement_gammas(comps["postcode"]) if "postcode" in comps else {}
    same_place = [g for label, g in place.items() if label in SAME_PLACE_LEVELS]
    at_place = f"gamma_postcode IN ({', '.join(map(str, same_place))})" if same_place else "FALSE"
    rows = linker.misc.query_sql(
        f"SELECT gamma_identity AS i, {at_place} AS place, gamma_{ref} = {exact} AS eq, "
        f"COUNT(*) AS n FROM {predictions.physical_name} WHERE gamma_{ref} >= 0{near} "
        "GROUP BY 1, 2, 3",
        output_type="pandas",
    )
    counts: dict[tuple[int, bool, bool], int] = {
        (int(i), bool(pl), bool(eq)): int(n) for i, pl, eq, n in rows.itertuples(index=False)
    }

    def tally(gamma: int, places: tuple[bool, ...]) -> tuple[int, int]:
        eq = sum(counts.get((gamma, pl, True), 0) for pl in places)
        return eq, sum(counts.get((gamma, pl, False), 0) for pl in places)

    strongest = levels.get(IDENTITY_LEVELS[0][0])
    if strongest is None:
        return frozenset(near_lifted)
    eq0, differ0 = tally(strongest, (False, True))
    if not eq0:
        return frozenset(near_lifted)
    odds = differ0 / eq0
    # A level split off another is judged with it (the family's pairs pooled): the split is
    # about the strength of the name evidence, not about whether ids differ within one person.
    family = {label: SPLIT_FROM.get(label, label) for label in levels}
    pooled: dict[str, tuple[int, int]] = {}
    judged = []
    for label, gamma in levels.items():
        if label in NO_EVIDENCE_LEVELS:  # refused anywhere
            eq, differ = tally(gamma, (False, True))
        elif label in TWINS_LEVELS | ALIKE_TWINS_LEVELS:  # refused at a shared place
            eq, differ = tally(gamma, (True,))
        else:
            continue
        judged.append(label)
        before = pooled.get(family[label], (0, 0))
        pooled[family[label]] = (before[0] + eq, before[1] + differ)
    if same_place:  # no identity level (null or else) at a shared place
        pooled[NO_IDENTITY_AT_PLACE] = (
            sum(tally(g, (True,))[0] for g in (-1, 0)),
            sum(tally(g, (True,))[1] for g in (-1, 0)),
        )
        family[NO_IDENTITY_AT_PLACE] = NO_IDENTITY_AT_PLACE
        judged.append(NO_IDENTITY_AT_PLACE)
    lifted = set(near_lifted)
    for label in judged:
        eq, differ = pooled[family[label]]
        if eq + differ >= MIN_REFERENCE_PAIRS and differ and eq * odds >= ONE_PERSON_SHARE * differ:
            lifted.add(label)
    return frozenset(lifted)


def _strong_identity(levels: dict[str, int]) -> list[int]:
    """Gammas of the identity levels that are one person's evidence wherever the pair is: not
    the refused levels, nor those refused at a shared place (twin-like)."""
    refused = NO_EVIDENCE_LEVELS | TWINS_LEVELS | ALIKE_TWINS_LEVELS
    return sorted(g for label, g in levels.items() if label not in refused)


def _near_id_patterns(linker: Any, predictions: Any, comps: dict[str, Any]) -> set[str]:
    """Generic ids whose near level (ids one character apart at the same postcode) may pass the
    household rule without an identity level (:func:`near_id_alone` labels).

    The rule takes a near id only beside an identity level: ids of two people at one address
    may be one character apart (issued in sequence, to twins or siblings). Whether they are is
    measured on the scored pairs: among pairs sharing the id exactly (one person), those
    without an identity level (no date of birth, or names and date both corrupted) come at
    odds ``weak / strong`` to those with a strong identity level (neither refused anywhere nor
    twin-like). If an id's typos strike records independently of their other errors, one
    person's near-id pairs without an identity level number ``strong_near * weak / strong``;
    when these account for all the near-id pairs without an identity level found
    (:data:`NEAR_ALONE_SHARE`), those pairs are left to the model. Siblings with ids in sequence
    have unrelated names and dates: they add near-id pairs without an identity level beyond
    what one person explains, and the rule stays.
    """
    levels = agreement_gammas(comps["identity"])
    strong = ", ".join(map(str, _strong_identity(levels)))
    if not strong:
        return set()
    out = set()
    for col in unique_id_columns(set(comps)):
        gammas = agreement_gammas(comps[col])
        near = gammas.get(ID_NEAR_LEVEL)
        if near is None:
            continue
        rows = linker.misc.query_sql(
            f"SELECT gamma_{col} = {gammas['exact']} AS eq, gamma_identity IN ({strong}) AS "
            f"strong, COUNT(*) AS n FROM {predictions.physical_name} WHERE gamma_{col} IN "
            f"({gammas['exact']}, {near}) AND (gamma_identity <= 0 OR gamma_identity IN "
            f"({strong})) GROUP BY 1, 2",
            output_type="pandas",
        )
        n = {(bool(e), bool(s)): int(c) for e, s, c in rows.itertuples(index=False)}
        strong_eq, weak_eq = n.get((True, True), 0), n.get((True, False), 0)
        strong_near, weak_near = n.get((False, True), 0), n.get((False, False), 0)
        if not strong_eq or not weak_near or strong_near + weak_near < MIN_REFERENCE_PAIRS:
            continue
        expected = strong_near * weak_eq / strong_eq
        log.info(
            "household rule: %s: %d near-id pairs without an identity level, %.1f expected of "
            "one person", col, weak_near, expected,
        )  # fmt: skip
        if expected >= NEAR_ALONE_SHARE * weak_near:
            out.add(near_id_alone(col))
    return out


def evidence_condition(linker: Any, lifted: frozenset[str] = frozenset()) -> str:
    """SQL: the household rule a scored pair must pass before it may link.

    A NINo, NHS-number or generic-id agreement always passes, and so does a generic id within
    one character with both names (``idnm_<name>``); a generic id within one character at the
    same postcode passes with any identity level (not alone). Otherwise a pair needs an identity
    level that is identity evidence (not "the same name at the same postcode" with unrelated dates of
    birth: fathers and sons), and a pair that looks like twins (date and surname agree or are
    alike, forenames differ) must not also share a postcode unit or sector; a pair whose
    forenames are only alike with the same date and address links unless its NINos or NHS
    numbers differ. Levels in ``lifted`` (:func:`one_person_levels`) are refused only when the
    reference id is missing on either record.
    """
    comps = {c.output_column_name: c for c in linker._settings_obj.comparisons}
    unique = []
    for n in unique_id_columns(set(comps)):
        gammas = agreement_gammas(comps[n])
        near = gammas.pop(ID_NEAR_LEVEL, None)
        # The id, or (a generic id) the id within one character with both names: evidence on
        # its own, whatever the address.
        unique.append(f"gamma_{n} IN ({', '.join(map(str, sorted(gammas.values())))})")
        if near is not None:
            # An id within one character (a typo) is identity evidence beside some name and
            # date agreement, not alone: ids of different people at one postcode may be close
            # (unless the data say they are not: _near_id_patterns).
            alone = "identity" not in comps or near_id_alone(n) in lifted
            unique.append(f"(gamma_{n} = {near}{'' if alone else ' AND gamma_identity > 0'})")
    if "identity" not in comps:
        return " OR ".join(unique) if unique else "TRUE"
    levels = agreement_gammas(comps["identity"])

    def listed(labels: frozenset[str]) -> str:
        return ", ".join(str(g) for label, g in sorted(levels.items()) if label in labels)

    # A lifted level passes when the reference id is on both records (equal or not).
    refs = unique_id_columns(set(comps))
    present = f"gamma_{refs[0]} >= 0" if refs else "FALSE"
    ok = sorted(g for label, g in levels.items() if label not in NO_EVIDENCE_LEVELS)
    rule = f"gamma_identity IN ({', '.join(map(str, ok))})" if ok else "FALSE"
    if freed := listed(NO_EVIDENCE_LEVELS & lifted):
        rule = f"({rule} OR (gamma_identity IN ({freed}) AND {present}))"
    place = agreement_gammas(comps["postcode"]) if "postcode" in comps else {}
    same_place = sorted(g for label, g in place.items() if label in SAME_PLACE_LEVELS)
    place = ", ".join(map(str, same_place))
    if same_place and NO_IDENTITY_AT_PLACE in lifted:
        rule = f"({rule} OR (gamma_identity <= 0 AND gamma_postcode IN ({place}) AND {present}))"
    if same_place and (twins := listed(TWINS_LEVELS - lifted)):
        rule += f" AND NOT (gamma_identity IN ({twins}) AND gamma_postcode IN ({place}))"
    if same_place and (freed := listed(TWINS_LEVELS & lifted)):
        rule += (
            f" AND NOT (gamma_identity IN ({freed}) AND gamma_postcode IN ({place}) "
            f"AND NOT ({present}))"
        )
    alike = listed(ALIKE_TWINS_LEVELS - lifted)
    differ = [f"gamma_{n} = 0" for n in ("nino", "nhs") if n in comps]
    if alike and same_place and differ:
        rule += (
            f" AND NOT (gamma_identity IN ({alike}) AND gamma_postcode IN "
            f"({place}) AND ({' OR '.join(differ)}))"
        )
    return " OR ".join([*unique, f"({rule})"])
