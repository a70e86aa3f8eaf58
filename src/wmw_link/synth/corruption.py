"""Realistic disagreements between sources: typos, variants, swapped names, date slips, moves.

Each error hits a record with its configured probability among the records where it can
happen (see :class:`~wmw_link.synth.rates.ErrorRates`). Most errors are vectorised; the few
that edit strings character by character (typos, variants) loop only over the records hit.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, fields, replace

import numpy as np

from wmw_link.synth.names import NamePools
from wmw_link.synth.population import People, random_postcodes
from wmw_link.synth.profiles import AGE_BANDS, Profile
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

    person_id: np.ndarray  # never written: makes per-person choices (a new surname) stable
    ethnicity: np.ndarray  # never written: for errors that hit some groups more
    age: np.ndarray  # never written: true age on the reference date, likewise
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

# Surnames that are religious or honorific rather than a family name: records often carry the
# family name (Sikh) or the husband's or father's name (Muslim women) instead.
CONVENTION_SURNAMES = frozenset({"Singh", "Kaur", "Begum", "Bibi", "Khatun"})


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
    rng: np.random.Generator,
    eligible: np.ndarray,
    rate: float | np.ndarray,
    counts: Counts,
    kind: str,
    *,
    draw_when_off: bool = True,
) -> np.ndarray:
    """Indices hit by error ``kind``; ``rate`` is one rate or one per record.

    Errors added with the hard profile pass ``draw_when_off=False``: while their rate is 0 they
    take nothing from the random stream, so standard extracts keep their bytes.
    """
    if isinstance(rate, np.ndarray):  # a group with factor 0 cannot have this error
        eligible = eligible & (rate > 0)
    c = counts.setdefault(kind, {"eligible": 0, "applied": 0})
    c["eligible"] += int(eligible.sum())
    if not draw_when_off and not np.any(rate):
        return np.flatnonzero(np.zeros(len(eligible), dtype=bool))
    hit = eligible & (rng.random(len(eligible)) < rate)
    c["applied"] += int(hit.sum())
    return np.flatnonzero(hit)


def _rate(
    rates: ErrorRates, kind: str, ids: Identifiers, profile: Profile | None
) -> float | np.ndarray:
    """The rate of ``kind`` per record: the rate times its group's and age band's factors."""
    base = float(getattr(rates, kind))
    by_group = profile.group_factors.get(kind) if profile else None
    by_age = profile.age_factors.get(kind) if profile else None
    if not by_group and not by_age:
        return base
    f = np.ones(len(ids.ethnicity))
    if by_group:
        uniq, inv = np.unique(ids.ethnicity.astype(str), return_inverse=True)
        f *= np.array([by_group.get(g, 1.0) for g in uniq])[inv]
    if by_age:
        band = np.searchsorted([hi for _, hi in AGE_BANDS], ids.age)  # 16-24 -> 0, ...
        labels = [f"{lo}-{hi}" for lo, hi in AGE_BANDS]
        f *= np.array([by_age.get(label, 1.0) for label in labels] + [1.0])[band]
    return np.minimum(1.0, base * f)


def _stable_unit(person_id: np.ndarray, salt: int) -> np.ndarray:
    """A number in [0, 1) fixed per person (and salt): every record of a person agrees."""
    x = (person_id.astype(np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _other_surname(ids: Identifiers, rows: np.ndarray, pools: NamePools, salt: int) -> np.ndarray:
    """A surname from each person's own group, the same for every record of that person."""
    out = np.empty(len(rows), dtype=object)
    for tries in range(8):
        u = _stable_unit(ids.person_id[rows], salt + tries)
        for g in np.unique(ids.ethnicity[rows].astype(str)):
            sel = np.flatnonzero((ids.ethnicity[rows] == g) & (out == None))  # noqa: E711
            if len(sel) == 0:
                continue
            pool = pools.surnames["white_british" if g == "mixed" else g]
            pick = pool.names[np.minimum(np.searchsorted(pool.cum, u[sel]), len(pool.names) - 1)]
            ok = (pick != ids.surname[rows][sel]) & ~np.isin(pick, list(CONVENTION_SURNAMES))
            out[sel[ok]] = pick[ok]
    return np.where(out == None, ids.surname[rows], out)  # noqa: E711


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


# Letters NFKD does not decompose, as an English keyboard writes them.
_ASCII_EXTRA = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ø": "o", "ß": "ss"})


