"""Generic normalisers (identifier, text, postcode of any country): cases and properties."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmw_link.normalise import normalise_any_postcodes, normalise_identifiers, normalise_texts


def _run(fn, values):
    n = fn(pa.array(values, pa.string()))
    return n.values.to_pylist(), n.reasons.to_pylist()


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("ab-123 456", "AB123456", None),
        (" 4123 567 ", "4123567", None),
        ("P<UTO.L898902C3", "PUTOL898902C3", None),
        ("Ü-99", "U99", None),
        ("", None, "missing"),
        ("  ", None, "missing"),
        ("--/ .", None, "no_characters"),
    ],
)
def test_identifiers(raw, expected, reason):
    assert _run(normalise_identifiers, [raw]) == ([expected], [reason])


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("12, O'Hara St.", "12 ohara st", None),
        ("  Flat 3B / 41  Wattle   Street ", "flat 3b 41 wattle street", None),
        ("Rue de l'Église", "rue de leglise", None),
        ("", None, "missing"),
        ("...", None, "no_characters"),
    ],
)
def test_texts(raw, expected, reason):
    assert _run(normalise_texts, [raw]) == ([expected], [reason])


@pytest.mark.parametrize(
    ("raw", "expected", "reason"),
    [
        ("2000", "2000", None),
        ("sw1a 1aa", "SW1A1AA", None),
        ("10115-b", "10115B", None),
        ("", None, "missing"),
        ("-", None, "no_characters"),
    ],
)
def test_any_country_postcodes(raw, expected, reason):
    assert _run(normalise_any_postcodes, [raw]) == ([expected], [reason])


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.lists(_text, min_size=1, max_size=20))
def test_identifiers_and_postcodes_idempotent_upper_alphanumeric(values):
    for fn in (normalise_identifiers, normalise_any_postcodes):
        once = fn(pa.array(values, pa.string())).values
        assert fn(once).values.to_pylist() == once.to_pylist()
        for v in once.to_pylist():
            if v is not None:
                assert v and all("A" <= c <= "Z" or "0" <= c <= "9" for c in v)


@settings(max_examples=200, deadline=None)
@given(st.lists(_text, min_size=1, max_size=20))
def test_texts_idempotent_lower_alphanumeric_words(values):
    once = normalise_texts(pa.array(values, pa.string())).values
    assert normalise_texts(once).values.to_pylist() == once.to_pylist()
    for v in once.to_pylist():
        if v is not None:
            assert v == " ".join(v.split())
            assert all(c == " " or "a" <= c <= "z" or "0" <= c <= "9" for c in v)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True), min_size=1, max_size=10))
def test_identifier_formatting_does_not_change_the_value(values):
    # Case, spaces and punctuation between characters are formatting, not the id.
    spaced = [" - ".join(v.lower()) for v in values]
    assert (
        normalise_identifiers(pa.array(spaced)).values.to_pylist()
        == normalise_identifiers(pa.array(values)).values.to_pylist()
    )
