"""Benchmark: token linkage against plaintext linkage on the same synthetic records.

For each population size: synthetic extracts (``wmw_link.synth.generate``), one linkage key,
tokenise every extract, then

* **tokens**: ``wmw_link.linkage.link`` (DuckDB) on the tokens;
* **tokens, exact only**: the same with exact-token comparisons only (naive contrast);
* **plaintext Splink**: the usual fuzzy comparisons on the normalised plaintext of the same
  records (same blocks, training, household rule, label-free threshold, clustering). Its
  data preparation is built to be a strong yardstick: the same normalisers as the tokeniser,
  on distinct values with Arrow kernels, in 2 processes (the tokeniser's 2), timed as
  ``normalise`` inside the stage;
* **plaintext ECM** (smallest size only): recordlinkage's ECM classifier on the same pairs.

Every stage runs in its own process, so wall time and peak memory (ru_maxrss of the process
and its children) are its own. Scored against ``truth/``: pairwise precision/recall/F1 within
and across sources, household false merges, candidate-pair recall of the blocking rules, and a
sweep of the true F1 over thresholds (to check the label-free default against the best).

    .venv/bin/python benchmarks/bench_linkage.py --people 10000 100000 [--keep] [--profile hard]

To make the records and tokens once and link them again (after a change to linkage)::

    bench_linkage.py --stage synth --people 1000000 --work W [--profile hard]
    bench_linkage.py --stage tokenise --people 1000000 --work W
    bench_linkage.py --people 1000000 --work W --reuse --skip-exact --name linkage_1m

At 10M people plaintext Splink does not fit in memory: ``--skip-plain`` links and scores the
tokens alone (the plaintext figures are left blank).

Time ratios: ``time_ratio`` is the whole job from raw extracts to persons (tokenise + link
against normalise + Splink); ``link_vs_splink_ratio`` compares the linkage stages alone and
``tokenise_vs_normalise_ratio`` the data preparation alone.

Results: benchmarks/results/linkage.json and linkage.md; with ``--profile hard`` (the hard
synthetic profile, docs/synthetic-data.md) linkage-hard.json and linkage-hard.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wmw_link.synth.profiles import PROFILES

HERE = Path(__file__).parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or HERE / "results")
AGREEMENT = HERE.parent / "agreements" / "wmw-outcomes.yaml"
SEED = 42


# --------------------------------------------------------------------------------------------
# stages (each in its own process)


def _peak_mib() -> float:
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kib, child_kib) / 1024


def stage_synth(work: Path, people: int, profile: str = "standard") -> dict[str, Any]:
    from wmw_link.synth import generate

    r = generate(people=people, seed=SEED, out=work / "synth", profile=profile)
    return {"rows": r.rows, "records": sum(r.rows.values()), "profile": profile}


def _place(src: Path, folder: Path) -> None:
    """Put ``src`` in ``folder`` as a hard link (tokens at 10M people are gigabytes), else a copy."""
    dest = folder / src.name
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy(src, dest)


def stage_tokenise(work: Path) -> dict[str, Any]:
    from wmw_link.agreement import load_agreement
    from wmw_link.keys import new_key
    from wmw_link.synth.generate import extract_path
    from wmw_link.tokenise import tokenise

    a = load_agreement(AGREEMENT)
    keys = work / "keys"
    key = new_key(keys / "link.key", force=True)
    inbox, xw = work / "inbox", work / "crosswalks"
    inbox.mkdir(exist_ok=True)
    xw.mkdir(exist_ok=True)
    rows = {}
    for ds in (d.id for d in a.datasets):
        ref = new_key(keys / f"{ds}.ref.key", force=True)
        res = tokenise(
            a, ds, extract_path(work / "synth", ds), key, ref, work / "ctl" / ds, workers=2
        )
        rows[ds] = res.rows_out if hasattr(res, "rows_out") else None
        for suf in (".tokens.parquet", ".manifest.json"):
            _place(work / "ctl" / ds / f"{ds}{suf}", inbox)
        _place(work / "ctl" / ds / f"{ds}.crosswalk.parquet", xw)
    return {"rows": rows}


def stage_link(
    work: Path, exact_only: bool, report: bool, backend: str = "duckdb"
) -> dict[str, Any]:
    from wmw_link.agreement import load_agreement
    from wmw_link.linkage import link

    name = "link_exact" if exact_only else "link" if backend == "duckdb" else f"link_{backend}"
    r = link(
        load_agreement(AGREEMENT),
        work / "inbox",
        work / name,
        backend=backend,
        seed=SEED,
        exact_only=exact_only,
        report=report,
        keep_pairs=work / f"{name}.pairs.parquet",
    )
    return {
        "records": r.records,
        "persons": r.persons,
        "comparisons": r.comparisons,
        "threshold_weight": r.threshold_match_weight,
        "timings": r.timings,
    }


def stage_plain(work: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from linkage_baselines import plaintext_tables, run_splink_plaintext
    from wmw_link.agreement import load_agreement
    from wmw_link.synth.generate import extract_path

    a = load_agreement(AGREEMENT)
    t0 = time.perf_counter()
    # Two processes, as the token side's tokenise(workers=2).
    tables = plaintext_tables(
        AGREEMENT,
        {
            d.id: (
                extract_path(work / "synth", d.id),
                work / "crosswalks" / f"{d.id}.crosswalk.parquet",
            )
            for d in a.datasets
        },
        dt.date.today(),
        workers=2,
    )
    normalise = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(dir=work))
    frame, pairs, timings = run_splink_plaintext(tables, tmp, SEED)
    shutil.rmtree(tmp, ignore_errors=True)
    frame.to_parquet(work / "plain.clusters.parquet", index=False)
    pairs.to_parquet(work / "plain.pairs.parquet", index=False)
    records = pa.concat_tables(
        t.append_column("source_dataset", pa.array([ds] * t.num_rows, pa.string()))
        for ds, t in tables.items()
    )
    pq.write_table(records, work / "plain.records.parquet")
    return {"timings": {"normalise": normalise, **timings}, "comparisons": len(pairs)}


def stage_ecm(work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from linkage_baselines import run_ecm

    recs = pd.read_parquet(work / "plain.records.parquet")
    tables = {ds: g.drop(columns="source_dataset") for ds, g in recs.groupby("source_dataset")}
    pairs = pd.read_parquet(work / "plain.pairs.parquet")
    t0 = time.perf_counter()
    out = run_ecm(tables, pairs)
    out.to_parquet(work / "ecm.clusters.parquet", index=False)
    return {"timings": {"ecm": time.perf_counter() - t0}}


STAGES = {
    "synth": lambda w, a: stage_synth(w, a.people[0], a.profile),
    "tokenise": lambda w, a: stage_tokenise(w),
    "link": lambda w, a: stage_link(w, exact_only=False, report=a.report),
    "link_exact": lambda w, a: stage_link(w, exact_only=True, report=False),
    "link_spark": lambda w, a: stage_link(w, exact_only=False, report=False, backend="spark"),
    "plain": lambda w, a: stage_plain(w),
    "ecm": lambda w, a: stage_ecm(w),
}


def _run_stage(
    stage: str, work: Path, people: int, report: bool = False, profile: str | None = None
) -> dict[str, Any]:
    t0 = time.perf_counter()
    cmd = [sys.executable, __file__, "--stage", stage, "--work", str(work), "--people", str(people)]
    if profile is not None:  # only the synth stage reads it
        cmd += ["--profile", profile]
    if report:
        cmd.append("--report")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t0
    # The box may be shared: the 1-minute load average as the stage ended, to read times by.
    out["load_average_end"] = os.getloadavg()[0]
    # Kept beside the stage's outputs, for a later run with --reuse.
    (work / f"{stage}.json").write_text(json.dumps(out, default=float) + "\n")
    return out


def _reused_stage(work: Path, stage: str) -> dict[str, Any]:
    """A stage run earlier in ``work`` (--reuse): its figures if recorded, else none."""
    if not (work / "synth" / "truth").is_dir() or not (work / "inbox").is_dir():
        raise SystemExit(
            f"--reuse: {work} holds no synth/ and inbox/ (run --stage synth, tokenise)"
        )
    f = work / f"{stage}.json"
    out = json.loads(f.read_text()) if f.is_file() else {}
    out.setdefault("wall_seconds", None)
    out.setdefault("peak_mib", None)
    return out


# --------------------------------------------------------------------------------------------
# scoring
#
# Everything is joined and counted in one DuckDB connection (memory limit, spill folder):
# the maps, crosswalks, truth and pairs are read from Parquet there and millions of records
# never pass through pandas. Each linked result becomes a table of its records (dataset, uid,
# pred, true, household, groups; rowid numbers them) that score(), the candidate recall and
# the threshold sweep all read.


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _parquet(path: Path) -> str:
    return f"read_parquet({_sql_text(path.as_posix())})"


def _dataset(sql: str) -> str:
    """SQL: a dataset name as the ``wmw_dataset`` ENUM of :func:`_load_truth`."""
    return f"TRY_CAST({sql} AS wmw_dataset)"


def _age_band_sql(col: str) -> str:
    """SQL of :func:`wmw_link.equity.age_band`: the band label, null outside the bands."""
    from wmw_link.equity import AGE_BANDS

    cases = " ".join(
        f"WHEN {col} BETWEEN {lo} AND {hi} THEN {_sql_text(f'{lo}+' if hi >= 200 else f'{lo}-{hi}')}"
        for lo, hi in AGE_BANDS
    )
    return f"CASE {cases} END"


def _load_truth(con: Any, work: Path) -> None:
    """Tables ``truth`` (dataset, record_id, person_id) and ``people`` (person_id, household
    and the equity report's groups)."""
    truth = work / "synth" / "truth"
    # Dataset names as an ENUM (in name order, so that comparisons order them as text): the
    # joins on (dataset, id) and the counts by dataset then compare one byte, not text.
    # Names outside the truth (TRY_CAST null) join nothing, as they would find no truth.
    con.execute(
        "CREATE TYPE wmw_dataset AS ENUM (SELECT DISTINCT dataset FROM "
        f"{_parquet(truth / 'truth.parquet')} ORDER BY ALL)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE truth AS SELECT CAST(dataset AS wmw_dataset) AS dataset, "
        f"CAST(record_id AS VARCHAR) AS record_id, person_id "
        f"FROM {_parquet(truth / 'truth.parquet')}"
    )
    # Groups as ENUMs: the scoring groups and copies one small number per record, not text.
    people = _parquet(truth / "people.parquet")
    groups = {
        "ethnic_group": "ethnicity",
        "ethnicity_detailed": "ethnicity_detailed",
        "sex": "sex",
        "age_band": _age_band_sql("age_at_2024_01_01"),
    }
    for name, expr in groups.items():
        con.execute(
            f"CREATE TYPE wmw_{name} AS ENUM "
            f"(SELECT DISTINCT {expr} FROM {people} WHERE {expr} IS NOT NULL ORDER BY ALL)"
        )
    cols = ", ".join(f"CAST({expr} AS wmw_{name}) AS {name}" for name, expr in groups.items())
    con.execute(
        "CREATE OR REPLACE TEMP TABLE people AS SELECT person_id, household_id AS household, "
        f"{cols} FROM {people}"
    )


def _nodes(con: Any, sql: str) -> str:
    """Table ``nodes`` of a linked result's records (SQL: dataset, record_id, uid, pred)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE nodes AS {sql}")
    return "nodes"


def _token_nodes(con: Any, work: Path, name: str) -> str:
    """Table ``nodes``: the records of a token link (dataset, record_id, uid = row_ref, pred),
    each map joined to its dataset's crosswalk.

    A map lists its rows in the order of the tokens file, as the crosswalk does: each pair of
    files is first joined by position, and only if some row_ref then differs (files from
    different runs) by row_ref.
    """
    by_position, by_ref = [], []
    for f in sorted((work / name).glob("*.map.parquet")):
        ds = f.name.removesuffix(".map.parquet")
        if not (work / "crosswalks" / f"{ds}.crosswalk.parquet").is_file():
            continue  # no crosswalk: its records cannot be scored
        xw = _parquet(work / "crosswalks" / f"{ds}.crosswalk.parquet")
        head = f"SELECT {_dataset(_sql_text(ds))} AS dataset, CAST(x.record_id AS VARCHAR) AS "
        by_position.append(
            f"{head}record_id, m.row_ref AS uid, m.person_id AS pred, "
            f"m.row_ref IS NOT DISTINCT FROM x.row_ref AS aligned "
            f"FROM {_parquet(f)} m POSITIONAL JOIN {xw} x"
        )
        by_ref.append(
            f"{head}record_id, m.row_ref AS uid, m.person_id AS pred "
            f"FROM {_parquet(f)} m JOIN {xw} x USING (row_ref)"
        )
    if not by_position:
        raise SystemExit(f"{work / name}: no maps with a crosswalk in {work / 'crosswalks'}")
    _nodes(con, " UNION ALL ".join(by_position))
    if con.execute("SELECT count(*) FILTER (NOT aligned) FROM nodes").fetchall()[0][0]:
        return _nodes(con, " UNION ALL ".join(by_ref))
    con.execute("ALTER TABLE nodes DROP COLUMN aligned")
    return "nodes"


def _frame(con: Any, nodes: str, table: str) -> str:
    """Table ``table``: the records of ``nodes`` (dataset, record_id, uid, pred) found in the
    truth, with their true person, household and groups; ``rowid`` numbers them 0..n-1 (the
    sweep checks it)."""
    groups = ", ".join(f"p.{c}" for c in ("ethnic_group", "ethnicity_detailed", "sex", "age_band"))
    # Predicted persons stay text here: score() numbers them after reducing records to cells,
    # which costs less than numbering every record.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT n.dataset, n.uid, n.pred, t.person_id AS "true", p.household, {groups}
        FROM {nodes} n JOIN truth t USING (dataset, record_id)
        LEFT JOIN people p ON p.person_id = t.person_id
        """
    )
    return table


