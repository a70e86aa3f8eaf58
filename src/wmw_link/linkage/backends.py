"""Database back ends for linkage: DuckDB (default) and Spark (local mode or a cluster).

A :class:`Backend` loads verified token files into tables Splink can read, runs small queries
(row counts, token frequencies), and cleans up. Spark's scratch space (``spark.local.dir``,
checkpoints, warehouse) lives under the run's temporary directory.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmw_link.errors import ConfigError
from wmw_link.linkage.union import ROW_BITS, UNION_TABLE, UnionIds
from wmw_link.resources import (
    configure_duckdb,
    private_spill_dir,
    resolve_memory_limit,
    spark_memory,
)

log = logging.getLogger(__name__)

# Arrow/SQL types of token kinds, for columns a dataset lacks (filled with typed NULLs).
_DUCK_TYPES = {
    "hmac": "BIGINT",
    "hmac_list": "BIGINT[]",
    "bloom_word": "BIGINT",
}
_SPARK_TYPES = {
    "hmac": "BIGINT",
    "hmac_list": "ARRAY<BIGINT>",
    "bloom_word": "BIGINT",
}


#: The link's working database (tokens, pairs), in its private scratch folder.
DUCKDB_FILE = "link.duckdb"


@dataclass
class Backend:
    """An open database session with its Splink API."""

    name: str
    db_api: Any
    tmp_dir: Path
    spark: Any = None
    con: Any = None
    #: DuckDB's memory limit in bytes (None: DuckDB's own default); Spark: the driver memory
    #: asked for, if any.
    memory_limit: int | None = None
    #: A spill folder made inside ``--temp-dir``, removed on close (None: under ``tmp_dir``).
    own_spill: Path | None = None

    @property
    def row_number_ids(self) -> bool:
        """Whether a record's ``unique_id`` is its row number in its tokens file (DuckDB).

        Joins and clustering on 8-byte integers are much faster than on 32-character row refs;
        :func:`wmw_link.linkage.maps.build_maps` turns row numbers back into row refs. Spark
        keeps the row refs: it has no stable row number of a file.
        """
        return self.name == "duckdb"

    def _select_list(
        self, columns: dict[str, str], present: set[str], row_id: str = "file_row_number"
    ) -> str:
        types = _SPARK_TYPES if self.name == "spark" else _DUCK_TYPES
        parts = [f"{row_id} AS unique_id" if self.row_number_ids else "row_ref AS unique_id"]
        for col, kind in sorted(columns.items()):
            parts.append(col if col in present else f"CAST(NULL AS {types[kind]}) AS {col}")
        return ", ".join(parts)

    def load_tokens(
        self, dataset: str, path: Path, columns: dict[str, str], present: set[str]
    ) -> Any:
        """Load one tokens file as a Splink input with every column in ``columns``.

        Args:
            dataset: the dataset id (Splink's source_dataset).
            path: the verified tokens parquet.
            columns: the union of token columns over all inputs -> token kind.
            present: the columns this file holds.

        Returns:
            The registered SplinkDataFrame.
        """
        select = self._select_list(columns, present)
        table = f"wmw_tokens_{dataset}"
        if self.name == "duckdb":
            self.con.execute(
                f"CREATE OR REPLACE TABLE {table} AS SELECT {select} "
                "FROM read_parquet(?, file_row_number = true)",
                [str(path)],
            )
            return self.db_api.register(table, dataset_display_name=dataset)
        df = self.spark.read.parquet(str(path)).selectExpr(*select.split(", "))
        return self.db_api.register(df, dataset_display_name=dataset)

    def load_union(
        self, files: Sequence[tuple[str, Path, set[str]]], columns: dict[str, str]
    ) -> tuple[Any, UnionIds]:
        """Load every tokens file into one Splink input (DuckDB; :mod:`linkage.union`).

        Args:
            files: (dataset id, verified tokens parquet, the columns it holds), in order.
            columns: the union of token columns over all inputs -> token kind.

        Returns:
            The registered SplinkDataFrame, and how to read its ids.
        """
        if self.name != "duckdb":
            raise ValueError("one union input is for DuckDB; Spark keeps one input per dataset")
        parts = []
        for i, (_, _, present) in enumerate(files):
            row_id = f"(CAST({i} AS BIGINT) << {ROW_BITS}) | file_row_number"
            select = self._select_list(columns, present, row_id)
            parts.append(f"SELECT {select} FROM read_parquet(?, file_row_number = true)")
        self.con.execute(
            f"CREATE OR REPLACE TABLE {UNION_TABLE} AS {' UNION ALL '.join(parts)}",
            [str(path) for _, path, _ in files],
        )
        ids = UnionIds(tuple(ds for ds, _, _ in files))
        return self.db_api.register(UNION_TABLE, dataset_display_name=UNION_TABLE), ids

    def null_tokens(self, table: str, column: str, values: list[int]) -> None:
        """Set ``column`` to null where it holds one of ``values`` (detected placeholders).

        The values stay in memory: bound as a parameter (DuckDB) or a literal list in the
        DataFrame plan (Spark), never written to a log or the report.
        """
        if not values:
            return
        if self.name == "duckdb":
            self.con.execute(
                f"UPDATE {table} SET {column} = NULL WHERE list_contains(?::BIGINT[], {column})",
                [values],
            )
            return
        from pyspark.sql import functions as F

        df = self.spark.table(table)
        col = F.col(column)
        df = df.withColumn(
            column, F.when(col.isin(values), F.lit(None).cast("bigint")).otherwise(col)
        )
        df.createOrReplaceTempView(table)

    def scalar(self, sql: str) -> Any:
        """Run a query returning one value."""
        if self.name == "duckdb":
            return self.con.execute(sql).fetchall()[0][0]
        return self.spark.sql(sql).collect()[0][0]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""
        if self.name == "duckdb":
            return self.con.execute(sql).fetchall()
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def materialise(self, name: str, sql: str) -> str:
        """Hold a query's result as the temporary table ``name`` (Spark: a cached view) for
        several queries to read; returns ``name``. :meth:`drop` frees it."""
        if self.name == "duckdb":
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        else:
            self.spark.sql(sql).cache().createOrReplaceTempView(name)
        return name

    def drop(self, name: str) -> None:
        """Free a table made by :meth:`materialise`."""
        if self.name == "duckdb":
            self.con.execute(f"DROP TABLE IF EXISTS {name}")
        else:
            self.spark.catalog.dropTempView(name)

    def sample_condition(self, key: str, fraction: float, seed: int) -> str:
        """SQL true for a reproducible share ``fraction`` of rows, chosen by a hash of the SQL
        expression ``key`` and ``seed`` (the same rows in every run; no random generator)."""
        scale = 1_000_000
        k = round(fraction * scale)
        if self.name == "duckdb":
            return f"(hash({key}, {int(seed)}) % {scale}) < {k}"
        return f"pmod(xxhash64({key}, {int(seed)}), {scale}) < {k}"

    def close(self) -> None:
        try:
            if self.con is not None:
                self.con.close()
            if self.spark is not None:
                self.spark.catalog.clearCache()
                if not under_spark_submit(os.environ):
                    # A local session wmw-link launched keeps its scratch folders
                    # (spark.local.dir) under this run's temporary folder, which the caller
                    # removes: a later run in the same process must get a new session, not
                    # one whose folders are gone.
                    self.spark.stop()
        finally:
            # The scratch database and spill files hold tokens: gone even if closing failed.
            if self.own_spill is not None:
                shutil.rmtree(self.own_spill, ignore_errors=True)


def open_backend(
    name: str,
    tmp_dir: Path,
    threads: int | None = None,
    memory_limit: str | int | None = None,
    temp_dir: Path | str | None = None,
) -> Backend:
    """Open a DuckDB or Spark session with scratch space under ``tmp_dir``.

    Args:
        name: ``duckdb`` or ``spark``.
        tmp_dir: the run's private temporary folder (removed by the caller).
        threads: cores to use (default: all).
        memory_limit: DuckDB's memory limit, e.g. ``"8GB"`` (default: the environment's
            ``WMW_DUCKDB_MEMORY_LIMIT``, else 25% of the machine's memory, see
            :mod:`wmw_link.resources`). On Spark an explicit limit sets the driver memory (all
            of Spark's memory in local mode) and the default is ignored.
        temp_dir: a folder to spill to (DuckDB's ``temp_directory``, Spark's
            ``spark.local.dir``); a private folder is made inside it and removed on close.
            Default: inside ``tmp_dir``.

    Raises:
        ConfigError: an unknown back end, a malformed memory limit or temp dir, or Spark
            without pyspark/Java.
    """
    if name not in ("duckdb", "spark"):
        raise ConfigError(f"unknown backend '{name}': choose duckdb or spark")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    if name == "spark":
        explicit = None if memory_limit is None else resolve_memory_limit(memory_limit)
        own = private_spill_dir(temp_dir) if temp_dir is not None else None
        try:
            be = _open_spark(tmp_dir, threads, explicit, own)
        except BaseException:
            if own is not None:
                shutil.rmtree(own, ignore_errors=True)
            raise
        be.memory_limit, be.own_spill = explicit, own
        return be
    import duckdb
    from splink import DuckDBAPI

    limit = resolve_memory_limit(memory_limit)
    own = private_spill_dir(temp_dir) if temp_dir is not None else None
    base = own if own is not None else tmp_dir / "duckdb"
    spill = base / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    try:
        # A database file, not ":memory:": the tokens (the largest table, read by every
        # blocking rule and both sides of the comparison join) then live in the buffer pool
        # as pages DuckDB can drop and re-read, where an in-memory table's pages must first be
        # written to the spill folder. At 1,000,000 people under a 2 GB limit predict took
        # 81 s this way against 119 s in memory (and 85 s in memory under 6 GB); the file
        # sits beside the spill folder and goes with it.
        con = duckdb.connect(str(base / DUCKDB_FILE))
    except BaseException:
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)
        raise
    try:
        configure_duckdb(con, limit, spill, threads)
        # The file is scratch, deleted after the run: no final checkpoint to write it out.
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
    except BaseException:
        con.close()
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)
        raise
    return Backend(
        "duckdb", DuckDBAPI(connection=con), tmp_dir, con=con, memory_limit=limit, own_spill=own
    )


def _open_spark(
    tmp_dir: Path, threads: int | None, memory_limit: int | None, spill: Path | None
) -> Backend:
    try:
        from pyspark.sql import SparkSession
        from splink.backends.spark import SparkAPI, similarity_jar_location
    except ImportError as e:
        raise ConfigError("the spark backend needs pyspark: pip install 'wmw-link[spark]'") from e
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", "python3"))
    builder = SparkSession.builder.appName("wmw-link")
    submitted = under_spark_submit(os.environ)
    master = spark_master(os.environ, threads)
    if master is not None:
        builder = builder.master(master)
    scratch = (spill or tmp_dir) / "spark"
    scratch.mkdir(exist_ok=True)
    if not submitted:
        # Local mode on this machine: wmw-link launches the JVM, so it sets what spark-submit
        # would otherwise set (the similarity jar, scratch space, driver memory, few partitions).
        # Driver memory is read when the JVM starts: an explicit --memory-limit wins over the
        # environment.
        driver_memory = (
            spark_memory(memory_limit)
            if memory_limit is not None
            else os.environ.get("WMW_SPARK_DRIVER_MEMORY", "4g")
        )
        partitions = os.environ.get("WMW_SPARK_PARTITIONS", "4")
        builder = (
            builder.config("spark.jars", similarity_jar_location())
            .config("spark.local.dir", str(scratch / "local"))
            .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
            .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={scratch / 'java'}")
            .config("spark.sql.shuffle.partitions", partitions)
            .config("spark.default.parallelism", partitions)
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", driver_memory)
        )
    (scratch / "java").mkdir(exist_ok=True)
    try:
        spark = builder.getOrCreate()
    except Exception as e:  # Java missing or failing to start
        raise ConfigError(f"cannot start Spark ({type(e).__name__}): is Java 17 installed?") from e
    if submitted:
        _require_similarity_jar(spark.sparkContext.getConf().get("spark.jars", ""))
        # On a cluster checkpoints must be on storage every executor reaches (HDFS, S3):
        # spark-submit --conf spark.checkpoint.dir=...; a local folder serves local mode only.
        checkpoints = spark.sparkContext.getConf().get(
            "spark.checkpoint.dir", str(scratch / "checkpoints")
        )
    else:
        checkpoints = str(scratch / "checkpoints")
    spark.sparkContext.setCheckpointDir(checkpoints)
    spark.sparkContext.setLogLevel("ERROR")
    partitions = spark.conf.get("spark.sql.shuffle.partitions") if submitted else None
    db_api = SparkAPI(
        spark_session=spark,
        break_lineage_method="parquet",
        num_partitions_on_repartition=int(
            partitions or os.environ.get("WMW_SPARK_PARTITIONS", "4")
        ),
    )
    return Backend("spark", db_api, tmp_dir, spark=spark)


def under_spark_submit(env: Mapping[str, str]) -> bool:
    """Whether this process was launched by ``spark-submit`` (which starts the JVM first and
    hands its gateway to Python): then the submit command's master, jars and resources rule."""
    return "PYSPARK_GATEWAY_PORT" in env


def spark_master(env: Mapping[str, str], threads: int | None) -> str | None:
    """The master to set on the session builder, or None to keep the one already configured.

    Under ``spark-submit`` its ``--master`` decides (None). Otherwise ``SPARK_MASTER`` or a
    ``--master`` / ``spark.master`` in ``PYSPARK_SUBMIT_ARGS`` wins; else local mode on ``threads`` cores.
    """
    if under_spark_submit(env):
        return None
    if env.get("SPARK_MASTER"):
        return env["SPARK_MASTER"]
    submit_args = env.get("PYSPARK_SUBMIT_ARGS", "")
    if "spark.master" in submit_args or "--master" in submit_args:
        return None
    return f"local[{threads or '*'}]"


def _require_similarity_jar(jars: str) -> None:
    """Splink's fuzzy comparisons run as Java UDFs from its similarity jar; without it every
    prediction fails deep inside Spark. Say so before any work starts."""
    if "scala-udf-similarity" not in jars:
        raise ConfigError(
            "spark-submit was not given Splink's similarity jar: add --jars "
            "$(python -c 'from splink.backends.spark import similarity_jar_location as j; "
            "print(j())') (docs/linkage.md, 'Deploying on a cluster')"
        )


__all__ = ["Backend", "open_backend", "spark_master", "under_spark_submit"]
