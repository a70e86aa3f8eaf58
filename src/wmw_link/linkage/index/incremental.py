"""Scoring for the person index: a full fit, or only pairs touching new records.

Records are loaded with a ``unique_id`` that is their position in the run's record list
(global over datasets); records new in this run (new deliveries and corrections) come last, from
``new_from`` on. An incremental run scores with the stored model only the pairs its blocking
rules generate that touch a new record (:func:`blocked_pairs_sql`, registered with Splink for
``predict``): pairs of two records already in the index are never formed again, their
accepted edges are stored.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from wmw_link.linkage.backends import Backend
from wmw_link.linkage.household import evidence_condition
from wmw_link.linkage.id_u import placeholder_values
from wmw_link.linkage.run import (
    PREDICT_FLOOR_WEIGHT,
    fit_and_cluster,
    keep_levels_in_predictions,
    prepare_plan,
)
from wmw_link.linkage.settings import unique_id_columns

log = logging.getLogger("wmw_link.linkage.index")

_DUCK_TYPES = {"hmac": "BIGINT", "hmac_list": "BIGINT[]", "bloom_word": "BIGINT"}


@dataclass
class Scored:
    """Accepted edges (record positions) and what the model behind them was."""

    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray
    model: dict[str, Any]
    comparisons: int
    timings: dict[str, float]
    clustering: Any = None  # the full fit's Clustering (for the report), None when incremental
    plan: Any = None  # the full fit's ModelPlan


def load(
    be: Backend, tables: dict[str, pa.Table], kinds: dict[str, str], copy: bool = True
) -> list[Any]:
    """Load each dataset's records (column ``gid`` + tokens; rows with ``gid`` -1 are left
    out) as a Splink input.

    Columns of ``kinds`` a dataset lacks are typed NULLs, as :meth:`Backend.load_tokens` does.
    With ``copy=False`` the inputs are views over the Arrow tables (no copy: an incremental
    run reads few of the index's records more than once); training reads them many times and
    gets DuckDB tables.
    """
    inputs = []
    for ds, table in sorted(tables.items()):
        name = f"wmw_tokens_{ds}"
        arrow = f"wmw_arrow_{ds}"
        be.con.register(arrow, table)
        kind = "TABLE" if copy else "VIEW"
        be.con.execute(f"CREATE OR REPLACE {kind} {name} AS {_select(arrow, table, kinds, {})}")
        if copy:
            be.con.unregister(arrow)
        inputs.append(be.db_api.register(name, dataset_display_name=ds))
    if not copy:
        _null_placeholders_in_views(be, tables, kinds)
    return inputs


def _select(arrow: str, table: pa.Table, kinds: dict[str, str], nulls: dict[str, list[int]]) -> str:
    present = set(table.column_names)
    cols = []
    for c, k in sorted(kinds.items()):
        if c not in present:
            cols.append(f"CAST(NULL AS {_DUCK_TYPES[k]}) AS {c}")
        elif nulls.get(c):
            # Integers only (tokens), so the literal list is safe SQL.
            values = ", ".join(str(int(v)) for v in nulls[c])
            null = f"list_contains([{values}]::BIGINT[], {c})"
            cols.append(f"CASE WHEN {null} THEN NULL ELSE {c} END AS {c}")
        else:
            cols.append(c)
    # Rows with gid -1 are stored rows out of this run (withdrawn, or re-sent and replaced).
    return f"SELECT gid AS unique_id, {', '.join(cols)} FROM {arrow} WHERE gid >= 0"


def _null_placeholders_in_views(
    be: Backend, tables: dict[str, pa.Table], kinds: dict[str, str]
) -> None:
    """Placeholder ids (:func:`wmw_link.linkage.id_u.placeholder_values`) read as null in the
    views of an incremental run, as a full fit nulls them in its tables before anything counts:
    otherwise the NINo rule pairs the strangers who share one and the weak rules keep one
    person's records apart when one of them holds it."""
    names = [f"wmw_tokens_{ds}" for ds in sorted(tables)]
    hashed = sorted(c for c, k in kinds.items() if k == "hmac")
    nulls = {}
    for col in unique_id_columns(set(kinds)):
        if col in kinds:
            values = placeholder_values(be, names, col, hashed)
            if values:
                log.info("%s: %d placeholder value(s) nulled", col, len(values))
                nulls[col] = values
    if nulls:
        for ds, table in sorted(tables.items()):
            sql = _select(f"wmw_arrow_{ds}", table, kinds, nulls)
            be.con.execute(f"CREATE OR REPLACE VIEW wmw_tokens_{ds} AS {sql}")


def fit(
    be: Backend,
    inputs: list[Any],
    kinds: dict[str, str],
    *,
    seed: int,
    n_records: int,
    threshold: float | None,
    exact_only: bool,
) -> Scored:
    """Train a new model on every loaded record, score, choose the threshold; keep the edges
    that pass the household rule and the threshold."""
    t0 = time.perf_counter()
    plan = prepare_plan(be, [i.physical_name for i in inputs], kinds, seed, exact_only)
    timings = {"plan": time.perf_counter() - t0}
    # Persons come from the edges (index/run.py splits them as a link does), not cl.frame.
    cl = fit_and_cluster(
        inputs, plan, seed=seed, n_records=n_records, threshold=threshold,
        split_id_conflicts=False,
    )  # fmt: skip
    timings.update(cl.timings)
    splink = cl.linker.misc.save_model_to_json()
    rows = be.con.execute(
        f"SELECT unique_id_l, unique_id_r, match_weight FROM {cl.linkable.physical_name} "
        "WHERE match_weight >= ?",
        [cl.weight],
    ).fetchnumpy()
    model = {
        "splink": splink,
        "threshold_match_weight": cl.weight,
        "threshold_method": cl.method,
        "household_rule_sql": cl.evidence_sql,
        "token_kinds": dict(sorted(kinds.items())),
        "model": "exact-only" if exact_only else "full",
        "seed": seed,
    }
    return Scored(
        rows["unique_id_l"].astype(np.int64),
        rows["unique_id_r"].astype(np.int64),
        rows["match_weight"].astype(np.float64),
        model,
        cl.comparisons,
        timings,
        cl,
        plan,
    )


def settings_for(splink: dict[str, Any], n_inputs: int) -> dict[str, Any]:
    """The stored Splink settings for ``n_inputs`` datasets (one: dedupe only)."""
    s = copy.deepcopy(splink)
    s["link_type"] = "link_and_dedupe" if n_inputs > 1 else "dedupe_only"
    return s


def blocked_pairs_sql(inputs: list[Any], rules: list[dict[str, Any]], new_from: int) -> str:
    """SQL for the pairs the model's blocking rules generate that touch a new record.

    Every rule is a symmetric join condition over ``l.`` and ``r.`` (the token schema's rules
    are equalities of one token column), so each pair with a new record is found by joining
    every record (``l``) to the new ones (``r``) with ``l.unique_id < r.unique_id``: the hash
    join is built on the few new records instead of the whole index, and no pair of two old
    records is formed. A rule with ``arrays_to_explode`` joins its exploded lists, as Splink
    does. A pair takes the first rule that finds it as its match key (Splink's order). The
    join keys are Splink's (``source_dataset || '-__-' || unique_id`` when linking several
    datasets), so the table can be registered for ``predict``.
    """
    from splink.internals.unique_id_concat import CONCAT_SEPARATOR

    names = [(str(i.dataset_display_name or i.templated_name), i.physical_name) for i in inputs]
    union = " UNION ALL ".join(
        f"SELECT '{ds.replace(chr(39), chr(39) * 2)}' AS source_dataset, * FROM {table}"
        for ds, table in names
    )
    parts = []
    for k, rule in enumerate(rules):
        sql = rule["blocking_rule"] if isinstance(rule, dict) else str(rule)
        explode = list(rule.get("arrays_to_explode") or []) if isinstance(rule, dict) else []
        side = "wmw_all"
        for col in explode:
            side = f"(SELECT * REPLACE (UNNEST({col}) AS {col}) FROM {side})"
        new_side = f"(SELECT * FROM {side} WHERE unique_id >= {int(new_from)})"
        parts.append(
            f"SELECT {k} AS mk, l.source_dataset AS ds_l, l.unique_id AS id_l, "
            f"r.source_dataset AS ds_r, r.unique_id AS id_r FROM {side} AS l "
            f"JOIN {new_side} AS r ON ({sql}) WHERE l.unique_id < r.unique_id"
        )
    if len(inputs) > 1:
        sep = CONCAT_SEPARATOR.replace("'", "''")
        key_l = f"ds_l || '{sep}' || CAST(id_l AS VARCHAR)"
        key_r = f"ds_r || '{sep}' || CAST(id_r AS VARCHAR)"
    else:
        key_l, key_r = "id_l", "id_r"
    return (
        f"WITH wmw_all AS ({union}) "
        f"SELECT CAST(MIN(mk) AS VARCHAR) AS match_key, {key_l} AS join_key_l, "
        f"{key_r} AS join_key_r FROM ({' UNION ALL '.join(parts)}) "
        "GROUP BY ds_l, id_l, ds_r, id_r"
    )


def score_new(be: Backend, inputs: list[Any], model: dict[str, Any], new_from: int) -> Scored:
    """Score pairs with at least one record at position ``new_from`` or later with the stored
    model; keep those passing the stored household rule and threshold."""
    from splink import Linker

    t0 = time.perf_counter()
    settings = settings_for(model["splink"], len(inputs))
    # The stored model was validated by Splink when it was trained on these token columns;
    # validating again parses every comparison's SQL (seconds, whatever the data size).
    linker = Linker(list(inputs), settings, log_level=logging.ERROR, validate_settings=False)
    keep_levels_in_predictions(linker)
    # The loaded model's household rule must be the stored one: the same comparisons and levels.
    if evidence_condition(linker) != model["household_rule_sql"]:
        log.warning("the stored household rule differs from the model's; using the stored one")
    timings = {"linker": time.perf_counter() - t0}
    be.con.execute(
        "CREATE OR REPLACE TABLE wmw_blocked_pairs AS "
        + blocked_pairs_sql(inputs, settings["blocking_rules_to_generate_predictions"], new_from)
    )
    pairs = be.db_api.register("wmw_blocked_pairs")
    linker.table_management.register_blocked_pairs_for_predict(pairs)
    timings["block"] = time.perf_counter() - t0 - timings["linker"]
    weight = float(model["threshold_match_weight"])
    predictions = linker.inference.predict(
        threshold_match_weight=max(weight - 1e-9, PREDICT_FLOOR_WEIGHT), warning_mode="never"
    )
    comparisons = int(be.scalar("SELECT COUNT(*) FROM wmw_blocked_pairs"))
    rows = be.con.execute(
        f"SELECT unique_id_l, unique_id_r, match_weight FROM {predictions.physical_name} "
        f"WHERE match_weight >= ? AND ({model['household_rule_sql']})",
        [weight],
    ).fetchnumpy()
    timings["predict"] = time.perf_counter() - t0 - timings["block"] - timings["linker"]
    return Scored(
        rows["unique_id_l"].astype(np.int64),
        rows["unique_id_r"].astype(np.int64),
        rows["match_weight"].astype(np.float64),
        model,
        comparisons,
        timings,
    )


__all__ = ["Scored", "blocked_pairs_sql", "fit", "load", "score_new", "settings_for"]
