"""One `ingest` call with concurrent workers: the quota holds across threads, the answer and the
manifest do not depend on which symbol finished first, and the per-file figures are exact."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from pathlib import Path

import pytest
import requests
from market_ingest.ingest import Ingestion, IngestRequest
from market_ingest.providers.alpha_vantage import AlphaVantageClient
from market_ingest.ratelimit import RateLimiter
from market_ingest.retry import RetryPolicy
from pydantic import SecretStr

from lakehouse import trading_calendar
from lakehouse.raw_store import DirectoryRawStore
from local.market_api import Fault, MarketApiServer
from tests.functions.conftest import SENTINEL_KEY

SYMBOLS = ("AAPL", "BA", "CAT", "DIS", "GE", "HD", "IBM", "JNJ", "KO", "MSFT")


class VirtualClock:
    """Shared fake time for every worker thread: sleeping advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def client(api: MarketApiServer, limiter: RateLimiter | None = None) -> AlphaVantageClient:
    return AlphaVantageClient(
        name="synthetic",
        base_url=api.url,
        api_key=SecretStr(SENTINEL_KEY),
        limiter=limiter,
        retry=RetryPolicy(attempts=2, initial=0.01, maximum=0.01, jitter=0.0),
        timeout=5.0,
    )


def recent(sessions: int = 2) -> IngestRequest:
    latest = trading_calendar.latest_session()
    days = trading_calendar.sessions(latest - dt.timedelta(days=20), latest)[-sessions:]
    return IngestRequest("daily_bars", SYMBOLS, (), days[0], days[-1], "t-1")


def test_concurrent_workers_together_stay_within_the_per_minute_quota(tmp_path: Path, api: MarketApiServer):
    """Eight threads share one sliding window: no 60 s span of the limiter's clock holds more than 3 starts."""
    clock = VirtualClock()
    av = client(api, RateLimiter(per_minute=3, clock=clock, sleep=clock.sleep))
    started: list[float] = []
    get = av._get

    def recording_get(params, what):
        started.append(clock())
        return get(params, what)

    av._get = recording_get
    result = Ingestion(av, DirectoryRawStore(tmp_path), concurrency=8).run(recent())
    assert sorted(f["symbol"] for f in result.files) == sorted(SYMBOLS) and not result.failures
    assert len(started) == len(SYMBOLS) == len(api.requests)
    for t in started:
        assert sum(t <= u < t + 60.0 for u in started) <= 3
    assert max(started) >= 60.0 * 3  # ten starts at three a minute need at least three more minutes


def comparable(manifest: dict) -> list[tuple]:
    return [(f["symbol"], f["path"], f["sha256"], f["bytes"], f["records"], f["status"]) for f in manifest["files"]]


def test_the_manifest_does_not_depend_on_which_symbol_finished_first(tmp_path: Path, api: MarketApiServer):
    """A slow first symbol finishes after others with four workers; the manifest is the one a single worker writes."""
    request = recent()
    api.configure(faults=(Fault("slow", symbols={"AAPL"}, delay=1.0),))
    concurrent = Ingestion(client(api), DirectoryRawStore(tmp_path / "a"), concurrency=4).run(request)
    api.configure(faults=())
    sequential = Ingestion(client(api), DirectoryRawStore(tmp_path / "b"), concurrency=1).run(request)
    manifests = [json.loads((tmp_path / d / r.manifest).read_text()) for d, r in (("a", concurrent), ("b", sequential))]
    finished = [f["symbol"] for f in sorted(concurrent.files, key=lambda f: f["fetched_at"])]
    assert finished.index("AAPL") > 0 and finished != sorted(SYMBOLS)  # they did finish out of order
    assert comparable(manifests[0]) == comparable(manifests[1])
    assert [f["symbol"] for f in manifests[0]["files"]] == sorted(SYMBOLS)


def test_one_symbol_that_breaks_the_store_fails_alone(tmp_path: Path, api: MarketApiServer):
    """An unexpected error while landing one symbol becomes its failure entry; the others land."""

    class FlakyStore(DirectoryRawStore):
        def write_atomic(self, path: str, data: bytes) -> None:
            if "/KO/" in path:
                raise OSError("disk full")
            super().write_atomic(path, data)

    result = Ingestion(client(api), FlakyStore(tmp_path), concurrency=4).run(recent())
    assert [(f["symbol"], f["kind"], f["retryable"]) for f in result.failures] == [("KO", "internal", True)]
    assert "disk full" in result.failures[0]["reason"]
    assert sorted(f["symbol"] for f in result.files) == sorted(set(SYMBOLS) - {"KO"})
    manifest = json.loads((tmp_path / result.manifest).read_text())
    assert len(manifest["files"]) == len(SYMBOLS) - 1 and manifest["failures"] == result.failures


