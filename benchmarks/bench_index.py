"""Benchmark: the persistent person index over monthly deliveries (issue 13).

One synthetic region cut into K monthly deliveries (``wmw-link synth --deliveries K``); every
controller tokenises each delivery; the TTP links them one by one into a person index
(``wmw-link link --index``), then re-links every delivery at once (``link --inputs D1 --inputs
D2 ...``, today's full run) and finally re-trains the index (``--retrain``). Reported:

* time and peak memory of each refresh against the full re-link over the same records;
* persons of the incremental path against the full re-link (pairwise F1 between the two) and
  both against the truth;
* the share of records keeping their person id from one refresh to the next, whether every
  change is listed in ``id-changes.parquet``, and the share of persons keeping their id after
  ``--retrain``.

Each link is a fresh ``wmw-link`` process (its own peak memory). Run from the repository root::

    .venv/bin/python -m benchmarks.bench_index --people 100000 --deliveries 6
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from benchmarks.harness import Bench

ROOT = Path(__file__).resolve().parent.parent
AGREEMENT = ROOT / "agreements" / "wmw-outcomes.yaml"
SEED = 42
WMW = [sys.executable, "-m", "wmw_link"]


def _synth(work: Path, people: int, deliveries: int) -> dict[str, Any]:
    from wmw_link.synth import generate

    generate(people=people, seed=SEED, out=work / "synth", deliveries=deliveries)
    return json.loads((work / "synth" / "deliveries" / "deliveries.json").read_text())


def _tokenise(
    work: Path, deliveries: int, key_name: str = "link.key", inbox_name: str = "inbox",
    first_delivery: int = 1,
) -> dict[int, int]:
    """Tokenise every delivery of every controller; inbox/NN holds delivery NN's tokens.

    With another ``key_name`` (a linkage-key rotation) the controllers keep their row-reference
    keys, so every record keeps its row ref; ``first_delivery`` numbers the re-sent deliveries
    after the ones already sent (the controllers' delivery counters only go up).
    """
    from wmw_link.agreement import load_agreement
    from wmw_link.keys import new_key
    from wmw_link.tokenise import tokenise

    a = load_agreement(AGREEMENT)
    keys = work / "keys"
    key = new_key(keys / key_name, force=True)
    refs = {
        d.id: (keys / f"{d.id}.ref.key") if (keys / f"{d.id}.ref.key").exists() and
        key_name != "link.key" else new_key(keys / f"{d.id}.ref.key", force=True)
        for d in a.datasets
    }  # fmt: skip
    rows: dict[int, int] = {}
    for n in range(1, deliveries + 1):
        src = work / "synth" / "deliveries" / f"{n:02d}" / "extracts"
        inbox = work / inbox_name / f"{n:02d}"
        inbox.mkdir(parents=True, exist_ok=True)
        rows[n] = 0
        for ds in (d.id for d in a.datasets):
            found = sorted(src.glob(f"{ds}.*"))
            if not found:
                continue
            ctl = work / "ctl" / f"{n:02d}" / ds
            if inbox_name != "inbox":
                ctl = work / f"ctl-{inbox_name}" / f"{n:02d}" / ds
            number = first_delivery + n - 1
            res = tokenise(a, ds, found[0], key, refs[ds], ctl, workers=2, delivery=number)
            rows[n] += int(res.rows_tokens)
            for suf in (".tokens.parquet", ".manifest.json"):
                shutil.copy(ctl / f"{ds}{suf}", inbox)
    return rows


def _rows_from_manifests(work: Path, deliveries: int) -> dict[int, int]:
    """Records per delivery, from the tokens manifests an earlier run left in the inboxes."""
    rows = {}
    for n in range(1, deliveries + 1):
        rows[n] = sum(
            int(json.loads(f.read_text())["rows"]["tokens"])
            for f in (work / "inbox" / f"{n:02d}").glob("*.manifest.json")
        )
    return rows


def _crosswalk(work: Path) -> pd.DataFrame:
    """(dataset, record_id) -> row_ref over every delivery (a re-sent record keeps its ref)."""
    parts = []
    for f in sorted((work / "ctl").glob("*/*/*.crosswalk.parquet")):
        x = pd.read_parquet(f, columns=["record_id", "row_ref"])
        x["dataset"] = f.name.removesuffix(".crosswalk.parquet")
        parts.append(x)
    x = pd.concat(parts, ignore_index=True)
    x["record_id"] = x["record_id"].astype(str)
    return x.drop_duplicates(["dataset", "row_ref"])


def _read_maps(out: Path) -> pd.DataFrame:
    parts = []
    for f in sorted(out.glob("*.map.parquet")):
        m = pd.read_parquet(f, columns=["row_ref", "person_id"])
        m["dataset"] = f.name.removesuffix(".map.parquet")
        parts.append(m)
    return pd.concat(parts, ignore_index=True)


def _apply(state: pd.DataFrame | None, out: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Apply one refresh's maps and id changes to the analysts' running map, as journeys do;
    report how many earlier records kept their id and whether every change is listed."""
    maps = _read_maps(out)
    changes = pd.read_parquet(out / "id-changes.parquet")
    if state is None:
        return maps, {"records": len(maps), "id_changes": len(changes)}
    before = state.set_index(["dataset", "row_ref"])["person_id"]
    mapping = dict(zip(changes["old_person_id"], changes["new_person_id"], strict=True))
    moved = state["person_id"].map(mapping)
    listed = state["person_id"].isin(mapping.keys())
    state = state.assign(person_id=moved.where(listed, state["person_id"]))
    state = state[state["person_id"].notna()]
    new = pd.concat([state, maps], ignore_index=True).drop_duplicates(
        ["dataset", "row_ref"], keep="last"
    )
    after = new.set_index(["dataset", "row_ref"])["person_id"]
    common = before.index.intersection(after.index)
    kept = (before.loc[common] == after.loc[common]).to_numpy()
    changed_old = before.loc[common][~kept]
    return new, {
        "records_before": len(before),
        "records_kept_id": int(kept.sum()),
        "share_kept_id": float(kept.mean()) if len(kept) else 1.0,
        "records_changed_id": int((~kept).sum()),
        "changed_and_listed": int(changed_old.isin(mapping.keys()).sum()),
        "id_changes": len(changes),
        "id_changes_by_reason": changes["reason"].value_counts().to_dict(),
        "map_rows": len(maps),
    }


def _score(pred: pd.DataFrame, true: pd.DataFrame) -> dict[str, float]:
    """Pairwise precision/recall/F1 of ``pred`` (dataset, row_ref, person_id) against
    ``true`` (dataset, row_ref, person_id), over the records both hold."""
    from wmw_link.evaluate import score

    f = pred.merge(true, on=["dataset", "row_ref"], suffixes=("_p", "_t"))
    ev = score(pd.DataFrame({"dataset": f["dataset"], "pred": f["person_id_p"],
                             "true": f["person_id_t"]}))  # fmt: skip
    pw = ev.pairwise
    return {"records": len(f), "precision": pw.precision, "recall": pw.recall, "f1": pw.f1}


def _persons_kept(old: pd.DataFrame, new: pd.DataFrame) -> dict[str, float]:
    """Share of persons before a re-train whose id still names (most of) their records."""
    j = old.merge(new, on=["dataset", "row_ref"], suffixes=("_old", "_new"))
    same = j["person_id_old"] == j["person_id_new"]
    by_person = same.groupby(j["person_id_old"]).mean()
    return {
        "persons": len(by_person),
        "persons_keeping_id": int((by_person >= 0.5).sum()),
        "share_persons_keeping_id": float((by_person >= 0.5).mean()),
        "share_records_keeping_id": float(same.mean()),
    }


def rekey(bench: Bench, work: Path, deliveries: int) -> dict[str, Any]:
    """Rotate the linkage key: every controller re-tokenises its whole history under a new key
    (same row-reference keys, so the same row refs), and the TTP re-keys the index
    (``link --index --rekey``). Returns the share of persons keeping their id."""
    from wmw_link.linkage.index import store

    index = work / "index"
    manifest = json.loads((index / store.MANIFEST_NAME).read_text())
    last = max(manifest["deliveries"])
    with bench.measure("re-tokenise every delivery under a new linkage key") as m:
        rows = _tokenise(work, deliveries, "link-rotated.key", "inbox-rekey", first_delivery=last + 1)
        m.rows = sum(rows.values())
    before = _index_persons(index)
    inputs = [a for n in range(1, deliveries + 1)
              for a in ("--inputs", str(work / "inbox-rekey" / f"{n:02d}"))]  # fmt: skip
    secs = _link(bench, "re-key the index (--rekey)", work,
                 ["--index", str(index), "--rekey", *inputs, "--out", str(work / "rekey"),
                  "--delivery", str(last + 1)], sum(rows.values()))  # fmt: skip
    kept = _persons_kept(before, _index_persons(index))
    return {"seconds": secs, **kept}


def _index_persons(index: Path) -> pd.DataFrame:
    """(dataset, row_ref, person_id) of every record in the person index."""
    from wmw_link.agreement import load_agreement
    from wmw_link.linkage.index import store

    state = store.read_index(load_agreement(AGREEMENT), index)
    parts = []
    for ds, t in state.records.items():
        frame = t.select(["row_ref", "person_id"]).to_pandas()
        frame["dataset"] = ds
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _link(bench: Bench, label: str, work: Path, args: list[str], rows: int) -> float:
    argv = [*WMW, "link", "--agreement", str(AGREEMENT), "--no-report",
            "--state", str(work / "ttp-state.json"), *args]  # fmt: skip
    return bench.run(label, argv, rows=rows).seconds


def run(people: int, deliveries: int, work: Path, name: str, reuse: bool = False) -> Path:
    bench = Bench(name, params={"people": people, "deliveries": deliveries, "seed": SEED})
    if reuse and (work / "inbox" / f"{deliveries:02d}").is_dir():
        # The same synthetic region and tokens as an earlier run: only the links run again.
        rows = _rows_from_manifests(work, deliveries)
        for sub in ("index", "out", "full", "retrain"):
            shutil.rmtree(work / sub, ignore_errors=True)
        for f in work.glob("ttp-state*.json"):
            f.unlink()
    else:
        with bench.measure("synth (deliveries)") as m:
            info = _synth(work, people, deliveries)
            m.extra["deliveries"] = info.get("deliveries")
        with bench.measure("tokenise every delivery (2 workers)") as m:
            rows = _tokenise(work, deliveries)
            m.rows = sum(rows.values())
            m.extra["records_by_delivery"] = rows
    total = 0
    state: pd.DataFrame | None = None
    refresh: list[dict[str, Any]] = []
    index = work / "index"
    for n in range(1, deliveries + 1):
        total += rows[n]
        out = work / "out" / f"{n:02d}"
        mode = "first (full, creates the index)" if n == 1 else "incremental"
        secs = _link(bench, f"index refresh {n:02d} ({mode})", work,
                     ["--index", str(index), "--inputs", str(work / "inbox" / f"{n:02d}"),
                      "--out", str(out), "--delivery", str(n)], rows[n])  # fmt: skip
        state, stats = _apply(state, out)
        refresh.append({"delivery": n, "seconds": secs, "peak_mib": bench.measurements[-1].peak_rss_mib, **stats})
    full_out = work / "full"
    inputs = [a for n in range(1, deliveries + 1) for a in ("--inputs", str(work / "inbox" / f"{n:02d}"))]
    # A fresh state file: the full run is another TTP run over the same deliveries.
    full_secs = bench.run(
        "full re-link of every delivery",
        [*WMW, "link", "--agreement", str(AGREEMENT), "--no-report", "--state",
         str(work / "ttp-state-full.json"), *inputs, "--out", str(full_out)],
        rows=total,
    ).seconds  # fmt: skip
    full_peak = bench.measurements[-1].peak_rss_mib
    full = _read_maps(full_out)

    xw = _crosswalk(work)
    truth = pd.read_parquet(work / "synth" / "truth" / "truth.parquet", columns=["dataset", "record_id", "person_id"])
    truth["record_id"] = truth["record_id"].astype(str)
    true = xw.merge(truth, on=["dataset", "record_id"])[["dataset", "row_ref", "person_id"]]
    assert state is not None
    inc_vs_truth = _score(state, true)
    full_vs_truth = _score(full, true)
    inc_vs_full = _score(state, full)

    retrain_out = work / "retrain"
    before_retrain = state
    retrain_secs = _link(bench, "re-train the index (--retrain)", work,
                         ["--index", str(index), "--retrain", "--out", str(retrain_out),
                          "--delivery", str(deliveries + 1)], total)  # fmt: skip
    after_retrain, retrain_stats = _apply(before_retrain, retrain_out)
    kept = _persons_kept(before_retrain, after_retrain)

    incremental = [r for r in refresh if r["delivery"] > 1]
    summary = {
        "full_relink_seconds": full_secs,
        "full_relink_peak_mib": full_peak,
        "incremental_max_seconds": max((r["seconds"] for r in incremental), default=None),
        "incremental_max_share_of_full": max((r["seconds"] / full_secs for r in incremental), default=None),
        "incremental_max_peak_mib": max((r["peak_mib"] for r in incremental), default=None),
        "f1_incremental_vs_full": inc_vs_full["f1"],
        "f1_incremental_vs_truth": inc_vs_truth["f1"],
        "f1_full_vs_truth": full_vs_truth["f1"],
        "f1_gap_points": 100 * (full_vs_truth["f1"] - inc_vs_truth["f1"]),
        "min_share_records_kept_id": min((r["share_kept_id"] for r in incremental), default=None),
        "every_change_listed": all(r["changed_and_listed"] == r["records_changed_id"] for r in incremental),
        "retrain_seconds": retrain_secs,
        "retrain_share_persons_keeping_id": kept["share_persons_keeping_id"],
    }  # fmt: skip
    details = {"refreshes": refresh, "incremental_vs_truth": inc_vs_truth,
               "full_vs_truth": full_vs_truth, "incremental_vs_full": inc_vs_full,
               "retrain": {**retrain_stats, **kept}, "summary": summary}  # fmt: skip
    lines = [
        f"Each refresh against the full re-link of all {deliveries} deliveries "
        f"({total:,} records, {full_secs:.1f} s, peak {full_peak:,.0f} MiB):",
        "",
        "| delivery | records | seconds | share of full | peak MiB | records keeping id | id changes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in refresh:
        lines.append(
            f"| {r['delivery']:02d} | {rows[r['delivery']]:,} | {r['seconds']:.1f} | "
            f"{r['seconds'] / full_secs:.3f} | {r['peak_mib']:,.0f} | "
            f"{r.get('share_kept_id', float('nan')):.5f} | {r['id_changes']:,} |"
        )
    lines += [
        "",
        f"Persons: incremental vs full re-link pairwise F1 {inc_vs_full['f1']:.5f}; against the "
        f"truth incremental {inc_vs_truth['f1']:.5f}, full {full_vs_truth['f1']:.5f} "
        f"(gap {summary['f1_gap_points']:+.3f} points). Every id change listed: "
        f"{'yes' if summary['every_change_listed'] else 'NO'}. After --retrain "
        f"({retrain_secs:.1f} s) {kept['share_persons_keeping_id']:.4f} of persons keep their id.",
        "",
        "| summary | value |",
        "|---|---|",
        *(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
          for k, v in summary.items()),
    ]
    bench.write(notes="\n".join(lines))
    path = bench.results_dir / f"{name}-details.json"
    path.write_text(json.dumps(details, indent=2, default=str) + "\n")
    print("\n".join(lines))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--deliveries", type=int, default=6)
    p.add_argument("--work", type=Path, default=None, help="work folder (default: a temp dir)")
    p.add_argument("--name", default=None, help="results name [default: index-<people>]")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--rekey-only", action="store_true",
                   help="with --work of an earlier run: rotate the linkage key and re-key its "
                   "index (results <name>-rekey)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse the synthetic region and tokens already in --work; link again")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix=f"bench-index-{args.people}-"))
    work.mkdir(parents=True, exist_ok=True)
    name = args.name or f"index-{args.people // 1000}k"
    try:
        if args.rekey_only:
            bench = Bench(f"{name}-rekey", params={"people": args.people,
                                                   "deliveries": args.deliveries})  # fmt: skip
            r = rekey(bench, work, args.deliveries)
            lines = [f"After a linkage-key rotation (every delivery re-tokenised, `link --index "
                     f"--rekey`, {r['seconds']:.1f} s) {r['share_persons_keeping_id']:.4f} of "
                     f"{r['persons']:,} persons keep their id "
                     f"({r['share_records_keeping_id']:.5f} of records)."]  # fmt: skip
            bench.write(notes="\n".join(lines))
            print(lines[0])
        else:
            run(args.people, args.deliveries, work, name, reuse=args.reuse)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
