"""The transforms give the same answers on the cluster runtime's Spark as on Sail.

The silver and gold parity cases of tests/spark_jobs/test_parity.py run a second time on JVM
PySpark at the runtime's Spark version (infra/databricks_runtime.py, 17.3 LTS: Spark 4.0.0), in
the runtime stand-in venv (Python 3.12, the runtime's libraries, the wheel installed as a
cluster installs it), with the job clusters' Spark configuration read from
adf/linkedService/ls_databricks.json (ANSI SQL as Databricks 17.3 runs it, UTC session time).
A transform that depends on an API or a default that differs between the local engine and the
cluster's Spark fails here.

Cost: a JVM start and the two cases, about 30-60 s once the venv is cached.
"""

from __future__ import annotations

import json
import pickle

import pytest

from infra import databricks_runtime as runtime
from infra.artifacts import REPO_ROOT
from tests.spark_jobs.test_parity import bronze_rows, gold_on, same, silver_on

pytestmark = pytest.mark.jvm

RUNNER = """
import json, os, pickle, sys
from pyspark.sql import SparkSession
import pyspark, spark_jobs
conf, out, site = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run the runtime's Python too, as on a cluster
assert spark_jobs.__file__.startswith(site), f"spark_jobs imported from {spark_jobs.__file__}, not the wheel"
builder = (SparkSession.builder.master("local[2]").appName("runtime-parity")
           .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
           .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1"))
for key, value in conf.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
from tests.spark_jobs.test_parity import bronze_rows, gold_on, silver_on
result = {"version": pyspark.__version__, "ansi": spark.conf.get("spark.sql.ansi.enabled"),
          "silver": silver_on(spark, bronze_rows(), True), "gold": gold_on(spark)}
spark.stop()
with open(out, "wb") as f:
    pickle.dump(result, f)
"""


def cluster_spark_conf() -> dict[str, str]:
    """The Spark configuration the job clusters get from the Databricks linked service."""
    ls = json.loads((REPO_ROOT / "adf" / "linkedService" / "ls_databricks.json").read_text())
    return dict(ls["properties"]["typeProperties"]["newClusterSparkConf"])


@pytest.fixture(scope="module")
def on_runtime_spark(runtime_env, tmp_path_factory) -> dict:
    """The parity cases' results on JVM PySpark at the runtime's Spark version."""
    work = tmp_path_factory.mktemp("runtime-parity")
    out = work / "result.pickle"
    result = runtime_env.run(
        "-c", RUNNER, json.dumps(cluster_spark_conf()), str(out), str(runtime_env.site),
        cwd=work, extra_path=(REPO_ROOT,), timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, f"the transforms fail on Spark {runtime.SPARK_VERSION}:\n{result.stderr[-4000:]}"
    return pickle.loads(out.read_bytes())


def test_the_cluster_conf_runs_ansi_sql_in_utc_as_the_runtime_does():
    conf = cluster_spark_conf()
    assert conf["spark.sql.ansi.enabled"] == "true"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_the_second_engine_is_the_runtimes_spark_with_the_cluster_conf(on_runtime_spark):
    assert on_runtime_spark["version"] == runtime.SPARK_VERSION
    assert on_runtime_spark["ansi"] == "true"


def test_silver_daily_bars_are_the_same_on_the_runtimes_spark(spark, on_runtime_spark):
    sail, cluster = silver_on(spark, bronze_rows()), on_runtime_spark["silver"]
    same(sail[0], cluster[0])
    assert sail[1:] == cluster[1:]


def test_gold_transforms_are_the_same_on_the_runtimes_spark(spark, on_runtime_spark):
    sail, cluster = gold_on(spark), on_runtime_spark["gold"]
    assert set(sail) == set(cluster)
    for name in sail:
        same(sail[name], cluster[name])


def test_a_different_answer_fails_the_comparison():
    """Guards the guard: `same` rejects a changed value, so a transform difference cannot pass."""
    with pytest.raises(AssertionError):
        same([("AAPL", 1.0)], [("AAPL", 1.0 + 1e-6)])
