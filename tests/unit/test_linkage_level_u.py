"""u of composite levels counted in the database, with NINo errors of one person taken off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def _crowd(people: int, seed: int = 7) -> pd.DataFrame:
    """Two records per person (same NINo); surname-and-date tokens from 300 values, so many
    pairs of different people agree on them; names-and-date tokens per person."""
    rng = np.random.default_rng(seed)
    sn = rng.integers(0, 300, people)
    return pd.DataFrame(
        {
            "unique_id": np.arange(2 * people),
            "nino": np.repeat(np.arange(people), 2),
            "fn_dob": np.repeat(np.arange(people), 2),
            "sn_dob": np.repeat(sn, 2),
        }
    )


def _u_sampled(tmp_path: Path, frame: pd.DataFrame, **kw: int) -> dict[str, float]:
    be = open_backend("duckdb", tmp_path)
    try:
        be.con.register("t", frame)
        u = level_u(be, ["t"], {"nino", "fn_dob", "sn_dob"}, LEVELS, **kw)["identity"]
        # The selected records are freed afterwards.
        assert not be.rows("SELECT * FROM duckdb_tables() WHERE table_name LIKE 'wmw_level_u%'")
        return u
    finally:
        be.close()


def test_a_sample_of_the_records_estimates_u_within_its_error_bound(tmp_path: Path) -> None:
    frame = _crowd(10_000)  # 20,000 records
    exact = _u_sampled(tmp_path / "exact", frame, sample_records=20_000)
    sampled = _u_sampled(tmp_path / "s", frame, sample_records=5_000, seed=1)
    again = _u_sampled(tmp_path / "s2", frame, sample_records=5_000, seed=1)
    other = _u_sampled(tmp_path / "s3", frame, sample_records=5_000, seed=2)
    # About 12.5 million sampled pairs at u ~ 1/300: some 40,000 agreeing pairs, a relative
    # error near 0.5%; 5% leaves room for the correlation of pairs sharing a record.
    assert sampled["surname and date"] == pytest.approx(exact["surname and date"], rel=0.05)
    assert other["surname and date"] == pytest.approx(exact["surname and date"], rel=0.05)
    # Reproducible for a seed, and really a sample (another seed, other records).
    assert again == sampled
    assert other["surname and date"] != sampled["surname and date"]
    assert sampled["surname and date"] != exact["surname and date"]
    # A level no pair of different people reaches keeps half a pair's worth of the pairs
    # counted: of the sample's pairs, so a larger u than the exact count's floor.
    assert exact["names and date"] < sampled["names and date"] < 30 * exact["names and date"]


def test_up_to_the_sample_size_every_record_is_counted(tmp_path: Path) -> None:
    frame = _crowd(2_000)
    full = _u_sampled(tmp_path / "a", frame, sample_records=4_000)
    again = _u_sampled(tmp_path / "b", frame, sample_records=10_000, seed=9)
    assert full == again
    pairs = 4_000 * 3_999 / 2 - 2_000
    sn = frame["sn_dob"].to_numpy()[::2]
    _, k = np.unique(sn, return_counts=True)
    agreeing = float((4 * k * (k - 1) / 2).sum())  # 2 x 2 record pairs per pair of people
    assert full["surname and date"] == pytest.approx(agreeing / pairs)


def test_sample_condition_keeps_about_the_share_asked(tmp_path: Path) -> None:
    be = open_backend("duckdb", tmp_path)
    try:
        cond = be.sample_condition("i", 0.25, 42)
        n = be.scalar(f"SELECT COUNT(*) FROM range(100000) t(i) WHERE {cond}")
        assert 24_000 < n < 26_000
        assert n == be.scalar(f"SELECT COUNT(*) FROM range(100000) t(i) WHERE {cond}")
    finally:
        be.close()
