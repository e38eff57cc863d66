"""The ingestion benchmark asks for the data set it says: names, windows and output sizes.

A whole run at tiny sizes is `python -m bench.harness ingest --quick` (each case raises when a symbol
fails or, for the reuse case, when anything is downloaded again)."""

from __future__ import annotations

import datetime as dt

from bench import bench_ingest
from lakehouse import trading_calendar
from lakehouse.inputs import is_symbol


def test_bench_symbols_are_distinct_valid_tickers():
    symbols = bench_ingest.bench_symbols(700)
    assert len(set(symbols)) == 700
    assert all(is_symbol(s) for s in symbols)
    assert bench_ingest.bench_symbols(3) == symbols[:3]  # the same names for every run


def test_the_plan_asks_full_histories_for_the_backfill_and_compact_for_the_daily_run():
    plan = bench_ingest.make_plan({"years": 5, "reuse_years": 1})
    as_of = trading_calendar.latest_session()
    listed = dt.date.fromisoformat(plan["listed_from"])
    assert plan["as_of"] == as_of.isoformat() and plan["daily_window"] == [as_of.isoformat()] * 2
    assert listed == trading_calendar.sessions(as_of.replace(year=as_of.year - 5), as_of)[0]
    assert plan["full_window"] == [listed.isoformat(), as_of.isoformat()]
    next_start, next_end = (dt.date.fromisoformat(d) for d in plan["next_window"])
    assert listed < next_start < next_end < as_of  # inside the histories landed by the first chunk
