"""Corporate actions from the SPLITS and DIVIDENDS datasets, through silver into gold's one adjusted frame.

Bars are landed as the free endpoint serves them (no split or dividend fields), so every
adjustment comes from the corporate-actions dataset; expectations are computed with pandas by
the textbook definitions (tests/spark_jobs/test_gold.py:expected_daily) from the same events.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from lakehouse.contracts import alpha_vantage as av
from lakehouse.lake import Lake
from lakehouse.trading_calendar import sessions
from spark_jobs import bronze, gold, migrations, raw, serving
from spark_jobs.contracts import load
from spark_jobs.job_params import DateWindow
from spark_jobs.serving import MART_TABLES
from spark_jobs.tables import Tables
from tests.databases import fresh_database
from tests.spark_jobs.raw_files import Bar, random_walk_bars
from tests.spark_jobs.test_gold import DAILY_COLUMNS, assert_close, expected_daily, served_rows

FIXTURES = Path(__file__).parent / "fixtures"
DAYS = sessions(dt.date(2023, 1, 3), dt.date(2024, 2, 29))  # 292 sessions
# A split on the first session, a 1-for-4 reverse split whose day is the first session of the last
# row's 52-week window (40 + 251 = 291), a dividend, and a 3-for-1 split inside the 52-week window.
EVENTS = {0: {"split": 2.0}, 40: {"split": 0.25}, 100: {"dividend": 0.9}, 200: {"split": 3.0}}
SPLIT_DAYS = (40, 200)
PRICE_LEVEL = ("adj_close", "high_52w", "low_52w", "ma_20", "ma_50", "ma_200")


def splits_body(symbol: str, bars: dict[str, Bar]) -> tuple[bytes, int]:
    events = [{"effective_date": d, "split_factor": f"{b.split:.4f}"} for d, b in bars.items() if b.split != 1.0]
    return av.render_actions(symbol, events[::-1]), len(events)


def dividends_body(symbol: str, bars: dict[str, Bar], **amounts: float) -> tuple[bytes, int]:
    events = [
        {"ex_dividend_date": d, "declaration_date": "None", "record_date": "None", "payment_date": "None",
         "amount": f"{amounts.get(d, b.dividend):.4f}"}
        for d, b in bars.items() if b.dividend
    ]  # fmt: skip
    return av.render_actions(symbol, events[::-1]), len(events)


def land(raw_lake, symbol: str, bars: dict[str, Bar], day: str, run_id: str = "run1") -> None:
    """Unadjusted bars plus the symbol's SPLITS and DIVIDENDS bodies, as a free key gets them."""
    raw_lake.daily_bars(symbol, bars, day, run_id=run_id, adjusted=False)
    raw_lake.file("splits", symbol, day, run_id, *splits_body(symbol, bars))
    raw_lake.file("dividends", symbol, day, run_id, *dividends_body(symbol, bars))


def test_real_splits_and_dividends_bodies_parse_to_one_record_per_event():
    splits = raw.parse_corporate_actions("splits")((FIXTURES / "ibm_splits.json").read_bytes(), "s")
    dividends = raw.parse_corporate_actions("dividends")((FIXTURES / "ibm_dividends.json").read_bytes(), "d")
    assert splits.rejected is None and dividends.rejected is None
    assert [(r["symbol"], r["action"], r["ex_date"], r["value"]) for r in splits.records] == [
        ("IBM", "split", "2021-11-04", "1.0460"), ("IBM", "split", "1999-05-27", "2.0000"),
        ("IBM", "split", "1997-05-28", "2.0000"),
    ]  # fmt: skip
    last = dividends.records[-1]
    assert (last["ex_date"], last["value"], last["declaration_date"], last["record_index"]) == (
        "1995-02-06", "0.25", "None", 2,
    )  # fmt: skip
    message = raw.parse_corporate_actions("splits")(json.dumps({"Information": "rate limit"}).encode(), "m")
    assert message.rejected is not None and "Information" in message.rejected


