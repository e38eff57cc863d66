"""The local platform for one command: services, schema, market API, Spark, and an ADF run context.

Commands that run pipelines (`adf run`, `backfill`, `trigger run`, `demo`) all need the same
things set up in the same order, and torn down in reverse:

1. the embedded services (reused when `lakehouse services up` already started them);
2. the serving database's migrations, and runs left ``InProgress`` by a process that died marked
   failed (``local.run_store.recover_abandoned_runs``: they would otherwise look like runs going on);
3. the synthetic market API when the provider is `synthetic` and no ALPHAVANTAGE_BASE_URL is set;
4. the environment the Function app and the notebooks read their settings from (the same
   variable names as the app settings in Azure);
5. a Spark Connect session, stopped before the services go down.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.settings import Settings
from local import services
from local.spark import connect

DEFAULT_MAX_WAIT_SECONDS = 5.0


@dataclass
class LocalPlatform:
    settings: Settings
    endpoints: services.Endpoints
    spark: SparkSession
    market_api_url: str | None

    def run_context(self, on_event: Callable[[str, Any], None] | None = None):
        """An ADF run context whose notebooks run on this Spark session and runs are recorded.

        Retry intervals and Wait activities are capped at LAKEHOUSE_ADF_MAX_WAIT_SECONDS
        (default 5 s): ADF's 120 s retry interval protects a cluster start, which locally is
        instantaneous, and a deterministic local failure should be reported in seconds.
        """
        from local.adf.runner import local_context

        cap = float(os.environ.get("LAKEHOUSE_ADF_MAX_WAIT_SECONDS", DEFAULT_MAX_WAIT_SECONDS))
        context = local_context(self.spark, self.endpoints.pg_dsn, on_event=on_event)
        context.sleep = lambda seconds: time.sleep(min(seconds, cap))
        return context


@contextlib.contextmanager
def overridden_environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the Function app and notebooks read settings there)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def local_platform(settings: Settings) -> Iterator[LocalPlatform]:
    """Everything a pipeline run needs on this machine, for the duration of the block."""
    from local.run_store import recover_abandoned_runs
    from spark_jobs import migrations

    with contextlib.ExitStack() as stack:
        eps = stack.enter_context(services.running(settings))
        migrations.apply(eps.pg_dsn)
        recover_abandoned_runs(eps.pg_dsn)
        env = {
            "LAKEHOUSE_HOME": str(settings.home_dir),
            "LAKEHOUSE_SPARK_REMOTE": eps.spark_remote,
            "LAKEHOUSE_PG_DSN": eps.pg_dsn,
        }
        market_url = os.environ.get("ALPHAVANTAGE_BASE_URL")
        if settings.provider == "synthetic" and not market_url:
            from local import market_api

            server = stack.enter_context(market_api.running())
            market_url = server.url
            env["ALPHAVANTAGE_BASE_URL"] = market_url
        stack.enter_context(overridden_environment(env))
        spark = connect(eps.spark_remote)
        stack.callback(spark.stop)
        yield LocalPlatform(settings, eps, spark, market_url)
