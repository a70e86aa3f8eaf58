"""wmw_link.impact on hand-built journeys: eligibility and pseudo-starts, covariate windows,
matching, disclosure control of the published tables, the command."""

from __future__ import annotations

import datetime as dt
import json
import random

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner
from journey_fixtures import AGREEMENT_PATH, Builder, D, agreement, write_inputs

from wmw_link.agreement import DisclosureTier
from wmw_link.cli import main
from wmw_link.disclosure import INTERNAL_PRECISION, PUBLIC_PRECISION
from wmw_link.errors import ConfigError, InputDataError, PolicyError
from wmw_link.impact import Settings, Window, draws, estimate_impact
from wmw_link.impact import covariates as cov
from wmw_link.impact.cohort import build_units
from wmw_link.impact.estimate import Estimates
from wmw_link.impact.matching import kernel_control_means, nearest
from wmw_link.impact.publish import protect_estimates
from wmw_link.journeys import build_journeys
from wmw_link.outcomes import cohort as outcomes_cohort

AS_OF = D(2026, 9, 30)
LAS = ["Birmingham", "Coventry"]


def _con(b: Builder, as_of=AS_OF) -> duckdb.DuckDBPyConnection:
    res = build_journeys(agreement(), *b.tables(), as_of=as_of)
    con = duckdb.connect()
    outcomes_cohort.register(con, res.events, res.persons)
    return con


# -- eligibility and pseudo-starts -------------------------------------------------------------


def test_treated_pool_lookback_and_prior_record():
    b = Builder()
    b.job("on_record", D(2023, 1, 1), D(2024, 12, 31)).hub("on_record", start=D(2025, 3, 10))
    b.hub("no_record", start=D(2025, 4, 2))  # only the hub knows them: left out, counted
    b.job("pool", D(2024, 2, 1), None)
    b.job("lookback", D(2024, 2, 1), None).hub("lookback", start=D(2024, 11, 5))
    b.job("later", D(2024, 2, 1), None).hub("later", start=D(2026, 2, 1))
    b.claim("future_only", D(2025, 9, 1))  # first record after every pseudo-start
    units = build_units(_con(b), Window("2025-01", "2025-06"), lookback_months=3, seed=1)
    got = dict(zip(units["person_id"], units["treated"], strict=True))
    assert got == {"on_record": True, "pool": False, "later": False}
    assert units.attrs["treated_no_prior_record"] == 1
    assert units.attrs["pool_no_prior_record"] == 1  # future_only
    # Pseudo-starts are drawn from the treated's start dates (the one left out too: whether
    # someone is on record is judged after the draw, the same way for both groups).
    assert set(units.loc[~units["treated"], "start"]) <= {D(2025, 3, 10), D(2025, 4, 2)}
    assert units.loc[units["treated"], "support_type"].tolist() == ["employment_support"]


def test_lookback_zero_keeps_earlier_starters_and_window_is_checked():
    b = Builder()
    b.job("a", D(2023, 1, 1), None).hub("a", start=D(2025, 3, 10))
    b.job("lookback", D(2024, 2, 1), None).hub("lookback", start=D(2024, 11, 5))
    units = build_units(_con(b), Window("2025-01", "2025-06"), lookback_months=0, seed=1)
    assert set(units["person_id"]) == {"a", "lookback"}
    with pytest.raises(ConfigError, match="YYYY-MM"):
        Window("2025-1x", "2025-06").bounds()
    with pytest.raises(InputDataError, match="no first hub start"):
        build_units(_con(b), Window("2023-01", "2023-06"), lookback_months=0, seed=1)


