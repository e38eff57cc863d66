"""Market-data providers. `synthetic` is the Alpha Vantage client pointed at the local server."""

from __future__ import annotations

from pydantic import SecretStr

from lakehouse.plan_checks import check_budget, plan_of
from lakehouse.settings import ConfigurationError, Settings
from market_ingest.providers.alpha_vantage import AlphaVantageClient
from market_ingest.providers.base import MarketDataProvider, OutputSize, Payload
from market_ingest.ratelimit import shared_limiter
from market_ingest.retry import RetryPolicy

PUBLIC_ENDPOINT_HOST = "www.alphavantage.co"
SYNTHETIC_KEY = SecretStr("synthetic")

__all__ = ["MarketDataProvider", "OutputSize", "Payload", "provider_from_settings"]


def provider_from_settings(settings: Settings) -> AlphaVantageClient:
    """The configured provider, with the plan, the key's shared rate limiter and the retry policy.

    Raises:
        ConfigurationError: alpha_vantage without a key, synthetic pointed at the public API
            (the local runtime must never call the real service by accident), the adjusted
            series asked of a plan without it, or schedules beyond the plan's budget.
    """
    base_url = settings.alphavantage_base_url
    plan = plan_of(settings)
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
    adjusted = settings.ingest_adjusted and plan.serves_adjusted
    if settings.ingest_adjusted and not plan.serves_adjusted and "ingest_adjusted" in settings.model_fields_set:
        raise ConfigurationError(
            f"LAKEHOUSE_INGEST_ADJUSTED=true needs TIME_SERIES_DAILY_ADJUSTED, which ALPHAVANTAGE_PLAN="
            f"{plan.name} does not serve; the free plan lands TIME_SERIES_DAILY (corporate actions come "
            f"from SPLITS and DIVIDENDS)"
        )
    check_budget(settings)
    per_minute, per_day = settings.ingest_calls_per_minute, settings.ingest_calls_per_day
    min_interval = 0.0
    if settings.provider == "alpha_vantage":
        per_minute = per_minute or plan.calls_per_minute
        per_day = per_day or plan.calls_per_day
        min_interval = plan.min_seconds_between_calls
    return AlphaVantageClient(
        name=settings.provider,
        base_url=base_url,
        api_key=api_key,
        limiter=shared_limiter(api_key.get_secret_value(), per_minute, per_day, min_interval=min_interval),
        retry=RetryPolicy(
            attempts=settings.ingest_retry_attempts,
            initial=settings.ingest_backoff_initial_seconds,
            maximum=settings.ingest_backoff_max_seconds,
            jitter=settings.ingest_backoff_jitter_seconds,
        ),
        timeout=settings.ingest_timeout_seconds,
        adjusted=adjusted,
        plan=plan,
        pool_size=settings.ingest_concurrency,
    )
