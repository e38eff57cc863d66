"""Reconciliation counts every layer of a window and finds a row lost or duplicated in any of them.

Each test runs the real jobs on a tmp lake, then damages one layer by hand (as a crash or a bug
would) and checks that the damage shows up, in the right layer, with the right count. The data-quality
tests deliver bad data instead (a gap, a stale series, an implausible dividend): every row is
accounted for, and the reconciliation still fails, naming the symbol and the dates.
"""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from lakehouse.lake import Lake
from lakehouse.trading_calendar import sessions
from spark_jobs import reconcile, serving
from spark_jobs.reconcile import count_records
from spark_jobs.tables import Tables, contract
from tests.databases import migrated_database
from tests.spark_jobs.raw_files import Bar, bar_body, random_walk_bars
from tests.spark_jobs.test_gold_corporate_actions import land

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
        "gold_rows": 2 * n - 1, "lost_rows": 0, "duplicate_rows": 0, "stale_rows": 0, "extra_rows": 0,
    }  # fmt: skip
    assert got.ok
    assert got.details["damaged_raw_files"] == 0 and got.details["bronze_files_differing"] == 0
    assert got.details["bronze_files_compared"] == 3  # AAPL, MSFT and its re-delivery; the error body has no bars
    assert got.details["silver_keys"] == 2 * n - 1  # the re-delivered bar is one key
    assert got.details["rejected_files"] == 1 and got.details["files"] == 4
    assert counts(pipeline, symbols=["MSFT"]).as_dict()["bronze_rows"] == n + 1
    # Data quality: nothing failing; the quarantined bar and KO's rate-limit body are reported, not failed.
    assert {k: got.details[k] for k in reconcile.QUALITY_FAILURES} == dict.fromkeys(reconcile.QUALITY_FAILURES, 0)
    assert got.quality["as_of"] == "2024-03-04" and got.quality["symbols"] == ["AAPL", "KO", "MSFT"]
    assert [(q["symbol"], q["table"], q["rule"], q["date"]) for q in got.quality["quarantined_accounted"]] == [
        ("MSFT", "daily_bars", "prices_positive", "2024-02-29")
    ]
    assert got.quality["symbols_without_bars"] == [{"symbol": "KO"}]


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
    assert set(got.as_dict()) == {"raw_records", "bronze_rows", "lost_rows", "duplicate_rows", "stale_rows",
                                  "extra_rows"}  # fmt: skip


def test_a_mart_row_missing_is_lost_and_counted(pipeline, raw_lake, spark, pg_dsn):
    """Only dates a succeeded load served are expected in the mart (it holds its loaded windows)."""
    seed(raw_lake)
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    lake = Lake.from_settings(pipeline.settings)
    with migrated_database(pg_dsn, "recon") as dsn:
        february = serving.DateWindow.parse("2024-02-01", "2024-02-29")
        serving.load(spark, lake, dsn, window=february, load_id="l0", tables=["daily_prices"])
        partial = counts(pipeline, pg_dsn=dsn)
        served = 2 * sum(d.month == 2 for d in DAYS) - 1
        assert (partial.mart_rows, partial.details["gold_rows_served"], partial.lost_rows) == (served, served, 0)
        window = serving.DateWindow.parse(DAYS[0].isoformat(), DAYS[-1].isoformat())
        serving.load(spark, lake, dsn, window=window, load_id="l1", tables=["daily_prices"])
        assert counts(pipeline, pg_dsn=dsn).as_dict()["mart_rows"] == 2 * len(DAYS) - 1
        with psycopg.connect(dsn) as conn:
            conn.execute("DELETE FROM mart.daily_prices WHERE symbol = 'AAPL' AND trade_date = %s", (DAYS[5],))
        got = counts(pipeline, pg_dsn=dsn)
    assert (got.mart_rows, got.lost_rows, got.details["lost_gold_to_mart"]) == (2 * len(DAYS) - 2, 1, 1)


def _edit_close(raw_lake, path: str, day: str) -> None:
    """Change one close in a landed payload, keeping its size (only the sha256 can tell)."""
    target = raw_lake.root / path
    body = target.read_bytes()
    close = json.loads(body)["Time Series (Daily)"][day]["4. close"]
    edited = body.replace(f'"4. close": "{close}"'.encode(), f'"4. close": "{close[::-1]}"'.encode(), 1)
    assert edited != body and len(edited) == len(body)
    target.write_bytes(edited)


