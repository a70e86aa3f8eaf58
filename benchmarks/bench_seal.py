"""Benchmark: ``wmw-link seal`` / ``unseal`` stream large files in constant memory.

Each size is sealed (age to the TTP, Ed25519 signature by a controller) and unsealed (every
check) by the real command in a fresh process, so each step's peak memory is its own.

    .venv/bin/python -m benchmarks.bench_seal [--sizes-mib 16 1024 4096]

Results: benchmarks/results/seal.json and seal.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Bench

REPO = Path(__file__).resolve().parents[1]
AGREEMENT = REPO / "agreements" / "wmw-outcomes.yaml"
CLI = str(Path(sys.executable).with_name("wmw-link"))


def _write_random(path: Path, mib: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for i in range(mib):
            fh.write(i.to_bytes(8, "little") + block[8:])  # every MiB differs, cheaply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[16, 1024, 4096])
    args = parser.parse_args()
    from wmw_link.party_keys import new_keyring

    bench = Bench("seal", params={"sizes_mib": args.sizes_mib, "encryption": "age-x25519"})
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        secrets = new_keyring(["dwp", "linkage-unit"], work / "secrets", work / "ring")
        common = ["--agreement", str(AGREEMENT), "--keyring", str(work / "ring")]
        log = ["--audit-log", str(work / "audit.jsonl")]
        inbox = work / "inbox"
        inbox.mkdir()
        for mib in args.sizes_mib:
            src = work / "dwp_claims.manifest.json"  # the name only decides the flow rule
            sealed = work / "x.sealed"
            _write_random(src, mib)
            m = bench.run(
                f"seal {mib} MiB",
                [CLI, *log, "seal", str(src), *common, "--secret", str(secrets["dwp"]),
                 "--to", "linkage-unit", "--out", str(sealed)],
            )  # fmt: skip
            m.extra.update(size_mib=mib, mib_per_s=round(mib / m.seconds, 1))
            m = bench.run(
                f"unseal {mib} MiB",
                [CLI, *log, "unseal", str(sealed), *common, "--as", "linkage-unit",
                 "--secret", str(secrets["linkage-unit"]), "--out", str(inbox)],
            )  # fmt: skip
            m.extra.update(size_mib=mib, mib_per_s=round(mib / m.seconds, 1))
            m.extra["round_trip_ok"] = (inbox / src.name).stat().st_size == src.stat().st_size
            for p in (src, sealed, inbox / src.name):
                p.unlink()
    bench.write(
        notes="Each step is the real CLI in a fresh process (imports included in time and "
        "memory). Peak memory does not grow with the file: sealing and unsealing stream."
    )


if __name__ == "__main__":
    main()
