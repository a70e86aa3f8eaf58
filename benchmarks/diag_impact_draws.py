"""Diagnostic: one synthetic seed at 200k kept on disk; impact with several settings seeds on
linked and true-person journeys: spread of the estimate over the method's own draws, and the
bias-corrected (Abadie-Imbens) estimate, with or without censoring weights.

Run: ``python -m benchmarks.diag_impact_draws SEED PEOPLE SETTINGS_SEEDS BOOTSTRAP [nocens]``,
e.g. ``2 200000 2025,11 50``; ``DIAG_MAX_WEIGHT=1e9`` lifts the censoring weights' cap; the region, linked and true-person journeys are kept in
``/tmp/diag_impact_s<SEED>_<PEOPLE>`` (synthetic data only) and reused. One JSON line per
(settings seed, outcome).
"""

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from benchmarks.bench_outcomes import AGREEMENT, _pipeline_inputs

from wmw_link.agreement import load_agreement
from wmw_link.impact import Settings, estimate_impact
from wmw_link.journeys import build_journeys
from wmw_link.synth.effects import effect_of_subset


def main():
    import os

    if os.environ.get("DIAG_MAX_WEIGHT"):  # e.g. 1e9: censoring weights uncapped
        from wmw_link.impact import censoring

        censoring.MAX_WEIGHT = float(os.environ["DIAG_MAX_WEIGHT"])
    seed = int(sys.argv[1])
    people = int(sys.argv[2])
    sseeds = [int(x) for x in sys.argv[3].split(",")]
    boot = int(sys.argv[4])
    work = Path(f"/tmp/diag_impact_s{seed}_{people}")
    agreement = load_agreement(AGREEMENT)
    if not (work / "done").exists():
        work.mkdir(exist_ok=True)
        analyst, linked_maps, truth_maps, summary = _pipeline_inputs(work, people, seed)
        jl = build_journeys(agreement, analyst, linked_maps, work / "jl")
        tt = {
            p.name.removesuffix(".map.parquet"): pq.read_table(p)
            for p in truth_maps.glob("*.map.parquet")
        }
        build_journeys(agreement, analyst, tt, work / "jt", as_of=jl.as_of)
        (work / "summary.json").write_text(json.dumps(summary))
        (work / "done").write_text("1")
    summary = json.loads((work / "summary.json").read_text())
    truth = summary["truth"]["hub_effect"]["by_outcome"]
    people_df = pd.read_parquet(work / "synth" / "truth" / "people.parquet")
    OUT = [
        "employed_6m",
        "employed_12m",
        "sustained_dfe_5_of_6_months_12m",
        "sustained_whp_16h_nlw_26_weeks_12m",
    ]
    for ss in sseeds:
        st = Settings(bootstrap=boot, seed=ss, censoring_weights=len(sys.argv) < 6)
        rl = estimate_impact(agreement, work / "jl", None, settings=st, dashboards=False)
        pq_t = (
            pq.read_table(work / "jt" / "events.parquet"),
            pq.read_table(work / "jt" / "persons.parquet"),
        )
        rt = estimate_impact(agreement, pq_t, None, settings=st, as_of=rl.as_of, dashboards=False)
        covered = {int(x[1:]) for x in rt.raw.treated_ids}
        tc = effect_of_subset(people_df[people_df["person_id"].isin(covered)], seed=seed)
        el, et = rl.raw.outcomes.set_index("outcome"), rt.raw.outcomes.set_index("outcome")
        for o in OUT:
            r, q = el.loc[o], et.loc[o]
            print(
                json.dumps(
                    {
                        "synth_seed": seed,
                        "settings_seed": ss,
                        "censoring": st.censoring_weights,
                        "outcome": o,
                        "truth": truth[o]["att_points"],
                        "truth_covered": tc[o]["att_points"],
                        "linked": round(r.estimate, 2),
                        "ci": [round(r.ci_low, 2), round(r.ci_high, 2)],
                        "kernel": round(r.kernel_estimate, 2),
                        "bc": round(r.bc_estimate, 2),
                        "bc_ci": [round(r.bc_ci_low, 2), round(r.bc_ci_high, 2)],
                        "true_persons": round(q.estimate, 2),
                        "true_bc": round(q.bc_estimate, 2),
                        "lin_minus_true": round(r.estimate - q.estimate, 2),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
