"""Each fault of the market API has a documented outcome (docs/ingestion.md, "Faults"):
retried and succeeded, failed for that symbol with a reason, or the whole call failed.
RAW never holds an error payload as if it were data."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest

from local import function_host
from local.market_api import Fault, MarketApiServer
from tests.functions.conftest import assert_raw_holds_only_data, payload_files
from tests.functions.test_function_app import direct_body, recent_window


@pytest.fixture
def short_timeout(ingest_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.4 s client timeout, so timeouts cost little test time (compact answers take ~10 ms)."""
    monkeypatch.setenv("LAKEHOUSE_INGEST_TIMEOUT_SECONDS", "0.4")


def ingest(symbols: list[str], run_id: str, dataset: str = "daily_bars") -> tuple[int, dict]:
    body = {"dataset": dataset, "symbols": symbols, "run_id": run_id, **recent_window(2)}
    response = function_host.invoke_http("ingest", body=body)
    return response.status_code, response.json()


def manifest_entry(raw: Path, answer: dict, symbol: str) -> dict:
    manifest = json.loads((raw / answer["manifest"]).read_text())
    return next(f for f in manifest["files"] if f["symbol"] == symbol)


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [
        (Fault("http_429", times=2), 3),
        (Fault("http_500", times=1), 2),
        (Fault("http_503", times=2), 3),
        (Fault("timeout", times=1, delay=0.8), 2),  # the client waits 0.4 s (short_timeout)
        (Fault("reset", times=1), 2),
        (Fault("truncated", times=1), 2),
        (Fault("note", times=2), 3),
    ],
    ids=lambda v: v.kind if isinstance(v, Fault) else str(v),
)
def test_transient_faults_are_retried_and_succeed(
    ingest_env: Path, api: MarketApiServer, short_timeout: None, fault: Fault, attempts: int
):
    api.configure(faults=(Fault(**{**fault.__dict__, "symbols": frozenset({"AAPL"})}),))
    status, answer = ingest(["AAPL", "KO"], "t-1")
    assert status == 200 and answer["failures"] == []
    assert manifest_entry(ingest_env, answer, "AAPL")["attempts"] == attempts
    assert manifest_entry(ingest_env, answer, "KO")["attempts"] == 1
    landed = (ingest_env / manifest_entry(ingest_env, answer, "AAPL")["path"]).read_bytes()
    assert landed == direct_body(
        api, function="TIME_SERIES_DAILY_ADJUSTED", symbol="AAPL", outputsize="compact", datatype="json"
    )
    assert_raw_holds_only_data(ingest_env)


def test_a_slow_answer_within_the_timeout_is_simply_waited_for(ingest_env: Path, api: MarketApiServer):
    api.configure(faults=(Fault("slow", symbols={"KO"}, delay=0.5),))
    status, answer = ingest(["KO"], "s-1")
    assert status == 200
    entry = manifest_entry(ingest_env, answer, "KO")
    assert entry["attempts"] == 1 and entry["elapsed_seconds"] >= 0.5


@pytest.mark.parametrize(
    ("fault", "kind", "requests_made"),
    [
        (Fault("http_500"), "server_error", 4),
        (Fault("timeout", delay=0.8), "timeout", 4),
        (Fault("truncated"), "truncated", 4),
        (Fault("reset"), "connection", 4),
        (Fault("http_429"), "throttled", 4),
        (Fault("error_message"), "not_found", 1),  # permanent: not retried
    ],
    ids=lambda v: v.kind if isinstance(v, Fault) else str(v),
)
def test_a_persistent_fault_fails_only_its_symbol(
    ingest_env: Path, api: MarketApiServer, short_timeout: None, fault: Fault, kind: str, requests_made: int
):
    api.configure(faults=(Fault(**{**fault.__dict__, "symbols": frozenset({"MSFT"})}),))
    status, answer = ingest(["AAPL", "MSFT", "KO"], "p-1")
    assert status == 200
    assert [(f["symbol"], f["kind"]) for f in answer["failures"]] == [("MSFT", kind)]
    assert "MSFT" in answer["failures"][0]["reason"]
    assert sorted(f["symbol"] for f in answer["files"]) == ["AAPL", "KO"]
    assert sum(r.symbol == "MSFT" for r in api.requests) == requests_made  # 4 = the retry budget
    assert not any("MSFT" in p.parts for p in payload_files(ingest_env))
    assert_raw_holds_only_data(ingest_env)


def test_an_unknown_symbol_fails_without_retries(ingest_env: Path, api: MarketApiServer):
    api.configure(unknown_symbols=frozenset({"ZZZZ"}))
    status, answer = ingest(["ZZZZ", "KO"], "u-1")
    assert status == 200
    assert [(f["symbol"], f["kind"], f["retryable"]) for f in answer["failures"]] == [("ZZZZ", "not_found", False)]
    assert sum(r.symbol == "ZZZZ" for r in api.requests) == 1


