"""Provider plans are configuration: with ALPHAVANTAGE_PLAN=free the app asks only for what a free
key serves, refuses a backfill beyond it before any call (with the reason), checks its schedules
against 25 calls a day, and a daily run stays within them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from market_ingest.providers import provider_from_settings

from lakehouse import plan_checks, trading_calendar
from lakehouse.contracts.provider_plans import PLANS
from lakehouse.ncrontab import Schedule, ScheduleError
from lakehouse.settings import ConfigurationError, load_settings
from local import function_host
from local.market_api import MarketApiServer
from tests.functions.conftest import payload_files

NO_QUOTE_POLLS = {"LAKEHOUSE_POLL_QUOTES_SCHEDULE": "0 0 2 * * 1-5", "LAKEHOUSE_POLL_QUOTES_MARKET_HOURS_ONLY": "true"}


@pytest.fixture
def free_env(ingest_env: Path, monkeypatch: pytest.MonkeyPatch, api: MarketApiServer) -> Path:
    """A free key on both sides: the app's plan and the synthetic server's."""
    monkeypatch.setenv("ALPHAVANTAGE_PLAN", "free")
    for name, value in NO_QUOTE_POLLS.items():
        monkeypatch.setenv(name, value)
    api.configure(plan="free")
    return ingest_env


def test_the_plans_declare_what_a_free_key_cannot_do():
    free, premium = PLANS["free"], PLANS["premium"]
    assert (free.calls_per_day, free.calls_per_minute, free.min_seconds_between_calls) == (25, 5, 1.0)
    assert free.refusal("TIME_SERIES_DAILY", "compact") is None
    assert "premium function" in free.refusal("TIME_SERIES_DAILY_ADJUSTED")
    assert "latest 100 sessions" in free.refusal("TIME_SERIES_DAILY", "full")
    assert free.entitlement_parameter is None and premium.entitlement_parameter == "delayed"
    assert PLANS["premium_realtime"].entitlement_parameter == "realtime"
    assert premium.refusal("TIME_SERIES_DAILY_ADJUSTED", "full") is None and premium.calls_per_day is None


def test_a_free_plan_lands_the_unadjusted_series(free_env: Path, api: MarketApiServer):
    response = function_host.invoke_http("ingest", body={"symbols": ["AAPL", "KO"], "run_id": "f-1"})
    assert response.status_code == 200, response.json()
    assert response.json()["failures"] == []
    assert {(r.function, r.params.get("outputsize")) for r in api.requests} == {("TIME_SERIES_DAILY", "compact")}
    assert len(payload_files(free_env)) == 2


def test_asking_a_free_plan_for_the_adjusted_series_is_a_configuration_error(tmp_path: Path):
    settings = load_settings(home=tmp_path, alphavantage_base_url="http://127.0.0.1:9/query",
                             alphavantage_plan="free", ingest_adjusted=True, **{k.removeprefix("LAKEHOUSE_").lower(): v
                             for k, v in NO_QUOTE_POLLS.items()})  # fmt: skip
    with pytest.raises(ConfigurationError, match="TIME_SERIES_DAILY_ADJUSTED"):
        provider_from_settings(settings)


def test_a_backfill_beyond_the_free_plan_is_refused_before_any_call(free_env: Path, api: MarketApiServer):
    today = dt.date.today()
    body = {"symbols": ["AAPL"], "run_id": "bf-1", "start_date": f"{today.year - 5}-01-02",
            "end_date": f"{today.year - 5}-03-29"}  # fmt: skip
    response = function_host.invoke_http("ingest", body=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "ALPHAVANTAGE_PLAN=free" in error and "latest 100 sessions" in error and "outputsize=full" in error
    assert api.requests == []
    assert payload_files(free_env) == []


def test_the_same_backfill_runs_on_a_premium_plan(ingest_env: Path, api: MarketApiServer, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_INGEST_TIMEOUT_SECONDS", "30")  # a full history on a busy machine
    today = dt.date.today()
    body = {"symbols": ["AAPL"], "run_id": "bf-2", "start_date": f"{today.year - 5}-01-02",
            "end_date": f"{today.year - 5}-03-29"}  # fmt: skip
    response = function_host.invoke_http("ingest", body=body)
    assert response.status_code == 200, response.json()
    assert [r.params.get("outputsize") for r in api.requests] == ["full"]


def test_a_window_inside_the_latest_100_sessions_is_served_by_the_free_plan():
    now = dt.datetime.now(dt.UTC)
    latest = trading_calendar.latest_session(now)
    sessions = trading_calendar.sessions(latest - dt.timedelta(days=200), latest)
    free = PLANS["free"]
    assert plan_checks.daily_bars_refusal(free, sessions[-100], now=now) is None
    assert plan_checks.daily_bars_refusal(free, sessions[-101], now=now) is not None


def test_schedules_beyond_the_daily_budget_are_refused_with_the_numbers(tmp_path: Path):
    settings = load_settings(home=tmp_path, alphavantage_plan="free", symbols="AAPL,MSFT,KO",
                             poll_quotes_market_hours_only=True)  # fmt: skip
    with pytest.raises(ConfigurationError) as caught:
        plan_checks.check_budget(settings)
    message = str(caught.value)
    # 1 daily run x 3 symbols x 4 datasets (bars, overview, splits, dividends) + 390 polls in market hours x 3 symbols
    assert "25 calls a day" in message and "1182" in message and "390 polls x 3 symbols" in message
    assert "x 4 datasets" in message
    plan_checks.check_budget(load_settings(home=tmp_path, alphavantage_plan="premium", symbols="AAPL,MSFT,KO"))


def test_a_daily_run_of_six_symbols_fits_a_free_key(tmp_path: Path):
    """Four calls per symbol (daily bars, overview, splits, dividends): 6 symbols are 24 calls, 7 are 28."""
    symbols = "AAPL,MSFT,KO,JPM,BA,CAT"
    plan_checks.check_budget(load_settings(home=tmp_path, alphavantage_plan="free", symbols=symbols,
                                           poll_quotes_schedule="0 0 2 * * 1-5"))  # fmt: skip
    with pytest.raises(ConfigurationError, match="need 28"):
        plan_checks.check_budget(load_settings(home=tmp_path, alphavantage_plan="free", symbols=symbols + ",V",
                                               poll_quotes_schedule="0 0 2 * * 1-5"))  # fmt: skip


def test_the_daily_timer_on_a_free_key_stays_within_25_calls(
    free_env: Path, api: MarketApiServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LAKEHOUSE_SYMBOLS", "AAPL,MSFT,KO,JPM,BA,CAT")
    monkeypatch.setenv("LAKEHOUSE_INGEST_DAILY_ENABLED", "true")
    api.configure(plan="free", calls_per_day=25)  # the server enforces the free quota as Alpha Vantage does
    function_host.run_timer("ingest_daily")
    assert len(api.requests) == 24 and {r.fault for r in api.requests} == {None}
    assert {r.function for r in api.requests} == {"TIME_SERIES_DAILY", "OVERVIEW", "SPLITS", "DIVIDENDS"}


def test_ncrontab_firings_are_counted_per_field():
    day = dt.date(2025, 1, 15)  # a Wednesday
    every_minute = Schedule.parse("0 * 13-20 * * 1-5")
    assert every_minute.runs_on(day) == 480
    assert every_minute.runs_on(day, (dt.time(13, 30), dt.time(20))) == 390
    assert every_minute.runs_on(dt.date(2025, 1, 18)) == 0  # Saturday
    assert Schedule.parse("*/15 0,30 9-10 * * *").runs_on(day) == 16
    for bad in ("0 * * * *", "0 61 * * * *", "0 x * * * *"):
        with pytest.raises(ScheduleError):
            Schedule.parse(bad)


def test_a_quote_poll_may_take_until_the_next_one_starts(tmp_path: Path):
    """500 symbols at 75 calls a minute take 7 minutes: fine every 15 minutes, refused every 5."""
    symbols = ",".join(f"S{i:03d}" for i in range(500)).replace("S", "X")
    plan_checks.check_budget(load_settings(home=tmp_path, alphavantage_plan="premium", symbols=symbols,
                                           poll_quotes_schedule="0 */15 13-20 * * 1-5"))  # fmt: skip
    with pytest.raises(ConfigurationError, match="75 calls a minute; a quote poll needs 100 a minute"):
        plan_checks.check_budget(load_settings(home=tmp_path, alphavantage_plan="premium", symbols=symbols,
                                               poll_quotes_schedule="0 */5 13-20 * * 1-5"))  # fmt: skip
