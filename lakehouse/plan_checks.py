"""The provider plan's limits checked before any call: backfill windows and timer schedules.

Shared by the Function app (each ingest call and poll) and the ``lakehouse backfill`` command,
so a request the plan cannot serve is refused the same way, with the same reason, everywhere.
"""

from __future__ import annotations

import datetime as dt
import math

from lakehouse import trading_calendar
from lakehouse.contracts.provider_plans import COMPACT_SESSIONS, DAILY, PLANS, ProviderPlan
from lakehouse.ncrontab import Schedule, ScheduleError
from lakehouse.settings import ConfigurationError, Settings

# What the ingest_daily timer lands for each symbol, one call each. Corporate actions are fetched
# every day: on a free key they are the only source of the adjustment (TIME_SERIES_DAILY has no split
# or dividend fields), and a split known a day late would publish a false -50% return until then.
DAILY_DATASETS: tuple[str, ...] = ("daily_bars", "security_master", "splits", "dividends")
BUDGET_DAY = dt.date(2025, 1, 15)  # a Wednesday, on which weekday schedules fire
# Full sessions while New York is on daylight-saving time (EDT, 13:30-20:00 UTC) and on standard
# time (EST, 14:30-21:00 UTC): a quote schedule is counted and checked against the calendar's hours
# on both, since a UTC schedule meets the session at different UTC times through the year.
SESSIONS_EDT_EST = (dt.date(2025, 7, 16), dt.date(2025, 1, 15))


def plan_of(settings: Settings) -> ProviderPlan:
    """The provider plan the settings select (``ALPHAVANTAGE_PLAN``)."""
    return PLANS[settings.alphavantage_plan]


def compact_first_session(now: dt.datetime, *, calendar: str = "XNYS") -> dt.date:
    """The oldest session ``outputsize=compact`` still returns at `now` (the latest 100)."""
    latest = trading_calendar.latest_session(now, code=calendar)
    recent = trading_calendar.sessions(latest - dt.timedelta(days=200), latest, code=calendar)
    return recent[-COMPACT_SESSIONS]


def daily_bars_refusal(plan: ProviderPlan, start: dt.date, *, now: dt.datetime, function: str = DAILY,
                       calendar: str = "XNYS") -> str | None:  # fmt: skip
    """Why `plan` cannot serve daily bars from `start` (the function, or the history), or None."""
    refusal = plan.refusal(function)
    if refusal is None:
        first = trading_calendar.sessions(start, start + dt.timedelta(days=10), code=calendar)
        refusal = plan.history_refusal(first[0] if first else start, compact_first_session(now, calendar=calendar),
                                       function)  # fmt: skip
    return refusal


def check_budget(settings: Settings) -> None:
    """Refuse schedules that need more calls a day (or a minute) than the plan allows.

    Counts a weekday: the daily timer's runs x symbols x daily datasets, plus the quote timer's
    runs (only those inside a session when it polls only then: the busier of an EDT and an EST
    session, from the exchange calendar) x symbols.

    Raises:
        ConfigurationError: naming the plan, the calls needed and the settings to change.
    """
    plan = plan_of(settings)
    try:
        daily = Schedule.parse(settings.ingest_daily_schedule)
        quotes = Schedule.parse(settings.poll_quotes_schedule)
    except ScheduleError as exc:
        raise ConfigurationError(f"invalid timer schedule: {exc}") from None
    symbols = len(settings.symbols)
    daily_runs = daily.runs_on(BUDGET_DAY)
    if settings.poll_quotes_market_hours_only:
        polls = max(quotes.runs_on(day, hours) for day, hours in _session_times(settings.exchange_calendar))
    else:
        polls = quotes.runs_on(BUDGET_DAY)
    daily_calls = daily_runs * symbols * len(DAILY_DATASETS)
    quote_calls = polls * symbols
    detail = (
        f"ingest_daily {daily_calls} = {daily_runs} run(s) x {symbols} symbols x {len(DAILY_DATASETS)} datasets; "
        f"poll_quotes {quote_calls} = {polls} polls x {symbols} symbols"
    )
    reason = plan.budget_refusal(
        daily_run_calls=daily_calls,
        quote_calls=quote_calls,
        # a poll may spread its calls up to the next firing: the rate it needs over that time
        quote_calls_per_minute=math.ceil(symbols / min(quotes.shortest_gap_minutes(), symbols)) if polls else 0,
        detail=detail,
    )
    if reason is not None:
        raise ConfigurationError(reason)


def _session_times(calendar: str) -> list[tuple[dt.date, tuple[dt.time, dt.time]]]:
    """The UTC open and close times of :data:`SESSIONS_EDT_EST` on `calendar`."""
    found = []
    for day in SESSIONS_EDT_EST:
        hours = trading_calendar.session_hours(day, code=calendar)
        if hours is not None:
            found.append((day, (hours[0].time(), hours[1].time())))
    return found


def quote_schedule_gaps(expression: str, days: tuple[dt.date, ...] = SESSIONS_EDT_EST, *,
                        calendar: str = "XNYS") -> list[str]:  # fmt: skip
    """Hours of the sessions on `days` in which the quote schedule never fires, described.

    ``poll_quotes`` polls only while a session is open, so its schedule must fire in every UTC hour
    any session is open: ``14-20`` misses the 13:30-14:00 UTC open while New York is on EDT.

    Raises:
        ConfigurationError: the schedule is not NCRONTAB.
    """
    try:
        schedule = Schedule.parse(expression)
    except ScheduleError as exc:
        raise ConfigurationError(f"invalid timer schedule: {exc}") from None
    gaps = []
    for day in days:
        hours = trading_calendar.session_hours(day, code=calendar)
        if hours is None:
            continue
        opens, closes = hours
        hour = opens.replace(minute=0, second=0, microsecond=0)
        while hour < closes:
            lo, hi = max(hour, opens), min(hour + dt.timedelta(hours=1), closes)
            end = None if hi.hour == 0 and hi.date() > day else hi.time()
            if not schedule.runs_on(day, (lo.time(), end)):
                gaps.append(f"{day} {lo:%H:%M}-{hi:%H:%M} UTC ({calendar} open, no firing of {expression!r})")
            hour += dt.timedelta(hours=1)
    return gaps
