"""Reconciliation counts every layer of a window and finds a row lost or duplicated in any of them.

Each test runs the real jobs on a tmp lake, then damages one layer by hand (as a crash or a bug
would) and checks that the damage shows up, in the right layer, with the right count.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from lakehouse.lake import Lake
from lakehouse.trading_calendar import sessions
from spark_jobs import reconcile, serving
from spark_jobs.reconcile import count_records
from spark_jobs.tables import Tables, contract
from tests.databases import migrated_database
from tests.spark_jobs.raw_files import Bar, bar_body, random_walk_bars

DAYS = sessions(dt.date(2024, 1, 2), dt.date(2024, 2, 29))
WINDOW = ("2024-03-01", "2024-03-04")


def seed(raw_lake) -> None:
    """AAPL clean; MSFT with one bad bar (quarantined) and, a day later, an identical re-delivery."""
    raw_lake.daily_bars("AAPL", random_walk_bars(DAYS, seed=1), "2024-03-01")
    msft = random_walk_bars(DAYS, seed=2)
    msft["2024-02-29"] = Bar(-1, 1, 1, 1, 1)
    raw_lake.daily_bars("MSFT", msft, "2024-03-01")
    raw_lake.daily_bars("MSFT", {"2024-02-28": msft["2024-02-28"]}, "2024-03-04", run_id="again")
    raw_lake.file("daily_bars", "KO", "2024-03-04", "run1", b'{"Note": "slow down"}', 0)


def counts(pipeline, **kw) -> reconcile.Reconciliation:
    return reconcile.reconcile(pipeline.spark, pipeline.settings, *WINDOW, **kw)


def test_a_clean_window_balances_in_every_layer(pipeline, raw_lake):
    seed(raw_lake)
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    got = counts(pipeline)
    n = len(DAYS)
    assert got.as_dict() == {
        "raw_records": 2 * n + 1, "bronze_rows": 2 * n + 1, "silver_rows": 2 * n, "quarantine_rows": 1,
        "gold_rows": 2 * n - 1, "lost_rows": 0, "duplicate_rows": 0,
    }  # fmt: skip
    assert got.ok
    assert got.details["silver_keys"] == 2 * n - 1  # the re-delivered bar is one key
    assert got.details["rejected_files"] == 1 and got.details["files"] == 4
    assert counts(pipeline, symbols=["MSFT"]).as_dict()["bronze_rows"] == n + 1


def test_a_row_missing_from_silver_is_lost(pipeline, raw_lake, spark):
    seed(raw_lake)
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    tables = Tables(spark, Lake.from_settings(pipeline.settings))
    tables.delete(contract("silver", "daily_bars"), "symbol = 'AAPL' AND trade_date = DATE'2024-01-03'")
    got = counts(pipeline)
    assert (got.lost_rows, got.details["lost_bronze_to_silver"], got.details["lost_silver_to_gold"]) == (1, 1, 0)


def test_a_file_loaded_twice_into_bronze_is_duplicated(pipeline, raw_lake, spark):
    seed(raw_lake)
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    tables = Tables(spark, Lake.from_settings(pipeline.settings))
    bronze = contract("bronze", "daily_bars")
    again = tables.read(bronze).filter("path_symbol = 'MSFT' AND ingest_date = DATE'2024-03-04'").collect()
    tables.append(spark.createDataFrame(again, tables.read(bronze).schema), bronze)
    got = counts(pipeline, through="bronze")
    assert (got.duplicate_rows, got.lost_rows) == (1, 0)
    assert set(got.as_dict()) == {"raw_records", "bronze_rows", "lost_rows", "duplicate_rows"}


def test_a_mart_row_missing_is_lost_and_counted(pipeline, raw_lake, spark, pg_dsn):
    """Only dates a succeeded load served are expected in the mart (it holds its loaded windows)."""
    seed(raw_lake)
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    lake = Lake.from_settings(pipeline.settings)
    with migrated_database(pg_dsn, "recon") as dsn:
        february = serving.Window.parse("2024-02-01", "2024-02-29")
        serving.load(spark, lake, dsn, window=february, load_id="l0", tables=["daily_prices"])
        partial = counts(pipeline, pg_dsn=dsn)
        served = 2 * sum(d.month == 2 for d in DAYS) - 1
        assert (partial.mart_rows, partial.details["gold_rows_served"], partial.lost_rows) == (served, served, 0)
        window = serving.Window.parse(DAYS[0].isoformat(), DAYS[-1].isoformat())
        serving.load(spark, lake, dsn, window=window, load_id="l1", tables=["daily_prices"])
        assert counts(pipeline, pg_dsn=dsn).as_dict()["mart_rows"] == 2 * len(DAYS) - 1
        with psycopg.connect(dsn) as conn:
            conn.execute("DELETE FROM mart.daily_prices WHERE symbol = 'AAPL' AND trade_date = %s", (DAYS[5],))
        got = counts(pipeline, pg_dsn=dsn)
    assert (got.mart_rows, got.lost_rows, got.details["lost_gold_to_mart"]) == (2 * len(DAYS) - 2, 1, 1)


@pytest.mark.parametrize(
    ("body", "dataset", "records"),
    [
        (bar_body("A", {"2024-01-02": Bar(1, 2, 1, 2, 5), "2024-01-03": Bar(1, 2, 1, 2, 5)}), "daily_bars", 2),
        (b'{"Time Series (Daily)": {"2024-01-02": {}, "2024-01-02": {}}}', "daily_bars", 2),  # duplicates kept
        (b'{"Time Series (Daily)": {"2024-01-02": "x"}}', "daily_bars", 0),  # the parser rejects the file
        (b'{"Information": "quota"}', "daily_bars", 0),
        (b"{not json", "daily_bars", 0),
        (b"[1, 2, 3]", "daily_bars", 0),  # an array, not an object
        (b'{"Time Series (Daily)": [{"1. open": "1"}]}', "daily_bars", 0),
        (b'{"Symbol": "A", "Name": "A Inc"}', "security_master", 1),
        (b"{}", "security_master", 0),
        (b'{"Error Message": "bad"}', "security_master", 0),
    ],
)
def test_raw_records_are_counted_from_the_bytes(body: bytes, dataset: str, records: int):
    assert count_records(body, dataset) == records
