"""Benchmark: what an honest-but-curious TTP recovers from token files without the key (issue 10).

The attacker gets every tokens file of a run (and its manifest: the published schema), the
dataset names, the published code and a *reference population*: a synthetic world from another
seed standing in for ONS name, birth and postcode tables (its extracts, normalised with the
product's normalisers). Never the key, never the target's plaintext. Attacks
(``benchmarks/attacks/``):

1. **frequency alignment** of every token column against the reference's pre-hash values;
2. **cross-column graph attacks**: equal tokens across columns; the date-of-birth calendar
   reconstruction (v2); components of records linked by any column holding a field;
3. **Bloom-filter pattern mining / graph matching**, globally and (v3) per salt group;
4. **combination**: forename, surname, exact date of birth and full postcode recovered by any
   attack, alone and together, beside the guessing baseline (everyone gets the reference's most
   common value).

Scored by the benchmark (crosswalks and synthetic truth, never seen by the attacks): a field is
recovered for a record when the guess equals its normalised value. Only shares are written.

    .venv/bin/python -m benchmarks.bench_attacks --people 50000 --schema 2 3

``--schema 2`` is a frozen copy of token schema v2 (``benchmarks/attacks/schema_v2.py``);
``--schema 3`` is the product's own ``tokenise``. Results: benchmarks/results/attacks.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from benchmarks.attacks import schema_v3
from benchmarks.attacks.bloom import pattern_mining
from benchmarks.attacks.calendar import calendar_attack
from benchmarks.attacks.common import AttackResult, strings
from benchmarks.attacks.components import component_attack, cross_column_equalities
from benchmarks.attacks.frequency import frequency_alignment
from benchmarks.attacks.schema_v2 import SchemaV2
from benchmarks.attacks.score import NHS, Scorer
from benchmarks.attacks.world import SCORED, Schema, field_arrays, field_transforms, world_fields
from benchmarks.harness import Bench, machine

from wmw_link.agreement import Agreement, load_agreement
from wmw_link.keys import SecretKey, new_key

HERE = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or HERE / "results")
AGREEMENT = HERE.parent / "agreements" / "wmw-outcomes.yaml"
#: The issue's targets, in percentage points above the guessing baseline (fields) or shares.
TARGET_POINTS_ABOVE_BASELINE = 1.0
TARGET_NAMES_DOB = 0.001
TARGET_POSTCODE = 0.01
#: Per-salt Bloom attack: groups of at least this many records, or the few largest groups.
SALT_GROUP_MIN, SALT_GROUPS_LARGEST = 50, 3


def _salt_groups(salt: np.ndarray) -> np.ndarray:
    """Per record: its salt group's id if the group is attacked on its own, else -1.

    The groups are the *true* salt groups (an oracle: the attacker would have to estimate
    them), so the per-salt figures are an upper bound for that variant."""
    ok = salt != None  # noqa: E711
    keys, inv, cnt = np.unique(salt[ok].astype(str), return_inverse=True, return_counts=True)
    chosen = set(np.flatnonzero(cnt >= SALT_GROUP_MIN).tolist())
    chosen |= set(np.argsort(-cnt, kind="stable")[:SALT_GROUPS_LARGEST].tolist())
    out = np.full(len(salt), -1, np.int64)
    out[np.flatnonzero(ok)] = np.where(np.isin(inv, list(chosen)), inv, -1)
    return out


def attack_run(
    schema: Schema,
    tokens: pa.Table,
    reference: pa.Table,
    bench: Bench,
    tag: str,
    salt_groups: np.ndarray | None = None,
) -> list[AttackResult]:
    """Every attack on one run's tokens; each is timed as its own measurement.

    ``tokens``, ``reference`` and the published schema are all the attacker uses;
    ``salt_groups`` is the scorer's oracle grouping for the per-salt Bloom variant."""
    ref_fields = field_arrays(reference)
    results: list[AttackResult] = []

    def timed(label: str, fn: Any) -> AttackResult:
        with bench.measure(f"v{schema.version} {label}", rows=tokens.num_rows) as m:
            r = fn()
        r.seconds = m.seconds
        results.append(r)
        return r

    timed("frequency alignment", lambda: frequency_alignment(
        tokens, schema.columns, schema.composite_inputs(ref_fields)))  # fmt: skip
    years = Counter(d.year for d in reference["date_of_birth"].to_pylist() if d is not None)
    timed("calendar reconstruction", lambda: calendar_attack(tokens, schema.columns, years))
    timed("record-graph components", lambda: component_attack(
        tokens, schema.columns, ref_fields, field_transforms(ref_fields)))  # fmt: skip

    def equalities() -> AttackResult:
        r = AttackResult("cross-column equalities")
        eq = cross_column_equalities(tokens, schema.columns)
        r.notes = {"column_pairs_sharing_values": len(eq), "pairs": eq}
        return r

    timed("cross-column equalities", equalities)
    names = schema.bloom_names(ref_fields)
    grams = schema.bloom_inputs(ref_fields)
    ref_bloom = {p: (names[p], grams[p][0]) for p in grams}
    timed("Bloom pattern mining (global)", lambda: pattern_mining(
        tokens, schema.bloom_columns(), ref_bloom))  # fmt: skip
    if salt_groups is not None:
        timed("Bloom pattern mining (per salt group, oracle groups)", lambda: pattern_mining(
            tokens, schema.bloom_columns(), ref_bloom, groups=salt_groups,
            name="Bloom pattern mining per salt group"))  # fmt: skip
    return results


