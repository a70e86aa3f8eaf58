"""Outcome measures from linked maps vs the same measures from ground-truth identities.

The pipeline runs as the partners would: synthetic extracts -> tokenise (each controller) ->
link (TTP) -> journeys + outcomes (analysts, from payloads and maps only). The same journeys and
measures are then computed with "truth maps" (row_ref -> true person, from the controllers'
crosswalks and the synthetic truth). Headline measures must agree within 0.5 percentage points;
the tables say where they do not, and the Markdown explains why.

Also checks the figures against the generator's own truths (LA employment ordering,
disability gap, the hub effect) and times journeys + outcomes.

Run: ``.venv/bin/python -m benchmarks.bench_outcomes [--people 20000] [--seed 11]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from benchmarks.harness import RESULTS, Bench

from wmw_link.agreement import load_agreement
from wmw_link.files import write_json_atomic
from wmw_link.journeys import build_journeys
from wmw_link.keys import new_key
from wmw_link.outcomes import compute_measures, measure_outcomes
from wmw_link.synth import generate

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = ROOT / "agreements" / "wmw-outcomes.yaml"
TOLERANCE_PP = 0.5

RATE_HEADLINES = [
    "sustained_dfe_5_of_6_months_6m",
    "sustained_dfe_5_of_6_months_12m",
    "sustained_whp_16h_nlw_26_weeks_6m",
    "sustained_whp_16h_nlw_26_weeks_12m",
    "employed_at_start_12m",
    "employed_at_12m",
    "off_benefits_6m",
    "employment_rate",
    "health_inactivity",
    "youth_claimants",
    "long_term_claimants",
    "neet_16_17",
]


def _pipeline_inputs(
    work: Path, people: int, seed: int, agreement_path: Path = AGREEMENT, confounding: float = 0.0
) -> tuple[Path, Path, Path, dict]:
    """Synth -> tokenise -> link. Returns (analyst payload dir, linked maps dir, truth maps dir, synth summary).

    ``confounding``: the generator's unobserved confounder (0: none, the default region)."""
    from wmw_link.linkage import link
    from wmw_link.tokenise import tokenise

    agreement = load_agreement(agreement_path)
    synth = generate(people=people, seed=seed, out=work / "synth", confounding=confounding)
    keys = work / "keys"
    keys.mkdir()
    new_key(keys / "linkage.key")
    tok = work / "tokens"
    for ds, path in synth.extracts.items():
        ref = keys / f"{ds}.ref.key"
        new_key(ref)
        tokenise(agreement, ds, path, keys / "linkage.key", ref, tok / ds)
    ttp_in, analyst, truth_maps = work / "ttp_in", work / "analyst_payloads", work / "truth_maps"
    for d in (ttp_in, analyst, truth_maps):
        d.mkdir()
    truth = pq.read_table(synth.truth).to_pandas()
    for ds in synth.extracts:
        src = tok / ds
        shutil.copy(src / f"{ds}.tokens.parquet", ttp_in)
        shutil.copy(src / f"{ds}.manifest.json", ttp_in)
        shutil.copy(src / f"{ds}.payload.parquet", analyst)
        shutil.copy(src / f"{ds}.manifest.json", analyst)
        cw = pq.read_table(src / f"{ds}.crosswalk.parquet").to_pandas()
        t = truth[truth["dataset"] == ds][["record_id", "person_id"]]
        m = cw.merge(t, on="record_id", how="inner")
        pq.write_table(
            pa.table(
                {"row_ref": m["row_ref"].astype(str), "person_id": "t" + m["person_id"].astype(str)}
            ),
            truth_maps / f"{ds}.map.parquet",
        )
    link(agreement, ttp_in, work / "linked_maps", report=False)
    summary = json.loads(synth.summary.read_text())
    return analyst, work / "linked_maps", truth_maps, summary


def _true_population_rates(
    synth_dir: Path, summary: dict, as_of: dt.date
) -> tuple[dict[str, float], float]:
    """Employment rate by LA and the disability gap (points) of *all* true residents aged 16-64
    in the month of ``as_of``, from the generator's people file (evaluation only)."""
    people = pq.read_table(synth_dir / "truth" / "people.parquet").to_pandas()
    first = dt.date.fromisoformat(summary["window"]["first_day"])
    month = (as_of.year - first.year) * 12 + as_of.month - first.month
    employed = people["employed_by_month"].str[month] == "1"
    age = as_of.year - pd.to_datetime(people["birth_date"]).dt.year
    wa = (age >= 16) & (age <= 64)
    by_la = employed[wa].groupby(people.loc[wa, "la"]).mean() * 100
    by_dis = employed[wa].groupby(people.loc[wa, "disabled"]).mean() * 100
    return {str(k): float(v) for k, v in by_la.items()}, float(by_dis[True] - by_dis[False])


def _total(raw: pd.DataFrame, measure: str) -> pd.Series:
    return raw[(raw["measure"] == measure) & (raw["breakdown"] == "all")].iloc[0]


def _rate(raw: pd.DataFrame, measure: str, bd: str = "all", g: str = "") -> float:
    r = raw[(raw["measure"] == measure) & (raw["breakdown"] == bd) & (raw["group1"] == g)].iloc[0]
    return 100.0 * r["count"] / r["n"] if r["n"] else float("nan")


def _headlines(raw: pd.DataFrame) -> dict[str, float]:
    out = {m: float(_rate(raw, m)) for m in RATE_HEADLINES}
    out["disability_gap_pp"] = _rate(raw, "employment_rate", "disability", "Yes") - _rate(
        raw, "employment_rate", "disability", "No"
    )
    out["hub_supported (people)"] = float(_total(raw, "hub_supported")["n"])
    out["cohort_12m (people)"] = float(_total(raw, "employed_at_12m")["n"])
    out["linked_to_other_source"] = _rate(raw, "linked_to_other_source")
    return out