def test_pseudo_starts_follow_the_treated_months():
    b = Builder()
    rnd = random.Random(4)
    for i in range(40):
        b.job(f"t{i}", D(2023, 1, 1), D(2024, 6, 1))
        b.hub(f"t{i}", start=D(2025, 1 if i < 30 else 5, 10))
    for i in range(2000):
        b.job(f"c{i}", D(2023, 1, 1), None if rnd.random() < 0.5 else D(2024, 6, 1))
    units = build_units(_con(b), Window("2025-01", "2025-06"), 12, seed=2)
    months = pd.to_datetime(units.loc[~units["treated"], "start"]).dt.month
    assert months.isin([1, 5]).all()
    assert abs((months == 1).mean() - 0.75) < 0.04  # 30 of 40 treated start in January


# -- covariate windows ----------------------------------------------------------------------------


def test_covariate_windows_and_outcomes():
    b = Builder()
    start = D(2025, 7, 1)
    b.hub("p", start=start)
    b.job("p", D(2024, 1, 1), D(2024, 6, 30), pay=2500.0)  # 12-18 months before: 24m only
    b.job("p", D(2025, 1, 1), D(2025, 6, 30), pay=1200.0)  # the 6 months before the start
    b.claim("p", D(2024, 7, 1), D(2024, 12, 31), regime="intensive_work_search")
    b.claim("p", D(2020, 1, 1), None, benefit="PIP", regime="not_applicable")
    b.add(
        "nhs_referrals",
        "p",
        service="IPS",
        referral_date=D(2023, 1, 5),
        condition_category="mental_health",
    )
    b.job("p", D(2025, 9, 1), None, pay=1800.0)  # back in work 2 months after the start
    con = _con(b)
    units = pd.DataFrame(
        {"person_id": ["p"], "start": [start], "treated": [True], "support_type": [None]}
    )
    f = covariates_row(con, units)
    assert f["work_12m"] == pytest.approx(181 / 30.4375, abs=0.01)
    assert f["work_24m"] == pytest.approx((181 + 182) / 30.4375, abs=0.05)
    assert f["uc_iws_12m"] == pytest.approx(184 / 30.4375, abs=0.05)  # Jul-Dec 2024
    assert f["uc_iws_24m"] == f["uc_iws_12m"]
    assert f["in_work_at_start"] and not f["oow_benefit_at_start"]
    assert f["months_since_work"] == 0.0
    assert f["pip_before"]
    assert f["nhs_referral_ever"] and not f["nhs_referral_24m"]  # 30 months before
    assert f["last_pay_band"] == "1000-1499"  # the latest job, not the best paid
    assert f["employed_6m"] and f["employed_12m"]
    assert [f[f"emp_{m}"] for m in range(1, 7)] == [False, False, True, True, True, True]


def covariates_row(con, units) -> pd.Series:
    return cov.features(con, units, AS_OF).iloc[0]


def test_months_since_work_is_capped_and_counts_from_the_last_day():
    b = Builder()
    b.hub("p", start=D(2025, 7, 1)).job("p", D(2024, 1, 1), D(2025, 3, 31))
    b.hub("q", start=D(2025, 7, 1)).claim("q", D(2023, 1, 1), None)
    con = _con(b)
    units = pd.DataFrame({"person_id": ["p", "q"], "start": [D(2025, 7, 1)] * 2,
                          "treated": [True, True], "support_type": [None, None]})  # fmt: skip
    f = cov.features(con, units, AS_OF).set_index("person_id")
    assert f.loc["p", "months_since_work"] == pytest.approx(
        92 / 30.4375, abs=0.01
    )  # 31 Mar -> 1 Jul
    assert f.loc["q", "months_since_work"] == 24.0  # never in work: capped
    assert f.loc["q", "oow_benefit_at_start"] and f.loc["q", "last_pay_band"] == "none"