def _pairs(con: Any, frame: str, path: Path, table: str) -> tuple[str, int]:
    """Table ``table``: the scored pairs of ``path`` between two records of ``frame`` (their
    nodes, whether they are one true person, datasets, rule, weight, linkable); and the
    number of pairs in the file."""
    from wmw_link.pair_sql import relation_columns

    src = _parquet(path)
    key = "match_key" if "match_key" in relation_columns(con, src) else "NULL"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT l.rowid AS a, r.rowid AS b, l."true" = r."true" AS same,
            l.dataset AS dl, r.dataset AS dr, {key} AS match_key,
            e.match_weight AS weight, e.linkable
        FROM {src} e
        JOIN {frame} l ON l.dataset = {_dataset("e.source_dataset_l")} AND l.uid = e.unique_id_l
        JOIN {frame} r ON r.dataset = {_dataset("e.source_dataset_r")} AND r.uid = e.unique_id_r
        """
    )
    return table, int(con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0])


def _scores(con: Any, frame: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headline figures and the equity report of ``wmw-link evaluate`` (figures by group,
    and the flagged groups), from one scoring."""
    from wmw_link.evaluate import score

    ev = score(frame, con)
    d = ev.to_dict()
    scores = {
        "precision": ev.pairwise.precision,
        "recall": ev.pairwise.recall,
        "f1": ev.pairwise.f1,
        "within_f1": ev.within_source.f1,
        "across_f1": ev.across_source.f1,
        "household_false_pairs": d["household_false_merge"]["false_pairs_same_household"],
        "household_false_merge_rate": d["household_false_merge"]["household_false_merge_rate"],
        "false_pairs": d["household_false_merge"]["false_pairs"],
        "exact_person_rate": ev.clusters["exact_person_rate"],
    }
    return scores, {"groups": ev.by_group, "flags": ev.equity_flags}


