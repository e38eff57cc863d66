"""Gold values against expectations computed independently with pandas over the same bars."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from lakehouse.trading_calendar import sessions
from spark_jobs import contracts, gold
from tests.spark_jobs.raw_files import Bar, quote_message, random_walk_bars

DAYS = sessions(dt.date(2023, 1, 3), dt.date(2024, 2, 29))  # 292 sessions: enough for ma_200 and 52 weeks
assert len(DAYS) > 260
SPLIT_AT, DIVIDEND_AT = 230, 150
REL = 1e-9


def expected_daily(bars: dict[str, Bar]) -> pd.DataFrame:
    """fct_daily_prices by the textbook definitions, with explicit loops where Spark uses windows."""
    df = pd.DataFrame(
        [{"trade_date": dt.date.fromisoformat(d), "open": b.open, "high": b.high, "low": b.low, "close": b.close,
          "volume": b.volume, "dividend": b.dividend, "split": b.split} for d, b in sorted(bars.items())]
    )  # fmt: skip
    n = len(df)
    adj = [0.0] * n
    factor = 1.0  # product of the event factors after the current day
    for i in range(n - 1, -1, -1):
        adj[i] = df.close[i] * factor
        if i > 0:
            event = 1.0 / df.split[i]
            if df.dividend[i] > 0:
                event *= 1.0 - df.dividend[i] / df.close[i - 1]
            factor *= event
    df["adj_close"] = adj
    ratio = df.adj_close / df.adj_close.shift(1)
    df["daily_return"] = ratio - 1
    df["log_return"] = np.log(ratio)
    for w in (20, 50, 200):
        df[f"ma_{w}"] = df.adj_close.rolling(w).mean()
    df["volatility_20d"] = df.log_return.rolling(20).std(ddof=1) * math.sqrt(252)
    factor = df.adj_close / df.close  # every price of a day is scaled alike
    df["high_52w"] = (df.high * factor).rolling(252, min_periods=1).max()
    df["low_52w"] = (df.low * factor).rolling(252, min_periods=1).min()
    df["drawdown"] = df.adj_close / df.adj_close.cummax() - 1
    return df


def expected_monthly(daily: pd.DataFrame) -> pd.DataFrame:
    d = daily.sort_values("trade_date").copy()
    d["month"] = [t.replace(day=1) for t in d.trade_date]
    g = d.groupby("month")
    out = pd.DataFrame({
        "open": g.open.first(), "high": g.high.max(), "low": g.low.min(), "close": g.close.last(),
        "adj_close": g.adj_close.last(), "volume": g.volume.sum(), "trading_days": g.size(),
    }).reset_index()  # fmt: skip
    out["monthly_return"] = out.adj_close / out.adj_close.shift(1) - 1
    return out


def served_rows(pipeline, table: str, *order: str) -> list[dict]:
    """Gold rows as the mart serves them: the forward-frame price levels times the symbol's current factor."""
    factors = gold.current_factors(pipeline.table("gold", "adjustment_factors"))
    df = gold.in_current_frame(pipeline.table("gold", table), table, factors)
    return [r.asDict() for r in df.orderBy(*order).collect()]


def assert_close(actual: list[dict], expected: pd.DataFrame, columns: list[str], key: str) -> None:
    assert len(actual) == len(expected), f"row count {len(actual)} != {len(expected)}"
    for row, (_, exp) in zip(actual, expected.iterrows(), strict=True):
        assert row[key] == exp[key]
        for c in columns:
            want, got = exp[c], row[c]
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert got is None, f"{row[key]} {c}: expected NULL, got {got}"
            else:
                assert got is not None, f"{row[key]} {c}: expected {want}, got NULL"
                assert got == pytest.approx(want, rel=REL, abs=1e-12), f"{row[key]} {c}"


DAILY_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume", "daily_return", "log_return", "ma_20",
                 "ma_50", "ma_200", "volatility_20d", "high_52w", "low_52w", "drawdown"]  # fmt: skip


