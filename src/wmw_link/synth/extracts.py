"""Turn events plus (corrupted) identifiers into each partner's extract, in its own layout.

Column names and formats follow ``agreements/wmw-outcomes.yaml`` exactly (a test checks every
column the agreement names against these extracts). Each extract also carries a few sensitive
columns the agreement does not name (address, phone, email, tax code) so that data
minimisation at tokenise time can be tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wmw_link.synth import events as ev
from wmw_link.synth import formats as fmt
from wmw_link.synth import regions
from wmw_link.synth.corruption import (
    Counts,
    Identifiers,
    corrupt_dates,
    corrupt_names,
    corrupt_other,
    duplicate_rows,
)
from wmw_link.synth.labour import Labour
from wmw_link.synth.names import NamePools
from wmw_link.synth.population import People
from wmw_link.synth.profiles import Profile
from wmw_link.synth.rates import ErrorRates
from wmw_link.synth.stats import Tally

HUB_PREFIX = {
    "Birmingham": "BHM",
    "Coventry": "COV",
    "Dudley": "DUD",
    "Sandwell": "SAN",
    "Solihull": "SOL",
    "Walsall": "WAL",
    "Wolverhampton": "WOL",
}
HUB_DATASETS = tuple(f"hub_{regions.HUB_SLUG[la]}" for la in regions.LAS)
DATASETS = ("hmrc_rti", "dwp_claims", "nhs_referrals", "skills_enrolments", *HUB_DATASETS)

# How each partner writes its fields (documented in synth.json and docs/contracts.md).
FORMATS: dict[str, dict[str, str]] = {
    "hmrc_rti": {
        "file": "hmrc_rti.parquet (all columns strings)",
        "names": "upper case; FORENAMES holds all forenames",
        "dates": "%Y-%m-%d",
        "postcode": "upper case with a space",
        "nino": "AB123456C",
        "sex": "M / F",
        "money": "pounds with two decimals",
    },
    "dwp_claims": {
        "names": "as registered (title case)",
        "dates": "%d/%m/%Y",
        "postcode": "upper case, no space",
        "nino": "AB 12 34 56 C",
        "sex": "M / F",
    },
    "nhs_referrals": {
        "names": "GIVEN_NAME title case, FAMILY_NAME upper case",
        "dates": "%Y%m%d",
        "postcode": "upper case with a space",
        "nhs_number": "943 476 5919",
        "sex": "1 = male, 2 = female (NHS person gender code)",
    },
    "skills_enrolments": {
        "names": "FullName = forename(s) and surname, title case",
        "dates": "%d-%b-%Y (English month abbreviations)",
        "postcode": "upper case, 20% without the space",
        "nino": "AB123456C",
        "sex": "M / F",
        "boolean": "Achieved is Y / N, empty while in learning",
    },
    "hub_*": {
        "names": "as typed: mostly title case, some lower or upper case",
        "dates": "%d/%m/%Y",
        "postcode": "mixed: with or without the space, some lower case",
        "nino": "mixed: AB123456C, AB 12 34 56 C, lower case",
        "sex": "gender as self-reported: Female / Male / Other / Prefer not to say",
    },
}


@dataclass
class Extract:
    """One dataset's rows for one chunk, and who each row really is."""

    table: pa.Table
    person_id: np.ndarray


def _prepare(
    events: ev.Events,
    people: People,
    rates: ErrorRates,
    rng: np.random.Generator,
    pools: NamePools,
    counts: Counts,
    *,
    fold_middle: bool,
    has_nino: bool,
    has_nhs: bool,
    profile: Profile | None = None,
) -> tuple[ev.Events, Identifiers]:
    idx = duplicate_rows(len(events), rates.duplicate, rng, counts)
    events = events.take(idx)
    ids = Identifiers.of(people, events.person)
    corrupt_names(ids, rates, rng, pools, counts, fold_middle=fold_middle, profile=profile)
    corrupt_dates(ids, rates, rng, counts, profile=profile)
    corrupt_other(ids, rates, rng, counts, has_nino=has_nino, has_nhs=has_nhs, profile=profile)
    perm = rng.permutation(len(events))  # row order says nothing about who is who
    return events.take(perm), ids.take(perm)


def _forenames_all(ids: Identifiers) -> np.ndarray:
    has_mid = ids.middle_name != None  # noqa: E711
    out = ids.forename.copy()
    out[has_mid] = out[has_mid] + " " + ids.middle_name[has_mid]
    return out