def test_monthly_work_record_counts_calendar_months():
    # Fewer days out of work, but more calendar months: the monthly record is not the days.
    b = Builder()
    b.hub("a", start=D(2025, 4, 28)).job("a", D(2024, 1, 1), D(2025, 3, 2))
    b.hub("b", start=D(2025, 4, 1)).job("b", D(2024, 1, 1), D(2025, 2, 27))
    b.hub("c", start=D(2025, 4, 1)).claim("c", D(2023, 1, 1), None)
    con = _con(b)
    units = pd.DataFrame({"person_id": ["a", "b", "c"],
                          "start": [D(2025, 4, 28), D(2025, 4, 1), D(2025, 4, 1)],
                          "treated": [True] * 3, "support_type": [None] * 3})  # fmt: skip
    f = cov.features(con, units, AS_OF).set_index("person_id")
    assert f.loc["a", "months_since_work"] > f.loc["b", "months_since_work"]
    assert [f.loc["a", f"work_month_{k}"] for k in (1, 2, 3)] == [True, True, True]
    assert [f.loc["b", f"work_month_{k}"] for k in (1, 2, 3)] == [False, True, True]
    assert (f.loc["a", "months_out"], f.loc["b", "months_out"]) == (1.0, 2.0)
    assert f.loc["a", "any_work_24m"] and not f.loc["c", "any_work_24m"]
    assert f.loc["c", "months_out"] == 25.0 and not f.loc["c", "work_month_1"]


def test_participants_are_not_matched_with_people_in_work_last_month():
    """Starts (and pseudo-starts) fall on days of April. Participants and half the others
    last worked on a day of February; the other half on a day of March - in days out of work
    many look the same, but they were still in work last month - and they find work again.
    Support does nothing, so a fair comparison says about 0; matching on days out of work
    alone paired participants with both halves and said about -30 points."""
    rnd = random.Random(3)
    b = Builder()
    for i in range(240):
        p = f"p{i}"
        b.claim(p, D(2020, 1, 1), D(2020, 6, 30), birth_year=1985, postcode_district="B1")
        kind = "treated" if i < 40 else ("february" if i % 2 else "march")
        b.job(p, D(2023, 1, 1), D(2025, 3 if kind == "march" else 2, rnd.randint(1, 28)))
        if kind == "march":
            b.job(p, D(2025, 6, 1), None)
        if kind == "treated":
            b.hub(p, start=D(2025, 4, rnd.randint(1, 28)), gender=None, birth_year=1985)
    b.claim("p1", AS_OF, None)
    res = build_journeys(agreement(), *b.tables(), as_of=AS_OF)
    r = estimate_impact(
        agreement(), (res.events, res.persons), None, settings=Settings(bootstrap=20),
        dashboards=False,
    )  # fmt: skip
    est = r.raw.outcomes.set_index("outcome")
    assert r.raw.counts["treated_matched"] >= 35
    assert abs(est.loc["employed_6m", "estimate"]) < 10
    assert abs(est.loc["employed_12m", "estimate"]) < 10


# -- matching -------------------------------------------------------------------------------------


def test_nearest_stays_in_cell_and_caliper():
    cell = np.array([0, 0, 0, 0, 1, 1])
    logit = np.array([0.0, 0.05, 0.5, 0.02, 0.0, 0.01])
    treated = np.array([True, False, False, False, True, False])
    m = nearest(cell, logit, treated, k=2, caliper=0.1)
    got = {int(t): sorted(int(m.control[i]) for i, ok in zip(m.idx[r], m.ok[r], strict=True) if ok)
           for r, t in enumerate(m.treated)}  # fmt: skip
    assert got == {0: [1, 3], 4: [5]}  # 2 is outside the caliper; 5 is the only cell-1 control
    w = m.control_weights(len(cell))
    assert w.tolist() == [0, 0.5, 0, 0.5, 0, 1.0]
    tight = nearest(cell, logit, treated, k=2, caliper=0.001)
    assert not tight.on_support.any()


def test_kernel_weights_within_bandwidth_only():
    cell = np.array([0, 0, 0, 1])
    logit = np.array([0.0, 0.05, 0.3, 0.0])
    treated = np.array([True, False, False, False])
    y = np.array([[1.0], [10.0], [1000.0], [5000.0]])
    means, on = kernel_control_means(cell, logit, treated, y, bandwidth=0.1)
    assert on.tolist() == [True] and means[0, 0] == pytest.approx(10.0)
    means, on = kernel_control_means(cell, logit, treated, y, bandwidth=0.01)
    assert on.tolist() == [False]


