"""Composition: settings -> provider, RAW store, publisher. The only place that decides
between the Azure and the local implementation of each."""

from __future__ import annotations

import datetime as dt
import uuid

from lakehouse import trading_calendar
from lakehouse.lake import Lake
from lakehouse.raw_store import RawStore, app_raw_store
from lakehouse.settings import Settings
from market_ingest.eventhubs import CaptureFilePublisher, EventHubsPublisher, EventPublisher
from market_ingest.ingest import Ingestion, IngestRequest, IngestResult
from market_ingest.providers import provider_from_settings
from market_ingest.quotes import PollResult, poll_quotes

LOCAL_NAMESPACE = "local"


def build_ingestion(settings: Settings, store: RawStore | None = None) -> Ingestion:
    return Ingestion(
        provider_from_settings(settings),
        store or app_raw_store(Lake.from_settings(settings)),
        concurrency=settings.ingest_concurrency,
        deadline_seconds=settings.ingest_deadline_seconds,
        calendar=settings.exchange_calendar,
    )


def build_publisher(settings: Settings) -> EventPublisher:
    """Capture files in RAW when the namespace is 'local', else Event Hubs."""
    if settings.eventhub_namespace == LOCAL_NAMESPACE:
        return CaptureFilePublisher(
            app_raw_store(Lake.from_settings(settings)),
            namespace=LOCAL_NAMESPACE,
            hub=settings.eventhub_name,
            partitions=settings.eventhub_partitions,
            state_dir=settings.home_dir / "state" / "eventhubs",
        )
    return EventHubsPublisher.from_namespace(settings.eventhub_namespace, settings.eventhub_name)


def ingest(body: object, settings: Settings, *, now: dt.datetime | None = None) -> IngestResult:
    """Serve one POST /api/ingest body (raises BadRequest / ConfigurationError)."""
    now = now or dt.datetime.now(dt.UTC)
    request = IngestRequest.from_body(
        body,
        default_symbols=settings.symbols,
        default_date=trading_calendar.latest_session(now, code=settings.exchange_calendar),
    )
    ingestion = build_ingestion(settings)
    try:
        return ingestion.run(request, now=now)
    finally:
        ingestion.provider.close()


def ingest_latest_session(dataset: str, settings: Settings, *, now: dt.datetime | None = None) -> IngestResult:
    """The timer's call: the latest closed session, with a run id fixed per session so a
    re-fired timer does not land the same day twice."""
    now = now or dt.datetime.now(dt.UTC)
    session = trading_calendar.latest_session(now, code=settings.exchange_calendar)
    run_id = f"daily-{session:%Y%m%d}"
    return ingest(
        {
            "dataset": dataset,
            "start_date": session.isoformat(),
            "end_date": session.isoformat(),
            "run_id": run_id,
        },
        settings,
        now=now,
    )


def market_open(now: dt.datetime, code: str = "XNYS") -> bool:
    return bool(
        trading_calendar.calendar(code).is_open_on_minute(now.astimezone(dt.UTC).replace(second=0, microsecond=0))
    )


def poll(settings: Settings, *, now: dt.datetime | None = None) -> PollResult | None:
    """One poll of the universe's quotes; None when the market is closed (and that matters)."""
    now = now or dt.datetime.now(dt.UTC)
    if settings.poll_quotes_market_hours_only and not market_open(now, settings.exchange_calendar):
        return None
    provider = provider_from_settings(settings)
    publisher = build_publisher(settings)
    try:
        return poll_quotes(
            settings.symbols,
            provider,
            publisher,
            run_id=f"quotes-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
            concurrency=settings.ingest_concurrency,
        )
    finally:
        provider.close()
        publisher.close()
