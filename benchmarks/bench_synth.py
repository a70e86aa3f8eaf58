"""Benchmark: ``wmw-link synth`` at 100k, 1M and 3M people (target: 1M in at most 2 minutes).

Each size runs the real command in a fresh process, so wall time includes start-up and the
peak memory is that command's own. Results: benchmarks/results/synth.json and synth.md
(``synth-hard.*`` for ``--profile hard``, so the standard figures are not overwritten).

    .venv/bin/python -m benchmarks.bench_synth [--runs 100000:1 1000000:2] [--seed 1]
        [--profile standard|hard]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Bench

from wmw_link.synth.profiles import PROFILES

WMW_LINK = Path(sys.executable).with_name("wmw-link")


def results_name(stage: str, profile: str) -> str:
    """``stage`` for the standard profile, ``stage-<profile>`` otherwise."""
    return stage if profile == "standard" else f"{stage}-{profile}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["100000:1", "1000000:1", "1000000:2", "3000000:1"],
        help="PEOPLE:WORKERS pairs (3M shows that peak memory does not grow with size)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile", choices=list(PROFILES), default="standard", help="synthetic profile"
    )
    args = parser.parse_args(argv)

    params = {"seed": args.seed, "chunk_people": 100_000, "profile": args.profile}
    bench = Bench(results_name("synth", args.profile), params=params)
    for n, w in [tuple(int(x) for x in r.split(":")) for r in args.runs]:
        work = Path(tempfile.mkdtemp(prefix="wmw-bench-synth-"))
        try:
            argv = [str(WMW_LINK), "synth", "--people", str(n), "--seed", str(args.seed)]
            argv += ["--workers", str(w), "--profile", args.profile, "--out", str(work)]
            m = bench.run(f"synth {n:,} people, {w} worker(s)", argv)
            summary = json.loads((work / "synth.json").read_text())
            records = sum(f["rows"] for f in summary["extracts"].values())
            m.rows = records  # rows/s counts extract records written
            size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
            effect = summary["truth"]["hub_effect"]
            m.extra.update(
                {
                    "people": n,
                    "workers": w,
                    "people/s": round(n / m.seconds),
                    "output MiB": round(size / 2**20, 1),
                    "1M within 2 min": (m.seconds <= 120) if n == 1_000_000 else None,
                    "hub ATT 12m (pts)": effect.get("att_12m_points"),
                }
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    bench.write(
        notes=(
            "rows = extract records written (all eleven extracts); peak RSS is the command's own, "
            "workers included; CPU s counts the main process only (workers are not waited for "
            "by it directly). Wall time depends on the shared machine's load at the time. "
            "Target from issue 2: 1 million people with all extracts in at most 2 minutes."
        )
    )


if __name__ == "__main__":
    main()
