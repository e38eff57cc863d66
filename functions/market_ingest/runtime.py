"""Composition: settings -> provider, RAW store, publisher. The only place that decides
between the Azure and the local implementation of each."""

from __future__ import annotations

import datetime as dt
import uuid

from lakehouse import trading_calendar
from lakehouse.lake import Lake
from lakehouse.settings import Settings
from market_ingest.eventhubs import CaptureFilePublisher, EventHubsPublisher, EventPublisher
from market_ingest.ingest import Ingestion, IngestRequest, IngestResult
from market_ingest.landing import RawStore, raw_store
from market_ingest.options import IngestOptions
from market_ingest.providers import provider_from_settings
from market_ingest.quotes import PollResult, poll_quotes

LOCAL_NAMESPACE = "local"


def build_ingestion(settings: Settings, options: IngestOptions, store: RawStore | None = None) -> Ingestion:
    return Ingestion(
        provider_from_settings(settings, options),
        store or raw_store(Lake.from_settings(settings)),
        concurrency=options.ingest_concurrency,
        deadline_seconds=options.ingest_deadline_seconds,
        calendar=settings.exchange_calendar,
    )


def build_publisher(settings: Settings, options: IngestOptions) -> EventPublisher:
    """Capture files in RAW when the namespace is 'local', else Event Hubs."""
    if options.eventhub_namespace == LOCAL_NAMESPACE:
        return CaptureFilePublisher(
            raw_store(Lake.from_settings(settings)),
            namespace=LOCAL_NAMESPACE,
            hub=options.eventhub_name,
            partitions=options.eventhub_partitions,
            state_dir=settings.home_dir / "state" / "eventhubs",
        )
    return EventHubsPublisher.from_namespace(options.eventhub_namespace, options.eventhub_name)


def ingest(body: object, settings: Settings, options: IngestOptions, *, now: dt.datetime | None = None) -> IngestResult:
    """Serve one POST /api/ingest body (raises BadRequest / ConfigurationError)."""
    now = now or dt.datetime.now(dt.UTC)
    request = IngestRequest.from_body(
        body,
        default_symbols=settings.symbols,
        default_date=trading_calendar.latest_session(now, code=settings.exchange_calendar),
    )
    ingestion = build_ingestion(settings, options)
    try:
        return ingestion.run(request, now=now)
    finally:
        ingestion.provider.close()


def ingest_latest_session(
    dataset: str, settings: Settings, options: IngestOptions, *, now: dt.datetime | None = None
) -> IngestResult:
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
        options,
        now=now,
    )


def market_open(now: dt.datetime, code: str = "XNYS") -> bool:
    return bool(
        trading_calendar.calendar(code).is_open_on_minute(now.astimezone(dt.UTC).replace(second=0, microsecond=0))
    )


def poll(settings: Settings, options: IngestOptions, *, now: dt.datetime | None = None) -> PollResult | None:
    """One poll of the universe's quotes; None when the market is closed (and that matters)."""
    now = now or dt.datetime.now(dt.UTC)
    if options.poll_quotes_market_hours_only and not market_open(now, settings.exchange_calendar):
        return None
    provider = provider_from_settings(settings, options)
    publisher = build_publisher(settings, options)
    try:
        return poll_quotes(
            settings.symbols,
            provider,
            publisher,
            run_id=f"quotes-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
            concurrency=options.ingest_concurrency,
        )
    finally:
        provider.close()
        publisher.close()
