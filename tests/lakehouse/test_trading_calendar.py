"""Trading sessions come from the XNYS calendar, holidays included."""

from __future__ import annotations

import datetime as dt

from lakehouse.trading_calendar import is_session, latest_session, sessions


def test_sessions_skip_weekends_and_exchange_holidays() -> None:
    # 2024-07-04 (Independence Day) is a Thursday holiday; 2024-07-06/07 a weekend.
    got = sessions(dt.date(2024, 7, 1), dt.date(2024, 7, 9))
    assert got == [dt.date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9)]


def test_history_older_than_twenty_years_is_available() -> None:
    assert is_session(dt.date(2001, 9, 10))
    assert not is_session(dt.date(2001, 9, 11))  # markets closed after the attacks


def test_latest_session_is_the_last_closed_one() -> None:
    # Monday 2024-07-08 14:00 UTC: the market is open, so the latest closed session is Friday.
    assert latest_session(dt.datetime(2024, 7, 8, 14, 0, tzinfo=dt.UTC)) == dt.date(2024, 7, 5)
    # After the 20:00 UTC close (16:00 New York, summer time) it is that Monday.
    assert latest_session(dt.datetime(2024, 7, 8, 20, 30, tzinfo=dt.UTC)) == dt.date(2024, 7, 8)
