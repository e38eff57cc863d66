"""RAW -> BRONZE: every record of every file exactly once, lineage on every row, reruns are no-ops."""

from __future__ import annotations

import datetime as dt
import json

from lakehouse.trading_calendar import sessions
from spark_jobs import jobs
from tests.spark_jobs.raw_files import quote_message, random_walk_bars

DAYS = sessions(dt.date(2024, 1, 2), dt.date(2024, 2, 29))
NOTE_BODY = b'{"Note": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day."}'


def test_each_bar_of_each_file_becomes_one_row_with_lineage(spark, lake_settings, raw_lake):
    a = raw_lake.daily_bars("AAPL", random_walk_bars(DAYS, seed=1), "2024-03-01", run_id="r-a")
    b = raw_lake.daily_bars("MSFT", random_walk_bars(DAYS[:10], seed=2), "2024-03-01", run_id="r-b")
    c = raw_lake.daily_bars("AAPL", random_walk_bars(DAYS[-3:], seed=3), "2024-03-04", run_id="r-c")
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-04", "load-1").as_dict()

    table = summary["tables"]["bronze.daily_bars"]
    assert (table["files_found"], table["files_loaded"], table["rows_read"], table["rows_written"]) == (
        3, 3, len(DAYS) + 10 + 3, len(DAYS) + 10 + 3,
    )  # fmt: skip
    assert table["manifest_mismatches"] == []
    rows = spark.read.format("delta").load(str(raw_lake.lake.local_path("bronze", "daily_bars")))
    per_file = {r.source_file: r["count"] for r in rows.groupBy("source_file").count().collect()}
    assert per_file == {a: len(DAYS), b: 10, c: 3}
    first = rows.filter(f"source_file = '{a}' AND trade_date = '2024-01-02'").first()
    assert (first.symbol, first.path_symbol, first.ingest_date, first.ingest_run_id, first.provider, first.load_id) == (
        "AAPL", "AAPL", dt.date(2024, 3, 1), "r-a", "synthetic", "load-1",
    )  # fmt: skip
    body = json.loads((raw_lake.root / a).read_bytes())["Time Series (Daily)"]["2024-01-02"]
    assert (first.open, first.close, first.volume, first.split_coefficient) == (
        body["1. open"], body["4. close"], body["6. volume"], body["8. split coefficient"],
    )  # values exactly as received  # fmt: skip


def test_rerun_loads_nothing_and_full_refresh_reloads_the_same_rows(spark, lake_settings, raw_lake):
    raw_lake.daily_bars("AAPL", random_walk_bars(DAYS, seed=1), "2024-03-01")
    raw_lake.overview("AAPL", "2024-03-01")
    jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1")
    table = str(raw_lake.lake.local_path("bronze", "daily_bars"))
    before = sorted(spark.read.format("delta").load(table).collect())

    again = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-2").as_dict()
    assert again["rows_written"] == 0
    assert again["tables"]["bronze.daily_bars"]["files_skipped"] == 1
    assert sorted(spark.read.format("delta").load(table).collect()) == before

    rebuilt = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1", "true").as_dict()
    assert rebuilt["tables"]["bronze.daily_bars"]["rows_written"] == len(DAYS)
    assert sorted(spark.read.format("delta").load(table).collect()) == before


def test_files_without_records_are_rejected_with_the_reason_and_not_reread(spark, lake_settings, raw_lake):
    throttled = raw_lake.file("daily_bars", "IBM", "2024-03-01", "r1",
                              NOTE_BODY, 0)  # fmt: skip
    broken = raw_lake.file("daily_bars", "KO", "2024-03-01", "r1", b'{"Meta Data": {', 0)
    unknown = raw_lake.file("security_master", "ZZZZ", "2024-03-01", "r1", b"{}", 0)
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1").as_dict()
    assert summary["tables"]["bronze.daily_bars"]["files_rejected"] == 2
    assert summary["tables"]["bronze.security_overview"]["files_rejected"] == 1
    rejected = spark.read.format("delta").load(str(raw_lake.lake.local_path("bronze", "rejected_files")))
    reasons = {r.source_file: r.reason for r in rejected.collect()}
    assert "'Note'" in reasons[throttled] and "rate limit" in reasons[throttled]
    assert "not UTF-8 JSON" in reasons[broken]
    assert "empty overview" in reasons[unknown]
    assert jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-2").as_dict()["tables"][
        "bronze.daily_bars"]["files_skipped"] == 2  # fmt: skip


def test_capture_events_become_quote_rows(spark, lake_settings, raw_lake):
    at = dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.UTC)
    path = raw_lake.capture([quote_message("AAPL", 180.0, "2024-03-01T14:30:00Z", "2024-03-01"), b"not json"], at,
                            partition="1", first_sequence=40)  # fmt: skip
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1").as_dict()
    assert summary["tables"]["bronze.quotes"]["rows_written"] == 2
    rows = spark.read.format("delta").load(str(raw_lake.lake.local_path("bronze", "quotes"))).orderBy("sequence_number")
    good, bad = rows.collect()
    assert (good.symbol, good.price, good.sequence_number, good.partition_id, good.source_file, good.ingest_date) == (
        "AAPL", "180.0000", 40, "1", path, dt.date(2024, 3, 1),
    )  # fmt: skip
    assert (bad.symbol, bad.body, bad.sequence_number) == (None, "not json", 41)  # kept, silver will quarantine it


def test_manifest_record_counts_are_reconciled(spark, lake_settings, raw_lake):
    """A manifest that disagrees with the file (here: it claims one more bar) is reported per file."""
    path = raw_lake.daily_bars("AAPL", random_walk_bars(DAYS[:5], seed=1), "2024-03-01")
    manifest = raw_lake.root / "_manifests/daily_bars/ingest_date=2024-03-01/run1.json"
    doc = json.loads(manifest.read_text())
    doc["files"][0]["records"] = 6
    manifest.write_text(json.dumps(doc))
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1").as_dict()
    assert summary["tables"]["bronze.daily_bars"]["manifest_mismatches"] == [
        {"file": path, "manifest_records": 6, "bronze_rows": 5}
    ]
