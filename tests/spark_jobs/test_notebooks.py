"""The four notebooks, run in order by the local notebook runner on the embedded Sail session."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from local.notebook_runner import parse_notebook, run_notebook
from spark_jobs import migrations
from tests.spark_jobs.raw_files import Bar, RawLake, random_walk_bars

NOTEBOOKS = Path(__file__).resolve().parents[2] / "spark_jobs" / "notebooks"
ORDER = ("raw_to_bronze", "bronze_to_silver", "silver_to_gold", "maintenance")


def test_notebooks_only_read_widgets_call_the_package_and_exit():
    for name in ORDER:
        text = (NOTEBOOKS / f"{name}.py").read_text()
        cells = parse_notebook(text, name)
        assert text.startswith("# Databricks notebook source\n")
        assert "spark_jobs.jobs import run_" in text and "dbutils.notebook.exit(summary.to_json())" in cells[-1].source
        assert "declare_widgets(dbutils)" in text and "load_settings(), **widget_values(dbutils))" in text


def test_notebooks_run_in_order_and_record_dq_results(spark, lakehouse_env, pg_dsn):
    migrations.apply(pg_dsn)
    raw = RawLake(Lake.from_settings(load_settings()))
    days = sessions(dt.date(2024, 1, 2), dt.date(2024, 2, 29))
    raw.daily_bars("AAPL", random_walk_bars(days, seed=4), "2024-03-01")
    raw.daily_bars("MSFT", {**random_walk_bars(days, seed=5), "2024-02-29": Bar(1, 0.5, 1, 1, 1)}, "2024-03-01")
    raw.overview("AAPL", "2024-03-01")
    params = {"start_date": "2024-03-01", "end_date": "2024-03-01", "run_id": "nb-run-1", "full_refresh": "false"}

    out = {name: json.loads(run_notebook(NOTEBOOKS / f"{name}.py", spark, params)) for name in ORDER}

    assert out["raw_to_bronze"]["rows_written"] == 2 * len(days) + 1
    assert out["bronze_to_silver"]["rows_quarantined"] == 1
    assert out["bronze_to_silver"]["dq"]["passed"] is True
    assert out["silver_to_gold"]["tables"]["gold.fct_daily_prices"]["rows_written"] == 2 * len(days) - 1
    assert out["maintenance"]["tables"]["gold.fct_daily_prices"]["rows"] == 2 * len(days) - 1
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT table_name, rule, severity, passed, failed_count, sample_keys FROM ops.dq_results "
            "WHERE run_id = 'nb-run-1' ORDER BY table_name, rule"
        ).fetchall()
    by_rule = {(t, r): (sev, ok, n, keys) for t, r, sev, ok, n, keys in rows}
    assert len(rows) == out["bronze_to_silver"]["dq"]["rules_evaluated"]
    sev, ok, n, keys = by_rule[("silver.daily_bars", "ohlc_consistent")]
    assert (sev, ok, n) == ("quarantine", False, 1)
    assert keys[0]["symbol"] == "MSFT" and keys[0]["trade_date_raw"] == "2024-02-29"
    assert by_rule[("silver.daily_bars", "prices_positive")][1:3] == (True, 0)