# -- disclosure control of the published tables ----------------------------------------------------


def _estimates(
    n_treated=400, n_controls=900, groups=((("la", "A"), 380), (("la", "B"), 15), (("la", "C"), 5))
):
    outcomes = pd.DataFrame([{
        "outcome": "employed_6m", "unit": "points", "estimate": 8.04, "ci_low": 5.55, "ci_high": 10.45,
        "kernel_estimate": 7.96, "kernel_ci_low": 5.0, "kernel_ci_high": 10.0, "naive": -30.26,
        "treated_mean": 35.12, "n_treated": n_treated, "n_controls": n_controls,
    }])  # fmt: skip
    rows = [(b, g, "employed_6m", 9.0, 1.0, 17.0, n, 200) for (b, g), n in groups]
    bd = pd.DataFrame(rows, columns=["breakdown", "group", "outcome", "estimate", "ci_low",
                                     "ci_high", "n_treated", "n_controls"])  # fmt: skip
    bal = pd.DataFrame([{"covariate": "work_12m", "smd_before": -0.61234, "smd_after": 0.01234,
                         "mean_treated": 2.123, "mean_control_before": 7.2, "mean_control_after": 2.1}])  # fmt: skip
    return Estimates(outcomes, bd, bal, {"treated": 403, "treated_off_support": 3})


def test_sdc_rounds_suppresses_and_hides_a_second_group():
    tier = DisclosureTier(min_cell=10, rounding_base=5, min_denominator=10)
    doc = protect_estimates(_estimates(), tier, INTERNAL_PRECISION, means=True)
    e = doc["outcomes"]["employed_6m"]
    assert (e["estimate"], e["ci_low"], e["ci_high"], e["naive"]) == (8.0, 5.6, 10.5, -30.3)
    assert e["n_treated"] == 400
    assert doc["counts"] == {"treated": 405, "treated_off_support": None}  # 3 < min_cell
    by = {r["group"]: r for r in doc["breakdowns"]}
    assert by["C"]["n_treated"] is None and by["C"]["estimate"] is None  # 5 < min_cell
    # B (15) is shown alone beside A and the total? No: C hidden alone would follow from
    # the total, so a second group is hidden too.
    hidden = [g for g, r in by.items() if r["n_treated"] is None]
    assert len(hidden) >= 2
    pub = protect_estimates(_estimates(), DisclosureTier(min_cell=20, rounding_base=10,
                                                         min_denominator=50), PUBLIC_PRECISION, means=False)  # fmt: skip
    p = pub["outcomes"]["employed_6m"]
    assert (p["estimate"], p["ci_low"], p["ci_high"]) == (8.0, 6.0, 10.0)
    assert "mean_treated" not in pub["balance"][0]
    assert pub["balance"][0]["smd_after"] == 0.012


def test_no_interval_from_too_few_people():
    tier = DisclosureTier(min_cell=10, rounding_base=5, min_denominator=50)
    doc = protect_estimates(_estimates(n_treated=40), tier, INTERNAL_PRECISION, means=True)
    e = doc["outcomes"]["employed_6m"]
    assert e["estimate"] is None and e["ci_low"] is None and e["naive"] is None
    few_controls = protect_estimates(
        _estimates(n_controls=30), tier, INTERNAL_PRECISION, means=True
    )
    assert few_controls["outcomes"]["employed_6m"]["ci_high"] is None


# -- end to end and the command --------------------------------------------------------------------


