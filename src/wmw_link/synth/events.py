"""What each partner records about people: employment spells, claims, referrals, enrolments,
hub starts. Each function returns an :class:`Events` table (person row + payload arrays).

Dates are whole days since 1970-01-01 in int64 arrays, with :data:`NO_DATE` for an empty cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wmw_link.synth import regions
from wmw_link.synth.labour import HUB_LAST_MONTH, N_MONTHS, WINDOW_START, Labour
from wmw_link.synth.population import People

NO_DATE = np.int64(-(10**9))
_MONTH_START = (WINDOW_START + np.arange(N_MONTHS + 1)).astype("datetime64[D]").astype(np.int64)
MONTH_START = _MONTH_START[:-1]
MONTH_DAYS = np.diff(_MONTH_START)
WINDOW_FIRST_DAY = int(MONTH_START[0])
WINDOW_LAST_DAY = int(_MONTH_START[-1] - 1)  # 2026-09-30


@dataclass
class Events:
    """Rows of one extract before identifiers are attached: ``person`` indexes the chunk."""

    person: np.ndarray
    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.person)

    def take(self, idx: np.ndarray) -> Events:
        return Events(self.person[idx], {k: v[idx] for k, v in self.cols.items()})


def _day_in_month(rng: np.random.Generator, month: np.ndarray) -> np.ndarray:
    return MONTH_START[month] + (rng.random(len(month)) * MONTH_DAYS[month]).astype(np.int64)


def _before_window(
    rng: np.random.Generator, size: int, mean_days: float, floor: np.ndarray
) -> np.ndarray:
    """A start date before the window, but never before ``floor`` (e.g. the 16th birthday)."""
    d = WINDOW_FIRST_DAY - 1 - rng.exponential(mean_days, size).astype(np.int64)
    return np.maximum(d, np.minimum(floor, WINDOW_FIRST_DAY - 1))


def _runs(
    flag: np.ndarray, breaks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True along axis 1: (row, first month, last month); ``breaks`` start new runs."""
    prev = np.zeros_like(flag)
    prev[:, 1:] = flag[:, :-1]
    nxt = np.zeros_like(flag)
    nxt[:, :-1] = flag[:, 1:]
    brk = np.zeros_like(flag) if breaks is None else breaks & flag & prev
    brk_next = np.zeros_like(flag)
    brk_next[:, :-1] = brk[:, 1:]
    start = flag & (~prev | brk)
    end = flag & (~nxt | brk_next)
    s_row, s_m = np.nonzero(start)
    _, e_m = np.nonzero(end)
    return s_row, s_m, e_m


def employment_spells(
    people: People, lab: Labour, rng: np.random.Generator, employers: np.ndarray
) -> Events:
    """HMRC RTI: one row per employment, with job changes and some concurrent second jobs."""
    n, m = lab.employed.shape
    change = rng.random((n, m)) < 0.012
    change[:, 0] = False
    row, m0, m1 = _runs(lab.employed, change)
    began_before = m0 == 0
    sixteen = people.birth_day[row] + 16 * 365 + 4
    start = np.where(
        began_before,
        _before_window(rng, len(row), 1400.0, sixteen),
        _day_in_month(rng, m0),
    )
    ongoing = m1 == m - 1
    end = np.maximum(_day_in_month(rng, m1), start)
    end = np.where(ongoing, NO_DATE, end)
    pay = lab.base_pay[row] * rng.lognormal(0.0, 0.08, len(row))

    # Concurrent second jobs: a part-time spell inside a main spell.
    second = np.flatnonzero(rng.random(len(row)) < 0.05)
    s_start = np.maximum(start[second], WINDOW_FIRST_DAY) + rng.integers(0, 300, len(second))
    s_end = s_start + rng.integers(60, 500, len(second))
    limit = np.where(ongoing[second], WINDOW_LAST_DAY + 1, end[second])
    keep = s_start < np.minimum(limit, WINDOW_LAST_DAY)
    second, s_start, s_end, limit = second[keep], s_start[keep], s_end[keep], limit[keep]
    s_end = np.where(s_end >= limit, np.where(ongoing[second], NO_DATE, limit), s_end)
    s_end = np.where(s_end > WINDOW_LAST_DAY, NO_DATE, s_end)

    rows = np.concatenate([row, row[second]])
    n_emp = len(employers)
    # Employer sizes are skewed: a few large employers, many small ones.
    emp_idx = np.minimum((rng.pareto(1.2, len(rows)) * n_emp / 40).astype(np.int64), n_emp - 1)
    return Events(
        rows,
        {
            "employer_ref": employers[emp_idx],
            "start_date": np.concatenate([start, s_start]),
            "end_date": np.concatenate([end, s_end]),
            "monthly_pay": np.round(
                np.concatenate(
                    [pay, lab.base_pay[row[second]] * rng.uniform(0.15, 0.4, len(second))]
                ),
                2,
            ),
        },
    )


