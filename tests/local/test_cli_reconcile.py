"""`lakehouse reconcile`: the counts of a window from RAW to the mart, exit 1 when a row was lost."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from spark_jobs import jobs
from spark_jobs.tables import Tables, contract
from tests.databases import migrated_database
from tests.local.test_cli import run
from tests.spark_jobs.raw_files import RawLake, random_walk_bars

DAYS = sessions(dt.date(2024, 1, 2), dt.date(2024, 2, 29))
DAY = "2024-03-01"


@pytest.fixture
def loaded(lakehouse_env: Path, spark, pg_dsn: str, monkeypatch: pytest.MonkeyPatch):
    """A lake with one symbol run through bronze, silver and gold; a serving database of its own."""
    with migrated_database(pg_dsn, "clirec") as dsn:
        monkeypatch.setenv("LAKEHOUSE_PG_DSN", dsn)
        settings = load_settings()
        RawLake(Lake.from_settings(settings)).daily_bars("AAPL", random_walk_bars(DAYS, seed=3), DAY)
        for job in (jobs.run_raw_to_bronze, jobs.run_bronze_to_silver, jobs.run_silver_to_gold):
            job(spark, settings, DAY, DAY, "cli-1")
        yield Tables(spark, Lake.from_settings(settings))


def test_reconcile_json_counts_the_window_and_exit_1_names_a_lost_row(loaded: Tables) -> None:
    out = run("reconcile", "--start", DAY, "--end", DAY, "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    n = len(DAYS)
    expected = {"raw_records": n, "bronze_rows": n, "silver_rows": n, "gold_rows": n, "mart_rows": 0, "lost_rows": 0}
    assert {k: got[k] for k in expected} == expected

    loaded.delete(contract("gold", "fct_daily_prices"), "trade_date = DATE'2024-01-03'")
    out = run("reconcile", "--start", DAY, "--end", DAY)
    assert out.returncode == 1
    assert "lost_silver_to_gold" in out.stdout and "lost_rows" in out.stdout


def test_reconcile_refuses_a_bad_date_naming_it(lakehouse_env: Path) -> None:
    out = run("reconcile", "--start", "2024-02-31", "--end", DAY)
    assert out.returncode == 2
    assert "start_date must be YYYY-MM-DD" in out.stderr and "Traceback" not in out.stderr


def test_a_window_of_trade_dates_with_no_ingestion_is_not_a_silent_success(loaded: Tables) -> None:
    """--start/--end are ingestion dates: the trade dates of the loaded bars ingested nothing."""
    out = run("reconcile", "--start", DAYS[0].isoformat(), "--end", DAYS[-1].isoformat(), "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["raw_records"] == 0
    assert "ingestion dates" in out.stderr and "--trade-start" in out.stderr