def _sweep(con: Any, frame: str, pairs: str, weights: np.ndarray) -> list[dict[str, float]]:
    """True F1 of connected components of linkable pairs at each match-weight threshold
    (:func:`wmw_link.evaluate.threshold_sweep`: every threshold in one pass)."""
    from wmw_link.evaluate import threshold_sweep

    points = threshold_sweep(
        con,
        f'(SELECT rowid AS node, "true", household FROM {frame})',
        f"(SELECT a, b, weight FROM {pairs} WHERE linkable)",
        weights,
    )
    return [
        {
            "threshold_weight": p.threshold,
            "f1": p.pairwise.f1,
            "precision": p.pairwise.precision,
            "recall": p.pairwise.recall,
            "household_false_pairs": p.household_false_pairs or 0,
        }
        for p in points
    ]


def _token_rules(work: Path) -> list[str]:
    """The link's blocking rules in order, from the token columns in the inbox."""
    import pyarrow.parquet as pq

    from wmw_link.linkage.settings import predict_blocks

    present: set[str] = set()
    for f in (work / "inbox").glob("*.tokens.parquet"):
        present |= set(pq.read_schema(f).names)
    return predict_blocks(present)


def _candidate_recall(
    con: Any, frame: str, pairs: str, n_pairs: int, rules: list[str]
) -> dict[str, Any]:
    """Share of true pairs (among scored records) that blocking produced: overall, by the
    blocking rule that first produced them (Splink's match_key), and by source pair."""
    # True pairs by source pair, from each person's record counts per dataset (one column
    # per dataset, so no self-join of millions of persons).
    names = [r[0] for r in con.execute(f"SELECT DISTINCT dataset FROM {frame}").fetchall()]
    names = sorted(names)
    counts = ", ".join(
        f"count(*) FILTER (dataset = {_sql_text(d)}) AS c{i}" for i, d in enumerate(names)
    )
    sums = ", ".join(
        f"sum(c{i} * (c{i} - 1) // 2)" if i == j else f"sum(c{i} * c{j})"
        for i in range(len(names))
        for j in range(i, len(names))
    )
    got = con.execute(
        f'SELECT {sums} FROM (SELECT {counts} FROM {frame} GROUP BY "true")'
    ).fetchall()[0]
    pairs_ij = [(names[i], names[j]) for i in range(len(names)) for j in range(i, len(names))]
    actual = [(a, b, int(n or 0)) for (a, b), n in zip(pairs_ij, got, strict=True)]
    # True pairs found, by source pair and first rule, in one pass over the pairs.
    found: dict[tuple[str, str], int] = {}
    rule_hits: dict[int, int] = {}
    hits = 0
    for lo, hi, k, n in con.execute(
        f"SELECT least(dl, dr), greatest(dl, dr), CAST(match_key AS INTEGER), count(*) "
        f"FROM {pairs} WHERE same GROUP BY ALL"
    ).fetchall():
        found[(lo, hi)] = found.get((lo, hi), 0) + n
        if k is not None:
            rule_hits[k] = rule_hits.get(k, 0) + n
        hits += n
    by_pair = {
        f"{a}~{b}": {"true_pairs": int(n), "recall": float(found.get((a, b), 0)) / n}
        for a, b, n in actual
        if n
    }
    total = int(sum(n for _, _, n in actual))
    by_rule = {
        (rules[k] if k < len(rules) else str(k)): float(v) / total
        for k, v in sorted(rule_hits.items())
    }
    records = int(con.execute(f"SELECT count(*) FROM {frame}").fetchall()[0][0])
    return {
        "recall": hits / total if total else 1.0,
        "pairs_per_record": n_pairs / records if records else 0.0,
        "by_rule_first": by_rule,
        "by_source_pair": by_pair,
    }


