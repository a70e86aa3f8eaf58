"""u of composite levels counted in the database, with NINo errors of one person taken off."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from wmw_link.linkage.backends import open_backend
from wmw_link.linkage.level_u import level_u

LEVELS = {
    "identity": [
        ("names and date", [[("eq", "fn_dob"), ("eq", "sn_dob")]]),
        ("surname and date", [[("eq", "sn_dob")]]),
    ]
}


def _table(people: int, typo_every: int) -> pd.DataFrame:
    """Two records per person, equal names and dates; every ``typo_every``-th person's second
    record has another NINo. Persons 0 and 1 share a surname and date (twins)."""
    rows = []
    for p in range(people):
        for r in range(2):
            nino = p * 10 + (1 if r == 1 and typo_every and p % typo_every == 0 else 0)
            sn = 0 if p < 2 else p
            rows.append({"unique_id": 2 * p + r, "nino": nino, "fn_dob": p, "sn_dob": sn})
    return pd.DataFrame(rows)


def _u(tmp_path: Path, frame: pd.DataFrame) -> dict[str, float]:
    be = open_backend("duckdb", tmp_path)
    try:
        be.con.register("t", frame)
        return level_u(be, ["t"], {"nino", "fn_dob", "sn_dob"}, LEVELS)["identity"]
    finally:
        be.close()


def test_nino_typos_of_one_person_do_not_count_as_two_people(tmp_path: Path) -> None:
    clean = _u(tmp_path / "a", _table(400, typo_every=0))
    typos = _u(tmp_path / "b", _table(400, typo_every=20))  # 5% of people, 20 pairs
    pairs = 800 * 799 / 2 - 400  # pairs of records whose NINos differ (no typos)
    # No pair of different people shares names and date: half a pair's worth, either way.
    assert clean["names and date"] == pytest.approx(0.5 / pairs)
    assert typos["names and date"] == pytest.approx(0.5 / pairs, rel=0.05)
    # The twins' 4 cross pairs share surname and date; with typos their count stays.
    assert clean["surname and date"] == pytest.approx(4 / pairs)
    assert typos["surname and date"] == pytest.approx(4 / pairs, rel=0.1)


def test_without_the_correction_typos_would_inflate_u(tmp_path: Path) -> None:
    # The raw count of different-NINo pairs sharing names and date is the 20 typo pairs; the
    # corrected u must be far below that.
    typos = _u(tmp_path, _table(400, typo_every=20))
    pairs = 800 * 799 / 2
    assert typos["names and date"] < 2 / pairs
