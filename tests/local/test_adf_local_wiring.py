"""The runner's local executors reach the real components: the Function app in-process.

Only the market API is local (the synthetic server in Alpha Vantage's wire format); the Function
app, its ingestion package and the lake directory are the real ones.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from local import market_api
from local.adf.context import RunContext
from local.adf.runner import FunctionHostExecutor, run_pipeline


@pytest.fixture
def synthetic_api(lakehouse_env, monkeypatch):
    with market_api.running(market_api.MarketApiConfig(seed=7, as_of=dt.date(2024, 3, 8))) as server:
        monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", server.url)
        monkeypatch.setenv("LAKEHOUSE_PROVIDER", "synthetic")
        monkeypatch.setenv("LAKEHOUSE_SYMBOLS", "AAPL,MSFT")
        yield server


def test_the_ingest_pipeline_lands_raw_files_through_the_in_process_function_app(synthetic_api):
    context = RunContext(function_executor=FunctionHostExecutor(), sleep=lambda s: None)
    result = run_pipeline(
        "pl_ingest_market_data",
        {"startDate": "2024-03-04", "endDate": "2024-03-08", "symbols": "AAPL,MSFT", "runId": "adf-run-1"},
        context,
    )
    assert result.status == "Succeeded", result.error
    answer = result.activity("Ingest daily bars").output
    assert (answer["run_id"], answer["symbols_succeeded"], answer["files_written"]) == ("adf-run-1", 2, 2)
    lake = Lake.from_settings(load_settings())
    for file in answer["files"]:
        body = json.loads(lake.local_path("raw", file["path"]).read_bytes())
        assert {"2024-03-04", "2024-03-08"} <= set(body["Time Series (Daily)"])
    assert result.output == {"daily_bars_files": 2, "security_master_files": 2, "splits_files": 2, "dividends_files": 2}
    splits = result.activity("Ingest splits").output
    assert (splits["dataset"], splits["run_id"], splits["symbols_succeeded"]) == ("splits", "adf-run-1", 2)


def test_a_rejected_request_fails_the_function_activity_with_the_http_status(synthetic_api):
    context = RunContext(function_executor=FunctionHostExecutor(), sleep=lambda s: None)
    result = run_pipeline(
        "pl_ingest_market_data",
        {"startDate": "2024-03-08", "endDate": "2024-03-04", "runId": "adf-run-2"},
        context,
    )
    runs = result.runs_of("Ingest daily bars")
    assert len(runs) == 3  # policy: 2 retries
    assert runs[-1].error["errorCode"] == "AzureFunctionFailed"
    assert "HTTP 400" in runs[-1].error["message"]
    assert "end_date 2024-03-04 is before start_date 2024-03-08" in runs[-1].error["message"]
    assert result.status == "Failed"