def _score_run(
    con: Any, out: dict[str, Any], nodes: str, pairs: Path, rules: list[str], sweep: bool
) -> None:
    """Score one linked result (``nodes``: the table of its records, dropped after;
    ``pairs``: its scored pairs) into ``out``."""
    weights = np.arange(-4.0, 16.01, 1.0)
    frame = _frame(con, nodes, "scored")
    con.execute(f"DROP TABLE {nodes}")
    out["scores"], out["equity"] = _scores(con, frame)
    table, n_pairs = _pairs(con, frame, pairs, "scored_pairs")
    out["candidates"] = _candidate_recall(con, frame, table, n_pairs, rules)
    out["candidate_pair_recall"] = out["candidates"]["recall"]
    if sweep:
        out["sweep"] = _sweep(con, frame, table, weights)
    con.execute(f"DROP TABLE {table}")
    con.execute(f"DROP TABLE {frame}")


def score_all(res: dict[str, Any], work: Path, linked: list[str], with_ecm: bool) -> None:
    """Score every linked result in ``work`` against the truth, into ``res``."""
    from linkage_baselines import token_block_rules
    from wmw_link.resources import close_duckdb, open_duckdb

    con, spill = open_duckdb()
    try:
        _load_truth(con, work)
        for name in linked:
            _score_run(
                con,
                res[name],
                _token_nodes(con, work, name),
                work / f"{name}.pairs.parquet",
                _token_rules(work),
                sweep=name == "link",
            )
        if "plain" in res:
            plain = (
                f"SELECT {_dataset('source_dataset')} AS dataset, unique_id AS record_id, "
                "unique_id AS uid, "
                f"cluster_id AS pred FROM {_parquet(work / 'plain.clusters.parquet')}"
            )
            _score_run(
                con,
                res["plain"],
                _nodes(con, plain),
                work / "plain.pairs.parquet",
                token_block_rules(),
                True,
            )
        if with_ecm:
            # node is "<dataset>|<record id>".
            ecm_dataset = "split_part(node, '|', 1)"
            ecm = (
                f"SELECT {_dataset(ecm_dataset)} AS dataset, "
                "substr(node, strpos(node, '|') + 1) AS record_id, "
                "substr(node, strpos(node, '|') + 1) AS uid, cluster AS pred "
                f"FROM {_parquet(work / 'ecm.clusters.parquet')}"
            )
            res["ecm"]["scores"] = _scores(con, _frame(con, _nodes(con, ecm), "scored"))[0]
    finally:
        close_duckdb(con, spill)


