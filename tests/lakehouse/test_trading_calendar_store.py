"""The calendar kept on disk is the calendar `exchange_calendars` builds, and only for its definition."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest

from lakehouse import trading_calendar
from lakehouse.trading_calendar import CALENDAR_START, CalendarStore, calendar_end


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """The module's default store in a fresh directory; calendars of other tests forgotten."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    trading_calendar.calendar.cache_clear()
    yield tmp_path / "lakehouse" / "calendars"
    trading_calendar.calendar.cache_clear()


def _fresh_build(code: str = "XNYS") -> xcals.ExchangeCalendar:
    """A build that bypasses every cache (exchange_calendars keeps its own per process)."""
    cls = type(xcals.get_calendar(code, start="2020-01-02", end="2020-12-31"))
    return cls(start=CALENDAR_START, end=calendar_end())


def test_sessions_read_back_from_the_store_equal_a_full_build_for_every_year(own_cache) -> None:
    trading_calendar.calendar()  # builds and keeps the calendar
    [kept] = own_cache.glob("xnys-*.pickle")
    trading_calendar.calendar.cache_clear()
    stored = trading_calendar.calendar()  # read back: a process after the first
    full = _fresh_build()
    assert stored is not full and type(stored) is type(full)
    for year in range(1995, 2036):
        first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
        expected = [ts.date() for ts in full.sessions if first <= ts.date() <= last]
        assert trading_calendar.sessions(first, last) == expected, year
    assert stored.schedule.equals(full.schedule)
    assert stored.sessions.freq == full.sessions.freq
    assert stored.early_closes.equals(full.early_closes) and stored.late_opens.equals(full.late_opens)
    assert (stored.first_session, stored.last_session) == (full.first_session, full.last_session)
    assert trading_calendar.session_hours(dt.date(2024, 11, 29)) == (
        dt.datetime(2024, 11, 29, 14, 30, tzinfo=dt.UTC), dt.datetime(2024, 11, 29, 18, 0, tzinfo=dt.UTC))  # fmt: skip
    assert [p.name for p in own_cache.glob("xnys-*.pickle")] == [kept.name]


def test_a_new_day_or_definition_is_a_new_file_and_the_old_one_goes(tmp_path) -> None:
    store = CalendarStore(tmp_path)
    end = calendar_end(pd.Timestamp("2026-01-05", tz="UTC"))
    store.calendar("XNYS", CALENDAR_START, end)
    later = calendar_end(pd.Timestamp("2026-01-06", tz="UTC"))
    cal = store.calendar("XNYS", CALENDAR_START, later)
    assert cal.last_session <= pd.Timestamp(later)
    assert [p.name for p in tmp_path.glob("*.pickle")] == [store.path("XNYS", CALENDAR_START, later).name]


def test_the_key_changes_with_the_calendar_source(tmp_path, monkeypatch) -> None:
    package = Path(xcals.__file__).parent
    copy = tmp_path / "exchange_calendars"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(xcals, "__file__", str(copy / "__init__.py"))
    trading_calendar.definition_fingerprint.cache_clear()
    try:
        before = trading_calendar.definition_fingerprint("XNYS")
        holidays = copy / "us_holidays.py"
        holidays.write_text(holidays.read_text() + "\n# a rule changed\n")
        trading_calendar.definition_fingerprint.cache_clear()
        assert trading_calendar.definition_fingerprint("XNYS") != before
    finally:
        trading_calendar.definition_fingerprint.cache_clear()


def test_a_damaged_file_is_built_again_and_replaced(tmp_path) -> None:
    store = CalendarStore(tmp_path)
    path = store.path("XNYS", CALENDAR_START, calendar_end())
    store.calendar("XNYS", CALENDAR_START, calendar_end())
    path.write_bytes(path.read_bytes()[:1000])
    cal = store.calendar("XNYS", CALENDAR_START, calendar_end())
    assert cal.schedule.equals(_fresh_build().schedule)
    assert CalendarStore(tmp_path)._read(path) is not None  # whole again


def test_a_file_others_may_write_is_not_read(tmp_path) -> None:
    store = CalendarStore(tmp_path)
    path = store.path("XNYS", CALENDAR_START, calendar_end())
    store.calendar("XNYS", CALENDAR_START, calendar_end())
    assert store._read(path) is not None
    os.chmod(path, 0o666)
    assert store._read(path) is None
    os.chmod(path, 0o600)
    os.chmod(tmp_path, 0o777)
    assert store._read(path) is None
