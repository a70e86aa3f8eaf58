"""Run every stage's benchmark in turn at its documented sizes (`make bench`).

Each script writes benchmarks/results/<name>.json and .md itself; this runner only sequences
them, in fresh processes, and stops at the first failure. Pass --quick for a smoke run at
small sizes (minutes rather than an hour on the 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

FULL: list[list[str]] = [
    ["bench_synth"],
    ["bench_tokenise"],
    ["bench_linkage", "--people", "10000", "100000"],
    ["bench_febrl"],
    ["bench_outcomes", "--people", "20000"],
    ["bench_impact", "--people", "200000", "--seeds", "1", "2", "3"],
    ["bench_seal", "--sizes-mib", "64", "1024"],
    ["bench_audit"],
    ["bench_attacks", "--people", "50000", "--schema", "2", "3"],
]

QUICK: list[list[str]] = [
    ["bench_synth", "--runs", "20000:1"],
    ["bench_tokenise", "--rows", "50000"],
    ["bench_linkage", "--people", "5000"],
    ["bench_outcomes", "--people", "5000"],
    ["bench_impact", "--people", "20000", "--seeds", "1", "--bootstrap", "50"],
    ["bench_seal", "--sizes-mib", "64"],
    ["bench_audit", "--appends", "200", "--lines", "5000"],
    ["bench_attacks", "--people", "5000", "--schema", "2", "3"],
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.quick:  # smoke-run figures go to a scratch folder, never over the real results
        env["BENCH_RESULTS_DIR"] = tempfile.mkdtemp(prefix="wmw-bench-quick-")
        print(f"quick run: results in {env['BENCH_RESULTS_DIR']}")
    for name, *rest in QUICK if args.quick else FULL:
        argv = [sys.executable, "-m", f"benchmarks.{name}", *rest]
        print(f"\n== {' '.join(argv[2:])}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(argv, check=False, env=env)
        print(f"   ({time.perf_counter() - t0:.0f} s, exit {done.returncode})", flush=True)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
