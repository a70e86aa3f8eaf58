"""Measure: how closely keyed Bloom-filter Dice tracks plaintext bigram Dice, by filter size and k.

The name pairs are real variants from synthetic extracts: the same person (by the ground truth)
recorded with different normalised forenames or surnames in the DWP and HMRC extracts (typos,
nicknames, transliterations, dropped middle names), plus as many random pairs of different
people. For each filter length L and hash count k, the script builds the filters with the code
``tokenise`` uses (:class:`wmw_link.tokenise.bloom.BloomEncoder`) and reports the mean and 99th
percentile absolute error of filter Dice against plaintext padded-bigram Dice, and how many
pairs change side of the 0.8 and 0.6 thresholds. Results: benchmarks/results/bloom_params.json
and bloom_params.md. The chosen parameters are in wmw_link.token_schema (BLOOM_BITS,
BLOOM_HASHES).

    .venv/bin/python -m benchmarks.bench_bloom_params [--people 20000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
from benchmarks.harness import Bench

from wmw_link import token_schema as ts
from wmw_link.keys import SecretKey
from wmw_link.normalise import normalise_names
from wmw_link.synth import extract_path, generate
from wmw_link.tokenise.bloom import BloomEncoder, bigrams, dice
from wmw_link.tokenise.tokens import Hasher

GRID = [
    (256, 2),
    (256, 4),
    (512, 1),
    (512, 2),
    (512, 3),
    (512, 4),
    (1024, 2),
    (1024, 4),
    (1024, 10),
]


def _names(data: Path, dataset: str, rid: str, fore: str, sur: str) -> dict[str, tuple[str, str]]:
    path = extract_path(data, dataset)
    cols = [rid, fore, sur]
    if path.suffix == ".parquet":
        t = pq.read_table(path, columns=cols)
    else:
        t = pv.read_csv(path, convert_options=pv.ConvertOptions(
            include_columns=cols, column_types={c: pa.string() for c in cols}))  # fmt: skip
    f = normalise_names(t.column(fore)).values.to_pylist()
    s = normalise_names(t.column(sur)).values.to_pylist()
    return dict(zip(t.column(rid).to_pylist(), zip(f, s, strict=True), strict=True))


def name_pairs_by_part(
    data: Path, seed: int
) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """Per name part: (variant pairs of one person's names, random pairs of other names)."""
    truth = pq.read_table(data / "truth" / "truth.parquet").to_pylist()
    person = {(r["dataset"], r["record_id"]): r["person_id"] for r in truth}
    dwp = _names(data, "dwp_claims", "claim_ref", "first_name", "surname")
    hmrc = _names(data, "hmrc_rti", "EMPLOYMENT_ID", "FORENAMES", "SURNAME")
    by_person: dict[int, set[tuple[str, str]]] = {}
    for ds, names in (("dwp_claims", dwp), ("hmrc_rti", hmrc)):
        for rid, pair in names.items():
            by_person.setdefault(person[(ds, rid)], set()).add(pair)
    rng = random.Random(seed)
    out = {}
    for i, part in enumerate(("forename", "surname")):
        variants: set[tuple[str, str]] = set()
        for pairs in by_person.values():
            vals = sorted({p[i] for p in pairs if p[i]})
            variants.update((a, b) for a in vals for b in vals if a < b)
        pool = sorted({p[i] for ps in by_person.values() for p in ps if p[i]})
        unrelated = [(rng.choice(pool), rng.choice(pool)) for _ in range(len(variants))]
        out[part] = (sorted(variants), [(a, b) for a, b in unrelated if a != b])
    return out


def name_pairs(data: Path, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(variant pairs of one person's names, random pairs of different names), both parts."""
    by_part = name_pairs_by_part(data, seed)
    return (
        by_part["forename"][0] + by_part["surname"][0],
        by_part["forename"][1] + by_part["surname"][1],
    )


def plain_dice(a: str, b: str) -> float:
    x, y = set(bigrams(a)), set(bigrams(b))
    return 2 * len(x & y) / (len(x) + len(y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wmw-bench-bloom-"))
    try:
        generate(people=args.people, seed=args.seed, out=work)
        variants, unrelated = name_pairs(work, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    hasher = Hasher(SecretKey(b"bloom parameter measurement key!"), "wmw-outcomes")
    truth_v = [plain_dice(a, b) for a, b in variants]
    truth_u = [plain_dice(a, b) for a, b in unrelated]
    bench = Bench(
        "bloom_params",
        params={"variant_pairs": len(variants), "unrelated_pairs": len(unrelated),
                "chosen": f"{ts.BLOOM_BITS} bits, k={ts.BLOOM_HASHES}"},
    )  # fmt: skip
    for bits, k in GRID:
        enc = BloomEncoder(lambda b: hasher.digest(ts.DOMAIN_BLOOM, b), bits=bits, hashes=k)
        with bench.measure(f"L={bits} k={k}") as m:
            est_v = [dice(enc.filter_int(a), enc.filter_int(b)) for a, b in variants]
            est_u = [dice(enc.filter_int(a), enc.filter_int(b)) for a, b in unrelated]
            m.rows = len(variants) + len(unrelated)
        err_v = sorted(abs(x - y) for x, y in zip(est_v, truth_v, strict=True))
        err_u = sorted(abs(x - y) for x, y in zip(est_u, truth_u, strict=True))
        m.extra["mae_variants"] = round(statistics.mean(err_v), 4)
        m.extra["p99_variants"] = round(err_v[int(0.99 * len(err_v))], 4)
        m.extra["mae_unrelated"] = round(statistics.mean(err_u), 4)
        m.extra["p99_unrelated"] = round(err_u[int(0.99 * len(err_u))], 4)
        for thr in (0.8, 0.6):
            flips = sum(
                (x >= thr) != (y >= thr)
                for x, y in zip(est_v + est_u, truth_v + truth_u, strict=True)
            )
            m.extra[f"flips_at_{thr}"] = flips
        m.extra["words"] = bits // 64
    bench.write(
        notes="Error = |filter Dice - plaintext padded-bigram Dice|. Flips: pairs whose side of "
        "the threshold differs between filter and plaintext Dice. Fewer bits or more hash "
        "positions add collisions, which inflate Dice for unrelated names."
    )


if __name__ == "__main__":
    main()
