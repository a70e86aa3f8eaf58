"""Disclosure control of a realistic run, played by an attacker on the *written* files:
published rates must not narrow a rounded count (brute force over every true pair), gaps come
from published rates, and the public dashboard quotes only public figures."""

from __future__ import annotations

import random
import re

import numpy as np
import pandas as pd
import pytest
from journey_fixtures import Builder, D, agreement

from wmw_link.agreement import DisclosureTier
from wmw_link.disclosure import (
    INTERNAL_PRECISION,
    PUBLIC_PRECISION,
    Precision,
    protect,
    published_rate,
)
from wmw_link.journeys import build_journeys
from wmw_link.outcomes import measure_outcomes
from wmw_link.outcomes.bias import bias_warnings

AS_OF = D(2025, 3, 1)
LAS = ["Birmingham", "Coventry", "Dudley", "Sandwell"]
#: Share of each LA's clients who also appear in PAYE / benefits data: unequal on purpose, so
#: the linkage-bias warning fires in both tiers.
LINK_P = {"Birmingham": 0.9, "Coventry": 0.8, "Dudley": 0.5, "Sandwell": 0.3}


def _region(people=900, seed=11) -> Builder:
    rnd = random.Random(seed)
    b = Builder()
    for i in range(people):
        p, la = f"p{i}", LAS[i % 4]
        start = D(2023, rnd.randint(1, 12), rnd.randint(1, 28))
        b.hub(p, la=la, start=start, gender=rnd.choice(["Female", "Male"]),
              disability=rnd.choice(["Yes", "No", "No"]), birth_year=rnd.randint(1965, 2004))  # fmt: skip
        if rnd.random() < LINK_P[la]:
            b.job(p, D(2024, 1, 1), None, pay=rnd.uniform(900, 3000))
        if rnd.random() < LINK_P[la] * 0.6:
            b.claim(p, D(2022, 6, 1), None if rnd.random() < 0.5 else D(2024, 2, 1))
    return b


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("outcomes")
    res = build_journeys(agreement(), *_region().tables(), as_of=AS_OF)
    result = measure_outcomes(agreement(), (res.events, res.persons), out, as_of=AS_OF)
    return result, out


def _published_rates(folder) -> pd.DataFrame:
    """Every written rate row with its count, n and rate all shown (what an attacker reads)."""
    parts = []
    for p in sorted(folder.glob("*.csv")):
        if p.name == "gaps.csv":
            continue
        t = pd.read_csv(p, dtype=str, keep_default_na=False)
        t = t[(t["kind"] == "rate") & ~t[["n", "count", "rate_pct"]].isin(["", "c"]).any(axis=1)]
        parts.append(t.assign(file=p.name))
    df = pd.concat(parts, ignore_index=True)
    return df.astype({"n": int, "count": int, "rate_pct": float})


def _interval(shown: int, base: int) -> list[int]:
    """Every true value that rounds (half up, like disclosure control) to ``shown``."""
    return [x for x in range(max(0, shown - base), shown + base + 1) if
            base * int(np.floor(x / base + 0.5)) == shown]  # fmt: skip


def _attack(rows: pd.DataFrame, tier: DisclosureTier, publish) -> list[tuple[int, int, int]]:
    """Brute force: for each published row, every true (count, n) in the rounding intervals
    that the suppression rules would also have shown; ``publish(candidates)`` gives the rate
    each would have been published with. Returns (row, candidates shown, candidates whose rate
    matches the published one)."""
    cand = []
    for i, (c, n) in enumerate(zip(rows["count"], rows["n"], strict=True)):
        for tc in _interval(c, tier.rounding_base):
            for tn in _interval(n, tier.rounding_base):
                if tc <= tn:
                    cand.append((i, tc, tn))
    # One protect call over all candidates, each a lone cell (no total, so no families): what
    # an attacker who knows the rules learns from "this row was shown".
    frame = pd.DataFrame(
        {
            "table": "t", "measure": "m", "kind": "rate", "population": "p",
            "breakdown": "cand", "dim1": "cand", "group1": [f"{i}/{c}/{n}" for i, c, n in cand],
            "dim2": "", "group2": "", "n": [n for *_, n in cand],
            "count": [c for _, c, _ in cand], "value": np.nan,
        }
    )  # fmt: skip
    frame["rate"] = publish(frame)
    frame["row"] = [i for i, _, _ in cand]
    frame["true_count"] = frame["count"]
    shown = protect(frame.drop(columns=["rate"]), tier)["rate_flag"] == ""
    frame = frame[shown.to_numpy()]
    out = []
    for i, part in frame.groupby("row"):
        match = part[np.isclose(part["rate"], rows["rate_pct"].iloc[i])]
        out.append((int(i), part["true_count"].nunique(), match["true_count"].nunique()))
    return out


@pytest.mark.parametrize(
    ("folder", "tier_name", "precision"),
    [("tables", "internal", INTERNAL_PRECISION), ("public", "public", PUBLIC_PRECISION)],
)
def test_published_rates_do_not_narrow_rounded_counts(run, folder, tier_name, precision):
    _res, out = run
    tier = getattr(agreement().disclosure, tier_name)
    rows = _published_rates(out / folder)
    assert len(rows) >= 20  # a realistic run: plenty of shown rates to attack

    def publisher(cands: pd.DataFrame) -> list[float]:
        # What the code publishes for each candidate true pair: the rate of its rounded figures.
        prot = protect(cands.drop(columns=["rate"], errors="ignore"), tier, precision)
        return list(prot["rate"])

    results = _attack(rows, tier, publisher)
    # Every candidate the suppression rules allow is still consistent with the published rate:
    # the rate removes none, so each published count keeps its whole rounding interval...
    narrowed = [(i, s, m) for i, s, m in results if m != s]
    assert narrowed == [], rows.iloc[[i for i, _, _ in narrowed[:5]]].to_string()
    # ...which is at least rounding_base true counts wherever the thresholds do not cut it.
    full = [m for _, s, m in results if s >= tier.rounding_base]
    assert full and min(full) >= tier.rounding_base
    # And the published rate is a function of the published count and n only.
    pairs = zip(rows["count"], rows["n"], strict=True)
    want = [published_rate(c, n, precision.rate_decimals) for c, n in pairs]
    assert np.allclose(rows["rate_pct"], want)


