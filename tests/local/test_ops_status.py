"""`lakehouse status`: last runs, freshness against the XNYS calendar, DQ summary, quarantine counts.

Gold and quarantine tables are real Delta tables written with `deltalake` into a tmp lake; runs,
DQ results and mart rows are hand-made rows in a dedicated database. The clock is fixed at
Tuesday 2024-03-05 23:00 UTC, after that day's close (latest session 2024-03-05).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from local.ops_status import format_text, status
from tests.databases import migrated_database
from tests.local import ops_seed as seed
from tests.local.ops_store_db import reset

NOW = seed.at("2024-03-05 23:00")
D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def module_dsn(pg_dsn: str) -> Iterator[str]:
    with migrated_database(pg_dsn, "obs_status") as dsn:
        yield dsn


@pytest.fixture
def ops_dsn(module_dsn: str) -> str:
    reset(module_dsn)
    return module_dsn


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.from_settings(load_settings(home=tmp_path / "home"))


def write_delta(lake: Lake, container: str, name: str, table: pa.Table) -> None:
    write_deltalake(str(lake.local_path(container, name)), table)  # type: ignore[arg-type]


def seed_gold(lake: Lake) -> None:
    write_delta(lake, "gold", "fct_daily_prices", pa.table({
        "symbol": ["AAPL", "AAPL", "MSFT"],
        "trade_date": [D("2024-03-01"), D("2024-03-04"), D("2024-03-04")],
        "close": [1.0, 2.0, 3.0],
    }))  # fmt: skip
    write_delta(lake, "gold", "fct_monthly_performance", pa.table({
        "symbol": ["AAPL", "AAPL"], "month": [D("2024-02-01"), D("2024-03-01")], "close": [1.0, 2.0],
    }))  # fmt: skip
    write_delta(lake, "gold", "latest_quotes", pa.table({
        "symbol": ["AAPL"], "latest_trading_day": [D("2024-03-05")], "price": [2.5],
    }))  # fmt: skip
    write_delta(lake, "gold", "dim_security", pa.table({
        "symbol": ["AAPL"], "valid_from": [D("2020-01-01")], "is_current": [True],
    }))  # fmt: skip


def test_the_last_run_of_each_pipeline_with_status_and_duration(ops_dsn: str) -> None:
    seed.pipeline_run(ops_dsn, "obs-d1", "pl_lakehouse_daily", "Failed", "2024-03-04 22:00", "2024-03-04 22:03")
    seed.pipeline_run(ops_dsn, "obs-d2", "pl_lakehouse_daily", "Succeeded", "2024-03-05 22:00", "2024-03-05 22:12:30")
    seed.pipeline_run(ops_dsn, "obs-i2", "pl_ingest_market_data", "Succeeded", "2024-03-05 22:00",
                      "2024-03-05 22:01", parent="obs-d2")  # fmt: skip
    seed.pipeline_run(ops_dsn, "obs-m1", "pl_maintenance", "InProgress", "2024-03-05 22:30", None)
    seed.pipeline_run(ops_dsn, "obs-late", "pl_backfill", "Succeeded", "2024-03-06 01:00", "2024-03-06 02:00")

    report = status(ops_dsn, now=NOW)
    got = [(p["pipeline"], p["run_id"], p["status"], p["duration_s"]) for p in report["pipelines"]]
    assert got == [
        ("pl_ingest_market_data", "obs-i2", "Succeeded", 60.0),
        ("pl_lakehouse_daily", "obs-d2", "Succeeded", 750.0),
        ("pl_maintenance", "obs-m1", "InProgress", None),
    ], "one row per pipeline, the latest started by now; a later backfill is not yet visible"
    assert report["healthy"]["failed_pipelines"] == []
    assert json.loads(json.dumps(report)) == report, "plain JSON types only"


def test_mart_tables_are_fresh_when_they_hold_the_latest_session_and_stale_after(ops_dsn: str) -> None:
    seed.daily_prices(ops_dsn, "AAPL", [D("2024-03-01"), D("2024-03-04"), D("2024-03-05")])
    fresh = {f["table"]: f for f in status(ops_dsn, now=NOW)["freshness"]}["mart.daily_prices"]
    assert fresh == {
        "layer": "mart", "table": "mart.daily_prices", "column": "trade_date", "latest": "2024-03-05",
        "expected": "2024-03-05", "lag": 0, "lag_unit": "sessions", "state": "fresh", "fresh": True,
        "missing": False,
    }  # fmt: skip
    later = status(ops_dsn, now=seed.at("2024-03-07 23:00"))
    stale = {f["table"]: f for f in later["freshness"]}["mart.daily_prices"]
    assert (stale["state"], stale["expected"], stale["lag"]) == ("stale", "2024-03-07", 2)
    assert "mart.daily_prices" in later["healthy"]["stale_tables"]


def test_before_the_close_the_previous_session_is_the_one_expected(ops_dsn: str) -> None:
    seed.daily_prices(ops_dsn, "AAPL", [D("2024-03-04")])
    entry = {f["table"]: f for f in status(ops_dsn, now=seed.at("2024-03-05 15:00"))["freshness"]}
    assert (entry["mart.daily_prices"]["expected"], entry["mart.daily_prices"]["state"]) == ("2024-03-04", "fresh")


def test_gold_freshness_per_table_from_the_delta_tables(ops_dsn: str, lake: Lake) -> None:
    seed_gold(lake)
    gold = [f for f in status(ops_dsn, now=NOW, lake=lake)["freshness"] if f["layer"] == "gold"]
    assert [(f["table"], f["column"], f["latest"], f["state"], f["lag"]) for f in gold] == [
        ("gold.dim_date", "trade_date", None, "empty", None),  # in the contracts, not written yet
        ("gold.fct_daily_prices", "trade_date", "2024-03-04", "stale", 1),
        ("gold.fct_monthly_performance", "month", "2024-03-01", "fresh", 0),
        ("gold.latest_quotes", "latest_trading_day", "2024-03-05", "fresh", 0),
    ], "dim_security has no date column and is not judged"


def test_dq_summary_is_the_last_run_that_recorded_results(ops_dsn: str) -> None:
    seed.dq_result(ops_dsn, "obs-dq-old", "silver.daily_bars", "prices_positive", "quarantine", False, 9,
                   "2024-03-04 22:05")  # fmt: skip
    for rule, severity, passed, failed in [
        ("keys_not_null", "quarantine", True, 0),
        ("prices_positive", "quarantine", False, 2),
        ("ohlc_consistent", "warn", False, 1),
        ("no_duplicate_files", "fail", True, 0),
    ]:
        seed.dq_result(ops_dsn, "obs-dq-new", "silver.daily_bars", rule, severity, passed, failed, "2024-03-05 22:05")
    dq = status(ops_dsn, now=NOW)["dq"]
    assert (dq["run_id"], dq["rules"], dq["passed"], dq["failed"]) == ("obs-dq-new", 4, 2, 2)
    assert dq["failed_by_severity"] == {"warn": 1, "quarantine": 1}
    assert [(f["rule"], f["failed_count"]) for f in dq["failures"]] == [("ohlc_consistent", 1), ("prices_positive", 2)]


def test_quarantine_counts_per_source_table_in_total_and_from_the_last_run(ops_dsn: str, lake: Lake) -> None:
    seed.dq_result(ops_dsn, "obs-q-new", "silver.daily_bars", "prices_positive", "quarantine", False, 2,
                   "2024-03-05 22:05")  # fmt: skip
    write_delta(lake, "silver", "quarantine", pa.table({
        "source_table": ["daily_bars", "daily_bars", "daily_bars", "quotes"],
        "rule": ["prices_positive"] * 3 + ["values_parse"],
        "load_id": ["obs-q-new", "obs-q-new", "obs-q-old", "obs-q-old"],
    }))  # fmt: skip
    quarantine = status(ops_dsn, now=NOW, lake=lake)["quarantine"]
    assert quarantine["total"] == 4
    assert quarantine["tables"] == [
        {"source_table": "daily_bars", "total": 3, "last_run": 2},
        {"source_table": "quotes", "total": 1, "last_run": 0},
    ]


def test_a_fresh_install_reports_empty_state_and_renders_as_text(ops_dsn: str, lake: Lake) -> None:
    report = status(ops_dsn, now=NOW, lake=lake)
    assert report["pipelines"] == []
    assert report["dq"]["run_id"] is None
    assert report["quarantine"] == {"tables": [], "available": False, "total": 0}
    assert {f["state"] for f in report["freshness"]} <= {"empty"}
    text = format_text(report)
    assert "(no runs recorded)" in text and "no results recorded" in text
    gold = {f["table"] for f in report["freshness"] if f["layer"] == "gold" and f["missing"]}
    assert {"gold.fct_daily_prices", "gold.fct_monthly_performance", "gold.latest_quotes"} <= gold
    assert "gold.fct_daily_prices" in text and "table not created yet" in text
    assert report["healthy"]["ok"] is False
    assert text.splitlines()[0].startswith("unhealthy: ") and "empty or missing table" in text.splitlines()[0]


def test_the_text_starts_with_a_verdict_and_shows_failed_runs_errors(ops_dsn: str, lake: Lake) -> None:
    seed.pipeline_run(ops_dsn, "obs-e1", "pl_lakehouse_daily", "Failed", "2024-03-05 22:00", "2024-03-05 22:03",
                      error="Notebook nb_silver failed: contract mismatch")  # fmt: skip
    report = status(ops_dsn, now=NOW, lake=lake)
    text = format_text(report)
    assert text.splitlines()[0].startswith("unhealthy: 1 failed pipeline (pl_lakehouse_daily)")
    assert "error: Notebook nb_silver failed: contract mismatch" in text


def test_settings_supply_the_dsn_and_the_lake(ops_dsn: str, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", pg_dsn=ops_dsn)
    seed_gold(Lake.from_settings(settings))
    tables = {f["table"] for f in status(settings, now=NOW)["freshness"]}
    assert {"gold.fct_daily_prices", "mart.daily_prices"} <= tables


def test_a_table_whose_first_commit_was_killed_is_reported_missing(ops_dsn: str, lake: Lake) -> None:
    """A `_delta_log` without a commit (a first write killed before version 0) is no table yet."""
    seed_gold(lake)
    for container, name in (("gold", "fct_daily_prices"), ("silver", "quarantine")):
        location = lake.local_path(container, name)
        if container == "gold":
            for f in location.rglob("*"):
                if f.is_file():
                    f.unlink()
        (location / "_delta_log").mkdir(parents=True, exist_ok=True)
        (location / "part-00000-orphan.parquet").write_bytes(b"written by a killed engine")
    report = status(ops_dsn, now=NOW, lake=lake)
    gold = {f["table"]: f["missing"] for f in report["freshness"] if f["layer"] == "gold"}
    assert gold == {"gold.dim_date": True, "gold.fct_daily_prices": True,
                    "gold.fct_monthly_performance": False, "gold.latest_quotes": False}  # fmt: skip
    assert report["quarantine"] == {"tables": [], "available": False, "total": 0}
