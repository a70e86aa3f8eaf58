"""NINo and NHS number generation and validation."""

from __future__ import annotations

import numpy as np
import pytest

from wmw_link.synth.ids import (
    is_valid_nhs_number,
    is_valid_nino,
    make_nhs_numbers,
    make_ninos,
    nhs_check_digit,
)


def test_generated_ninos_are_valid_and_unique() -> None:
    ids = np.arange(50_000)
    ninos = make_ninos(ids, np.random.default_rng(1), np.random.default_rng(2))
    assert len(set(ninos.tolist())) == len(ids)
    assert all(is_valid_nino(str(n)) for n in ninos[:5000])
    assert not {str(n)[:2] for n in ninos} & {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
    # Administrative prefixes are well-formed but never a person's number.
    assert not {str(n)[:2] for n in ninos} & {"OO", "CR", "FY", "MW", "NC", "PP", "PY", "PZ"}
    assert not {str(n)[0] for n in ninos} & set("DFIQUV")
    assert not {str(n)[1] for n in ninos} & set("DFIOQUV")


def test_the_same_seed_gives_the_same_numbers_across_chunks() -> None:
    """Chunks share the bijection seed, so numbers never collide between chunks."""
    a = make_ninos(np.arange(0, 1000), np.random.default_rng(5), np.random.default_rng(9))
    b = make_ninos(np.arange(1000, 2000), np.random.default_rng(6), np.random.default_rng(9))
    assert not {s[:8] for s in a.tolist()} & {s[:8] for s in b.tolist()}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("AB123456C", True),
        ("ab 12 34 56 c", True),
        ("AB123456E", False),  # suffix must be A-D
        ("DA123456A", False),  # D never first
        ("AO123456A", False),  # O never second
        ("GB123456A", False),  # never issued
        ("AB12345C", False),
    ],
)
def test_nino_validation(value: str, ok: bool) -> None:
    assert is_valid_nino(value) is ok


def test_generated_nhs_numbers_have_valid_check_digits() -> None:
    nums = make_nhs_numbers(np.arange(100_000), np.random.default_rng(3), np.random.default_rng(4))
    assert len(set(nums.tolist())) == len(nums)
    assert all(is_valid_nhs_number(str(n)) for n in nums[:20_000])
    assert {str(n)[0] for n in nums} <= {"4", "6", "7"}


@pytest.mark.parametrize(
    ("value", "ok"),
    [("9434765919", True), ("943 476 5919", True), ("9434765918", False), ("943476591", False)],
)
def test_nhs_validation(value: str, ok: bool) -> None:
    assert is_valid_nhs_number(value) is ok


def test_check_digit_ten_means_invalid() -> None:
    # 000000001: sum = 2, 11 - 2 = 9; 000000006 -> 12 % 11 = 1 -> 10 (no valid number)
    assert nhs_check_digit(np.array([1]))[0] == 9
    assert nhs_check_digit(np.array([6]))[0] == 10
