"""Micro-benchmark: pairwise scoring (``wmw_link.evaluate.score``) on a fabricated clustering.

Not a linkage result: a random clustering of ``--rows`` records (default 2,000,000, about a 1M
people region) made to look like one, so the scorer's cost can be timed at scale without a
link. Persons hold 1-6 records over 11 datasets; 1.5% of persons are split in two, 0.5% of
clusters merged with another; households of about 2.5 persons; the equity report's four
person-level groups with some nulls; predicted ids are 21-character text like a map's.

    .venv/bin/python -m benchmarks.bench_scoring [--rows 2000000]

Times ``score`` twice: with the household and equity columns (one evaluation), and with the
household only (one point of the benchmark's threshold sweep). Results:
benchmarks/results/scoring.json and scoring.md.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd
from benchmarks.harness import Bench

DATASETS = np.array(
    ["hmrc_rti", "dwp_claims", "skills_enrolments", "nhs_referrals"]
    + [
        f"hub_{h}"
        for h in (
            "birmingham",
            "coventry",
            "dudley",
            "sandwell",
            "solihull",
            "walsall",
            "wolverhampton",
        )
    ]  # fmt: skip
)
DATASET_SHARE = np.array([0.66, 0.26, 0.054, 0.011] + [0.0023] * 7)


def fabricate(rows: int, seed: int = 42) -> pd.DataFrame:
    """A random (dataset, pred, true, household, groups) frame of ``rows`` records."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3, 4, 5, 6], p=[0.2, 0.45, 0.2, 0.1, 0.03, 0.02], size=rows)
    sizes = sizes[np.cumsum(sizes) <= rows]
    true = np.repeat(np.arange(len(sizes)), sizes)
    true = np.concatenate([true, np.arange(len(sizes), len(sizes) + rows - len(true))])
    n_persons = int(true.max()) + 1
    pred = true.copy()
    # Split 1.5% of persons: their second half of records gets a new cluster.
    split = rng.random(n_persons) < 0.015
    first = np.r_[0, np.flatnonzero(np.diff(true)) + 1]
    pos = np.arange(rows) - np.repeat(first, np.diff(np.r_[first, rows]))
    size_of = np.bincount(true)[true]
    moved = split[true] & (pos >= size_of // 2) & (size_of > 1)
    pred[moved] = n_persons + true[moved]
    # Merge 0.5% of clusters into a random other one.
    merge = rng.random(2 * n_persons) < 0.005
    target = rng.integers(0, n_persons, 2 * n_persons)
    pred = np.where(merge[pred], target[pred], pred)
    labels = np.array([f"p{i:020x}" for i in range(2 * n_persons)], dtype=object)
    ds = DATASETS[rng.choice(len(DATASETS), p=DATASET_SHARE / DATASET_SHARE.sum(), size=rows)]
    person_group = {
        "ethnic_group": rng.choice(["Asian", "Black", "Mixed", "Other", "White"], n_persons),
        "ethnicity_detailed": rng.choice([f"d{i}" for i in range(18)], n_persons),
        "sex": rng.choice(["F", "M"], n_persons),
        "age_band": rng.choice(["16-24", "25-34", "35-49", "50-64", "65+", None], n_persons),
    }
    household = (np.arange(n_persons) / 2.5).astype(np.int64).astype(float)
    household[rng.random(n_persons) < 0.02] = np.nan
    frame = pd.DataFrame(
        {"dataset": ds, "pred": labels[pred], "true": true, "household": household[true]}
    )
    for col, values in person_group.items():
        frame[col] = pd.Series(values[true], dtype=object)
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--name", default="scoring", help="results file name")
    ap.add_argument("--label", default="", help="a note for the rows (e.g. before / after)")
    args = ap.parse_args()
    from wmw_link.evaluate import score

    frame = fabricate(args.rows)
    bench = Bench(args.name, params={"rows": args.rows, "fabricated": True})
    tag = f" ({args.label})" if args.label else ""
    with bench.measure(f"score with household + equity groups{tag}", rows=len(frame)) as m:
        ev = score(frame)
        m.extra["f1"] = round(ev.pairwise.f1, 6)
    with bench.measure(f"score with household only (one sweep point){tag}", rows=len(frame)) as m:
        ev = score(frame[["dataset", "pred", "true", "household"]])
        m.extra["f1"] = round(ev.pairwise.f1, 6)
    bench.write(
        notes="Fabricated random clustering (not a link); load average "
        f"{os.getloadavg()[0]:.1f} at the end."
    )


if __name__ == "__main__":
    main()