def _uc_regime(ntype: np.ndarray) -> np.ndarray:
    return np.select(
        [ntype == "unemployed", ntype == "inactive_health"],
        ["intensive_work_search", "health_lcwra"],
        "no_work_requirements",
    ).astype(object)


def benefit_claims(people: People, lab: Labour, rng: np.random.Generator, hmrc: Events) -> Events:
    """DWP: UC claims over spells out of work (and low-paid in work), ESA, PIP."""
    row, m0, m1 = _runs(~lab.employed)
    ntype = lab.nonwork_type[row]
    p_claim = np.select([ntype == "unemployed", ntype == "inactive_health"], [0.8, 0.7], 0.15)
    claim = rng.random(len(row)) < p_claim
    row, m0, m1, ntype = row[claim], m0[claim], m1[claim], ntype[claim]
    sixteen = people.birth_day[row] + 16 * 365 + 4
    start = np.where(m0 == 0, _before_window(rng, len(row), 500.0, sixteen), _day_in_month(rng, m0))
    end = np.where(m1 == N_MONTHS - 1, NO_DATE, np.maximum(_day_in_month(rng, m1), start))
    regime = _uc_regime(ntype)
    benefit = np.full(len(row), "UC", dtype=object)

    # Long-standing health claims may still be ESA, some migrating to UC during the window.
    esa = (ntype == "inactive_health") & (m0 == 0) & (rng.random(len(row)) < 0.3)
    migrate = esa & (rng.random(len(row)) < 0.5)
    mig_day = WINDOW_FIRST_DAY + rng.integers(60, 900, len(row))
    migrate &= (end == NO_DATE) | (mig_day < end)
    benefit[esa] = "ESA"
    regime_esa = np.where(esa, "not_applicable", regime).astype(object)
    end_esa = np.where(migrate, mig_day, end)
    mig = np.flatnonzero(migrate)

    # In-work UC for low-paid employment spells.
    low = np.flatnonzero((hmrc.cols["monthly_pay"] < 1300) & (rng.random(len(hmrc)) < 0.5))
    low_start = np.maximum(hmrc.cols["start_date"][low], WINDOW_FIRST_DAY - 400)

    # PIP for some disabled people, usually long-standing.
    pip = np.flatnonzero(people.disabled & (rng.random(len(people)) < 0.35))
    pip_start = np.where(
        rng.random(len(pip)) < 0.7,
        _before_window(rng, len(pip), 1200.0, people.birth_day[pip] + 16 * 365 + 4),
        WINDOW_FIRST_DAY + rng.integers(0, WINDOW_LAST_DAY - WINDOW_FIRST_DAY - 30, len(pip)),
    )
    pip_end = np.where(
        rng.random(len(pip)) < 0.1,
        np.maximum(pip_start, WINDOW_FIRST_DAY) + rng.integers(30, 700, len(pip)),
        NO_DATE,
    )
    pip_end = np.where(pip_end > WINDOW_LAST_DAY, NO_DATE, pip_end)

    return Events(
        np.concatenate([row, row[mig], hmrc.person[low], pip]),
        {
            "benefit": np.concatenate(
                [
                    benefit,
                    np.full(len(mig), "UC", dtype=object),
                    np.full(len(low), "UC", dtype=object),
                    np.full(len(pip), "PIP", dtype=object),
                ]
            ),
            "regime": np.concatenate(
                [
                    regime_esa,
                    np.full(len(mig), "health_lcwra", dtype=object),
                    np.full(len(low), "light_touch", dtype=object),
                    np.full(len(pip), "not_applicable", dtype=object),
                ]
            ),
            "start_date": np.concatenate([start, mig_day[mig] + 1, low_start, pip_start]),
            "end_date": np.concatenate([end_esa, end[mig], hmrc.cols["end_date"][low], pip_end]),
        },
    )


def health_referrals(people: People, lab: Labour, rng: np.random.Generator) -> Events:
    """NHS: WorkWell and IPS referrals of people with a health condition."""
    has = people.condition != None  # noqa: E711
    out_of_work = ~lab.employed.all(axis=1)
    p = np.where(has & out_of_work & (lab.nonwork_type != "inactive_other"), 0.12, 0.03) * has
    who = np.flatnonzero(rng.random(len(people)) < p)
    again = who[rng.random(len(who)) < 0.08]
    rows = np.concatenate([who, again])
    month = rng.integers(0, N_MONTHS, len(rows))
    cond = people.condition[rows]
    ips = rng.random(len(rows)) < np.where(cond == "mental_health", 0.45, 0.1)
    hh = people.household_id[rows]
    # A household shares a GP practice; practice codes look like English ones (letter + 5).
    practice = (hh * 2654435761) % 150
    la = people.la[rows].astype(np.int64)
    letters = np.array(["M", "Q", "Y"], dtype=object)
    gp = letters[la % 3] + (80000 + la * 150 + practice).astype(str).astype(object)
    return Events(
        rows,
        {
            "service": np.where(ips, "IPS", "WorkWell").astype(object),
            "referral_date": _day_in_month(rng, month),
            "condition_category": cond,
            "gp_practice": gp,
        },
    )


