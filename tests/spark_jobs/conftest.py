"""Fixtures of the transform tests: a tmp lake with hand-made RAW files, the jobs, a JVM session."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse.lake import Lake
from lakehouse.settings import Settings, load_settings
from tests.spark_jobs.raw_files import RawLake


@pytest.fixture
def lake_settings(tmp_path: Path, endpoints, clean_environment: None) -> Settings:
    """Settings of a fresh tmp lake on the session's Sail server; no DSN, so DQ results stay in the
    summary. Nothing comes from the environment (see ``clean_environment``)."""
    return load_settings(home=tmp_path / "home", spark_remote=endpoints.spark_remote)


@pytest.fixture
def raw_lake(lake_settings: Settings) -> RawLake:
    return RawLake(Lake.from_settings(lake_settings))


CONNECT_ENV = ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")


@dataclass
class JvmEngine:
    """A classic local JVM session next to the Spark Connect one.

    pyspark decides per call whether ``functions.col`` and friends build Connect or classic
    expressions from the SPARK_CONNECT_MODE_ENABLED variable, which the Connect session sets;
    :meth:`run` clears it for the duration of a call on the JVM session.
    """

    session: object

    def run(self, fn, *args):
        saved = {k: os.environ.pop(k) for k in CONNECT_ENV if k in os.environ}
        try:
            return fn(self.session, *args)
        finally:
            os.environ.update(saved)


@pytest.fixture(scope="session")
def jvm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JvmEngine]:
    """A classic local[2] JVM PySpark session (no Delta: inputs are in-memory), created once."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime: JVM PySpark parity needs one")
    from pyspark.sql import SparkSession

    def build(_):
        return (
            SparkSession.builder.master("local[2]")
            .appName("transforms-parity")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.adaptive.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("jvm-warehouse")))
            .getOrCreate()
        )

    engine = JvmEngine(None)
    engine.session = engine.run(build)
    yield engine
    engine.run(lambda session: session.stop())


@dataclass
class Pipeline:
    """The three layer jobs on one tmp lake, as the notebooks call them."""

    spark: object
    settings: Settings

    def run(self, start: str, end: str | None = None, run_id: str = "run-1", full_refresh: bool = False,
            today: dt.date | None = None) -> dict:  # fmt: skip
        """The three jobs' summaries as the notebooks exit with them (JSON types)."""
        from spark_jobs import jobs

        end = end or start
        out = {
            "bronze": jobs.run_raw_to_bronze(self.spark, self.settings, start, end, run_id, full_refresh),
            "silver": jobs.run_bronze_to_silver(
                self.spark, self.settings, start, end, run_id, full_refresh, today=today
            ),
        }
        out["gold"] = jobs.run_silver_to_gold(self.spark, self.settings, start, end, run_id, full_refresh)
        return {layer: summary.as_dict() for layer, summary in out.items()}

    def table(self, layer: str, name: str):
        from spark_jobs.tables import Tables, contract

        return Tables(self.spark, Lake.from_settings(self.settings)).read(contract(layer, name))

    def rows(self, layer: str, name: str, *order: str) -> list[dict]:
        df = self.table(layer, name)
        return [r.asDict() for r in (df.orderBy(*order) if order else df).collect()]


@pytest.fixture
def pipeline(spark, lake_settings: Settings) -> Pipeline:
    return Pipeline(spark, lake_settings)