def _phone(person_id: np.ndarray) -> pa.Array:
    digits = (person_id * 2654435761 + 12345) % 1_000_000_000
    return fmt.padded("07", digits, 9)


def _sex(ids: Identifiers, male: str, female: str) -> pa.Array:
    return fmt.strings(np.where(ids.sex == "M", male, female).astype(object))


def hmrc(people: People, events: ev.Events, ids: Identifiers) -> pa.Table:
    """HMRC RTI employments: upper-case names, ISO dates, pay in pounds."""
    pid = people.person_id[events.person]
    return pa.table(
        {
            "NINO": fmt.strings(ids.nino),
            "FORENAMES": fmt.upper(fmt.strings(_forenames_all(ids))),
            "SURNAME": fmt.upper(fmt.strings(ids.surname)),
            "DATE_OF_BIRTH": fmt.dates(ids.birth_day, "%Y-%m-%d"),
            "POSTCODE": fmt.strings(ids.postcode),
            "GENDER": _sex(ids, "M", "F"),
            "PAYE_REF": fmt.strings(events.cols["employer_ref"]),
            "EMPLOYMENT_START": fmt.dates(events.cols["start_date"], "%Y-%m-%d"),
            "EMPLOYMENT_END": fmt.dates(events.cols["end_date"], "%Y-%m-%d"),
            "MONTHLY_PAY": fmt.pounds(events.cols["monthly_pay"]),
            # Not in the agreement: must never leave HMRC.
            "ADDRESS_LINE_1": fmt.upper(fmt.strings(people.address_line[events.person])),
            "TAX_CODE": fmt.strings(np.where(pid % 7 == 0, "BR", "1257L").astype(object)),
        }
    )


def dwp(people: People, events: ev.Events, ids: Identifiers) -> pa.Table:
    """DWP claims: day-first dates, spaced NINo, postcode without its space."""
    nino = fmt.strings(ids.nino)
    return pa.table(
        {
            "nino": fmt.spaced_nino(nino),
            "first_name": fmt.strings(ids.forename),
            "surname": fmt.strings(ids.surname),
            "dob": fmt.dates(ids.birth_day, "%d/%m/%Y"),
            "postcode": fmt.no_space(fmt.strings(ids.postcode)),
            "gender": _sex(ids, "M", "F"),
            "benefit": fmt.strings(events.cols["benefit"]),
            "regime": fmt.strings(events.cols["regime"]),
            "start_date": fmt.dates(events.cols["start_date"], "%d/%m/%Y"),
            "end_date": fmt.dates(events.cols["end_date"], "%d/%m/%Y"),
            "phone": _phone(people.person_id[events.person]),  # not in the agreement
        }
    )


def nhs(people: People, events: ev.Events, ids: Identifiers) -> pa.Table:
    """NHS referrals: compact dates, spaced NHS number, sex as the NHS 1/2 code."""
    return pa.table(
        {
            "NHS_NUMBER": fmt.spaced_nhs(fmt.strings(ids.nhs_number)),
            "GIVEN_NAME": fmt.strings(ids.forename),
            "FAMILY_NAME": fmt.upper(fmt.strings(ids.surname)),
            "BIRTH_DATE": fmt.dates(ids.birth_day, "%Y%m%d"),
            "POSTCODE": fmt.strings(ids.postcode),
            "SEX": _sex(ids, "1", "2"),
            "SERVICE": fmt.strings(events.cols["service"]),
            "REFERRAL_DATE": fmt.dates(events.cols["referral_date"], "%Y%m%d"),
            "CONDITION_CATEGORY": fmt.strings(events.cols["condition_category"]),
            "GP_PRACTICE": fmt.strings(events.cols["gp_practice"]),
            "MOBILE": _phone(people.person_id[events.person]),  # not in the agreement
        }
    )