COURSE_LEVELS = np.array(["Entry", "Level 1", "Level 2", "Level 3", "Level 4+"], dtype=object)


def enrolments(people: People, lab: Labour, rng: np.random.Generator) -> Events:
    """Skills: adult enrolments (level, start, end, achieved) and 16-17 NEET status rows."""
    age = people.age
    n = len(people)
    # 16-17 year olds: one status row; most in education (with a course), some NEET/unknown.
    young = np.flatnonzero(age <= 17)
    u = rng.random(len(young))
    neet_p = regions.NEET_16_17[people.la[young].astype(int)]
    status = np.where(u < neet_p, "NEET", np.where(u < neet_p + 0.05, "Unknown", "EET")).astype(
        object
    )
    in_course = (status == "EET") & (rng.random(len(young)) < 0.85)
    y_start = np.where(
        rng.random(len(young)) < 0.5,
        np.datetime64("2023-09-04").astype("datetime64[D]").astype(np.int64),
        np.datetime64("2024-09-02").astype("datetime64[D]").astype(np.int64),
    ) + rng.integers(0, 10, len(young))
    y_end = y_start + rng.integers(280, 660, len(young))
    y_level = COURSE_LEVELS[rng.choice([2, 3], size=len(young), p=[0.45, 0.55])]
    y_ach = np.where(rng.random(len(young)) < 0.78, "Y", "N").astype(object)
    y_start = np.where(in_course, y_start, NO_DATE)
    y_end = np.where(in_course, y_end, NO_DATE)

    # Adults: more likely to enrol when out of work, and after hub support.
    adult = age >= 18
    p = np.where(lab.nonwork_type == "unemployed", 0.07, 0.025) + 0.12 * (lab.hub_month >= 0)
    who = np.flatnonzero(adult & (rng.random(n) < p))
    who = np.concatenate([who, who[rng.random(len(who)) < 0.2]])
    after_hub = np.where(
        lab.hub_month[who] >= 0, lab.hub_month[who] + rng.integers(0, 6, len(who)), -1
    )
    month = np.where(
        after_hub >= 0, np.minimum(after_hub, N_MONTHS - 1), rng.integers(0, N_MONTHS - 1, len(who))
    )
    a_start = _day_in_month(rng, month)
    a_end = a_start + rng.integers(60, 330, len(who))
    finished = a_end <= WINDOW_LAST_DAY
    a_ach = np.where(finished, np.where(rng.random(len(who)) < 0.72, "Y", "N"), None).astype(object)
    a_level = COURSE_LEVELS[rng.choice(5, size=len(who), p=[0.15, 0.25, 0.3, 0.2, 0.1])]

    return Events(
        np.concatenate([young, who]),
        {
            "course_level": np.concatenate([np.where(in_course, y_level, None), a_level]).astype(
                object
            ),
            "start_date": np.concatenate([y_start, a_start]),
            "end_date": np.concatenate([y_end, np.where(finished, a_end, NO_DATE)]),
            "achieved": np.concatenate([np.where(in_course, y_ach, None), a_ach]).astype(object),
            "neet_status": np.concatenate([status, np.full(len(who), None, dtype=object)]),
        },
    )


SUPPORT_TYPES = (
    "employment_support",
    "health_and_work",
    "skills_referral",
    "youth_guarantee",
    "in_work_progression",
)


def hub_starts(people: People, lab: Labour, rng: np.random.Generator) -> Events:
    """Hubs: West Midlands Works support starts (some people start twice)."""
    who = np.flatnonzero(lab.hub_month >= 0)
    month = lab.hub_month[who].astype(np.int64)
    again = rng.random(len(who)) < 0.05
    month2 = month[again] + rng.integers(3, 10, int(again.sum()))
    keep2 = month2 <= HUB_LAST_MONTH
    rows = np.concatenate([who, who[again][keep2]])
    months = np.concatenate([month, month2[keep2]])
    employed_then = lab.employed[rows, months]
    ntype = lab.nonwork_type[rows]
    young = people.age[rows] < 25
    u = rng.random(len(rows))
    support = np.select(
        [
            employed_then,
            young & (u < 0.6),
            ntype == "inactive_health",
            (ntype == "unemployed") & (u < 0.85),
        ],
        ["in_work_progression", "youth_guarantee", "health_and_work", "employment_support"],
        "skills_referral",
    ).astype(object)
    la = people.la[rows].astype(np.int64)
    elsewhere = rng.random(len(rows)) < 0.03
    hub_la = np.where(elsewhere, (la + rng.integers(1, 7, len(rows))) % 7, la)
    # First starts on the day recorded in the ground truth; repeat starts on a day of their month.
    start_day = np.concatenate([lab.hub_day[who], _day_in_month(rng, month2[keep2])])
    return Events(
        rows,
        {
            "support_start": start_day,
            "support_type": support,
            "hub_la": np.array(regions.LAS, dtype=object)[hub_la],
        },
    )