def test_daily_prices_match_textbook_definitions_with_split_and_dividend(pipeline, raw_lake):
    """Returns, moving averages, volatility, 52-week extremes and drawdown on a split- and dividend-adjusted close."""
    bars = random_walk_bars(DAYS, seed=7, events={SPLIT_AT: {"split": 2.0}, DIVIDEND_AT: {"dividend": 0.8}})
    raw_lake.daily_bars("AAPL", bars, "2024-03-01")
    pipeline.run("2024-03-01")
    actual = served_rows(pipeline, "fct_daily_prices", "trade_date")
    expected = expected_daily(bars)
    assert_close(actual, expected, DAILY_COLUMNS, "trade_date")
    # Spot checks that the adjustment is what a split means: the day before the split is halved.
    before = actual[SPLIT_AT - 1]
    assert before["adj_close"] == pytest.approx(bars[DAYS[SPLIT_AT - 1].isoformat()].close / 2, rel=1e-12)
    assert actual[199]["ma_200"] is not None and actual[198]["ma_200"] is None
    assert {r["load_id"] for r in actual} == {"run-1"} and {r["schema_version"] for r in actual} == {
        contracts.load("gold", "fct_daily_prices").version
    }


def test_without_split_and_dividend_fields_adj_close_is_close(pipeline, raw_lake):
    """A TIME_SERIES_DAILY body (no adjustment fields) yields adj_close = close."""
    bars = random_walk_bars(DAYS[:30], seed=3)
    raw_lake.daily_bars("MSFT", bars, "2024-03-01", adjusted=False)
    pipeline.run("2024-03-01")
    actual = pipeline.rows("gold", "fct_daily_prices", "trade_date")
    assert [r["adj_close"] for r in actual] == [b.close for _, b in sorted(bars.items())]


def test_monthly_performance_takes_first_and_last_by_date(pipeline, raw_lake):
    bars = random_walk_bars(DAYS[:120], seed=11, events={70: {"dividend": 0.5}})
    raw_lake.daily_bars("KO", bars, "2024-03-01")
    pipeline.run("2024-03-01")
    actual = served_rows(pipeline, "fct_monthly_performance", "month")
    expected = expected_monthly(expected_daily(bars))
    assert_close(actual, expected, ["open", "high", "low", "close", "adj_close", "volume", "trading_days",
                                    "monthly_return"], "month")  # fmt: skip
    assert actual[0]["month"] == dt.date(2023, 1, 1) and actual[0]["monthly_return"] is None


def test_incremental_loads_equal_a_full_load(pipeline, raw_lake):
    """Day 2 brings the last 100 bars (compact output) including a split: gold equals the full computation,
    and recomputes only from the first new bar on (the split re-bases no stored row)."""
    split_sym = random_walk_bars(DAYS, seed=21, events={265: {"split": 4.0}, 60: {"dividend": 0.3}})
    plain = random_walk_bars(DAYS, seed=22)
    cut = 250
    for sym, bars in (("SPLT", split_sym), ("PLAIN", plain)):
        raw_lake.daily_bars(sym, dict(list(sorted(bars.items()))[:cut]), "2024-03-01")
    pipeline.run("2024-03-01", run_id="day-1")
    for sym, bars in (("SPLT", split_sym), ("PLAIN", plain)):
        raw_lake.daily_bars(sym, dict(list(sorted(bars.items()))[-100:]), "2024-03-04")
    summary = pipeline.run("2024-03-04", run_id="day-2")
    assert summary["silver"]["tables"]["silver.daily_bars"]["inserted"] == 2 * (len(DAYS) - cut)
    assert summary["gold"]["tables"]["gold.fct_daily_prices"]["full_symbols"] == 0
    # Both recomputed only the new bars: the forward frame of SPLT's earlier bars does not change.
    assert summary["gold"]["tables"]["gold.fct_daily_prices"]["rows_written"] == 2 * (len(DAYS) - cut)
    assert summary["gold"]["tables"]["gold.adjustment_factors"]["symbols"] == 1  # SPLT's current factor changed
    rows = served_rows(pipeline, "fct_daily_prices", "symbol", "trade_date")
    for sym, bars in (("PLAIN", plain), ("SPLT", split_sym)):
        assert_close([r for r in rows if r["symbol"] == sym], expected_daily(bars), DAILY_COLUMNS, "trade_date")
    monthly = served_rows(pipeline, "fct_monthly_performance", "symbol", "month")
    assert_close([r for r in monthly if r["symbol"] == "SPLT"], expected_monthly(expected_daily(split_sym)),
                 ["close", "adj_close", "monthly_return", "trading_days"], "month")  # fmt: skip


