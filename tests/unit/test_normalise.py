"""Normalisers: table-driven cases per identifier type, and idempotence (hypothesis)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmw_link.normalise import (
    normalise_dates,
    normalise_names,
    normalise_nhs_numbers,
    normalise_ninos,
    normalise_postcodes,
    normalise_sex,
    split_full_names,
)

TODAY = dt.date(2026, 6, 1)


def _run(fn, values):
    n = fn(pa.array(values, pa.string()))
    return n.values.to_pylist(), n.reasons.to_pylist()


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("Mr. John", "john", None),
        ("  DR  Mary-Ann ", "mary ann", None),
        ("O'Brien", "obrien", None),
        ("Zoë", "zoe", None),
        ("Łukasz", "lukasz", None),
        ("Søren", "soren", None),
        ("Мухаммед", "mukhammed", None),
        ("Lord", "lord", None),  # a surname, not a title, when it stands alone
        ("John Smith Jr", "john smith", None),
        ("STRAßE", "strasse", None),
        ("", None, "missing"),
        ("   ", None, "missing"),
        (None, None, "missing"),
        ("123", None, "no_letters"),
        ("--", None, "no_letters"),
    ],
)
def test_names(raw, expected, reason):
    values, reasons = _run(normalise_names, [raw])
    assert values == [expected]
    assert reasons == [reason]


def test_full_names_split_into_forenames_and_surname():
    fore, sur = split_full_names(
        pa.array(
            ["Mr John Paul Smith", "SMITH, John", "Ann Smith-Jones", "Cher", None, "Jo Bloggs III"]
        )
    )
    assert fore.values.to_pylist() == ["john paul", "john", "ann", None, None, "jo"]
    assert sur.values.to_pylist() == ["smith", "smith", "smith jones", "cher", None, "bloggs"]
    assert fore.reasons.to_pylist()[3:5] == ["missing", "missing"]
    assert sur.reasons.to_pylist()[4] == "missing"


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("ab 12 34 56 c", "AB123456", None),
        ("AB123456", "AB123456", None),
        ("ce-123456-d", "CE123456", None),
        ("TN010180M", None, "temporary_number"),
        ("QQ123456C", None, "invalid_prefix"),
        ("AO123456A", None, "invalid_prefix"),
        ("GB123456A", None, "invalid_prefix"),
        ("PZ123456A", None, "administrative_number"),
        ("AB12345", None, "invalid_format"),
        ("AB123456E", None, "invalid_format"),
        ("", None, "missing"),
    ],
)
def test_ninos(raw, expected, reason):
    assert _run(normalise_ninos, [raw]) == ([expected], [reason])


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("943 476 5919", "9434765919", None),
        ("943-476-5919", "9434765919", None),
        ("9434765918", None, "bad_check_digit"),
        ("0000000000", None, "placeholder"),
        ("943476591", None, "invalid_format"),
        ("94347659x9", None, "invalid_format"),
        (None, None, "missing"),
    ],
)
def test_nhs_numbers(raw, expected, reason):
    assert _run(normalise_nhs_numbers, [raw]) == ([expected], [reason])


def test_nhs_check_digit_10_is_invalid():
    # Digits whose mod-11 check would be 10 have no valid NHS number.
    candidates = [f"{i:09d}" for i in range(1, 200)]
    ten = next(
        c
        for c in candidates
        if (11 - sum(int(d) * w for d, w in zip(c, range(10, 1, -1), strict=True)) % 11) == 10
    )
    values, reasons = _run(normalise_nhs_numbers, [ten + "0"])
    assert values == [None] and reasons == ["bad_check_digit"]


@pytest.mark.parametrize(
    ("raw", "unit", "sector", "district", "reason"),
    [
        ("b15 2tt", "B15 2TT", "B15 2", "B15", None),
        ("B152TT", "B15 2TT", "B15 2", "B15", None),
        ("  ws1   1aa ", "WS1 1AA", "WS1 1", "WS1", None),
        ("EC1A 1BB", "EC1A 1BB", "EC1A 1", "EC1A", None),
        ("W1A 0AX", "W1A 0AX", "W1A 0", "W1A", None),
        ("GIR 0AA", "GIR 0AA", "GIR 0", "GIR", None),
        ("XX1", None, None, None, "invalid_format"),
        ("B15 2TTT", None, None, None, "invalid_format"),
        ("", None, None, None, "missing"),
    ],
)
def test_postcodes(raw, unit, sector, district, reason):
    p = normalise_postcodes(pa.array([raw], pa.string()))
    assert p.unit.values.to_pylist() == [unit]
    assert p.sector.to_pylist() == [sector]
    assert p.district.to_pylist() == [district]
    assert p.unit.reasons.to_pylist() == [reason]


@pytest.mark.parametrize(
    ("raw", "fmt", "expected", "reason"),
    [
        ("03/04/1985", "%d/%m/%Y", dt.date(1985, 4, 3), None),
        ("3/4/1985", "%d/%m/%Y", dt.date(1985, 4, 3), None),
        ("1985-04-03", "%Y-%m-%d", dt.date(1985, 4, 3), None),
        ("19850403", "%Y%m%d", dt.date(1985, 4, 3), None),
        ("03-Apr-1985", "%d-%b-%Y", dt.date(1985, 4, 3), None),
        ("31/02/1990", "%d/%m/%Y", None, "invalid_date"),
        ("13/13/1990", "%d/%m/%Y", None, "invalid_date"),
        ("1985-04-03", "%d/%m/%Y", None, "invalid_date"),
        ("02/06/2026", "%d/%m/%Y", None, "future_date"),
        ("01/01/1900", "%d/%m/%Y", None, "age_out_of_range"),
        ("", "%d/%m/%Y", None, "missing"),
    ],
)
def test_dates(raw, fmt, expected, reason):
    n = normalise_dates(pa.array([raw], pa.string()), fmt, today=TODAY)
    assert n.values.to_pylist() == [expected]
    assert n.reasons.to_pylist() == [reason]


def _strptime(text: str, fmt: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError:
        return None


_FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%Y%m%d", "%m.%d.%Y", "%d-%b-%Y", "%Y/%j"]


@pytest.mark.parametrize("fmt", _FORMATS[:4])
def test_parse_date_equals_strptime_on_every_fixed_width_month_and_day(fmt):
    """The fixed-width fast path must give strptime's date or refusal for every input: months
    and days 00-39 and 99 (31 April, 29 February, month 13, day 0), years 0000 to 9999."""
    from wmw_link.normalise.dates import parse_date

    for year in (0, 1900, 2023, 2024, 9999):
        for month in [*range(40), 99]:
            for day in [*range(40), 99]:
                text = fmt.replace("%Y", f"{year:04d}").replace("%m", f"{month:02d}")
                text = text.replace("%d", f"{day:02d}")
                assert parse_date(text, fmt) == _strptime(text, fmt), (text, fmt)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789-/. \u0663AbJanx", max_size=12),
    st.sampled_from(_FORMATS),
)
def test_parse_date_equals_strptime_on_any_text(text, fmt):
    from wmw_link.normalise.dates import parse_date

    assert parse_date(text, fmt) == _strptime(text, fmt)


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("Female", "f", None),
        ("M", "m", None),
        ("2", "f", None),
        ("Other", "x", None),
        ("Prefer not to say", None, "not_known"),
        ("9", None, "not_known"),
        ("zz", None, "unrecognised"),
        ("", None, "missing"),
    ],
)
def test_sex(raw, expected, reason):
    assert _run(normalise_sex, [raw]) == ([expected], [reason])


def test_counts_by_reason_are_vectorised_over_columns():
    from wmw_link.normalise import count_reasons

    n = normalise_ninos(pa.array(["AB123456C", "TN010180M", "", "QQ123456C", "TN020280F"]))
    assert dict(count_reasons(n.reasons, "nino")) == {
        "nino:temporary_number": 2,
        "nino:missing": 1,
        "nino:invalid_prefix": 1,
    }


# -- idempotence -----------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(_text, min_size=1, max_size=20))
def test_names_idempotent(values):
    once = normalise_names(pa.array(values, pa.string())).values
    twice = normalise_names(once).values
    assert once.to_pylist() == twice.to_pylist()
    # Normalised names are lower-case ASCII letters and single spaces only.
    for v in once.to_pylist():
        if v is not None:
            assert v == " ".join(v.split()) and all(c == " " or "a" <= c <= "z" for c in v)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}", fullmatch=True),
        min_size=1,
        max_size=20,
    )
)
def test_postcodes_idempotent(values):
    once = normalise_postcodes(pa.array(values)).unit.values
    twice = normalise_postcodes(once).unit.values
    assert once.to_pylist() == twice.to_pylist()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]?", fullmatch=True),
        min_size=1,
        max_size=20,
    )
)
def test_ninos_idempotent(values):
    once = normalise_ninos(pa.array(values)).values
    twice = normalise_ninos(once).values
    assert once.to_pylist() == twice.to_pylist()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}", fullmatch=True),
        min_size=1,
        max_size=20,
    )
)
def test_nhs_idempotent_and_checked(values):
    once = normalise_nhs_numbers(pa.array(values)).values
    assert normalise_nhs_numbers(once).values.to_pylist() == once.to_pylist()
    for v in once.to_pylist():
        if v is not None:
            total = sum(int(d) * w for d, w in zip(v[:9], range(10, 1, -1), strict=True))
            assert (11 - total % 11) % 11 == int(v[9])


@settings(max_examples=100, deadline=None)
@given(st.dates(min_value=dt.date(1920, 1, 1), max_value=TODAY))
def test_dates_roundtrip_iso(d):
    n = normalise_dates(pa.array([d.strftime("%d/%m/%Y")]), "%d/%m/%Y", today=TODAY)
    assert n.values.to_pylist() == [d]
    again = normalise_dates(pa.array([d.isoformat()]), "%Y-%m-%d", today=TODAY)
    assert again.values.to_pylist() == [d]
