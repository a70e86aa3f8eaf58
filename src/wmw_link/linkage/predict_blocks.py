"""Score the blocked pairs in blocks whose records fit in memory (DuckDB).

Splink scores candidate pairs by joining them to the input twice, once for each side. DuckDB
builds a hash table of every input record (all its token columns) for each of the two joins:
at 3,000,000 people (6.2 million records of some 50 token columns) the two tables need more
than a 6 GB limit, and the join spills tens of gigabytes. Splink's own predict chunks do not
help here: each chunk blocks again, and the other side of the join is still every record.

So the candidate pairs are made here, once (:func:`rule_pair_tables`, :func:`first_rule_pairs`:
Splink's pairs and match keys), split by a hash of each side's id into ``n x n`` blocks,
and each block is scored by Splink as registered pairs
(``register_blocked_pairs_for_predict``). For registered pairs Splink's DuckDB path joins only
the records the block's pairs name (it prunes the input), so each join holds about ``1/n`` of
the records. Every pair is in exactly one block, scored by the same model: the predictions are
the same rows as one predict's, in another order.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from wmw_link.errors import ConfigError

log = logging.getLogger("wmw_link.linkage")

#: Bytes per record per token column, as DuckDB holds them in a join's hash table (an 8-byte
#: value and its share of validity masks, pointers and hashes; lists take more, some columns
#: are empty). Set from what was measured: 1,000,000 people (2.07 million records, 51 token
#: columns) scored in one block without spilling under 6 GB, and spilled under 2 GB.
BYTES_PER_VALUE = 12
#: The share of the memory limit the two sides' hash tables may take: the rest is for the
#: pairs, the comparison vectors and DuckDB's own buffers.
JOIN_SHARE = 0.5
#: Sets the number of blocks per side, for measuring (default: :func:`blocks_for` decides).
ENV = "WMW_PREDICT_BLOCKS"


def blocks_for(
    records: int, columns: int, memory_limit: int | None, env: Mapping[str, str] = os.environ
) -> int:
    """How many blocks per side so that both sides' records of one block fit the limit.

    ``records`` and ``columns`` describe the input (all datasets); ``memory_limit`` is DuckDB's
    limit in bytes (None: no limit, one block). ``WMW_PREDICT_BLOCKS`` in ``env`` overrides.

    Raises:
        ConfigError: ``WMW_PREDICT_BLOCKS`` is not a whole number from 1 to 64.
    """
    if env.get(ENV):
        try:
            forced = int(env[ENV])
        except ValueError:
            forced = 0
        if not 1 <= forced <= 64:
            raise ConfigError(f"{ENV}={env[ENV]!r}: must be a whole number from 1 to 64")
        return forced
    if not memory_limit or records <= 0:
        return 1
    both_sides = 2 * records * columns * BYTES_PER_VALUE
    return max(1, math.ceil(both_sides / (JOIN_SHARE * memory_limit)))


def predict_in_blocks(linker: Any, blocks: int, threshold_match_weight: float) -> Any:
    """Splink's predictions above ``threshold_match_weight``, scored in ``blocks`` x ``blocks``
    blocks of pairs.

    On DuckDB the candidate pairs are made here (:func:`rule_pair_tables`,
    :func:`first_rule_pairs`: the pairs and match keys of Splink's blocking, in a fraction of
    its time and memory), a left part at a time; elsewhere (Spark, one block only) Splink
    blocks and predicts as usual.

    Returns:
        A SplinkDataFrame of the scored pairs, as ``linker.inference.predict`` returns.
    """
    no_rules = not linker._settings_obj._blocking_rules_to_generate_predictions
    if linker._sql_dialect_str != "duckdb" or no_rules:  # no rules: Splink compares all pairs
        if blocks > 1:
            # Blocks are DuckDB's answer to its join memory (and Spark's hash() is signed).
            raise ValueError("pairs are scored in blocks on DuckDB only")
        return linker.inference.predict(threshold_match_weight=threshold_match_weight)
    from splink.internals.pipeline import CTEPipeline

    t0 = time.perf_counter()
    tables = rule_pair_tables(linker, partitions=blocks)
    log.info("pairs of %d rules found in %.1f s; scoring in %d x %d block(s)", len(tables),
             time.perf_counter() - t0, blocks, blocks)  # fmt: skip
    parts: list[Any] = []
    out = None
    n_pairs = 0
    try:
        for i in range(blocks):
            # The pairs whose left record is in part i, each once with its first rule: 1/n of
            # the grouping at a time, so that it fits the memory limit.
            pairs = first_rule_pairs(linker, tables, blocks, i)
            try:
                n_pairs += _count(linker, pairs)
                for j in range(blocks):
                    block = pairs if blocks == 1 else _right_part(linker, pairs, blocks, j)
                    parts.append(_predict_registered(linker, block, threshold_match_weight))
                    if block is not pairs:
                        block.drop_table_from_database_and_remove_from_cache()
                    _reuse_dropped_space(linker)
                    log.info("scored block %d of %d (%.0f s since blocking began)",
                             i * blocks + j + 1, blocks * blocks, time.perf_counter() - t0)  # fmt: skip
            finally:
                pairs.drop_table_from_database_and_remove_from_cache()
            _reuse_dropped_space(linker)
        log.info("%d candidate pairs scored", n_pairs)
        if len(parts) == 1:
            out = parts[0]
        else:
            # Named as Splink names a predict's output: its charts read the table by that name.
            pipeline = CTEPipeline()
            pipeline.enqueue_sql(
                " UNION ALL ".join(f"SELECT * FROM {p.physical_name}" for p in parts),
                "__splink__df_predict",
            )
            out = linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)
        return out
    finally:
        for t in [*tables, *parts]:
            if t is not out:
                t.drop_table_from_database_and_remove_from_cache()


def _reuse_dropped_space(linker: Any) -> None:
    """Checkpoint the scratch database, so that the space of the tables dropped since (a
    block's pairs, and the records Splink copies out for each block) is written again rather
    than the file growing: DuckDB frees a dropped table's blocks at a checkpoint, and its
    automatic checkpoints wait for a write-ahead log that tables made by a query barely fill.
    At 10,000,000 people the file grew about 1 GB per block without it."""
    linker._db_api.duckdb_con.execute("CHECKPOINT")


def _count(linker: Any, table: Any) -> int:
    sql = f"SELECT COUNT(*) AS n FROM {table.physical_name}"
    return int(linker.misc.query_sql(sql, output_type="pandas")["n"].iloc[0])


def _right_part(linker: Any, pairs: Any, blocks: int, j: int) -> Any:
    sql = f"SELECT * FROM {pairs.physical_name} WHERE hash(join_key_r) % {blocks} = {j}"
    return linker.misc.query_sql(sql, output_type="splink_df")


def _predict_registered(linker: Any, block: Any, threshold_match_weight: float) -> Any:
    """Splink's predictions for exactly the pairs in ``block`` (registered blocked pairs)."""
    from splink.internals.chunking import _blocked_pairs_cache_key

    linker.table_management.register_blocked_pairs_for_predict(block)
    try:
        return linker.inference.predict(
            threshold_match_weight=threshold_match_weight, warning_mode="never"
        )
    finally:
        # Later predicts block again rather than score a dropped table.
        linker._intermediate_table_cache.pop(_blocked_pairs_cache_key(), None)


def rule_pair_tables(linker: Any, partitions: int = 1) -> list[Any]:
    """The pairs each prediction blocking rule finds (``mk``, ``join_key_l``, ``join_key_r``),
    one rule at a time into tables of their own (a list rule's exploded values in
    ``partitions`` parts by a hash of the value, so that one part's hash table fits).

    Splink joins the records once per rule and drops, in the join, the pairs an earlier rule
    found: every earlier rule's column rides in the join (up to 21 token columns a side) and
    the exploded list rule's ``DISTINCT`` runs over all of them; at 10,000,000 people it ran
    out of memory under a 6 GB limit. Here each rule joins only the ids, its own columns and
    the first rule's (whose pairs it leaves out); :func:`first_rule_pairs` then keeps each
    pair once with its first rule. 3,000,000 people, with the rules before the weak rules'
    id condition and the first-rule exclusion: 59.5 s of CPU against 111.9 s for Splink's SQL
    on the same tokens (45,169,164 pairs either way).

    Returns:
        SplinkDataFrames, dropped by the caller.
    """
    from splink.internals.pipeline import CTEPipeline

    db = linker._db_api
    concat, rules = _rule_pairs_sqls(linker)
    tables: list[Any] = []
    try:
        for k, (select, listed) in enumerate(rules):
            parts = partitions if listed else 1
            for p in range(parts):
                pipeline = CTEPipeline()
                pipeline.enqueue_sql(concat, "wmw_concat")
                pipeline.enqueue_sql(select(parts, p), f"__wmw_rule_pairs_{k}_{p}")
                tables.append(db.sql_pipeline_to_splink_dataframe(pipeline))
    except BaseException:
        for t in tables:
            t.drop_table_from_database_and_remove_from_cache()
        raise
    return tables


def first_rule_pairs(linker: Any, tables: list[Any], parts: int, part: int) -> Any:
    """Each pair of :func:`rule_pair_tables` once, with the first rule that found it
    (``MIN``), as Splink's blocked pairs (``match_key`` text, ``join_key_l``, ``join_key_r``):
    those whose left record's id hashes to ``part`` of ``parts``."""
    from splink.internals.pipeline import CTEPipeline

    where = f" WHERE hash(join_key_l) % {parts} = {part}" if parts > 1 else ""
    union = " UNION ALL ".join(f"SELECT * FROM {t.templated_name}{where}" for t in tables)
    pipeline = CTEPipeline(tables)
    pipeline.enqueue_sql(
        "SELECT CAST(MIN(mk) AS VARCHAR) AS match_key, join_key_l, join_key_r "
        f"FROM ({union}) GROUP BY join_key_l, join_key_r",
        "__wmw_blocked_pairs",
    )
    return linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)


