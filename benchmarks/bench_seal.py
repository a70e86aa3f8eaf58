"""Benchmark: sealing and unsealing stream large files in constant memory.

For each size, a random file is sealed (age to the TTP, Ed25519 signature by a controller) and
unsealed (every check) in a fresh subprocess, so the peak resident memory of each step is its
own. Results: benchmarks/results/seal.json and seal.md.

    .venv/bin/python benchmarks/bench_seal.py [--sizes-mib 16 256 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
AGREEMENT = Path(__file__).parents[1] / "agreements" / "wmw-outcomes.yaml"

_STEP = r"""
import resource, sys, time
from wmw_link.agreement import load_agreement
from wmw_link.seal import seal_file, unseal_file
step, work, agreement = sys.argv[1], sys.argv[2], load_agreement(sys.argv[3])
t = time.perf_counter()
if step == "seal":
    seal_file(f"{work}/dwp_claims.manifest.json", agreement=agreement,
              secret=f"{work}/secrets/dwp/dwp.secret", recipient="linkage-unit",
              keyring=f"{work}/ring", out=f"{work}/x.sealed")
else:
    unseal_file(f"{work}/x.sealed", agreement=agreement,
                secret=f"{work}/secrets/linkage-unit/linkage-unit.secret",
                keyring=f"{work}/ring", out=f"{work}/inbox")
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _write_random(path: Path, mib: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for i in range(mib):
            # vary each MiB cheaply so the file is not one repeated block
            fh.write(i.to_bytes(8, "little") + block[8:])


def _run(step: str, work: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _STEP, step, str(work), str(AGREEMENT)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024  # seconds, MiB (ru_maxrss is KiB on Linux)


def _baseline_rss() -> float:
    code = (
        "import resource, wmw_link.seal; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[16, 256, 1024])
    args = parser.parse_args()
    from wmw_link.party_keys import new_keyring

    rows = []
    baseline = _baseline_rss()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        new_keyring(["dwp", "linkage-unit"], work / "secrets", work / "ring")
        (work / "inbox").mkdir()
        for mib in args.sizes_mib:
            src = work / "dwp_claims.manifest.json"  # the name only decides the flow rule
            _write_random(src, mib)
            seal_s, seal_rss = _run("seal", work)
            unseal_s, unseal_rss = _run("unseal", work)
            same = (work / "inbox" / src.name).stat().st_size == src.stat().st_size
            rows.append(
                {
                    "size_mib": mib,
                    "seal_seconds": round(seal_s, 2),
                    "seal_mib_per_s": round(mib / seal_s, 1),
                    "seal_peak_rss_mib": round(seal_rss, 1),
                    "unseal_seconds": round(unseal_s, 2),
                    "unseal_mib_per_s": round(mib / unseal_s, 1),
                    "unseal_peak_rss_mib": round(unseal_rss, 1),
                    "round_trip_size_ok": same,
                }
            )
            print(rows[-1], flush=True)
            for p in (src, work / "x.sealed", work / "inbox" / src.name):
                p.unlink()
    result = {
        "benchmark": "seal",
        "description": "seal_file / unseal_file (age x25519 + Ed25519) on random files, one subprocess per step",
        "python_import_baseline_rss_mib": round(baseline, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "unix_time": int(time.time()),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "seal.json").write_text(json.dumps(result, indent=2) + "\n")
    cols = list(rows[0])
    md = [
        "# Sealed transfer: throughput and peak memory",
        "",
        f"Peak RSS of a bare `import wmw_link.seal`: {baseline:.1f} MiB. Every step runs in its own process.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows),
        "",
    ]
    (RESULTS / "seal.md").write_text("\n".join(md))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
