"""Who chooses Spark's master and jars: wmw-link in local mode, spark-submit on a cluster."""

from __future__ import annotations

import pytest

from wmw_link.errors import ConfigError
from wmw_link.linkage.backends import _require_similarity_jar, spark_master, under_spark_submit

SUBMITTED = {"PYSPARK_GATEWAY_PORT": "40123"}


def test_local_mode_by_default_on_the_given_cores() -> None:
    assert spark_master({}, None) == "local[*]"
    assert spark_master({}, 2) == "local[2]"


def test_spark_submit_keeps_its_own_master() -> None:
    # Setting a master on the builder would silently turn a cluster run into a local one.
    assert under_spark_submit(SUBMITTED)
    assert spark_master({**SUBMITTED, "SPARK_MASTER": "local[1]"}, 2) is None


def test_configured_master_wins() -> None:
    assert spark_master({"SPARK_MASTER": "spark://head:7077"}, 2) == "spark://head:7077"
    assert spark_master({"PYSPARK_SUBMIT_ARGS": "--master yarn pyspark-shell"}, 2) is None
    assert spark_master({"PYSPARK_SUBMIT_ARGS": "--conf spark.master=yarn pyspark-shell"}, 2) is None
    assert not under_spark_submit({"PYSPARK_SUBMIT_ARGS": "--master yarn pyspark-shell"})


def test_submit_without_the_similarity_jar_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="--jars"):
        _require_similarity_jar("file:/opt/other.jar")
    _require_similarity_jar("file:/opt/other.jar,file:/x/scala-udf-similarity-0.2.1_spark4.x.jar")
