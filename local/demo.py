"""`lakehouse demo`: the platform end to end on embedded services, through the ADF runner.

1. start the embedded services and the synthetic market API (local/runtime.py);
2. backfill the universe over the window through `pl_backfill` (chunked runs of the daily master:
   ingest -> bronze -> silver -> gold -> postgres);
3. fire the `poll_quotes` timer once (quotes to Event Hubs, i.e. Capture files in RAW locally), then
   `tr_daily` for the session after the window, as the schedule would;
4. print rows per layer, the DQ outcome, the mart counts and the timings.

A second demo on the same LAKEHOUSE_HOME is incremental: a backfill window that already succeeded is
not run again, only the daily trigger runs (RAW payloads already landed are reused, loaded files are
not loaded again, windows are replaced, not appended). `--fresh` starts over.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from lakehouse.lake import Lake
from lakehouse.settings import DEFAULT_SYMBOLS, Settings, load_settings
from lakehouse.trading_calendar import latest_session, sessions
from local import services

# Delta tables counted in the summary, per layer.
LAYER_TABLES: dict[str, tuple[str, ...]] = {
    "bronze": ("daily_bars", "security_overview"),
    "silver": ("daily_bars", "securities", "quarantine"),
    "gold": ("fct_daily_prices", "fct_monthly_performance", "dim_security", "dim_date"),
}
MART_TABLES = ("dim_security", "daily_prices", "monthly_performance", "latest_quotes")


class DemoFailed(RuntimeError):
    """A pipeline run of the demo did not succeed; the message is the pipeline's error."""


@dataclass
class DemoResult:
    window: tuple[str, str]
    daily_date: str
    symbols: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    layers: dict[str, dict[str, int]] = field(default_factory=dict)
    marts: dict[str, int] = field(default_factory=dict)
    dq: list[dict[str, Any]] = field(default_factory=list)
    total_s: float = 0.0


def demo_window(
    start: str | None, end: str | None, now: dt.datetime | None = None
) -> tuple[dt.date, dt.date, dt.date]:
    """(backfill start, backfill end, daily run date): by default two years up to the session before
    the latest closed one, then the latest closed session as the daily run."""
    daily = latest_session(now)
    if end is not None:
        backfill_end = dt.date.fromisoformat(end)
        following = sessions(backfill_end + dt.timedelta(days=1), backfill_end + dt.timedelta(days=10))
        daily = following[0]
    else:
        backfill_end = sessions(daily - dt.timedelta(days=10), daily - dt.timedelta(days=1))[-1]
    backfill_start = dt.date.fromisoformat(start) if start else backfill_end.replace(year=backfill_end.year - 2)
    if backfill_start > backfill_end:
        raise ValueError(f"--start {backfill_start} is after --end {backfill_end}")
    return backfill_start, backfill_end, daily


def _reset(settings: Settings) -> None:
    """Forget everything: stop this home's services and delete its state."""
    services.down(settings)
    home = settings.home_dir
    if home.exists():
        shutil.rmtree(home)
    settings.ensure_home()


def _count_layers(spark: Any, lake: Lake) -> dict[str, dict[str, int]]:
    from spark_jobs.tables import Tables, contract

    delta = Tables(spark, lake)
    return {
        layer: {name: delta.read(contract(layer, name)).count() for name in names}
        for layer, names in LAYER_TABLES.items()
    }


def _mart_counts(dsn: str) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn) as conn:
        return {
            name: conn.execute(sql.SQL("SELECT count(*) FROM mart.{}").format(sql.Identifier(name))).fetchone()[0]
            for name in MART_TABLES
        }


def _dq_summary(dsn: str, run_ids: list[str]) -> list[dict[str, Any]]:
    """DQ outcome per rule over the given runs and every pipeline run they started."""
    import psycopg
    from psycopg.rows import dict_row

    from lakehouse.ops_store import DQ_RESULTS, RUN_TREE

    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(
            RUN_TREE
            + "SELECT table_name, rule, severity, bool_and(passed) AS passed, sum(failed_count)::bigint AS failed "
            f"FROM {DQ_RESULTS} WHERE run_id IN (SELECT run_id FROM run_tree) "
            "GROUP BY table_name, rule, severity ORDER BY table_name, rule",
            {"roots": run_ids},
        ).fetchall()


def _progress(console: Console, status: Any):
    """Show the running activity on the status line; one printed line per finished master run."""
    from local.adf.records import PipelineRunResult

    def on_event(event: str, record: Any) -> None:
        if isinstance(record, PipelineRunResult):
            if event == "pipeline_finished" and record.pipeline == "pl_lakehouse_daily":
                p = record.parameters
                first, last = p.get("startDate") or p.get("runDate"), p.get("endDate") or p.get("runDate")
                console.print(f"  {record.pipeline} {first}..{last}: {record.status} in {record.duration_s:.1f} s",
                              highlight=False)  # fmt: skip
        elif event == "activity_started":
            status.update(f"{record.pipeline} / {record.activity}")

    return on_event


