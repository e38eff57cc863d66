"""Fixtures of the ingestion tests: one synthetic market API per module, a fresh lake per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from market_ingest.ratelimit import forget_shared_limiters

from local.market_api import MarketApiConfig, MarketApiServer, running

SENTINEL_KEY = "SENTINEL-KEY-7f3a9c1e"  # must never appear in RAW, answers or logs


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Each test starts with no calls counted against any key (the limiters are per process)."""
    forget_shared_limiters()
    yield
    forget_shared_limiters()


@pytest.fixture(scope="module")
def market_api() -> Iterator[MarketApiServer]:
    with running(MarketApiConfig(seed=11, api_key=SENTINEL_KEY)) as server:
        yield server


@pytest.fixture
def api(market_api: MarketApiServer) -> MarketApiServer:
    """The module's server with faults and counters cleared for this test."""
    market_api.configure(
        faults=(), calls_per_minute=None, calls_per_day=None, unknown_symbols=frozenset(), throttle="note",
        plan=None, burst_per_second=None,
    )
    return market_api


@pytest.fixture
def ingest_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: MarketApiServer) -> Path:
    """Environment of the Function app: synthetic provider on the test server, tiny backoffs.

    Returns the lake's RAW directory.
    """
    home = tmp_path / "home"
    settings = {
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_ENVIRONMENT": "local",
        "LAKEHOUSE_PROVIDER": "synthetic",
        "ALPHAVANTAGE_BASE_URL": api.url,
        "ALPHAVANTAGE_API_KEY": SENTINEL_KEY,
        "LAKEHOUSE_SYMBOLS": "AAPL,MSFT,KO",
        "LAKEHOUSE_INGEST_CONCURRENCY": "3",
        "LAKEHOUSE_INGEST_TIMEOUT_SECONDS": "2",
        "LAKEHOUSE_INGEST_RETRY_ATTEMPTS": "4",
        "LAKEHOUSE_INGEST_BACKOFF_INITIAL_SECONDS": "0.01",
        "LAKEHOUSE_INGEST_BACKOFF_MAX_SECONDS": "0.05",
        "LAKEHOUSE_INGEST_BACKOFF_JITTER_SECONDS": "0.01",
        "LAKEHOUSE_POLL_QUOTES_MARKET_HOURS_ONLY": "false",
        "LAKEHOUSE_EVENTHUB_NAMESPACE": "local",
    }
    unset = ("LAKEHOUSE_LAKE_ROOT", "LAKEHOUSE_INGEST_CALLS_PER_MINUTE", "LAKEHOUSE_INGEST_CALLS_PER_DAY",
             "ALPHAVANTAGE_PLAN")  # fmt: skip
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return home / "lake" / "raw"


def payload_files(raw: Path) -> list[Path]:
    """Landed payloads (everything in RAW except manifests and Capture files)."""
    return sorted(p for p in raw.rglob("*.json") if p.relative_to(raw).parts[0] not in {"_manifests", "eventhubs"})


def assert_raw_holds_only_data(raw: Path) -> None:
    """No error or throttle body has landed as if it were data, and no file is half-written."""
    for path in payload_files(raw):
        data = json.loads(path.read_bytes())
        assert not {"Error Message", "Note", "Information"} & set(data), path
        assert "Time Series (Daily)" in data or "Symbol" in data, path
    assert not list(raw.rglob("*.tmp")), "temporary files left behind"
