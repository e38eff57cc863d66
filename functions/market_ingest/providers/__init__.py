"""Market-data providers. `synthetic` is the Alpha Vantage client pointed at the local server."""

from __future__ import annotations

from pydantic import SecretStr

from lakehouse.settings import ConfigurationError, Settings
from market_ingest.options import IngestOptions
from market_ingest.providers.alpha_vantage import AlphaVantageClient
from market_ingest.providers.base import MarketDataProvider, OutputSize, Payload
from market_ingest.ratelimit import RateLimiter
from market_ingest.retry import RetryPolicy

PUBLIC_ENDPOINT_HOST = "www.alphavantage.co"
SYNTHETIC_KEY = SecretStr("synthetic")

__all__ = ["MarketDataProvider", "OutputSize", "Payload", "provider_from_settings"]


def provider_from_settings(settings: Settings, options: IngestOptions) -> AlphaVantageClient:
    """The configured provider, with the rate limiter and retry policy from the options.

    Raises:
        ConfigurationError: alpha_vantage without a key, or synthetic pointed at the public API
            (the local runtime must never call the real service by accident).
    """
    base_url = settings.alphavantage_base_url
    if settings.provider == "alpha_vantage":
        if settings.alphavantage_api_key is None or not settings.alphavantage_api_key.get_secret_value():
            raise ConfigurationError("ALPHAVANTAGE_API_KEY is required for LAKEHOUSE_PROVIDER=alpha_vantage")
        api_key = settings.alphavantage_api_key
    else:
        if PUBLIC_ENDPOINT_HOST in base_url:
            raise ConfigurationError(
                "LAKEHOUSE_PROVIDER=synthetic needs ALPHAVANTAGE_BASE_URL set to the local synthetic "
                "server (local.market_api), not the public Alpha Vantage endpoint"
            )
        api_key = settings.alphavantage_api_key or SYNTHETIC_KEY
    return AlphaVantageClient(
        name=settings.provider,
        base_url=base_url,
        api_key=api_key,
        limiter=RateLimiter(options.calls_per_minute(settings.provider), options.ingest_calls_per_day),
        retry=RetryPolicy(
            attempts=options.ingest_retry_attempts,
            initial=options.ingest_backoff_initial_seconds,
            maximum=options.ingest_backoff_max_seconds,
            jitter=options.ingest_backoff_jitter_seconds,
        ),
        timeout=options.ingest_timeout_seconds,
        adjusted=options.ingest_adjusted,
        pool_size=options.ingest_concurrency,
    )