def test_file_figures_are_those_of_the_landed_bytes(tmp_path: Path, api: MarketApiServer):
    """records, first/last date and records_in_window, recounted from the file itself."""
    latest = trading_calendar.latest_session()
    start = latest - dt.timedelta(days=45)
    request = IngestRequest("daily_bars", ("KO", "MSFT"), (), start, latest, "t-2")
    result = Ingestion(client(api), DirectoryRawStore(tmp_path), concurrency=2).run(request)
    for entry in result.files:
        dates = sorted(json.loads((tmp_path / entry["path"]).read_bytes())["Time Series (Daily)"])
        inside = [d for d in dates if start <= dt.date.fromisoformat(d) <= latest]
        assert (entry["records"], entry["first_date"], entry["last_date"]) == (len(dates), dates[0], dates[-1])
        assert entry["records_in_window"] == len(inside) == len(trading_calendar.sessions(start, latest))


def test_a_history_larger_than_one_read_chunk_lands_byte_for_byte(tmp_path: Path, api: MarketApiServer):
    """A full history (MBs, read in 1 MiB chunks) is the server's exact bytes."""
    symbol = min(SYMBOLS, key=lambda s: api.model.profile(s).listed)  # the longest history
    request = IngestRequest("daily_bars", (symbol,), (), dt.date(2005, 1, 3), dt.date(2005, 6, 30), "t-3")
    result = Ingestion(client(api), DirectoryRawStore(tmp_path), concurrency=1).run(request)
    params = {"function": "TIME_SERIES_DAILY_ADJUSTED", "symbol": symbol, "outputsize": "full", "datatype": "json"}
    served = requests.get(api.url, params={**params, "apikey": SENTINEL_KEY}, timeout=30).content
    landed = (tmp_path / result.files[0]["path"]).read_bytes()
    assert len(served) > 1 << 20
    assert landed == served


def test_proxy_settings_of_the_environment_are_still_honoured(api: MarketApiServer, monkeypatch):
    """The client reads HTTP(S)_PROXY / NO_PROXY once instead of per request, but it still obeys them."""
    from market_ingest.errors import ConnectionFailed

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there
    monkeypatch.setenv("HTTP_PROXY", dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ConnectionFailed, match="ProxyError"):
        client(api).overview("KO")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client(api).overview("KO").data["Symbol"] == "KO"


def test_a_landed_payload_damaged_after_landing_is_fetched_again_not_reused(tmp_path: Path, api: MarketApiServer):
    """A later run the same day reuses only payloads whose size and sha256 are still those of their
    manifest entry; a truncated and an edited one are fetched again, and the run's manifest says why."""
    store = DirectoryRawStore(tmp_path)
    latest = trading_calendar.latest_session()
    days = trading_calendar.sessions(latest - dt.timedelta(days=20), latest)[-2:]
    first = Ingestion(client(api), store, concurrency=1).run(
        IngestRequest("daily_bars", ("AAPL", "BA", "KO"), (), days[0], days[-1], "day-1"))
    landed = {f["symbol"]: tmp_path / f["path"] for f in first.files}
    intact = {s: p.read_bytes() for s, p in landed.items()}
    landed["AAPL"].write_bytes(intact["AAPL"][: len(intact["AAPL"]) // 2])  # truncated
    close = json.loads(intact["BA"])["Time Series (Daily)"][days[-1].isoformat()]["4. close"]
    edited = intact["BA"].replace(f'"4. close": "{close}"'.encode(), f'"4. close": "{close[::-1]}"'.encode(), 1)
    assert edited != intact["BA"] and len(edited) == len(intact["BA"])  # same size: only the sha256 tells
    landed["BA"].write_bytes(edited)
    calls = len(api.requests)

    second = Ingestion(client(api), store, concurrency=1).run(
        IngestRequest("daily_bars", ("AAPL", "BA", "KO"), (), days[0], days[-1], "day-2"))

    status = {f["symbol"]: f["status"] for f in second.files}
    assert status == {"AAPL": "written", "BA": "written", "KO": "reused"}
    assert len(api.requests) == calls + 2
    manifest = json.loads((tmp_path / second.manifest).read_text())
    refused = {f["symbol"]: f.get("reuse_refused") for f in manifest["files"]}
    assert refused["KO"] is None
    assert [r["path"] for r in refused["AAPL"]] == [first.files[0]["path"]]
    assert "bytes where the manifest recorded" in refused["AAPL"][0]["reason"]
    assert [r["path"] for r in refused["BA"]] == [first.files[1]["path"]]
    assert "sha256" in refused["BA"][0]["reason"]
    assert sorted(w["symbol"] for w in manifest["warnings"]) == ["AAPL", "BA"]
    for symbol in ("AAPL", "BA"):
        fresh = next(f for f in second.files if f["symbol"] == symbol)
        assert (tmp_path / fresh["path"]).read_bytes() == intact[symbol]  # the API's answer, landed anew