def test_a_revision_gold_does_not_read_rewrites_no_gold_row(pipeline, raw_lake):
    """After a split the provider revises the adjusted close of the whole compact series, a column gold
    does not read: day 2 recomputes only the new bar (not the 99 revised ones, a dividend day among them)
    and leaves every stored row as it was, load_id included. Before, gold recomputed and MERGEd from the
    first revised bar, which in Sail rewrites the whole table."""
    bars = random_walk_bars(DAYS, seed=31, events={len(DAYS) - 1: {"split": 2.0}, len(DAYS) - 30: {"dividend": 0.4}})
    days = sorted(bars)
    raw_lake.daily_bars("ADJ", {d: bars[d] for d in days[:-1]}, "2024-03-01")
    pipeline.run("2024-03-01", run_id="day-1")
    before = {r["trade_date"]: r for r in pipeline.rows("gold", "fct_daily_prices", "trade_date")}

    def back_adjusted(b):
        return {"1. open": f"{b.open:.4f}", "2. high": f"{b.high:.4f}", "3. low": f"{b.low:.4f}",
                "4. close": f"{b.close:.4f}", "5. adjusted close": f"{b.close / 2:.4f}", "6. volume": str(b.volume),
                "7. dividend amount": f"{b.dividend:.4f}", "8. split coefficient": f"{b.split:.1f}"}  # fmt: skip

    compact = {d: back_adjusted(bars[d]) for d in days[-100:-1]} | {days[-1]: bars[days[-1]]}
    raw_lake.daily_bars("ADJ", compact, "2024-03-04")
    summary = pipeline.run("2024-03-04", run_id="day-2")

    assert summary["silver"]["tables"]["silver.daily_bars"]["revised"] == 99
    assert summary["gold"]["tables"]["gold.fct_daily_prices"]["rows_written"] == 1
    after = pipeline.rows("gold", "fct_daily_prices", "trade_date")
    assert len(after) == len(before) + 1
    assert [r["trade_date"] for r in after[:-1] if r != before[r["trade_date"]]] == []  # the rows that changed
    assert after[-1]["trade_date"] == DAYS[-1] and after[-1]["load_id"] == "day-2"
    assert_close(served_rows(pipeline, "fct_daily_prices", "trade_date"), expected_daily(bars), DAILY_COLUMNS,
                 "trade_date")  # fmt: skip


def test_late_revision_updates_silver_and_the_gold_rows_after_it(pipeline, raw_lake):
    bars = random_walk_bars(DAYS, seed=5)
    raw_lake.daily_bars("REV", bars, "2024-03-01")
    pipeline.run("2024-03-01", run_id="first")
    before = {r["trade_date"]: r for r in pipeline.rows("gold", "fct_daily_prices", "trade_date")}

    revised_day = DAYS[240].isoformat()
    old = bars[revised_day]
    revised = dict(bars)
    revised[revised_day] = Bar(old.open, round(old.high * 1.2, 4), old.low, round(old.high * 1.15, 4), old.volume)
    raw_lake.daily_bars("REV", {revised_day: revised[revised_day]}, "2024-03-04", run_id="fix")
    summary = pipeline.run("2024-03-04", run_id="second")

    assert summary["silver"]["tables"]["silver.daily_bars"]["revised"] == 1
    silver_row = next(r for r in pipeline.rows("silver", "daily_bars") if r["trade_date"].isoformat() == revised_day)
    assert silver_row["revision"] == 2 and silver_row["close"] == revised[revised_day].close
    assert silver_row["source_file"].endswith("REV/fix.json") and silver_row["load_id"] == "second"

    after = pipeline.rows("gold", "fct_daily_prices", "trade_date")
    assert_close(after, expected_daily(revised), DAILY_COLUMNS, "trade_date")
    unchanged = [r for r in after if r["trade_date"] < DAYS[240]]
    assert [r["trade_date"] for r in unchanged if r != before[r["trade_date"]]] == []  # untouched, load_id included
    assert {r["load_id"] for r in after if r["trade_date"] >= DAYS[240]} == {"second"}