def test_the_attack_catches_rates_from_exact_counts(run):
    """The brute force can fail: 0.1% rates from the exact figures (the old behaviour) beside
    rounded counts narrow some rows to a handful of true pairs."""
    _res, out = run
    tier = agreement().disclosure.public
    rows = _published_rates(out / "public")
    candidates_by_row = []

    def leaky(cands: pd.DataFrame) -> list[float]:
        return list(np.round(100.0 * cands["count"] / cands["n"], 1))

    # Re-publish each row the leaky way from one true pair in its interval, then attack it.
    rnd = random.Random(5)
    for c, n in zip(rows["count"], rows["n"], strict=True):
        tc = rnd.choice([x for x in _interval(c, tier.rounding_base) if x >= tier.min_cell])
        tn = rnd.choice([x for x in _interval(n, tier.rounding_base) if x - tc >= tier.min_cell])
        candidates_by_row.append(round(100.0 * tc / tn, 1))
    leaky_rows = rows.assign(rate_pct=candidates_by_row)
    results = _attack(leaky_rows, tier, leaky)
    assert any(m < s for _, s, m in results)
    assert min(m for _, _, m in results) < tier.rounding_base


def test_public_rates_whole_percent_money_to_ten_pounds(run):
    res, out = run
    pub = res.public
    shown = pub.loc[pub["rate"].notna(), "rate"]
    assert len(shown) and (shown == shown.round(0)).all()
    vals = pub.loc[pub["value"].notna(), "value"]
    assert len(vals) and (vals % 10 == 0).all()
    internal_vals = res.internal.loc[res.internal["value"].notna(), "value"]
    assert (internal_vals == internal_vals.round(0)).all()
    csv = pd.read_csv(out / "public" / "employment_rate.csv", dtype=str, keep_default_na=False)
    assert not csv["rate_pct"].str.contains(r"\.").any()


@pytest.mark.parametrize(("folder", "decimals"), [("tables", 1), ("public", 0)])
def test_gaps_are_differences_of_published_rates(run, folder, decimals):
    _res, out = run
    gaps = pd.read_csv(out / folder / "gaps.csv", dtype=str, keep_default_na=False)
    both = gaps[(gaps[["rate", "reference_rate", "gap_pp"]] != "c").all(axis=1)]
    assert len(both)
    for col in ("rate", "reference_rate", "gap_pp"):
        assert both[col].str.fullmatch(r"-?\d+" + (r"\.\d" if decimals else "")).all()
    diff = both["rate"].astype(float) - both["reference_rate"].astype(float)
    assert np.allclose(diff.round(decimals), both["gap_pp"].astype(float))
    # Each rate in gaps.csv is one published in the tier's tables.
    rates = pd.read_csv(out / folder / "employment_rate.csv", dtype=str, keep_default_na=False)
    assert set(both.loc[both["measure"] == "employment_rate", "rate"]) <= set(rates["rate_pct"])


def test_public_dashboard_warnings_only_from_public_tables(run):
    res, out = run
    assert res.warnings and res.warnings_public  # the region links unevenly on purpose
    html = (out / "dashboard-public.html").read_text(encoding="utf-8")
    public_bias = pd.read_csv(out / "public" / "linkage_bias.csv", dtype=str, keep_default_na=False)
    published = set(public_bias["rate_pct"])
    shown = re.findall(r'<div class="warn">(.*?)</div>', html)
    assert shown == [w.replace("&#x27;", "'") for w in res.warnings_public]
    assert res.warnings_public == bias_warnings(res.public, 10.0, 0)
    for w in shown:
        hi, lo = re.search(r"\((\d+(?:\.\d+)?)% vs (\d+(?:\.\d+)?)%", w).groups()
        assert {hi, lo} <= published, w  # every quoted rate is in the public table
        gap = re.search(r"(\d+(?:\.\d+)?) points more often", w).group(1)
        assert float(gap) == float(hi) - float(lo)
    for w in res.warnings:  # internal warnings (0.1% rates) never reach the public dashboard
        assert w not in html
    internal_html = (out / "dashboard.html").read_text(encoding="utf-8")
    assert all(w in internal_html for w in res.warnings)


def test_rate_from_rounded_figures_example():
    """The reviewer's row: n=130, count=60 (true 59 of 132) publishes 46% (60/130), not 44.7%."""
    df = pd.DataFrame(
        [dict(table="t", measure="m", kind="rate", population="p", breakdown="all", dim1="",
              group1="", dim2="", group2="", n=132, count=59, value=np.nan)]
    )  # fmt: skip
    pub = protect(df, DisclosureTier(min_cell=20, rounding_base=10, min_denominator=50),
                  PUBLIC_PRECISION).iloc[0]  # fmt: skip
    assert (pub["n"], pub["count"], pub["rate"]) == (130, 60, 46)
    internal = protect(df, DisclosureTier(), Precision(rate_decimals=1)).iloc[0]
    assert (internal["n"], internal["count"], internal["rate"]) == (130, 60, pytest.approx(46.2))
