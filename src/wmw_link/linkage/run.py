"""The linkage run: verify, load, train, predict, choose a threshold, cluster, write.

Called by ``wmw-link link`` and usable from Python::

    from wmw_link.agreement import load_agreement
    from wmw_link.linkage import link
    result = link(load_agreement("agreements/wmw-outcomes.yaml"), "ttp/inbox", "ttp/out")
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from wmw_link._version import __version__
from wmw_link.agreement import Agreement, Role
from wmw_link.errors import ConfigError, InputDataError
from wmw_link.files import sha256_file, write_json_atomic
from wmw_link.linkage import threshold as thr
from wmw_link.linkage.backends import Backend, open_backend
from wmw_link.linkage.components import cluster_in_memory, split_fetched
from wmw_link.linkage.household import evidence_condition, one_person_levels
from wmw_link.linkage.id_u import generic_id_near_u, generic_id_u, placeholder_values
from wmw_link.linkage.level_u import level_u
from wmw_link.linkage.maps import build_maps, write_maps
from wmw_link.linkage.predict_blocks import blocks_for, predict_in_blocks
from wmw_link.linkage.settings import (
    ModelPlan,
    keep_apart_ids,
    model_levels,
    near_id_column,
    near_names_column,
    plan_model,
    settings_creator,
    tie_key_columns,
    unique_id_columns,
    usable_levels,
)
from wmw_link.linkage.text_u import text_u
from wmw_link.linkage.union import UnionIds
from wmw_link.linkage.verify import VerifiedInput, verify_deliveries
from wmw_link.outdir import staged_dir
from wmw_link.resources import parse_size

log = logging.getLogger("wmw_link.linkage")

#: Pairs scoring below this match weight are not kept after prediction (p < 0.001).
PREDICT_FLOOR_WEIGHT = -10.0
LINK_MANIFEST_NAME = "link-manifest.json"
BIN_WIDTH = 0.25


@dataclass
class LinkResult:
    """What a linkage run produced."""

    out_dir: Path
    maps: dict[str, Path]
    manifest: Path
    report_dir: Path
    threshold_match_weight: float
    threshold_probability: float
    threshold_method: str
    records: int
    persons: int
    comparisons: int
    timings: dict[str, float] = field(default_factory=dict, repr=False)
    sweep: list[dict[str, float | int]] = field(default_factory=list, repr=False)


def _token_kinds(verified: Sequence[VerifiedInput]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for v in verified:
        for col, spec in v.token_columns.items():
            kinds[col] = spec["kind"]
    return kinds


def near_unique_u(backend: Backend, tables: Sequence[str], column: str) -> float | None:
    """u for exact agreement on a NINo or NHS number: half a pair's worth.

    Both are issued one per person and checked by the tokeniser (format, prefix, check
    digit). Records of different people share one only through a placeholder (nulled first,
    :func:`wmw_link.linkage.id_u.placeholder_values`) or a typo that lands on another
    resident's number (for a region's million people among the NINo's hundreds of millions
    of values, a fraction of a pair in a run). Counting ``1 / distinct values`` (values dealt
    at random) made an agreeing NINo weigh no more than the prior against a pair: one
    person's records sharing the NINo and no name or date token (a placeholder 1 January
    date with swapped, transliterated names) fell below the threshold. The count of pairs
    sharing it and nothing else (:func:`wmw_link.linkage.id_u.generic_id_u`, for generic ids,
    whose nature the agreement does not say) is nearly all such records of one person.
    """
    union = " UNION ALL ".join(f"SELECT {column} AS v FROM {t}" for t in tables)
    n = backend.scalar(f"SELECT COUNT(v) FROM ({union})")
    if not n or n < 2:
        return None
    return 0.5 / (float(n) * (float(n) - 1) / 2)


def keep_levels_in_predictions(linker: Any) -> None:
    """Make Splink's predictions keep each comparison's level (``gamma_<name>``) but no token
    columns.

    The household rule reads the levels. Splink 5 keeps them in predictions only together
    with the compared columns (``retain_matching_columns``): some sixty token columns per side
    carried through prediction, for nothing. Splink's own training passes keep the levels
    alone (its ``training_mode``); this asks the same of the prediction, per comparison of
    this linker only. ``tests/unit/test_linkage_run.py`` checks the predictions' columns, so
    a Splink upgrade that changes this fails there, not silently.
    """
    for comp in linker._settings_obj.comparisons:
        select = comp._columns_to_select_for_predict

        def with_levels(
            retain_matching: bool,
            retain_intermediate: bool,
            training_mode: bool,
            _select: Any = select,
        ) -> list[str]:
            return _select(retain_matching, retain_intermediate, True)

        comp._columns_to_select_for_predict = with_levels


def _all_u_fixed(linker: Any) -> bool:
    """Whether every level's u is fixed (counted from tokens), so sampling has nothing to do."""
    return all(
        lvl.is_null_level or lvl._fix_u_probability
        for comp in linker._settings_obj.comparisons
        for lvl in comp.comparison_levels
    )


