"""Score the blocked pairs in blocks whose records fit in memory (DuckDB).

Splink scores candidate pairs by joining them to the input twice, once for each side. DuckDB
builds a hash table of every input record (all its token columns) for each of the two joins:
at 3,000,000 people (6.2 million records of 53 token columns) the two tables need more than a
6 GB limit, and the join spills tens of gigabytes. Splink's own predict chunks do not help
here: each chunk blocks again, and the other side of the join is still every record.

So blocking runs once; each pair gets a block number from a hash of each side's id (``n x n``
blocks), and the pairs are stored in block order. The records are split once into ``n``
buckets by the same hash of their id. Block ``(i, j)`` joins its pairs to bucket ``i`` on the
left and bucket ``j`` on the right, with Splink's own comparison-vector and match-weight SQL:
each join holds ``1/n`` of the records. Every pair is in exactly one block, scored by the same
model: the predictions are the same rows as one predict's, in another order. (Splink's
registered-pairs predict prunes the records too, but for every block anew: it scans every
record twice and writes the block's records out before each block's join.)
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
#: The pairs' block number, a column of the pairs only while they are split.
BLOCK_COLUMN = "__wmw_block"


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
    blocks of pairs (one predict when ``blocks`` is 1).

    Returns:
        A SplinkDataFrame of the scored pairs, as ``linker.inference.predict`` returns.
    """
    if blocks <= 1:
        return linker.inference.predict(threshold_match_weight=threshold_match_weight)
    if linker._sql_dialect_str != "duckdb":
        # Blocks are DuckDB's answer to its join memory (and Spark's hash() is signed).
        raise ValueError("pairs are scored in blocks on DuckDB only")
    from splink.internals.chunking import _blocked_pairs_cache_key
    from splink.internals.pipeline import CTEPipeline

    t0 = time.perf_counter()
    pairs = linker.inference.compute_blocked_pairs_for_predict()
    keyed = buckets = None
    parts: list[Any] = []
    try:
        keyed = _pairs_by_block(linker, pairs, blocks)
        buckets = [_records_of_bucket(linker, blocks, i) for i in range(blocks)]
        log.info("blocked pairs in %.1f s; scoring in %d x %d blocks", time.perf_counter() - t0,
                 blocks, blocks)  # fmt: skip
        for i in range(blocks):
            for j in range(blocks):
                block = i * blocks + j
                left, right = buckets[i], buckets[j]
                parts.append(
                    _score_block(linker, keyed, block, left, right, threshold_match_weight)
                )
                log.info("scored block %d of %d", block + 1, blocks * blocks)
        # Named as Splink names a predict's output: its charts read the table by that name.
        pipeline = CTEPipeline()
        pipeline.enqueue_sql(
            " UNION ALL ".join(f"SELECT * FROM {p.physical_name}" for p in parts),
            "__splink__df_predict",
        )
        return linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)
    finally:
        for t in [*parts, *(buckets or []), *([keyed] if keyed is not None else []), pairs]:
            t.drop_table_from_database_and_remove_from_cache()
        # Later predicts block again rather than read a dropped table.
        linker._intermediate_table_cache.pop(_blocked_pairs_cache_key(), None)


def _uid_sql(linker: Any) -> str:
    """SQL of a record's id as Splink writes it in the blocked pairs' ``join_key_l/_r``."""
    from splink.internals.blocking import combine_unique_id_input_columns
    from splink.internals.unique_id_concat import _composite_unique_id_from_nodes_sql

    info = linker._settings_obj.column_info_settings
    columns = combine_unique_id_input_columns(
        info.source_dataset_input_column, info.unique_id_input_column
    )
    return _composite_unique_id_from_nodes_sql(columns)


def _pairs_by_block(linker: Any, pairs: Any, blocks: int) -> Any:
    """The blocked pairs with their block number, in block order: each block's pairs are then
    adjacent rows, which DuckDB finds from its row-group statistics without reading the rest."""
    from splink.internals.pipeline import CTEPipeline

    pipeline = CTEPipeline([pairs])
    pipeline.enqueue_sql(
        f"SELECT *, CAST((hash(join_key_l) % {blocks}) * {blocks} + hash(join_key_r) % {blocks}"
        f" AS INTEGER) AS {BLOCK_COLUMN} FROM {pairs.templated_name} ORDER BY {BLOCK_COLUMN}",
        "__wmw_blocked_pairs_by_block",
    )
    return linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)


def _records_of_bucket(linker: Any, blocks: int, bucket: int) -> Any:
    """The input records (with their term frequencies) whose id hashes to ``bucket``: the
    records one side of a block can name, made once for all the blocks that read them."""
    from splink.internals.pipeline import CTEPipeline
    from splink.internals.vertically_concatenate import enqueue_df_concat_with_tf

    pipeline = enqueue_df_concat_with_tf(linker, CTEPipeline())
    pipeline.enqueue_sql(
        f"SELECT * FROM __splink__df_concat_with_tf "
        f"WHERE hash({_uid_sql(linker)}) % {blocks} = {bucket}",
        f"__wmw_predict_records_{bucket}",
    )
    return linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)


def _score_block(
    linker: Any, keyed: Any, block: int, left: Any, right: Any, threshold_match_weight: float
) -> Any:
    """Splink's comparison vectors and match weights for one block's pairs, joined to the
    records of the block's two buckets only (the SQL of Splink's own predict)."""
    from splink.internals.comparison_vector_values import (
        compute_comparison_vector_values_from_id_pairs_sqls,
    )
    from splink.internals.pipeline import CTEPipeline
    from splink.internals.predict import predict_from_comparison_vectors_sqls_using_settings

    settings = linker._settings_obj
    info = settings.column_info_settings
    pipeline = CTEPipeline([keyed, left, right])
    pipeline.enqueue_sql(
        f"SELECT * EXCLUDE ({BLOCK_COLUMN}) FROM {keyed.templated_name} "
        f"WHERE {BLOCK_COLUMN} = {block}",
        "__splink__blocked_id_pairs",
    )
    pipeline.enqueue_list_of_sqls(
        compute_comparison_vector_values_from_id_pairs_sqls(
            settings._columns_to_select_for_blocking,
            settings._columns_to_select_for_comparison_vector_values,
            input_tablename_l=left.templated_name,
            input_tablename_r=right.templated_name,
            source_dataset_input_column=info.source_dataset_input_column,
            unique_id_input_column=info.unique_id_input_column,
            link_type=settings._link_type,
            sql_dialect_str=linker._sql_dialect_str,
        )
    )
    pipeline.enqueue_list_of_sqls(
        predict_from_comparison_vectors_sqls_using_settings(
            settings, threshold_match_weight=threshold_match_weight
        )
    )
    return linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)