def _succeeded_run(dsn: str, pipeline: str, parameters: dict[str, str]) -> str | None:
    """The id of an earlier successful run of `pipeline` with these parameters, if any.

    A second demo does not backfill the same window again: that is what makes it incremental.
    Re-running a window is safe (it changes nothing) but costs as much as the first time.
    """
    import psycopg
    from psycopg.types.json import Jsonb

    from lakehouse.ops_store import PIPELINE_RUNS

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT run_id FROM {PIPELINE_RUNS} WHERE pipeline = %s AND status = 'Succeeded' "
            "AND parameters @> %s ORDER BY started_at DESC LIMIT 1",
            (pipeline, Jsonb(parameters)),
        ).fetchone()
    return row[0] if row else None


def _check(result: Any) -> None:
    if not result.succeeded:
        raise DemoFailed(f"{result.pipeline} failed: {(result.error or {}).get('message', 'no message')}")


def run_demo(
    settings: Settings,
    console: Console,
    *,
    symbols: int = 20,
    start: str | None = None,
    end: str | None = None,
    fresh: bool = False,
) -> DemoResult:
    """Run the demo; return what it printed. Raises DemoFailed when a pipeline fails."""
    from local.adf.runner import run_pipeline
    from local.adf_triggers import fire_trigger
    from local.function_host import run_timer
    from local.runtime import local_platform, overridden_environment

    t0 = time.perf_counter()
    if fresh:
        _reset(settings)
    universe = list(settings.symbols if settings.symbols != DEFAULT_SYMBOLS else DEFAULT_SYMBOLS)[:symbols]
    backfill_start, backfill_end, daily = demo_window(start, end)
    result = DemoResult((backfill_start.isoformat(), backfill_end.isoformat()), daily.isoformat(), universe)
    console.print(
        f"[bold]demo[/]: {len(universe)} symbols, backfill {backfill_start}..{backfill_end}, "
        f"daily run {daily}, home {settings.home_dir}",
        highlight=False,
    )
    # The demo polls quotes once whatever the hour (the timer only polls while XNYS is open), so the
    # quotes path (Event Hubs Capture -> bronze -> silver -> gold -> mart) runs on a weekend too.
    demo_env = {"LAKEHOUSE_SYMBOLS": ",".join(universe), "LAKEHOUSE_POLL_QUOTES_MARKET_HOURS_ONLY": "false"}
    with overridden_environment(demo_env):
        settings = load_settings(home=settings.home_dir)
        with local_platform(settings) as platform:
            status = console.status("starting...")
            ctx = platform.run_context(on_event=_progress(console, status))
            backfill = {"startDate": result.window[0], "endDate": result.window[1], "symbols": ",".join(universe)}
            done = _succeeded_run(platform.endpoints.pg_dsn, "pl_backfill", backfill)
            with status:
                status.update("poll_quotes: latest quotes to Event Hubs (Capture files in RAW)")
                run_timer("poll_quotes")
            if done is not None:
                result.runs.append({"step": "backfill", "pipeline": "pl_backfill", "run_id": done,
                                    "status": "Skipped", "seconds": 0.0})  # fmt: skip
                console.print(f"backfill: already done by run {done}; skipped (--fresh starts over)")
            steps = [] if done else [("backfill", lambda: run_pipeline("pl_backfill", backfill, ctx))]
            steps.append(("daily trigger", lambda: fire_trigger("tr_daily", f"{daily.isoformat()}T22:30:00Z", ctx)))
            for label, step in steps:
                t = time.perf_counter()
                with status:
                    run = step()
                result.runs.append({"step": label, "pipeline": run.pipeline, "run_id": run.run_id,
                                    "status": run.status, "seconds": round(time.perf_counter() - t, 1)})  # fmt: skip
                console.print(f"{label}: {run.pipeline} {run.status} in {result.runs[-1]['seconds']} s")
                _check(run)
            lake = Lake.from_settings(settings)
            result.layers = _count_layers(platform.spark, lake)
            result.marts = _mart_counts(platform.endpoints.pg_dsn)
            result.dq = _dq_summary(platform.endpoints.pg_dsn, [r["run_id"] for r in result.runs])
    result.total_s = round(time.perf_counter() - t0, 1)
    _print_summary(console, result)
    return result


def _print_summary(console: Console, result: DemoResult) -> None:
    layers = Table(title="rows per layer")
    for column in ("layer", "table", "rows"):
        layers.add_column(column)
    for layer, counts in result.layers.items():
        for name, rows in counts.items():
            layers.add_row(layer, name, f"{rows:,}")
    for name, rows in result.marts.items():
        layers.add_row("mart (PostgreSQL)", name, f"{rows:,}")
    console.print(layers)
    failed = [d for d in result.dq if not d["passed"]]
    console.print(
        f"data quality: {len(result.dq)} rule results, {len(failed)} with failures "
        + ", ".join(f"{d['table_name']}.{d['rule']} ({d['severity']}: {d['failed']})" for d in failed),
        highlight=False,
    )
    console.print(f"[green]demo finished in {result.total_s} s[/] (lakehouse runs: per-activity timings)")