def skills(
    people: People, events: ev.Events, ids: Identifiers, rng: np.random.Generator
) -> pa.Table:
    """Skills enrolments: one full-name field, ``05-Mar-1987`` dates, Y/N achievement."""
    n = len(events)
    postcode = fmt.strings(ids.postcode)
    postcode = fmt.choose(rng.random(n) < 0.2, fmt.no_space(postcode), postcode)
    return pa.table(
        {
            "NINumber": fmt.strings(ids.nino),
            "FullName": fmt.strings(ids.forename + " " + ids.surname),
            "DateOfBirth": fmt.dates(ids.birth_day, "%d-%b-%Y"),
            "Postcode": postcode,
            "Sex": _sex(ids, "M", "F"),
            "CourseLevel": fmt.strings(events.cols["course_level"]),
            "LearnStartDate": fmt.dates(events.cols["start_date"], "%d-%b-%Y"),
            "LearnEndDate": fmt.dates(events.cols["end_date"], "%d-%b-%Y"),
            "Achieved": fmt.strings(events.cols["achieved"]),
            "NEETStatus": fmt.strings(events.cols["neet_status"]),
            "TelNo": _phone(people.person_id[events.person]),  # not in the agreement
        }
    )


_TOPIC = {
    "employment_support": "CV, job search and interview practice",
    "health_and_work": "managing health at work and a phased return",
    "skills_referral": "a referral to a maths or ESOL course",
    "youth_guarantee": "apprenticeship and traineeship options",
    "in_work_progression": "progression and more hours with the current employer",
}


def hubs(people: People, events: ev.Events, ids: Identifiers, rng: np.random.Generator) -> pa.Table:
    """All hubs' rows in one table (split by ``hub_la`` later); record ids added by the caller."""
    n = len(events)
    rows = events.person
    u = rng.random(n)
    lower, upper = u < 0.1, (u >= 0.1) & (u < 0.15)
    v = rng.random(n)
    gender = np.where(ids.sex == "M", "Male", "Female").astype(object)
    gender = np.where(v < 0.004, "Other", np.where(v < 0.02, "Prefer not to say", gender)).astype(
        object
    )
    group5 = np.array([regions.ETHNIC_GROUP5[g] for g in people.ethnicity[rows]], dtype=object)
    ethnicity = np.where(rng.random(n) < 0.03, "Prefer not to say", group5).astype(object)
    disabled = people.disabled[rows]
    ltc = (people.condition[rows] != None) & ~disabled  # noqa: E711
    w = rng.random(n)
    says_yes = np.where(disabled, w < 0.9, ltc & (w < 0.3))
    disability = np.where(
        rng.random(n) < 0.03, "Prefer not to say", np.where(says_yes, "Yes", "No")
    ).astype(object)
    postcode = fmt.strings(ids.postcode)
    p = rng.random(n)
    postcode = fmt.choose(p < 0.3, fmt.no_space(postcode), postcode)
    postcode = fmt.choose(p > 0.9, pc.utf8_lower(postcode), postcode)
    nino = fmt.strings(ids.nino)
    q = rng.random(n)
    nino = fmt.choose(
        q < 0.2, fmt.spaced_nino(nino), fmt.choose(q > 0.9, pc.utf8_lower(nino), nino)
    )
    topic = np.array([_TOPIC[t] for t in events.cols["support_type"]], dtype=object)
    notes = people.forename[rows] + " came in for a first appointment; we discussed " + topic + "."
    email = pc.binary_join_element_wise(
        pc.utf8_lower(fmt.strings(people.forename[rows])),
        ".",
        fmt.no_space(pc.utf8_lower(fmt.strings(people.surname[rows]))),
        fmt.strings((people.person_id[rows] % 97).astype(str).astype(object)),
        "@example.com",
        "",
    )
    return pa.table(
        {
            "forename": fmt.mixed_case(fmt.strings(ids.forename), lower, upper),
            "surname": fmt.mixed_case(fmt.strings(ids.surname), lower, upper),
            "date_of_birth": fmt.dates(ids.birth_day, "%d/%m/%Y"),
            "postcode": fmt.strings(postcode),
            "ni_number": nino,
            "gender": fmt.strings(gender),
            "support_start": fmt.dates(events.cols["support_start"], "%d/%m/%Y"),
            "support_type": fmt.strings(events.cols["support_type"]),
            "hub_la": fmt.strings(events.cols["hub_la"]),
            "ethnicity": fmt.strings(ethnicity),
            "disability": fmt.strings(disability),
            "adviser_notes": fmt.strings(notes),
            # Not in the agreement: must never leave the hub.
            "email": email,
            "address_line1": fmt.strings(people.address_line[rows]),
            "phone": _phone(people.person_id[rows]),
        }
    )


