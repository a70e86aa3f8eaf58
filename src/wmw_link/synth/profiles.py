"""Named synthetic profiles: error rates, who they hit, and the household facts behind them.

``standard`` is the generator as it always was (the default). ``hard`` puts every error at the
upper end of what linkage studies report for administrative data, with the group-specific ones
hitting the groups they hit in real data; ``docs/synthetic-data.md`` gives each rate's source
or says where it is a judgement.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wmw_link.errors import ConfigError
from wmw_link.synth.rates import ErrorRates
from wmw_link.synth.regions import ETHNIC_GROUPS

# Age bands (age on 2024-01-01) that ``age_factors`` and the equity reports use.
AGE_BANDS: tuple[tuple[int, int], ...] = ((16, 24), (25, 34), (35, 49), (50, 64))
_BAND_LABELS = tuple(f"{lo}-{hi}" for lo, hi in AGE_BANDS)


def _share(default: float, doc: str) -> float:
    return Field(default=default, ge=0.0, le=1.0, description=doc)


class PopulationRates(BaseModel):
    """Household facts that make people hard to tell apart (defaults: the standard profile)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    twin_rate: float = _share(0.03, "of children who follow a sibling: a twin of that sibling")
    junior_rate: float = _share(0.06, "of sons with a father in the household: his forename")
    double_barrel_rate: float = _share(0.025, "of couple families: a double-barrelled surname")
    took_partner_surname: float = _share(0.75, "of partners: took the head's surname")


class Profile(BaseModel):
    """A named set of error rates, per-group and per-age multipliers and population rates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    errors: ErrorRates = ErrorRates()
    population: PopulationRates = PopulationRates()
    # error kind -> detailed ethnic group -> multiplier of that error's rate (1 if absent;
    # the result is capped at 1). 0 makes the group ineligible.
    group_factors: dict[str, dict[str, float]] = {}
    # error kind -> age band ("16-24", "25-34", "35-49", "50-64") -> multiplier, likewise.
    age_factors: dict[str, dict[str, float]] = {}

    @field_validator("group_factors", "age_factors")
    @classmethod
    def _known(cls, v: dict[str, dict[str, float]], info: Any) -> dict[str, dict[str, float]]:
        keys = ETHNIC_GROUPS if info.field_name == "group_factors" else _BAND_LABELS
        for kind, by_key in v.items():
            if kind not in ErrorRates.model_fields:
                raise ValueError(f"unknown error {kind!r}")
            for key, f in by_key.items():
                if key not in keys:
                    raise ValueError(f"{kind}: unknown group or band {key!r}")
                if not 0 <= f <= 50:
                    raise ValueError(f"{kind}.{key}: must be from 0 to 50")
        return v


_SOUTH_ASIAN_ARAB = ("indian", "pakistani", "bangladeshi", "arab")

HARD = Profile(
    name="hard",
    errors=ErrorRates(
        typo_forename=0.04,
        typo_surname=0.05,
        nickname=0.25,
        transliteration=0.45,
        swap_names=0.02,
        middle_name_folded=0.20,
        marriage_surname=0.50,
        double_barrel_partial=0.50,
        dob_day_month_swap=0.03,
        dob_off_by_one=0.015,
        dob_year_typo=0.01,
        house_move=0.20,
        missing_nino=0.10,
        missing_nhs=0.08,
        duplicate=0.03,
        spelling_variant=0.25,
        middle_name_as_forename=0.10,
        surname_convention=0.35,
        surname_change=0.03,
        dob_day_typo=0.01,
        dob_first_of_january=0.002,
        sex_flip=0.003,
        nino_typo=0.01,
        nino_placeholder=0.002,
    ),
    population=PopulationRates(
        twin_rate=0.06, junior_rate=0.15, double_barrel_rate=0.05, took_partner_surname=0.75
    ),
    group_factors={
        # Transliteration families are South Asian and Arabic (and the Arabic names of many
        # Black African, e.g. Somali, residents); a White British "Mia" is not a "Miah".
        "transliteration": {
            "white_british": 0.0,
            "eastern_european": 0.0,
            "black_caribbean": 0.0,
            "mixed": 0.0,
        },
        # Name order: naming systems without a fixed family name last are written in either
        # order by staff unsure which part is the surname.
        "swap_names": {**dict.fromkeys(_SOUTH_ASIAN_ARAB, 3.0), "black_african": 2.0},
        # "Mohammed Asif Khan" is known as Asif: the first name is often religious.
        "middle_name_as_forename": dict.fromkeys(("pakistani", "bangladeshi", "arab"), 2.5),
        # Recent arrivals are more often without a NINo on record (judgement).
        "missing_nino": dict.fromkeys(("eastern_european", "black_african", "arab"), 1.5),
        # Placeholder birth dates (1 January) for people whose birth was not registered:
        # refugees and asylum seekers from countries without complete civil registration.
        "dob_first_of_january": {"black_african": 10.0, "arab": 10.0},
    },
    age_factors={
        # Younger adults move far more often (English Housing Survey), so their address on
        # one source is more often out of date on another.
        "house_move": {"16-24": 1.6, "25-34": 1.4, "35-49": 0.9, "50-64": 0.6},
        # A NINo is issued at 16: the youngest often do not know theirs yet (judgement).
        "missing_nino": {"16-24": 1.5},
    },
)

PROFILES: dict[str, Profile] = {"standard": Profile(name="standard"), "hard": HARD}


def get_profile(name: str | Profile) -> Profile:
    """The profile called ``name`` (a :class:`Profile` is returned as it is)."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        choices = ", ".join(PROFILES)
        raise ConfigError(f"unknown synthetic profile {name!r}: choose one of {choices}") from None
