"""SILVER -> GOLD analytics. Pure DataFrame functions, plus the plan of what to recompute.

Adjusted close is back-adjusted from the split and dividend data when the bars carry it: an
event on day e (split coefficient s, dividend d) scales every earlier price by
``f_e = (1 / s) * (1 - d / close_{e-1})``, so ``adj_close_t = close_t * prod(f_e for e > t)``.
Without split/dividend fields every factor is 1 and ``adj_close = close``.

Incremental recompute (see :func:`recompute_starts`): for each symbol with changed silver bars,
gold is recomputed from the earliest changed date to the symbol's last date, reading the 252
bars before it so the rolling metrics (52 weeks is the longest) are complete; the running peak
of the drawdown continues from the stored rows before that date. A changed bar at or before an
adjustment event changes the adjusted history before the event, so then the whole symbol is
recomputed.
"""

from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

LOOKBACK_BARS = 252
# Calendar days that surely hold LOOKBACK_BARS sessions (252 sessions ~ 366 days) with slack.
LOOKBACK_DAYS = 400
MOVING_AVERAGES = (20, 50, 200)
VOLATILITY_WINDOW = 20
EXTREMES_WINDOW = 252
ANNUALIZATION = math.sqrt(252.0)
DAILY_VALUES = (
    "open", "high", "low", "close", "adj_close", "volume", "daily_return", "log_return", "ma_20", "ma_50",
    "ma_200", "volatility_20d", "high_52w", "low_52w", "drawdown",
)  # fmt: skip
MONTHLY_VALUES = ("open", "high", "low", "close", "adj_close", "volume", "monthly_return", "trading_days")
SECURITY_ATTRIBUTES = ("name", "exchange", "currency", "country", "sector", "industry")
QUOTE_VALUES = ("price", "open", "high", "low", "volume", "previous_close", "change", "change_percent",
                "latest_trading_day", "quote_time")  # fmt: skip


def _event() -> Column:
    return (F.coalesce(F.col("split_coefficient"), F.lit(1.0)) != 1.0) | (
        F.coalesce(F.col("dividend_amount"), F.lit(0.0)) != 0.0
    )


def recompute_starts(changed: DataFrame, silver: DataFrame) -> DataFrame:
    """Per symbol with changed bars: the first trade date whose gold row must be recomputed.

    Args:
        changed: (symbol, trade_date) of silver bars inserted or revised since the last gold run.
        silver: silver.daily_bars.

    Returns:
        (symbol, start_date, full) where full means the whole symbol history is recomputed.
    """
    first_change = changed.groupBy("symbol").agg(F.min("trade_date").alias("first_change"))
    bars = silver.join(first_change, "symbol", "inner")
    per_symbol = bars.groupBy("symbol").agg(
        F.min("trade_date").alias("first_date"),
        F.min("first_change").alias("first_change"),
        F.max(F.when((F.col("trade_date") >= F.col("first_change")) & _event(), 1).otherwise(0)).alias("_events"),
    )
    full = F.col("_events") == 1
    return per_symbol.select(
        "symbol",
        F.when(full, F.col("first_date")).otherwise(F.col("first_change")).alias("start_date"),
        full.alias("full"),
    )


def span_for(silver: DataFrame, starts: DataFrame) -> DataFrame:
    """Silver bars of each symbol from LOOKBACK_BARS bars before its start date to its last bar."""
    near = silver.join(F.broadcast(starts.select("symbol", "start_date")), "symbol", "inner").filter(
        F.col("trade_date") >= F.date_sub(F.col("start_date"), LOOKBACK_DAYS)
    )
    by_date = Window.partitionBy("symbol").orderBy("trade_date")
    numbered = near.withColumn("_rn", F.row_number().over(by_date))
    first_in = Window.partitionBy("symbol")
    start_rn = F.min(F.when(F.col("trade_date") >= F.col("start_date"), F.col("_rn"))).over(first_in)
    return (
        numbered.withColumn("_start_rn", start_rn)
        .filter(F.col("_rn") >= F.col("_start_rn") - LOOKBACK_BARS)
        .drop("_rn", "_start_rn", "start_date")
    )


def adjusted(bars: DataFrame) -> DataFrame:
    """`bars` plus ``adj_close`` (back-adjusted for splits and dividends within the bars given)."""
    by_date = Window.partitionBy("symbol").orderBy("trade_date")
    later = by_date.rowsBetween(1, Window.unboundedFollowing)
    prev_close = F.lag("close").over(by_date)
    dividend = F.coalesce(F.col("dividend_amount"), F.lit(0.0))
    dividend_factor = F.when((dividend > 0) & prev_close.isNotNull(), 1.0 - dividend / prev_close).otherwise(1.0)
    factor = dividend_factor / F.coalesce(F.col("split_coefficient"), F.lit(1.0))
    with_factor = bars.withColumn("_log_factor", F.when(factor > 0, F.log(factor)).otherwise(0.0))
    return with_factor.withColumn(
        "adj_close", F.col("close") * F.exp(F.coalesce(F.sum("_log_factor").over(later), F.lit(0.0)))
    ).drop("_log_factor")


