"""GLOBAL_QUOTE is asked with the plan's entitlement, accepted under the key Alpha Vantage uses for
it ("Global Quote - DATA DELAYED BY 15 MINUTES" for delayed prices), and every published quote says
what it is: realtime, delayed or the last session's close."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest
from market_ingest.providers.alpha_vantage import AlphaVantageClient
from pydantic import SecretStr

from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts.provider_plans import PLANS
from local import function_host
from local.market_api import MarketApiServer
from tests.functions.conftest import SENTINEL_KEY
from tests.functions.test_function_app import direct_body

QUOTE = {"01. symbol": "IBM", "02. open": "1", "03. high": "1", "04. low": "1", "05. price": "1", "06. volume": "1",
         "07. latest trading day": "2025-01-15", "08. previous close": "1", "09. change": "0",
         "10. change percent": "0%"}  # fmt: skip


def test_the_delayed_quote_key_is_a_quote():
    warnings = AlphaVantageClient._check_quote({av.DELAYED_QUOTE_KEY: QUOTE}, "GLOBAL_QUOTE IBM")
    assert warnings == []
    assert av.quote_object({av.DELAYED_QUOTE_KEY: QUOTE}) == (av.DELAYED_QUOTE_KEY, QUOTE)


@pytest.mark.parametrize(
    ("key", "requested", "entitlement"),
    [
        (av.DELAYED_QUOTE_KEY, "delayed", "delayed"),
        (av.DELAYED_QUOTE_KEY, "realtime", "delayed"),  # asked for realtime, served delayed: say delayed
        (av.QUOTE_KEY, "realtime", "realtime"),
        (av.QUOTE_KEY, None, "end_of_day"),
    ],
)
def test_the_entitlement_of_a_quote_comes_from_its_key_and_the_request(key, requested, entitlement):
    assert av.quote_entitlement(key, requested) == entitlement


@pytest.mark.parametrize(
    ("plan", "sent", "key"),
    [("free", None, av.QUOTE_KEY), ("premium", "delayed", av.DELAYED_QUOTE_KEY),
     ("premium_realtime", "realtime", av.QUOTE_KEY)],
)  # fmt: skip
def test_each_plan_asks_for_its_entitlement(api: MarketApiServer, plan: str, sent: str | None, key: str):
    api.configure(plan=plan)
    client = AlphaVantageClient(name="synthetic", base_url=api.url, api_key=SecretStr(SENTINEL_KEY), plan=PLANS[plan])
    try:
        payload = client.global_quote("AAPL")
    finally:
        client.close()
    assert payload.params.get("entitlement") == sent
    assert list(payload.data) == [key]
    assert api.requests[0].params.get("entitlement") == sent


def test_a_free_key_asking_for_delayed_quotes_gets_the_premium_message(api: MarketApiServer):
    api.configure(plan="free")
    body = json.loads(direct_body(api, function="GLOBAL_QUOTE", symbol="AAPL", entitlement="delayed"))
    assert "premium" in body["Information"]


def test_polled_quotes_record_their_entitlement(ingest_env: Path, api: MarketApiServer, monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_PLAN", "premium_realtime")
    api.configure(plan="premium_realtime")
    function_host.run_timer("poll_quotes")
    bodies = [json.loads(r["Body"]) for r in _capture_records(ingest_env)]
    assert sorted(b["symbol"] for b in bodies) == ["AAPL", "KO", "MSFT"]
    assert {b["entitlement"] for b in bodies} == {"realtime"}


def _capture_records(raw: Path) -> list[dict]:
    records = []
    for path in sorted(raw.rglob("*.avro")):
        with open(path, "rb") as fh:
            records.extend(fastavro.reader(fh))
    return records
