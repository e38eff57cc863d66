"""A free key end to end: no adjusted series, so a split and a dividend reach the mart only through
the SPLITS and DIVIDENDS datasets the Function app lands from the synthetic API.

The expected values are computed here from the landed RAW bytes alone (the unadjusted bars and the
two event lists, CRSP convention: a dividend d on a day whose previous close is c scales earlier
prices by 1 - d / c, a split of factor s by 1 / s), never from the pipeline's tables.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import statistics
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from lakehouse import plan_checks, trading_calendar
from lakehouse.settings import load_settings
from local import function_host
from local.market_api import MarketApiConfig, MarketModel, running
from spark_jobs import jobs, serving
from tests.databases import migrated_database

KEY = "CORPORATE-ACTIONS-E2E-KEY"
SEED = 5
PRICE_LEVEL = ("adj_close", "ma_20", "ma_50", "high_52w", "low_52w")


def symbol_with_a_recent_split_and_dividend(model: MarketModel, first: dt.date, last: dt.date) -> str:
    """The first ticker (CAAA, CAAB, ...) whose split and dividend both fall well inside [first, last]:
    a return spans each of them, and the 20-session mean straddles the split."""
    sessions = trading_calendar.sessions(first, last)
    inner = {d.isoformat() for d in sessions[25:-2]}
    for name in ("C" + "".join(t) for t in itertools.product("ABCDEFGHIJKLMNOPQRSTUVWXYZ", repeat=3)):
        splits = {e["effective_date"] for e in model.splits(name, last)}
        dividends = {e["ex_dividend_date"] for e in model.dividends(name, last)}
        if splits & inner and dividends & inner and model.profile(name).listed < first:
            return name
    raise AssertionError("no ticker with a split and a dividend in the window")


@pytest.fixture
def free_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoints):
    """One symbol's latest 100 sessions, overview, splits and dividends landed on a free key."""
    now = dt.datetime.now(dt.UTC)
    first, last = plan_checks.compact_first_session(now), trading_calendar.latest_session(now)
    symbol = symbol_with_a_recent_split_and_dividend(MarketModel(SEED), first, last)
    with running(MarketApiConfig(seed=SEED, api_key=KEY, plan="free")) as api, \
            migrated_database(endpoints.pg_dsn, "ca") as dsn:  # fmt: skip
        env = {
            "LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_PROVIDER": "synthetic", "ALPHAVANTAGE_PLAN": "free",
            "ALPHAVANTAGE_BASE_URL": api.url, "ALPHAVANTAGE_API_KEY": KEY, "LAKEHOUSE_SYMBOLS": symbol,
            "LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote, "LAKEHOUSE_PG_DSN": dsn,
            "LAKEHOUSE_POLL_QUOTES_SCHEDULE": "0 0 2 * * 1-5", "LAKEHOUSE_POLL_QUOTES_MARKET_HOURS_ONLY": "true",
        }  # fmt: skip
        for name in ("LAKEHOUSE_LAKE_ROOT", "LAKEHOUSE_INGEST_CALLS_PER_MINUTE", "LAKEHOUSE_INGEST_ADJUSTED"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        window = {"start_date": first.isoformat(), "end_date": last.isoformat(), "run_id": "ca-1"}
        for dataset in plan_checks.DAILY_DATASETS:
            response = function_host.invoke_http("ingest", method="POST", body={"dataset": dataset, **window})
            assert response.status_code == 200, response.get_body()
            assert response.json()["failures"] == []
        assert {r.function for r in api.requests} == {"TIME_SERIES_DAILY", "OVERVIEW", "SPLITS", "DIVIDENDS"}
        assert {r.fault for r in api.requests} == {None}  # nothing premium was asked of the free key
        yield load_settings(), symbol, first, last, dsn


def landed(settings, dataset: str, symbol: str) -> dict:
    (path,) = (settings.home_dir / "lake" / "raw" / "synthetic" / dataset).glob(f"*/{symbol}/*.json")
    return json.loads(path.read_bytes())


def independent_adjustment(settings, symbol: str) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Days and, per day, the raw close and the adjusted close, high and low, from RAW alone."""
    bars = landed(settings, "daily_bars", symbol)["Time Series (Daily)"]
    splits = {e["effective_date"]: float(e["split_factor"]) for e in landed(settings, "splits", symbol)["data"]}
    dividends = {e["ex_dividend_date"]: float(e["amount"]) for e in landed(settings, "dividends", symbol)["data"]}
    days = sorted(bars)
    factor, out = 1.0, {}
    for i in range(len(days) - 1, -1, -1):
        bar = bars[days[i]]
        close, high, low = (float(bar[k]) for k in ("4. close", "2. high", "3. low"))
        out[days[i]] = {"close": close, "adj_close": close * factor, "adj_high": high * factor, "adj_low": low * factor}
        if i > 0:
            previous_close = float(bars[days[i - 1]]["4. close"])
            factor *= (1 - dividends.get(days[i], 0.0) / previous_close) / splits.get(days[i], 1.0)
    return days, out


def test_a_free_key_gets_continuous_adjusted_prices_across_a_split_and_a_dividend(spark, free_lake):
    settings, symbol, first, last, dsn = free_lake
    today = dt.datetime.now(dt.UTC).date().isoformat()
    jobs.run_raw_to_bronze(spark, settings, today, today, "etl-ca")
    jobs.run_bronze_to_silver(spark, settings, today, today, "etl-ca")
    jobs.run_silver_to_gold(spark, settings, first.isoformat(), last.isoformat(), "etl-ca")
    serving.run_gold_to_postgres(spark, settings, start_date=first, end_date=last, run_id="etl-ca")
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT * FROM mart.daily_prices WHERE symbol = %s ORDER BY trade_date", (symbol,)
        ).fetchall()

    days, expected = independent_adjustment(settings, symbol)
    split_days = {e["effective_date"]: float(e["split_factor"]) for e in landed(settings, "splits", symbol)["data"]}
    assert [r["trade_date"].isoformat() for r in rows] == days
    inside = [d for d in days[1:] if d in split_days]
    assert inside, "the split is inside the served window"
    for day in inside:  # the raw close jumps by the split factor: what the mart must not show
        i = days.index(day)
        raw_move = expected[day]["close"] / expected[days[i - 1]]["close"]
        assert abs(raw_move * split_days[day] - 1) < 0.25 and abs(raw_move - 1) > 0.3

    adj = [expected[d]["adj_close"] for d in days]
    for i, row in enumerate(rows):
        want = {
            "close": expected[days[i]]["close"],
            "adj_close": adj[i],
            "daily_return": adj[i] / adj[i - 1] - 1 if i else None,
            "ma_20": statistics.fmean(adj[i - 19 : i + 1]) if i >= 19 else None,
            "ma_50": statistics.fmean(adj[i - 49 : i + 1]) if i >= 49 else None,
            "high_52w": max(expected[d]["adj_high"] for d in days[max(0, i - 251) : i + 1]),
            "low_52w": min(expected[d]["adj_low"] for d in days[max(0, i - 251) : i + 1]),
            "drawdown": adj[i] / max(adj[: i + 1]) - 1,
        }
        for column, value in want.items():
            got = row[column]
            if value is None:
                assert got is None, (days[i], column)
            else:
                assert math.isclose(float(got), value, rel_tol=1e-9, abs_tol=1e-12), (days[i], column, got, value)
    for day in inside:  # and so every price-level column is continuous across the split day
        i = days.index(day)
        for column in PRICE_LEVEL:
            before, after = rows[i - 1][column], rows[i][column]
            if before is not None and after is not None:
                assert abs(float(after) / float(before) - 1) < 0.2, (day, column, before, after)
