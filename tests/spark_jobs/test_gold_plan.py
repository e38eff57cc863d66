"""The recompute plan read with a date bound (a daily run's) is the plan of the whole history."""

from __future__ import annotations

import datetime as dt

from lakehouse.trading_calendar import sessions
from spark_jobs import gold
from tests.spark_jobs.raw_files import random_walk_bars
from tests.spark_jobs.test_gold import DAILY_COLUMNS, assert_close, expected_daily, served_rows


def day(n: int) -> dt.date:
    return dt.date(2024, 1, 1) + dt.timedelta(days=n)


# (symbol, first and last silver bar, last stored gold row or None, first change); each symbol's
# peak adj_close sits on a day chosen so some fall before the bound (day 3) and some after it.
SYMBOLS = {
    "OLDPEAK": (1, 10, 8, 9),  # a new bar; its highest stored close is before the bound
    "DEEP": (1, 10, 10, 3),  # a revision as far back as the bound: every earlier row is before it
    "AFTER": (1, 10, 10, 12),  # an action after its last bar: no row to recompute
    "NEWSYM": (6, 10, None, 6),  # listed later, not yet in gold: recomputed in full
}
PEAK_DAY = {"OLDPEAK": 2, "DEEP": 1, "AFTER": 7}


def test_a_bounded_plan_equals_the_plan_of_the_whole_history(spark):
    bars, stored, changed = [], [], []
    for sym, (first, last, stored_last, change) in SYMBOLS.items():
        bars += [(sym, day(d)) for d in range(first, last + 1)]
        if stored_last is not None:
            stored += [(sym, day(d), 200.0 if d == PEAK_DAY[sym] else 100.0 + d) for d in range(first, stored_last + 1)]
        changed.append((sym, day(change)))
    silver = spark.createDataFrame(bars, "symbol string, trade_date date")
    gold_rows = spark.createDataFrame(stored, "symbol string, trade_date date, adj_close double")
    changes = spark.createDataFrame(changed, "symbol string, trade_date date")
    events = spark.createDataFrame(
        [("OLDPEAK", day(4), 2.0, 0.0), ("AFTER", day(12), 1.0, 0.5)],
        "symbol string, ex_date date, split_factor double, dividend_amount double",
    )
    since = min(c for _, c in changed)

    def plan(bound):
        rows = gold.recompute_plan(changes, silver, gold_rows, events, bound).collect()
        return {r.symbol: r.asDict() for r in rows}

    whole, bounded = plan(None), plan(since)
    assert bounded == whole
    assert whole["OLDPEAK"] == {
        "symbol": "OLDPEAK", "start_date": day(9), "full": False, "first_row": day(9), "last_row": day(10),
        "rows": 2, "lookback_from": day(1), "prev_peak": 200.0, "stored_last": day(8), "last_event": day(4),
    }  # fmt: skip
    assert (whole["DEEP"]["start_date"], whole["DEEP"]["rows"], whole["DEEP"]["prev_peak"]) == (day(3), 8, 200.0)
    after = whole["AFTER"]
    assert (after["rows"], after["first_row"], after["last_row"], after["prev_peak"]) == (0, None, None, 200.0)
    assert after["last_event"] == day(12)
    newsym = whole["NEWSYM"]
    assert (newsym["full"], newsym["start_date"]) == (True, day(6))
    assert (newsym["prev_peak"], newsym["stored_last"]) == (None, None)


def test_a_symbol_back_from_a_long_halt_gets_the_metrics_of_a_full_load(pipeline, raw_lake):
    """The lookback is 252 bars, not a span of calendar days: a symbol that traded again after a
    halt of more than a year gets on its new bar the moving averages and 52-week extremes of its
    last 252 bars, as a full load computes them."""
    before_halt = sessions(dt.date(2022, 1, 3), dt.date(2022, 12, 30))
    after_halt = sessions(dt.date(2024, 2, 1), dt.date(2024, 2, 2))
    bars = random_walk_bars(before_halt + after_halt, seed=41)
    days = sorted(bars)
    raw_lake.daily_bars("HALT", {d: bars[d] for d in days[:-1]}, "2024-03-01")
    pipeline.run("2024-03-01", run_id="day-1")
    raw_lake.daily_bars("HALT", {days[-1]: bars[days[-1]]}, "2024-03-04")
    summary = pipeline.run("2024-03-04", run_id="day-2")

    assert summary["gold"]["tables"]["gold.fct_daily_prices"]["rows_written"] == 1
    rows = served_rows(pipeline, "fct_daily_prices", "trade_date")
    assert rows[-1]["ma_200"] is not None
    assert_close(rows, expected_daily(bars), DAILY_COLUMNS, "trade_date")
