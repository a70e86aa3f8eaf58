"""Each outcome measure on hand-built journeys, checked on the raw (pre-SDC) totals."""

from __future__ import annotations

import pandas as pd
import pytest
from journey_fixtures import Builder, D, agreement

from wmw_link.journeys import build_journeys
from wmw_link.outcomes import compute_measures
from wmw_link.outcomes.measures import aggregate, bottom_half_median

AS_OF = D(2025, 6, 30)


def _raw(b: Builder, as_of=AS_OF) -> pd.DataFrame:
    res = build_journeys(agreement(), *b.tables(), as_of=as_of)
    raw, _ = compute_measures(res.events, res.persons, as_of)
    return raw


def _total(raw: pd.DataFrame, measure: str) -> dict:
    r = raw[(raw["measure"] == measure) & (raw["breakdown"] == "all")]
    assert len(r) == 1, measure
    return r.iloc[0].to_dict()


def test_follow_up_only_counts_people_started_long_enough_ago():
    b = Builder()
    b.hub("old", start=D(2024, 1, 10)).hub("mid", start=D(2024, 10, 1)).hub(
        "new", start=D(2025, 3, 1)
    )
    raw = _raw(b)
    assert _total(raw, "employed_at_6m")["n"] == 2  # old and mid (mid + 6 months = 2025-04-01)
    assert _total(raw, "employed_at_12m")["n"] == 1  # only old


def test_employed_at_start_and_at_horizon_same_people():
    b = Builder()
    b.hub("a", start=D(2024, 1, 10)).job("a", D(2023, 1, 1), None)  # in work throughout
    b.hub("b", start=D(2024, 1, 10)).job("b", D(2024, 3, 1), None)  # into work after support
    b.hub("c", start=D(2024, 1, 10)).job("c", D(2023, 1, 1), D(2024, 2, 1))  # lost the job
    raw = _raw(b)
    assert _total(raw, "employed_at_start_12m")["count"] == 2  # a, c
    assert _total(raw, "employed_at_12m")["count"] == 2  # a, b


def test_off_benefits_among_those_claiming_at_start():
    b = Builder()
    b.hub("a", start=D(2024, 1, 10)).claim("a", D(2023, 1, 1), D(2024, 4, 1))  # off by 6 months
    b.hub("b", start=D(2024, 1, 10)).claim("b", D(2023, 1, 1), None)  # still claiming
    b.hub("c", start=D(2024, 1, 10)).claim(
        "c", D(2023, 1, 1), None, benefit="UC", regime="light_touch"
    )  # in-work UC
    b.hub("d", start=D(2024, 1, 10)).claim(
        "d", D(2023, 1, 1), None, benefit="PIP", regime="not_applicable"
    )
    b.hub("e", start=D(2024, 1, 10)).claim(
        "e", D(2023, 1, 1), D(2024, 9, 1), benefit="ESA", regime="not_applicable"
    )
    raw = _raw(b)
    six = _total(raw, "off_benefits_6m")
    assert (six["n"], six["count"]) == (3, 1)  # a, b, e claim out-of-work benefits; a is off
    twelve = _total(raw, "off_benefits_12m")
    assert (twelve["n"], twelve["count"]) == (3, 2)  # a and e off by 12 months


def test_earnings_change_and_progression():
    b = Builder()
    b.hub("a", start=D(2024, 1, 10)).job("a", D(2023, 1, 1), D(2024, 3, 31), pay=1000.0).job(
        "a", D(2024, 4, 1), None, pay=1200.0
    )
    b.hub("b", start=D(2024, 1, 10)).job("b", D(2023, 1, 1), None, pay=2000.0)  # no rise
    b.hub("c", start=D(2024, 1, 10)).job("c", D(2024, 2, 1), None, pay=900.0)  # from no work
    raw = _raw(b)
    change = _total(raw, "earnings_change_6m")
    assert change["kind"] == "mean"
    assert change["value"] == pytest.approx((200 + 0 + 900) / 3)
    prog = _total(raw, "progression_6m")
    assert (prog["n"], prog["count"]) == (2, 1)  # a and b were in work; a rose by 20%