def _region(people=900, seed=5) -> Builder:
    """Participants: out of work at the start; half the others in work. Support works:
    participants find jobs 3 months on far more often than similar non-participants."""
    rnd = random.Random(seed)
    b = Builder()
    for i in range(people):
        p = f"p{i}"
        la = LAS[i % 2]
        out = rnd.random() < (0.9 if i < 200 else 0.45)
        b.claim(p, D(2024, 1, 1), None if out else D(2024, 3, 1), birth_year=rnd.randint(1970, 2000),
                postcode_district="B1" if la == "Birmingham" else "CV1")  # fmt: skip
        if not out:
            b.job(p, D(2024, 3, 2), None, pay=rnd.uniform(1200, 2600))
        if i < 200:
            start = D(2025, rnd.randint(1, 3), rnd.randint(1, 28))
            b.hub(p, la=la, start=start, gender=None)  # the others' sex is not on record here
            if out and rnd.random() < 0.5:
                b.job(p, D(start.year, start.month + 3, 1), None, pay=1500.0)
    b.claim("p0", AS_OF, None)  # the data run to AS_OF: twelve months of follow-up
    return b


def test_estimate_impact_end_to_end_and_refusals(tmp_path):
    res = build_journeys(agreement(), *_region().tables(), as_of=AS_OF)
    settings = Settings(bootstrap=30)
    r = estimate_impact(agreement(), (res.events, res.persons), tmp_path / "o", settings=settings)
    doc = json.loads((tmp_path / "o" / "impact.json").read_text())
    for name in ("employed_6m", "employed_12m", "sustained_dfe_5_of_6_months_6m",
                 "sustained_dfe_5_of_6_months_12m", "sustained_whp_16h_nlw_26_weeks_6m",
                 "sustained_whp_16h_nlw_26_weeks_12m"):  # fmt: skip
        e = doc["outcomes"][name]
        assert {"estimate", "ci_low", "ci_high", "naive"} <= set(e)
    e = doc["outcomes"]["employed_6m"]
    assert e["estimate"] > 20 and e["ci_low"] <= e["estimate"] <= e["ci_high"]
    assert doc["balance"] and all("smd_after" in b for b in doc["balance"])
    assert r.raw.counts["treated"] == 200
    assert (tmp_path / "o" / "dashboard.html").stat().st_size > 1_000_000
    assert (tmp_path / "o" / "public" / "impact.csv").exists()
    with pytest.raises(PolicyError, match="roles"):
        estimate_impact(
            agreement(), (res.events, res.persons), None, party="hmrc", settings=settings
        )


def test_cli_impact(tmp_path):
    pdir, mdir = write_inputs(tmp_path, *_region(people=600).tables())
    runner = CliRunner()
    r = runner.invoke(main, ["journeys", "--agreement", str(AGREEMENT_PATH), "--payloads", str(pdir),
                             "--maps", str(mdir), "--out", str(tmp_path / "j")])  # fmt: skip
    assert r.exit_code == 0, r.output
    args = ["impact", "--agreement", str(AGREEMENT_PATH), "--journeys", str(tmp_path / "j")]
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "o"), "--bootstrap", "20"])
    assert r.exit_code == 0, r.output
    assert "employed_6m:" in r.output and "naive" in r.output
    doc = json.loads((tmp_path / "o" / "impact.json").read_text())
    assert doc["kind"] == "wmw-link/impact" and doc["method"]["bootstrap"] == 20
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "o2"), "--as", "linkage-unit"])
    assert r.exit_code == 1 and "rule 'roles'" in r.output and "Traceback" not in r.output
    r = runner.invoke(
        main, [*args, "--out", str(tmp_path / "o3"), "--from", "2019-01", "--to", "2019-02"]
    )
    assert r.exit_code == 1 and "no first hub start" in r.output