def test_gold_from_corporate_actions_matches_the_textbook_and_is_continuous_across_splits(pipeline, raw_lake):
    bars = random_walk_bars(DAYS, seed=17, events=EVENTS)
    land(raw_lake, "SPLT", bars, "2024-03-01")
    summary = pipeline.run("2024-03-01")
    assert summary["silver"]["tables"]["silver.corporate_actions"]["inserted"] == 4
    actual = served_rows(pipeline, "fct_daily_prices", "trade_date")
    stored = pipeline.rows("gold", "fct_daily_prices", "trade_date")
    assert_close(actual, expected_daily(bars), DAILY_COLUMNS, "trade_date")
    for i in SPLIT_DAYS:
        before, on = actual[i - 1], actual[i]
        raw_jump = on["close"] / before["close"] - 1
        assert abs(raw_jump) > 0.5, "the raw close jumps on a split day (the test would see an unadjusted metric)"
        for column in PRICE_LEVEL:
            if before[column] is not None:
                assert abs(on[column] / before[column] - 1) < 0.05, (DAYS[i], column, before[column], on[column])
        assert abs(on["drawdown"] - before["drawdown"]) < 0.05
        assert on["daily_return"] == pytest.approx(on["adj_close"] / before["adj_close"] - 1, rel=1e-12)
    factors = pipeline.rows("gold", "adjustment_factors", "ex_date")
    assert [(r["ex_date"], r["split_factor"]) for r in factors if r["split_factor"] != 1.0] == [
        (DAYS[i], EVENTS[i]["split"]) for i in (0, 40, 200)
    ]
    # The cumulative factor of an ex-date is what the adjusted close of the day before is scaled by;
    # the forward factor is what gold's stored close of the ex-date is divided by.
    for r in factors:
        i = DAYS.index(r["ex_date"])
        if i:
            assert actual[i - 1]["adj_close"] == pytest.approx(
                actual[i - 1]["close"] * r["cumulative_factor"], rel=1e-12
            )
        assert stored[i]["adj_close"] == pytest.approx(stored[i]["close"] / r["forward_factor"], rel=1e-12)


def test_a_revised_dividend_is_a_silver_revision_and_gold_follows_it(pipeline, raw_lake):
    bars = random_walk_bars(DAYS, seed=23, events={100: {"dividend": 0.9}, 250: {"dividend": 0.4}})
    land(raw_lake, "DIV", bars, "2024-03-01")
    pipeline.run("2024-03-01", run_id="first")
    ex_day = DAYS[100].isoformat()
    raw_lake.file("dividends", "DIV", "2024-03-04", "fix", *dividends_body("DIV", bars, **{ex_day: 1.2}))
    summary = pipeline.run("2024-03-04", run_id="second")
    assert summary["silver"]["tables"]["silver.corporate_actions"]["revised"] == 1
    assert summary["gold"]["tables"]["gold.fct_daily_prices"]["full_symbols"] == 0  # from the ex-date on
    assert summary["gold"]["tables"]["gold.fct_daily_prices"]["rows_written"] == len(DAYS) - 100
    stored = {r["ex_date"]: r for r in pipeline.rows("silver", "corporate_actions")}
    assert (stored[DAYS[100]]["dividend_amount"], stored[DAYS[100]]["revision"]) == (1.2, 2)
    assert stored[DAYS[250]]["revision"] == 1
    revised = dict(bars)
    revised[ex_day] = Bar(**{**bars[ex_day].__dict__, "dividend": 1.2})
    assert_close(served_rows(pipeline, "fct_daily_prices", "trade_date"), expected_daily(revised), DAILY_COLUMNS,
                 "trade_date")  # fmt: skip


def test_an_implausible_dividend_is_quarantined_not_applied(pipeline, raw_lake):
    bars = random_walk_bars(DAYS[:60], seed=5, events={30: {"dividend": 1000.0}})
    land(raw_lake, "BIG", bars, "2024-03-01")
    summary = pipeline.run("2024-03-01")
    assert summary["silver"]["tables"]["silver.corporate_actions"]["rows_quarantined"] == 1
    quarantined = pipeline.rows("silver", "quarantine")
    assert [(q["source_table"], q["rule"]) for q in quarantined] == [
        ("corporate_actions", "implausible_corporate_action")
    ]
    gold_rows = pipeline.rows("gold", "fct_daily_prices", "trade_date")
    assert [r["adj_close"] for r in gold_rows] == [r["close"] for r in gold_rows]


