"""Diagnostic: does the default generator leak a confounder the records do not show?

One synthetic seed, true-person journeys only (no linkage: the question is the generator's
selection, not linkage error). ``estimate_impact`` is run on the same journeys several times:

* ``recorded``: the method as it is (covariates from the records only);
* ``+<traits>``: the same, with generator traits that no extract records added as covariates
  (from ``truth/people.parquet``, joined on the true person): ``disabled`` (the generator's
  disability flag; the records hold PIP for about a third of disabled people), ``ltc`` (a
  long-term condition without disability), ``nonwork_type`` (what the person does when out of
  work: the start hazard depends on it; UC regimes show it only for claimants) and
  ``p_band`` (decile of the generator's steady-state employment probability, which sets the
  job-entry hazard).

If selection into support is on recorded history only, adding the traits moves the estimate
by no more than the method's noise; a confounder shows as a shift towards the truth. The
truth printed is the effect on the participants each run covers (on record before the start,
on common support), from their counterfactual paths, so the estimand gap is not mixed in.

Run: ``python -m benchmarks.diag_impact_oracle SEED PEOPLE BOOTSTRAP [VARIANTS]`` e.g.
``2 200000 20 recorded,all,nonwork_type``; the region and journeys are kept in
``/tmp/diag_oracle_s<SEED>_<PEOPLE>`` (synthetic data only). One JSON line per (variant,
outcome).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from benchmarks.bench_outcomes import AGREEMENT

from wmw_link.agreement import load_agreement
from wmw_link.impact import Settings, covariates, estimate_impact
from wmw_link.journeys import build_journeys
from wmw_link.synth import generate
from wmw_link.synth.effects import effect_of_subset

TRAITS = {
    "disabled": ("disabled", "numeric"),
    "ltc": ("ltc", "numeric"),
    "nonwork_type": ("nonwork_type", "categorical"),
    "p_band": ("p_band", "categorical"),
}
VARIANTS = {
    "recorded": [],
    "all": list(TRAITS),
    "nonwork_type": ["nonwork_type"],
    "disabled_ltc": ["disabled", "ltc"],
    "p_band": ["p_band"],
}
OUTCOMES = (
    "employed_6m",
    "employed_12m",
    "sustained_dfe_5_of_6_months_12m",
    "sustained_whp_16h_nlw_26_weeks_12m",
)


def _setup(work: Path, people: int, seed: int) -> Path:
    """Synth -> tokenise (for the row refs) -> true-person journeys; no linkage."""
    from wmw_link.keys import new_key
    from wmw_link.tokenise import tokenise

    agreement = load_agreement(AGREEMENT)
    synth = generate(people=people, seed=seed, out=work / "synth")
    keys, tok, analyst, maps = work / "keys", work / "tokens", work / "analyst", work / "maps"
    for d in (keys, analyst, maps):
        d.mkdir()
    new_key(keys / "linkage.key")
    truth = pq.read_table(synth.truth).to_pandas()
    for ds, path in synth.extracts.items():
        new_key(keys / f"{ds}.ref.key")
        tokenise(agreement, ds, path, keys / "linkage.key", keys / f"{ds}.ref.key", tok / ds)
        shutil.copy(tok / ds / f"{ds}.payload.parquet", analyst)
        shutil.copy(tok / ds / f"{ds}.manifest.json", analyst)
        cw = pq.read_table(tok / ds / f"{ds}.crosswalk.parquet").to_pandas()
        m = cw.merge(truth[truth["dataset"] == ds][["record_id", "person_id"]], on="record_id")
        table = pa.table(
            {"row_ref": m["row_ref"].astype(str), "person_id": "t" + m["person_id"].astype(str)}
        )
        pq.write_table(table, maps / f"{ds}.map.parquet")
    tt = {p.name.removesuffix(".map.parquet"): pq.read_table(p) for p in maps.glob("*.parquet")}
    build_journeys(agreement, analyst, tt, work / "jt")
    shutil.copy(synth.summary, work / "summary.json")
    shutil.rmtree(tok)
    return work / "jt"


def _traits(people: pd.DataFrame) -> pd.DataFrame:
    p = people["p_employed"].astype(float).to_numpy()
    out = pd.DataFrame(
        {
            "person_id": "t" + people["person_id"].astype(str),
            "disabled": people["disabled"].astype(bool).to_numpy(),
            "ltc": (people["health_condition"].notna() & ~people["disabled"]).to_numpy(),
            "nonwork_type": people["nonwork_type"].astype(str).to_numpy(),
            "p_band": np.array([f"d{int(i)}" for i in pd.qcut(p, 10, labels=False)], dtype=object),
        }
    )
    return out.set_index("person_id")


def main() -> None:
    seed, people_n, boot = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    variants = sys.argv[4].split(",") if len(sys.argv) > 4 else ["recorded", "all"]
    work = Path(f"/tmp/diag_oracle_s{seed}_{people_n}")
    if not (work / "done").exists():
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        _setup(work, people_n, seed)
        (work / "done").write_text("1")
    agreement = load_agreement(AGREEMENT)
    summary = json.loads((work / "summary.json").read_text())
    truth = summary["truth"]["hub_effect"]["by_outcome"]
    people = pd.read_parquet(work / "synth" / "truth" / "people.parquet")
    traits = _traits(people)
    base_features, base_num, base_cat = (
        covariates.features,
        covariates.NUMERIC,
        covariates.CATEGORICAL,
    )
    tables = (
        pq.read_table(work / "jt" / "events.parquet"),
        pq.read_table(work / "jt" / "persons.parquet"),
    )
    for name in variants:
        add = VARIANTS[name]
        num = tuple(TRAITS[a][0] for a in add if TRAITS[a][1] == "numeric")
        cat = tuple(TRAITS[a][0] for a in add if TRAITS[a][1] == "categorical")

        def features(con, units, as_of, sex_sources=None, _add=add):
            f = base_features(con, units, as_of, sex_sources)
            t = traits.reindex(f["person_id"])
            for a in _add:
                f[a] = t[a].to_numpy()
            return f

        covariates.features = features
        covariates.NUMERIC, covariates.CATEGORICAL = base_num + num, base_cat + cat
        try:
            r = estimate_impact(
                agreement, tables, None, settings=Settings(bootstrap=boot), dashboards=False
            )
        finally:
            covariates.features = base_features
            covariates.NUMERIC, covariates.CATEGORICAL = base_num, base_cat
        covered = {int(x[1:]) for x in r.raw.treated_ids}
        tc = effect_of_subset(people[people["person_id"].isin(covered)], seed=seed)
        est = r.raw.outcomes.set_index("outcome")
        bal = r.raw.balance
        for o in OUTCOMES:
            q = est.loc[o]
            print(json.dumps({
                "seed": seed, "variant": name, "outcome": o, "truth_all": truth[o]["att_points"],
                "truth_covered": tc[o]["att_points"], "estimate": round(q.estimate, 2),
                "ci": [round(q.ci_low, 2), round(q.ci_high, 2)],
                "error_vs_covered": round(q.estimate - tc[o]["att_points"], 2),
                "bc": round(q.bc_estimate, 2), "matched": int(r.raw.counts["treated_matched"]),
                "max_smd_after": round(float(bal["smd_after"].abs().max()), 3),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
