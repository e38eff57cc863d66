"""Ingestion tunables, read from the environment like every other setting.

They sit next to :class:`lakehouse.settings.Settings` (same ``LAKEHOUSE_`` prefix, same names as
the Function app settings in Azure) but belong to the ingestion app only, so they live here.
"""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Timer schedules are NCRONTAB (sec min hour day month weekday) in UTC.
# 22:30 UTC is after the 16:00 New York close in both EST (21:00 UTC) and EDT (20:00 UTC).
DEFAULT_SCHEDULES: dict[str, str] = {
    "LAKEHOUSE_INGEST_DAILY_SCHEDULE": "0 30 22 * * 1-5",
    # Every minute 13:00-20:59 UTC on weekdays covers 09:30-16:00 New York in EST and EDT;
    # poll_quotes itself checks the XNYS calendar and does nothing while the market is closed.
    "LAKEHOUSE_POLL_QUOTES_SCHEDULE": "0 * 13-20 * * 1-5",
}


def timer_schedule(app_setting: str) -> str:
    """The CRON of a timer trigger: the app setting if set, else its documented default.

    Read when the Function app indexes its functions (import time), as the host does for
    ``%APP_SETTING%`` expressions, but with a default so an unset setting still deploys.
    """
    return os.environ.get(app_setting) or DEFAULT_SCHEDULES[app_setting]


class IngestOptions(BaseSettings):
    """Rate limits, retries, concurrency and event-hub names of the ingestion app."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_", case_sensitive=False, extra="ignore")

    ingest_concurrency: int = Field(4, ge=1, le=64, description="Symbols fetched in parallel.")
    ingest_calls_per_minute: int | None = Field(
        None,
        ge=1,
        description="Client-side quota per minute; default 75 for alpha_vantage, none for synthetic.",
    )
    ingest_calls_per_day: int | None = Field(
        None, ge=1, description="Client-side quota per day (per process); default none."
    )
    ingest_timeout_seconds: float = Field(20.0, gt=0, description="Connect and read timeout of one request.")
    ingest_retry_attempts: int = Field(5, ge=1, le=20, description="Attempts per request, first included.")
    ingest_backoff_initial_seconds: float = Field(1.0, ge=0, description="First backoff wait.")
    ingest_backoff_max_seconds: float = Field(30.0, ge=0, description="Longest single backoff wait.")
    ingest_backoff_jitter_seconds: float = Field(1.0, ge=0, description="Random jitter added to each wait.")
    ingest_deadline_seconds: float = Field(
        170.0,
        gt=0,
        description="No request starts after this many seconds of one call "
        "(ADF waits 230 s; a request in flight may add one timeout).",
    )
    ingest_adjusted: bool = Field(
        True, description="TIME_SERIES_DAILY_ADJUSTED (splits, dividends) instead of TIME_SERIES_DAILY."
    )
    poll_quotes_market_hours_only: bool = Field(True, description="poll_quotes does nothing while XNYS is closed.")
    eventhub_namespace: str = Field(
        "local",
        description="'local' writes Capture files into RAW; otherwise the fully qualified namespace "
        "(<name>.servicebus.windows.net) of Event Hubs.",
    )
    eventhub_name: str = Field("market-quotes", description="Event hub of the quotes.")
    eventhub_partitions: int = Field(4, ge=1, le=32, description="Partitions of the local Capture writer.")

    def calls_per_minute(self, provider: str) -> int | None:
        if self.ingest_calls_per_minute is not None:
            return self.ingest_calls_per_minute
        return 75 if provider == "alpha_vantage" else None


def load_options(**overrides: object) -> IngestOptions:
    return IngestOptions(**overrides)
