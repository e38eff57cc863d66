"""Composition from settings: which provider, limits and publisher a configuration yields."""

from __future__ import annotations

import datetime as dt

import pytest
from market_ingest import runtime
from market_ingest.eventhubs import CaptureFilePublisher, EventHubsPublisher
from market_ingest.providers import provider_from_settings

from lakehouse.settings import ConfigurationError, load_settings, timer_schedule


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (dt.datetime(2024, 5, 24, 15, 0, tzinfo=dt.UTC), True),  # Friday 11:00 New York
        (dt.datetime(2024, 5, 24, 20, 30, tzinfo=dt.UTC), False),  # after the 16:00 EDT close
        (dt.datetime(2024, 5, 25, 15, 0, tzinfo=dt.UTC), False),  # Saturday
        (dt.datetime(2024, 5, 27, 15, 0, tzinfo=dt.UTC), False),  # Memorial Day
        (dt.datetime(2024, 1, 5, 20, 30, tzinfo=dt.UTC), True),  # 15:30 EST in winter
    ],
)
def test_market_hours_come_from_the_xnys_calendar(moment: dt.datetime, is_open: bool):
    assert runtime.market_open(moment) is is_open


def test_poll_does_nothing_while_the_market_is_closed(tmp_path):
    settings = load_settings(home=tmp_path, alphavantage_base_url="http://127.0.0.1:9/query")
    saturday = dt.datetime(2024, 5, 25, 15, 0, tzinfo=dt.UTC)
    assert runtime.poll(settings, now=saturday) is None
    assert not (tmp_path / "lake").exists()


def test_alpha_vantage_needs_a_key(tmp_path):
    settings = load_settings(home=tmp_path, provider="alpha_vantage")
    with pytest.raises(ConfigurationError, match="ALPHAVANTAGE_API_KEY"):
        provider_from_settings(settings)


def test_alpha_vantage_defaults_to_the_public_endpoint_and_75_calls_a_minute(tmp_path):
    settings = load_settings(home=tmp_path, provider="alpha_vantage", alphavantage_api_key="sentinel")
    client = provider_from_settings(settings)
    assert (client.name, client.endpoint) == ("alpha_vantage", "https://www.alphavantage.co/query")
    assert client.limiter.per_minute == 75 and client.limiter.per_day is None
    assert "sentinel" not in repr(client)


def test_synthetic_has_no_client_side_limit_unless_configured(tmp_path):
    settings = load_settings(home=tmp_path, alphavantage_base_url="http://127.0.0.1:9/query")
    assert provider_from_settings(settings).limiter.per_minute is None
    limits = {"ingest_calls_per_minute": 5, "ingest_calls_per_day": 25}
    url = settings.alphavantage_base_url
    limited = provider_from_settings(load_settings(home=tmp_path, alphavantage_base_url=url, **limits))
    assert (limited.limiter.per_minute, limited.limiter.per_day) == (5, 25)


def test_the_publisher_is_capture_files_locally_and_event_hubs_otherwise(tmp_path, monkeypatch):
    settings = load_settings(home=tmp_path)
    assert isinstance(runtime.build_publisher(settings), CaptureFilePublisher)

    class NoToken:
        def get_token(self, *a, **k):  # pragma: no cover
            raise AssertionError

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", NoToken)
    remote = runtime.build_publisher(load_settings(home=tmp_path, eventhub_namespace="ns.servicebus.windows.net"))
    assert isinstance(remote, EventHubsPublisher)
    remote.close()


def test_timer_schedules_come_from_app_settings_with_defaults(monkeypatch):
    monkeypatch.delenv("LAKEHOUSE_INGEST_DAILY_SCHEDULE", raising=False)
    assert timer_schedule("ingest_daily_schedule") == "0 30 22 * * 1-5"
    monkeypatch.setenv("LAKEHOUSE_INGEST_DAILY_SCHEDULE", "0 0 23 * * 1-5")
    assert timer_schedule("ingest_daily_schedule") == "0 0 23 * * 1-5"


def test_a_timer_schedule_is_read_even_when_another_setting_is_bad(monkeypatch):
    """Schedules are read when the app indexes its functions: a bad symbol list must not stop that
    (the function reading it answers with the setting's name instead)."""
    monkeypatch.setenv("LAKEHOUSE_SYMBOLS", "../etc")
    monkeypatch.setenv("LAKEHOUSE_POLL_QUOTES_SCHEDULE", "0 */2 13-20 * * 1-5")
    assert timer_schedule("poll_quotes_schedule") == "0 */2 13-20 * * 1-5"
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_SYMBOLS"):
        load_settings()