def build_chunk(
    people: People,
    lab: Labour,
    rng: np.random.Generator,
    rates: ErrorRates,
    pools: NamePools,
    employers: np.ndarray,
    counts: dict[str, Counts],
    tally: Tally | None = None,
    profile: Profile | None = None,
    first_record: np.ndarray | None = None,
) -> dict[str, Extract]:
    """All extracts for one chunk, without their record-id column (see :func:`record_ids`).

    ``profile`` supplies factors that multiply error rates by ethnic group and age band.
    ``first_record`` (int64, one per person, filled in place): the earliest day a record other
    than a hub start begins (the journeys' ``start``), left as it was for people with none.
    """
    out: dict[str, Extract] = {}

    def prep(name: str, events: ev.Events, **kw: bool) -> tuple[ev.Events, Identifiers]:
        c = counts.setdefault(name, {})
        return _prepare(events, people, rates, rng, pools, c, profile=profile, **kw)

    spells = ev.employment_spells(people, lab, rng, employers)
    skills_events = ev.enrolments(people, lab, rng)
    if tally is not None:
        tally.add_neet(people, skills_events.person, skills_events.cols["neet_status"])
    no_nhs = {"has_nino": True, "has_nhs": False}
    plan: list[tuple[str, ev.Events, dict[str, bool], Callable[..., pa.Table]]] = [
        ("hmrc_rti", spells, {"fold_middle": False, **no_nhs}, hmrc),
        (
            "dwp_claims",
            ev.benefit_claims(people, lab, rng, spells),
            {"fold_middle": True, **no_nhs},
            dwp,
        ),
        (
            "nhs_referrals",
            ev.health_referrals(people, lab, rng),
            {"fold_middle": True, "has_nino": False, "has_nhs": True},
            nhs,
        ),
        ("skills_enrolments", skills_events, {"fold_middle": True, **no_nhs}, skills),
    ]
    for name, events, kw, build in plan:
        if first_record is not None:
            day = events.cols["referral_date" if name == "nhs_referrals" else "start_date"]
            dated = day != ev.NO_DATE
            np.minimum.at(first_record, events.person[dated], day[dated])
        events, ids = prep(name, events, **kw)
        table = build(people, events, ids, rng) if build is skills else build(people, events, ids)
        out[name] = Extract(table, people.person_id[events.person])

    # Hubs: corrupt per hub (each hub is its own source).
    starts = ev.hub_starts(people, lab, rng)
    for la in regions.LAS:
        name = f"hub_{regions.HUB_SLUG[la]}"
        sel = np.flatnonzero(starts.cols["hub_la"] == la)
        events, ids = prep(name, starts.take(sel), fold_middle=True, **no_nhs)
        out[name] = Extract(hubs(people, events, ids, rng), people.person_id[events.person])
    return out


# Record-id column, prefix and digits per dataset: ids are numbered in file order.
RECORD_ID: dict[str, tuple[str, str, int]] = {
    "hmrc_rti": ("EMPLOYMENT_ID", "E", 9),
    "dwp_claims": ("claim_ref", "CL", 9),
    "nhs_referrals": ("REFERRAL_ID", "RF", 9),
    "skills_enrolments": ("LearnRefNumber", "L", 10),
    **{f"hub_{regions.HUB_SLUG[la]}": ("client_id", f"{HUB_PREFIX[la]}-", 7) for la in regions.LAS},
}


def with_record_ids(dataset: str, table: pa.Table, first: int) -> pa.Table:
    """``table`` with its record-id column (numbered from ``first``) put first."""
    column, prefix, width = RECORD_ID[dataset]
    ids = fmt.padded(prefix, np.arange(first, first + table.num_rows), width)
    return table.add_column(0, column, ids)


def employer_refs(rng: np.random.Generator, n: int) -> np.ndarray:
    """PAYE employer references like ``120/AB12345`` (tax office / employer)."""
    office = rng.integers(100, 999, n).astype(str)
    letters = np.array(list("ABCDEFGHJKLMNPRSTWXYZ"))
    code = np.strings.add(letters[rng.integers(0, 21, n)], letters[rng.integers(0, 21, n)])
    digits = np.strings.zfill(rng.integers(0, 100000, n).astype(str), 5)
    refs = np.strings.add(np.strings.add(np.strings.add(office, "/"), code), digits)
    return refs.astype(object)
