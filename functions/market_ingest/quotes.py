"""poll_quotes: the latest quote of each symbol, one event per quote, partition key = symbol."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lakehouse.contracts import alpha_vantage as av
from market_ingest.errors import IngestError
from market_ingest.eventhubs import Event, EventPublisher
from market_ingest.providers.base import MarketDataProvider

log = logging.getLogger(__name__)


@dataclass
class PollResult:
    run_id: str
    published: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict:
        return {"run_id": self.run_id, "published": self.published, "failures": self.failures,
                "warnings": self.warnings}  # fmt: skip


def quote_event(
    symbol: str, quote: dict, run_id: str, fetched_at: dt.datetime, entitlement: str = "end_of_day"
) -> Event:
    """The event contract: ``{"symbol", "fetched_at", "run_id", "entitlement", "quote": <quote as received>}``.

    ``entitlement`` says what the price is: ``realtime``, ``delayed`` (15 minutes) or ``end_of_day``
    (the last session's close), so a consumer never takes a stale price for a live one.
    """
    body = {
        "symbol": symbol,
        "fetched_at": fetched_at.astimezone(dt.UTC).isoformat(),
        "run_id": run_id,
        "entitlement": entitlement,
        "quote": quote,
    }
    return Event(partition_key=symbol, body=json.dumps(body).encode(), properties={"run_id": run_id})


def poll_quotes(
    symbols: Sequence[str],
    provider: MarketDataProvider,
    publisher: EventPublisher,
    *,
    run_id: str,
    concurrency: int = 4,
) -> PollResult:
    """Fetch each symbol's GLOBAL_QUOTE and publish the successful ones in one go."""
    result = PollResult(run_id=run_id)
    events: list[Event] = []

    def one(symbol: str) -> None:
        try:
            payload = provider.global_quote(symbol)
        except IngestError as exc:
            result.failures.append({"symbol": symbol, "kind": exc.kind, "reason": str(exc)})
            return
        for message in payload.warnings:
            result.warnings.append({"symbol": symbol, "message": message})
        key, quote = av.quote_object(payload.data)
        entitlement = av.quote_entitlement(key, payload.params.get("entitlement"))
        events.append(quote_event(symbol, quote, run_id, dt.datetime.now(dt.UTC), entitlement))

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="quotes") as pool:
        list(pool.map(one, symbols))
    events.sort(key=lambda e: e.partition_key)
    result.published = publisher.publish(events)
    log.info("poll_quotes run_id=%s published=%d failed=%d", run_id, result.published, len(result.failures))
    return result