def evaluate_size(
    work: Path,
    people: int,
    with_ecm: bool,
    report: bool,
    skip_exact: bool = False,
    spark: bool = False,
    profile: str = "standard",
    reuse: bool = False,
    reuse_plain: bool = False,
    reuse_link: bool = False,
    reuse_spark: bool = False,
    skip_plain: bool = False,
) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    res: dict[str, Any] = {"people": people, "profile": profile}
    if reuse:
        res["synth"] = _reused_stage(work, "synth")
        res["tokenise"] = _reused_stage(work, "tokenise")
    else:
        res["synth"] = _run_stage("synth", work, people, profile=profile)
        res["tokenise"] = _run_stage("tokenise", work, people)
    if reuse_link:
        if not (work / "link.json").is_file():
            raise SystemExit(f"--reuse-link: {work} holds no link.json")
        res["link"] = _reused_stage(work, "link")
    else:
        res["link"] = _run_stage("link", work, people, report=report)
    if not skip_exact:
        res["link_exact"] = _run_stage("link_exact", work, people)
    if spark and reuse_spark:
        if not (work / "link_spark.json").is_file():
            raise SystemExit(f"--reuse-spark: {work} holds no link_spark.json")
        res["link_spark"] = _reused_stage(work, "link_spark")
    elif spark:
        res["link_spark"] = _run_stage("link_spark", work, people)
    if skip_plain:
        pass  # beyond what plaintext Splink fits in memory (10M people): tokens only
    elif reuse_plain:
        if not (work / "plain.clusters.parquet").is_file():
            raise SystemExit(f"--reuse-plain: {work} holds no plain.clusters.parquet")
        res["plain"] = _reused_stage(work, "plain")
    else:
        res["plain"] = _run_stage("plain", work, people)
    if with_ecm and not skip_plain:  # ECM reads the plaintext stage's records
        res["ecm"] = _run_stage("ecm", work, people)

    t_score = time.perf_counter()
    linked = ["link"] + ([] if skip_exact else ["link_exact"]) + (["link_spark"] if spark else [])
    score_all(res, work, linked, "ecm" in res)
    if spark:
        from same_persons import compare_links

        # Spark against DuckDB: the same persons? (pairs of records, whole persons)
        res["spark_vs_duckdb"] = compare_links(work / "link", work / "link_spark")
    # The benchmark's own scoring (every linked result against the truth), in this process.
    res["scoring_s"] = time.perf_counter() - t_score
    return res