def test_dim_security_keeps_history_of_attribute_changes(pipeline, raw_lake):
    raw_lake.overview("XOM", "2024-03-01", Sector="ENERGY", Name="Exxon")
    raw_lake.overview("XOM", "2024-03-04", Sector="ENERGY", Name="Exxon")
    raw_lake.overview("XOM", "2024-03-05", Sector="MATERIALS", Name="Exxon")
    raw_lake.overview("XOM", "2024-03-07", Sector="MATERIALS", Name="ExxonMobil")
    raw_lake.overview("IBM", "2024-03-04", Sector="TECHNOLOGY", Name="IBM")
    pipeline.run("2024-03-01", "2024-03-05", run_id="a")
    pipeline.run("2024-03-06", "2024-03-07", run_id="b")
    rows = pipeline.rows("gold", "dim_security", "symbol", "valid_from")
    got = [(r["symbol"], r["name"], r["sector"], r["valid_from"], r["valid_to"], r["is_current"]) for r in rows]
    d = dt.date
    assert got == [
        ("IBM", "IBM", "TECHNOLOGY", d(2024, 3, 4), None, True),
        ("XOM", "Exxon", "ENERGY", d(2024, 3, 1), d(2024, 3, 5), False),
        ("XOM", "Exxon", "MATERIALS", d(2024, 3, 5), d(2024, 3, 7), False),
        ("XOM", "ExxonMobil", "MATERIALS", d(2024, 3, 7), None, True),
    ]


def test_dim_date_follows_the_xnys_calendar(pipeline, raw_lake):
    days = sessions(dt.date(2024, 2, 26), dt.date(2024, 3, 6))
    raw_lake.daily_bars("AAPL", random_walk_bars(days, seed=1), "2024-03-07")
    pipeline.run("2024-03-07")
    rows = pipeline.rows("gold", "dim_date", "trade_date")
    assert [r["trade_date"] for r in rows] == days
    first, feb29, mar1 = rows[0], rows[3], rows[4]
    assert first["previous_trade_date"] == dt.date(2024, 2, 23)  # the Friday before, outside the data
    assert (feb29["is_month_end"], mar1["is_month_end"], rows[-1]["is_month_end"]) == (True, False, False)
    assert (mar1["year"], mar1["quarter"], mar1["month"], mar1["day_of_month"], mar1["day_of_week"]) == (
        2024,
        1,
        3,
        1,
        5,
    )


def test_latest_quotes_keep_the_newest_quote_per_symbol(pipeline, raw_lake):
    at = dt.datetime(2024, 3, 1, 15, 0, tzinfo=dt.UTC)
    raw_lake.capture([quote_message("AAPL", 180.0, "2024-03-01T15:00:00Z", "2024-03-01"),
                      quote_message("MSFT", 400.0, "2024-03-01T15:00:00Z", "2024-03-01")], at)  # fmt: skip
    raw_lake.capture([quote_message("AAPL", 181.5, "2024-03-01T15:05:00Z", "2024-03-01")],
                     at + dt.timedelta(minutes=5), first_sequence=2)  # fmt: skip
    pipeline.run("2024-03-01")
    rows = pipeline.rows("gold", "latest_quotes", "symbol")
    assert [(r["symbol"], r["price"], r["quote_time"]) for r in rows] == [
        ("AAPL", 181.5, dt.datetime(2024, 3, 1, 15, 5)),
        ("MSFT", 400.0, dt.datetime(2024, 3, 1, 15, 0)),
    ]
    assert rows[0]["change_percent"] == 0.5 and rows[0]["previous_close"] == 181.0


def test_each_run_records_the_ranges_it_recomputed_per_table_and_symbol(pipeline, raw_lake):
    bars = random_walk_bars(DAYS, seed=5)
    raw_lake.daily_bars("REV", bars, "2024-03-01")
    raw_lake.daily_bars("SPL", random_walk_bars(DAYS, seed=6), "2024-03-01")
    pipeline.run("2024-03-01", run_id="first")
    revised_day = DAYS[240]
    old = bars[revised_day.isoformat()]
    raw_lake.daily_bars("REV", {revised_day.isoformat(): Bar(old.open, old.high, old.low, old.close, old.volume + 7)},
                        "2024-03-04", run_id="fix")  # fmt: skip
    pipeline.run("2024-03-04", run_id="second")

    changes = {(r["gold_run_id"], r["table_name"], r["symbol"]): (r["range_start"], r["range_end"], r["served_by"])
               for r in pipeline.rows("ops", "gold_changes")}  # fmt: skip
    whole, months = (DAYS[0], DAYS[-1], None), (DAYS[0].replace(day=1), DAYS[-1].replace(day=1), None)
    assert changes == {
        ("first", "fct_daily_prices", "REV"): whole,
        ("first", "fct_daily_prices", "SPL"): whole,
        ("first", "fct_monthly_performance", "REV"): months,
        ("first", "fct_monthly_performance", "SPL"): months,
        ("second", "fct_daily_prices", "REV"): (revised_day, DAYS[-1], None),
        ("second", "fct_monthly_performance", "REV"): (revised_day.replace(day=1), DAYS[-1].replace(day=1), None),
    }