def score_run(
    schema: Schema,
    truth: pa.Table,
    tokens: pa.Table,
    results: list[AttackResult],
    reference: pa.Table,
) -> dict[str, Any]:
    """Shares recovered per attack and field, per column, combinations and baselines."""
    from benchmarks.attacks.world import TargetRun

    run = TargetRun(schema, tokens, truth)
    sc = Scorer(run, schema.composite_inputs(field_arrays(truth)))
    ref_strings = {f: strings(reference[f]) for f in SCORED}
    out: dict[str, Any] = {
        "records": sc.n,
        "nhs_records": int((sc.datasets == NHS).sum()),
        "baseline": sc.baseline(ref_strings),
        "attacks": {},
    }
    any_hit = {f: np.zeros(sc.n, bool) for f in SCORED}
    for r in results:
        a: dict[str, Any] = {"seconds": r.seconds, "notes": r.notes, "fields": {}, "columns": {}}
        for f, g in r.fields.items():
            if f in SCORED:
                hit = sc.field_hits(f, g)
                any_hit[f] |= hit
                a["fields"][f] = sc.shares(hit)
        for c, g in r.columns.items():
            a["columns"][c] = float(sc.hits(sc.column_truth(c), g).mean())
        out["attacks"][r.name] = a
    fn, sn, dob, pc_ = (any_hit[f] for f in SCORED)
    out["combined"] = {
        **{f: sc.shares(any_hit[f]) for f in SCORED},
        "forename+surname+date_of_birth": sc.shares(fn & sn & dob),
        "all four": sc.shares(fn & sn & dob & pc_),
    }
    base = out["baseline"]
    out["targets"] = {
        **{
            f"{f} <= baseline + {TARGET_POINTS_ABOVE_BASELINE:g} pt": bool(
                out["combined"][f]["all"] <= base[f]["all"] + TARGET_POINTS_ABOVE_BASELINE / 100
            )
            for f in SCORED[:3]
        },
        "forename+surname+date_of_birth < 0.1%": bool(
            out["combined"]["forename+surname+date_of_birth"]["all"] < TARGET_NAMES_DOB
        ),
        "postcode < 1%": bool(out["combined"]["postcode"]["all"] < TARGET_POSTCODE),
    }
    return out


