"""Trading sessions of an exchange, from `exchange_calendars` (never weekday arithmetic).

`exchange_calendars` builds a calendar 20 years back by default; history older than that
needs an explicit start, so calendars here are built over a fixed wide range once per process.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

CALENDAR_START = "1995-01-03"


@lru_cache(maxsize=4)
def calendar(code: str = "XNYS") -> xcals.ExchangeCalendar:
    end = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=400)).strftime("%Y-%m-%d")
    return xcals.get_calendar(code, start=CALENDAR_START, end=end)


def sessions(start: dt.date, end: dt.date, code: str = "XNYS") -> list[dt.date]:
    """Trading sessions in [start, end], both inclusive."""
    if end < start:
        return []
    cal = calendar(code)
    lo = max(pd.Timestamp(start), cal.first_session)
    hi = min(pd.Timestamp(end), cal.last_session)
    if hi < lo:
        return []
    return [ts.date() for ts in cal.sessions_in_range(lo, hi)]


def is_session(day: dt.date, code: str = "XNYS") -> bool:
    return calendar(code).is_session(pd.Timestamp(day))


def latest_session(at: dt.datetime | None = None, code: str = "XNYS") -> dt.date:
    """The latest session whose market has closed at `at` (UTC, default now)."""
    cal = calendar(code)
    now = pd.Timestamp(at or dt.datetime.now(dt.UTC))
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    day = cal.date_to_session(now.normalize().tz_localize(None), direction="previous")
    if cal.session_close(day) > now:
        day = cal.previous_session(day)
    return day.date()


def session_hours(day: dt.date, code: str = "XNYS") -> tuple[dt.datetime, dt.datetime] | None:
    """Open and close (UTC) of the regular session on `day`, early closes included; None on no session."""
    cal = calendar(code)
    ts = pd.Timestamp(day)
    if not cal.is_session(ts):
        return None
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()