def daily_prices(span: DataFrame, starts: DataFrame, load_id: str, version: str) -> DataFrame:
    """fct_daily_prices rows from each symbol's start date on.

    Args:
        span: silver bars (see :func:`span_for`).
        starts: (symbol, start_date, prev_peak) where prev_peak is the highest stored adj_close
            before start_date (NULL when recomputing from the first bar).
        load_id: the run producing the rows.
        version: contract version stamped on the rows.
    """
    by_date = Window.partitionBy("symbol").orderBy("trade_date")

    def last(n: int):
        return by_date.rowsBetween(-(n - 1), 0)

    df = adjusted(span)
    ratio = F.col("adj_close") / F.lag("adj_close").over(by_date)
    df = df.withColumn("daily_return", ratio - 1.0).withColumn("log_return", F.log(ratio))
    for n in MOVING_AVERAGES:
        df = df.withColumn(f"ma_{n}", F.when(F.count("adj_close").over(last(n)) == n, F.avg("adj_close").over(last(n))))
    vol = last(VOLATILITY_WINDOW)
    df = df.withColumn(
        "volatility_20d",
        F.when(
            F.count("log_return").over(vol) == VOLATILITY_WINDOW,
            F.stddev_samp("log_return").over(vol) * F.lit(ANNUALIZATION),
        ),
    )
    df = df.withColumn("high_52w", F.max("high").over(last(EXTREMES_WINDOW)))
    df = df.withColumn("low_52w", F.min("low").over(last(EXTREMES_WINDOW)))
    df = df.join(F.broadcast(starts.select("symbol", "start_date", "prev_peak")), "symbol", "inner")
    running = F.max("adj_close").over(by_date.rowsBetween(Window.unboundedPreceding, 0))
    peak = F.greatest(running, F.coalesce(F.col("prev_peak"), running))
    df = df.withColumn("drawdown", F.col("adj_close") / peak - 1.0)
    return df.filter(F.col("trade_date") >= F.col("start_date")).select(
        "symbol", "trade_date", *DAILY_VALUES, F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version")
    )


def monthly_performance(daily: DataFrame, starts: DataFrame, load_id: str, version: str) -> DataFrame:
    """fct_monthly_performance rows for each symbol from the month of its start date on.

    Args:
        daily: fct_daily_prices rows from the first day of the month before each start month.
        starts: (symbol, start_date).
        load_id: the run producing the rows.
        version: contract version stamped on the rows.

    First and last values of a month are taken by date (``min_by`` / ``max_by``), never ``first()``.
    """
    monthly = (
        daily.withColumn("month", F.trunc("trade_date", "month"))
        .groupBy("symbol", "month")
        .agg(
            F.min_by("open", "trade_date").alias("open"),
            F.max("high").alias("high"),
            F.min("low").alias("low"),
            F.max_by("close", "trade_date").alias("close"),
            F.max_by("adj_close", "trade_date").alias("adj_close"),
            F.sum("volume").cast("bigint").alias("volume"),
            F.count(F.lit(1)).cast("int").alias("trading_days"),
        )
    )
    by_month = Window.partitionBy("symbol").orderBy("month")
    monthly = monthly.withColumn("monthly_return", F.col("adj_close") / F.lag("adj_close").over(by_month) - 1.0)
    return (
        monthly.join(F.broadcast(starts.select("symbol", "start_date")), "symbol", "inner")
        .filter(F.col("month") >= F.trunc("start_date", "month"))
        .select(
            "symbol", "month", *MONTHLY_VALUES, F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version")
        )
    )


def dim_security(history: DataFrame, load_id: str, version: str) -> DataFrame:
    """SCD type 2 from dated snapshots: a new version whenever an attribute changes.

    ``valid_to`` is the ``valid_from`` of the next version (exclusive end); NULL for the current one.
    """
    by_date = Window.partitionBy("symbol").orderBy("as_of_date")
    # Window results are materialized as columns before filtering (Sail cannot filter on them directly).
    lagged = history.withColumns({f"_prev_{c}": F.lag(c).over(by_date) for c in SECURITY_ATTRIBUTES})
    lagged = lagged.withColumn("_rn", F.row_number().over(by_date))
    same = F.lit(True)
    for c in SECURITY_ATTRIBUTES:
        same = same & F.col(c).eqNullSafe(F.col(f"_prev_{c}"))
    starts = lagged.filter((F.col("_rn") == 1) | ~same)
    by_version = Window.partitionBy("symbol").orderBy("as_of_date")
    return starts.select(
        "symbol", *SECURITY_ATTRIBUTES, F.col("as_of_date").alias("valid_from"),
        F.lead("as_of_date").over(by_version).alias("valid_to"),
    ).select(
        "symbol", *SECURITY_ATTRIBUTES, "valid_from", "valid_to", F.col("valid_to").isNull().alias("is_current"),
        F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version"),
    )  # fmt: skip


def latest_quotes(quotes: DataFrame, load_id: str, version: str) -> DataFrame:
    """The newest quote per symbol (by fetch time, then event sequence number)."""
    newest = Window.partitionBy("symbol").orderBy(F.col("quote_time").desc(), F.col("sequence_number").desc())
    return (
        quotes.withColumn("_rn", F.row_number().over(newest))
        .filter("_rn = 1")
        .select("symbol", *QUOTE_VALUES, F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version"))
    )


def dim_date_rows(days: list[dt.date], previous: dt.date | None, following: dt.date | None) -> list[dict]:
    """dim_date rows for consecutive trading sessions.

    `previous` is the session before ``days[0]`` and `following` the one after ``days[-1]``
    (None where the calendar has none).

    ``day_of_week`` is ISO (1 = Monday); ``is_month_end`` marks the last session of a month.
    """
    rows = []
    for i, day in enumerate(days):
        nxt = days[i + 1] if i + 1 < len(days) else following
        rows.append({
            "trade_date": day, "year": day.year, "quarter": (day.month - 1) // 3 + 1, "month": day.month,
            "day_of_month": day.day, "day_of_week": day.isoweekday(),
            "is_month_end": nxt is None or nxt.month != day.month,
            "previous_trade_date": days[i - 1] if i else previous,
        })  # fmt: skip
    return rows
