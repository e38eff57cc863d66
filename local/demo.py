"""`lakehouse demo`: the platform end to end on embedded services, with progress and a summary."""

from __future__ import annotations

import time

from rich.console import Console

from lakehouse.lake import Lake
from lakehouse.settings import Settings
from local import services
from local.spark import connect


def run_demo(
    settings: Settings,
    console: Console,
    *,
    symbols: int = 20,
    start: str | None = None,
    end: str | None = None,
    fresh: bool = False,
) -> dict:
    """Run what the platform has so far end to end; return the figures it printed."""
    lake = Lake.from_settings(settings)
    figures: dict = {}
    t0 = time.perf_counter()
    with console.status("starting embedded services..."):
        ctx = services.running(settings)
        eps = ctx.__enter__()
    try:
        figures["services_s"] = round(time.perf_counter() - t0, 2)
        console.print(f"services ready in {figures['services_s']} s: spark {eps.spark_remote}")
        spark = connect(eps.spark_remote)
        smoke = lake.table("ops", "demo_smoke")
        spark.range(5).selectExpr("id", "id * id AS square").write.format("delta").mode("overwrite").save(smoke)
        figures["delta_rows"] = spark.read.format("delta").load(smoke).count()
        import psycopg

        with psycopg.connect(eps.pg_dsn) as conn:
            figures["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
        console.print(f"Delta round trip: {figures['delta_rows']} rows; PostgreSQL {figures['postgres']}")
        spark.stop()
    finally:
        ctx.__exit__(None, None, None)
    figures["total_s"] = round(time.perf_counter() - t0, 2)
    console.print(f"[green]demo finished in {figures['total_s']} s[/]")
    return figures