# --------------------------------------------------------------------------------------------
# output


def _summarise(r: dict[str, Any]) -> dict[str, Any]:
    # With --reuse the tokenise stage ran earlier: its figures may be unknown (None).
    tok_s = r["tokenise"]["wall_seconds"]
    tok = None if tok_s is None else tok_s + r["link"]["wall_seconds"]
    best = max(r["link"]["sweep"], key=lambda p: p["f1"])
    row = {
        "people": r["people"],
        "records": r["link"]["records"],
        "f1_tokens": r["link"]["scores"]["f1"],
        "f1_tokens_exact_only": r["link_exact"]["scores"]["f1"] if "link_exact" in r else None,
        "f1_ecm": r["ecm"]["scores"]["f1"] if "ecm" in r else None,
        "f1_tokens_spark": r["link_spark"]["scores"]["f1"] if "link_spark" in r else None,
        "precision_tokens": r["link"]["scores"]["precision"],
        "recall_tokens": r["link"]["scores"]["recall"],
        "within_f1_tokens": r["link"]["scores"]["within_f1"],
        "across_f1_tokens": r["link"]["scores"]["across_f1"],
        "default_threshold_weight": r["link"]["threshold_weight"],
        "best_sweep_weight": best["threshold_weight"],
        "best_sweep_f1": best["f1"],
        "f1_gap_to_best_points": 100 * (best["f1"] - r["link"]["scores"]["f1"]),
        "household_false_pairs_tokens": r["link"]["scores"]["household_false_pairs"],
        "household_false_merge_rate_tokens": r["link"]["scores"]["household_false_merge_rate"],
        "candidate_recall_tokens": r["link"]["candidate_pair_recall"],
        "pairs_per_record_tokens": r["link"]["candidates"]["pairs_per_record"],
        "equity_groups_flagged_tokens": len(r["link"]["equity"]["flags"]),
        "pairs_scored_tokens": r["link"]["comparisons"],
        "tokenise_s": r["tokenise"]["wall_seconds"],
        "link_s": r["link"]["wall_seconds"],
        "tokens_total_s": tok,
        "peak_mib_tokenise": r["tokenise"]["peak_mib"],
        "peak_mib_link": r["link"]["peak_mib"],
        "link_spark_s": r["link_spark"]["wall_seconds"] if "link_spark" in r else None,
        "peak_mib_link_spark": r["link_spark"]["peak_mib"] if "link_spark" in r else None,
        "spark_same_person_records": (
            r["spark_vs_duckdb"]["identical_record_share"] if "spark_vs_duckdb" in r else None
        ),
        "spark_pair_f1_vs_duckdb": (
            r["spark_vs_duckdb"]["pair_f1"] if "spark_vs_duckdb" in r else None
        ),
        "scoring_s": r.get("scoring_s"),
    }
    return _with_plaintext(row, r, tok)


# The summary's plaintext Splink figures, in the order of the table (None without a plaintext
# run: --skip-plain).
_PLAIN_FIELDS = (
    "f1_plaintext",
    "f1_ratio",
    "best_sweep_f1_plaintext",
    "household_false_pairs_plaintext",
    "candidate_recall_plaintext",
    "equity_groups_flagged_plaintext",
    "pairs_scored_plaintext",
    "plaintext_normalise_s",
    "plaintext_splink_s",
    "plaintext_total_s",
    "time_ratio",
    "link_vs_splink_ratio",
    "tokenise_vs_normalise_ratio",
    "peak_mib_plaintext",
    "peak_memory_ratio",
)


