"""Person ids from clusters: maximum-overlap carry-over, merges, splits, withdrawals."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from wmw_link.linkage.index.persons import (
    ID_CHANGES_SCHEMA,
    Assignment,
    changes_table,
    components,
)
from wmw_link.linkage.index.persons import assign as assign_codes
from wmw_link.linkage.index.reconcile import carry_over


def _obj(values: list[str | None]) -> list[str | None]:
    return values


class _Got:
    """An assignment with each record's person id (``person_ids``) for easy checks."""

    def __init__(self, a: Assignment) -> None:
        self.person_ids = a.ids()
        self.changes = a.changes
        self.changed = a.changed


def assign(
    labels: np.ndarray,
    old: list[str | None],
    *,
    gone: dict[str, int] | None = None,
    corrected_persons: set[str] | None = None,
    reason: str | None = None,
) -> _Got:
    """:func:`assign_codes` over person id strings (codes in order of first appearance)."""
    names: list[str] = []
    for x in [*old, *(gone or {}), *sorted(corrected_persons or ())]:
        if x is not None and x not in names:
            names.append(x)
    code = {n: i for i, n in enumerate(names)}
    got = assign_codes(
        labels,
        np.array([code[x] if x is not None else -1 for x in old], dtype=np.int64),
        np.array(names, dtype=object),
        gone={code[k]: v for k, v in (gone or {}).items()},
        corrected={code[c] for c in corrected_persons or ()},
        reason=reason,
    )
    return _Got(got)


def test_components_over_edges() -> None:
    labels = components(6, np.array([0, 1, 4]), np.array([1, 2, 5]))
    assert labels[0] == labels[1] == labels[2]
    assert labels[4] == labels[5]
    assert len({labels[0], labels[3], labels[4]}) == 3


def test_new_record_joining_a_person_takes_its_id_and_new_people_get_new_ids() -> None:
    got = assign(np.array([0, 0, 1]), _obj(["pA", None, None]))
    assert got.person_ids[0] == got.person_ids[1] == "pA"
    assert got.person_ids[2] not in ("pA", None) and got.person_ids[2].startswith("p")
    assert got.changes.empty


def test_merge_keeps_the_larger_persons_id() -> None:
    # pB has two records, pA one; a new record joins them all.
    got = assign(np.array([0, 0, 0, 0]), _obj(["pA", "pB", "pB", None]))
    assert set(got.person_ids) == {"pB"}
    assert got.changes.to_dict("records") == [
        {"old_person_id": "pA", "new_person_id": "pB", "reason": "merge"}
    ]


def test_split_keeps_the_id_on_the_largest_part() -> None:
    got = assign(np.array([0, 0, 1]), _obj(["pA", "pA", "pA"]))
    assert list(got.person_ids[:2]) == ["pA", "pA"]
    new = got.person_ids[2]
    assert new != "pA"
    assert got.changes.to_dict("records") == [
        {"old_person_id": "pA", "new_person_id": new, "reason": "split"}
    ]


def test_split_involving_a_corrected_record_is_a_correction() -> None:
    got = assign(np.array([0, 0, 1]), _obj(["pA", "pA", "pA"]), corrected_persons={"pA"})
    assert got.changes["reason"].tolist() == ["correction"]


def test_person_whose_records_are_all_withdrawn_gets_a_null_new_id() -> None:
    got = assign(np.array([0]), _obj(["pA"]), gone={"pB": 2, "pA": 1})
    assert got.changes.to_dict("records") == [
        {"old_person_id": "pB", "new_person_id": None, "reason": "withdrawal"}
    ]


def test_retrain_reason_and_each_old_id_used_once() -> None:
    # Old pA split 3/2 over two clusters, old pB entirely in the second cluster with 4 records:
    # pB keeps the second cluster (4 shared), pA the first (3 shared).
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    old = _obj(["pA", "pA", "pA", "pA", "pA", "pB", "pB", "pB", "pB"])
    codes = np.array([0 if x == "pA" else 1 for x in old])
    assert carry_over(labels, codes, 2, 2).tolist() == [0, 1]  # cluster 0: pA, 1: pB
    got = assign(labels, old, reason="retrain")
    assert list(got.person_ids) == ["pA"] * 3 + ["pB"] * 6
    assert got.changes.to_dict("records") == [
        {"old_person_id": "pA", "new_person_id": "pB", "reason": "retrain"}
    ]


def test_changed_codes_name_every_old_person_in_the_changes() -> None:
    got = assign(np.array([0, 0, 1, 2]), _obj(["pA", "pA", "pA", "pC"]), gone={"pB": 1})
    # pA split (a change), pB withdrawn (a change), pC untouched.
    assert sorted(got.changes["old_person_id"]) == ["pA", "pB"]
    assert got.changed.tolist() == [0, 2]  # codes of pA and pB in first-appearance order


def test_changes_table_schema() -> None:
    got = assign(np.array([0, 0, 1]), _obj(["pA", "pA", "pA"]))
    t = changes_table(got.changes, 7)
    assert t.schema == ID_CHANGES_SCHEMA
    assert t["delivery"].to_pylist() == [7]
    empty = changes_table(assign(np.array([0]), _obj([None])).changes, 2)
    assert empty.num_rows == 0 and empty.schema.field("delivery").type == pa.int32()


def test_withdrawn_person_is_a_withdrawal_also_in_a_retrain_run() -> None:
    # docs/person-index.md: a person with no record left gets a null id, reason 'withdrawal',
    # whatever else the run does (here --retrain with --withdrawals).
    got = assign(np.array([0]), _obj(["pA"]), gone={"pB": 1}, reason="retrain")
    assert got.changes.to_dict("records") == [
        {"old_person_id": "pB", "new_person_id": None, "reason": "withdrawal"}
    ]
