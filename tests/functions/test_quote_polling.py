"""Quote polling follows the exchange calendar's sessions, not a fixed UTC range.

New York's 09:30-16:00 session is 13:30-20:00 UTC on daylight-saving time (EDT) and 14:30-21:00 UTC
on standard time (EST), and closes at 13:00 New York on early-close days. The timer fires over the
widest UTC range; ``poll_quotes`` polls only while a session is open at that minute.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from market_ingest import runtime

from lakehouse import plan_checks
from lakehouse.settings import ConfigurationError, Settings, load_settings
from local.market_api import MarketApiServer

REPO = Path(__file__).resolve().parents[2]
EDT_DAY = dt.date(2024, 7, 17)  # Wednesday, New York on EDT: 13:30-20:00 UTC
EST_DAY = dt.date(2024, 1, 17)  # Wednesday, New York on EST: 14:30-21:00 UTC
EARLY_CLOSE = dt.date(2024, 11, 29)  # day after Thanksgiving: 09:30-13:00 EST, 14:30-18:00 UTC


def utc(day: dt.date, hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("at", "polled"),
    [
        (utc(EDT_DAY, 13, 30), True),  # the EDT open, which a 14-20 UTC window missed
        (utc(EDT_DAY, 13, 59), True),
        (utc(EDT_DAY, 13, 29), False),
        (utc(EDT_DAY, 20, 0), False),  # the EDT close
        (utc(EST_DAY, 13, 45), False),  # before the EST open
        (utc(EST_DAY, 14, 30), True),
        (utc(EST_DAY, 20, 59), True),  # the last EST minute
        (utc(EARLY_CLOSE, 17, 59), True),
        (utc(EARLY_CLOSE, 18, 0), False),  # the 13:00 New York early close
        (utc(EARLY_CLOSE, 20, 30), False),
    ],
)
def test_poll_quotes_polls_only_while_an_xnys_session_is_open(
    ingest_env: Path, api: MarketApiServer, monkeypatch: pytest.MonkeyPatch, at: dt.datetime, polled: bool
):
    monkeypatch.delenv("LAKEHOUSE_POLL_QUOTES_MARKET_HOURS_ONLY")  # the default: the calendar decides
    result = runtime.poll(load_settings(), now=at)
    if polled:
        assert result is not None and result.published == 3 and result.failures == []
        assert {r.function for r in api.requests} == {"GLOBAL_QUOTE"}
    else:
        assert result is None and api.requests == []


def stack_schedules() -> dict[str, str]:
    found = {}
    for path in sorted(REPO.glob("Pulumi.*.yaml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8")).get("config", {})
        if "lakehouse:pollQuotesSchedule" in config:
            found[path.name] = config["lakehouse:pollQuotesSchedule"]
    return found


def test_the_quote_schedules_fire_in_every_hour_of_edt_est_and_early_close_sessions():
    schedules = {"default": Settings.model_fields["poll_quotes_schedule"].default, **stack_schedules()}
    assert {"default", "Pulumi.dev.yaml", "Pulumi.prod.yaml"} <= set(schedules)
    for where, expression in schedules.items():
        assert plan_checks.quote_schedule_gaps(expression, (EDT_DAY, EST_DAY, EARLY_CLOSE)) == [], where


def test_a_fixed_14_to_20_utc_window_is_reported_as_missing_the_edt_open():
    gaps = plan_checks.quote_schedule_gaps("0 * 14-20 * * 1-5", (EDT_DAY, EST_DAY))
    assert gaps == [f"{EDT_DAY} 13:30-14:00 UTC (XNYS open, no firing of '0 * 14-20 * * 1-5')"]
    assert plan_checks.quote_schedule_gaps("0 * 13-19 * * 1-5", (EST_DAY,)) == [
        f"{EST_DAY} 20:00-21:00 UTC (XNYS open, no firing of '0 * 13-19 * * 1-5')"
    ]
    assert plan_checks.quote_schedule_gaps("0 * 13-19 * * 1-5", (EDT_DAY, EARLY_CLOSE)) == []


def test_the_quote_budget_counts_only_firings_inside_sessions(tmp_path: Path):
    """Every minute around the clock is 1440 firings, of which 390 fall in one session."""

    def refusal(schedule: str) -> str:
        settings = load_settings(home=tmp_path, alphavantage_plan="free", symbols="AAPL",
                                 poll_quotes_schedule=schedule, poll_quotes_market_hours_only=True)  # fmt: skip
        with pytest.raises(ConfigurationError) as caught:
            plan_checks.check_budget(settings)
        return str(caught.value)

    assert "390 polls x 1 symbols" in refusal("0 * * * * 1-5")
    # 13:00-13:59 UTC holds 30 session minutes on EDT (from the 13:30 open) and none on EST
    assert "30 polls x 1 symbols" in refusal("0 * 13 * * 1-5")
