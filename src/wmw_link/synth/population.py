"""Working-age residents in households: who they are, where they live, their health.

Everything is drawn as numpy arrays, one element per person, with no per-person Python loop.
A chunk of people is generated from its own random stream, so a run is the concatenation of
chunks and the result depends only on the seed (and the fixed chunk size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wmw_link.synth import regions
from wmw_link.synth.names import NamePools
from wmw_link.synth.profiles import PopulationRates

REFERENCE_DATE = np.datetime64("2024-01-01")  # ages are 16-64 on this day
REF_DAY = int(REFERENCE_DATE.astype("datetime64[D]").astype(np.int64))
_MAX_AGE = 64.99  # oldest age on the reference date, in years

HOUSEHOLD_SIZE_P = np.array([0.30, 0.31, 0.19, 0.13, 0.07])  # 1..5 working-age members
HOUSEHOLD_TYPE_P = np.array([0.62, 0.25, 0.13])  # couple family, lone parent, sharers
# Twins, juniors, double-barrelled families and partners' surnames: see PopulationRates
# (part of the synthetic profile).
MIDDLE_NAME_P = {"white_british": 0.55, "black_caribbean": 0.45, "black_african": 0.45}
DISABLED_P = 0.21
LTC_NOT_DISABLED_P = 0.13
CONDITION_P_DISABLED = np.array([0.45, 0.35, 0.20])  # mental_health, musculoskeletal, other
CONDITIONS = np.array(["mental_health", "musculoskeletal", "other"], dtype=object)

_UNIT_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
_STREETS = np.array(
    """Church Road,Station Road,High Street,Victoria Road,Park Road,Green Lane,Manor Road,
    Stratford Road,Coventry Road,Soho Road,Lichfield Road,Bristol Road,Alcester Road,Hagley Road,
    Warwick Road,Walsall Road,Dudley Road,Wolverhampton Road,Birmingham Road,Albert Road,
    Grange Road,Mill Lane,School Lane,Kingsway,Queens Road,Oak Tree Lane,Chester Road,
    Washwood Heath Road,Ladypool Road,Foleshill Road,Holyhead Road,Tettenhall Road,Cannock Road,
    Stafford Street,Bloxwich Road,Halesowen Road,Oldbury Road,Wednesbury Road,Tamworth Road""".replace(
        "\n", ""
    ).split(","),
    dtype=object,
)
_STREETS = np.array([s.strip() for s in _STREETS], dtype=object)


@dataclass
class People:
    """One chunk of people; every attribute is an array with one element per person."""

    person_id: np.ndarray
    household_id: np.ndarray
    household_role: np.ndarray  # head, partner, child, sharer
    la: np.ndarray  # index into regions.LAS
    ethnicity: np.ndarray  # detailed group (object)
    sex: np.ndarray  # "M" / "F"
    birth_day: np.ndarray  # days since 1970-01-01
    forename: np.ndarray
    middle_name: np.ndarray  # None when absent
    surname: np.ndarray
    birth_surname: np.ndarray  # None unless the surname changed on marriage
    postcode: np.ndarray  # "B23 4XY"
    address_line: np.ndarray
    twin: np.ndarray  # bool: has a twin in the household
    junior: np.ndarray  # bool: shares his father's forename
    disabled: np.ndarray
    condition: np.ndarray  # None, or one of CONDITIONS
    nino: np.ndarray
    nhs_number: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.person_id)

    @property
    def age(self) -> np.ndarray:
        """Whole years of age on the reference date."""
        born = self.birth_day.astype("datetime64[D]")
        ref_y = REFERENCE_DATE.astype("datetime64[Y]").astype(int) + 1970
        y = born.astype("datetime64[Y]").astype(int) + 1970
        doy_born = (born - born.astype("datetime64[Y]")).astype(int)
        doy_ref = int((REFERENCE_DATE - REFERENCE_DATE.astype("datetime64[Y]")).astype(int))
        return ref_y - y - (doy_born > doy_ref)


def random_postcodes(rng: np.random.Generator, la: np.ndarray) -> np.ndarray:
    """A random postcode unit in a district of each person's LA (``"B23 4XY"``)."""
    districts = regions.postcode_districts()
    out = np.empty(len(la), dtype=object)
    for i, name in enumerate(regions.LAS):
        sel = np.flatnonzero(la == i)
        if len(sel) == 0:
            continue
        d = np.array(districts[name], dtype=object)[rng.integers(0, len(districts[name]), len(sel))]
        sector = rng.integers(0, 10, len(sel)).astype(str).astype(object)
        unit = _UNIT_LETTERS[rng.integers(0, 20, len(sel))].astype(object) + _UNIT_LETTERS[
            rng.integers(0, 20, len(sel))
        ].astype(object)
        out[sel] = d + " " + sector + unit
    return out


