"""Engine parity: the silver and gold transforms give the same answers on Sail and on JVM Spark.

Inputs are in-memory DataFrames built from the same Python rows on both engines (JVM Spark
here has no Delta Lake); results must match to a relative 1e-9.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F

from lakehouse.trading_calendar import sessions
from spark_jobs import bronze, gold, quality, raw, silver
from spark_jobs.contracts import load
from tests.spark_jobs.raw_files import bar_body, random_walk_bars

pytestmark = pytest.mark.jvm

DAYS = sessions(dt.date(2023, 1, 3), dt.date(2024, 2, 29))
AT = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert len(ra) == len(rb)
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-15), (ra, rb)
            else:
                assert x == y, (ra, rb)


def collect(df, *order) -> list[tuple]:
    return [tuple(r) for r in df.orderBy(*order).collect()]


def bronze_rows() -> list[dict]:
    bars = random_walk_bars(DAYS[:60], seed=9, events={30: {"split": 2.0}})
    body = bar_body("AAPL", bars)
    broken = body.replace(b'"2. high": "', b'"2. high": "-', 1).replace(b'"6. volume": "', b'"6. volume": "x', 1)
    rows = []
    for n, data in enumerate((body, broken)):
        parsed = raw.parse_daily_bars(data, f"f{n}")
        for rec in parsed.records:
            rows.append({**rec, "path_symbol": "AAPL", "source_file": f"f{n}", "ingest_date": dt.date(2024, 3, 1),
                         "ingest_run_id": f"r{n}", "ingested_at": AT + dt.timedelta(minutes=n), "provider": "synthetic",
                         "load_id": "l", "schema_version": "1.0.0"})  # fmt: skip
    return rows


def silver_on(spark, rows: list[dict], materialize: bool = False):
    frame = bronze.to_frame(spark, rows, load("bronze", "daily_bars"))
    prior = spark.createDataFrame([], load("silver", "daily_bars").ddl())
    sessions_df = silver.sessions_frame(spark, DAYS)
    typed = silver.typed_daily_bars(frame, prior, sessions_df, dt.date(2024, 3, 15))
    flagged = quality.flag(typed, "silver.daily_bars")
    if materialize:  # the JVM re-plans the joins for every action; caching keeps the test quick
        flagged = flagged.cache()
    winners, superseded, quarantined = silver.split(flagged, ["symbol", "trade_date"],
                                                    [*silver.latest_first(), F.col("record_index").desc()],
                                                    ["source_file", "record_index"])  # fmt: skip
    results = quality.summarize(flagged, "silver.daily_bars", ["symbol", "trade_date_raw", "source_file"])
    out = silver.daily_bar_rows(winners, "l", AT, "1.0.0")
    q = silver.quarantine_rows(quarantined, "daily_bars", silver.bar_key(), ["open_raw", "high_raw", "volume_raw"],
                               "l", AT, "1.0.0")  # fmt: skip
    return (collect(out, "symbol", "trade_date"), superseded.count(), collect(q, "record_key"),
            [(r.rule, r.failed_count, r.sample_keys) for r in results])  # fmt: skip


def test_silver_daily_bars_are_the_same_on_both_engines(spark, jvm):
    rows = bronze_rows()
    sail, on_jvm = silver_on(spark, rows), jvm.run(silver_on, rows, True)
    same(sail[0], on_jvm[0])
    assert sail[1:] == on_jvm[1:]
    assert sail[1] == 59 and len(sail[2]) == 1  # 60 valid bars twice less the quarantined one; 1 winner each


def silver_bars(spark) -> object:
    rows = []
    for sym, seed, events in (
        ("AAPL", 1, {150: {"split": 2.0}, 80: {"dividend": 0.7}, 280: {"dividend": 0.2}}),
        ("MSFT", 2, {}),
    ):
        for d, b in random_walk_bars(DAYS, seed=seed, events=events).items():
            rows.append({"symbol": sym, "trade_date": dt.date.fromisoformat(d), "open": b.open, "high": b.high,
                         "low": b.low, "close": b.close, "adjusted_close": b.close, "volume": b.volume,
                         "dividend_amount": b.dividend, "split_coefficient": b.split, "source_file": "f",
                         "ingest_run_id": "r", "ingested_at": AT, "revision": 1, "updated_at": AT, "load_id": "l",
                         "schema_version": "1.0.0"})  # fmt: skip
    return bronze.to_frame(spark, rows, load("silver", "daily_bars"))


def gold_on(spark) -> dict[str, list[tuple]]:
    bars = silver_bars(spark)
    changed = bars.filter("trade_date >= DATE'2024-02-01'").select("symbol", "trade_date")
    starts = gold.recompute_starts(changed, bars)
    with_peak = starts.withColumn("prev_peak", F.when(starts.symbol == "MSFT", F.lit(150.0)))
    # every symbol trades every session here: the lookback's LOOKBACK_BARS lie in LOOKBACK_DAYS
    reach = starts.withColumn("lookback_from", F.date_sub("start_date", gold.LOOKBACK_DAYS))
    daily = gold.daily_prices(gold.span_for(bars, reach), with_peak, "l", "1.0.0")
    full = bars.select("symbol").distinct().withColumn("start_date", F.lit(DAYS[0]))
    full_daily = gold.daily_prices(bars, full.withColumn("prev_peak", F.lit(None).cast("double")), "l", "1.0.0")
    monthly = gold.monthly_performance(full_daily, full, "l", "1.0.0")
    history = spark.createDataFrame(
        [("X", dt.date(2024, 1, d), "n", "e", "c", "u", s, "i") for d, s in ((1, "A"), (2, "A"), (5, "B"), (9, "A"))],
        "symbol string, as_of_date date, name string, exchange string, currency string, country string, "
        "sector string, industry string",
    )  # fmt: skip
    return {
        "starts": collect(starts, "symbol"),
        "daily": collect(daily, "symbol", "trade_date"),
        "full_daily": collect(full_daily, "symbol", "trade_date"),
        "monthly": collect(monthly, "symbol", "month"),
        "dim_security": collect(gold.dim_security(history, "l", "1.0.0"), "symbol", "valid_from"),
    }


def test_gold_transforms_are_the_same_on_both_engines(spark, jvm):
    sail, on_jvm = gold_on(spark), jvm.run(gold_on)
    for name in sail:
        same(sail[name], on_jvm[name])
    # AAPL's dividend after the first change re-bases no stored row (gold's forward frame): both start there.
    assert [s[:3] for s in sail["starts"]] == [(sym, dt.date(2024, 2, 1), False) for sym in ("AAPL", "MSFT")]
    assert len(sail["full_daily"]) == 2 * len(DAYS) and len(sail["dim_security"]) == 3
