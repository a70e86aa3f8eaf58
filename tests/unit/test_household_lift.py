"""The household rule's refusals are lifted only where the data say a pattern is one person."""

from __future__ import annotations

import pandas as pd
from linkage_fixtures import FakeLinker, ScoredPairs

from wmw_link.linkage.household import agreement_gammas, evidence_condition, one_person_levels
from wmw_link.linkage.settings import (
    NO_EVIDENCE_LEVELS,
    TWINS_LEVEL,
)
from wmw_link.token_schema import TOKEN_COLUMNS

ALL = {c.name for c in TOKEN_COLUMNS}
SAME_NAME_PC = "same name at the same postcode, date differs"


_Linker = FakeLinker
_Pred = ScoredPairs


def _pairs(twins_equal: int, twins_differ: int, same_pc_equal: int, same_pc_differ: int):
    lk = _Linker()
    comps = {c.output_column_name: c for c in lk._settings_obj.comparisons}
    ident = agreement_gammas(comps["identity"])
    unit = agreement_gammas(comps["postcode"])["same unit and date"]
    nino = agreement_gammas(comps["nino"])["exact"]
    rows = []

    def add(level: str, n: int, pc: int, same_nino: bool) -> None:
        rows.extend([(ident[level], pc, nino if same_nino else 0)] * n)

    add("names and date", 1000, 0, True)
    add("names and date", 20, 0, False)  # one person's NINos differ at odds 0.02
    add(TWINS_LEVEL, twins_equal, unit, True)
    add(TWINS_LEVEL, twins_differ, unit, False)
    add(TWINS_LEVEL, 500, 0, False)  # not at a shared address: not what the rule refuses
    add(SAME_NAME_PC, same_pc_equal, 0, True)
    add(SAME_NAME_PC, same_pc_differ, 0, False)
    add("names and date", 50, unit, False)
    df = pd.DataFrame(rows, columns=["gamma_identity", "gamma_postcode", "gamma_nino"])
    return _Linker(df), ident


def _passes(lk: _Linker, sql: str, level: int, pc: int, nino: int) -> bool:
    """Whether a pair at these levels passes the rule ``sql`` (NHS number missing)."""
    row = f"SELECT {level} AS gamma_identity, {pc} AS gamma_postcode, {nino} AS gamma_nino, "
    return bool(lk.con.execute(f"SELECT ({sql}) FROM ({row}-1 AS gamma_nhs)").fetchone()[0])


def test_households_keep_the_rule() -> None:
    # Twins: 300 pairs at one address with different NINos against 200 with the same.
    lk, _ = _pairs(twins_equal=200, twins_differ=300, same_pc_equal=50, same_pc_differ=400)
    assert one_person_levels(lk, _Pred()) == frozenset()


def test_patterns_that_are_one_person_are_left_to_the_model() -> None:
    # 200 pairs at one address share the NINo and 4 do not: at odds 0.02 of one person's NINos
    # differing, those 4 are one person; so are the same name at the same postcode's 2.
    lk, ident = _pairs(twins_equal=200, twins_differ=4, same_pc_equal=100, same_pc_differ=2)
    lifted = one_person_levels(lk, _Pred())
    assert lifted == {TWINS_LEVEL, SAME_NAME_PC}
    assert SAME_NAME_PC in NO_EVIDENCE_LEVELS
    kept, freed = evidence_condition(lk), evidence_condition(lk, lifted)
    comps = {c.output_column_name: c for c in lk._settings_obj.comparisons}
    unit = agreement_gammas(comps["postcode"])["same unit and date"]
    twin, same_pc = ident[TWINS_LEVEL], ident[SAME_NAME_PC]
    # NINos on both records and different: refused by the rule, left to the model once lifted.
    assert not _passes(lk, kept, twin, unit, 0) and _passes(lk, freed, twin, unit, 0)
    assert not _passes(lk, kept, same_pc, 0, 0) and _passes(lk, freed, same_pc, 0, 0)
    # A NINo missing: nothing says what the pair is, refused either way.
    assert not _passes(lk, freed, twin, unit, -1) and not _passes(lk, freed, same_pc, 0, -1)
    # Equal NINos always pass.
    assert _passes(lk, kept, twin, unit, 1)
    # No NINo ever differs within the pattern: nothing to lift. Too few pairs: nothing either.
    lk, _ = _pairs(twins_equal=200, twins_differ=0, same_pc_equal=100, same_pc_differ=0)
    assert one_person_levels(lk, _Pred()) == frozenset()
    lk, _ = _pairs(twins_equal=10, twins_differ=1, same_pc_equal=10, same_pc_differ=1)
    assert one_person_levels(lk, _Pred()) == frozenset()


def _no_identity_pairs(equal: int, differ: int) -> FakeLinker:
    """Pairs without an identity level at a shared place (same unit and date): ``equal`` with
    the same NINo, ``differ`` with different NINos; one person's NINos differ at odds 0.02."""
    lk = _Linker()
    ident = lk.gammas("identity")
    unit = lk.gammas("postcode")["same unit and date"]
    nino = lk.gammas("nino")["exact"]
    rows = [(ident["names and date"], 0, nino)] * 1000 + [(ident["names and date"], 0, 0)] * 20
    rows += [(0, unit, nino)] * equal + [(0, unit, 0)] * differ
    rows += [(0, 0, 0)] * 300  # not at a shared place: not what is judged
    return _Linker(pd.DataFrame(rows, columns=["gamma_identity", "gamma_postcode", "gamma_nino"]))


def test_no_identity_level_at_a_shared_place_is_lifted_only_when_one_person() -> None:
    from wmw_link.linkage.settings import NO_IDENTITY_AT_PLACE

    # 500 such pairs share the NINo, 5 do not: at odds 0.02, 10 of one person's are expected.
    lk = _no_identity_pairs(equal=500, differ=5)
    lifted = one_person_levels(lk, _Pred())
    assert NO_IDENTITY_AT_PLACE in lifted
    unit = lk.gammas("postcode")["same unit and date"]
    kept, freed = evidence_condition(lk), evidence_condition(lk, lifted)
    assert not _passes(lk, kept, 0, unit, 0) and _passes(lk, freed, 0, unit, 0)
    assert not _passes(lk, freed, -1, unit, -1)  # no NINo: nothing says what the pair is
    assert not _passes(lk, freed, 0, 0, 0)  # not at a shared place: still no evidence
    # A household's members (same address and date, other names, other NINos): kept.
    assert NO_IDENTITY_AT_PLACE not in one_person_levels(
        _no_identity_pairs(equal=50, differ=300), _Pred()
    )
