"""The report's link rates and unlinked shares (counted in numpy) against a record-by-record
reference."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from wmw_link.linkage.report import link_rates


def _reference(maps: dict[str, pd.DataFrame]) -> tuple[dict, dict]:
    """Each record looked at on its own: does its person have a (further) record in B?"""
    where: dict[str, list[str]] = {}
    for d, m in maps.items():
        for p in m["person_id"]:
            where.setdefault(p, []).append(d)
    rates, unlinked = {}, {}
    for a, m in maps.items():
        people = list(m["person_id"])
        for b in maps:
            hits = [where[p].count(b) >= (2 if a == b else 1) for p in people]
            rates[(a, b)] = sum(hits) / len(hits) if hits else 0.0
        alone = [len(where[p]) == 1 for p in people]
        unlinked[a] = (
            len(people),
            len(set(people)),
            sum(alone) / len(alone) if alone else 0.0,
        )
    return rates, unlinked


@pytest.mark.parametrize("seed", [1, 2])
def test_link_rates_match_a_record_by_record_count(seed: int) -> None:
    rng = random.Random(seed)
    maps: dict[str, list[str]] = {"a": [], "b": [], "c": [], "empty": []}
    for person in range(300):
        for _ in range(rng.choice([1, 1, 2, 3, 4])):
            maps[rng.choice("abc")].append(f"p{person}")
    frames = {d: pd.DataFrame({"person_id": ids}, dtype=object) for d, ids in maps.items()}
    rates, unlinked = link_rates(frames)
    want_rates, want_unlinked = _reference(frames)
    got = {(r.source, r.other): r.link_rate for r in rates.itertuples()}
    assert got == pytest.approx(want_rates, abs=1e-12)
    assert 0 < got[("a", "a")] < 1 and 0 < got[("a", "b")] < 1
    for r in unlinked.itertuples():
        assert (r.records, r.persons) == want_unlinked[r.source][:2]
        assert r.unlinked_share == pytest.approx(want_unlinked[r.source][2], abs=1e-12)
    assert list(unlinked["source"]) == ["a", "b", "c", "empty"]
