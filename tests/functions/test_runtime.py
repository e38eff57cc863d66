"""Composition from settings: which provider, limits and publisher a configuration yields."""

from __future__ import annotations

import datetime as dt

import pytest
from market_ingest import runtime
from market_ingest.eventhubs import CaptureFilePublisher, EventHubsPublisher
from market_ingest.options import load_options, timer_schedule
from market_ingest.providers import provider_from_settings

from lakehouse.settings import ConfigurationError, load_settings


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
    assert runtime.poll(settings, load_options(), now=saturday) is None
    assert not (tmp_path / "lake").exists()


def test_alpha_vantage_needs_a_key(tmp_path):
    settings = load_settings(home=tmp_path, provider="alpha_vantage")
    with pytest.raises(ConfigurationError, match="ALPHAVANTAGE_API_KEY"):
        provider_from_settings(settings, load_options())


def test_alpha_vantage_defaults_to_the_public_endpoint_and_75_calls_a_minute(tmp_path):
    settings = load_settings(home=tmp_path, provider="alpha_vantage", alphavantage_api_key="sentinel")
    client = provider_from_settings(settings, load_options())
    assert (client.name, client.endpoint) == ("alpha_vantage", "https://www.alphavantage.co/query")
    assert client.limiter.per_minute == 75 and client.limiter.per_day is None
    assert "sentinel" not in repr(client)


def test_synthetic_has_no_client_side_limit_unless_configured(tmp_path):
    settings = load_settings(home=tmp_path, alphavantage_base_url="http://127.0.0.1:9/query")
    assert provider_from_settings(settings, load_options()).limiter.per_minute is None
    limited = provider_from_settings(settings, load_options(ingest_calls_per_minute=5, ingest_calls_per_day=25))
    assert (limited.limiter.per_minute, limited.limiter.per_day) == (5, 25)


def test_the_publisher_is_capture_files_locally_and_event_hubs_otherwise(tmp_path, monkeypatch):
    settings = load_settings(home=tmp_path)
    assert isinstance(runtime.build_publisher(settings, load_options()), CaptureFilePublisher)

    class NoToken:
        def get_token(self, *a, **k):  # pragma: no cover
            raise AssertionError

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", NoToken)
    remote = runtime.build_publisher(settings, load_options(eventhub_namespace="ns.servicebus.windows.net"))
    assert isinstance(remote, EventHubsPublisher)
    remote.close()


def test_timer_schedules_come_from_app_settings_with_defaults(monkeypatch):
    monkeypatch.delenv("LAKEHOUSE_INGEST_DAILY_SCHEDULE", raising=False)
    assert timer_schedule("LAKEHOUSE_INGEST_DAILY_SCHEDULE") == "0 30 22 * * 1-5"
    monkeypatch.setenv("LAKEHOUSE_INGEST_DAILY_SCHEDULE", "0 0 23 * * 1-5")
    assert timer_schedule("LAKEHOUSE_INGEST_DAILY_SCHEDULE") == "0 0 23 * * 1-5"
