"""National Insurance and NHS numbers: valid formats, unique per person, vectorised.

Uniqueness without a Python set: each person's index goes through an affine bijection
``(a * i + b) mod M`` over the space of valid numbers (``a`` coprime to ``M``), so two people
never share a number, and the numbers look scattered rather than sequential.
"""

from __future__ import annotations

import math
import re

import numpy as np

# HMRC rules: first letter not D F I Q U V; second not D F I O Q U V; some pairs never issued.
_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
_NINO_BANNED = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
# Valid in form but used for administrative (not personal) numbers: never given to a person.
NINO_ADMIN_PREFIXES = {"OO", "CR", "FY", "MW", "NC", "PP", "PY", "PZ"}
NINO_PREFIXES = np.array(
    [
        a + b
        for a in _NINO_FIRST
        for b in _NINO_SECOND
        if a + b not in _NINO_BANNED and a + b not in NINO_ADMIN_PREFIXES
    ]
)
_NINO_SPACE = len(NINO_PREFIXES) * 1_000_000
_NINO_RE = re.compile(
    rf"^[{_NINO_FIRST}][{_NINO_SECOND}]\d{{6}}[A-D]$",
)

# NHS numbers issued in England and Wales start 4, 6 or 7 (first eight digits drawn from here).
_NHS_BLOCKS = np.array([40_000_000, 60_000_000, 70_000_000], dtype=np.int64)
_NHS_BLOCK = 10_000_000
_NHS_SPACE = len(_NHS_BLOCKS) * _NHS_BLOCK
_NHS_WEIGHTS = np.arange(10, 1, -1)  # weights of digits 1..9 in the mod-11 check

MAX_PEOPLE = _NHS_SPACE


def _affine(index: np.ndarray, modulus: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded bijection of [0, modulus) applied to ``index`` (int64, no overflow below 2**63)."""
    while True:
        a = int(rng.integers(modulus // 3, modulus - 1))
        if math.gcd(a, modulus) == 1:
            break
    b = int(rng.integers(0, modulus))
    return (index.astype(np.int64) * a + b) % modulus


def make_ninos(
    person_ids: np.ndarray, rng: np.random.Generator, seed_rng: np.random.Generator
) -> np.ndarray:
    """Unique, valid NINos (``AB123456C``) for ``person_ids``.

    Args:
        person_ids: global person indices (unique).
        rng: stream for the per-person suffix letter.
        seed_rng: stream that fixes the bijection (must be the same for every chunk of a run).
    """
    code = _affine(person_ids, _NINO_SPACE, seed_rng)
    prefix = NINO_PREFIXES[code // 1_000_000]
    digits = np.strings.zfill((code % 1_000_000).astype("U6"), 6)
    suffix = np.array(list("ABCD"))[rng.integers(0, 4, size=len(code))]
    return np.strings.add(np.strings.add(prefix, digits), suffix)


def nhs_check_digit(first9: np.ndarray) -> np.ndarray:
    """Mod-11 check digit of 9-digit integers; 10 means "no valid number with these digits"."""
    digits = (first9[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    total = (digits * _NHS_WEIGHTS).sum(axis=1)
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def make_nhs_numbers(
    person_ids: np.ndarray, rng: np.random.Generator, seed_rng: np.random.Generator
) -> np.ndarray:
    """Unique 10-digit NHS numbers with a valid mod-11 check digit, as strings."""
    if len(person_ids) and int(person_ids.max()) >= _NHS_SPACE:
        raise ValueError(f"at most {_NHS_SPACE} people are supported")
    code = _affine(person_ids, _NHS_SPACE, seed_rng)
    first8 = _NHS_BLOCKS[code // _NHS_BLOCK] + code % _NHS_BLOCK
    d9 = rng.integers(0, 10, size=len(code))
    first9 = first8 * 10 + d9
    check = nhs_check_digit(first9)
    # Digit 9 has weight 2, so moving it by one changes the sum by 2 mod 11: never 10 twice.
    bad = check == 10
    first9 = np.where(bad, first8 * 10 + (d9 + 1) % 10, first9)
    check = nhs_check_digit(first9)
    return (first9 * 10 + check).astype("U10")


def is_valid_nino(value: str) -> bool:
    """Whether ``value`` (spaces ignored, any case) is a validly formed NINo."""
    v = value.replace(" ", "").upper()
    return bool(_NINO_RE.match(v)) and v[:2] not in _NINO_BANNED


def is_valid_nhs_number(value: str) -> bool:
    """Whether ``value`` (spaces ignored) is 10 digits with a correct mod-11 check digit."""
    v = value.replace(" ", "")
    if len(v) != 10 or not v.isdigit():
        return False
    check = int(nhs_check_digit(np.array([int(v[:9])]))[0])
    return check != 10 and check == int(v[9])