def _train(linker: Any, plan: ModelPlan, seed: int, n_records: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if plan.deterministic_rules:
        linker.training.estimate_probability_two_random_records_match(
            plan.deterministic_rules, recall=0.8
        )
    timings["prior"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if not _all_u_fixed(linker):
        # About five sampled pairs per record, at least 1e5 and at most 5e6: enough for every
        # common level, and the near-unique identifiers' u comes from token frequencies instead.
        max_pairs = float(min(max(n_records * 5, 1e5), 5e6))
        # One chunk for small samples: chunking exists to stop early on large ones, and each
        # chunk is a separate job on Spark.
        linker.training.estimate_u_using_random_sampling(
            max_pairs=max_pairs, seed=seed, num_chunks=1 if max_pairs <= 1e6 else 10
        )
    timings["u_sampling"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for block in plan.em_blocks:
        linker.training.estimate_parameters_using_expectation_maximisation(
            block, estimate_without_term_frequencies=True, max_pairs=2e6
        )
    timings["em"] = time.perf_counter() - t0
    return timings


def _choose(
    linker: Any, filtered: Any, threshold: float | None
) -> tuple[float, str, list[thr.SweepPoint]]:
    rows = linker.misc.query_sql(
        thr.histogram_sql(filtered.physical_name, BIN_WIDTH), output_type="pandas"
    )
    bins = [
        (int(b), int(n), float(s))
        for b, n, s in rows[["bin", "n", "sum_p"]].itertuples(index=False)
    ]
    points = thr.sweep(bins, BIN_WIDTH)
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"--threshold must be a probability between 0 and 1, got {threshold}")
        return thr.probability_to_weight(threshold), "given", points
    if not points:
        return 0.0, "no candidate pairs", points
    best = thr.choose_threshold(points)
    return best.threshold_match_weight, "maximum expected F1 (label-free)", points


def link(
    agreement: Agreement,
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    backend: str = "duckdb",
    threshold: float | None = None,
    party: str | None = None,
    seed: int = 42,
    exact_only: bool = False,
    threads: int | None = None,
    report: bool = True,
    keep_pairs: str | Path | None = None,
    memory_limit: str | int | None = None,
    temp_dir: str | Path | None = None,
) -> LinkResult:
    """Link all partners' tokens into persons and write one map per dataset.

    Args:
        agreement: the agreement the trusted third party acts under.
        inputs: a directory of ``*.tokens.parquet`` + ``*.manifest.json``, or those files.
        out_dir: where maps, ``link-manifest.json`` and ``report/`` go. The folder is
            replaced as a whole when the run completes (nothing of an earlier run is left);
            it may hold only a previous link output.
        backend: ``duckdb`` (default) or ``spark``.
        threshold: a match probability to cluster at; default chosen without labels.
        party: the TTP party id (default: the agreement's only TTP).
        seed: seed for random sampling (reproducible u estimates).
        exact_only: a naive contrast model with exact-token comparisons only.
        threads: cores to use (default: all).
        report: write the quality report (charts, rates, sweep, model).
        keep_pairs: also write the scored pairs here (Parquet; for benchmarks measuring
            blocking recall; holds row refs and weights, no tokens).
        memory_limit: DuckDB's memory limit, e.g. ``"8GB"`` or bytes (default: 25% of the
            machine's memory; Spark: sets the driver memory if given). See docs/linkage.md.
        temp_dir: a folder DuckDB (Spark) spills to; a private folder is made inside it and
            removed afterwards (default: inside the run's temporary folder in ``out_dir``).

    Returns:
        A :class:`LinkResult`.

    Raises:
        PolicyError: the agreement is not in force or the party is not its TTP.
        VerificationError: an input failed verification (nothing is linked).
        ConfigError: ``out_dir`` holds files that are not a link output, or cannot be written;
            a malformed ``memory_limit``.
    """
    if memory_limit is not None:
        parse_size(memory_limit)  # refuse a malformed size before verifying anything
    blocks_for(0, 0, None)  # and a malformed WMW_PREDICT_BLOCKS
    agreement.require_in_force()
    party = party or agreement.default_party(Role.TTP)
    agreement.require_role(party, Role.TTP, "run linkage")
    out = Path(out_dir)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    # Everything (maps, report, manifest) is written into a temporary sibling of ``out`` and
    # swapped in only when complete: a failed or interrupted run leaves the previous output as
    # it was, and a run never leaves an earlier run's maps beside its own manifest.
    with staged_dir(out, link_output_names(agreement), "link") as stage:
        tmp = Path(tempfile.mkdtemp(prefix=".wmw-link-", dir=stage))
        # Several delivery folders may carry one dataset: merged (later rows win) under tmp.
        verified = verify_deliveries(agreement, inputs, tmp / "merged")
        if not verified:
            raise InputDataError("no tokens to link")
        timings["verify"] = time.perf_counter() - t_start
        log.info("verified %d input(s): %s", len(verified), ", ".join(v.dataset for v in verified))
        be = open_backend(backend, tmp, threads, memory_limit=memory_limit, temp_dir=temp_dir)
        try:
            staged = _run(
                agreement,
                verified,
                stage,
                be,
                threshold,
                seed,
                exact_only,
                report,
                timings,
                t_start,
                Path(keep_pairs) if keep_pairs else None,
            )
        finally:
            be.close()
            shutil.rmtree(tmp, ignore_errors=True)
    return dataclasses.replace(
        staged,
        out_dir=out,
        maps={d: out / p.name for d, p in staged.maps.items()},
        manifest=out / staged.manifest.name,
        report_dir=out / staged.report_dir.name,
    )


def link_output_names(agreement: Agreement) -> frozenset[str]:
    """The top-level names a link output folder may hold (what :func:`link` and ``--seal-to``
    write there): one map per dataset of the agreement, the manifest, ``report/``, ``sealed/``.
    """
    return frozenset(
        {f"{d.id}.map.parquet" for d in agreement.datasets}
        | {LINK_MANIFEST_NAME, "report", "sealed"}
    )


@dataclass
class Clustering:
    """The outcome of :func:`fit_and_cluster` (Splink tables stay in the backend)."""

    linker: Any
    predictions: Any
    linkable: Any
    frame: pd.DataFrame  # source_dataset, unique_id, cluster_id
    weight: float
    method: str
    points: list[thr.SweepPoint]
    comparisons: int
    evidence_sql: str
    timings: dict[str, float]
    #: SQL (a table or subquery) of every scored pair with ``source_dataset_l``/``_r`` and
    #: ``unique_id_l``/``_r`` as the inputs name them (a union's ids read back).
    pairs_sql: str = ""
    #: Blocks per side the pairs were scored in (:mod:`wmw_link.linkage.predict_blocks`).
    predict_blocks: int = 1


def fit_and_cluster(
    inputs: Sequence[Any],
    plan: ModelPlan,
    *,
    seed: int,
    n_records: int,
    threshold: float | None = None,
    household_rule: bool = True,
    evidence: Callable[[Any], str] | None = None,
    splink_clustering: bool = False,
    union: UnionIds | None = None,
    predict_blocks: int = 1,
    split_id_conflicts: bool = True,
) -> Clustering:
    """Train the model, score the blocked pairs, choose a threshold and cluster.

    The same steps serve the token model and the plaintext baseline in ``benchmarks/``.

    Args:
        inputs: registered SplinkDataFrames, one per dataset.
        plan: comparisons, blocking rules and training blocks.
        seed: seed for u sampling.
        n_records: total input records (sizes the u sample).
        threshold: match probability to cluster at; None chooses it without labels.
        household_rule: drop pairs without identity evidence (:mod:`wmw_link.linkage.household`).
        evidence: the household rule's SQL from the linker, for models whose comparisons are
            not the token model's (the plaintext baselines).
        splink_clustering: cluster with Splink's SQL connected components, as plaintext Splink
            does (the benchmarks' baseline); by default DuckDB runs cluster in memory
            (:mod:`wmw_link.linkage.components`: the same persons, faster). Spark always
            uses Splink's.
        union: how to read the ids when ``inputs`` is one union of every dataset
            (:meth:`Backend.load_union`; DuckDB).
        predict_blocks: score the blocked pairs in this many blocks per side
            (:mod:`wmw_link.linkage.predict_blocks`; DuckDB), so that a block's records fit
            the memory limit.
        split_id_conflicts: keep records with different NINos or NHS numbers out of one
            person unless a linked pair carries both (:func:`~wmw_link.linkage.components.
            split_conflicts`, after either clustering).

    Returns:
        A :class:`Clustering`.
    """
    from splink import Linker

    in_memory = not splink_clustering and _dialect(inputs) == "duckdb"
    if union is not None and not in_memory:
        raise ValueError("a union input (linkage/union.py) is clustered in memory, on DuckDB")
    linker = Linker(list(inputs), settings_creator(plan, len(inputs)), log_level=logging.ERROR)
    # Each record as (source_dataset, unique_id) in Splink's outputs, whatever the inputs.
    src = union.source_columns() if union is not None else _source_columns(inputs)
    timings = _train(linker, plan, seed, n_records)
    log.info("model trained")
    keep_levels_in_predictions(linker)
    t0 = time.perf_counter()
    predictions = predict_in_blocks(linker, predict_blocks, PREDICT_FLOOR_WEIGHT)
    timings["predict"] = time.perf_counter() - t0
    comparisons = int(
        linker.misc.query_sql(
            f"SELECT COUNT(*) AS n FROM {predictions.physical_name}", output_type="pandas"
        )["n"].iloc[0]
    )
    log.info("scored %d candidate pairs", comparisons)
    t0 = time.perf_counter()
    lifted: frozenset[str] = frozenset()
    if evidence is None and household_rule:
        lifted = one_person_levels(linker, predictions)
        if lifted:
            log.info("household rule: lifted for %s (one person in these data)", sorted(lifted))
        evidence_sql = evidence_condition(linker, lifted)
    else:
        evidence_sql = evidence(linker) if evidence is not None and household_rule else "TRUE"
    # Only what clustering and the sweep need: a narrow table is cheap to write.
    linkable = linker.misc.query_sql(
        f"SELECT {src['_l']}, {src['_r']}, match_key, "
        f"match_weight, match_probability FROM {predictions.physical_name} WHERE {evidence_sql}",
        output_type="splink_df",
    )
    weight, method, points = _choose(linker, linkable, threshold)
    from splink.internals.misc import threshold_args_to_match_prob

    # Splink's own cut, to the last bit: probability at least that of the weight.
    p = threshold_args_to_match_prob(None, weight)
    above = f"(SELECT * FROM {linkable.physical_name} WHERE match_probability >= {p})"
    named = src[""] if union is not None or len(inputs) == 1 else None
    ids = keep_apart_ids(plan.columns) if split_id_conflicts else []
    keys = tie_key_columns(plan.columns) if ids else []
    records = " UNION ALL ".join(
        f"SELECT {named or _dataset_literal(i) + ' AS source_dataset, unique_id'}"
        f"{''.join(', ' + c for c in dict.fromkeys([*ids, *keys]))} FROM {i.physical_name}"
        for i in inputs
    )
    if not in_memory:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            linkable, threshold_match_weight=weight
        )
        named_clusters = f"(SELECT {src['']}, cluster_id FROM {clusters.physical_name})"
        frame = linker.misc.query_sql(f"SELECT * FROM {named_clusters}", output_type="pandas")
        refused = 0
        if ids:
            frame, refused = split_fetched(
                linker, frame, records, named_clusters, above, ids, keys
            )
    else:
        frame, refused = cluster_in_memory(linker, records, above, ids, keys)
    if refused:
        log.info(
            "clustering: %d linked pair(s) not followed: they would join different %s",
            refused, " or ".join(ids),
        )  # fmt: skip
    timings["threshold_and_cluster"] = time.perf_counter() - t0
    log.info("clustered at match weight %.2f (%s)", weight, method)
    pairs_sql = predictions.physical_name
    if union is not None:
        pairs_sql = (
            f"(SELECT * EXCLUDE (unique_id_l, unique_id_r), {src['_l']}, {src['_r']} "
            f"FROM {pairs_sql})"
        )
    elif len(inputs) == 1:  # dedupe_only: Splink's predictions have no source_dataset columns
        name = _dataset_literal(inputs[0])
        pairs_sql = (
            f"(SELECT *, {name} AS source_dataset_l, {name} AS source_dataset_r "
            f"FROM {pairs_sql})"
        )
    return Clustering(
        linker, predictions, linkable, frame, weight, method, points, comparisons, evidence_sql,
        timings, pairs_sql, predict_blocks,
    )


def _dataset_literal(sdf: Any) -> str:
    """SQL literal of the ``source_dataset`` value Splink gives an input's records."""
    name = str(getattr(sdf, "dataset_display_name", None) or sdf.templated_name)
    return "'" + name.replace("'", "''") + "'"


def _dialect(inputs: Sequence[Any]) -> str:
    """The SQL dialect of the inputs' database (``duckdb`` or ``spark``)."""
    return str(inputs[0].db_api.sql_dialect.sql_dialect_str)


def _source_columns(inputs: Sequence[Any]) -> dict[str, str]:
    """A select list naming each record by ``source_dataset`` and ``unique_id`` (suffix ``''``,
    ``_l``, ``_r``) in Splink's outputs: the columns when linking several inputs, the one
    dataset's name as a constant when deduplicating one (``dedupe_only`` outputs have no such
    column). A union input reads them from its ids (:meth:`UnionIds.source_columns`)."""
    if len(inputs) > 1:
        return {s: f"source_dataset{s}, unique_id{s}" for s in ("", "_l", "_r")}
    name = _dataset_literal(inputs[0])
    return {s: f"{name} AS source_dataset{s}, unique_id{s}" for s in ("", "_l", "_r")}


def prepare_plan(
    be: Backend, phys: Sequence[str], kinds: dict[str, str], seed: int, exact_only: bool
) -> ModelPlan:
    """The model plan for loaded token tables: comparisons, blocking, u counted from tokens.

    Args:
        be: the backend holding the tables.
        phys: the tables' physical names.
        kinds: token column -> kind, over every table.
        seed: seed for the sampled text u.
        exact_only: the naive exact-token contrast model.
    """
    u_fixed = {}
    hashed = sorted(c for c, k in kinds.items() if k == "hmac")
    for col in unique_id_columns(set(kinds)):
        if col in kinds:
            # A placeholder id shared by many people is no id: null it before anything counts.
            values = placeholder_values(be, phys, col, hashed)
            if values:
                log.info("%s: %d placeholder value(s) nulled", col, len(values))
                for t in phys:
                    be.null_tokens(t, col, values)
            generic = col.startswith("id_")  # unique per person: see linkage/id_u.py
            u = generic_id_u(be, phys, col, hashed) if generic else near_unique_u(be, phys, col)
            if u is not None:
                u_fixed[col] = u
            near = near_id_column(col) if generic else ""
            if near in kinds and not exact_only:
                u_near = generic_id_near_u(be, phys, col, near, hashed)
                if u_near is not None:
                    u_fixed[near] = u_near
            named = near_names_column(col) if generic else ""
            if named in kinds and not exact_only:
                # Both names and an id within one character: two people would need all three
                # to coincide, rarer than sharing a NINo, so half a pair's worth like the NINo.
                # Counted (as for the near id at the postcode), nearly every such pair is one
                # person whose id was mistyped: the count says how common typos are, not u.
                u_named = near_unique_u(be, phys, col)
                if u_named is not None:
                    u_fixed[named] = u_named
    present = set(kinds)
    levels = {n: usable_levels(lv, present) for n, lv in model_levels(exact_only).items()}
    counted = level_u(be, phys, present, levels, seed) | text_u(be, phys, present, seed)
    return plan_model(present, u_fixed, exact_only=exact_only, level_u=counted)


def _run(
    agreement: Agreement,
    verified: list[VerifiedInput],
    out: Path,
    be: Backend,
    threshold: float | None,
    seed: int,
    exact_only: bool,
    report: bool,
    timings: dict[str, float],
    t_start: float,
    keep_pairs: Path | None = None,
) -> LinkResult:
    t0 = time.perf_counter()
    kinds = _token_kinds(verified)
    union = None
    if be.row_number_ids and len(verified) > 1:
        # DuckDB: one input of every dataset, integer ids (linkage/union.py).
        union_input, union = be.load_union(
            [(v.dataset, v.tokens_path, set(v.token_columns) & set(kinds)) for v in verified],
            kinds,
        )
        inputs = [union_input]
    else:
        inputs = [
            be.load_tokens(v.dataset, v.tokens_path, kinds, set(v.token_columns) & set(kinds))
            for v in verified
        ]
    n_records = sum(v.rows for v in verified)
    plan = prepare_plan(be, [sdf.physical_name for sdf in inputs], kinds, seed, exact_only)
    timings["load"] = time.perf_counter() - t0
    log.info("loaded %d records; %d comparisons in the model", n_records, len(plan.comparisons))

    blocks = 1
    if be.name == "duckdb":
        blocks = blocks_for(n_records, len(kinds), be.memory_limit)
        log.info("scoring in %d x %d block(s) of pairs under the memory limit", blocks, blocks)
    cl = fit_and_cluster(
        inputs,
        plan,
        seed=seed,
        n_records=n_records,
        threshold=threshold,
        union=union,
        predict_blocks=blocks,
    )
    timings.update(cl.timings)
    t0 = time.perf_counter()
    expected = {v.dataset: v.row_refs for v in verified}
    if keep_pairs is not None:
        save_pairs(cl, keep_pairs, expected, be)
    maps = build_maps(cl.frame, expected)
    map_paths = write_maps(maps, out)
    timings["write_maps"] = time.perf_counter() - t0

    report_dir = out / "report"
    if report:
        from wmw_link.linkage.report import write_report

        t0 = time.perf_counter()
        write_report(
            report_dir,
            linker=cl.linker,
            predictions=cl.predictions,
            linkable=cl.linkable,
            maps={d: t.to_pandas() for d, t in maps.items()},
            points=cl.points,
            chosen_weight=cl.weight,
            method=cl.method,
            plan=plan,
            comparisons=cl.comparisons,
            evidence_sql=cl.evidence_sql,
        )
        timings["report"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    persons = pc.count_distinct(
        pa.chunked_array([t.column("person_id") for t in maps.values()], pa.string())
    ).as_py()
    manifest = out / LINK_MANIFEST_NAME
    write_json_atomic(
        manifest,
        _link_manifest(
            agreement,
            verified,
            be,
            seed,
            exact_only,
            maps,
            map_paths,
            cl,
            timings,
            n_records,
            persons,
        ),
    )
    return LinkResult(
        out_dir=out,
        maps=map_paths,
        manifest=manifest,
        report_dir=report_dir,
        threshold_match_weight=cl.weight,
        threshold_probability=thr.weight_to_probability(cl.weight),
        threshold_method=cl.method,
        records=n_records,
        persons=persons,
        comparisons=cl.comparisons,
        timings=timings,
        sweep=[p.to_dict() for p in cl.points],
    )


def save_pairs(cl: Clustering, path: Path, refs: dict[str, pa.Array], be: Backend) -> None:
    """Write the scored pairs (row refs, weight, linkable flag) to Parquet, for benchmarks only.

    ``refs``: each dataset's row refs in file order, to name rows whose ``unique_id`` is a row
    number (DuckDB); the pairs are joined to them inside the database.
    """
    evidence = cl.evidence_sql.replace("gamma_", "p.gamma_")
    pred = cl.pairs_sql
    # Each comparison's level too (levels, never token values): benchmarks break misses down.
    gammas = "".join(
        f", p.gamma_{c.output_column_name}" for c in cl.linker._settings_obj.comparisons
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if be.row_number_ids:
        named = pa.Table.from_arrays(
            [
                pa.array(
                    np.concatenate([np.full(len(r), ds, dtype=object) for ds, r in refs.items()])
                ),
                pa.array(np.concatenate([np.arange(len(r)) for r in refs.values()])),
                pa.concat_arrays([r.cast(pa.string()) for r in refs.values()]),
            ],
            names=["ds", "rn", "row_ref"],
        )
        be.con.register("wmw_row_refs", named)
        be.con.execute(
            "COPY (SELECT p.source_dataset_l, l.row_ref AS unique_id_l, p.source_dataset_r, "
            f"r.row_ref AS unique_id_r, p.match_weight, p.match_key, ({evidence}) AS linkable{gammas} "
            f"FROM {pred} p "
            "JOIN wmw_row_refs l ON l.ds = p.source_dataset_l AND l.rn = p.unique_id_l "
            "JOIN wmw_row_refs r ON r.ds = p.source_dataset_r AND r.rn = p.unique_id_r) "
            "TO ? (FORMAT parquet)",
            [str(tmp)],
        )
        be.con.unregister("wmw_row_refs")
    else:
        sql = (
            "SELECT p.source_dataset_l, p.unique_id_l, p.source_dataset_r, p.unique_id_r, "
            f"p.match_weight, p.match_key, ({evidence}) AS linkable{gammas} FROM {pred} p"
        )
        cl.linker.misc.query_sql(sql, output_type="pandas").to_parquet(tmp, index=False)
    tmp.replace(path)


def _link_manifest(
    agreement: Agreement,
    verified: list[VerifiedInput],
    be: Backend,
    seed: int,
    exact_only: bool,
    maps: dict[str, pa.Table],
    map_paths: dict[str, Path],
    cl: Clustering,
    timings: dict[str, float],
    n_records: int,
    persons: int,
) -> dict[str, Any]:
    return {
        "kind": "wmw-link/link-manifest",
        "tool_version": __version__,
        "agreement": {"id": agreement.id, "version": agreement.version, "hash": agreement.hash},
        "backend": be.name,
        "memory_limit_bytes": be.memory_limit,
        "predict_blocks": cl.predict_blocks,
        "seed": seed,
        "model": "exact-only" if exact_only else "full",
        "inputs": {
            v.dataset: {
                "party": v.party,
                "tokens": {"name": v.tokens_path.name, "sha256": v.sha256, "rows": v.rows},
                "manifest": {"name": v.manifest_path.name, "sha256": sha256_file(v.manifest_path)},
                "key_check": v.manifest["key_check"],
            }
            for v in verified
        },
        "outputs": {
            d: {"name": p.name, "sha256": sha256_file(p), "rows": len(maps[d])}
            for d, p in map_paths.items()
        },
        "threshold": {
            "match_weight": cl.weight,
            "match_probability": thr.weight_to_probability(cl.weight),
            "method": cl.method,
            "household_rule": "a link needs forename, date-of-birth, NINo or NHS-number "
            "evidence; surname and address alone never link",
        },
        "counts": {
            "records": n_records,
            "persons": persons,
            "comparisons_scored": cl.comparisons,
        },
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
    }


__all__ = [
    "Clustering",
    "keep_levels_in_predictions",
    "LinkResult",
    "fit_and_cluster",
    "link",
    "link_output_names",
    "near_unique_u",
    "prepare_plan",
]
