"""Benchmark: tokenising about a million rows of synthetic extracts, against a raw-HMAC ceiling.

Steps (all on the same machine, in the same run, with the same number of processes):

1. ``tokenise`` every synthetic partner extract (11 datasets, ~1M rows in all) with 2 workers:
   rows/s, CPU seconds, peak resident memory (this process and its workers).
2. Raw HMAC ceiling A, *input values*: a tight loop of pre-keyed HMAC-SHA256
   (``copy().update().digest()``) over every non-empty record-id and identifier cell of the
   same extracts, split over 2 processes. This is the least work any keyed tokeniser must do:
   hash each input value once.
3. Raw HMAC ceiling B, *token values*: the same loop over as many values as the tokens files
   hold (every non-null HMAC token cell and list element, plus the row refs), i.e. the work of
   a tokeniser that hashed each output token once without de-duplication.

The ratio to a ceiling is ``tokenise rows/s / ceiling rows/s`` (rows/s of a ceiling = rows /
its wall time). Results: benchmarks/results/tokenise.json and tokenise.md.

    .venv/bin/python -m benchmarks.bench_tokenise [--rows 1000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq
from benchmarks.harness import Bench

from wmw_link import token_schema as ts
from wmw_link.agreement import load_agreement
from wmw_link.keys import new_key
from wmw_link.synth import extract_path, generate
from wmw_link.tokenise import tokenise

AGREEMENT = Path(__file__).resolve().parents[1] / "agreements" / "wmw-outcomes.yaml"
ROWS_PER_PERSON = 2.05  # synthetic extracts: about two rows per resident across all partners

_VALUES: list[bytes] = []


def _read_columns(path: Path, columns: list[str]) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=columns)
    conv = pv.ConvertOptions(
        include_columns=columns, column_types={c: pa.string() for c in columns}
    )
    return pv.read_csv(path, convert_options=conv)


def input_values(data: Path) -> list[bytes]:
    """Every non-empty record-id and identifier cell of every extract, as bytes."""
    agreement = load_agreement(AGREEMENT)
    out: list[bytes] = []
    for ds in agreement.datasets:
        cols = [ds.record_id] + [f.column for f in ds.identifiers]
        table = _read_columns(extract_path(data, ds.id), cols)
        for name in cols:
            col = pc.utf8_trim_whitespace(table.column(name))
            col = col.filter(pc.fill_null(pc.not_equal(col, ""), False))
            out += [v.encode() for v in col.to_pylist()]
    return out


def token_value_count(tokens_dir: Path) -> int:
    """HMAC values in the tokens files: row refs, non-null token cells and list elements."""
    total = 0
    for path in sorted(tokens_dir.glob("*.tokens.parquet")):
        table = pq.read_table(path)
        for name in table.column_names:
            col = table.column(name)
            kind = ts.BY_NAME[name].kind if name in ts.BY_NAME else "hmac"
            if kind == "hmac":
                total += len(col) - col.null_count
            elif kind == "hmac_list":
                total += pc.sum(pc.list_value_length(col)).as_py() or 0
    return total


def _ceiling_part(args: tuple[int, int, int]) -> int:
    start, count, n_values = args
    key = hashlib.sha256(b"benchmark key").digest()
    base = hmac.new(key, b"name\x1f", hashlib.sha256)
    inner = getattr(base, "_hmac", None) or base  # the same object tokenise copies
    values = _VALUES
    done = 0
    for i in range(start, start + count):
        h = inner.copy()
        h.update(values[i % n_values])
        h.digest()[:16].hex()
        done += 1
    return done


def hmac_ceiling(n: int, workers: int) -> int:
    """Hash ``n`` values (cycling through the inputs) on ``workers`` forked processes."""
    step = -(-n // workers)
    parts = [(i * step, min(step, n - i * step), len(_VALUES)) for i in range(workers)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return sum(pool.map(_ceiling_part, parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="target rows across extracts")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic data and outputs")
    args = ap.parse_args()

    people = max(1_000, round(args.rows / ROWS_PER_PERSON))
    work = Path(tempfile.mkdtemp(prefix="wmw-bench-tokenise-"))
    try:
        generate(people=people, seed=args.seed, out=work / "data")
        agreement = load_agreement(AGREEMENT)
        key = new_key(work / "link.key")
        refs = {ds.id: new_key(work / f"{ds.id}.ref.key") for ds in agreement.datasets}

        bench = Bench(
            "tokenise",
            params={"people": people, "workers": args.workers, "batch_rows": args.batch_rows},
        )
        rows = rejected = 0
        with bench.measure("tokenise all 11 extracts") as m:
            for ds in agreement.datasets:
                res = tokenise(
                    agreement, ds.id, extract_path(work / "data", ds.id), key, refs[ds.id],
                    work / "tokens", workers=args.workers, batch_rows=args.batch_rows,
                    progress=False,
                )  # fmt: skip
                rows += res.rows_input
                rejected += res.rows_rejected
            m.rows = rows
            m.extra["rejected"] = rejected
        tok = bench.measurements[-1]
        tok_rps = rows / tok.seconds

        global _VALUES
        _VALUES = input_values(work / "data")
        n_in = len(_VALUES)
        n_tok = token_value_count(work / "tokens")
        for label, n in (
            ("HMAC ceiling A: input values", n_in),
            ("HMAC ceiling B: token values", n_tok),
        ):
            with bench.measure(label) as m:
                done = hmac_ceiling(n, args.workers)
                m.rows = rows  # the same rows, so rows/s compare directly
                m.extra["hmac_values"] = done
            ceiling = bench.measurements[-1]
            ratio = tok_rps / (rows / ceiling.seconds)
            tok.extra[f"ratio_to_{'A' if 'A:' in label else 'B'}"] = round(ratio, 3)
        tok.extra["input_values"] = n_in
        tok.extra["token_values"] = n_tok
        load = os.getloadavg()[0]
        notes = (
            f"Ceiling A hashes each of the {n_in:,} non-empty input identifier and record-id "
            f"cells once; ceiling B hashes {n_tok:,} values, one per token in the outputs. "
            "tokenise hashes distinct values only (names, dates and postcodes repeat), so it can "
            "beat B; A is the strict bound. Peak RSS includes the worker processes. "
            f"Load average at the end: {load:.1f} on {os.cpu_count()} CPUs (a shared machine "
            "inflates wall times of both steps alike)."
        )
        bench.write(notes=notes)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
