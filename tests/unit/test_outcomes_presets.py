"""Sustained-employment presets on hand-built journeys: one-month gaps, spells spanning the
window, several employers, the NLW threshold and its rate year."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pytest
from journey_fixtures import Builder, D, agreement

from wmw_link.errors import ConfigError
from wmw_link.journeys import build_journeys
from wmw_link.outcomes import cohort
from wmw_link.outcomes.presets import (
    PRESETS,
    EarningsThresholdRule,
    MonthsInWindowRule,
    get_rule,
    nlw_rate,
)

START = D(2024, 5, 1)  # months after the start: 1 = May, 2 = June, ... 6 = October, 12 = April
AS_OF = D(2025, 12, 31)


def _features(b: Builder):
    res = build_journeys(agreement(), *b.tables(), as_of=AS_OF)
    con = duckdb.connect()
    cohort.register(con, res.events, res.persons)
    out = cohort.build_cohort(con, AS_OF).set_index("person_id")
    con.close()
    return out


def _sustained(b: Builder, rule, horizon: int) -> dict[str, bool]:
    f = _features(b)
    emp = f[[f"emp_{m}" for m in range(1, 13)]].to_numpy(bool)
    earn = f[[f"earn_{m}" for m in range(1, 13)]].to_numpy(float)
    flags = rule.evaluate(emp, earn, list(f["start"]), horizon)
    return dict(zip(f.index, flags.tolist(), strict=True))


def _person(b: Builder, p: str, *jobs) -> None:
    b.hub(p, start=START)
    for job in jobs:
        b.job(p, *job)


def test_dfe_one_month_gap_still_sustained_two_gaps_not():
    b = Builder()
    # one gap: employed May-June, out in July, back August-October -> 5 of 6
    _person(b, "gap1", (D(2024, 5, 1), D(2024, 6, 30)), (D(2024, 8, 1), None))
    # two gaps: May-June and September-October -> 4 of 6
    _person(b, "gap2", (D(2024, 5, 1), D(2024, 6, 30)), (D(2024, 9, 1), None))
    # gap at the very start: work from June on -> 5 of 6
    _person(b, "late", (D(2024, 6, 1), None))
    got = _sustained(b, PRESETS["dfe_5_of_6_months"], 6)
    assert got == {"gap1": True, "gap2": False, "late": True}


def test_dfe_spell_spanning_the_window_and_the_12_month_window():
    b = Builder()
    _person(b, "span", (D(2020, 1, 1), None))  # in work long before and throughout
    _person(b, "early", (D(2020, 1, 1), D(2024, 10, 31)))  # months 1-6 only
    _person(b, "later", (D(2024, 11, 1), None))  # months 7-12 only
    six = _sustained(b, PRESETS["dfe_5_of_6_months"], 6)
    twelve = _sustained(b, PRESETS["dfe_5_of_6_months"], 12)
    assert six == {"span": True, "early": True, "later": False}
    assert twelve == {"span": True, "early": False, "later": True}


def test_dfe_multiple_employers_in_a_month_count_once():
    b = Builder()
    # two employers at once for three months: 3 months employed, not 6
    _person(
        b,
        "both",
        (D(2024, 5, 1), D(2024, 7, 31), 900.0, "E1"),
        (D(2024, 5, 1), D(2024, 7, 31), 900.0, "E2"),
    )
    # one employer after another: 3 + 3 months
    _person(
        b, "chain", (D(2024, 5, 1), D(2024, 7, 31), 900.0, "E1"), (D(2024, 8, 1), None, 900.0, "E2")
    )
    f = _features(b)
    assert f.loc["both", [f"emp_{m}" for m in range(1, 7)]].astype(int).sum() == 3
    assert _sustained(b, PRESETS["dfe_5_of_6_months"], 6) == {"both": False, "chain": True}


def test_a_spell_of_a_single_day_marks_the_month():
    b = Builder()
    _person(b, "day", (D(2024, 7, 15), D(2024, 7, 15)))
    f = _features(b)
    assert f.loc["day", "emp_3"] and not f.loc["day", "emp_2"] and not f.loc["day", "emp_4"]


def test_whp_threshold_with_the_nlw_in_force_on_the_start_date():
    rule = PRESETS["whp_16h_nlw_26_weeks"]
    assert rule.threshold(D(2024, 5, 1)) == pytest.approx(16 * 26 * 11.44)
    assert rule.threshold(D(2024, 3, 31)) == pytest.approx(16 * 26 * 10.42)
    assert nlw_rate(D(2026, 4, 1)) == 12.71
    with pytest.raises(ConfigError, match="no National Living Wage"):
        nlw_rate(D(2010, 1, 1))


def test_whp_earnings_over_the_horizon_summed_across_employers():
    need = 16 * 26 * 11.44  # 4759.04 over the first 6 months
    b = Builder()
    _person(b, "enough", (D(2024, 5, 1), None, need / 6 * 1.02))  # just above, all six months
    _person(b, "short", (D(2024, 5, 1), None, need / 6 * 0.95))  # 5% short
    # two part-time jobs, each half the threshold: together enough
    _person(
        b,
        "two",
        (D(2024, 5, 1), None, need / 12 * 1.03, "E1"),
        (D(2024, 5, 1), None, need / 12 * 1.03, "E2"),
    )
    # high pay but only three months
    _person(b, "brief", (D(2024, 5, 1), D(2024, 7, 31), need / 2))
    got = _sustained(b, PRESETS["whp_16h_nlw_26_weeks"], 6)
    assert got == {"enough": True, "short": False, "two": True, "brief": True}
    # "brief" earned the money in 3 months: WHP counts cumulative earnings, DfE counts months.
    assert _sustained(b, PRESETS["dfe_5_of_6_months"], 6)["brief"] is False


def test_earnings_are_pro_rated_by_days():
    b = Builder()
    _person(b, "half", (D(2024, 5, 16), D(2024, 5, 31), 3000.0))  # half of month 1
    f = _features(b)
    assert f.loc["half", "earn_1"] == pytest.approx(3000.0 * 16 * 12 / 365.25)
    assert f.loc["half", "earn_2"] == 0


def test_rule_parameters_are_open():
    loose = get_rule("dfe_5_of_6_months", min_months=3)
    assert isinstance(loose, MonthsInWindowRule) and loose.min_months == 3
    emp = np.array([[1, 1, 1, 0, 0, 0]], dtype=bool)
    assert loose.evaluate(emp, np.zeros((1, 6)), [START], 6).tolist() == [True]
    assert PRESETS["dfe_5_of_6_months"].evaluate(emp, np.zeros((1, 6)), [START], 6).tolist() == [
        False
    ]
    cheap = get_rule("whp_16h_nlw_26_weeks", hours_per_week=8)
    assert isinstance(cheap, EarningsThresholdRule)
    assert cheap.threshold(START) == pytest.approx(
        PRESETS["whp_16h_nlw_26_weeks"].threshold(START) / 2
    )
    custom = EarningsThresholdRule(rates={dt.date(2000, 1, 1): 10.0})
    assert custom.threshold(START) == 16 * 26 * 10.0
    with pytest.raises(ConfigError, match="unknown sustained-employment rule"):
        get_rule("three_of_four")
    with pytest.raises(ConfigError):
        get_rule("dfe_5_of_6_months", min_months=7)
    with pytest.raises(ConfigError):
        get_rule("dfe_5_of_6_months", colour="red")