def test_written_tables_mark_suppressed_cells_and_keep_counts_whole(tmp_path):
    res = build_journeys(agreement(), *_region().tables(), as_of=AS_OF)
    estimate_impact(
        agreement(), (res.events, res.persons), tmp_path / "o", settings=Settings(bootstrap=20)
    )
    bd = pd.read_csv(tmp_path / "o" / "public" / "breakdowns.csv", dtype=str)
    shown = bd["n_treated"][bd["n_treated"] != "c"]
    assert shown.str.fullmatch(r"\d+").all() and (shown.astype(int) % 10 == 0).all()
    # Public tier: estimates only for groups of at least 50 participants; whole points.
    small = bd[(bd["n_treated"] == "c")]
    assert (small["estimate"] == "c").all()
    est = bd["estimate"][bd["estimate"] != "c"]
    assert est.str.fullmatch(r"-?\d+(\.0)?").all()
    counts = pd.read_csv(tmp_path / "o" / "tables" / "counts.csv", dtype=str)
    assert set(counts["count"]) >= {"treated", "comparison_pool", "treated_matched"}


# -- gender as known before the start ------------------------------------------------------------


def _with_recorded_sex(b: Builder, sex: str = "F") -> tuple[dict, dict]:
    """The builder's tables, HMRC rows carrying ``recorded_sex`` as the shipped agreement's do."""
    payloads, maps = b.tables()
    hm = payloads["hmrc_rti"]
    payloads["hmrc_rti"] = hm.append_column("recorded_sex", pa.array([sex] * hm.num_rows))
    return payloads, maps


def _enrolment(b: Builder, person: str, start) -> None:
    """A record that carries no sex (skills), so someone is on record before the start."""
    b.add("skills_enrolments", person, course_level="Level 2", start_date=start,
          end_date=start + dt.timedelta(days=90), achieved=True, birth_year=1990,
          postcode_district="B1")  # fmt: skip


def test_gender_is_a_covariate_only_if_on_record_before_the_start():
    b = Builder()
    for p in ("before", "after", "hub_only"):
        _enrolment(b, p, D(2024, 6, 1))
    b.job("before", D(2024, 8, 1), D(2024, 12, 31))
    b.job("after", D(2025, 6, 1), None)  # sex on record only from a job after the start
    b.hub("hub_only", start=D(2025, 3, 3), gender="Male")
    res = build_journeys(agreement(), *_with_recorded_sex(b), as_of=AS_OF)
    con = duckdb.connect()
    outcomes_cohort.register(con, res.events, res.persons)
    units = pd.DataFrame({"person_id": ["before", "after", "hub_only"], "treated": [False, False, True],
                          "start": [D(2025, 3, 3)] * 3, "support_type": [None] * 3})  # fmt: skip
    f = cov.features(con, units, AS_OF, cov.sex_sources(agreement())).set_index("person_id")
    assert f.loc["before", "gender_on_record"] == "Female"
    assert f.loc["after", "gender_on_record"] == "Unknown"  # known only because they found work
    assert f.loc["hub_only", "gender_on_record"] == "Unknown"  # the hub records it at the start
    assert f.loc["hub_only", "gender"] == "Male"  # breakdowns keep the participant's answer
    assert {"hmrc_rti", "dwp_claims", "hub_birmingham"} <= set(cov.sex_sources(agreement()))
    assert "skills_enrolments" not in cov.sex_sources(agreement())


def test_comparison_people_are_not_picked_for_having_found_work_later():
    """Everyone is on record before the start only through a skills enrolment (no sex).
    Exactly half of each group find work three months on; support does nothing. A
    non-participant's gender is known only if they found work (HMRC records sex), a
    participant's always (the hub asks). Matching on the journeys' gender compared
    participants with the non-participants who found work and said about -50 points."""
    rnd = random.Random(11)
    b = Builder()
    for i in range(600):
        p = f"p{i}"
        _enrolment(b, p, D(2024, 6, 1))
        if i < 80:
            b.hub(p, start=D(2025, 3, rnd.randint(1, 28)), gender="Female")
        if i % 2 == 0:
            b.job(p, D(2025, 6, 15), None)
    b.claim("p1", AS_OF, None)  # the data run to AS_OF
    res = build_journeys(agreement(), *_with_recorded_sex(b), as_of=AS_OF)
    r = estimate_impact(agreement(), (res.events, res.persons), None,
                        settings=Settings(bootstrap=20), dashboards=False)  # fmt: skip
    est = r.raw.outcomes.set_index("outcome")
    assert r.raw.counts["treated_matched"] >= 70
    for name in ("employed_6m", "employed_12m"):
        assert abs(est.loc[name, "estimate"]) < 15, (name, est.loc[name, "estimate"])


