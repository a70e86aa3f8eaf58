"""Database back ends for linkage: DuckDB (default) and Spark (local mode or a cluster).

A :class:`Backend` loads verified token files into tables Splink can read, runs small queries
(row counts, token frequencies), and cleans up. Spark's scratch space (``spark.local.dir``,
checkpoints, warehouse) lives under the run's temporary directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmw_link.errors import ConfigError

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


@dataclass
class Backend:
    """An open database session with its Splink API."""

    name: str
    db_api: Any
    tmp_dir: Path
    spark: Any = None
    con: Any = None

    @property
    def row_number_ids(self) -> bool:
        """Whether a record's ``unique_id`` is its row number in its tokens file (DuckDB).

        Joins and clustering on 8-byte integers are much faster than on 32-character row refs;
        :func:`wmw_link.linkage.maps.build_maps` turns row numbers back into row refs. Spark
        keeps the row refs: it has no stable row number of a file.
        """
        return self.name == "duckdb"

    def _select_list(self, columns: dict[str, str], present: set[str]) -> str:
        types = _SPARK_TYPES if self.name == "spark" else _DUCK_TYPES
        parts = ["file_row_number AS unique_id" if self.row_number_ids else "row_ref AS unique_id"]
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

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        if self.spark is not None:
            self.spark.catalog.clearCache()


def open_backend(name: str, tmp_dir: Path, threads: int | None = None) -> Backend:
    """Open a DuckDB or Spark session with scratch space under ``tmp_dir``.

    Raises:
        ConfigError: an unknown back end, or Spark without pyspark/Java.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    if name == "duckdb":
        import duckdb
        from splink import DuckDBAPI

        con = duckdb.connect(":memory:")
        spill = tmp_dir / "duckdb"
        spill.mkdir(exist_ok=True)
        con.execute(f"SET temp_directory = '{spill.as_posix()}'")
        con.execute("SET preserve_insertion_order = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        limit = os.environ.get("WMW_DUCKDB_MEMORY_LIMIT")  # e.g. "8GB" on a shared machine
        if limit:
            con.execute("SET memory_limit = ?", [limit])
        return Backend("duckdb", DuckDBAPI(connection=con), tmp_dir, con=con)
    if name == "spark":
        return _open_spark(tmp_dir, threads)
    raise ConfigError(f"unknown backend '{name}': choose duckdb or spark")


def _open_spark(tmp_dir: Path, threads: int | None) -> Backend:
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
    scratch = tmp_dir / "spark"
    scratch.mkdir(exist_ok=True)
    if not submitted:
        # Local mode on this machine: wmw-link launches the JVM, so it sets what spark-submit
        # would otherwise set (the similarity jar, scratch space, driver memory, few partitions).
        partitions = os.environ.get("WMW_SPARK_PARTITIONS", "4")
        builder = (
            builder.config("spark.jars", similarity_jar_location())
            .config("spark.local.dir", str(scratch / "local"))
            .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
            .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={scratch / 'java'}")
            .config("spark.sql.shuffle.partitions", partitions)
            .config("spark.default.parallelism", partitions)
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", os.environ.get("WMW_SPARK_DRIVER_MEMORY", "4g"))
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
