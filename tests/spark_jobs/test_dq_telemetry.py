"""A silver run emits its data-quality outcomes through the telemetry path, not only to
``ops.dq_results``: in Azure that path is Application Insights, where the data-quality alert looks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from lakehouse import telemetry
from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from local.notebook_runner import run_notebook
from spark_jobs import migrations
from tests.spark_jobs.raw_files import Bar, RawLake, random_walk_bars

NOTEBOOKS = Path(__file__).resolve().parents[2] / "spark_jobs" / "notebooks"


def test_a_silver_run_emits_dq_result_events(spark, lakehouse_env, pg_dsn, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(telemetry.CONNECTION_STRING_ENV, raising=False)
    migrations.apply(pg_dsn)
    raw = RawLake(Lake.from_settings(load_settings()))
    days = sessions(dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    raw.daily_bars("AAPL", random_walk_bars(days, seed=7), "2024-02-01")
    # high below low: one row fails ohlc_consistent (severity quarantine)
    raw.daily_bars("MSFT", {**random_walk_bars(days, seed=8), "2024-01-31": Bar(1, 0.5, 1, 1, 1)}, "2024-02-01")
    params = {"start_date": "2024-02-01", "end_date": "2024-02-01", "run_id": "dq-events-1", "full_refresh": "false"}

    try:
        for name in ("raw_to_bronze", "bronze_to_silver"):
            out = json.loads(run_notebook(NOTEBOOKS / f"{name}.py", spark, params))
    finally:
        telemetry.shutdown()

    with psycopg.connect(pg_dsn, row_factory=dict_row) as conn:
        emitted = conn.execute(
            "SELECT attributes FROM ops.telemetry_events WHERE kind = 'log' AND name = 'dq_result' "
            "AND run_id = 'dq-events-1'"
        ).fetchall()
        stored = conn.execute(
            "SELECT table_name, rule, severity, passed, failed_count FROM ops.dq_results WHERE run_id = 'dq-events-1'"
        ).fetchall()
    assert len(emitted) == out["dq"]["rules_evaluated"] == len(stored) > 0
    as_events = sorted(
        (a["table_name"], a["rule"], a["severity"], a["passed"], a["failed_count"])
        for a in (row["attributes"] for row in emitted)
    )
    assert as_events == sorted(tuple(r.values()) for r in stored)
    assert ("silver.daily_bars", "ohlc_consistent", "quarantine", False, 1) in as_events