# -- common random numbers: draws follow the records, not the person ids ----------------------------


def _relabelled(maps: dict[str, pa.Table], label: dict[str, str]) -> dict[str, pa.Table]:
    return {ds: t.set_column(1, "person_id", pa.array([label.get(p, p) for p in
                                                       t.column("person_id").to_pylist()]))
            for ds, t in maps.items()}  # fmt: skip


def test_relabelled_person_ids_give_identical_estimates():
    """A person-index refresh that only renames people (here: shuffled ids, so the id order
    differs) must not move the estimate: every draw and tie-break follows the records."""
    payloads, maps = _region(people=700, seed=7).tables()
    ids = sorted({p for t in maps.values() for p in t.column("person_id").to_pylist()})
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    label = {a: f"x{b}" for a, b in zip(ids, shuffled, strict=True)}
    settings = Settings(bootstrap=25)
    got = []
    for m in (maps, _relabelled(maps, label)):
        res = build_journeys(agreement(), payloads, m, as_of=AS_OF)
        r = estimate_impact(agreement(), (res.events, res.persons), None, settings=settings,
                            dashboards=False)  # fmt: skip
        assert r.internal["method"]["random_draws"].startswith("keyed per person by their records")
        got.append(r.raw)
    a, b = got
    cols = ["estimate", "ci_low", "ci_high", "kernel_estimate", "naive"]
    np.testing.assert_allclose(a.outcomes[cols].to_numpy(), b.outcomes[cols].to_numpy(),
                               rtol=0, atol=1e-9)  # fmt: skip
    assert a.counts == b.counts
    assert sorted(label[i] for i in a.treated_ids) == sorted(b.treated_ids)
    # Without record keys (ids hashed instead), the same relabelling draws afresh.
    seen = []
    for m in (maps, _relabelled(maps, label)):
        res = build_journeys(agreement(), payloads, m, as_of=AS_OF)
        persons = res.persons.drop_columns(["record_key"])
        r = estimate_impact(agreement(), (res.events, persons), None, settings=settings,
                            dashboards=False)  # fmt: skip
        assert "person id" in r.internal["method"]["random_draws"]
        seen.append(r.raw.outcomes["ci_high"].to_numpy())
    assert not np.allclose(seen[0], seen[1])


def test_a_moved_record_changes_only_the_draws_of_the_people_it_moved_between():
    b = Builder()
    rnd = random.Random(8)
    for i in range(30):
        b.job(f"t{i}", D(2023, 1, 1), D(2024, 6, 1)).hub(f"t{i}", start=D(2025, 1 + i % 5, 10))
    for i in range(300):
        b.job(f"c{i}", D(2023, 1, 1), None if rnd.random() < 0.5 else D(2024, 6, 1))
        b.claim(f"c{i}", D(2024, 7, 1 + i % 20))
    payloads, maps = b.tables()
    # A linkage error: c1's claim is put with c2.
    claims = maps["dwp_claims"].column("person_id").to_pylist()
    moved = dict(maps)
    moved["dwp_claims"] = maps["dwp_claims"].set_column(
        1, "person_id", pa.array(["c2" if p == "c1" else p for p in claims]))
    units = []
    for m in (maps, moved):
        res = build_journeys(agreement(), payloads, m, as_of=AS_OF)
        con = duckdb.connect()
        outcomes_cohort.register(con, res.events, res.persons)
        units.append(build_units(con, Window("2025-01", "2025-06"), 12, seed=3)
                     .set_index("person_id"))  # fmt: skip
    a, b2 = units
    others = a.index.difference(["c1", "c2"])
    assert b2.loc[others, "draw_key"].equals(a.loc[others, "draw_key"])
    assert b2.loc[others, "start"].equals(a.loc[others, "start"])
    # Key order, not id order (t0 < t1 < ... would be the id order).
    assert (np.diff(a["draw_key"].to_numpy(np.uint64).astype(float)) >= 0).all()
    assert list(a.index) != sorted(a.index)
    # Keys are minima over records: c1 lost a record, c2 gained it, the two hold the same
    # records between them (c1 keeps its key unless the moved claim was its smallest).
    k1, k2 = int(a.loc["c1", "draw_key"]), int(a.loc["c2", "draw_key"])
    n1, n2 = int(b2.loc["c1", "draw_key"]), int(b2.loc["c2", "draw_key"])
    assert n1 >= k1 and n2 <= k2 and min(n1, n2) == min(k1, k2)