def test_an_unknown_symbol_in_the_security_master_is_not_landed(ingest_env: Path, api: MarketApiServer):
    api.configure(unknown_symbols=frozenset({"ZZZZ"}))
    status, answer = ingest(["ZZZZ", "KO"], "u-2", dataset="security_master")
    assert status == 200 and [f["kind"] for f in answer["failures"]] == ["not_found"]
    assert [p.parts[-2] for p in payload_files(ingest_env)] == ["KO"]


def test_daily_quota_exhaustion_stops_the_call_and_fails_it(ingest_env: Path, api: MarketApiServer):
    api.configure(faults=(Fault("information"),))
    status, answer = ingest(["AAPL", "MSFT", "KO", "JPM"], "q-1")
    assert status == 503
    assert {f["kind"] for f in answer["failures"]} == {"quota_exhausted"}
    assert len(answer["failures"]) == 4
    # at most one request per worker before the call noticed: the quota is not hammered
    assert len(api.requests) <= 3
    assert payload_files(ingest_env) == []


def test_server_quota_per_day_answers_information_and_the_rest_fail_fast(ingest_env: Path, api: MarketApiServer):
    api.configure(calls_per_day=2)
    function_host.invoke_http("ingest", body={"symbols": ["AAPL"], "run_id": "d-0", **recent_window(1)})
    function_host.invoke_http("ingest", body={"symbols": ["MSFT"], "run_id": "d-1", **recent_window(1)})
    status, answer = ingest(["KO", "JPM"], "d-2")
    assert status == 503
    assert {f["kind"] for f in answer["failures"]} == {"quota_exhausted"}


def test_per_minute_throttling_beyond_the_retry_budget_fails_those_symbols(ingest_env: Path, api: MarketApiServer):
    api.configure(calls_per_minute=2, throttle="note")
    status, answer = ingest(["AAPL", "MSFT", "KO", "JPM"], "m-1")
    assert status == 200
    assert len(answer["files"]) == 2
    assert sorted(f["kind"] for f in answer["failures"]) == ["throttled", "throttled"]
    assert_raw_holds_only_data(ingest_env)


def test_http_429_throttling_is_classified_the_same(ingest_env: Path, api: MarketApiServer):
    api.configure(calls_per_minute=1, throttle="http_429")
    status, answer = ingest(["AAPL", "KO"], "m-2")
    assert status == 200
    assert [f["kind"] for f in answer["failures"]] == ["throttled"]


def test_missing_fields_land_as_received_with_a_warning(ingest_env: Path, api: MarketApiServer):
    api.configure(faults=(Fault("missing_fields", symbols={"KO"}),))
    status, answer = ingest(["KO"], "w-1")
    assert status == 200 and answer["failures"] == []
    messages = [w["message"] for w in answer["warnings"]]
    assert sorted(messages) == ["1 bars miss field '2. high'", "2 bars miss field '4. close'"]
    landed = json.loads((ingest_env / answer["files"][0]["path"]).read_bytes())
    newest = max(landed["Time Series (Daily)"])
    assert "4. close" not in landed["Time Series (Daily)"][newest]  # RAW is exactly what came


def test_extra_fields_land_as_received_with_a_warning(ingest_env: Path, api: MarketApiServer):
    api.configure(faults=(Fault("extra_fields", symbols={"KO"}),))
    status, answer = ingest(["KO"], "w-2")
    assert status == 200
    assert [w["message"] for w in answer["warnings"]] == ["unexpected bar fields ['9. exchange']"]
    landed = json.loads((ingest_env / answer["files"][0]["path"]).read_bytes())
    assert all(bar["9. exchange"] == "XNYS" for bar in landed["Time Series (Daily)"].values())


def test_faults_on_quotes_drop_only_that_quote(ingest_env: Path, api: MarketApiServer):
    api.configure(faults=(Fault("error_message", symbols={"MSFT"}, functions={"GLOBAL_QUOTE"}),))
    function_host.run_timer("poll_quotes")
    symbols = []
    for path in ingest_env.rglob("*.avro"):
        with open(path, "rb") as fh:
            symbols += [json.loads(r["Body"])["symbol"] for r in fastavro.reader(fh)]
    assert sorted(symbols) == ["AAPL", "KO"]


def test_no_request_starts_after_the_call_deadline(
    ingest_env: Path, api: MarketApiServer, monkeypatch: pytest.MonkeyPatch
):
    """ADF waits 230 s for the answer: past the deadline the remaining symbols fail as retryable."""
    monkeypatch.setenv("LAKEHOUSE_INGEST_DEADLINE_SECONDS", "0.45")
    monkeypatch.setenv("LAKEHOUSE_INGEST_CONCURRENCY", "1")
    api.configure(faults=(Fault("slow", delay=0.3),))
    status, answer = ingest(["AAPL", "MSFT", "KO", "JPM"], "dl-1")
    assert status == 200
    assert answer["files"][0]["symbol"] == "AAPL"
    late = [f for f in answer["failures"] if f["symbol"] in {"KO", "JPM"}]
    assert [(f["kind"], f["retryable"]) for f in late] == [("deadline", True), ("deadline", True)]
    assert {r.symbol for r in api.requests} <= {"AAPL", "MSFT"}
    assert answer["elapsed_seconds"] < 0.45 + 0.3 + 0.5