def _households(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Household index, position in household and household type for ``n`` people."""
    sizes = rng.choice(np.arange(1, 6), size=n // 2 + 8, p=HOUSEHOLD_SIZE_P)
    cum = np.cumsum(sizes)
    n_hh = int(np.searchsorted(cum, n)) + 1
    sizes = sizes[:n_hh].copy()
    sizes[-1] -= cum[n_hh - 1] - n  # trim the last household to fit exactly
    hh = np.repeat(np.arange(n_hh), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(n) - starts[hh]
    htype = rng.choice(3, size=n_hh, p=HOUSEHOLD_TYPE_P)
    htype[sizes == 1] = 2  # one-person households are "sharers" of one
    return hh, pos, htype


def make_people(
    rng: np.random.Generator,
    n: int,
    first_id: int,
    pools: NamePools,
    id_seeds: tuple[np.random.SeedSequence, np.random.SeedSequence],
    hh_offset: int,
    rates: PopulationRates | None = None,
) -> People:
    """Draw ``n`` people in households, with ids starting at ``first_id``.

    Args:
        rng: this chunk's random stream.
        n: number of people.
        first_id: person id of the first person (ids are consecutive).
        pools: name pools.
        id_seeds: seeds of the NINo and NHS number bijections, the same for every chunk of a
            run so that numbers stay unique across chunks.
        hh_offset: household id of the chunk's first household.
        rates: twin, junior, double-barrel and surname rates (the standard profile's if None).
    """
    from wmw_link.synth.ids import make_nhs_numbers, make_ninos

    pr = rates or PopulationRates()
    hh, pos, htype_hh = _households(rng, n)
    n_hh = int(hh.max()) + 1
    htype = htype_hh[hh]
    role = np.where(
        pos == 0,
        "head",
        np.where(
            htype == 2,
            "sharer",
            np.where((htype == 0) & (pos == 1), "partner", "child"),
        ),
    ).astype(object)
    is_head = pos == 0
    head_idx = np.flatnonzero(is_head)[hh]  # index of each person's household head

    # Where they live: LA weighted by population, one postcode and address per household.
    la_hh = rng.choice(
        len(regions.LAS), size=n_hh, p=regions.POPULATION_K / regions.POPULATION_K.sum()
    )
    la = la_hh[hh]
    postcode = random_postcodes(rng, la_hh)[hh]
    house_no = rng.integers(1, 240, size=n_hh).astype(str).astype(object)
    address = (house_no + " " + _STREETS[rng.integers(0, len(_STREETS), n_hh)])[hh]

    # Ethnicity: household-level, partners sometimes differ, their children are then "mixed";
    # sharers are unrelated and drawn on their own.
    groups = np.array(regions.ETHNIC_GROUPS, dtype=object)
    cum_mix = np.cumsum(regions.ETHNIC_MIX, axis=1)

    def draw_group(la_idx: np.ndarray) -> np.ndarray:
        u = rng.random(len(la_idx))
        return groups[np.minimum((u[:, None] > cum_mix[la_idx]).sum(axis=1), len(groups) - 1)]

    eth = draw_group(la)[head_idx]
    own = draw_group(la)
    sharer = role == "sharer"
    eth = np.where(sharer, own, eth)
    partner = role == "partner"
    mixed_couple_hh = np.zeros(n_hh, dtype=bool)
    diff = partner & (rng.random(n) < 0.08)
    eth = np.where(diff, own, eth)
    mixed_couple_hh[hh[diff & (own != eth[head_idx])]] = True
    child = role == "child"
    eth = np.where(child & mixed_couple_hh[hh], "mixed", eth).astype(object)

    # Sex: partners mostly of the other sex.
    sex = np.where(rng.random(n) < 0.5, "F", "M").astype(object)
    opposite = np.where(sex[head_idx] == "F", "M", "F")
    sex = np.where(partner & (rng.random(n) < 0.96), opposite, sex).astype(object)

    # Ages on the reference date: families need a parent old enough for adult children.
    fam_hh = (htype_hh != 2) & (np.bincount(hh, minlength=n_hh) >= 2)
    age_single = 16 + 48 * rng.beta(1.3, 1.7, size=n)
    age_parent = 37 + 27 * rng.beta(1.6, 1.4, size=n)
    age = np.where(fam_hh[hh] & is_head, age_parent, age_single)
    head_age = age[head_idx]
    # Partners' ages reflected at the edges of working age, not clipped: clipping put every
    # partner drawn past 65 on one birth date (0.45% of all people born on 7 February 1959),
    # a pile-up that chained different people's name | date tokens at a million people.
    p_age = head_age + rng.normal(0, 3.5, n)
    p_age = np.where(p_age > _MAX_AGE, 2 * _MAX_AGE - p_age, p_age)
    p_age = np.clip(np.where(p_age < 18, 36 - p_age, p_age), 18, _MAX_AGE)
    age = np.where(partner, p_age, age)
    child_max = np.clip(head_age - 18, 16.01, 48)
    age = np.where(child, 16 + (child_max - 16) * rng.beta(1.1, 1.6, size=n), age)
    birth_day = (REF_DAY - np.floor(age * 365.25)).astype(np.int64)

    # Twins: a child born the same day as the previous child of the household.
    prev_child = np.concatenate([[False], child[:-1] & (hh[:-1] == hh[1:])])
    twin_b = child & prev_child & (rng.random(n) < pr.twin_rate)
    prev_idx = np.maximum(np.arange(n) - 1, 0)
    birth_day = np.where(twin_b, birth_day[prev_idx], birth_day)
    twin = twin_b.copy()
    twin[np.flatnonzero(twin_b) - 1] = True

    # Names.
    forename = np.empty(n, dtype=object)
    surname = np.empty(n, dtype=object)
    middle = np.full(n, None, dtype=object)
    for g in regions.ETHNIC_GROUPS:
        sel_g = eth == g
        for s in ("M", "F"):
            sel = np.flatnonzero(sel_g & (sex == s))
            if len(sel):
                forename[sel] = pools.forename(g, s, rng, len(sel))
                has_mid = rng.random(len(sel)) < MIDDLE_NAME_P.get(g, 0.2)
                mids = pools.forename(g, s, rng, len(sel))
                mids = np.where(mids == forename[sel], None, mids)
                middle[sel] = np.where(has_mid, mids, None)
        sel = np.flatnonzero(sel_g)
        if len(sel):
            surname[sel] = pools.surname(g, rng, len(sel))
    # Twins get a different forename from their twin when the draw collides.
    same = twin_b & (forename == forename[prev_idx])
    if same.any():
        redraw = pools.forename("white_british", "F", rng, int(same.sum()))
        forename[same] = np.where(sex[same] == "F", redraw, redraw + "a")

    # Surnames in families: children take the head's, partners mostly do (keeping a maiden
    # name), some families are double-barrelled (head's + partner's own surname).
    own_surname = surname.copy()
    head_sur = surname[head_idx]
    birth_surname = np.full(n, None, dtype=object)
    took = partner & (rng.random(n) < pr.took_partner_surname) & (own_surname != head_sur)
    birth_surname[took] = own_surname[took]
    surname = np.where(took, head_sur, surname)
    lone_other = (
        (htype == 1) & child & (rng.random(n) < 0.3)
    )  # children with the other parent's name
    surname = np.where(child & ~lone_other, head_sur, surname).astype(object)
    partner_of_hh = np.full(n_hh, -1)
    partner_of_hh[hh[partner]] = np.flatnonzero(partner)
    dbl_hh = (partner_of_hh >= 0) & (rng.random(n_hh) < pr.double_barrel_rate)
    p_idx = partner_of_hh[hh]
    dbl = dbl_hh[hh] & (is_head | partner | (child & ~lone_other)) & (p_idx >= 0)
    partner_own = own_surname[np.maximum(p_idx, 0)]
    dbl &= partner_own != head_sur
    surname = np.where(dbl, head_sur + "-" + partner_own, surname).astype(object)
    birth_surname = np.where(dbl & partner & (birth_surname == None), own_surname, birth_surname)  # noqa: E711

    # Juniors: a son sharing his father's forename (father = head or partner, male).
    father_hh = np.full(n_hh, -1)
    male_parent = (is_head | partner) & (sex == "M") & (htype != 2)
    father_hh[hh[male_parent]] = np.flatnonzero(male_parent)
    f_idx = father_hh[hh]
    junior = child & (sex == "M") & (f_idx >= 0) & (rng.random(n) < pr.junior_rate)
    junior &= ~lone_other
    forename = np.where(junior, forename[np.maximum(f_idx, 0)], forename).astype(object)

    # Health: disability and long-term conditions.
    disabled = rng.random(n) < DISABLED_P * (0.6 + 0.9 * (age - 16) / 48)
    ltc = ~disabled & (rng.random(n) < LTC_NOT_DISABLED_P)
    cond_idx = np.searchsorted(np.cumsum(CONDITION_P_DISABLED), rng.random(n), side="right")
    condition = np.where(disabled | ltc, CONDITIONS[np.minimum(cond_idx, 2)], None).astype(object)

    pid = np.arange(first_id, first_id + n, dtype=np.int64)
    nino = make_ninos(pid, rng, np.random.default_rng(id_seeds[0]))
    nhs = make_nhs_numbers(pid, rng, np.random.default_rng(id_seeds[1]))
    return People(
        person_id=pid,
        household_id=(hh + hh_offset).astype(np.int64),
        household_role=role,
        la=la.astype(np.int8),
        ethnicity=eth,
        sex=sex,
        birth_day=birth_day,
        forename=forename,
        middle_name=middle,
        surname=surname,
        birth_surname=birth_surname,
        postcode=postcode,
        address_line=address,
        twin=twin,
        junior=junior,
        disabled=disabled,
        condition=condition,
        nino=nino.astype(object),
        nhs_number=nhs.astype(object),
    )