def test_a_payload_edited_after_landing_is_refused_by_bronze_and_fails_the_reconciliation(pipeline, raw_lake):
    seed(raw_lake)
    path = raw_lake.daily_bars("KO", random_walk_bars(DAYS, seed=3), "2024-03-01", run_id="ko")
    _edit_close(raw_lake, path, DAYS[-1].isoformat())
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    rejected = {r["source_file"]: r["reason"] for r in pipeline.rows("bronze", "rejected_files")}
    assert "differs from its manifest entry (sha256" in rejected[path]
    assert pipeline.table("bronze", "daily_bars").filter(f"source_file = '{path}'").count() == 0
    got = counts(pipeline)
    assert (got.ok, got.details["damaged_raw_files"], got.lost_rows, got.duplicate_rows) == (False, 1, 0, 0)
    assert counts(pipeline, symbols=["AAPL", "MSFT"]).ok  # the other files are intact


def test_bronze_rows_that_differ_from_their_payload_fail_the_reconciliation(pipeline, raw_lake, spark):
    """Same number of rows, one value changed: caught by the per-file record checksums."""
    seed(raw_lake)
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    tables = Tables(spark, Lake.from_settings(pipeline.settings))
    bronze = contract("bronze", "daily_bars")
    schema = tables.read(bronze).schema
    rows = [r.asDict() for r in tables.read(bronze).filter("path_symbol = 'AAPL'").collect()]
    for row in rows:
        if row["trade_date"] == "2024-01-03":
            row["close"] = "1.0000"
    tables.delete(bronze, "path_symbol = 'AAPL'")
    tables.append(spark.createDataFrame(rows, schema), bronze)
    got = counts(pipeline, through="bronze")
    assert (got.ok, got.details["bronze_files_differing"], got.lost_rows, got.duplicate_rows) == (False, 1, 0, 0)


def test_a_stale_and_a_phantom_mart_row_fail_the_reconciliation(pipeline, raw_lake, spark, pg_dsn):
    """Gold and mart are compared by content: a changed close is stale, a row on a Saturday is extra."""
    seed(raw_lake)
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    lake = Lake.from_settings(pipeline.settings)
    with migrated_database(pg_dsn, "recon") as dsn:
        window = serving.DateWindow.parse(DAYS[0].isoformat(), DAYS[-1].isoformat())
        serving.load(spark, lake, dsn, window=window, load_id="l1", tables=["daily_prices"])
        clean = counts(pipeline, pg_dsn=dsn)
        assert clean.ok and (clean.stale_rows, clean.extra_rows, clean.details["mart_ranges_differing"]) == (0, 0, 0)
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE mart.daily_prices SET close = close + 1 WHERE symbol = 'AAPL' AND trade_date = %s",
                         (DAYS[5],))  # fmt: skip
        stale = counts(pipeline, pg_dsn=dsn)
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO mart.daily_prices SELECT symbol, DATE'2024-02-03', open, high, low, close, adj_close, "
                "volume, daily_return, log_return, ma_20, ma_50, ma_200, volatility_20d, high_52w, low_52w, "
                "drawdown, load_id, schema_version FROM mart.daily_prices WHERE symbol = 'MSFT' "
                "AND trade_date = DATE'2024-02-02'"
            )
        phantom = counts(pipeline, pg_dsn=dsn)
    assert (stale.ok, stale.stale_rows, stale.extra_rows, stale.lost_rows) == (False, 1, 0, 0)
    assert stale.details["mart_ranges_differing"] == 1
    assert (phantom.ok, phantom.stale_rows, phantom.extra_rows, phantom.details["mart_without_gold"]) == (
        False, 1, 1, 1)  # fmt: skip
    assert phantom.details["mart_ranges_differing"] == 2


def _quality_failures(got: reconcile.Reconciliation) -> dict[str, int]:
    return {k: got.details[k] for k in reconcile.QUALITY_FAILURES if got.details[k]}


def test_sessions_missing_from_a_series_fail_the_reconciliation_naming_symbol_and_dates(pipeline, raw_lake):
    seed(raw_lake)
    gap = DAYS[20:23]
    bars = random_walk_bars(DAYS, seed=4)
    raw_lake.daily_bars("GAPS", {d: b for d, b in bars.items() if dt.date.fromisoformat(d) not in gap}, "2024-03-01",
                        run_id="gaps")  # fmt: skip
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    got = counts(pipeline)
    assert (got.lost_rows, got.duplicate_rows, got.stale_rows, got.extra_rows) == (0, 0, 0, 0)  # all accounted
    assert not got.ok and _quality_failures(got) == {"missing_sessions": 3}
    assert got.quality["missing_sessions"] == [
        {"symbol": "GAPS", "after": DAYS[19].isoformat(), "before": DAYS[23].isoformat(),
         "dates": [d.isoformat() for d in gap]}
    ]  # fmt: skip
    assert counts(pipeline, symbols=["AAPL", "MSFT"]).ok  # the other symbols have no gap
    # A window of trade dates after the gap does not see it.
    assert counts(pipeline, trade_start=DAYS[24].isoformat(), trade_end=DAYS[-1].isoformat()).ok


