"""The transforms over RAW landed by the real Function app from the local synthetic market API."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from lakehouse.settings import load_settings
from local import function_host
from local.market_api import MarketApiConfig, running
from spark_jobs import jobs

KEY = "TRANSFORMS-TEST-KEY"


@pytest.fixture
def ingested(tmp_path, monkeypatch, endpoints):
    """RAW of two symbols (daily bars, compact) and their overviews, landed by the `ingest` function."""
    with running(MarketApiConfig(seed=3, api_key=KEY)) as api:
        env = {
            "LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_PROVIDER": "synthetic",
            "ALPHAVANTAGE_BASE_URL": api.url, "ALPHAVANTAGE_API_KEY": KEY, "LAKEHOUSE_SYMBOLS": "AAPL,KO",
            "LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote,
        }  # fmt: skip
        for name in ("LAKEHOUSE_LAKE_ROOT", "LAKEHOUSE_PG_DSN", "LAKEHOUSE_INGEST_CALLS_PER_MINUTE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
        window = {"start_date": (end - dt.timedelta(days=7)).isoformat(), "end_date": end.isoformat()}
        for dataset in ("daily_bars", "security_master"):
            response = function_host.invoke_http(
                "ingest",
                method="POST",
                body={"dataset": dataset, "symbols": ["AAPL", "KO"], "run_id": "ing-1", **window},
            )
            assert response.status_code == 200, response.get_body()
    return load_settings()


def test_ingested_raw_flows_to_gold_with_every_bar_accounted_for(spark, ingested):
    settings = ingested
    today = dt.datetime.now(dt.UTC).date().isoformat()
    raw_root = settings.home_dir / "lake" / "raw"
    bodies = {p.parent.name: json.loads(p.read_bytes()) for p in raw_root.glob("synthetic/daily_bars/*/*/*.json")}
    assert set(bodies) == {"AAPL", "KO"}
    bars = {s: b["Time Series (Daily)"] for s, b in bodies.items()}

    bronze = jobs.run_raw_to_bronze(spark, settings, today, today, "etl-1").as_dict()
    silver = jobs.run_bronze_to_silver(spark, settings, today, today, "etl-1").as_dict()
    gold = jobs.run_silver_to_gold(spark, settings, today, today, "etl-1").as_dict()

    total = sum(len(series) for series in bars.values())
    assert bronze["tables"]["bronze.daily_bars"]["rows_written"] == total
    assert bronze["tables"]["bronze.daily_bars"]["manifest_mismatches"] == []
    bars_silver = silver["tables"]["silver.daily_bars"]
    assert bars_silver["inserted"] + bars_silver["rows_quarantined"] == total
    assert gold["tables"]["gold.fct_daily_prices"]["rows_written"] == silver["tables"]["silver.daily_bars"]["inserted"]

    lake = settings.home_dir / "lake" / "gold"
    rows = spark.read.format("delta").load(str(lake / "fct_daily_prices")).filter("symbol = 'KO'").orderBy("trade_date")
    got = rows.collect()
    series = bars["KO"]
    days = sorted(series)
    assert [r.trade_date.isoformat() for r in got] == days
    # daily_return recomputed from the RAW strings, independently of the pipeline (back-adjusting
    # with the body's split coefficients and dividends, which the synthetic API may include).
    factor, adj = 1.0, {}
    for i in range(len(days) - 1, -1, -1):
        bar = series[days[i]]
        adj[days[i]] = float(bar["4. close"]) * factor
        if i > 0:
            split = float(bar.get("8. split coefficient", "1"))
            div = float(bar.get("7. dividend amount", "0"))
            prev = float(series[days[i - 1]]["4. close"])
            factor *= (1 - div / prev if div > 0 else 1.0) / split
    for prev_day, row in zip(days, got[1:], strict=False):
        assert math.isclose(row.daily_return, adj[row.trade_date.isoformat()] / adj[prev_day] - 1, rel_tol=1e-9)
    dims = spark.read.format("delta").load(str(lake / "dim_security")).collect()
    assert sorted(r.symbol for r in dims) == ["AAPL", "KO"] and all(r.is_current for r in dims)
