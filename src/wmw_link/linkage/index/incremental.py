"""Scoring for the person index: a full fit, or only pairs touching new records.

Records are loaded with a ``unique_id`` that is their position in the run's record list
(global over datasets); records new in this run (new deliveries and corrections) come last, from
``new_from`` on. An incremental run scores with the stored model and adds
``(l.unique_id >= new_from OR r.unique_id >= new_from)`` to every blocking rule, so pairs of two
records already in the index are never scored again: their accepted edges are stored.
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
from wmw_link.linkage.run import (
    PREDICT_FLOOR_WEIGHT,
    _evidence_condition,
    fit_and_cluster,
    keep_levels_in_predictions,
    prepare_plan,
)

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


def load(be: Backend, tables: dict[str, pa.Table], kinds: dict[str, str]) -> list[Any]:
    """Load each dataset's records (column ``gid`` + tokens) as a Splink input.

    Columns of ``kinds`` a dataset lacks are typed NULLs, as :meth:`Backend.load_tokens` does.
    """
    inputs = []
    for ds, table in sorted(tables.items()):
        present = set(table.column_names)
        cols = ", ".join(
            c if c in present else f"CAST(NULL AS {_DUCK_TYPES[k]}) AS {c}"
            for c, k in sorted(kinds.items())
        )
        name = f"wmw_tokens_{ds}"
        be.con.register("wmw_arrow_in", table)
        be.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT gid AS unique_id, {cols} "
                       "FROM wmw_arrow_in")  # fmt: skip
        be.con.unregister("wmw_arrow_in")
        inputs.append(be.db_api.register(name, dataset_display_name=ds))
    return inputs


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
    cl = fit_and_cluster(inputs, plan, seed=seed, n_records=n_records, threshold=threshold)
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


def incremental_settings(splink: dict[str, Any], new_from: int, n_inputs: int) -> dict[str, Any]:
    """The stored Splink settings, blocking only pairs with a record at ``new_from`` or later."""
    s = copy.deepcopy(splink)
    s["link_type"] = "link_and_dedupe" if n_inputs > 1 else "dedupe_only"
    touch = f"(l.unique_id >= {int(new_from)} OR r.unique_id >= {int(new_from)})"
    rules = []
    for rule in s["blocking_rules_to_generate_predictions"]:
        rule = dict(rule) if isinstance(rule, dict) else {"blocking_rule": rule}
        rule["blocking_rule"] = f"({rule['blocking_rule']}) AND {touch}"
        rules.append(rule)
    s["blocking_rules_to_generate_predictions"] = rules
    return s


def score_new(be: Backend, inputs: list[Any], model: dict[str, Any], new_from: int) -> Scored:
    """Score pairs with at least one record at position ``new_from`` or later with the stored
    model; keep those passing the stored household rule and threshold."""
    from splink import Linker

    t0 = time.perf_counter()
    settings = incremental_settings(model["splink"], new_from, len(inputs))
    linker = Linker(list(inputs), settings, log_level=logging.ERROR)
    keep_levels_in_predictions(linker)
    # The loaded model's household rule must be the stored one: the same comparisons and levels.
    if _evidence_condition(linker) != model["household_rule_sql"]:
        log.warning("the stored household rule differs from the model's; using the stored one")
    weight = float(model["threshold_match_weight"])
    predictions = linker.inference.predict(
        threshold_match_weight=max(weight - 1e-9, PREDICT_FLOOR_WEIGHT), warning_mode="never"
    )
    comparisons = int(be.scalar(f"SELECT COUNT(*) FROM {predictions.physical_name}"))
    rows = be.con.execute(
        f"SELECT unique_id_l, unique_id_r, match_weight FROM {predictions.physical_name} "
        f"WHERE match_weight >= ? AND ({model['household_rule_sql']})",
        [weight],
    ).fetchnumpy()
    return Scored(
        rows["unique_id_l"].astype(np.int64),
        rows["unique_id_r"].astype(np.int64),
        rows["match_weight"].astype(np.float64),
        model,
        comparisons,
        {"predict": time.perf_counter() - t0},
    )


__all__ = ["Scored", "fit", "incremental_settings", "load", "score_new"]
