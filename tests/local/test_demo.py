"""`lakehouse demo` end to end through the ADF runner, on the run's Sail and a database of its own.

Backfill through pl_backfill, one tr_daily firing, then: every step succeeded, the marts hold one
row per symbol and session of the window (sessions from the XNYS calendar, not from the code under
test), a rerun of a day inside the backfilled range leaves every mart table's content unchanged, and
a second demo finds nothing new to load into bronze.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import psycopg
import pytest
from rich.console import Console

from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from tests.databases import fresh_database

SYMBOLS = 3
START, END = "2024-01-02", "2024-03-28"


@pytest.fixture(scope="module")
def demo_db(endpoints) -> str:
    with fresh_database(endpoints.pg_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory, endpoints, demo_db):
    home = tmp_path_factory.mktemp("demo-home")
    saved = dict(os.environ)
    os.environ.update(
        {"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote, "LAKEHOUSE_PG_DSN": demo_db}
    )
    for name in [n for n in os.environ if n.startswith("ALPHAVANTAGE_") or n == "LAKEHOUSE_SYMBOLS"]:
        del os.environ[name]
    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def first_demo(demo_env: Path):
    from local.demo import run_demo

    return run_demo(load_settings(), Console(file=io.StringIO()), symbols=SYMBOLS, start=START, end=END)


def mart_checksums(dsn: str) -> dict[str, tuple[int, str]]:
    from spark_jobs import serving

    with psycopg.connect(dsn) as conn:
        return {t.name: serving.mart_checksum(conn, t, None) for t in serving._select(None)}


def test_backfill_and_daily_trigger_succeed(first_demo) -> None:
    assert [(r["step"], r["status"]) for r in first_demo.runs] == [
        ("backfill", "Succeeded"),
        ("daily trigger", "Succeeded"),
    ]
    assert first_demo.daily_date == "2024-04-01"  # the session after Thursday 2024-03-28 (Good Friday closed)


def test_marts_hold_every_gold_row_and_every_session_of_the_window(first_demo, demo_db: str) -> None:
    """Serving loads every gold range that changed, not only the run's window: a first backfill of
    full histories serves the whole history gold computed, so the mart equals gold."""
    days = sessions(dt.date.fromisoformat(START), dt.date(2024, 4, 1))
    with psycopg.connect(demo_db) as conn:
        in_window = dict(conn.execute(
            "SELECT symbol, count(*) FROM mart.daily_prices WHERE trade_date BETWEEN %s AND %s"
            " GROUP BY symbol ORDER BY symbol", (days[0], days[-1]),
        ).fetchall())  # fmt: skip
        securities = conn.execute("SELECT count(*) FROM mart.dim_security WHERE is_current").fetchone()[0]
        quoted = [r[0] for r in conn.execute("SELECT symbol FROM mart.latest_quotes ORDER BY symbol")]
    assert in_window == dict.fromkeys(first_demo.symbols, len(days))
    assert quoted == sorted(first_demo.symbols)  # the demo's one poll of quotes went through every layer
    assert securities == SYMBOLS
    assert first_demo.marts["daily_prices"] == first_demo.layers["gold"]["fct_daily_prices"]


def test_layers_reconcile(first_demo) -> None:
    layers = first_demo.layers
    assert layers["bronze"]["daily_bars"] == layers["silver"]["daily_bars"] + layers["silver"]["quarantine"]
    assert layers["gold"]["fct_daily_prices"] == layers["silver"]["daily_bars"]
    assert first_demo.dq and all(d["passed"] for d in first_demo.dq if d["severity"] == "fail")


def test_rerunning_a_day_inside_the_backfill_changes_no_mart_content(first_demo, demo_db: str) -> None:
    from local.adf.runner import run_pipeline
    from local.runtime import local_platform

    before = mart_checksums(demo_db)
    with local_platform(load_settings()) as platform:
        params = {"runDate": "2024-02-15", "symbols": ",".join(first_demo.symbols)}
        run = run_pipeline("pl_lakehouse_daily", params, platform.run_context())
    assert run.status == "Succeeded", run.error
    assert mart_checksums(demo_db) == before


def test_a_second_demo_is_incremental(first_demo) -> None:
    from local.demo import run_demo

    second = run_demo(load_settings(), Console(file=io.StringIO()), symbols=SYMBOLS, start=START, end=END)
    backfill = first_demo.runs[0]["run_id"]
    assert [(r["step"], r["status"]) for r in second.runs] == [("backfill", "Skipped"), ("daily trigger", "Succeeded")]
    assert second.runs[0]["run_id"] == backfill  # the run that did it the first time
    assert second.layers["bronze"] == first_demo.layers["bronze"]  # RAW reused: no new file loaded
    assert second.marts == first_demo.marts


def test_every_step_left_telemetry_carrying_its_master_run_id(first_demo, demo_db: str) -> None:
    from lakehouse import telemetry

    telemetry.flush()
    with psycopg.connect(demo_db) as conn:
        spans = conn.execute("SELECT name, run_id FROM ops.telemetry_events WHERE kind = 'span'").fetchall()
        masters = {r[0] for r in conn.execute(
            "SELECT run_id FROM ops.pipeline_runs WHERE pipeline = 'pl_lakehouse_daily'")}  # fmt: skip
    jobs = ("raw_to_bronze", "bronze_to_silver", "silver_to_gold", "gold_to_postgres")
    steps = {"function.ingest", *(f"job.{j}" for j in jobs)}
    assert steps <= {name for name, _ in spans}
    assert {run_id for name, run_id in spans if name in steps} <= masters


def test_after_the_demo_every_table_is_fresh_and_no_alert_fires(first_demo, demo_db: str) -> None:
    from lakehouse.lake import Lake
    from local.alerts import evaluate_alerts, exit_code
    from local.ops_status import status

    # The day after the demo's daily run, the latest closed session is that run's date.
    next_day = dt.datetime(2024, 4, 2, 12, 0, tzinfo=dt.UTC)
    report = status(demo_db, now=next_day, lake=Lake.from_settings(load_settings()))
    tables = {f["table"]: f["state"] for f in report["freshness"]}
    assert {"gold.fct_daily_prices", "mart.daily_prices", "mart.latest_quotes"} <= set(tables)
    assert set(tables.values()) == {"fresh"}, tables
    results = evaluate_alerts(demo_db)
    assert exit_code(results) == 0, [r["reason"] for r in results if r["fires"]]