def ascii_fold(name: str) -> str:
    """``name`` without diacritics (Michał -> Michal, Ștefan -> Stefan)."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_ASCII_EXTRA))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _non_ascii(values: np.ndarray) -> np.ndarray:
    return np.array([not str(v).isascii() for v in values], dtype=bool)


def _respell(
    values: np.ndarray, table: dict[str, tuple[str, ...]], rng: np.random.Generator
) -> np.ndarray:
    """Each value in another spelling from ``table``, else without its diacritics."""
    out = values.copy()
    for i, v in enumerate(values):
        options = table.get(v)
        out[i] = options[int(rng.integers(0, len(options)))] if options else ascii_fold(v)
    return out


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
    profile: Profile | None = None,
) -> None:
    """Apply the name errors in place (marriage, conventions, variants, typos, fold, swap)."""
    n = len(ids.forename)
    everyone = np.ones(n, dtype=bool)
    changed = (ids.birth_surname != None) & (ids.birth_surname != ids.surname)  # noqa: E711
    hit = _hit(rng, changed, rates.marriage_surname, counts, "marriage_surname")
    ids.surname[hit] = ids.birth_surname[hit]

    # A surname from another marriage (or a divorce) the household does not show.
    women = ids.sex == "F"
    rate = _rate(rates, "surname_change", ids, profile)
    hit = _hit(rng, women, rate, counts, "surname_change", draw_when_off=False)
    ids.surname[hit] = _other_surname(ids, hit, pools, salt=1)

    dbl = np.char.find(ids.surname.astype(str), "-") > 0
    hit = _hit(rng, dbl, rates.double_barrel_partial, counts, "double_barrel_partial")
    parts = [s.split("-") for s in ids.surname[hit]]
    pick = rng.integers(0, 2, len(hit))
    ids.surname[hit] = np.array([p[k] for p, k in zip(parts, pick, strict=True)], dtype=object)

    conv = np.isin(ids.surname.astype(str), list(CONVENTION_SURNAMES))
    rate = _rate(rates, "surname_convention", ids, profile)
    hit = _hit(rng, conv, rate, counts, "surname_convention", draw_when_off=False)
    ids.surname[hit] = _other_surname(ids, hit, pools, salt=2)

    fore_t = _in_table(ids.forename, pools.transliterations)
    sur_t = _in_table(ids.surname, pools.transliterations)
    rate = _rate(rates, "transliteration", ids, profile)
    hit = _hit(rng, fore_t | sur_t, rate, counts, "transliteration")
    h_f = hit[fore_t[hit]]
    h_s = hit[sur_t[hit]]
    ids.forename[h_f] = _variant(ids.forename[h_f], pools.transliterations, rng)
    ids.surname[h_s] = _variant(ids.surname[h_s], pools.transliterations, rng)

    rate = _rate(rates, "nickname", ids, profile)
    hit = _hit(rng, _in_table(ids.forename, pools.nicknames), rate, counts, "nickname")
    ids.forename[hit] = _variant(ids.forename[hit], pools.nicknames, rng)

    fore_s = _in_table(ids.forename, pools.spellings) | _non_ascii(ids.forename)
    sur_s = _in_table(ids.surname, pools.spellings) | _non_ascii(ids.surname)
    rate = _rate(rates, "spelling_variant", ids, profile)
    hit = _hit(rng, fore_s | sur_s, rate, counts, "spelling_variant", draw_when_off=False)
    h_f, h_s = hit[fore_s[hit]], hit[sur_s[hit]]
    ids.forename[h_f] = _respell(ids.forename[h_f], pools.spellings, rng)
    ids.surname[h_s] = _respell(ids.surname[h_s], pools.spellings, rng)

    for attr in ("forename", "surname"):
        values = getattr(ids, attr)
        rate = _rate(rates, f"typo_{attr}", ids, profile)
        hit = _hit(rng, everyone, rate, counts, f"typo_{attr}")
        values[hit] = np.array([typo(v, rng) for v in values[hit]], dtype=object)

    # Known by the middle name: it becomes the forename (and is no longer a middle name).
    has_mid = ids.middle_name != None  # noqa: E711
    rate = _rate(rates, "middle_name_as_forename", ids, profile)
    hit = _hit(rng, has_mid, rate, counts, "middle_name_as_forename", draw_when_off=False)
    ids.forename[hit], ids.middle_name[hit] = ids.middle_name[hit], None

    if fold_middle:
        has_mid = ids.middle_name != None  # noqa: E711
        rate = _rate(rates, "middle_name_folded", ids, profile)
        hit = _hit(rng, has_mid, rate, counts, "middle_name_folded")
        ids.forename[hit] = ids.forename[hit] + " " + ids.middle_name[hit]

    rate = _rate(rates, "swap_names", ids, profile)
    hit = _hit(rng, everyone, rate, counts, "swap_names")
    ids.forename[hit], ids.surname[hit] = ids.surname[hit].copy(), ids.forename[hit].copy()


def nino_typo(nino: str, rng: np.random.Generator) -> str:
    """One keying slip in the six digits of ``AB123456C``: a digit changed or two swapped."""
    i = 2 + int(rng.integers(0, 6))
    digits = list(nino)
    if i < 7 and digits[i] != digits[i + 1] and rng.random() < 0.5:
        digits[i], digits[i + 1] = digits[i + 1], digits[i]
    else:
        digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
    return "".join(digits)


def _placeholder_ninos(ids: Identifiers, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dummy numbers payrolls send (shared by many people) or a temporary TN reference."""
    y, m, d = _ymd(ids.birth_day[rows])
    tn = np.array(
        [
            f"TN{dd:02d}{mm:02d}{yy % 100:02d}{s}"
            for dd, mm, yy, s in zip(d, m, y, ids.sex[rows], strict=True)
        ],
        dtype=object,
    )
    kind = rng.integers(0, 3, len(rows))
    return np.where(kind == 0, "AB123456C", np.where(kind == 1, "AA111111A", tn)).astype(object)


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
    ids: Identifiers,
    rates: ErrorRates,
    rng: np.random.Generator,
    counts: Counts,
    *,
    profile: Profile | None = None,
) -> None:
    """Day/month swaps, day slips and typos, year typos and placeholder dates, in place."""
    n = len(ids.birth_day)
    everyone = np.ones(n, dtype=bool)
    y, m, d = _ymd(ids.birth_day)
    rate = _rate(rates, "dob_day_month_swap", ids, profile)
    hit = _hit(rng, (d <= 12) & (d != m), rate, counts, "dob_day_month_swap")
    m[hit], d[hit] = d[hit].copy(), m[hit].copy()

    # A mistyped day: its two digits transposed when that is another valid day, else any
    # other day of the month (a keying slip in one field).
    rate = _rate(rates, "dob_day_typo", ids, profile)
    hit = _hit(rng, everyone, rate, counts, "dob_day_typo", draw_when_off=False)
    dd = d[hit]
    flipped = (dd % 10) * 10 + dd // 10
    other = 1 + (dd - 1 + rng.integers(1, 28, len(hit))) % 28
    d[hit] = np.where((flipped != dd) & (flipped >= 1) & (flipped <= 28), flipped, other)
    days = _from_ymd(y, m, d)

    rate = _rate(rates, "dob_off_by_one", ids, profile)
    hit = _hit(rng, everyone, rate, counts, "dob_off_by_one")
    days[hit] += np.where(rng.random(len(hit)) < 0.5, -1, 1)

    y, m, d = _ymd(days)
    rate = _rate(rates, "dob_year_typo", ids, profile)
    hit = _hit(rng, everyone, rate, counts, "dob_year_typo")
    yy = y[hit]
    transposed = (yy // 100) * 100 + (yy % 10) * 10 + (yy // 10) % 10
    plausible = (transposed != yy) & (transposed >= 1940) & (transposed <= 2010)
    step = np.where(rng.random(len(hit)) < 0.5, -1, 1)
    y[hit] = np.where(plausible & (rng.random(len(hit)) < 0.4), transposed, yy + step)

    # Placeholder dates: only the year is known, the day recorded as 1 January.
    rate = _rate(rates, "dob_first_of_january", ids, profile)
    not_jan1 = (m != 1) | (d != 1)
    hit = _hit(rng, not_jan1, rate, counts, "dob_first_of_january", draw_when_off=False)
    m[hit], d[hit] = 1, 1
    ids.birth_day = _from_ymd(y, m, d)


def corrupt_other(
    ids: Identifiers,
    rates: ErrorRates,
    rng: np.random.Generator,
    counts: Counts,
    *,
    has_nino: bool,
    has_nhs: bool,
    profile: Profile | None = None,
) -> None:
    """House moves (another postcode), missing NINo / NHS numbers and sex slips, in place."""
    n = len(ids.postcode)
    everyone = np.ones(n, dtype=bool)
    hit = _hit(rng, everyone, _rate(rates, "house_move", ids, profile), counts, "house_move")
    # Most moves stay within the local authority; some cross to a neighbouring one.
    new_la = np.where(rng.random(len(hit)) < 0.8, ids.la[hit], rng.integers(0, 7, len(hit)))
    ids.postcode[hit] = random_postcodes(rng, new_la)
    if has_nino:
        rate = _rate(rates, "missing_nino", ids, profile)
        hit = _hit(rng, everyone, rate, counts, "missing_nino")
        ids.nino[hit] = None
        present = ids.nino != None  # noqa: E711
        rate = _rate(rates, "nino_typo", ids, profile)
        hit = _hit(rng, present, rate, counts, "nino_typo", draw_when_off=False)
        ids.nino[hit] = np.array([nino_typo(v, rng) for v in ids.nino[hit]], dtype=object)
        present = ids.nino != None  # noqa: E711
        rate = _rate(rates, "nino_placeholder", ids, profile)
        hit = _hit(rng, present, rate, counts, "nino_placeholder", draw_when_off=False)
        ids.nino[hit] = _placeholder_ninos(ids, hit, rng)
    if has_nhs:
        rate = _rate(rates, "missing_nhs", ids, profile)
        hit = _hit(rng, everyone, rate, counts, "missing_nhs")
        ids.nhs_number[hit] = None
    rate = _rate(rates, "sex_flip", ids, profile)
    hit = _hit(rng, everyone, rate, counts, "sex_flip", draw_when_off=False)
    ids.sex[hit] = np.where(ids.sex[hit] == "M", "F", "M")
