"""Alpha Vantage's HTTP-200 messages are classified by what they mean, from the real texts kept in
fixtures/alpha_vantage_messages.json (each with its source), and the outcome follows the meaning:
retried at once, retried after a pause, failed for the symbol, or the call stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from market_ingest.errors import BurstThrottled, TransientError
from market_ingest.providers.alpha_vantage import AlphaVantageClient, classify_message_body
from market_ingest.retry import RetryPolicy
from pydantic import SecretStr

from local import market_api
from local.market_api import Fault, MarketApiServer
from tests.functions.conftest import SENTINEL_KEY, payload_files
from tests.functions.test_faults import ingest

FIXTURE = Path(__file__).parent / "fixtures" / "alpha_vantage_messages.json"
MESSAGES = json.loads(FIXTURE.read_text())["messages"]


def by_name(name: str) -> dict:
    return next(m for m in MESSAGES if m["name"] == name)


def test_every_fixture_names_its_source_and_its_meaning():
    assert len({m["name"] for m in MESSAGES}) == len(MESSAGES)
    for message in MESSAGES:
        assert message["source"].strip() and message["meaning"].strip(), message["name"]
        assert len(message["body"]) == 1 and set(message["body"]) <= {"Note", "Information", "Error Message"}


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m["name"])
def test_each_real_message_is_classified_as_its_meaning_says(message: dict):
    error = classify_message_body(message["body"], "TIME_SERIES_DAILY AAPL")
    assert error is not None
    assert error.kind == message["kind"]


def test_the_meanings_decide_retries_and_the_rest_of_the_call():
    def classified(name: str):
        return classify_message_body(by_name(name)["body"], "X")

    burst, premium, demo = (
        classified("burst_one_per_second"),
        classified("premium_outputsize_full"),
        classified("demo_key"),
    )
    quota, minute = classified("daily_quota"), classified("per_minute_note")
    # retried after a pause of at least the one second the free plan allows between requests
    assert isinstance(burst, TransientError) and burst.retry_after >= 1.0
    assert isinstance(minute, TransientError) and minute.retry_after is None
    # never retried within the call; premium-only and the demo key never succeed later either
    assert not isinstance(premium, TransientError) and not premium.retryable and premium.ends_call
    assert not isinstance(demo, TransientError) and not demo.retryable and demo.ends_call
    # the quota: not retried now, a later call (the next day) may succeed
    assert not isinstance(quota, TransientError) and quota.retryable and quota.ends_call


def test_a_key_echoed_by_a_message_never_reaches_the_reason():
    body = {"Information": by_name("daily_quota_naming_the_key")["body"]["Information"].replace(
        "XXXXXXXXXXXXXXXX", SENTINEL_KEY)}  # fmt: skip
    error = classify_message_body(body, "X")
    assert error.kind == "quota_exhausted"
    assert SENTINEL_KEY not in str(error) and "api key as ***" in str(error).lower()


@pytest.mark.parametrize(
    ("text", "fixture"),
    [
        (market_api.NOTE_TEXT, "per_minute_note"),
        (market_api.INFORMATION_TEXT, "daily_quota"),
        (market_api.BURST_TEXT, "burst_one_per_second"),
        (market_api.PREMIUM_ENDPOINT_TEXT, "premium_endpoint"),
        (market_api.premium_feature_text("outputsize", "full", "TIME_SERIES_DAILY"), "premium_outputsize_full"),
        (market_api.DEMO_KEY_TEXT, "demo_key"),
        (market_api.KEY_ERROR_TEXT, "invalid_key"),
    ],
)
def test_the_synthetic_server_speaks_the_real_texts(text: str, fixture: str):
    real = by_name(fixture)["body"]
    assert list(real.values()) == [text]


def test_a_burst_is_retried_after_a_pause_and_succeeds(api: MarketApiServer):
    api.configure(faults=(Fault("burst", times=1),))
    slept: list[float] = []
    client = AlphaVantageClient(
        name="synthetic", base_url=api.url, api_key=SecretStr(SENTINEL_KEY), sleep=slept.append,
        retry=RetryPolicy(attempts=3, initial=0.01, maximum=30.0, jitter=0.0),
    )  # fmt: skip
    try:
        payload = client.daily_bars("AAPL", "compact")
    finally:
        client.close()
    assert payload.attempts == 2
    assert slept and slept[0] >= BurstThrottled.PAUSE_SECONDS
    assert [r.fault for r in api.requests] == ["burst", None]


def test_a_premium_only_answer_stops_the_call_and_the_manifest_says_why(ingest_env: Path, api: MarketApiServer):
    api.configure(plan="free")  # the key is free; the app believes it is premium (the default plan)
    status, answer = ingest(["AAPL", "MSFT", "KO"], "p-1")
    assert status == 502
    assert {f["kind"] for f in answer["failures"]} == {"premium_only"}
    assert not any(f["retryable"] for f in answer["failures"])
    # the first refusal ends the call: only requests already in flight were made, none retried
    assert 1 <= len(api.requests) <= 3 and all(r.fault == "premium_only" for r in api.requests)
    manifest = json.loads((ingest_env / answer["manifest"]).read_text())
    assert [f["kind"] for f in manifest["failures"]] == ["premium_only"] * 3
    assert any("premium" in f["reason"] for f in manifest["failures"])
    assert payload_files(ingest_env) == []


def test_the_demo_key_is_asked_once_and_never_retried(ingest_env: Path, api: MarketApiServer, monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "demo")
    status, answer = ingest(["AAPL", "MSFT", "KO"], "demo-1")
    assert status == 502
    assert [f["kind"] for f in answer["failures"]] == ["demo_key"] * 3
    # three workers may each have started a request before the first answer; none is retried
    asked = [r.symbol for r in api.requests]
    assert len(asked) <= 3 and len(set(asked)) == len(asked)
