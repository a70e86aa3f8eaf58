"""The synthetic region's true effect of hub support: per outcome, from counterfactual paths,
in the outcome measures' own definitions; selection on the record; the optional confounder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from wmw_link.errors import ConfigError
from wmw_link.synth import generate
from wmw_link.synth.effects import effect_counts, effect_of_subset, effect_summary
from wmw_link.synth.labour import N_MONTHS, WINDOW_START, Labour

OUTCOMES = {
    "employed_6m",
    "employed_12m",
    "sustained_dfe_5_of_6_months_6m",
    "sustained_dfe_5_of_6_months_12m",
    "sustained_whp_16h_nlw_26_weeks_6m",
    "sustained_whp_16h_nlw_26_weeks_12m",
}


def _lab(actual: list[np.ndarray], cf: list[np.ndarray], month: int, pay: float) -> Labour:
    n = len(actual)
    day = (WINDOW_START + month).astype("datetime64[D]").astype(np.int64) + 9  # the 10th
    return Labour(
        p_employed=np.zeros(n),
        nonwork_type=np.zeros(n, dtype=object),
        employed=np.array(actual),
        employed_cf=np.array(cf),
        hub_month=np.full(n, month, dtype=np.int16),
        hub_day=np.full(n, day, dtype=np.int64),
        base_pay=np.full(n, pay),
    )


def test_effect_of_a_job_found_after_support_only():
    month = 5
    actual = np.zeros(N_MONTHS, dtype=bool)
    actual[month + 1 :] = True  # in work from the month after the start, with support
    never = np.zeros(N_MONTHS, dtype=bool)
    lab = _lab([actual, never], [never, never], month, pay=2000.0)
    got = effect_summary(effect_counts(lab, np.random.default_rng(1)))
    assert set(got) == OUTCOMES
    for name in OUTCOMES:
        # One of the two gains each outcome: 50 points (the WHP threshold of ~GBP 4,760 is
        # met by six months at GBP 2,000 less the days before the first payday).
        assert got[name]["att_points"] == 50.0, name
        assert got[name]["counterfactual"] == 0.0


def test_low_pay_fails_the_earnings_rule_but_not_the_months_rule():
    month = 5
    actual = np.zeros(N_MONTHS, dtype=bool)
    actual[month:] = True
    never = np.zeros(N_MONTHS, dtype=bool)
    got = effect_summary(
        effect_counts(_lab([actual], [never], month, 300.0), np.random.default_rng(2))
    )
    assert got["sustained_dfe_5_of_6_months_6m"]["att_points"] == 100.0
    assert got["sustained_whp_16h_nlw_26_weeks_6m"]["att_points"] == 0.0


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_effects")
    return generate(people=6000, seed=3, out=out, workers=1)


def test_synth_json_holds_the_effect_per_outcome(region):
    eff = json.loads(region.summary.read_text())["truth"]["hub_effect"]
    assert set(eff["by_outcome"]) == OUTCOMES
    assert eff["by_outcome"]["employed_12m"]["att_points"] > 3
    assert eff["by_outcome"]["sustained_dfe_5_of_6_months_12m"]["att_points"] > 2
    ppl = pd.read_parquet(region.people)
    sup = ppl[ppl["hub_start_date"].notna()]
    # The subset function on every supported person gives the same effect (other day draws).
    again = effect_of_subset(ppl)
    assert (
        abs(again["employed_12m"]["att_points"] - eff["by_outcome"]["employed_12m"]["att_points"])
        < 1.5
    )
    # Selection on the record: participants were mostly out of work the month before.
    first = pd.to_datetime(sup["hub_start_date"]).dt.to_period("M")
    idx = (first - pd.Period("2024-01", "M")).apply(lambda d: d.n).to_numpy()
    before = np.array(
        [s[max(i - 1, 0)] == "1" for s, i in zip(sup["employed_by_month"], idx, strict=True)]
    )
    assert before.mean() < 0.2 < ppl["employed_baseline"].mean()


def test_confounding_is_recorded_and_checked(tmp_path):
    r = generate(people=500, seed=1, out=tmp_path / "c", confounding=1.0, workers=1)
    params = json.loads(r.summary.read_text())["parameters"]["hub_effect"]
    assert params["unobserved_confounding"] == 1.0
    with pytest.raises(ConfigError, match="confounding"):
        generate(people=500, seed=1, out=tmp_path / "d", confounding=-1.0)
