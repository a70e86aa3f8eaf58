"""Benchmark: audit-log appends (locked, fsynced) and verification of a long log.

    .venv/bin/python -m benchmarks.bench_audit [--appends 2000] [--lines 200000]

Results: benchmarks/results/audit.json and audit.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
from pathlib import Path

from benchmarks.harness import Bench

from wmw_link import audit
from wmw_link.runrecord import RunRecord


def _record(i: int) -> RunRecord:
    rec = RunRecord(command="tokenise", party="dwp", role="controller")
    rec.agreement = {"id": "wmw-outcomes", "version": 1, "hash": "ab" * 32}
    rec.inputs[f"extracts/dwp_claims_{i}.csv"] = f"{i:064x}"
    rec.outputs[f"out/dwp_claims_{i}.tokens.parquet"] = f"{i + 1:064x}"
    rec.rows.update(input=100_000, tokens=99_000, rejected=1_000)
    return rec


def _append_n(args: tuple[str, int, int]) -> None:
    log, start, n = args
    for i in range(start, start + n):
        audit.append(log, _record(i), "ok")


def _write_chain(path: Path, lines: int) -> None:
    """A valid log of ``lines`` entries, chained as append() would, written in one go."""
    prev = audit.GENESIS
    with open(path, "wb") as fh:
        for i in range(1, lines + 1):
            entry = {"seq": i, **audit._entry(_record(i), "ok", None), "prev_hash": prev}
            entry["hash"] = prev = audit.line_hash(entry)
            fh.write(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    bench = Bench("audit", params={"appends": args.appends, "verify_lines": args.lines})
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        log = Path(tmp) / "audit.jsonl"
        with bench.measure("append, 1 writer (lock + fsync per line)", rows=args.appends):
            _append_n((str(log), 0, args.appends))
        with bench.measure("append, 4 concurrent writers", rows=args.appends) as m:
            per = args.appends // 4
            with multiprocessing.get_context("fork").Pool(4) as pool:
                pool.map(_append_n, [(str(log), 10**6 + w * per, per) for w in range(4)])
            m.extra["chain_verified_lines"] = audit.verify(log).lines
        big = Path(tmp) / "big.jsonl"
        _write_chain(big, args.lines)
        with bench.measure(f"verify {args.lines:,} lines", rows=args.lines) as m:
            m.extra["lines_ok"] = audit.verify(big).lines == args.lines
            m.extra["log_mib"] = round(big.stat().st_size / 2**20, 1)
    bench.write(notes="Appends are durable (fsync) and serialised by flock; rows = lines.")


if __name__ == "__main__":
    main()
