"""The household rule and a generic id one character apart with no identity level (no date
of birth, or names and date both changed): refused, unless the scored pairs say such pairs
are one person's records with a typo in the id."""

from __future__ import annotations

import pandas as pd
from linkage_fixtures import FakeLinker, ScoredPairs
from test_generic_near_id import _present

from wmw_link.linkage.household import evidence_condition, one_person_levels
from wmw_link.linkage.settings import ID_NEAR_LEVEL, near_id_alone, plan_model

ID = "id_soc_sec_id"


def _Linker(pairs: pd.DataFrame) -> FakeLinker:  # noqa: N802 (stands for a class)
    """The generic-field model's settings and queries on scored pairs (``scored``)."""
    plan = plan_model(_present(), {ID: 1e-6, "idpc_soc_sec_id": 1e-7})
    return FakeLinker(pairs, plan, n_inputs=1)


_Pred = ScoredPairs


def _linker(weak_near: int) -> FakeLinker:
    """Pairs sharing the id: 1,000 with names and date, 200 with no identity level (odds 0.2).
    Pairs of ids one character apart: 100 with names and date (20 expected without an
    identity level if the id's typos are independent of other errors), ``weak_near`` without."""
    empty = _Linker(pd.DataFrame({"x": [0]}))
    strong = empty.gammas("identity")["names and date"]
    ids = empty.gammas(ID)
    exact, near = ids["exact"], ids[ID_NEAR_LEVEL]
    rows = [(strong, exact)] * 1000 + [(0, exact)] * 150 + [(-1, exact)] * 50
    rows += [(strong, near)] * 100 + [(0, near)] * weak_near
    df = pd.DataFrame(rows, columns=["gamma_identity", f"gamma_{ID}"])
    df["gamma_postcode"], df["gamma_id_pp"] = -1, -1
    return _Linker(df)


def _passes(lk: FakeLinker, sql: str, identity: int, id_level: int) -> bool:
    row = (
        f"SELECT {identity} AS gamma_identity, -1 AS gamma_postcode, -1 AS gamma_id_pp, "
        f"{id_level} AS gamma_{ID}"
    )
    return bool(lk.con.execute(f"SELECT ({sql}) FROM ({row})").fetchone()[0])


def test_near_id_alone_is_left_to_the_model_when_one_person_explains_it() -> None:
    lk = _linker(weak_near=15)  # 20 expected of one person, 15 found
    lifted = one_person_levels(lk, _Pred())
    assert near_id_alone(ID) in lifted
    near = lk.gammas(ID)[ID_NEAR_LEVEL]
    kept, freed = evidence_condition(lk), evidence_condition(lk, lifted)
    assert not _passes(lk, kept, 0, near) and _passes(lk, freed, 0, near)
    assert _passes(lk, kept, lk.gammas("identity")["names and date"], near)  # as before
    assert not _passes(lk, freed, 0, 0)  # ids that differ are no evidence


def test_near_id_alone_stays_refused_beyond_what_one_person_explains() -> None:
    # Siblings with ids in sequence add pairs with no identity level: 60 found, 20 expected.
    assert near_id_alone(ID) not in one_person_levels(_linker(weak_near=60), _Pred())
    # A share is not enough (nothing else to weigh): 21 found, 20 expected, stays refused.
    assert near_id_alone(ID) not in one_person_levels(_linker(weak_near=21), _Pred())