def test_population_measures_on_as_of():
    b = Builder()
    # residents of Coventry via their claim's postcode district, aged by birth year
    b.claim(
        "y1", D(2025, 1, 1), None, birth_year=2004, postcode_district="CV1"
    )  # 21: youth claimant
    b.claim("y2", D(2025, 1, 1), D(2025, 3, 1), birth_year=2003, postcode_district="CV2")  # ended
    b.claim(
        "lt", D(2023, 1, 1), None, regime="health_lcwra", birth_year=1970, postcode_district="CV3"
    )  # long-term, health
    b.claim("w1", D(2020, 1, 1), D(2020, 2, 1), birth_year=1980, postcode_district="CV4").job(
        "w1", D(2021, 1, 1), None, pay=1000.0
    )
    b.claim("w2", D(2020, 1, 1), D(2020, 2, 1), birth_year=1985, postcode_district="CV5").job(
        "w2", D(2021, 1, 1), None, pay=3000.0
    )
    b.claim("w3", D(2020, 1, 1), D(2020, 2, 1), birth_year=1990, postcode_district="CV6").job(
        "w3", D(2021, 1, 1), None, pay=2000.0
    )
    b.claim("w4", D(2020, 1, 1), D(2020, 2, 1), birth_year=1995, postcode_district="CV2").job(
        "w4", D(2021, 1, 1), None, pay=4000.0
    )
    b.claim(
        "away", D(2025, 1, 1), None, birth_year=2004, postcode_district="SW1A"
    )  # not a resident
    b.job("nola", D(2021, 1, 1), None)  # employed but no local authority: not a resident
    for i, status in enumerate(["NEET", "EET", "EET", "Unknown"]):
        b.add("skills_enrolments", f"t{i}", course_level="Entry", start_date=D(2025, 1, 1), end_date=None, achieved=False,
              neet_status=status, birth_year=2008, postcode_district="CV1")  # fmt: skip
    # a status row without course dates (as the skills partner sends for 16-17s)
    b.add("skills_enrolments", "t4", course_level=None, start_date=None, end_date=None, achieved=None,
          neet_status="NEET", birth_year=2008, postcode_district="CV1")  # fmt: skip
    b.hub("h1", la="Coventry", start=D(2024, 3, 3), postcode_district="CV1", birth_year=1990)
    raw = _raw(b)
    emp = _total(raw, "employment_rate")
    # residents 16-64: y1 y2 lt w1-w4 t0-t4 h1 = 13; employed: w1-w4
    assert (emp["n"], emp["count"]) == (13, 4)
    assert _total(raw, "health_inactivity")["count"] == 1
    youth = _total(raw, "youth_claimants")
    assert (youth["n"], youth["count"]) == (2, 1)
    lt = _total(raw, "long_term_claimants")
    assert (lt["n"], lt["count"]) == (2, 1)  # y1 and lt claim now; lt for 12+ months
    neet = _total(raw, "neet_16_17")
    assert (neet["n"], neet["count"]) == (4, 2)  # Unknown status left out
    pay = _total(raw, "bottom_half_earnings")
    assert pay["value"] == pytest.approx(1500.0)  # bottom half of 1000, 2000, 3000, 4000
    assert pay["n"] == 2  # the value rests on the two people of the bottom half
    assert _total(raw, "hub_supported")["n"] == 1
    la = raw[(raw["measure"] == "employment_rate") & (raw["breakdown"] == "la")]
    assert set(la["group1"]) == {"Coventry"}


def test_aggregate_fills_every_group_and_intersection_with_zeros():
    frame = pd.DataFrame({"la": ["A", "A", "B"], "sex": ["F", "M", "F"], "ok": [True, False, True]})
    out = aggregate(frame, table="t", measure="m", kind="rate", population="p",
                    domains={"la": ["A", "B", "C"], "sex": ["F", "M"]}, dims=("la", "sex"),
                    pairs=(("la", "sex"),), flag="ok")  # fmt: skip
    assert len(out) == 1 + 3 + 2 + 6
    c = out[(out["breakdown"] == "la") & (out["group1"] == "C")].iloc[0]
    assert (c["n"], c["count"]) == (0, 0)  # a zero row, not a missing one
    bm = out[
        (out["breakdown"] == "la x sex") & (out["group1"] == "B") & (out["group2"] == "M")
    ].iloc[0]
    assert bm["n"] == 0
    assert out[out["breakdown"] == "all"].iloc[0]["count"] == 2


def test_bottom_half_median():
    assert bottom_half_median(pd.Series([1.0, 2.0, 3.0, 4.0, 100.0])) == 2.0  # median of 1, 2, 3
    assert pd.isna(bottom_half_median(pd.Series([], dtype=float)))


def test_every_measure_has_breakdowns_and_intersections():
    b = Builder()
    for i in range(6):
        b.hub(f"p{i}", la=["Coventry", "Dudley"][i % 2], start=D(2024, 1, 10), disability=["Yes", "No"][i % 2],
              postcode_district=["CV1", "DY1"][i % 2])  # fmt: skip
    raw = _raw(b)
    for m in [
        "sustained_dfe_5_of_6_months_6m",
        "sustained_whp_16h_nlw_26_weeks_12m",
        "employment_rate",
        "hub_supported",
    ]:
        bds = set(raw.loc[raw["measure"] == m, "breakdown"])
        assert {
            "all",
            "la",
            "disability",
            "ethnicity",
            "gender",
            "age_band",
            "ethnicity x disability",
            "age_band x gender",
            "la x disability",
        } <= bds, m
    assert "start_month" in set(
        raw.loc[raw["measure"] == "sustained_dfe_5_of_6_months_6m", "breakdown"]
    )