def _why(measure: str, linked: pd.Series, truth: pd.Series) -> str:
    if "people" in measure:
        return "a count: false merges shrink it, missed links split people and inflate it"
    if measure == "linked_to_other_source":
        return "by construction: true identities link every record that belongs together"
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--agreement", type=Path, default=AGREEMENT, help="agreement to run under")
    ap.add_argument("--name", default="outcomes", help="results file name")
    args = ap.parse_args()
    agreement = load_agreement(args.agreement)
    bench = Bench(args.name, params={"people": args.people, "seed": args.seed, "tolerance_pp": TOLERANCE_PP,
                                     "agreement": args.agreement.name})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_outcomes_") as tmp:
        work = Path(tmp)
        with bench.measure("synth + tokenise + link (set-up)"):
            analyst, linked_maps, truth_maps, summary = _pipeline_inputs(
                work, args.people, args.seed, args.agreement
            )
        with bench.measure("journeys (linked maps)") as m:
            jl = build_journeys(agreement, analyst, linked_maps, work / "journeys_linked")
            m.rows = jl.counts["events"]
        # Truth maps are no linkage run (no link-manifest.json): passed as tables.
        truth_tables = {
            p.name.removesuffix(".map.parquet"): pq.read_table(p)
            for p in truth_maps.glob("*.map.parquet")
        }
        jt = build_journeys(
            agreement, analyst, truth_tables, work / "journeys_truth", as_of=jl.as_of
        )
        with bench.measure("outcomes (measures + SDC + dashboards)") as m:
            res = measure_outcomes(agreement, work / "journeys_linked", work / "outcomes")
            m.rows = len(res.internal)
        raw_l, _ = compute_measures(jl.events, jl.persons, jl.as_of)
        raw_t, _ = compute_measures(jt.events, jt.persons, jl.as_of)
        hl, ht = _headlines(raw_l), _headlines(raw_t)
        rows = []
        for k in hl:
            diff = hl[k] - ht[k]
            is_rate = "people" not in k
            rows.append({
                "measure": k, "linked": round(hl[k], 2), "truth": round(ht[k], 2), "difference": round(diff, 2),
                "within_0.5pp": (abs(diff) <= TOLERANCE_PP) if is_rate and k != "linked_to_other_source" else None,
                "note": _why(k, hl[k], ht[k]),
            })  # fmt: skip
        la_l = {
            g: _rate(raw_l, "employment_rate", "la", g)
            for g in summary["truth"]["realised"]["by_la"]
        }
        la_t, true_gap = _true_population_rates(work / "synth", summary, jl.as_of)
        order_l = sorted(la_l, key=la_l.get, reverse=True)
        order_t = sorted(la_t, key=la_t.get, reverse=True)
        rank = pd.Series(la_l).rank().corr(pd.Series(la_t).rank(), method="spearman")
        eff = summary["truth"]["hub_effect"]
        details = {
            "headlines": rows,
            "headline_rates_within_tolerance": all(
                r["within_0.5pp"] for r in rows if r["within_0.5pp"] is not None
            ),
            "la_employment_rate_linked": {k: round(float(v), 1) for k, v in la_l.items()},
            "la_employment_rate_generator": {k: round(v, 1) for k, v in la_t.items()},
            "la_order_linked": order_l,
            "la_order_generator": order_t,
            "la_rank_correlation": round(float(rank), 3),
            "generator_disability_gap_pp": round(true_gap, 1),
            "generator_hub_effect": eff,
            "measured_in_work_start_to_12m_pp": round(
                hl["employed_at_12m"] - hl["employed_at_start_12m"], 1
            ),
            "bias_warnings": res.warnings,
            "as_of": jl.as_of.isoformat(),
        }
        diffs = [abs(r["difference"]) for r in rows if r["within_0.5pp"] is not None]
        m.extra.update({
            "max_abs_headline_diff_pp": round(max(diffs), 2),
            "headlines_within_0.5pp": f"{sum(r['within_0.5pp'] for r in rows if r['within_0.5pp'] is not None)}/{len(diffs)}",
            "la_rank_corr": details["la_rank_correlation"],
        })  # fmt: skip
    bench.write(notes=_notes(details))
    write_json_atomic(RESULTS / f"{args.name}-details.json", details)
    print(json.dumps(details, indent=1, default=str))


def _notes(d: dict) -> str:
    lines = [
        "## Linked vs ground-truth identities (raw measures, before disclosure control)",
        "",
        "| measure | linked | truth | difference | within 0.5 pp | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in d["headlines"]:
        ok = "" if r["within_0.5pp"] is None else ("yes" if r["within_0.5pp"] else "**no**")
        lines.append(
            f"| {r['measure']} | {r['linked']} | {r['truth']} | {r['difference']:+} | {ok} | {r['note']} |"
        )
    lines += [
        "",
        "## Against the generator's truths",
        "",
        f"- Employment rate proxy by LA (linked): {d['la_employment_rate_linked']}",
        f"- True employment rate by LA on the data date (people.parquet, all residents 16-64): {d['la_employment_rate_generator']}",
        f"- LA order linked: {', '.join(d['la_order_linked'])}; generator: {', '.join(d['la_order_generator'])} "
        f"(Spearman {d['la_rank_correlation']})",
        f"- True disability employment gap on the data date: {d['generator_disability_gap_pp']} pp",
        f"- Generator's hub effect: {d['generator_hub_effect']}",
        f"- Measured change in work, start to 12 months (same people): {d['measured_in_work_start_to_12m_pp']:+} pp",
        f"- Linkage-bias warnings: {d['bias_warnings'] or 'none'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