def test_keyed_draws_are_uniform_independent_and_poisson():
    keys = np.arange(200_000, dtype=np.uint64) * np.uint64(7919)  # structured keys on purpose
    u = draws.uniform(keys, 1, "a")
    v = draws.uniform(keys, 1, "b")
    w = draws.uniform(keys, 2, "a")
    assert ((u >= 0) & (u < 1)).all()
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01 and abs(np.corrcoef(u, w)[0, 1]) < 0.01
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 19_000
    np.testing.assert_array_equal(u, draws.uniform(keys, 1, "a"))  # a function of its inputs
    p = draws.poisson1(keys, 1, "boot", 4)
    assert abs(p.mean() - 1) < 0.01 and abs(p.var() - 1) < 0.02
    assert abs((p == 0).mean() - np.exp(-1)) < 0.005
    assert draws.smallest(u, 5).tolist() == sorted(np.argsort(u)[:5].tolist())


def test_tied_controls_are_shared_out_at_random():
    """Forty treated and 400 controls with the same score: without a tie-break every
    treated person took the same first five controls."""
    n_t, n_c = 40, 400
    cell = np.zeros(n_t + n_c, dtype=int)
    logit = np.zeros(n_t + n_c)
    treated = np.arange(n_t + n_c) < n_t
    u = draws.uniform(np.arange(n_t + n_c, dtype=np.uint64), 1, "match_ties")
    m = nearest(cell, logit, treated, k=5, caliper=0.1, tie_break=u)
    assert m.ok.all()
    used = np.unique(m.control[m.idx])
    assert len(used) > 100  # 40 x 5 matches spread over the tied controls
    assert all(len(set(r)) == 5 for r in m.idx)  # five different controls each
    plain = nearest(cell, logit, treated, k=5, caliper=0.1)
    assert len(np.unique(plain.control[plain.idx])) == 5


def test_bias_correction_removes_what_a_covariate_gap_is_worth():
    """Abadie-Imbens: matches that differ from the participant in x, with y0 = 3x, make the
    plain matched difference wrong by 3 * the gap; the regression-adjusted one is exact."""
    from wmw_link.impact.estimate import _control_regression, _nn_diffs

    x_c = np.linspace(0.0, 0.8, 9)  # controls; the participants have x = 1
    x = np.concatenate([[1.0, 1.0], x_c])[:, None]
    treated = np.arange(len(x)) < 2
    y = (3 * x[:, 0] + 5 * treated)[:, None]  # effect 5
    cell = np.zeros(len(x), dtype=int)
    m = nearest(cell, x[:, 0], treated, k=2, caliper=1.0)
    plain = _nn_diffs(m, y)[:, 0]
    assert plain == pytest.approx([5 + 3 * 0.25] * 2)  # matched to x = 0.8 and 0.7
    mu0 = _control_regression(x, y, m.control_weights(len(x)) + (~treated) * 1.0)
    assert _nn_diffs(m, y - mu0)[:, 0] == pytest.approx([5.0, 5.0])
