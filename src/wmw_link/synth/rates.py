"""Error rates for the synthetic extracts: one pydantic model, sensible defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


def _rate(default: float, doc: str) -> float:
    return Field(default=default, ge=0.0, le=1.0, description=doc)


class ErrorRates(BaseModel):
    """Probability of each error per extract record, among the records where it can happen.

    Every rate is applied independently to each record of each extract. "Eligible" records are
    those where the error is possible (a nickname needs a name with a known nickname, a day/month
    swap needs a day of 12 or less that differs from the month, a marriage surname needs a person
    whose surname changed on marriage); ``synth.json`` records eligible and applied counts.
    The rates below the line are 0 by default (the ``standard`` profile) and switched on by the
    ``hard`` profile (:mod:`wmw_link.synth.profiles`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    typo_forename: float = _rate(0.02, "a one-character typo in the forename")
    typo_surname: float = _rate(0.02, "a one-character typo in the surname")
    nickname: float = _rate(0.10, "forename replaced by a nickname or formal variant (eligible)")
    transliteration: float = _rate(
        0.25, "South Asian or Arabic name spelled another way (eligible names)"
    )
    swap_names: float = _rate(0.01, "forename and surname swapped")
    middle_name_folded: float = _rate(0.10, "middle name written into the forename (eligible)")
    marriage_surname: float = _rate(0.30, "surname before marriage used (eligible: name changed)")
    double_barrel_partial: float = _rate(0.35, "only one part of a double-barrelled surname")
    dob_day_month_swap: float = _rate(0.01, "day and month of birth swapped (eligible: day <= 12)")
    dob_off_by_one: float = _rate(0.01, "date of birth one day out")
    dob_year_typo: float = _rate(0.005, "year of birth mistyped (one out, or digits transposed)")
    house_move: float = _rate(0.05, "a newer or older address: a different postcode")
    missing_nino: float = _rate(0.04, "National Insurance number left blank")
    missing_nhs: float = _rate(0.03, "NHS number left blank")
    duplicate: float = _rate(0.01, "record entered twice in the same source")
    # --- off (0) by default; drawn only when on, so standard extracts stay byte-identical ---
    spelling_variant: float = _rate(
        0.0,
        "a name spelled another way (Thomson, Abdul Rahman, Hiteshbhai) or without its "
        "diacritics (Michal for Michał) (eligible names)",
    )
    middle_name_as_forename: float = _rate(
        0.0, "known by the middle name: it replaces the forename (eligible: has a middle name)"
    )
    surname_convention: float = _rate(
        0.0,
        "a family name written instead of Singh, Kaur, Begum, Bibi or Khatun "
        "(eligible: those surnames)",
    )
    surname_change: float = _rate(
        0.0, "another surname after a marriage or divorce not in the household (eligible: women)"
    )
    dob_day_typo: float = _rate(
        0.0, "day of birth mistyped: digits transposed (12/21) or another day of the month"
    )
    dob_first_of_january: float = _rate(
        0.0, "date of birth recorded as 1 January of the birth year (a placeholder)"
    )
    sex_flip: float = _rate(0.0, "sex recorded as the other one")
    nino_typo: float = _rate(
        0.0, "NINo mistyped: one digit wrong or two transposed (eligible: NINo present)"
    )
    nino_placeholder: float = _rate(
        0.0,
        "a placeholder NINo (AB123456C, AA111111A, or a temporary TN + birth date + sex) "
        "(eligible: NINo present)",
    )

    def scaled(self, factor: float) -> ErrorRates:
        """All rates multiplied by ``factor`` (capped at 1): e.g. 0 for clean data."""
        return ErrorRates(**{k: min(1.0, v * factor) for k, v in self.model_dump().items()})