def _with_plaintext(row: dict[str, Any], r: dict[str, Any], tok: float | None) -> dict[str, Any]:
    """``row`` with the plaintext Splink figures (and the ratios to them) added."""
    p = r.get("plain")
    vals: dict[str, Any] = dict.fromkeys(_PLAIN_FIELDS)
    if p is not None:
        tok_s = r["tokenise"]["wall_seconds"]
        plain = p["wall_seconds"]
        # The plaintext stage's own clock for normalising the raw extracts; the rest of its
        # wall time is Splink (and process start, like every stage).
        norm = p["timings"]["normalise"]
        vals.update(
            f1_plaintext=p["scores"]["f1"],
            f1_ratio=r["link"]["scores"]["f1"] / p["scores"]["f1"],
            best_sweep_f1_plaintext=max(p["sweep"], key=lambda x: x["f1"])["f1"],
            household_false_pairs_plaintext=p["scores"]["household_false_pairs"],
            candidate_recall_plaintext=p["candidate_pair_recall"],
            equity_groups_flagged_plaintext=len(p["equity"]["flags"]),
            pairs_scored_plaintext=p["comparisons"],
            plaintext_normalise_s=norm,
            plaintext_splink_s=plain - norm,
            plaintext_total_s=plain,
            time_ratio=None if tok is None else tok / plain,
            link_vs_splink_ratio=r["link"]["wall_seconds"] / (plain - norm),
            tokenise_vs_normalise_ratio=None if tok_s is None else tok_s / norm,
            peak_mib_plaintext=p["peak_mib"],
            peak_memory_ratio=max(r["tokenise"]["peak_mib"] or 0, r["link"]["peak_mib"])
            / p["peak_mib"],
        )
    # Keep the table's row order: each plaintext figure beside its token counterpart.
    order = [
        ("f1_tokens", ["f1_plaintext", "f1_ratio"]),
        ("best_sweep_f1", []),
        ("f1_gap_to_best_points", ["best_sweep_f1_plaintext"]),
        ("household_false_pairs_tokens", []),
        ("household_false_merge_rate_tokens", ["household_false_pairs_plaintext"]),
        ("candidate_recall_tokens", ["candidate_recall_plaintext"]),
        ("equity_groups_flagged_tokens", ["equity_groups_flagged_plaintext"]),
        ("pairs_scored_tokens", ["pairs_scored_plaintext"]),
        ("tokens_total_s", _PLAIN_FIELDS[7:13]),
        ("peak_mib_link", ["peak_mib_plaintext"]),
        ("spark_pair_f1_vs_duckdb", ["peak_memory_ratio"]),
    ]
    after = dict(order)
    out: dict[str, Any] = {}
    for k, v in row.items():
        out[k] = v
        for extra in after.get(k, []):
            out[extra] = vals[extra]
    return out


def _equity_lines(results: list[dict[str, Any]]) -> list[str]:
    """Figures by group (tokens, with plaintext Splink's F1 beside), and the flagged groups."""
    lines = ["## Equity: precision, recall and F1 by group (tokens; plaintext Splink F1)", ""]
    lines += [
        "A group's precision counts every predicted pair touching one of its records; flagged: "
        "more than 2 points below the overall figure (groups with at least 100 true pairs).",
        "",
    ]
    for r in results:
        eq = r["link"]["equity"]
        peq = r["plain"]["equity"] if "plain" in r else {"groups": {}, "flags": ["not run"]}
        lines += [f"{r['people']:,} people:", ""]
        lines.append("| by | group | records | precision | recall | F1 | F1 plaintext |")
        lines.append("|---|---|---|---|---|---|---|")
        for by, groups in eq["groups"].items():
            pf = {g["group"]: g["f1"] for g in peq["groups"].get(by, [])}
            for g in groups:
                p = pf.get(g["group"])
                lines.append(
                    f"| {by} | {g['group']} | {g['records']:,} | {g['precision']:.4f} "
                    f"| {g['recall']:.4f} | {g['f1']:.4f} | {'-' if p is None else f'{p:.4f}'} |"
                )
        flagged = eq["flags"] or ["none"]
        lines += ["", "Flagged (tokens): " + "; ".join(flagged), ""]
        lines += ["Flagged (plaintext Splink): " + "; ".join(peq["flags"] or ["none"]), ""]
    return lines


def _candidate_lines(results: list[dict[str, Any]]) -> list[str]:
    """Blocking recall by the rule that first found each true pair, and by source pair."""
    lines = ["## Blocking: true pairs found, by first rule and by source pair", ""]
    for r in results:
        c = r["link"]["candidates"]
        pc = r["plain"]["candidates"] if "plain" in r else {"by_source_pair": {}}
        plain_note = (
            f"plaintext Splink {pc['recall']:.4f} at {pc['pairs_per_record']:.2f}"
            if "recall" in pc
            else "plaintext Splink not run"
        )
        lines += [
            f"{r['people']:,} people: recall {c['recall']:.4f} at {c['pairs_per_record']:.2f} "
            f"scored pairs per record ({plain_note}).",
            "",
            "| first rule | share of true pairs |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.4f} |" for k, v in c["by_rule_first"].items()]
        lines += ["", "| source pair | true pairs | recall tokens | recall plaintext |"]
        lines.append("|---|---|---|---|")
        for k, v in sorted(c["by_source_pair"].items(), key=lambda kv: kv[1]["recall"]):
            p = pc["by_source_pair"].get(k, {}).get("recall")
            lines.append(
                f"| {k} | {v['true_pairs']:,} | {v['recall']:.4f} "
                f"| {'-' if p is None else f'{p:.4f}'} |"
            )
        lines.append("")
    return lines