def test_actions_disagreeing_with_the_adjusted_series_raise_a_warning_and_the_actions_win(pipeline, raw_lake):
    bars = random_walk_bars(DAYS[:60], seed=8, events={30: {"split": 2.0}})
    raw_lake.daily_bars("TWO", bars, "2024-03-01")  # premium series: split coefficient 2.0 on day 30
    claimed = {d: Bar(**{**b.__dict__, "split": 4.0 if b.split != 1.0 else 1.0}) for d, b in bars.items()}
    raw_lake.file("splits", "TWO", "2024-03-01", "run1", *splits_body("TWO", claimed))
    summary = pipeline.run("2024-03-01")
    failed = {(r["table"], r["rule"]): r for r in summary["silver"]["dq"]["failed_rules"]}
    warning = failed[("silver.corporate_actions", "agrees_with_adjusted_series")]
    assert (warning["severity"], warning["failed_count"]) == ("warn", 1)
    rows = served_rows(pipeline, "fct_daily_prices", "trade_date")
    assert rows[29]["adj_close"] == pytest.approx(rows[29]["close"] / 4.0, rel=1e-12)


def test_gold_refuses_a_non_positive_adjustment_factor(spark):
    """A dividend at least as large as the previous close reaching gold fails the job, never counts as 1."""
    bars = random_walk_bars(DAYS[:30], seed=2)
    rows = [
        {"symbol": "X", "trade_date": dt.date.fromisoformat(d), "open": b.open, "high": b.high, "low": b.low,
         "close": b.close, "adjusted_close": None, "volume": b.volume, "dividend_amount": None,
         "split_coefficient": None, "source_file": "f", "ingest_run_id": "r", "ingested_at": dt.datetime(2024, 3, 1),
         "revision": 1, "updated_at": dt.datetime(2024, 3, 1), "load_id": "l", "schema_version": "1.0.0"}
        for d, b in bars.items()
    ]  # fmt: skip
    silver_bars = bronze.to_frame(spark, rows, load("silver", "daily_bars"))
    actions = spark.createDataFrame(
        [("X", "dividend", DAYS[10], None, 1000.0)],
        "symbol string, action string, ex_date date, split_factor double, dividend_amount double",
    )
    factors = gold.adjustment_factors(silver_bars, gold.events(silver_bars, actions))
    starts = spark.createDataFrame([("X", DAYS[0], None)], "symbol string, start_date date, prev_peak double")
    with pytest.raises(Exception, match="non-positive adjustment factor for X on " + DAYS[10].isoformat()):
        gold.daily_prices(silver_bars, starts, "l", "1.0.0", factors).collect()


FIVE_YEARS = sessions(dt.date(2019, 1, 2), dt.date(2024, 1, 2))


def test_a_split_after_five_years_rewrites_only_gold_rows_from_its_ex_date_and_the_mart_stays_continuous(
    pipeline, raw_lake, spark, pg_dsn
):
    """Five years of history with a dividend, then the next session brings a 3-for-1 split: gold writes that
    one row (the forward frame of every earlier row stands), the mart serves the whole history rescaled by
    the new current factor, equal to the textbook back-adjusted series."""
    days, ex_day = FIVE_YEARS, FIVE_YEARS[-1]
    bars = random_walk_bars(days, seed=31, events={120: {"dividend": 0.7}, len(days) - 1: {"split": 3.0}})
    history = {d: b for d, b in bars.items() if d < ex_day.isoformat()}
    raw_lake.daily_bars("LONG", history, "2024-01-02", run_id="history", adjusted=False)
    raw_lake.file("dividends", "LONG", "2024-01-02", "history", *dividends_body("LONG", history))
    pipeline.run("2024-01-02", run_id="history")
    before = {r["trade_date"]: r for r in pipeline.rows("gold", "fct_daily_prices")}
    assert len(before) == len(days) - 1 > 1250

    lake, tables = Lake.from_settings(pipeline.settings), Tables(spark, Lake.from_settings(pipeline.settings))
    with fresh_database(pg_dsn) as dsn:
        migrations.apply(dsn)
        serving.load(spark, lake, dsn, window=DateWindow(days[0], days[-2]), load_id="serve-history")
        serving.pending_changes(tables, MART_TABLES.values()).mark_served(MART_TABLES, "serve-history")

        new = {ex_day.isoformat(): bars[ex_day.isoformat()]}
        raw_lake.daily_bars("LONG", new, "2024-01-03", run_id="split", adjusted=False)
        raw_lake.file("splits", "LONG", "2024-01-03", "split", *splits_body("LONG", new))
        summary = pipeline.run("2024-01-03", run_id="split")
        after = pipeline.rows("gold", "fct_daily_prices", "trade_date")
        assert [r["trade_date"] for r in after if r["load_id"] == "split"] == [ex_day]
        assert [r for r in after if r["trade_date"] < ex_day] == [before[d] for d in days[:-1]]
        assert summary["gold"]["tables"]["gold.fct_daily_prices"]["rows_written"] == 1
        assert summary["gold"]["tables"]["gold.adjustment_factors"]["symbols"] == 1

        pending = serving.pending_changes(tables, MART_TABLES.values())
        results = serving.load(spark, lake, dsn, window=DateWindow(ex_day, ex_day), load_id="serve-split",
                               ranges=pending.ranges(DateWindow(ex_day, ex_day)))  # fmt: skip
        assert {r.table: r.status for r in results}["daily_prices"] == "succeeded"
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            mart = conn.execute("SELECT * FROM mart.daily_prices WHERE symbol = 'LONG' ORDER BY trade_date").fetchall()
    assert_close(mart, expected_daily(bars), DAILY_COLUMNS, "trade_date")
    day_before, on = mart[-2], mart[-1]
    assert abs(on["close"] / day_before["close"] - 1) > 0.5  # the raw close jumps
    for column in PRICE_LEVEL:
        assert abs(on[column] / day_before[column] - 1) < 0.05, column


