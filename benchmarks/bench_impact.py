"""Impact of hub support (matched comparison) vs the synthetic region's true effect.

Per seed: synth -> tokenise -> link -> journeys (linked maps) and journeys with truth maps
(crosswalks + truth.parquet) -> ``estimate_impact`` on both. Checks, per outcome (employed and
each sustained-employment preset at 6 and 12 months):

* the matched estimate is within 1.5 points of the true effect in ``synth.json`` on the
  population it estimates (``truth.hub_effect.by_outcome_on_record``: participants on record
  before their first start, the same day-level definitions, from the counterfactual paths) and
  its 95% interval covers it; the naive difference is further away. The effect on *all*
  participants (``by_outcome``, including those no partner recorded before the start, whom no
  records-based comparison can include: docs/impact.md) is reported next to it;
* every covariate's SMD after matching is below 0.05 (or says which is not);
* linked vs true persons differ by less than 0.5 points.

Linked and true-person runs share their random draws (keyed by each person's records,
``wmw_link.impact.draws``), so "linked - true" measures what the linkage moved, not Monte
Carlo noise.

Run: ``python -m benchmarks.bench_impact [--people 200000] [--seeds 1 2 3] [--bootstrap 200]
[--confounding 1 --name impact-confounding]`` (``--confounding``: the generator's unobserved
confounder, for the docs' "what matching cannot fix" figure).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from benchmarks.bench_outcomes import AGREEMENT, _pipeline_inputs
from benchmarks.harness import RESULTS, Bench

from wmw_link.agreement import load_agreement
from wmw_link.files import write_json_atomic
from wmw_link.impact import Settings, estimate_impact
from wmw_link.journeys import build_journeys
from wmw_link.synth.effects import effect_of_subset

TOLERANCE_PP = 1.5
LINKED_VS_TRUE_PP = 0.5
OUTCOMES = [
    "employed_6m",
    "employed_12m",
    "sustained_dfe_5_of_6_months_6m",
    "sustained_dfe_5_of_6_months_12m",
    "sustained_whp_16h_nlw_26_weeks_6m",
    "sustained_whp_16h_nlw_26_weeks_12m",
]


def run_seed(bench: Bench, people: int, seed: int, boot: int, confounding: float = 0.0) -> dict:
    agreement = load_agreement(AGREEMENT)
    with tempfile.TemporaryDirectory(prefix="bench_impact_") as tmp:
        work = Path(tmp)
        with bench.measure(f"seed {seed}: synth + tokenise + link (set-up)"):
            analyst, linked_maps, truth_maps, summary = _pipeline_inputs(
                work, people, seed, confounding=confounding
            )
        jl = build_journeys(agreement, analyst, linked_maps, work / "jl")
        truth_tables = {
            p.name.removesuffix(".map.parquet"): pq.read_table(p)
            for p in truth_maps.glob("*.map.parquet")
        }
        jt = build_journeys(agreement, analyst, truth_tables, work / "jt", as_of=jl.as_of)
        settings = Settings(bootstrap=boot)
        with bench.measure(f"seed {seed}: impact (linked)") as m:
            rl = estimate_impact(agreement, work / "jl", work / "out", settings=settings)
            m.rows = rl.raw.counts["treated"] + rl.raw.counts["comparison_pool"]
        rt = estimate_impact(
            agreement, (jt.events, jt.persons), None, settings=settings, as_of=jl.as_of
        )
        # The true effect for the participants the true-person estimate covers (on record
        # before the start, on common support), from their counterfactual paths.
        people = pd.read_parquet(work / "synth" / "truth" / "people.parquet")
        covered = {int(x[1:]) for x in rt.raw.treated_ids}
        truth_covered = effect_of_subset(people[people["person_id"].isin(covered)], seed=seed)
    truth_all = summary["truth"]["hub_effect"]["by_outcome"]
    truth = summary["truth"]["hub_effect"]["by_outcome_on_record"]
    out = {"seed": seed, "counts_linked": rl.raw.counts, "counts_true": rt.raw.counts,
           "supported": summary["truth"]["hub_effect"]["supported_people"],
           "supported_on_record": summary["truth"]["hub_effect"]["supported_on_record"]}  # fmt: skip
    rows = []
    el = rl.raw.outcomes.set_index("outcome")
    et = rt.raw.outcomes.set_index("outcome")
    for name in OUTCOMES:
        t, ta = truth[name]["att_points"], truth_all[name]["att_points"]
        r, q = el.loc[name], et.loc[name]
        rows.append({
            "outcome": name, "truth": t, "truth_all": ta, "estimate": round(r.estimate, 2),
            "ci": [round(r.ci_low, 2), round(r.ci_high, 2)], "kernel": round(r.kernel_estimate, 2),
            "naive": round(r.naive, 2), "error": round(r.estimate - t, 2),
            "within_1.5": bool(abs(r.estimate - t) <= TOLERANCE_PP),
            "covers": bool(r.ci_low <= t <= r.ci_high),
            "naive_further": bool(abs(r.naive - t) > abs(r.estimate - t)),
            "error_all": round(r.estimate - ta, 2),
            "within_1.5_all": bool(abs(r.estimate - ta) <= TOLERANCE_PP),
            "covers_all": bool(r.ci_low <= ta <= r.ci_high),
            "estimate_true_persons": round(q.estimate, 2),
            "linked_minus_true": round(r.estimate - q.estimate, 2),
            "linked_vs_true_ok": bool(abs(r.estimate - q.estimate) < LINKED_VS_TRUE_PP),
            "truth_covered": truth_covered[name]["att_points"],
            "true_persons_error_vs_covered": round(q.estimate - truth_covered[name]["att_points"], 2),
            "true_persons_covers_covered": bool(q.ci_low <= truth_covered[name]["att_points"] <= q.ci_high),
        })  # fmt: skip
    for name in ("on_benefit_6m", "on_benefit_12m", "earnings_6m", "earnings_12m"):
        r = el.loc[name]
        out.setdefault("other_outcomes", {})[name] = {
            "estimate": round(r.estimate, 2), "ci": [round(r.ci_low, 2), round(r.ci_high, 2)],
            "naive": round(r.naive, 2), "unit": r.unit,
        }  # fmt: skip
    bal = rl.raw.balance
    out["rows"] = rows
    out["smd_after_max"] = round(float(bal["smd_after"].abs().max()), 4)
    out["smd_after_over_0.05"] = list(bal.loc[bal["smd_after"].abs() >= 0.05, "covariate"])
    out["smd_before_max"] = round(float(bal["smd_before"].abs().max()), 4)
    out["true_effect_monthly_paths"] = {
        "employed_6m": summary["truth"]["hub_effect"].get("att_6m_points"),
        "employed_12m": summary["truth"]["hub_effect"].get("att_12m_points"),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--confounding", type=float, default=0.0,
                    help="strength of the synthetic unobserved confounder (0: none)")
    ap.add_argument("--name", default="impact")
    args = ap.parse_args()
    bench = Bench(args.name, params={"people": args.people, "seeds": args.seeds,
                                     "bootstrap": args.bootstrap, "tolerance_pp": TOLERANCE_PP,
                                     "confounding": args.confounding})  # fmt: skip
    results = [run_seed(bench, args.people, s, args.bootstrap, args.confounding)
               for s in args.seeds]  # fmt: skip
    write_json_atomic(RESULTS / f"{args.name}-details.json", results)
    bench.write(notes=_notes(results))
    print(json.dumps(results, indent=1, default=str))


def _notes(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines += [
            f"## Seed {r['seed']}",
            "",
            f"Treated {r['counts_linked']['treated']:,}, pool {r['counts_linked']['comparison_pool']:,}, "
            f"matched {r['counts_linked']['treated_matched']:,}, off support "
            f"{r['counts_linked']['treated_off_support']:,}, no record before the start "
            f"{r['counts_linked'].get('treated_no_prior_record', 0):,}. Max |SMD| before "
            f"{r['smd_before_max']}, after {r['smd_after_max']} (>= 0.05: "
            f"{', '.join(r['smd_after_over_0.05']) or 'none'}). Participants in synth.json "
            f"{r['supported']:,.0f}, on record before their start {r['supported_on_record']:,.0f}.",
            "",
            "Truth: synth.json `by_outcome_on_record` (participants on record before their "
            "start, the criterion); all participants (`by_outcome`) in the last three columns.",
            "",
            "| outcome | truth | estimate | 95% CI | kernel | naive | within 1.5 | covers | "
            "true persons | linked - true | truth, covered participants | true persons - that | "
            "truth, all participants | estimate - that | covers that |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for x in r["rows"]:
            lines.append(
                f"| {x['outcome']} | {x['truth']:+.2f} | {x['estimate']:+.2f} | "
                f"{x['ci'][0]:+.2f} to {x['ci'][1]:+.2f} | {x['kernel']:+.2f} | {x['naive']:+.2f} | "
                f"{'yes' if x['within_1.5'] else '**no**'} | {'yes' if x['covers'] else '**no**'} | "
                f"{x['estimate_true_persons']:+.2f} | {x['linked_minus_true']:+.2f} | "
                f"{x['truth_covered']:+.2f} | {x['true_persons_error_vs_covered']:+.2f} | "
                f"{x['truth_all']:+.2f} | {x['error_all']:+.2f} | "
                f"{'yes' if x['covers_all'] else 'no'} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
