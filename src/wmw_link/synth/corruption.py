"""Realistic disagreements between sources: typos, variants, swapped names, date slips, moves.

Each error hits a record with its configured probability among the records where it can
happen (see :class:`~wmw_link.synth.rates.ErrorRates`). Most errors are vectorised; the few
that edit strings character by character (typos, variants) loop only over the records hit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from wmw_link.synth.names import NamePools
from wmw_link.synth.population import People, random_postcodes
from wmw_link.synth.rates import ErrorRates

# Neighbouring keys on a UK QWERTY keyboard, for substitution typos.
_KEYS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS: dict[str, str] = {}
for r, row in enumerate(_KEYS):
    for c, ch in enumerate(row):
        near = row[max(0, c - 1) : c] + row[c + 1 : c + 2]
        for rr in (r - 1, r + 1):
            if 0 <= rr < len(_KEYS):
                near += _KEYS[rr][max(0, c - 1) : c + 1]
        _NEIGHBOURS[ch] = near


@dataclass
class Identifiers:
    """The identifying fields of extract records, before formatting."""

    forename: np.ndarray
    middle_name: np.ndarray
    surname: np.ndarray
    birth_surname: np.ndarray
    birth_day: np.ndarray
    postcode: np.ndarray
    sex: np.ndarray
    nino: np.ndarray
    nhs_number: np.ndarray
    la: np.ndarray

    @classmethod
    def of(cls, people: People, rows: np.ndarray) -> Identifiers:
        """The true identifiers of ``people`` at ``rows`` (copies, safe to corrupt)."""
        return cls(**{f.name: getattr(people, f.name)[rows].copy() for f in fields(cls)})

    def take(self, idx: np.ndarray) -> Identifiers:
        return replace(self, **{f.name: getattr(self, f.name)[idx] for f in fields(self)})


Counts = dict[str, dict[str, int]]


def typo(name: str, rng: np.random.Generator) -> str:
    """One keyboard slip: substitute a neighbour, drop, double or transpose a letter."""
    if len(name) < 2:
        return name
    i = int(rng.integers(0, len(name)))
    kind = int(rng.integers(0, 4))
    ch = name[i]
    if kind == 0 and ch.lower() in _NEIGHBOURS:
        near = _NEIGHBOURS[ch.lower()]
        new = near[int(rng.integers(0, len(near)))]
        return name[:i] + (new.upper() if ch.isupper() else new) + name[i + 1 :]
    if kind == 1 and len(name) > 3:
        return name[:i] + name[i + 1 :]
    if kind == 2:
        return name[:i] + ch + name[i:]
    j = min(i, len(name) - 2)
    if name[j] == name[j + 1]:  # transposing a double letter changes nothing: double instead
        return name[:j] + name[j] + name[j:]
    return name[:j] + name[j + 1] + name[j] + name[j + 2 :]


def _hit(
    rng: np.random.Generator, eligible: np.ndarray, rate: float, counts: Counts, kind: str
) -> np.ndarray:
    hit = eligible & (rng.random(len(eligible)) < rate)
    c = counts.setdefault(kind, {"eligible": 0, "applied": 0})
    c["eligible"] += int(eligible.sum())
    c["applied"] += int(hit.sum())
    return np.flatnonzero(hit)


def _variant(
    values: np.ndarray, table: dict[str, tuple[str, ...]], rng: np.random.Generator
) -> np.ndarray:
    out = values.copy()
    for i, v in enumerate(values):
        options = table[v]
        out[i] = options[int(rng.integers(0, len(options)))]
    return out


def _in_table(values: np.ndarray, table: dict[str, tuple[str, ...]]) -> np.ndarray:
    uniq, inv = np.unique(values.astype(str), return_inverse=True)
    return np.array([u in table for u in uniq], dtype=bool)[inv]


def duplicate_rows(n: int, rate: float, rng: np.random.Generator, counts: Counts) -> np.ndarray:
    """Row indices with some rows repeated (a record entered twice); originals come first."""
    dup = _hit(rng, np.ones(n, dtype=bool), rate, counts, "duplicate")
    return np.concatenate([np.arange(n), dup])


def corrupt_names(
    ids: Identifiers,
    rates: ErrorRates,
    rng: np.random.Generator,
    pools: NamePools,
    counts: Counts,
    *,
    fold_middle: bool,
) -> None:
    """Apply the name errors in place (marriage, double-barrel, variants, typos, fold, swap)."""
    n = len(ids.forename)
    changed = (ids.birth_surname != None) & (ids.birth_surname != ids.surname)  # noqa: E711
    hit = _hit(rng, changed, rates.marriage_surname, counts, "marriage_surname")
    ids.surname[hit] = ids.birth_surname[hit]

    dbl = np.char.find(ids.surname.astype(str), "-") > 0
    hit = _hit(rng, dbl, rates.double_barrel_partial, counts, "double_barrel_partial")
    parts = [s.split("-") for s in ids.surname[hit]]
    pick = rng.integers(0, 2, len(hit))
    ids.surname[hit] = np.array([p[k] for p, k in zip(parts, pick, strict=True)], dtype=object)

    fore_t = _in_table(ids.forename, pools.transliterations)
    sur_t = _in_table(ids.surname, pools.transliterations)
    hit = _hit(rng, fore_t | sur_t, rates.transliteration, counts, "transliteration")
    h_f = hit[fore_t[hit]]
    h_s = hit[sur_t[hit]]
    ids.forename[h_f] = _variant(ids.forename[h_f], pools.transliterations, rng)
    ids.surname[h_s] = _variant(ids.surname[h_s], pools.transliterations, rng)

    hit = _hit(rng, _in_table(ids.forename, pools.nicknames), rates.nickname, counts, "nickname")
    ids.forename[hit] = _variant(ids.forename[hit], pools.nicknames, rng)

    for attr, rate in (("forename", rates.typo_forename), ("surname", rates.typo_surname)):
        values = getattr(ids, attr)
        hit = _hit(rng, np.ones(n, dtype=bool), rate, counts, f"typo_{attr}")
        values[hit] = np.array([typo(v, rng) for v in values[hit]], dtype=object)

    if fold_middle:
        has_mid = ids.middle_name != None  # noqa: E711
        hit = _hit(rng, has_mid, rates.middle_name_folded, counts, "middle_name_folded")
        ids.forename[hit] = ids.forename[hit] + " " + ids.middle_name[hit]

    hit = _hit(rng, np.ones(n, dtype=bool), rates.swap_names, counts, "swap_names")
    ids.forename[hit], ids.surname[hit] = ids.surname[hit].copy(), ids.forename[hit].copy()


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = days.astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y, m, dd


def _from_ymd(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    month = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]")
    length = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    return month.astype("datetime64[D]").astype(np.int64) + np.minimum(d, length) - 1


def corrupt_dates(
    ids: Identifiers, rates: ErrorRates, rng: np.random.Generator, counts: Counts
) -> None:
    """Day/month swaps, off-by-one days and year typos in dates of birth, in place."""
    y, m, d = _ymd(ids.birth_day)
    hit = _hit(rng, (d <= 12) & (d != m), rates.dob_day_month_swap, counts, "dob_day_month_swap")
    m[hit], d[hit] = d[hit].copy(), m[hit].copy()
    days = _from_ymd(y, m, d)

    hit = _hit(rng, np.ones(len(days), dtype=bool), rates.dob_off_by_one, counts, "dob_off_by_one")
    days[hit] += np.where(rng.random(len(hit)) < 0.5, -1, 1)

    y, m, d = _ymd(days)
    hit = _hit(rng, np.ones(len(days), dtype=bool), rates.dob_year_typo, counts, "dob_year_typo")
    yy = y[hit]
    transposed = (yy // 100) * 100 + (yy % 10) * 10 + (yy // 10) % 10
    plausible = (transposed != yy) & (transposed >= 1940) & (transposed <= 2010)
    step = np.where(rng.random(len(hit)) < 0.5, -1, 1)
    y[hit] = np.where(plausible & (rng.random(len(hit)) < 0.4), transposed, yy + step)
    ids.birth_day = _from_ymd(y, m, d)


def corrupt_other(
    ids: Identifiers,
    rates: ErrorRates,
    rng: np.random.Generator,
    counts: Counts,
    *,
    has_nino: bool,
    has_nhs: bool,
) -> None:
    """House moves (another postcode) and missing NINo / NHS numbers, in place."""
    n = len(ids.postcode)
    hit = _hit(rng, np.ones(n, dtype=bool), rates.house_move, counts, "house_move")
    # Most moves stay within the local authority; some cross to a neighbouring one.
    new_la = np.where(rng.random(len(hit)) < 0.8, ids.la[hit], rng.integers(0, 7, len(hit)))
    ids.postcode[hit] = random_postcodes(rng, new_la)
    if has_nino:
        hit = _hit(rng, np.ones(n, dtype=bool), rates.missing_nino, counts, "missing_nino")
        ids.nino[hit] = None
    if has_nhs:
        hit = _hit(rng, np.ones(n, dtype=bool), rates.missing_nhs, counts, "missing_nhs")
        ids.nhs_number[hit] = None