def _rule_pairs_sqls(linker: Any) -> tuple[str, list[tuple[Any, bool]]]:
    """SQL of the records as one table (``wmw_concat``), and for each prediction rule a
    function ``(parts, part)`` giving the SQL of its pairs (``mk``, ``join_key_l``,
    ``join_key_r``; for a rule on one list, those whose exploded value hashes to ``part`` of
    ``parts``), with whether the rule explodes one list."""
    from splink.internals.blocking import (
        _sql_gen_where_condition,
        combine_unique_id_input_columns,
    )
    from splink.internals.unique_id_concat import _composite_unique_id_from_nodes_sql
    from splink.internals.vertically_concatenate import vertically_concatenate_sql

    settings = linker._settings_obj
    info = settings.column_info_settings
    ids = combine_unique_id_input_columns(
        info.source_dataset_input_column, info.unique_id_input_column
    )
    concat = vertically_concatenate_sql(
        linker._input_tables_dict, source_dataset_input_column=info.source_dataset_input_column
    )
    where = _sql_gen_where_condition(settings._link_type, ids)
    key_l = _composite_unique_id_from_nodes_sql(ids, "l")
    key_r = _composite_unique_id_from_nodes_sql(ids, "r")
    rules = []
    brs = settings._blocking_rules_to_generate_predictions
    # Later rules leave out the first rule's pairs, as Splink's blocking leaves out every
    # earlier rule's: the first (the NINo) finds most true pairs, which every later rule finds
    # again. One more column in each join; at 3,000,000 people the rule tables held 28.5
    # million rows instead of 123.0 million for the same 15.4 million pairs, and grouping them
    # took 2.8 s instead of 15.2. Only a rule on whole values: an exploded list rule's
    # condition holds on one list value, not on the pair.
    first = brs[0] if brs and not getattr(brs[0], "array_columns_to_explode", None) else None
    for k, br in enumerate(brs):
        explode = list(getattr(br, "array_columns_to_explode", None) or [])
        apart = f" AND NOT coalesce(({first.blocking_rule_sql}), false)" if first and k else ""

        def select(
            parts: int, part: int, br: Any = br, explode: list[str] = explode, apart: str = apart
        ) -> str:
            side = "wmw_concat"
            quoted = ['"' + c.strip('"').replace('"', '""') + '"' for c in explode]
            for q in quoted:
                side = f"(SELECT * REPLACE (UNNEST({q}) AS {q}) FROM {side})"
            if parts > 1:  # one exploded column: its value is the join key
                side = f"(SELECT * FROM {side} WHERE hash({quoted[0]}) % {parts} = {part})"
            return (
                f"SELECT {int(br.match_key)} AS mk, {key_l} AS join_key_l, "
                f"{key_r} AS join_key_r FROM {side} AS l INNER JOIN {side} AS r "
                f"ON ({br.blocking_rule_sql}){apart} {where}"
            )

        rules.append((select, len(explode) == 1))
    return concat, rules
