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


def test_on_record_sums_cover_only_the_marked_participants():
    month = 5
    gains = np.zeros(N_MONTHS, dtype=bool)
    gains[month + 1 :] = True
    never = np.zeros(N_MONTHS, dtype=bool)
    lab = _lab([gains, never, never], [never, never, never], month, pay=2000.0)
    # The one who gains has no record before the start; the other two have.
    counts = effect_counts(lab, np.random.default_rng(1), np.array([False, True, True]))
    everyone = effect_summary(counts)
    on_record = effect_summary(counts, "eff_on_record")
    assert set(on_record) == OUTCOMES
    assert counts["eff_on_record.employed_12m.n"] == 2.0
    assert counts["eff.employed_12m.n"] == 3.0
    for name in OUTCOMES:
        assert everyone[name]["att_points"] == pytest.approx(100 / 3, abs=0.01), name
        assert on_record[name]["att_points"] == 0.0, name
    # Without the mask nothing on record is counted (and the draws are the same).
    plain = effect_counts(lab, np.random.default_rng(1))
    assert not any(k.startswith("eff_on_record.") for k in plain)
    assert all(plain[k] == counts[k] for k in plain)


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


def _first_record_day(region) -> pd.Series:
    """Earliest start of a non-hub record per true person, read back from the extracts."""
    truth = pd.read_parquet(region.truth)[["record_id", "person_id"]]
    cols = {  # dataset: (record id, start column, date format)
        "hmrc_rti": ("EMPLOYMENT_ID", "EMPLOYMENT_START", "%Y-%m-%d"),
        "dwp_claims": ("claim_ref", "start_date", "%d/%m/%Y"),
        "nhs_referrals": ("REFERRAL_ID", "REFERRAL_DATE", "%Y%m%d"),
        "skills_enrolments": ("LearnRefNumber", "LearnStartDate", "%d-%b-%Y"),
    }
    parts = []
    for ds, (rid, col, fmt) in cols.items():
        path = region.extracts[ds]
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path, columns=[rid, col])
        else:
            frame = pd.read_csv(path, dtype=str, usecols=[rid, col], keep_default_na=False)
        day = pd.to_datetime(frame[col].replace("", None), format=fmt)
        parts.append(pd.DataFrame({"record_id": frame[rid], "day": day}).dropna())
    rec = pd.concat(parts).merge(truth, on="record_id")
    return rec.groupby("person_id")["day"].min()


def test_on_record_truth_is_the_participants_with_an_earlier_record(region):
    """synth.json's on-record effect counts exactly the participants whose extracts hold a
    non-hub record beginning before their first start (the impact stage's eligibility)."""
    eff = json.loads(region.summary.read_text())["truth"]["hub_effect"]
    ppl = pd.read_parquet(region.people)
    sup = ppl[ppl["hub_start_date"].notna()].set_index("person_id")
    first = _first_record_day(region).reindex(sup.index)
    on = first < pd.to_datetime(sup["hub_start_date"])
    assert 0 < on.sum() < len(sup)
    assert eff["supported_on_record"] == on.sum()
    assert set(eff["by_outcome_on_record"]) == OUTCOMES
    again = effect_of_subset(sup[on].reset_index())
    got = eff["by_outcome_on_record"]["employed_12m"]["att_points"]
    assert abs(again["employed_12m"]["att_points"] - got) < 1.5  # other day draws only