def run_schema(
    version: int,
    agreement: Agreement,
    target_dir: Path,
    reference: pa.Table,
    work: Path,
    bench: Bench,
    today: dt.date,
    workers: int = 2,
) -> dict[str, Any]:
    """Tokenise the target world under one schema, attack it, score it."""
    every_row = world_fields(agreement, target_dir, today, kept_only=False)
    schema: Schema
    if version == 2:
        schema = SchemaV2()
        truth = every_row.filter(every_row["kept"])
        with bench.measure("v2 tokenise (benchmark copy)", rows=truth.num_rows):
            tok = schema.tokens(field_arrays(truth), SecretKey(os.urandom(32)), agreement.id)  # type: ignore[attr-defined]
        tokens = tok.add_column(0, "dataset", truth["dataset"])
    else:
        if not schema_v3.available():
            raise SystemExit(
                "--schema 3 needs the product's token schema v3 (wmw_link.tokenise.composites)"
            )
        schema = schema_v3.SchemaV3()
        key = new_key(work / "keys" / "link.key", force=True)
        with bench.measure("v3 tokenise (product)", rows=every_row.num_rows):
            tokens, truth = schema.tokenise_world(
                agreement, target_dir, work, key, every_row, workers
            )  # type: ignore[attr-defined]
    salt = None
    bi = schema.bloom_inputs(field_arrays(truth))
    if bi and any(pc.is_valid(s).to_numpy(zero_copy_only=False).any() for _, s in bi.values()):
        salt = _salt_groups(strings(next(iter(bi.values()))[1]))
    # The attacker's view: dataset names, row refs and token columns, nothing else.
    results = attack_run(schema, tokens, reference, bench, f"v{version}", salt)
    return score_run(schema, truth, tokens, results, reference)


# -------------------------------------------------------------------------------------------
# output


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.2f}%"


def markdown(doc: dict[str, Any]) -> str:
    p = doc["params"]
    lines = [
        "# Attacks on token files by a curious TTP (issue 10)",
        "",
        f"Measured {doc['created_at']} on {doc['machine']['cpus']} CPUs, commit "
        f"{doc['machine'].get('git_commit')}. Target world: {p['people']:,} people (seed "
        f"{p['seed']}); reference population: another world of {p['people']:,} people (seed "
        f"{p['reference_seed']}). The attacker holds the tokens, dataset names, the published "
        "schema and code and the reference; never the key or the target's plaintext. A field is "
        "recovered when the guess equals the record's normalised value. Shares of all records.",
        "",
    ]
    schemas = doc["schemas"]
    for v, s in schemas.items():
        lines += [f"## Token schema v{v}: {s['records']:,} records ({s['nhs_records']:,} NHS)", ""]
        lines += [
            "| attack | run time s | " + " | ".join(SCORED) + " |",
            "|---|---|" + "---|" * len(SCORED),
        ]
        lines.append("| guessing baseline (reference's most common value) | | " + " | ".join(
            _pct(s["baseline"][f]["all"]) for f in SCORED) + " |")  # fmt: skip
        for name, a in s["attacks"].items():
            cells = [_pct(a["fields"][f]["all"]) if f in a["fields"] else "n/a" for f in SCORED]
            lines.append(f"| {name} | {a['seconds']:.1f} | " + " | ".join(cells) + " |")
        c = s["combined"]
        lines.append(
            "| **any attack** | | " + " | ".join(f"**{_pct(c[f]['all'])}**" for f in SCORED) + " |"
        )
        lines += ["", "Combinations (recovered by any attack), overall, NHS rows, other rows:", ""]
        lines += ["| fields | all | NHS rows | other rows |", "|---|---|---|---|"]
        for k in (*SCORED, "forename+surname+date_of_birth", "all four"):
            lines.append(
                f"| {k} | {_pct(c[k]['all'])} | {_pct(c[k]['nhs_rows'])} | {_pct(c[k]['non_nhs_rows'])} |"
            )
        lines += ["", "Issue 10 targets: " + ", ".join(
            f"{k}: {'met' if ok else '**not met**'}" for k, ok in s["targets"].items()) + ".", ""]  # fmt: skip
        dss = sorted(k[3:] for k in c["forename"] if k.startswith("ds:"))
        lines += [
            "Per dataset (any attack): forename / surname / date of birth / postcode / "
            "forename+surname+date of birth:",
            "",
        ]
        lines += [
            "| dataset | forename | surname | date_of_birth | postcode | fn+sn+dob |",
            "|---|---|---|---|---|---|",
        ]
        for ds in dss:
            k = f"ds:{ds}"
            lines.append(
                f"| {ds} | "
                + " | ".join(_pct(c[f][k]) for f in (*SCORED, "forename+surname+date_of_birth"))
                + " |"
            )
        freq = s["attacks"].get("frequency alignment", {}).get("columns", {})
        if freq:
            lines += [
                "",
                "Frequency alignment, share of records whose column value (pre-hash) is "
                "recovered: " + ", ".join(f"`{k}` {_pct(x)}" for k, x in freq.items()) + ".",
                "",
            ]
        eq = s["attacks"].get("cross-column equalities", {}).get("notes", {})
        lines += [
            f"Column pairs sharing token values: {eq.get('column_pairs_sharing_values', 0)}"
            + (
                " (" + ", ".join(f"`{k}` {x:,}" for k, x in list(eq["pairs"].items())[:12]) + ")"
                if eq.get("pairs")
                else ""
            )
            + ".",
            "",
        ]
        for name, a in s["attacks"].items():
            notes = {k: x for k, x in a["notes"].items() if k != "pairs"}
            if notes:
                lines.append(f"- {name}: " + json.dumps(notes, default=str))
        lines.append("")
    if doc.get("notes"):
        lines += [doc["notes"], ""]
    return "\n".join(lines)


