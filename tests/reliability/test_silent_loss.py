"""Silent loss: data lost or wrong while every run reports Succeeded and the reconciliation passed.

Each case runs pl_lakehouse_daily for the scenario's window on a lake and database of its own
(tests/reliability/pipeline_runs.py), damages one thing the way the hostile tests did, and checks
that the damage is either repaired by the next run or refused and reported: by the ingestion's
manifest, by bronze's rejected files, and by `lakehouse reconcile` exiting 1. A clean run
reconciles with nothing lost, duplicated, stale or extra, and `lakehouse reconcile` exits 0.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from lakehouse.settings import load_settings
from tests.databases import migrated_database
from tests.reliability.pipeline_runs import PIPELINE, Scenario, scenario_environment


@pytest.fixture
def scenario(tmp_path, endpoints):
    with migrated_database(endpoints.pg_dsn, "silent") as dsn:
        yield Scenario(tmp_path / "home", dsn, endpoints.spark_remote)


def run(scenario: Scenario, pipeline: str = PIPELINE, **params: str):
    """A pipeline for the scenario's window, in this process; `params` added to its parameters."""
    from local.adf.runner import run_pipeline
    from local.runtime import local_platform

    with scenario_environment(scenario), local_platform(load_settings()) as platform:
        done = run_pipeline(pipeline, {**scenario.params, **params}, platform.run_context())
    assert done.status == "Succeeded", done.error
    return done


def reconcile_window(spark, scenario: Scenario):
    """The window's layers counted by spark_jobs.reconcile (ingestion window: the look-back)."""
    from spark_jobs.reconcile import reconcile

    today = dt.datetime.now(dt.UTC).date()
    return reconcile(spark, scenario.settings(), today - dt.timedelta(days=7), today,
                     trade_start=scenario.start, trade_end=scenario.end, pg_dsn=scenario.dsn)  # fmt: skip


def cli_reconcile(scenario: Scenario) -> int:
    """Exit code of `lakehouse reconcile` over the same window, as a user runs it."""
    from local.cli import app

    today = dt.datetime.now(dt.UTC).date()
    args = ["reconcile", "--start", (today - dt.timedelta(days=7)).isoformat(), "--end", today.isoformat(),
            "--trade-start", scenario.start, "--trade-end", scenario.end]  # fmt: skip
    with scenario_environment(scenario):
        return CliRunner().invoke(app, args).exit_code


def payloads(scenario: Scenario, symbol: str) -> list[Path]:
    return sorted(scenario.lake.local_path("raw").glob(f"*/daily_bars/ingest_date=*/{symbol}/*.json"))


def manifests(scenario: Scenario) -> list[dict]:
    found = scenario.lake.local_path("raw").glob("_manifests/daily_bars/ingest_date=*/*.json")
    return [json.loads(p.read_text()) for p in sorted(found, key=lambda p: p.stat().st_mtime)]


def mart_close(scenario: Scenario, symbol: str, day: str) -> float | None:
    with psycopg.connect(scenario.dsn) as conn:
        row = conn.execute("SELECT close FROM mart.daily_prices WHERE symbol = %s AND trade_date = %s",
                           (symbol, day)).fetchone()  # fmt: skip
    return row[0] if row else None


def test_gold_and_mart_are_compared_by_content_and_a_phantom_row_fails_reconcile(case, spark, scenario):
    c = case("silent loss", "a phantom mart row on a non-session day, then a stale mart value",
             expected="clean run: reconcile exits 0; phantom: extra_rows=1, exit 1; stale close: stale_rows=1, "
                      "exit 1")  # fmt: skip
    run(scenario)
    clean = reconcile_window(spark, scenario)
    c.reconcile(clean)
    assert clean.ok and cli_reconcile(scenario) == 0
    saturday = next(d for d in (dt.date.fromisoformat(scenario.end) - dt.timedelta(days=n) for n in range(7))
                    if d.weekday() == 5)  # fmt: skip
    with psycopg.connect(scenario.dsn) as conn:
        conn.execute(
            "INSERT INTO mart.daily_prices SELECT symbol, %s, open, high, low, close, adj_close, volume, "
            "daily_return, log_return, ma_20, ma_50, ma_200, volatility_20d, high_52w, low_52w, drawdown, "
            "load_id, schema_version FROM mart.daily_prices WHERE symbol = 'AAPL' AND trade_date = %s",
            (saturday, saturday - dt.timedelta(days=1)),
        )
    phantom = reconcile_window(spark, scenario)
    phantom_exit = cli_reconcile(scenario)
    with psycopg.connect(scenario.dsn) as conn:
        conn.execute("DELETE FROM mart.daily_prices WHERE trade_date = %s", (saturday,))
        conn.execute("UPDATE mart.daily_prices SET close = close * 1.01 WHERE symbol = 'MSFT' AND trade_date = %s",
                     (scenario.end,))  # fmt: skip
    stale = reconcile_window(spark, scenario)
    stale_exit = cli_reconcile(scenario)
    c.observe(f"clean: exit 0; phantom on {saturday}: extra_rows={phantom.extra_rows}, exit {phantom_exit}; "
              f"stale MSFT close: stale_rows={stale.stale_rows}, ranges differing "
              f"{stale.details['mart_ranges_differing']}, exit {stale_exit}")  # fmt: skip
    assert (phantom.ok, phantom.extra_rows, phantom.details["mart_without_gold"], phantom_exit) == (False, 1, 1, 1)
    assert (stale.ok, stale.stale_rows, stale.extra_rows, stale.lost_rows, stale_exit) == (False, 1, 0, 0, 1)


