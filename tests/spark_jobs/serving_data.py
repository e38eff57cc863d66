"""Small gold Delta tables with exactly the cross-team gold columns, and a fresh database per test.

The serving tests build their own gold tables (the transforms are tested elsewhere) so each test
states its input rows. Every test gets its own PostgreSQL database on the run's one server, so
the fixed schema names (`mart`, `ops`) never collide between tests.
"""

from __future__ import annotations

import datetime as dt
import math

from lakehouse.lake import Lake
from lakehouse.trading_calendar import sessions
from tests.databases import fresh_database  # noqa: F401 - re-exported for the serving tests

# The gold columns of the cross-team contract, as Spark DDL.
GOLD_DDL = {
    "fct_daily_prices": (
        "symbol string, trade_date date, open double, high double, low double, close double, "
        "adj_close double, volume bigint, daily_return double, log_return double, ma_20 double, "
        "ma_50 double, ma_200 double, volatility_20d double, high_52w double, low_52w double, "
        "drawdown double, load_id string, schema_version string"
    ),
    "fct_monthly_performance": (
        "symbol string, month date, open double, high double, low double, close double, "
        "adj_close double, volume bigint, monthly_return double, trading_days int, load_id string, "
        "schema_version string"
    ),
    "dim_security": (
        "symbol string, name string, exchange string, currency string, country string, sector string, "
        "industry string, valid_from date, valid_to date, is_current boolean, load_id string, "
        "schema_version string"
    ),
    "latest_quotes": (
        "symbol string, price double, open double, high double, low double, volume bigint, "
        "previous_close double, change double, change_percent double, latest_trading_day date, "
        "quote_time timestamp, load_id string, schema_version string"
    ),
}


def daily_rows(symbols: list[str], start: str, end: str, load_id: str = "gold-1", bump: float = 0.0) -> list[tuple]:
    """Deterministic daily price rows with awkward floats (no round numbers) and leading NULLs."""
    rows = []
    for s_index, symbol in enumerate(symbols):
        prev = None
        for d_index, day in enumerate(sessions(dt.date.fromisoformat(start), dt.date.fromisoformat(end))):
            close = 100.0 + s_index * 10 + math.sin(d_index) * 3.3333333333333335 + bump
            adj = close * 0.9871234567
            ret = None if prev is None else adj / prev - 1
            log_ret = None if prev is None else math.log(adj / prev)
            rows.append((symbol, day, close - 0.1, close + 1 / 3, close - 2 / 3, close, adj,
                         1_000_000 + 7919 * d_index + s_index, ret, log_ret,
                         adj * 1.01, None if d_index < 3 else adj * 0.99, None, 0.0123456789 * (d_index % 5),
                         adj + 5, adj - 5, -0.1 * (d_index % 3), load_id, "1.0.0"))  # fmt: skip
            prev = adj
    return rows


def monthly_rows(symbols: list[str], months: list[str], load_id: str = "gold-1", bump: float = 0.0) -> list[tuple]:
    rows = []
    for s_index, symbol in enumerate(symbols):
        for m_index, month in enumerate(months):
            close = 50.5 + s_index + m_index / 7 + bump
            ret = None if m_index == 0 else 1 / 7
            day = dt.date.fromisoformat(month)
            rows.append((symbol, day, close - 1, close + 2, close - 3, close, close * 0.99,
                         20_000_000 + m_index, ret, 21 - m_index, load_id, "1.0.0"))  # fmt: skip
    return rows


def security_rows(symbols: list[str], load_id: str = "gold-1", sector: str = "Technology") -> list[tuple]:
    rows = []
    for symbol in symbols:
        rows.append((symbol, f"{symbol} Inc. (old name)", "NASDAQ", "USD", "USA", sector, "Software",
                     dt.date(2020, 1, 1), dt.date(2023, 12, 31), False, load_id, "1.0.0"))  # fmt: skip
        rows.append((symbol, f'{symbol} Inc., "the" company', "NASDAQ", "USD", "USA", sector, None,
                     dt.date(2024, 1, 1), None, True, load_id, "1.0.0"))  # fmt: skip
    return rows


def quote_rows(symbols: list[str], load_id: str = "gold-1", bump: float = 0.0) -> list[tuple]:
    at = dt.datetime(2024, 3, 1, 15, 30, 12, 345678, tzinfo=dt.UTC)
    return [
        (
            symbol,
            101.25 + i + bump,
            100.0,
            102.0,
            99.5,
            123456 + i,
            100.5,
            0.75 + i + bump,
            0.7462686567164179,
            dt.date(2024, 3, 1),
            at,
            load_id,
            "1.0.0",
        )
        for i, symbol in enumerate(symbols)
    ]


def write_gold(spark, lake: Lake, table: str, rows: list[tuple], ddl: str | None = None) -> None:
    """Overwrite one gold Delta table with `rows` (schema: the contract's DDL unless `ddl` is given)."""
    df = spark.createDataFrame(rows, ddl or GOLD_DDL[table])
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(lake.table("gold", table))


def write_all_gold(spark, lake: Lake, symbols=("AAPL", "MSFT"), load_id: str = "gold-1", bump: float = 0.0) -> None:
    """A consistent gold layer: Jan-Feb 2024 daily prices, their months, securities, quotes."""
    symbols = list(symbols)
    write_gold(spark, lake, "fct_daily_prices", daily_rows(symbols, "2024-01-02", "2024-02-29", load_id, bump))
    write_gold(spark, lake, "fct_monthly_performance",
               monthly_rows(symbols, ["2024-01-01", "2024-02-01"], load_id, bump))  # fmt: skip
    write_gold(spark, lake, "dim_security", security_rows(symbols, load_id))
    write_gold(spark, lake, "latest_quotes", quote_rows(symbols, load_id, bump))