def test_factors_recomputed_from_the_first_change_equal_a_full_refresh_after_late_and_revised_actions(
    pipeline, raw_lake, spark
):
    """A daily run recomputes a symbol's event factors from its first change on and takes the earlier
    ones as stored: after a late split, a revised dividend and a revised close before the last stored
    day (and new sessions bringing new events), a full refresh, which recomputes every factor from
    silver, finds nothing to rewrite: factors and daily rows equal to the bit, load_id included."""
    from spark_jobs import jobs

    events = {20: {"dividend": 0.5}, 60: {"split": 2.0}, 100: {"dividend": 0.9}, 150: {"split": 3.0},
              250: {"dividend": 0.4}}  # fmt: skip
    late = random_walk_bars(DAYS, seed=41, events=events)
    steady = random_walk_bars(DAYS, seed=42, events={30: {"dividend": 0.6}, 240: {"split": 2.0}})
    cut = DAYS[200].isoformat()
    known = {d: Bar(**{**b.__dict__, "split": 1.0}) if d == DAYS[60].isoformat() else b for d, b in late.items()}
    for symbol, bars, actions in (("LATE", late, known), ("STEADY", steady, steady)):
        history = {d: b for d, b in bars.items() if d <= cut}
        raw_lake.daily_bars(symbol, history, "2024-03-01", run_id="history", adjusted=False)
        actions = {d: b for d, b in actions.items() if d <= cut}
        raw_lake.file("splits", symbol, "2024-03-01", "history", *splits_body(symbol, actions))
        raw_lake.file("dividends", symbol, "2024-03-01", "history", *dividends_body(symbol, actions))
    pipeline.run("2024-03-01", run_id="history")

    revised_day = DAYS[149].isoformat()  # the close before the split of day 150
    b = late[revised_day]
    late[revised_day] = Bar(**{**b.__dict__, "close": round((b.high + b.low) / 2, 4)})
    raw_lake.daily_bars("LATE", late, "2024-03-04", run_id="daily", adjusted=False)
    raw_lake.file("splits", "LATE", "2024-03-04", "daily", *splits_body("LATE", late))
    raw_lake.file(
        "dividends", "LATE", "2024-03-04", "daily", *dividends_body("LATE", late, **{DAYS[100].isoformat(): 1.1})
    )
    land(raw_lake, "STEADY", steady, "2024-03-04", run_id="daily")
    summary = pipeline.run("2024-03-04", run_id="daily")
    assert summary["gold"]["tables"]["gold.fct_daily_prices"]["full_symbols"] == 0
    factors = pipeline.rows("gold", "adjustment_factors", "symbol", "ex_date")
    daily = pipeline.rows("gold", "fct_daily_prices", "symbol", "trade_date")
    assert [(r["symbol"], r["ex_date"]) for r in factors] == [("LATE", DAYS[i]) for i in sorted(events)] + [
        ("STEADY", DAYS[30]), ("STEADY", DAYS[240])
    ]  # fmt: skip
    late_rows = {r["ex_date"]: r for r in factors if r["symbol"] == "LATE"}
    assert late_rows[DAYS[150]]["previous_close"] == late[revised_day].close
    assert late_rows[DAYS[100]]["dividend_amount"] == 1.1

    jobs.run_silver_to_gold(spark, pipeline.settings, DAYS[0], DAYS[-1], "full", full_refresh=True)
    assert pipeline.rows("gold", "adjustment_factors", "symbol", "ex_date") == factors
    assert pipeline.rows("gold", "fct_daily_prices", "symbol", "trade_date") == daily