def _write(results: list[dict[str, Any]], name: str, meta: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    rows = [_summarise(r) for r in results]
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"meta": meta, "summary": rows, "runs": results}, indent=2, default=float) + "\n"
    )
    cols = list(rows[0])

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    lines = [
        "# Token linkage vs plaintext linkage (synthetic West Midlands extracts)",
        "",
        f"{meta['machine']}; seed {SEED}; synthetic profile {meta['profile']}; DuckDB backend; "
        f"generated {meta['when']}.",
        "Each stage ran in its own process. Times in seconds, memory as peak RSS in MiB.",
        "1-minute load average as each stage ended (2 cores: above 2, stages shared the CPU): "
        + "; ".join(
            f"{r['people']:,} people: "
            + ", ".join(
                f"{st} {r[st]['load_average_end']:.1f}"
                for st in ("link", "plain")
                if r.get(st, {}).get("load_average_end") is not None
            )
            for r in results
        )
        + ".",
        "",
    ]
    lines.append("| measure | " + " | ".join(f"{r['people']:,} people" for r in rows) + " |")
    lines.append("|---|" + "---|" * len(rows))
    for c in cols[1:]:
        lines.append(f"| {c} | " + " | ".join(fmt(r[c]) for r in rows) + " |")
    lines += ["", "## True F1 by threshold (tokens), for the label-free default", ""]
    for r in results:
        lines.append(
            f"{r['people']:,} people (default weight {r['link']['threshold_weight']:.2f}):"
        )
        lines.append("")
        lines.append("| weight | precision | recall | F1 | household false pairs |")
        lines.append("|---|---|---|---|---|")
        for p in r["link"]["sweep"]:
            lines.append(
                f"| {p['threshold_weight']:.1f} | {p['precision']:.4f} | {p['recall']:.4f} "
                f"| {p['f1']:.4f} | {p['household_false_pairs']} |"
            )
        lines.append("")
    lines += _equity_lines(results) + _candidate_lines(results)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def results_name(profile: str, name: str | None = None) -> str:
    """The results file stem: ``name`` if given, else linkage, or linkage-<profile>."""
    if name:
        return name
    return "linkage" if profile == "standard" else f"linkage-{profile}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--stage", choices=sorted(STAGES))
    ap.add_argument("--work", type=Path)
    ap.add_argument("--report", action="store_true", help="write the link report (timed)")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    ap.add_argument(
        "--name", help="results file name [default: linkage, or linkage-<profile> if not standard]"
    )
    ap.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="standard",
        help="synthetic profile of the extracts (docs/synthetic-data.md)",
    )
    ap.add_argument("--skip-exact", action="store_true", help="skip the exact-only contrast")
    ap.add_argument(
        "--skip-plain",
        action="store_true",
        help="skip plaintext Splink (sizes it cannot hold in memory): token figures only",
    )
    ap.add_argument("--spark", action="store_true", help="also link on Spark (local mode)")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="link the synth and tokens already in --work (made with --stage synth and "
        "--stage tokenise) instead of making them; one --people; --work is kept",
    )
    ap.add_argument(
        "--reuse-plain",
        action="store_true",
        help="with --reuse, also keep the plaintext Splink stage already run in --work (its "
        "figures from plain.json): re-link only, after a change to the token side",
    )
    ap.add_argument(
        "--reuse-link",
        action="store_true",
        help="with --reuse, also keep the token link already run in --work (link/, link.json): "
        "score only, e.g. after the stages were run one by one",
    )
    ap.add_argument(
        "--reuse-spark",
        action="store_true",
        help="with --reuse and --spark, keep the Spark link already run in --work "
        "(link_spark/ and link_spark.json: --stage link_spark's output line saved there)",
    )
    args = ap.parse_args()
    if args.skip_plain and args.reuse_plain:
        ap.error("--skip-plain and --reuse-plain contradict each other")
    if (args.reuse_plain or args.reuse_link or args.reuse_spark) and not args.reuse:
        ap.error("--reuse-plain, --reuse-link and --reuse-spark need --reuse")
    if args.reuse_spark and not args.spark:
        ap.error("--reuse-spark needs --spark")
    name = results_name(args.profile, args.name)
    if args.stage:
        out = STAGES[args.stage](args.work, args)
        out["peak_mib"] = _peak_mib()
        print(json.dumps(out, default=float))
        return
    if args.reuse and (args.work is None or len(args.people) != 1):
        ap.error("--reuse needs --work and one --people")
    results = []
    for n in args.people:
        work = args.work if args.reuse else Path(tempfile.mkdtemp(prefix=f"bench-linkage-{n}-"))
        t0 = time.perf_counter()
        results.append(
            evaluate_size(
                work,
                n,
                with_ecm=(n == min(args.people) and n <= 100_000),
                report=args.report,
                skip_exact=args.skip_exact,
                spark=args.spark,
                profile=args.profile,
                reuse=args.reuse,
                reuse_plain=args.reuse_plain,
                reuse_link=args.reuse_link,
                reuse_spark=args.reuse_spark,
                skip_plain=args.skip_plain,
            )
        )
        print(f"{n:,} people done in {time.perf_counter() - t0:.0f}s ({work})", file=sys.stderr)
        if not args.keep and not args.reuse:
            shutil.rmtree(work, ignore_errors=True)
        meta = {
            "machine": f"{platform.machine()}, {platform.python_version()}, "
            f"{__import__('os').cpu_count()} cores",
            "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "profile": args.profile,
        }
        _write(results, name, meta)


if __name__ == "__main__":
    main()
