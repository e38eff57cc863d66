"""`lakehouse reconcile`: the counts of a window from RAW to the mart, exit 1 when a row was lost or the
data-quality check of its symbols fails (missing sessions, a stale symbol, an unapplied corporate action)."""

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
from tests.spark_jobs.test_gold_corporate_actions import land

DAYS = sessions(dt.date(2024, 1, 2), dt.date(2024, 2, 29))
DAY = "2024-03-01"


GAP = DAYS[20:23]


def _landed(spark, settings, defects: bool) -> Tables:
    """AAPL clean; with `defects`, also GAPS (3 sessions missing), OLD (weeks behind the window) and BIG
    (a dividend of 1000 on a 405 stock); then bronze, silver and gold."""
    raw = RawLake(Lake.from_settings(settings))
    raw.daily_bars("AAPL", random_walk_bars(DAYS, seed=3), DAY)
    if defects:
        gaps = random_walk_bars(DAYS, seed=4)
        raw.daily_bars("GAPS", {d: b for d, b in gaps.items() if dt.date.fromisoformat(d) not in GAP}, DAY)
        raw.daily_bars("OLD", random_walk_bars(DAYS[:-20], seed=5), DAY)
        land(raw, "BIG", random_walk_bars(DAYS, seed=6, start=405.0, events={30: {"dividend": 1000.0}}), DAY)
    jobs.run_raw_to_bronze(spark, settings, DAY, DAY, "cli-1")
    jobs.run_bronze_to_silver(spark, settings, DAY, DAY, "cli-1", today=dt.date.fromisoformat(DAY))
    jobs.run_silver_to_gold(spark, settings, DAY, DAY, "cli-1")
    return Tables(spark, Lake.from_settings(settings))


@pytest.fixture
def loaded(lakehouse_env: Path, spark, pg_dsn: str, monkeypatch: pytest.MonkeyPatch):
    """A lake with one symbol run through bronze, silver and gold; a serving database of its own."""
    with migrated_database(pg_dsn, "clirec") as dsn:
        monkeypatch.setenv("LAKEHOUSE_PG_DSN", dsn)
        yield _landed(spark, load_settings(), defects=False)


@pytest.fixture
def defective(lakehouse_env: Path, spark, pg_dsn: str, monkeypatch: pytest.MonkeyPatch):
    with migrated_database(pg_dsn, "clirecq") as dsn:
        monkeypatch.setenv("LAKEHOUSE_PG_DSN", dsn)
        yield _landed(spark, load_settings(), defects=True)


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


def test_reconcile_fails_on_bad_data_naming_each_symbol_and_date(defective: Tables) -> None:
    """Every row is accounted for (nothing lost), yet the window is not clean: exit 1, each defect named."""
    out = run("reconcile", "--start", DAY, "--end", DAY, "--json")
    assert out.returncode == 1, out.stderr
    got = json.loads(out.stdout)
    assert (got["lost_rows"], got["duplicate_rows"], got["extra_rows"]) == (0, 0, 0)
    assert {k: got["details"][k] for k in ("missing_sessions", "stale_symbols", "unapplied_corporate_actions")} == {
        "missing_sessions": 3, "stale_symbols": 1, "unapplied_corporate_actions": 1}  # fmt: skip
    quality = got["quality"]
    gap = {"symbol": "GAPS", "after": DAYS[19].isoformat(), "before": DAYS[23].isoformat(),
           "dates": [d.isoformat() for d in GAP]}  # fmt: skip
    assert quality["missing_sessions"] == [gap]
    assert [(s["symbol"], s["last_bar"]) for s in quality["stale_symbols"]] == [("OLD", DAYS[-21].isoformat())]
    assert [(a["symbol"], a["action"], a["date"]) for a in quality["unapplied_corporate_actions"]] == [
        ("BIG", "dividend", DAYS[30].isoformat())]  # fmt: skip

    text = run("reconcile", "--start", DAY, "--end", DAY)
    assert text.returncode == 1 and "Traceback" not in text.stderr
    lines = text.stdout.splitlines()
    assert any(line.startswith("FAIL missing_sessions GAPS") and all(d.isoformat() in line for d in GAP)
               for line in lines), text.stdout  # fmt: skip
    assert any(line.startswith("FAIL stale_symbols OLD") and DAYS[-21].isoformat() in line for line in lines)
    assert any(line.startswith("FAIL unapplied_corporate_actions BIG") and DAYS[30].isoformat() in line
               and "implausible_corporate_action" in line for line in lines)  # fmt: skip

    clean = run("reconcile", "--start", DAY, "--end", DAY, "--symbols", "AAPL")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no failing finding" in clean.stdout
