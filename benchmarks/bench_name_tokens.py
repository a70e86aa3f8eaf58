"""Measure: which derived name tokens catch real name variants, and how often unrelated names meet.

Uses the variant pairs of :mod:`benchmarks.bench_bloom_params` (one synthetic person's differing
normalised forenames or surnames in the DWP and HMRC extracts: typos, nicknames,
transliterations, dropped or added middle names) and as many unrelated pairs. For each token
column of :mod:`wmw_link.token_schema`, the tokens ``tokenise`` makes are compared the way the
linkage compares them (equality, or a non-empty intersection for list columns, or Dice for the
Bloom filter) and the script reports the share of variant pairs that still meet (recall) and the
share of unrelated pairs that meet by chance (false-meet rate). Forename tokens are measured on
forename pairs, surname tokens on surname pairs. Candidates that token schema version 2 leaves
out (last word, Soundex, 3-letter prefix, a surname's first word) are measured beside them, made
the same way, so the choice can be checked again. Results: benchmarks/results/name_tokens.json
and name_tokens.md.

    .venv/bin/python -m benchmarks.bench_name_tokens [--people 20000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import jellyfish
from benchmarks.bench_bloom_params import name_pairs_by_part
from benchmarks.harness import Bench

from wmw_link import token_schema as ts
from wmw_link.keys import SecretKey
from wmw_link.synth import generate
from wmw_link.tokenise.bloom import BloomEncoder, dice
from wmw_link.tokenise.tokens import Hasher, NameTokens


def _left_out(hasher: Hasher, part: str) -> dict[str, Callable[[str], object]]:
    """Name tokens that token schema v2 does not make, built as version 1 made them."""

    def key(name: str) -> str:
        words = name.split(" ")
        return words[0] if part == "forename" else "".join(words)

    name = hasher.tokenizer(ts.DOMAIN_NAME, "name")
    soundex = hasher.tokenizer(ts.DOMAIN_NAME, "soundex")
    prefix = hasher.tokenizer(ts.DOMAIN_NAME, "prefix")
    out: dict[str, Callable[[str], object]] = {
        f"{part}_last": lambda n: name(n.split(" ")[-1]),
        f"{part}_soundex": lambda n: soundex(jellyfish.soundex(key(n))),
        f"{part}_prefix": lambda n: prefix(key(n)[:3]),
    }
    if part == "surname":
        out["surname_first"] = lambda n: name(n.split(" ")[0])
    return out


def _meets(kind: str, a: object, b: object) -> bool:
    if a is None or b is None:
        return False
    if kind == "hmac_list":
        return bool(set(a) & set(b))  # type: ignore[arg-type]
    return a == b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wmw-bench-names-"))
    try:
        generate(people=args.people, seed=args.seed, out=work)
        pairs = name_pairs_by_part(work, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    hasher = Hasher(SecretKey(b"name token measurement key......"), "wmw-outcomes")
    bloom = BloomEncoder(lambda b: hasher.digest(ts.DOMAIN_BLOOM, b))
    bench = Bench(
        "name_tokens",
        params={f"{p}_{k}_pairs": len(v) for p, (var, unr) in pairs.items()
                for k, v in (("variant", var), ("unrelated", unr))},
    )  # fmt: skip
    for part, (variants, unrelated) in pairs.items():
        nt = NameTokens(hasher, part, bloom)
        index = {c.name: i for i, c in enumerate(nt.columns)}
        cols = [c for c in nt.columns if c.kind in ("hmac", "hmac_list")]
        for col in cols:
            with bench.measure(col.name) as m:
                hit_v = sum(
                    _meets(col.kind, nt.row(a)[index[col.name]], nt.row(b)[index[col.name]])
                    for a, b in variants
                )
                hit_u = sum(
                    _meets(col.kind, nt.row(a)[index[col.name]], nt.row(b)[index[col.name]])
                    for a, b in unrelated
                )
                m.rows = len(variants) + len(unrelated)
            m.extra["variant_recall"] = round(hit_v / len(variants), 4)
            m.extra["unrelated_meet_rate"] = round(hit_u / len(unrelated), 4)
        for label, make in _left_out(hasher, part).items():
            with bench.measure(f"{label} (not in schema v2)") as m:
                hit_v = sum(make(a) == make(b) for a, b in variants)
                hit_u = sum(make(a) == make(b) for a, b in unrelated)
                m.rows = len(variants) + len(unrelated)
            m.extra["variant_recall"] = round(hit_v / len(variants), 4)
            m.extra["unrelated_meet_rate"] = round(hit_u / len(unrelated), 4)
        for thr in (0.9, 0.8, 0.7):
            with bench.measure(f"{part} Bloom Dice >= {thr}") as m:
                hit_v = sum(
                    dice(bloom.filter_int(a), bloom.filter_int(b)) >= thr for a, b in variants
                )
                hit_u = sum(
                    dice(bloom.filter_int(a), bloom.filter_int(b)) >= thr for a, b in unrelated
                )
                m.rows = len(variants) + len(unrelated)
            m.extra["variant_recall"] = round(hit_v / len(variants), 4)
            m.extra["unrelated_meet_rate"] = round(hit_u / len(unrelated), 4)
        # Any of the fuzzy name tokens (what a linkage level "some name token agrees" would see).
        with bench.measure(f"{part} any derived token or Dice >= 0.8") as m:
            fuzzy = [c.name for c in cols if c.name != f"{part}_exact"]

            def any_meet(
                a: str,
                b: str,
                fuzzy: list[str] = fuzzy,
                nt: NameTokens = nt,
                index: dict[str, int] = index,
            ) -> bool:
                ra, rb = nt.row(a), nt.row(b)
                if dice(bloom.filter_int(a), bloom.filter_int(b)) >= 0.8:
                    return True
                return any(_meets(ts.BY_NAME[c].kind, ra[index[c]], rb[index[c]]) for c in fuzzy)

            hit_v = sum(any_meet(a, b) for a, b in variants)
            hit_u = sum(any_meet(a, b) for a, b in unrelated)
            m.rows = len(variants) + len(unrelated)
        m.extra["variant_recall"] = round(hit_v / len(variants), 4)
        m.extra["unrelated_meet_rate"] = round(hit_u / len(unrelated), 4)
    bench.write(
        notes="Variant pairs have different exact tokens by construction (recall of *_exact is "
        "0). A token with high recall and a low unrelated meet rate is a good comparison level; "
        "low-entropy tokens (initial, soundex, prefix) meet often by chance and must be combined "
        "with other fields."
    )


if __name__ == "__main__":
    main()