def test_a_symbol_weeks_behind_the_window_fails_the_reconciliation(pipeline, raw_lake):
    seed(raw_lake)
    raw_lake.daily_bars("OLD", random_walk_bars(DAYS[:-20], seed=5), "2024-03-01", run_id="old")
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    got = counts(pipeline)
    assert (got.lost_rows, got.duplicate_rows) == (0, 0)
    assert not got.ok and _quality_failures(got) == {"stale_symbols": 1}
    # 20 sessions of DAYS, then 2024-03-01 and 2024-03-04, the window's last session
    assert got.quality["stale_symbols"] == [
        {"symbol": "OLD", "last_bar": DAYS[-21].isoformat(), "as_of": "2024-03-04", "sessions_behind": 22}
    ]
    assert counts(pipeline, symbols=["AAPL", "MSFT"]).ok  # not requested: not expected to be current


def test_an_implausible_dividend_quarantined_fails_the_reconciliation_as_an_unapplied_event(pipeline, raw_lake):
    """1000 on a 405 stock: quarantined (accounted, not lost), but gold's adjusted prices miss an event."""
    seed(raw_lake)
    bars = random_walk_bars(DAYS, seed=6, start=405.0, events={30: {"dividend": 1000.0}})
    land(raw_lake, "BIG", bars, "2024-03-01", run_id="big")
    pipeline.run(*WINDOW, today=dt.date(2024, 3, 4))
    got = counts(pipeline)
    assert (got.lost_rows, got.duplicate_rows, got.extra_rows) == (0, 0, 0)
    assert not got.ok and _quality_failures(got) == {"unapplied_corporate_actions": 1}
    (event,) = got.quality["unapplied_corporate_actions"]
    assert (event["symbol"], event["date"], event["action"], event["rule"]) == (
        "BIG", DAYS[30].isoformat(), "dividend", "implausible_corporate_action")  # fmt: skip
    assert counts(pipeline, symbols=["AAPL", "MSFT"]).ok


def test_an_implausible_revision_of_an_applied_dividend_is_reported_not_failed(pipeline, raw_lake):
    """Gold keeps the accepted dividend of that ex-date: no event is missing, the refused revision is accounted."""
    bars = random_walk_bars(DAYS, seed=7, start=405.0, events={30: {"dividend": 2.0}})
    land(raw_lake, "DIV", bars, "2024-03-01", run_id="first")
    pipeline.run("2024-03-01", today=dt.date(2024, 3, 4))
    revised = dict(bars)
    revised[DAYS[30].isoformat()] = Bar(**{**bars[DAYS[30].isoformat()].__dict__, "dividend": 1000.0})
    land(raw_lake, "DIV", revised, "2024-03-04", run_id="second")
    pipeline.run("2024-03-04", run_id="run-2", today=dt.date(2024, 3, 4))
    got = counts(pipeline)
    assert got.ok, (got.details, got.quality)
    assert [(q["symbol"], q["table"], q["rule"], q["date"]) for q in got.quality["quarantined_accounted"]] == [
        ("DIV", "corporate_actions", "implausible_corporate_action", DAYS[30].isoformat())
    ]


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


def test_content_checksums_of_a_payload_ignore_record_order_and_see_any_changed_value():
    bars = {"2024-01-02": Bar(1, 2, 1, 2, 5), "2024-01-03": Bar(1, 2, 1, 2.5, 5)}
    body = bar_body("A", bars)
    reordered = json.dumps({"Time Series (Daily)": dict(reversed(json.loads(body)["Time Series (Daily)"].items()))})
    assert reconcile.content_checksum(body) == reconcile.content_checksum(reordered.encode())
    assert reconcile.content_checksum(body) != reconcile.content_checksum(body.replace(b"2.5000", b"2.6000"))
    assert reconcile.content_checksum(b'{"Time Series (Daily)": {"2024-01-02": {"4. close": 2.5}}}') is None
    assert reconcile.content_checksum(b'{"Note": "slow down"}') is None
