"""Disclosure control: primary and secondary suppression, rounding, rates, 'c' markers, and
attempts to recover suppressed values by differencing."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmw_link.agreement import DisclosureTier
from wmw_link.disclosure import SUPPRESSED, protect, recoverable_cells, to_csv_frame
from wmw_link.errors import ConfigError

TIER = DisclosureTier(min_cell=10, rounding_base=5, min_denominator=10)
EXACT = DisclosureTier(min_cell=10, rounding_base=1, min_denominator=10)


def _row(
    measure,
    kind,
    pop,
    breakdown,
    d1="",
    g1="",
    d2="",
    g2="",
    n=0,
    count=np.nan,
    value=np.nan,
    table="t",
):
    return dict(
        table=table, measure=measure, kind=kind, population=pop, breakdown=breakdown,
        dim1=d1, group1=g1, dim2=d2, group2=g2, n=n, count=count, value=value,
    )  # fmt: skip


def _two_way(counts: dict[tuple[str, str], int], measure="m", pop="p", kind="count", rate_of=None):
    """A full set of cells (total, one-way A, one-way B, A x B) from an A x B grid of counts."""
    rows = []
    a_vals = sorted({a for a, _ in counts})
    b_vals = sorted({b for _, b in counts})

    def num(n):
        return np.nan if rate_of is None else rate_of(n)

    total = sum(counts.values())
    rows.append(_row(measure, kind, pop, "all", n=total, count=num(total)))
    for a in a_vals:
        n = sum(v for (x, _), v in counts.items() if x == a)
        rows.append(_row(measure, kind, pop, "A", "A", a, n=n, count=num(n)))
    for b in b_vals:
        n = sum(v for (_, y), v in counts.items() if y == b)
        rows.append(_row(measure, kind, pop, "B", "B", b, n=n, count=num(n)))
    for (a, b), n in counts.items():
        rows.append(_row(measure, kind, pop, "A x B", "A", a, "B", b, n=n, count=num(n)))
    return pd.DataFrame(rows)


def test_small_counts_and_zero_are_suppressed_and_marked_c():
    df = pd.DataFrame(
        [
            _row("m", "count", "p", "all", n=120),
            _row("m", "count", "p", "la", "la", "X", n=0),
            _row("m", "count", "p", "la", "la", "Y", n=7),
            _row("m", "count", "p", "la", "la", "Z", n=113),
        ]
    )
    out = protect(df, TIER)
    csv = to_csv_frame(out).set_index("group1")["n"]
    assert csv["X"] == SUPPRESSED  # zero is suppressed, never shown as 0
    assert csv["Y"] == SUPPRESSED
    # X + Y = 7 would be recoverable from the total only if one of them were shown; both hidden
    # and Z shown: total - Z = X + Y only, not each one.
    assert csv["Z"] == "115"  # rounded to base 5
    assert csv[""] == "120"


def test_single_small_cell_forces_secondary_suppression():
    df = pd.DataFrame(
        [
            _row("m", "count", "p", "all", n=100),
            _row("m", "count", "p", "la", "la", "X", n=4),
            _row("m", "count", "p", "la", "la", "Y", n=40),
            _row("m", "count", "p", "la", "la", "Z", n=56),
        ]
    )
    out = protect(df, EXACT)
    by = out.set_index("group1")
    assert by.loc["X", "n_flag"] == SUPPRESSED
    assert by.loc["Y", "n_flag"] == SUPPRESSED  # smallest other cell hidden too
    assert by.loc["Z", "n_flag"] == ""
    # Differencing now gives X + Y = 44, never X alone.
    assert recoverable_cells(out) == []


def test_rounding_half_up_to_base():
    df = pd.DataFrame([_row("m", "count", "p", "all", n=n) for n in (12, 13, 17, 18)])
    df["breakdown"] = ["all", "la", "la", "la"]  # irrelevant families: give distinct keys
    df["dim1"] = ["", "la", "la", "la"]
    df["group1"] = ["", "a", "b", "c"]
    out = protect(df, DisclosureTier(min_cell=1, rounding_base=5, min_denominator=1))
    assert list(out["n"]) == [10.0, 15.0, 15.0, 20.0]


def test_rate_needs_min_denominator_and_shown_numerator():
    df = pd.DataFrame(
        [
            _row("emp", "rate", "p", "all", n=200, count=120),
            _row("emp", "rate", "p", "la", "la", "X", n=15, count=12),  # complement 3 < 10
            _row("emp", "rate", "p", "la", "la", "Y", n=185, count=108),
        ]
    )
    pub = DisclosureTier(min_cell=10, rounding_base=5, min_denominator=50)
    out = protect(df, pub).set_index("group1")
    assert out.loc["X", "count_flag"] == SUPPRESSED  # 12 of 15: "all but 3" not shown
    assert out.loc["X", "rate_flag"] == SUPPRESSED
    assert np.isnan(out.loc["X", "rate"])
    # Y's count is secondary-suppressed (else X = total - Y), so its rate is hidden as well.
    assert out.loc["Y", "count_flag"] == SUPPRESSED
    assert out.loc["", "rate"] == pytest.approx(60.0)


def test_median_needs_min_denominator():
    df = pd.DataFrame(
        [
            _row("pay", "median", "p", "all", n=60, value=1500.0),
            _row("pay", "median", "p", "la", "la", "X", n=12, value=900.0),
            _row("pay", "median", "p", "la", "la", "Y", n=48, value=1700.0),
        ]
    )
    out = to_csv_frame(
        protect(df, DisclosureTier(min_cell=10, rounding_base=5, min_denominator=20))
    )
    by = out.set_index("group1")
    assert by.loc["X", "value"] == SUPPRESSED
    assert by.loc["Y", "value"] == "1700"
    assert by.loc["", "value"] == "1500"


def test_two_way_table_cannot_be_undone_from_margins():
    counts = {
        ("a1", "b1"): 3,
        ("a1", "b2"): 25,
        ("a1", "b3"): 30,
        ("a2", "b1"): 40,
        ("a2", "b2"): 22,
        ("a2", "b3"): 18,
    }
    out = protect(_two_way(counts), EXACT)
    assert recoverable_cells(out) == []
    hidden = out[out["n_flag"] == SUPPRESSED]
    assert len(hidden) >= 4  # a 2x2 block at least, in a two-way table


def test_rows_shared_by_two_tables_are_suppressed_consistently():
    # The same population appears in two tables: one with only the LA breakdown, one with
    # LA x sex. A cell hidden in the second must not be given away by the first.
    counts = {("X", "F"): 4, ("X", "M"): 30, ("Y", "F"): 50, ("Y", "M"): 45}
    two = _two_way(counts, measure="m2").assign(table="t2")
    two = two.replace({"A": "la", "B": "sex", "A x B": "la x sex"})
    one = two[two["breakdown"].isin(["all", "la"])].assign(table="t1", measure="m1")
    out = protect(pd.concat([one, two], ignore_index=True), EXACT)
    flags = out.groupby(["breakdown", "group1", "group2"])["n_flag"].nunique()
    assert (flags == 1).all()  # each cell has one fate in every table
    assert recoverable_cells(out) == []


def test_differencing_attack_on_written_tables_fails():
    """Play the attacker: from the CSV output, solve every family with one unknown."""
    counts = {
        (a, b): v
        for (a, b), v in zip(
            itertools.product("pqr", "xyz"), [2, 40, 33, 27, 0, 19, 50, 61, 8], strict=True
        )
    }
    csv = to_csv_frame(protect(_two_way(counts), EXACT))
    shown = {
        tuple(r[k] for k in ["breakdown", "dim1", "group1", "dim2", "group2"]): r["n"]
        for _, r in csv.iterrows()
    }
    recovered = 0
    total_key = ("all", "", "", "", "")
    families = [[total_key] + [k for k in shown if k[0] == d] for d in ("A", "B")]
    for a in "pqr":
        families.append(
            [("A", "A", a, "", "")] + [k for k in shown if k[0] == "A x B" and k[2] == a]
        )
    for b in "xyz":
        families.append(
            [("B", "B", b, "", "")] + [k for k in shown if k[0] == "A x B" and k[4] == b]
        )
    for fam in families:
        unknown = [k for k in fam if shown[k] == SUPPRESSED]
        if len(unknown) == 1:
            recovered += 1
    assert recovered == 0
    assert (csv["n"] == SUPPRESSED).sum() >= 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=6, max_size=6))
def test_no_family_ever_has_a_single_hidden_cell(values):
    counts = dict(zip(itertools.product(["a1", "a2"], ["b1", "b2", "b3"]), values, strict=True))
    df = _two_way(counts, kind="rate", rate_of=lambda n: n // 2)
    out = protect(df, TIER)
    assert recoverable_cells(out) == []
    # Every primary-unsafe count is hidden.
    raw = df.set_index(["breakdown", "group1", "group2"])
    prot = out.set_index(["breakdown", "group1", "group2"])
    small = raw["n"] < TIER.min_cell
    assert (prot.loc[small[small].index, "n_flag"] == SUPPRESSED).all()


def test_public_tier_is_stricter_than_internal():
    counts = {("a1", "b1"): 15, ("a1", "b2"): 25, ("a2", "b1"): 30, ("a2", "b2"): 60}
    df = _two_way(counts)
    internal = protect(df, TIER)
    public = protect(df, DisclosureTier(min_cell=20, rounding_base=10, min_denominator=50))
    assert (public["n_flag"] == SUPPRESSED).sum() > (internal["n_flag"] == SUPPRESSED).sum()
    assert set(public["n"].dropna() % 10) == {0}


def test_bad_frame_is_refused():
    with pytest.raises(ConfigError, match="lacks column"):
        protect(pd.DataFrame({"n": [1]}), TIER)


def test_secondary_suppression_prefers_uninformative_groups():
    df = pd.DataFrame(
        [
            _row("m", "count", "p", "all", n=200),
            _row("m", "count", "p", "eth", "eth", "Mixed", n=4),
            _row("m", "count", "p", "eth", "eth", "Black", n=30),
            _row("m", "count", "p", "eth", "eth", "Unknown", n=66),
            _row("m", "count", "p", "eth", "eth", "White", n=100),
        ]
    )
    out = protect(df, EXACT)
    by = out.set_index("group1")["n_flag"]
    assert by["Mixed"] == SUPPRESSED and by["Unknown"] == SUPPRESSED
    assert by["Black"] == ""  # the smaller but informative group stays
    assert recoverable_cells(out) == []


def test_months_cannot_be_recovered_from_their_quarter():
    months = {
        "2024-01": 30,
        "2024-02": 4,
        "2024-03": 25,
        "2024-04": 40,
        "2024-05": 35,
        "2024-06": 50,
    }
    rows = [_row("m", "count", "p", "all", n=sum(months.values()))]
    rows += [
        _row("m", "count", "p", "start_month", "start_month", k, n=v) for k, v in months.items()
    ]
    rows.append(_row("m", "count", "p", "start_quarter", "start_quarter", "2024-Q1", n=59))
    rows.append(_row("m", "count", "p", "start_quarter", "start_quarter", "2024-Q2", n=125))
    out = protect(pd.DataFrame(rows), EXACT)
    by = out.set_index("group1")["n_flag"]
    assert by["2024-02"] == SUPPRESSED
    # Q1 = Jan + Feb + Mar: a second month of Q1 (or Q1 itself) must be hidden too.
    assert (by[["2024-01", "2024-03", "2024-Q1"]] == SUPPRESSED).any()
    assert recoverable_cells(out) == []