@pytest.mark.reliability
def test_a_payload_damaged_after_landing_is_fetched_again_not_reused_all_day(case, spark, scenario):
    c = case("silent loss", "a landed payload truncated after ingestion, before bronze and a later run of the day",
             expected="the later run fetches it again (reuse_refused names the file and why), the symbol reaches "
                      "the mart; reconcile reports the damaged file (damaged_raw_files=1, exit 1)")  # fmt: skip
    run(scenario, "pl_ingest_market_data", runId="ingest-only")
    (landed,) = payloads(scenario, "AAPL")
    intact = landed.read_bytes()
    landed.write_bytes(intact[: len(intact) // 3])
    run(scenario)
    later = manifests(scenario)[-1]
    entry = next(f for f in later["files"] if f["symbol"] == "AAPL")
    counts = reconcile_window(spark, scenario)
    exit_code = cli_reconcile(scenario)
    refused = [r["reason"][-70:] for r in entry.get("reuse_refused", [])]
    c.observe(f"second run: AAPL {entry['status']}, refused {refused}; "
              f"damaged_raw_files={counts.details['damaged_raw_files']}, reconcile exit {exit_code}")  # fmt: skip
    c.reconcile(counts)
    assert entry["status"] == "written"
    raw_root = scenario.lake.local_path("raw")
    assert [r["path"] for r in entry["reuse_refused"]] == [landed.relative_to(raw_root).as_posix()]
    assert mart_close(scenario, "AAPL", scenario.end) is not None
    assert (counts.ok, counts.details["damaged_raw_files"], exit_code) == (False, 1, 1)


@pytest.mark.reliability
def test_a_payload_edited_after_landing_never_reaches_the_mart(case, spark, scenario):
    c = case("silent loss", "a close edited in a landed payload, then a fullRefresh run",
             expected="bronze refuses the file (rejected_files: differs from its manifest), the edited value is "
                      "not in the mart; reconcile reports it (damaged_raw_files=1, exit 1)")  # fmt: skip
    run(scenario)
    (landed,) = payloads(scenario, "MSFT")
    body = landed.read_bytes()
    close = json.loads(body)["Time Series (Daily)"][scenario.end]["4. close"]
    edited = f"{float(close) * 3:.4f}"
    landed.write_bytes(body.replace(f'"4. close": "{close}"'.encode(), f'"4. close": "{edited}"'.encode(), 1))
    run(scenario, fullRefresh="true")
    from spark_jobs.tables import read_arrow

    table = read_arrow(scenario.lake.table("bronze", "rejected_files"))
    rejected = table.to_pylist() if table is not None else []  # no table: nothing was ever rejected
    reasons = [r["reason"] for r in rejected if r["source_file"].endswith(landed.name) and "/MSFT/" in r["source_file"]]
    served = mart_close(scenario, "MSFT", scenario.end)
    counts = reconcile_window(spark, scenario)
    exit_code = cli_reconcile(scenario)
    c.observe(f"bronze rejected: {reasons[0][-90:] if reasons else None}; mart close {served} (edited {edited}); "
              f"damaged_raw_files={counts.details['damaged_raw_files']}, reconcile exit {exit_code}")  # fmt: skip
    c.reconcile(counts)
    assert len(reasons) == 1 and "differs from its manifest entry (sha256" in reasons[0]
    assert served != float(edited)
    assert (counts.ok, counts.details["damaged_raw_files"], exit_code) == (False, 1, 1)
