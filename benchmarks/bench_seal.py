"""Benchmark: ``wmw-link seal`` / ``unseal`` stream large files in constant memory.

Each size is sealed (age to the TTP, Ed25519 signature by a controller) and unsealed (every
check) by the real command in a fresh process, so each step's peak memory is its own.

    .venv/bin/python -m benchmarks.bench_seal [--sizes-mib 64 1024 4096]

Results: benchmarks/results/seal.json and seal.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from benchmarks.harness import Bench

REPO = Path(__file__).resolve().parents[1]
AGREEMENT = REPO / "agreements" / "wmw-outcomes.yaml"
CLI = str(Path(sys.executable).with_name("wmw-link"))


def _write_map(path: Path, mib: int) -> None:
    """A real-shaped map file (row_ref, person_id as random 32-hex strings) of about ``mib`` MiB.

    Seal checks a file's content against its kind, so the benchmark sends what the TTP really
    sends the analysts at scale: a map. Random hex does not compress, so size ~ rows x 64 B.
    """
    rows_per_group = 1 << 20
    offsets = pa.py_buffer(np.arange(0, 32 * (rows_per_group + 1), 32, dtype=np.int32).tobytes())
    groups = max(1, round(mib * (1 << 20) / (64 * rows_per_group)))
    schema = pa.schema([("row_ref", pa.string()), ("person_id", pa.string())])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(groups):
            cols = [
                pa.StringArray.from_buffers(
                    rows_per_group,
                    offsets,
                    pa.py_buffer(os.urandom(16 * rows_per_group).hex().encode()),
                )
                for _ in range(2)
            ]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[64, 1024, 4096])
    args = parser.parse_args()
    from wmw_link.party_keys import new_keyring

    bench = Bench("seal", params={"sizes_mib": args.sizes_mib, "encryption": "age-x25519"})
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        secrets = new_keyring(["linkage-unit", "insight-team"], work / "secrets", work / "ring")
        common = ["--agreement", str(AGREEMENT), "--keyring", str(work / "ring")]
        log = ["--audit-log", str(work / "audit.jsonl")]
        inbox = work / "inbox"
        inbox.mkdir()
        for mib in args.sizes_mib:
            src = work / "dwp_claims.map.parquet"  # TTP -> analysts, the largest real transfer
            sealed = work / "x.sealed"
            _write_map(src, mib)
            mib = round(src.stat().st_size / (1 << 20))
            m = bench.run(
                f"seal {mib} MiB",
                [CLI, *log, "seal", str(src), *common, "--secret", str(secrets["linkage-unit"]),
                 "--to", "insight-team", "--out", str(sealed)],
            )  # fmt: skip
            m.extra.update(size_mib=mib, mib_per_s=round(mib / m.seconds, 1))
            m = bench.run(
                f"unseal {mib} MiB",
                [CLI, *log, "unseal", str(sealed), *common, "--as", "insight-team",
                 "--secret", str(secrets["insight-team"]), "--out", str(inbox)],
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