NOTES = (
    "Attacks: frequency alignment (Kuzu et al. 2011; Christen et al. 2017); the v2 calendar "
    "reconstruction from comparable date tokens (prev/exact/next chains, 29 February, New Year, "
    "age pyramid); record-graph components over every column holding a field, labelled by size "
    "(match-key chaining); Bloom graph matching of bit to bigram co-occurrence (Vidanage et al. "
    "2020) refined by decode-and-vote rounds (Christen et al. 2017-2018; Kuzu et al. 2011), names "
    "decoded by best-matching reference filter. 'Any attack' counts a field recovered when any "
    "attack's guess is right: an upper bound for the defender. The per-salt Bloom variant uses "
    "the true salt groups (an oracle) and attacks only groups of at least 50 records or the 3 "
    "largest. Names absent from the reference cannot be guessed by these attacks."
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--reference-seed", type=int, default=4242)
    ap.add_argument("--schema", nargs="+", default=["3"], choices=["2", "3", "both"],
                    help="token schema(s) to attack; 'both' (or '2 3') reports v2 beside v3")  # fmt: skip
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    versions = sorted({2, 3} if "both" in args.schema else {int(s) for s in args.schema})
    agreement = load_agreement(AGREEMENT)
    today = dt.date.today()
    work = Path(tempfile.mkdtemp(prefix="bench-attacks-"))
    params = {"people": args.people, "seed": args.seed, "reference_seed": args.reference_seed,
              "schemas": versions}  # fmt: skip
    bench = Bench("attacks", params=params, results_dir=RESULTS)
    try:
        from wmw_link.synth import generate

        with bench.measure("synth target and reference worlds"):
            generate(people=args.people, seed=args.seed, out=work / "target", workers=1)
            generate(
                people=args.people, seed=args.reference_seed, out=work / "reference", workers=1
            )
        reference = world_fields(agreement, work / "reference", today)
        schemas = {}
        for v in versions:
            schemas[str(v)] = run_schema(
                v, agreement, work / "target", reference, work, bench, today, args.workers
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}", file=sys.stderr)
    doc = {
        "name": "attacks",
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "params": params,
        "results": [m.as_dict() for m in bench.measurements],
        "schemas": schemas,
        "notes": NOTES,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, text in (("attacks.json", json.dumps(doc, indent=2, default=str) + "\n"),
                       ("attacks.md", markdown(doc))):  # fmt: skip
        tmp = RESULTS / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, RESULTS / name)
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
