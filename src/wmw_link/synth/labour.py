"""Labour-market behaviour: who is in work, month by month, and the effect of hub support.

Each person has a steady-state employment probability from a logistic model whose per-LA
intercept, female and disability terms are calibrated to the plan's scorecard (employment rate,
female employment rate, disability employment gap). Month by month over the extract window,
people move in and out of work with exit hazard ``e`` and entry hazard ``e * p / (1 - p)``, which
keeps the rate near ``p``. Hub support adds a fixed amount to the entry hazard for twelve
months after a start: that is the true causal effect, and the generator also runs every
supported person's counterfactual path (same random draws, no support) to record the true
effect on the treated at 6 and 12 months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wmw_link.synth import regions
from wmw_link.synth.population import People

WINDOW_START = np.datetime64("2024-01", "M")
N_MONTHS = 33  # 2024-01 .. 2026-09
HUB_LAST_MONTH = 20  # 2025-09: every start has twelve months of follow-up in the window

ETHNIC_EFFECT = {
    "white_british": 0.0,
    "eastern_european": 0.35,
    "indian": 0.05,
    "pakistani": -0.55,
    "bangladeshi": -0.6,
    "black_african": -0.35,
    "black_caribbean": -0.4,
    "mixed": -0.2,
    "arab": -0.3,  # "Other" in the five groups; the plan's largest gaps are elsewhere
}
LTC_EFFECT = -0.45
AGE_BANDS = np.array([16, 18, 25, 50, 65])  # 16-17, 18-24, 25-49, 50-64
AGE_EFFECT = np.array([-2.2, -0.55, 0.35, -0.25])
EXIT_HAZARD = 0.012  # per month; x1.8 under 25, x1.5 if disabled
HUB_HAZARD = {"unemployed": 0.012, "inactive_health": 0.006, "inactive_other": 0.002}
HUB_HAZARD_EMPLOYED = 0.0004  # in-work progression
HUB_LA_INTENSITY = np.array([1.0, 1.2, 0.9, 1.0, 0.8, 1.1, 1.5])  # Wolves at Work is large
#: Referral follows the observed record: most starts come early in a spell out of work (a new
#: claim), fewer later, so who starts depends on history that journeys show (months out of
#: work), not on what will happen next (a constant hazard would keep referring exactly those
#: who stay out of work, which a never-supported comparison group cannot mirror).
HUB_DURATION_FACTOR = np.array([3.7, 3.7, 2.7, 1.7, 1.18, 0.84])  # by months out of work, 0..5+
#: People out of work when the window opens: their spell's length is unknown, counted as long.
HUB_DURATION_AT_WINDOW_START = 5
HUB_EFFECT_HAZARD = 0.02  # added to the monthly entry hazard for 12 months after a start
HUB_EFFECT_MONTHS = 12
UNEMPLOYED_SHARE = np.array([0.15, 0.32, 0.22, 0.12])  # of non-health non-employed, by age band
PAY_MEDIAN = 2150.0  # gross monthly, pounds
# Plan: pay gaps vs White (Black -11.9%, Mixed -25.1%, Asian +1.7%), disability 17.7%, gender
# 9.5%. Factors are a little stronger than the gaps where age composition offsets them (disabled
# people are older, so better paid on age alone); synth.json records the realised gaps.
PAY_FACTOR = {
    "Black": 0.868,
    "Mixed": 0.749,
    "Asian": 1.017,
    "White": 1.0,
    "Other": 0.93,
}
PAY_FEMALE = 0.895
PAY_DISABLED = 0.765
PAY_AGE = np.array([0.45, 0.62, 1.05, 1.02])


def age_band(age: np.ndarray) -> np.ndarray:
    """Index into :data:`AGE_BANDS` (0 = 16-17, 1 = 18-24, 2 = 25-49, 3 = 50-64)."""
    return np.clip(np.searchsorted(AGE_BANDS, age, side="right") - 1, 0, 3)


def _linear(people: People, age: np.ndarray) -> np.ndarray:
    eth = np.array([ETHNIC_EFFECT[g] for g in regions.ETHNIC_GROUPS])
    code = _eth_code(people.ethnicity)
    ltc = (people.condition != None) & ~people.disabled  # noqa: E711
    return eth[code] + AGE_EFFECT[age_band(age)] + LTC_EFFECT * ltc


def _eth_code(eth: np.ndarray) -> np.ndarray:
    lookup = {g: i for i, g in enumerate(regions.ETHNIC_GROUPS)}
    out = np.zeros(len(eth), dtype=np.int8)
    for g, i in lookup.items():
        out[eth == g] = i
    return out


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Calibration:
    """Per-LA logistic terms and the health-inactivity scale, fitted to the scorecard."""

    intercept: np.ndarray
    female: np.ndarray
    disabled: np.ndarray
    health_scale: np.ndarray

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {
            la: {
                "intercept": round(float(self.intercept[i]), 4),
                "female": round(float(self.female[i]), 4),
                "disabled": round(float(self.disabled[i]), 4),
                "health_scale": round(float(self.health_scale[i]), 5),
            }
            for i, la in enumerate(regions.LAS)
        }


def _health_weight(people: People, age: np.ndarray) -> np.ndarray:
    ltc = (people.condition != None) & ~people.disabled  # noqa: E711
    return (1 + 9 * people.disabled + 3 * ltc) * np.where(age >= 50, 1.6, 1.0)


_FITTED: list[Calibration] = []


def set_calibration(cal: Calibration) -> None:
    """Install a calibration fitted elsewhere (worker processes get the parent's)."""
    _FITTED[:] = [cal]


def calibration() -> Calibration:
    """The per-LA terms, fitted once per process (or installed by :func:`set_calibration`)."""
    if not _FITTED:
        _FITTED.append(_fit())
    return _FITTED[0]


def _fit() -> Calibration:
    """Fit the per-LA terms on a fixed reference population (the same for every seed)."""
    from wmw_link.synth.names import load_pools
    from wmw_link.synth.population import make_people

    ref = make_people(
        np.random.default_rng(20240101),
        150_000,
        0,
        load_pools(),
        (np.random.SeedSequence(1), np.random.SeedSequence(2)),
        0,
    )
    age = ref.age
    base = _linear(ref, age)
    female = ref.sex == "F"
    k = len(regions.LAS)
    a, bf, bd, hs = np.zeros(k), np.full(k, -0.5), np.full(k, -1.3), np.zeros(k)
    for i in range(k):
        sel = ref.la == i
        x, f, d = base[sel], female[sel], ref.disabled[sel]
        for _ in range(60):  # coordinate Newton steps; converges in a few dozen
            p = _expit(x + a[i] + bf[i] * f + bd[i] * d)
            w = p * (1 - p)
            a[i] += (regions.EMPLOYMENT_RATE[i] - p.mean()) / w.mean()
            p = _expit(x + a[i] + bf[i] * f + bd[i] * d)
            bf[i] += (regions.FEMALE_EMPLOYMENT_RATE[i] - p[f].mean()) / (p[f] * (1 - p[f])).mean()
            p = _expit(x + a[i] + bf[i] * f + bd[i] * d)
            gap = p[~d].mean() - p[d].mean()
            bd[i] -= (regions.DISABILITY_GAP[i] - gap) / (p[d] * (1 - p[d])).mean()
        p = _expit(x + a[i] + bf[i] * f + bd[i] * d)
        wgt = _health_weight(ref, age)[sel]
        lo, hi = 0.0, 1.0
        for _ in range(50):  # bisection: share inactive through ill health = scorecard figure
            mid = (lo + hi) / 2
            share = ((1 - p) * np.minimum(0.95, mid * wgt)).mean()
            lo, hi = (mid, hi) if share < regions.HEALTH_INACTIVITY[i] else (lo, mid)
        hs[i] = (lo + hi) / 2
    return Calibration(a, bf, bd, hs)


@dataclass
class Labour:
    """Monthly employment paths and hub starts for one chunk of people."""

    p_employed: np.ndarray  # steady-state probability
    nonwork_type: np.ndarray  # unemployed / inactive_health / inactive_other (when out of work)
    employed: np.ndarray  # bool [n, N_MONTHS], with hub support as it happened
    employed_cf: np.ndarray  # bool [n, N_MONTHS], had nobody been supported
    hub_month: np.ndarray  # int16, -1 if never supported
    hub_day: np.ndarray  # day number of the first hub start (meaningless when hub_month < 0)
    base_pay: np.ndarray  # monthly pay in pounds when in work


def simulate(
    people: People,
    rng: np.random.Generator,
    effect: float = HUB_EFFECT_HAZARD,
    confounding: float = 0.0,
) -> Labour:
    """Draw employment paths over the window and hub starts in 2024-01 .. 2025-09.

    Args:
        people: the chunk's people.
        rng: the chunk's random generator.
        effect: hazard added to entry into work for twelve months after a start.
        confounding: strength of an unobserved trait ("drive") that raises both the chance of
            starting support and of entering work (0 = none, the default; 1 = a standard
            normal trait scaling the start hazard by exp(z) and the entry hazard by
            exp(0.5 z)). Nothing in any extract records it, so matching cannot balance it.
    """
    cal = calibration()
    n = len(people)
    age = people.age
    la = people.la.astype(int)
    female = people.sex == "F"
    x = _linear(people, age) + cal.intercept[la] + cal.female[la] * female
    p = np.clip(_expit(x + cal.disabled[la] * people.disabled), 0.01, 0.99)

    # What someone does when out of work is a stable trait (ill health, looking, other).
    p_health = np.minimum(0.95, cal.health_scale[la] * _health_weight(people, age))
    band = age_band(age)
    u = rng.random(n)
    ntype = np.where(
        u < p_health,
        "inactive_health",
        np.where(
            u < p_health + (1 - p_health) * UNEMPLOYED_SHARE[band], "unemployed", "inactive_other"
        ),
    ).astype(object)

    exit_h = EXIT_HAZARD * np.where(age < 25, 1.8, 1.0) * np.where(people.disabled, 1.5, 1.0)
    entry_h = np.minimum(0.6, exit_h * p / (1 - p))
    if confounding:
        # Its own stream, so the default region (confounding 0) draws exactly as before.
        drive = np.random.default_rng(rng.integers(2**63)).standard_normal(n) * confounding
        entry_h = np.minimum(0.6, entry_h * np.exp(0.5 * drive))
    else:
        drive = np.zeros(n)
    hub_h = np.zeros(n)
    for t, h in HUB_HAZARD.items():
        hub_h[ntype == t] = h
    hub_h *= np.where(age < 25, 1.5, 1.0) * HUB_LA_INTENSITY[la] * np.exp(drive)

    emp = np.zeros((n, N_MONTHS), dtype=bool)
    emp_cf = np.zeros((n, N_MONTHS), dtype=bool)
    hub = np.full(n, -1, dtype=np.int16)
    e1 = rng.random(n) < p
    e0 = e1.copy()
    out_months = np.where(e1, 0, HUB_DURATION_AT_WINDOW_START)  # current spell out of work
    last_dur = len(HUB_DURATION_FACTOR) - 1
    for m in range(N_MONTHS):
        # Random numbers in the same order as ever (transition, then start), so every path
        # but the supported ones' stays as it was for a seed.
        draw = rng.random(n) if m > 0 else None
        if m <= HUB_LAST_MONTH:
            # Decided on the record up to last month: a start on a random day of month m must
            # not depend on whether work begins later that month (an analyst could not see it).
            dur = HUB_DURATION_FACTOR[np.minimum(out_months, last_dur)]
            h = np.where(e1, HUB_HAZARD_EMPLOYED, hub_h * dur)
            starts = (hub < 0) & (rng.random(n) < h)
            hub[starts] = m
        if draw is not None:
            active = (hub >= 0) & (m > hub) & (m <= hub + HUB_EFFECT_MONTHS)
            e1 = np.where(e1, draw >= exit_h, draw < entry_h + effect * active)
            e0 = np.where(e0, draw >= exit_h, draw < entry_h)
            out_months = np.where(e1, 0, np.minimum(out_months + 1, last_dur))
        emp[:, m] = e1
        emp_cf[:, m] = e0

    group5 = np.array([regions.ETHNIC_GROUP5[g] for g in people.ethnicity], dtype=object)
    eth_pay = np.ones(n)
    for g, f in PAY_FACTOR.items():
        eth_pay[group5 == g] = f
    pay = (
        PAY_MEDIAN
        * eth_pay
        * np.where(female, PAY_FEMALE, 1.0)
        * np.where(people.disabled, PAY_DISABLED, 1.0)
        * PAY_AGE[band]
        * rng.lognormal(0.0, 0.42, n)
    )
    month = np.maximum(hub, 0).astype(np.int64)
    first = (WINDOW_START + month).astype("datetime64[D]").astype(np.int64)
    length = (WINDOW_START + month + 1).astype("datetime64[D]").astype(np.int64) - first
    hub_day = first + (rng.random(n) * length).astype(np.int64)
    return Labour(p, ntype, emp, emp_cf, hub, hub_day, np.round(pay, 2))


def true_effect(lab: Labour) -> dict[str, float | int]:
    """Effect of support on the supported: employed k months after the start, with vs without."""
    out: dict[str, float | int] = {"supported": int((lab.hub_month >= 0).sum())}
    for k in (6, 12):
        sel = np.flatnonzero((lab.hub_month >= 0) & (lab.hub_month + k < N_MONTHS))
        col = lab.hub_month[sel] + k
        y1 = lab.employed[sel, col]
        y0 = lab.employed_cf[sel, col]
        out[f"n_{k}m"] = len(sel)
        out[f"employed_{k}m_supported"] = float(y1.mean()) if len(sel) else float("nan")
        out[f"employed_{k}m_counterfactual"] = float(y0.mean()) if len(sel) else float("nan")
    return out


def parameters() -> dict[str, object]:
    """The true behavioural parameters of the generator, for ``synth.json``."""
    return {
        "employment_model": "logit p = intercept[la] + female[la]*F + disabled[la]*D + ethnicity + age band + ltc",
        "calibrated_by_la": calibration().as_dict(),
        "ethnicity_effect": ETHNIC_EFFECT,
        "age_bands": ["16-17", "18-24", "25-49", "50-64"],
        "age_effect": AGE_EFFECT.tolist(),
        "long_term_condition_effect": LTC_EFFECT,
        "exit_hazard_per_month": EXIT_HAZARD,
        "hub_start_hazard_per_month": {**HUB_HAZARD, "employed": HUB_HAZARD_EMPLOYED},
        "hub_la_intensity": dict(zip(regions.LAS, HUB_LA_INTENSITY.tolist(), strict=True)),
        "hub_effect": {
            "added_entry_hazard_per_month": HUB_EFFECT_HAZARD,
            "months_after_start": HUB_EFFECT_MONTHS,
            "start_hazard_by_months_out_of_work": HUB_DURATION_FACTOR.tolist(),
        },
        "pay": {
            "median_monthly": PAY_MEDIAN,
            "ethnic_group_factor": PAY_FACTOR,
            "female_factor": PAY_FEMALE,
            "disabled_factor": PAY_DISABLED,
            "age_band_factor": PAY_AGE.tolist(),
        },
    }
